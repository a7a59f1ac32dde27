//! Any bytes as a `RouteRequest` on the wire: decoding and conversion to the domain input never panic, and what
//! converts is within the gateway's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchyard::request::{MAX_FEATURES, MAX_NAME_BYTES, RouteInput};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = switchyard_proto::v1::RouteRequest::decode(data) else { return };
    if let Ok(input) = RouteInput::try_from(request) {
        assert!(input.request_id.len() <= MAX_NAME_BYTES);
        assert!(input.record.as_ref().is_none_or(|r| r.len() <= MAX_FEATURES));
        assert!(input.tenant.is_empty() || switchyard::auth::check_tenant(&input.tenant).is_ok());
    }
});

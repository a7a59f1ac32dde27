//! Any text as a policy file: it compiles or is refused with a key and a reason, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use switchyard::policy::{PolicyContext, compile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let labels = [("balance", "banking"), ("oos", "oos"), ("churn_score", "customer_record"), ("churn_explain", "customer_record")]
        .into_iter()
        .map(|(l, g)| (l.to_owned(), g.to_owned()))
        .collect();
    let context = PolicyContext {
        backends: ["local".to_owned()].into_iter().collect(),
        labels: Some(labels),
    };
    if let Err(error) = compile(Path::new("policy.toml"), text, &context) {
        assert!(!error.key.is_empty() && !error.reason.is_empty());
    }
});

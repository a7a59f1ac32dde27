//! A customer record written as a flat JSON object, as the `features` field of a `RouteRequest`.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{Struct, Value};

/// `object`'s entries as a protobuf `Struct`: strings, numbers, booleans and null, as the scorer's schema reads
/// them. Anything nested is refused, naming the key.
pub fn from_json(object: serde_json::Map<String, serde_json::Value>) -> Result<Struct, String> {
    let mut fields = BTreeMap::new();
    for (key, value) in object {
        let kind = match value {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Kind::StringValue(s),
            other => return Err(format!("{key}: {other} is not a flat value")),
        };
        fields.insert(key, Value { kind: Some(kind) });
    }
    Ok(Struct { fields })
}

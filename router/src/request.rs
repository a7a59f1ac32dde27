//! The request as the router's domain sees it, converted from the generated `RouteRequest` at the edge.

use std::collections::BTreeMap;

use classical::schema::FeatureValue;
use prost_types::value::Kind;
use switchyard_proto::v1::RouteRequest;

use crate::error::RouterError;

/// Largest `max_tokens` a caller may ask for.
const MAX_TOKENS_LIMIT: u32 = 8192;
/// Most fields a record may carry (the scorer reads 19; the rest are refused by name later, but a request
/// cannot make the gateway walk an unbounded map).
pub const MAX_FEATURES: usize = 64;
/// Longest feature name, request id and forced target name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Refuses a string a model would read if it holds a NUL character. ONNX Runtime's string tensors are C strings:
/// a NUL fails the run inside the model, which would answer a caller's mistake as a server fault (`INTERNAL`).
pub fn check_model_string(field: &str, value: &str) -> Result<(), RouterError> {
    if value.contains('\0') {
        return Err(RouterError::invalid(
            field,
            "contains a NUL character (U+0000), which the models cannot read",
        ));
    }
    Ok(())
}

/// A structurally valid request (field-level checks done; limits from config are checked by the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteInput {
    /// The caller's id, or a generated UUID.
    pub request_id: String,
    /// The request text (may be empty when a record is attached).
    pub text: String,
    /// The customer record, when one is attached.
    pub record: Option<BTreeMap<String, FeatureValue>>,
    /// The calling tenant.
    pub tenant: String,
    /// Output token limit requested.
    pub max_tokens: Option<u32>,
    /// Temperature requested.
    pub temperature: Option<f32>,
    /// Target forced by the caller.
    pub force_target: Option<String>,
}

impl TryFrom<RouteRequest> for RouteInput {
    type Error = RouterError;

    fn try_from(request: RouteRequest) -> Result<Self, Self::Error> {
        let record = match request.features {
            Some(features) if !features.fields.is_empty() => {
                if features.fields.len() > MAX_FEATURES {
                    return Err(RouterError::invalid(
                        "features",
                        format!("{} fields; at most {MAX_FEATURES}", features.fields.len()),
                    ));
                }
                if let Some(name) = features.fields.keys().find(|k| k.len() > MAX_NAME_BYTES) {
                    let shown: String = name.chars().take(32).collect();
                    return Err(RouterError::invalid(
                        "features",
                        format!("field name {shown:?}… is longer than {MAX_NAME_BYTES} bytes"),
                    ));
                }
                let mut record = BTreeMap::new();
                for (name, value) in features.fields {
                    let value = match value.kind {
                        None | Some(Kind::NullValue(_)) => FeatureValue::Null,
                        Some(Kind::NumberValue(n)) => FeatureValue::Number(n),
                        Some(Kind::StringValue(s)) => {
                            check_model_string(&format!("features.{name}"), &s)?;
                            FeatureValue::Text(s)
                        }
                        Some(Kind::BoolValue(b)) => FeatureValue::Bool(b),
                        Some(Kind::StructValue(_) | Kind::ListValue(_)) => {
                            return Err(RouterError::invalid(
                                format!("features.{name}"),
                                "nested objects and lists are not feature values",
                            ));
                        }
                    };
                    record.insert(name, value);
                }
                Some(record)
            }
            _ => None,
        };
        check_model_string("text", &request.text)?;
        if request.text.trim().is_empty() && record.is_none() {
            return Err(RouterError::invalid(
                "text",
                "empty request: send text, features, or both",
            ));
        }
        if let Some(t) = request.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(RouterError::invalid("temperature", format!("{t} is outside [0, 2]")));
        }
        if let Some(m) = request.max_tokens
            && !(1..=MAX_TOKENS_LIMIT).contains(&m)
        {
            return Err(RouterError::invalid(
                "max_tokens",
                format!("{m} is outside [1, {MAX_TOKENS_LIMIT}]"),
            ));
        }
        let request_id = if request.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.request_id
        };
        if request_id.len() > MAX_NAME_BYTES {
            return Err(RouterError::invalid(
                "request_id",
                format!("longer than {MAX_NAME_BYTES} bytes"),
            ));
        }
        if !request.tenant.is_empty()
            && let Err(reason) = crate::auth::check_tenant(&request.tenant)
        {
            return Err(RouterError::invalid("tenant", reason));
        }
        if request.force_target.len() > MAX_NAME_BYTES {
            return Err(RouterError::invalid(
                "force_target",
                format!("longer than {MAX_NAME_BYTES} bytes"),
            ));
        }
        Ok(Self {
            request_id,
            text: request.text,
            record,
            tenant: request.tenant,
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            force_target: Some(request.force_target).filter(|f| !f.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use prost_types::{Struct, Value};

    use super::*;

    fn request(text: &str) -> RouteRequest {
        RouteRequest {
            text: text.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn empty_request_is_refused_naming_text() {
        let err = RouteInput::try_from(request("  ")).unwrap_err();
        assert!(err.to_string().starts_with("text: empty request"), "{err}");
    }

    #[test]
    fn a_nul_character_in_text_or_a_feature_string_is_refused_naming_the_field() {
        let err = RouteInput::try_from(request("what is\0 my balance")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "text: contains a NUL character (U+0000), which the models cannot read"
        );
        let features = Struct {
            fields: [(
                "contract".to_owned(),
                Value {
                    kind: Some(Kind::StringValue("Month\0-to-month".to_owned())),
                },
            )]
            .into_iter()
            .collect(),
        };
        let err = RouteInput::try_from(RouteRequest {
            features: Some(features),
            ..request("")
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("features.contract: contains a NUL"),
            "{err}"
        );
    }

    #[test]
    fn request_id_is_generated_when_empty_and_kept_otherwise() {
        let generated = RouteInput::try_from(request("hi")).unwrap();
        assert_eq!(generated.request_id.len(), 36);
        let kept = RouteInput::try_from(RouteRequest {
            request_id: "abc".into(),
            ..request("hi")
        })
        .unwrap();
        assert_eq!(kept.request_id, "abc");
    }

    #[test]
    fn nested_feature_values_and_bad_options_are_refused() {
        let nested = Value {
            kind: Some(Kind::ListValue(Default::default())),
        };
        let features = Struct {
            fields: [("tenure".to_owned(), nested)].into_iter().collect(),
        };
        let err = RouteInput::try_from(RouteRequest {
            features: Some(features),
            ..request("")
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("features.tenure:"), "{err}");
        let err = RouteInput::try_from(RouteRequest {
            temperature: Some(f32::NAN),
            ..request("hi")
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("temperature:"), "{err}");
        let err = RouteInput::try_from(RouteRequest {
            max_tokens: Some(0),
            ..request("hi")
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("max_tokens:"), "{err}");
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value { kind: None }),
            any::<f64>().prop_map(|n| Value {
                kind: Some(Kind::NumberValue(n))
            }),
            ".{0,40}".prop_map(|s| Value {
                kind: Some(Kind::StringValue(s))
            }),
            any::<bool>().prop_map(|b| Value {
                kind: Some(Kind::BoolValue(b))
            }),
            Just(Value {
                kind: Some(Kind::ListValue(Default::default()))
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any request converts or is refused naming a field (never a panic), and what converts is within the
        /// bounds the rest of the gateway relies on.
        #[test]
        fn any_request_converts_within_bounds_or_is_refused_naming_a_field(
            text in ".{0,200}",
            tenant in ".{0,80}",
            request_id in ".{0,160}",
            force_target in ".{0,140}",
            temperature in proptest::option::of(proptest::prelude::any::<f32>()),
            max_tokens in proptest::option::of(proptest::prelude::any::<u32>()),
            fields in proptest::collection::btree_map(".{0,140}", value(), 0..80),
        ) {
            let request = RouteRequest {
                text,
                tenant,
                request_id,
                force_target,
                temperature,
                max_tokens,
                features: Some(Struct { fields: fields.into_iter().collect() }),
            };
            match RouteInput::try_from(request) {
                Ok(input) => {
                    proptest::prop_assert!(input.request_id.len() <= MAX_NAME_BYTES);
                    proptest::prop_assert!(input.tenant.is_empty() || crate::auth::check_tenant(&input.tenant).is_ok());
                    proptest::prop_assert!(input.record.as_ref().is_none_or(|r| r.len() <= MAX_FEATURES));
                    proptest::prop_assert!(input.temperature.is_none_or(|t| (0.0..=2.0).contains(&t)));
                    proptest::prop_assert!(!input.text.contains('\0'));
                    let nul_free = |v: &FeatureValue| !matches!(v, FeatureValue::Text(s) if s.contains('\0'));
                    proptest::prop_assert!(input.record.iter().flatten().all(|(_, v)| nul_free(v)));
                }
                Err(RouterError::InvalidArgument { field, .. }) => proptest::prop_assert!(!field.is_empty()),
                Err(other) => proptest::prop_assert!(false, "not an argument error: {other}"),
            }
        }
    }
}

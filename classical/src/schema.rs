//! The churn scorer's feature schema and the validation of customer records against it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A value of a customer record field as a client sent it (JSON-like).
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// Any JSON number.
    Number(f64),
    /// A JSON string.
    Text(String),
}

impl FeatureValue {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::Text(_) => "a string",
        }
    }
}

/// One schema entry, as written by the training pipeline (`switchyard.feature_schema`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeatureSpec {
    /// The field (and ONNX input) name: the CSV column name, lower case.
    pub name: String,
    /// Type and constraints.
    #[serde(flatten)]
    pub kind: FeatureKind,
}

/// What values a field accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeatureKind {
    /// One of a closed set of strings.
    String {
        /// The allowed values, exactly as in the training data.
        categories: Vec<String>,
        /// The typical customer's value (the training data's most frequent), for attributions.
        #[serde(default)]
        reference: Option<String>,
    },
    /// A finite number in a plausible range.
    Number {
        /// Smallest plausible value.
        min: f64,
        /// Largest plausible value.
        max: f64,
        /// Whether null (or a blank string, as the source data has it) is allowed.
        #[serde(default)]
        nullable: bool,
        /// The typical customer's value (the training data's median), for attributions.
        #[serde(default)]
        reference: Option<f64>,
    },
    /// A whole number in a plausible range.
    Integer {
        /// Smallest plausible value.
        min: f64,
        /// Largest plausible value.
        max: f64,
        /// Whether null is allowed.
        #[serde(default)]
        nullable: bool,
        /// The typical customer's value (the training data's median), for attributions.
        #[serde(default)]
        reference: Option<f64>,
    },
}

impl FeatureSpec {
    /// The typical customer's value of this field as a graph input, when the model file records one.
    pub(crate) fn reference_input(&self) -> Option<InputValue> {
        match &self.kind {
            FeatureKind::String { reference, .. } => reference.clone().map(InputValue::Text),
            FeatureKind::Number { reference, .. } | FeatureKind::Integer { reference, .. } => {
                reference.map(|r| InputValue::Number(r as f32))
            }
        }
    }
}

/// Why one field of a record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name.
    pub field: String,
    /// What is wrong, in words a caller can act on.
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// `field: reason; field: reason`, for error messages.
    pub fn join(errors: &[FieldError]) -> String {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A validated input value, ready to become a `[1, 1]` tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InputValue {
    Text(String),
    /// `NaN` stands for a null the graph imputes.
    Number(f32),
}

/// A record that passed validation: one value per schema entry, in the graph's input order.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRecord(pub(crate) Vec<InputValue>);

/// The ordered list of fields the scorer takes.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSchema {
    features: Vec<FeatureSpec>,
}

impl FeatureSchema {
    pub(crate) fn new(features: Vec<FeatureSpec>) -> Self {
        Self { features }
    }

    /// The fields, in the graph's input order.
    pub fn features(&self) -> &[FeatureSpec] {
        &self.features
    }

    /// The typical customer (every field at the value the model file records as typical), when the file records
    /// one for every field: a valid record for warming a freshly loaded scorer up.
    pub fn typical_record(&self) -> Option<ValidRecord> {
        self.features
            .iter()
            .map(FeatureSpec::reference_input)
            .collect::<Option<Vec<_>>>()
            .map(ValidRecord)
    }

    /// Checks every field of `record`; on failure lists every bad field (unknown, missing, wrong type,
    /// not finite, out of range, not an allowed category), in schema order then unknown fields.
    pub fn validate(&self, record: &BTreeMap<String, FeatureValue>) -> Result<ValidRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut values = Vec::with_capacity(self.features.len());
        for spec in &self.features {
            match record.get(&spec.name) {
                None => errors.push(FieldError::new(&spec.name, "missing")),
                Some(value) => match validate_value(spec, value) {
                    Ok(v) => values.push(v),
                    Err(reason) => errors.push(FieldError::new(&spec.name, reason)),
                },
            }
        }
        for name in record.keys() {
            if !self.features.iter().any(|s| &s.name == name) {
                errors.push(FieldError::new(name, "unknown feature"));
            }
        }
        if errors.is_empty() {
            Ok(ValidRecord(values))
        } else {
            Err(errors)
        }
    }
}

fn validate_value(spec: &FeatureSpec, value: &FeatureValue) -> Result<InputValue, String> {
    match (&spec.kind, value) {
        (FeatureKind::String { categories, .. }, FeatureValue::Text(text)) => {
            if categories.iter().any(|c| c == text) {
                Ok(InputValue::Text(text.clone()))
            } else {
                // The value itself is the caller's data: it stays out of the message (which reaches spans).
                Err(format!("not one of {categories:?}"))
            }
        }
        (FeatureKind::String { .. }, other) => Err(format!("expected a string, got {}", other.type_name())),
        (FeatureKind::Number { min, max, nullable, .. } | FeatureKind::Integer { min, max, nullable, .. }, value) => {
            let integer = matches!(spec.kind, FeatureKind::Integer { .. });
            let expected = if integer { "an integer" } else { "a number" };
            match value {
                FeatureValue::Null => null_or(*nullable),
                // The source data leaves blank numbers as empty strings (e.g. totalcharges at tenure 0).
                FeatureValue::Text(text) if text.trim().is_empty() => null_or(*nullable),
                FeatureValue::Number(n) if !n.is_finite() => Err("not a finite number".to_owned()),
                FeatureValue::Number(n) if integer && n.fract() != 0.0 => Err("not an integer".to_owned()),
                FeatureValue::Number(n) if *n < *min || *n > *max => {
                    Err(format!("outside the plausible range [{min}, {max}]"))
                }
                FeatureValue::Number(n) => Ok(InputValue::Number(*n as f32)),
                other => Err(format!("expected {expected}, got {}", other.type_name())),
            }
        }
    }
}

fn null_or(nullable: bool) -> Result<InputValue, String> {
    if nullable {
        Ok(InputValue::Number(f32::NAN))
    } else {
        Err("must not be null".to_owned())
    }
}

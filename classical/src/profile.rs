//! Reference profiles for drift monitoring: what a model's inputs and outputs looked like at training time, as bin
//! counts, read from `reference_profile.json` beside the model (written by
//! `classical/training/switchyard_training/reference_profile.py`, whose binning this module repeats exactly).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClassicalError;
use crate::schema::{FeatureKind, FeatureSchema, InputValue, ValidRecord};

/// The profile's file name, in the model's directory.
pub const PROFILE_FILE: &str = "reference_profile.json";

/// A model's reference distributions, one per signal.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceProfile {
    /// The model the profile describes.
    pub model: String,
    /// Its version.
    pub version: String,
    /// What data the reference counts come from.
    pub source: String,
    /// The signals, in the file's order.
    pub signals: Vec<Signal>,
}

/// One watched quantity: an input field, or an output such as the prediction or the decided label group.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Its name (a schema field's name, `prediction`, `label_group`, `confidence`).
    pub name: String,
    /// How values map to bins.
    pub bins: Bins,
    /// The reference count in each bin.
    pub reference: Vec<u64>,
}

/// How a signal's values map to bins.
#[derive(Debug, Clone, PartialEq)]
pub enum Bins {
    /// Bin `i` holds the values with exactly `i` edges below them: (-inf, e0], (e0, e1], ..., (e_last, inf);
    /// when `nullable`, a last bin holds nulls (NaN).
    Numeric {
        /// Strictly increasing, finite, compared as `f32` (as training wrote them).
        edges: Vec<f32>,
        /// Whether nulls have a bin of their own.
        nullable: bool,
    },
    /// One bin per category, in order.
    Categorical {
        /// The categories.
        categories: Vec<String>,
    },
}

/// One value to bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed<'a> {
    /// A number; NaN stands for null.
    Number(f32),
    /// A category.
    Text(&'a str),
}

impl Bins {
    /// How many bins.
    pub fn len(&self) -> usize {
        match self {
            Self::Numeric { edges, nullable } => edges.len() + 1 + usize::from(*nullable),
            Self::Categorical { categories } => categories.len(),
        }
    }

    /// Whether there are no bins (never, for a loaded profile).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bin of `value`, or `None` when it has none (a category not in the list, a null where nulls have no
    /// bin, a text for a number or the reverse).
    pub fn bin(&self, value: Observed<'_>) -> Option<usize> {
        match (self, value) {
            (Self::Numeric { edges, nullable }, Observed::Number(v)) if v.is_nan() => {
                nullable.then_some(edges.len() + 1)
            }
            (Self::Numeric { edges, .. }, Observed::Number(v)) => Some(edges.partition_point(|e| *e < v)),
            (Self::Categorical { categories }, Observed::Text(t)) => categories.iter().position(|c| c == t),
            _ => None,
        }
    }

    /// Each bin in words (`<= 2`, `(2, 6]`, `> 69`, `null`, or the category), for tables.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Self::Categorical { categories } => categories.clone(),
            Self::Numeric { edges, nullable } => {
                let mut out = Vec::with_capacity(self.len());
                for (i, edge) in edges.iter().enumerate() {
                    out.push(match i {
                        0 => format!("<= {edge}"),
                        _ => format!("({}, {edge}]", edges[i - 1]),
                    });
                }
                out.push(edges.last().map_or_else(|| "any".to_owned(), |e| format!("> {e}")));
                if *nullable {
                    out.push("null".to_owned());
                }
                out
            }
        }
    }
}

impl ValidRecord {
    /// The record's values in schema order, for binning.
    pub fn observed(&self) -> impl Iterator<Item = Observed<'_>> {
        self.0.iter().map(|value| match value {
            InputValue::Text(text) => Observed::Text(text),
            InputValue::Number(n) => Observed::Number(*n),
        })
    }
}

impl ReferenceProfile {
    /// Where the profile of the model at `model_path` lives.
    pub fn beside(model_path: &Path) -> PathBuf {
        model_path.with_file_name(PROFILE_FILE)
    }

    /// Reads and checks a profile: every signal has as many reference counts as bins, numeric edges are finite
    /// and strictly increasing, names are unique and some count is not zero.
    pub fn load(path: &Path) -> Result<Self, ClassicalError> {
        let bad = |reason: String| ClassicalError::Profile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let raw: RawProfile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut signals: Vec<Signal> = Vec::with_capacity(raw.signals.len());
        for signal in raw.signals {
            let signal = signal.checked().map_err(&bad)?;
            if signals.iter().any(|s| s.name == signal.name) {
                return Err(bad(format!("signal {:?} appears twice", signal.name)));
            }
            signals.push(signal);
        }
        Ok(Self {
            model: raw.model,
            version: raw.version,
            source: raw.source,
            signals,
        })
    }

    /// The signal named `name` and its position.
    pub fn signal(&self, name: &str) -> Option<(usize, &Signal)> {
        self.signals.iter().enumerate().find(|(_, s)| s.name == name)
    }

    /// For each field of `schema`, in order, the position of its signal; fails unless every field has a signal
    /// of the matching kind (the same categories for a string field), so a record's values always bin.
    pub fn fields_of(&self, schema: &FeatureSchema) -> Result<Vec<usize>, String> {
        schema
            .features()
            .iter()
            .map(|spec| {
                let (index, signal) = self
                    .signal(&spec.name)
                    .ok_or_else(|| format!("no signal for the field {:?}", spec.name))?;
                let fits = match (&spec.kind, &signal.bins) {
                    (FeatureKind::String { categories, .. }, Bins::Categorical { categories: binned }) => {
                        categories == binned
                    }
                    (
                        FeatureKind::Number { nullable, .. } | FeatureKind::Integer { nullable, .. },
                        Bins::Numeric { nullable: binned, .. },
                    ) => !nullable || *binned,
                    _ => false,
                };
                if fits {
                    Ok(index)
                } else {
                    Err(format!("the signal {:?} does not bin the schema's values", spec.name))
                }
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct RawProfile {
    model: String,
    version: String,
    source: String,
    signals: Vec<RawSignal>,
}

#[derive(Deserialize)]
struct RawSignal {
    name: String,
    kind: String,
    #[serde(default)]
    edges: Option<Vec<f64>>,
    #[serde(default)]
    nullable: Option<bool>,
    #[serde(default)]
    categories: Option<Vec<String>>,
    reference: Vec<u64>,
}

impl RawSignal {
    fn checked(self) -> Result<Signal, String> {
        let name = self.name;
        let bins = match (self.kind.as_str(), self.edges, self.categories) {
            ("numeric", Some(edges), None) => {
                // Training wrote float32 values as JSON numbers: narrowing gives back the same f32.
                let edges: Vec<f32> = edges.iter().map(|e| *e as f32).collect();
                if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("signal {name:?}: edges must be finite and strictly increasing"));
                }
                Bins::Numeric {
                    edges,
                    nullable: self.nullable.unwrap_or(false),
                }
            }
            ("categorical", None, Some(categories)) if !categories.is_empty() => Bins::Categorical { categories },
            (kind, _, _) => {
                return Err(format!(
                    "signal {name:?}: kind {kind:?} needs `edges` (numeric) or a non-empty `categories` (categorical), not both"
                ));
            }
        };
        if self.reference.len() != bins.len() {
            return Err(format!(
                "signal {name:?}: {} reference counts for {} bins",
                self.reference.len(),
                bins.len()
            ));
        }
        if self.reference.iter().all(|c| *c == 0) {
            return Err(format!("signal {name:?}: every reference count is zero"));
        }
        Ok(Signal {
            name,
            bins,
            reference: self.reference,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Bins, Observed};

    #[test]
    fn numbers_fall_in_the_bin_counting_the_edges_below_them() {
        let bins = Bins::Numeric {
            edges: vec![2.0, 6.0],
            nullable: true,
        };
        let bin = |v: f32| bins.bin(Observed::Number(v));
        assert_eq!(bin(-1.0), Some(0));
        assert_eq!(bin(2.0), Some(0), "an edge belongs to the bin below it");
        assert_eq!(bin(2.5), Some(1));
        assert_eq!(bin(6.0), Some(1));
        assert_eq!(bin(7.0), Some(2));
        assert_eq!(bin(f32::NAN), Some(3), "null has the last bin");
        assert_eq!(bins.len(), 4);
        assert_eq!(bins.describe(), ["<= 2", "(2, 6]", "> 6", "null"]);
        assert_eq!(bins.bin(Observed::Text("2")), None);
    }

    #[test]
    fn a_null_without_a_bin_and_an_unknown_category_have_none() {
        let numeric = Bins::Numeric {
            edges: vec![0.5],
            nullable: false,
        };
        assert_eq!(numeric.bin(Observed::Number(f32::NAN)), None);
        let categorical = Bins::Categorical {
            categories: vec!["No".into(), "Yes".into()],
        };
        assert_eq!(categorical.bin(Observed::Text("Yes")), Some(1));
        assert_eq!(categorical.bin(Observed::Text("Maybe")), None);
        assert_eq!(categorical.bin(Observed::Number(1.0)), None);
    }
}

//! The versioned datasets (`evals/datasets/manifest.toml`): each file checked by sha256 and row count on load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use classical::schema::{FeatureKind, FeatureSchema, FeatureValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::EvalError;

/// One dataset as the manifest describes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// Its name in reports.
    pub name: String,
    /// The file, from the repository root.
    pub path: PathBuf,
    /// Which part of the file is used.
    pub split: String,
    /// Where it comes from.
    pub source: String,
    /// Its licence.
    pub licence: String,
    /// The file's sha256.
    pub sha256: String,
    /// Rows used.
    pub rows: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    dataset: Vec<DatasetEntry>,
}

/// The manifest, with the repository root its paths are relative to.
#[derive(Debug)]
pub struct Datasets {
    root: PathBuf,
    entries: BTreeMap<String, DatasetEntry>,
}

/// One labelled request text.
#[derive(Debug, Clone)]
pub struct LabelledText {
    /// The text.
    pub text: String,
    /// The true label (`oos` for out-of-scope).
    pub label: String,
}

/// A request about an attached customer record, with its label and how it is phrased.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordPhrasing {
    /// The request text (sent with a record).
    pub text: String,
    /// `churn_score` or `churn_explain`.
    pub label: String,
    /// `held_out_template`, `held_out_opener`, `independent` or `independent_v2`.
    pub kind: String,
}

/// One customer with the outcome.
#[derive(Debug, Clone)]
pub struct LabelledRecord {
    /// The record, as the gateway would receive it.
    pub record: BTreeMap<String, FeatureValue>,
    /// Whether the customer churned.
    pub churned: bool,
}

impl Datasets {
    /// Reads `root/evals/datasets/manifest.toml`.
    pub fn open(root: &Path) -> Result<Self, EvalError> {
        let path = root.join("evals/datasets/manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io(&path, &e))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| EvalError::Dataset {
            name: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            root: root.to_path_buf(),
            entries: manifest.dataset.into_iter().map(|d| (d.name.clone(), d)).collect(),
        })
    }

    /// The manifest entry of `name`.
    pub fn entry(&self, name: &str) -> Result<&DatasetEntry, EvalError> {
        self.entries.get(name).ok_or_else(|| EvalError::Dataset {
            name: name.to_owned(),
            reason: "not in evals/datasets/manifest.toml".to_owned(),
        })
    }

    /// The bytes of `name`, after checking their sha256.
    fn read(&self, name: &str) -> Result<(Vec<u8>, &DatasetEntry), EvalError> {
        let entry = self.entry(name)?;
        let path = self.root.join(&entry.path);
        let bytes = std::fs::read(&path).map_err(|e| EvalError::io(&path, &e))?;
        let digest = hex(&Sha256::digest(&bytes));
        if digest != entry.sha256 {
            return Err(EvalError::Dataset {
                name: name.to_owned(),
                reason: format!(
                    "sha256 of {} is {digest}, the manifest says {}",
                    path.display(),
                    entry.sha256
                ),
            });
        }
        Ok((bytes, entry))
    }

    /// CLINC150 validation: in-scope texts (`val`) then out-of-scope ones (`oos_val`, label `oos`).
    pub fn clinc150_val(&self) -> Result<Vec<LabelledText>, EvalError> {
        let (bytes, entry) = self.read("clinc150-val")?;
        let parsed: BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_slice(&bytes).map_err(|e| EvalError::Dataset {
                name: entry.name.clone(),
                reason: e.to_string(),
            })?;
        let mut rows = Vec::new();
        for split in ["val", "oos_val"] {
            let pairs = parsed.get(split).ok_or_else(|| EvalError::Dataset {
                name: entry.name.clone(),
                reason: format!("no {split:?} split"),
            })?;
            rows.extend(pairs.iter().map(|(text, label)| LabelledText {
                text: text.clone(),
                label: label.clone(),
            }));
        }
        check_rows(entry, rows.len())?;
        Ok(rows)
    }

    /// The record requests never trained on, each with its kind of phrasing.
    pub fn record_phrasings(&self) -> Result<Vec<RecordPhrasing>, EvalError> {
        let (bytes, entry) = self.read("record-phrasings")?;
        let text = String::from_utf8(bytes).map_err(|e| EvalError::Dataset {
            name: entry.name.clone(),
            reason: e.to_string(),
        })?;
        let rows = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| EvalError::Dataset {
                    name: entry.name.clone(),
                    reason: format!("line {}: {e}", i + 1),
                })
            })
            .collect::<Result<Vec<RecordPhrasing>, _>>()?;
        check_rows(entry, rows.len())?;
        Ok(rows)
    }

    /// The Telco test split as records the scorer's `schema` accepts: its string fields as text, the others as
    /// numbers (a blank as null, as the gateway receives them).
    pub fn telco_test(&self, schema: &FeatureSchema) -> Result<Vec<LabelledRecord>, EvalError> {
        let (bytes, entry) = self.read("telco-test")?;
        let bad = |reason: String| EvalError::Dataset {
            name: entry.name.clone(),
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| bad("empty file".into()))?
            .split(',')
            .collect();
        let kinds: BTreeMap<&str, bool> = schema
            .features()
            .iter()
            .map(|f| (f.name.as_str(), matches!(f.kind, FeatureKind::String { .. })))
            .collect();
        let mut rows = Vec::new();
        for (number, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            if line.contains('"') {
                return Err(bad(format!("line {}: quoted fields are not expected", number + 2)));
            }
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != header.len() {
                return Err(bad(format!(
                    "line {}: {} cells, {} columns",
                    number + 2,
                    cells.len(),
                    header.len()
                )));
            }
            let mut record = BTreeMap::new();
            let mut churned = None;
            for (&column, &cell) in header.iter().zip(&cells) {
                match (column, kinds.get(column)) {
                    ("churn", _) => churned = Some(cell == "Yes"),
                    (_, Some(true)) => {
                        record.insert(column.to_owned(), FeatureValue::Text(cell.to_owned()));
                    }
                    (_, Some(false)) => {
                        let value = match cell.trim() {
                            "" => FeatureValue::Null,
                            number => FeatureValue::Number(
                                number.parse().map_err(|e| bad(format!("{column} {number:?}: {e}")))?,
                            ),
                        };
                        record.insert(column.to_owned(), value);
                    }
                    // Identifiers and anything the model does not read.
                    (_, None) => {}
                }
            }
            let churned = churned.ok_or_else(|| bad("no churn column".into()))?;
            rows.push(LabelledRecord { record, churned });
        }
        check_rows(entry, rows.len())?;
        Ok(rows)
    }
}

fn check_rows(entry: &DatasetEntry, rows: usize) -> Result<(), EvalError> {
    if rows == entry.rows {
        Ok(())
    } else {
        Err(EvalError::Dataset {
            name: entry.name.clone(),
            reason: format!("{rows} rows, the manifest says {}", entry.rows),
        })
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, for reports.
pub fn file_sha256(path: &Path) -> Result<String, EvalError> {
    let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, &e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

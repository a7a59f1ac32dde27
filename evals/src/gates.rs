//! Gates (`evals/gates.toml`): named limits on measured numbers. Every gate is checked; the failed ones are listed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::EvalError;

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `section.key` in the gates file, e.g. `scorer.min_roc_auc`.
    pub gate: String,
    /// The measured value.
    pub measured: f64,
    /// The limit.
    pub limit: f64,
    /// Whether the measurement is within the limit.
    pub passed: bool,
}

/// Reads the gates file: `[section]` tables of `min_<measure>` / `max_<measure>` numbers.
pub fn load(path: &Path) -> Result<BTreeMap<String, f64>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, &e))?;
    let bad = |reason: String| EvalError::Gates {
        path: path.to_path_buf(),
        reason,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut gates = BTreeMap::new();
    for (section, entries) in table {
        let entries = entries
            .as_table()
            .ok_or_else(|| bad(format!("{section}: expected a table of limits")))?;
        for (key, value) in entries {
            let limit = value
                .as_float()
                .or_else(|| value.as_integer().map(|i| i as f64))
                .ok_or_else(|| bad(format!("{section}.{key}: expected a number")))?;
            if !(key.starts_with("min_") || key.starts_with("max_")) {
                return Err(bad(format!(
                    "{section}.{key}: a gate is min_<measure> or max_<measure>"
                )));
            }
            gates.insert(format!("{section}.{key}"), limit);
        }
    }
    Ok(gates)
}

/// Checks every gate against `measured` (`section.measure` → value); a gate whose measure was not measured is an
/// error (a typo must not pass silently).
pub fn check(gates: &BTreeMap<String, f64>, measured: &BTreeMap<String, f64>) -> Result<Vec<Verdict>, EvalError> {
    gates
        .iter()
        .map(|(gate, &limit)| {
            let (section, key) = gate.split_once('.').unwrap_or(("", gate));
            let (minimum, measure) = match key.split_once('_') {
                Some(("min", measure)) => (true, measure),
                Some((_, measure)) => (false, measure),
                None => (false, key),
            };
            let name = format!("{section}.{measure}");
            let value = *measured.get(&name).ok_or_else(|| EvalError::Gates {
                path: "gates".into(),
                reason: format!("{gate}: nothing measures {name}"),
            })?;
            let passed = if minimum { value >= limit } else { value <= limit };
            Ok(Verdict {
                gate: gate.clone(),
                measured: value,
                limit,
                passed,
            })
        })
        .collect()
}

/// A Markdown table of verdicts.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut out = String::from("| gate | measured | limit | |\n|---|---|---|---|\n");
    for v in verdicts {
        out.push_str(&format!(
            "| {} | {:.6} | {} | {} |\n",
            v.gate,
            v.measured,
            v.limit,
            if v.passed { "pass" } else { "FAIL" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn minimums_and_maximums_pass_at_the_limit_and_fail_beyond_it() {
        let gates = BTreeMap::from([
            ("scorer.min_roc_auc".to_owned(), 0.87),
            ("scorer.max_brier".to_owned(), 0.12),
        ]);
        let at_limit = BTreeMap::from([("scorer.roc_auc".to_owned(), 0.87), ("scorer.brier".to_owned(), 0.12)]);
        assert!(check(&gates, &at_limit).unwrap().iter().all(|v| v.passed));
        let beyond = BTreeMap::from([("scorer.roc_auc".to_owned(), 0.86), ("scorer.brier".to_owned(), 0.13)]);
        let verdicts = check(&gates, &beyond).unwrap();
        assert!(verdicts.iter().all(|v| !v.passed), "{verdicts:?}");
        assert!(table(&verdicts).contains("| scorer.min_roc_auc | 0.860000 | 0.87 | FAIL |"));
    }

    #[test]
    fn a_gate_on_something_not_measured_is_an_error() {
        let gates = BTreeMap::from([("scorer.min_rocauc".to_owned(), 0.5)]);
        let error = check(&gates, &BTreeMap::new()).unwrap_err();
        assert!(error.to_string().contains("nothing measures scorer.rocauc"), "{error}");
    }
}

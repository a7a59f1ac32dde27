//! The `[drift]` section: validated into [`DriftConfig`].

use std::path::Path;
use std::time::Duration;

use super::raw::RawDrift;
use super::{ConfigError, error};

/// The most slices a window may have (each holds one counter per bin of every signal).
const MAX_SLICES: usize = 1000;

/// How live inputs are compared with the models' reference profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftConfig {
    /// Whether drift is watched at all.
    pub enabled: bool,
    /// The span of live traffic compared with the reference.
    pub window: Duration,
    /// Slices of the window: the oldest is dropped every `window / slices`.
    pub slices: usize,
    /// How often the window is compared (gauges updated, crossings logged).
    pub evaluate_every: Duration,
    /// Requests a model must have seen in the window before it is judged.
    pub min_samples: u64,
    /// Jensen-Shannon distance (natural log) at or above which a signal has drifted.
    pub js_threshold: f64,
    /// Population stability index at or above which a signal has drifted.
    pub psi_threshold: f64,
}

impl DriftConfig {
    /// How long one slice of the window lasts.
    pub fn slice(&self) -> Duration {
        self.window / u32::try_from(self.slices).unwrap_or(u32::MAX)
    }
}

pub(super) fn drift(path: &Path, raw: &RawDrift) -> Result<DriftConfig, ConfigError> {
    let duration = |key: &str, value: &str| super::positive_duration(path, key, value);
    let window = duration("drift.window", &raw.window)?;
    let evaluate_every = duration("drift.evaluate_every", &raw.evaluate_every)?;
    if !(1..=MAX_SLICES).contains(&raw.slices) {
        return Err(error(
            path,
            "drift.slices",
            format!("{} is outside [1, {MAX_SLICES}]", raw.slices),
        ));
    }
    if raw.min_samples == 0 {
        return Err(error(path, "drift.min_samples", "must be at least 1".to_owned()));
    }
    for (key, value) in [
        ("drift.js_threshold", raw.js_threshold),
        ("drift.psi_threshold", raw.psi_threshold),
    ] {
        if !(value.is_finite() && value > 0.0) {
            return Err(error(path, key, format!("{value} is not a positive number")));
        }
    }
    if raw.js_threshold > 1.0 {
        return Err(error(
            path,
            "drift.js_threshold",
            format!("{} is above 1, the largest Jensen-Shannon distance", raw.js_threshold),
        ));
    }
    Ok(DriftConfig {
        enabled: raw.enabled,
        window,
        slices: raw.slices,
        evaluate_every,
        min_samples: raw.min_samples,
        js_threshold: raw.js_threshold,
        psi_threshold: raw.psi_threshold,
    })
}

//! What a comparison of the window with the references found: per model and signal, the distances, the verdict
//! and the table of bins (served as JSON on the admin port's `/drift`).

use classical::profile::{ReferenceProfile, Signal};
use serde::Serialize;

use super::stats;
use crate::config::DriftConfig;

/// Every watched model, compared now.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// The window's length in seconds.
    pub window_seconds: f64,
    /// Requests a model needs in the window to be judged.
    pub min_samples: u64,
    /// Drift at a Jensen-Shannon distance at or above this...
    pub js_threshold: f64,
    /// ...or a PSI at or above this.
    pub psi_threshold: f64,
    /// One entry per watched model.
    pub models: Vec<ModelReport>,
}

/// One model's signals.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// The model's name.
    pub model: String,
    /// Its version.
    pub version: String,
    /// Where the reference counts come from.
    pub reference_source: String,
    /// Requests counted in the window.
    pub samples: u64,
    /// Whether `samples` reached `min_samples` (otherwise no signal is called drifted).
    pub judged: bool,
    /// The signals that drifted, by name.
    pub drifted: Vec<String>,
    /// Every signal.
    pub signals: Vec<SignalReport>,
}

/// One signal, compared.
#[derive(Debug, Clone, Serialize)]
pub struct SignalReport {
    /// The signal's name.
    pub name: String,
    /// Jensen-Shannon distance (natural log); `None` before any request.
    pub js_distance: Option<f64>,
    /// Population stability index; `None` before any request.
    pub psi: Option<f64>,
    /// Judged and at or above a threshold.
    pub drifted: bool,
    /// The bins, reference and live.
    pub bins: Vec<BinRow>,
}

/// One bin of a signal.
#[derive(Debug, Clone, Serialize)]
pub struct BinRow {
    /// The bin in words (`(2, 6]`, `null`, a category).
    pub bin: String,
    /// The reference count.
    pub reference: u64,
    /// The count in the window.
    pub current: u64,
    /// The reference share.
    pub reference_share: f64,
    /// The share in the window (0 when empty).
    pub current_share: f64,
}

impl DriftReport {
    /// A report with no model, before the first evaluation.
    pub fn empty(config: &DriftConfig) -> Self {
        Self::new(config, Vec::new())
    }

    pub(super) fn new(config: &DriftConfig, models: Vec<ModelReport>) -> Self {
        Self {
            window_seconds: config.window.as_secs_f64(),
            min_samples: config.min_samples,
            js_threshold: config.js_threshold,
            psi_threshold: config.psi_threshold,
            models,
        }
    }

    /// Whether `model`'s `signal` was called drifted.
    pub fn drifted(&self, model: &str, signal: &str) -> bool {
        self.models
            .iter()
            .filter(|m| m.model == model)
            .flat_map(|m| &m.signals)
            .any(|s| s.name == signal && s.drifted)
    }
}

impl ModelReport {
    pub(super) fn new(profile: &ReferenceProfile, samples: u64, judged: bool, signals: Vec<SignalReport>) -> Self {
        Self {
            model: profile.model.clone(),
            version: profile.version.clone(),
            reference_source: profile.source.clone(),
            samples,
            judged,
            drifted: signals.iter().filter(|s| s.drifted).map(|s| s.name.clone()).collect(),
            signals,
        }
    }
}

impl SignalReport {
    pub(super) fn compare(signal: &Signal, current: &[u64], judged: bool, config: &DriftConfig) -> Self {
        let js_distance = stats::js_distance(&signal.reference, current);
        let psi = stats::psi(&signal.reference, current);
        let crossed =
            js_distance.is_some_and(|d| d >= config.js_threshold) || psi.is_some_and(|p| p >= config.psi_threshold);
        let share = |count: u64, total: u64| if total == 0 { 0.0 } else { count as f64 / total as f64 };
        let (reference_total, current_total) = (signal.reference.iter().sum(), current.iter().sum());
        let bins = signal
            .bins
            .describe()
            .into_iter()
            .zip(signal.reference.iter().zip(current))
            .map(|(bin, (&reference, &current))| BinRow {
                bin,
                reference,
                current,
                reference_share: share(reference, reference_total),
                current_share: share(current, current_total),
            })
            .collect();
        Self {
            name: signal.name.clone(),
            js_distance,
            psi,
            drifted: judged && crossed,
            bins,
        }
    }
}

//! Input drift monitoring: live requests counted into the bins of each model's reference profile over a sliding
//! window, compared with the reference by Jensen-Shannon distance and PSI.
//!
//! The request path only increments counters ([`DriftMonitor::observe_classification`],
//! [`DriftMonitor::observe_scored`]); the timers of [`run`] rotate the window and compare, keeping the latest
//! [`DriftReport`] for the gauges and logging each signal that crosses a threshold (and each that comes back).

mod report;
mod stats;
mod window;

pub use report::{BinRow, DriftReport, ModelReport, SignalReport};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use classical::ClassicalError;
use classical::profile::{Bins, Observed, ReferenceProfile};
use classical::schema::{FeatureSchema, ValidRecord};

use crate::config::DriftConfig;
use window::SlidingCounts;

/// One model's reference profile and its live counts: every signal's bins side by side, then one counter for
/// the requests seen.
struct Watched {
    profile: ReferenceProfile,
    /// Where each signal's bins start in the counters.
    offsets: Vec<usize>,
    counts: SlidingCounts,
}

impl Watched {
    fn new(profile: ReferenceProfile, slices: usize) -> Self {
        let mut offsets = Vec::with_capacity(profile.signals.len());
        let mut width = 0;
        for signal in &profile.signals {
            offsets.push(width);
            width += signal.bins.len();
        }
        Self {
            counts: SlidingCounts::new(slices, width + 1),
            offsets,
            profile,
        }
    }

    fn samples_index(&self) -> usize {
        self.offsets
            .last()
            .zip(self.profile.signals.last())
            .map_or(0, |(o, s)| o + s.bins.len())
    }

    /// Counts one request: a bin per signal (a signal without a bin for its value is skipped).
    fn add(&self, bins: impl IntoIterator<Item = (usize, Option<usize>)>) {
        for (signal, bin) in bins {
            if let (Some(offset), Some(bin)) = (self.offsets.get(signal), bin) {
                self.counts.add(offset + bin);
            }
        }
        self.counts.add(self.samples_index());
    }

    fn report(&self, config: &DriftConfig) -> ModelReport {
        let totals = self.counts.totals();
        let samples = totals.get(self.samples_index()).copied().unwrap_or(0);
        let judged = samples >= config.min_samples;
        let signals = self
            .profile
            .signals
            .iter()
            .zip(&self.offsets)
            .map(|(signal, &offset)| {
                let current = &totals[offset..offset + signal.bins.len()];
                SignalReport::compare(signal, current, judged, config)
            })
            .collect();
        ModelReport::new(&self.profile, samples, judged, signals)
    }
}

/// The scorer's profile, with the signal of each schema field (in schema order) and of the prediction.
struct ScorerWatch {
    watched: Watched,
    fields: Vec<usize>,
    prediction: Option<usize>,
}

/// The classifier's profile, with its two signals.
struct ClassifierWatch {
    watched: Watched,
    group: usize,
    confidence: usize,
}

/// A scored record's bins, computed before the record is handed to the scorer.
pub struct RecordBins(Vec<(usize, Option<usize>)>);

/// Drift monitoring for the scorer and the classifier (either may be unwatched: no profile, or monitoring off).
pub struct DriftMonitor {
    config: DriftConfig,
    scorer: Option<ScorerWatch>,
    classifier: Option<ClassifierWatch>,
    latest: ArcSwap<DriftReport>,
}

impl DriftMonitor {
    /// Loads the profiles beside the two models. A model without a profile file is not watched (logged); a
    /// profile that cannot be read, or does not fit its model, is an error.
    pub fn load(
        config: &DriftConfig,
        scorer: (&Path, &FeatureSchema),
        classifier: &Path,
    ) -> Result<Self, ClassicalError> {
        let mut monitor = Self {
            config: config.clone(),
            scorer: None,
            classifier: None,
            latest: ArcSwap::from_pointee(DriftReport::empty(config)),
        };
        if !config.enabled {
            return Ok(monitor);
        }
        if let Some((path, profile)) = profile_beside(scorer.0)? {
            let fields = profile.fields_of(scorer.1).map_err(|reason| fail(&path, reason))?;
            let prediction = profile.signal("prediction").map(|(i, _)| i);
            monitor.scorer = Some(ScorerWatch {
                watched: Watched::new(profile, config.slices),
                fields,
                prediction,
            });
        }
        if let Some((path, profile)) = profile_beside(classifier)? {
            let group = match profile.signal("label_group") {
                Some((i, s)) if matches!(s.bins, Bins::Categorical { .. }) => i,
                _ => return Err(fail(&path, "no categorical signal `label_group`".to_owned())),
            };
            let confidence = match profile.signal("confidence") {
                Some((i, s)) if matches!(s.bins, Bins::Numeric { .. }) => i,
                _ => return Err(fail(&path, "no numeric signal `confidence`".to_owned())),
            };
            monitor.classifier = Some(ClassifierWatch {
                watched: Watched::new(profile, config.slices),
                group,
                confidence,
            });
        }
        Ok(monitor)
    }

    /// Counts a classification: the linear model's decided label group and top probability (what its profile
    /// describes).
    pub fn observe_classification(&self, group: &str, confidence: f32) {
        if let Some(watch) = &self.classifier {
            let signals = &watch.watched.profile.signals;
            let bin = |i: usize, value: Observed<'_>| signals.get(i).and_then(|s| s.bins.bin(value));
            watch.watched.add([
                (watch.group, bin(watch.group, Observed::Text(group))),
                (watch.confidence, bin(watch.confidence, Observed::Number(confidence))),
            ]);
        }
    }

    /// The bins of a valid record, when the scorer is watched (cheap: one lookup per field).
    pub fn record_bins(&self, record: &ValidRecord) -> Option<RecordBins> {
        let watch = self.scorer.as_ref()?;
        let signals = &watch.watched.profile.signals;
        Some(RecordBins(
            watch
                .fields
                .iter()
                .zip(record.observed())
                .map(|(&i, value)| (i, signals.get(i).and_then(|s| s.bins.bin(value))))
                .collect(),
        ))
    }

    /// Counts a scored record: its fields' bins and the predicted probability.
    pub fn observe_scored(&self, bins: RecordBins, probability: f32) {
        if let Some(watch) = &self.scorer {
            let mut bins = bins.0;
            if let Some(i) = watch.prediction {
                let signal = watch.watched.profile.signals.get(i);
                bins.push((i, signal.and_then(|s| s.bins.bin(Observed::Number(probability)))));
            }
            watch.watched.add(bins);
        }
    }

    /// Compares the window with the references now.
    pub fn report(&self) -> DriftReport {
        let models = [
            self.scorer.as_ref().map(|w| &w.watched),
            self.classifier.as_ref().map(|w| &w.watched),
        ]
        .into_iter()
        .flatten()
        .map(|watched| watched.report(&self.config))
        .collect();
        DriftReport::new(&self.config, models)
    }

    /// The report of the last evaluation (for the gauges).
    pub fn latest(&self) -> Arc<DriftReport> {
        self.latest.load_full()
    }

    /// Drops the window's oldest slice (every `window / slices`, from [`run`]).
    pub fn rotate(&self) {
        for watched in [
            self.scorer.as_ref().map(|w| &w.watched),
            self.classifier.as_ref().map(|w| &w.watched),
        ]
        .into_iter()
        .flatten()
        {
            watched.counts.rotate();
        }
    }

    /// Compares, keeps the report for the gauges, and logs each signal that crossed a threshold or came back
    /// (every `evaluate_every`, from [`run`]).
    pub fn evaluate(&self) {
        let report = self.report();
        let before = self.latest();
        for model in &report.models {
            for signal in &model.signals {
                let was = before.drifted(&model.model, &signal.name);
                if signal.drifted && !was {
                    tracing::warn!(
                        model = %model.model,
                        version = %model.version,
                        signal = %signal.name,
                        js_distance = signal.js_distance,
                        psi = signal.psi,
                        samples = model.samples,
                        "input drift detected"
                    );
                } else if was && !signal.drifted && model.judged {
                    tracing::info!(model = %model.model, signal = %signal.name, "input drift cleared");
                }
            }
        }
        self.latest.store(Arc::new(report));
    }
}

/// What the drift timer asks of the monitor in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Drop the oldest slice.
    Rotate,
    /// Compare and report.
    Evaluate,
}

/// The drift timers: `on_tick` hears [`Tick::Rotate`] every `window / slices` and [`Tick::Evaluate`] every
/// `evaluate_every`, and applies them to the monitor in force (a model reload brings a new one). Returns at once
/// when monitoring is off.
pub async fn run(config: DriftConfig, mut on_tick: impl FnMut(Tick)) {
    if !config.enabled {
        return;
    }
    let slice = config.slice().max(Duration::from_millis(1));
    let mut rotate = tokio::time::interval_at(tokio::time::Instant::now() + slice, slice);
    let mut evaluate = tokio::time::interval(config.evaluate_every);
    loop {
        tokio::select! {
            _ = rotate.tick() => on_tick(Tick::Rotate),
            _ = evaluate.tick() => on_tick(Tick::Evaluate),
        }
    }
}

fn profile_beside(model: &Path) -> Result<Option<(std::path::PathBuf, ReferenceProfile)>, ClassicalError> {
    let path = ReferenceProfile::beside(model);
    if !path.exists() {
        tracing::warn!(model = %model.display(), "no reference profile beside the model; its drift is not watched");
        return Ok(None);
    }
    let profile = ReferenceProfile::load(&path)?;
    Ok(Some((path, profile)))
}

fn fail(path: &Path, reason: String) -> ClassicalError {
    ClassicalError::Profile {
        path: path.to_owned(),
        reason,
    }
}

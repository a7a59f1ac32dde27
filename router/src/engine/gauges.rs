//! The engine as the metrics' gauges see it (the metrics module knows nothing of the engine).

use super::Engine;
use crate::metrics::{DriftGauge, GaugeSource};

/// The engine once loaded: before that, the gauges have nothing to report.
impl GaugeSource for tokio::sync::OnceCell<Engine> {
    fn policy_version(&self) -> Option<String> {
        Some(self.get()?.policy().current().version.clone())
    }

    fn queue_depth(&self) -> Option<usize> {
        Some(self.get()?.queue_depth())
    }

    fn circuits(&self) -> Vec<(String, llm::CircuitState)> {
        self.get().map(Engine::circuits).unwrap_or_default()
    }

    fn drift(&self) -> (Vec<(String, u64)>, Vec<DriftGauge>) {
        let Some(engine) = self.get() else {
            return (Vec::new(), Vec::new());
        };
        let report = engine.models().drift.latest();
        let samples = report.models.iter().map(|m| (m.model.clone(), m.samples)).collect();
        let signals = report
            .models
            .iter()
            .filter(|m| m.judged)
            .flat_map(|m| {
                m.signals.iter().filter_map(|s| {
                    Some(DriftGauge {
                        model: m.model.clone(),
                        signal: s.name.clone(),
                        js_distance: s.js_distance?,
                        psi: s.psi?,
                        drifted: s.drifted,
                    })
                })
            })
            .collect();
        (samples, signals)
    }

    fn models(&self) -> Vec<(String, String, Option<String>)> {
        let Some(engine) = self.get() else {
            return Vec::new();
        };
        let models = engine.models();
        [&models.classifier, &models.scorer]
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.version.clone(),
                    m.mlflow.as_ref().map(|r| r.run_id.clone()),
                )
            })
            .collect()
    }
}

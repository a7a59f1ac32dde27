//! The engine as the metrics' gauges see it (the metrics module knows nothing of the engine).

use super::Engine;
use crate::metrics::GaugeSource;

/// The engine once loaded: before that, the gauges have nothing to report.
impl GaugeSource for tokio::sync::OnceCell<Engine> {
    fn policy_version(&self) -> Option<String> {
        Some(self.get()?.policy().current().version.clone())
    }

    fn queue_depth(&self) -> Option<usize> {
        Some(self.get()?.queue_depth())
    }

    fn circuits(&self) -> Vec<(String, llm::CircuitState)> {
        self.get()
            .map(|engine| {
                engine
                    .backends()
                    .iter()
                    .map(|(name, backend)| (name.clone(), backend.circuit()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

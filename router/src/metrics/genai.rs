//! The labels of the GenAI metrics, as the conventions name them.

use opentelemetry::KeyValue;

/// What the GenAI metrics say about one LLM call: its backend (Switchyard's name), provider, model and server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmLabels {
    /// The backend's name in config (`switchyard.backend`).
    pub backend: String,
    /// `gen_ai.provider.name`.
    pub provider: String,
    /// `gen_ai.request.model`.
    pub model: String,
    /// `server.address`, `server.port`.
    pub server: (Option<String>, Option<u16>),
}

impl LlmLabels {
    /// `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `server.*`, `switchyard.backend`.
    pub(super) fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", self.provider.clone()),
            KeyValue::new("gen_ai.request.model", self.model.clone()),
            KeyValue::new("switchyard.backend", self.backend.clone()),
        ];
        if let Some(host) = &self.server.0 {
            attributes.push(KeyValue::new("server.address", host.clone()));
        }
        if let Some(port) = self.server.1 {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        attributes
    }
}

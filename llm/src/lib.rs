//! Switchyard's LLM backends: any OpenAI-compatible server (llama.cpp `llama-server`, vLLM, Ollama, OpenAI),
//! through `POST {base_url}/chat/completions`, whole or streamed as server-sent events.

mod backend;
mod breaker;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod resilient;
mod sse;
pub mod telemetry;
mod wire;

pub use backend::{
    BackendConfig, ChatBackend, ChatCompletion, ChatMessage, ChatRequest, StreamEvent, Usage, read_ca_bundle,
};
pub use breaker::{BreakerConfig, CircuitBreaker, CircuitState, Permit, Verdict};
pub use error::{LlmError, error_chain};
pub use resilient::{CallReport, GuardConfig, GuardedBackend, OpenStream};

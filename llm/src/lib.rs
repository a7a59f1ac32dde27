//! Switchyard's LLM backends: any OpenAI-compatible server (llama.cpp `llama-server`, vLLM, Ollama, OpenAI),
//! through `POST {base_url}/chat/completions`, whole or streamed as server-sent events.

mod backend;
mod error;
mod sse;
mod wire;

pub use backend::{BackendConfig, ChatBackend, ChatCompletion, ChatMessage, ChatRequest, StreamEvent, Usage};
pub use error::LlmError;

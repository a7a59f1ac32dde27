//! Telemetry of LLM calls: one `chat {model}` CLIENT span per backend call, following the OpenTelemetry GenAI
//! semantic conventions, with an event at the first token and one per retry; and the W3C trace context
//! (`traceparent`, `tracestate`, `baggage`) injected into every outgoing request, so the backend's own work joins
//! the caller's trace.
//!
//! Spans are `tracing` spans; the `tracing-opentelemetry` layer the binary installs turns them into OpenTelemetry
//! spans. Without that layer every call here is a no-op.

use std::time::Duration;

use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, StringValue, Value};
use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{ChatCompletion, ChatRequest, LlmError, Usage};

/// Attribute and event names this crate records. GenAI ones are the OpenTelemetry semantic conventions'; the
/// `switchyard.*` ones are Switchyard's own (listed with the rest in `docs/telemetry.md`).
pub mod names {
    /// `chat` (the only operation Switchyard performs).
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    /// The backend's provider, from config (`openai`, `llama.cpp`, `vllm`, ...).
    pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// The model asked for.
    pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    /// The output token limit sent.
    pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
    /// The temperature sent.
    pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
    /// The model the backend says answered.
    pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// The backend's completion id.
    pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
    /// Why generation stopped (an array of one).
    pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// Prompt tokens reported by the backend.
    pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Generated tokens reported by the backend.
    pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// The prompt messages as JSON, `[{role, parts: [{type: "text", content}]}]` (content capture only).
    pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
    /// The answer as JSON, `[{role: "assistant", parts: [...], finish_reason}]` (content capture only).
    pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
    /// Host of the backend's base URL.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// Port of the backend's base URL.
    pub const SERVER_PORT: &str = "server.port";
    /// The failure's kind (`LlmError::kind`: `timeout`, `upstream_5xx`, `circuit_open`, ...).
    pub const ERROR_TYPE: &str = "error.type";
    /// The backend's name in config.
    pub const BACKEND: &str = "switchyard.backend";
    /// `true` on streamed calls (absent otherwise).
    pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
    /// Streams: seconds from the call to its first chunk, queueing and retries included.
    pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
    /// Attempts made on this backend (retries included).
    pub const LLM_ATTEMPTS: &str = "switchyard.llm.attempts";
    /// Event: the first event of the answer arrived (streams), or the whole answer (non-streamed calls).
    pub const EVENT_FIRST_TOKEN: &str = "switchyard.llm.first_token";
    /// On the first-token event: milliseconds since the call started, queueing and retries included.
    pub const TIME_TO_FIRST_TOKEN_MS: &str = "switchyard.llm.time_to_first_token_ms";
    /// Event: an attempt failed and another follows.
    pub const EVENT_RETRY: &str = "switchyard.llm.retry";
    /// On the retry event: the attempt that failed (1-based).
    pub const RETRY_ATTEMPT: &str = "switchyard.llm.retry.attempt";
    /// On the retry event: the wait before the next attempt, in milliseconds.
    pub const RETRY_DELAY_MS: &str = "switchyard.llm.retry.delay_ms";
}

use names::*;

/// The `chat {model}` span of one call to one backend. Dropping it ends the span.
#[derive(Debug, Clone)]
pub(crate) struct ChatSpan {
    span: tracing::Span,
    started: Instant,
    capture: Option<usize>,
}

/// What a span needs to know about its backend.
pub(crate) struct SpanTarget<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    pub capture: Option<usize>,
}

impl ChatSpan {
    /// Opens the span as a child of the current one and records the request attributes.
    pub(crate) fn start(target: &SpanTarget<'_>, request: &ChatRequest, streaming: bool) -> Self {
        let span = tracing::info_span!(
            target: "llm::chat",
            "chat",
            otel.name = %format!("chat {}", target.model),
            otel.kind = "client",
        );
        span.set_attribute(GEN_AI_OPERATION_NAME, "chat");
        span.set_attribute(GEN_AI_PROVIDER_NAME, target.provider.to_owned());
        span.set_attribute(GEN_AI_REQUEST_MODEL, target.model.to_owned());
        span.set_attribute(BACKEND, target.name.to_owned());
        if streaming {
            span.set_attribute(GEN_AI_REQUEST_STREAM, true);
        }
        if let Some(max_tokens) = request.max_tokens {
            span.set_attribute(GEN_AI_REQUEST_MAX_TOKENS, i64::from(max_tokens));
        }
        if let Some(temperature) = request.temperature {
            span.set_attribute(GEN_AI_REQUEST_TEMPERATURE, f64::from(temperature));
        }
        if let Some(host) = target.host {
            span.set_attribute(SERVER_ADDRESS, host.to_owned());
        }
        if let Some(port) = target.port {
            span.set_attribute(SERVER_PORT, i64::from(port));
        }
        if let Some(cap) = target.capture {
            let messages: Vec<serde_json::Value> = request
                .messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role, "parts": [text_part(&m.content, cap)]}))
                .collect();
            span.set_attribute(GEN_AI_INPUT_MESSAGES, serde_json::Value::from(messages).to_string());
        }
        Self {
            span,
            started: Instant::now(),
            capture: target.capture,
        }
    }

    /// The span, to instrument the call's future with.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A stream's first chunk arrived: `gen_ai.response.time_to_first_chunk`, and Switchyard's event.
    pub(crate) fn first_token(&self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.span.set_attribute(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, elapsed);
        self.span.add_event(
            EVENT_FIRST_TOKEN,
            vec![KeyValue::new(TIME_TO_FIRST_TOKEN_MS, elapsed * 1000.0)],
        );
    }

    /// An attempt failed with `error`; the next starts after `delay`.
    pub(crate) fn retry(&self, attempt: u32, error: &LlmError, delay: Duration) {
        self.span.add_event(
            EVENT_RETRY,
            vec![
                KeyValue::new(RETRY_ATTEMPT, i64::from(attempt)),
                KeyValue::new(ERROR_TYPE, error.kind()),
                KeyValue::new(RETRY_DELAY_MS, delay.as_secs_f64() * 1000.0),
            ],
        );
    }

    /// Attempts made, once the call is over (or the stream opened).
    pub(crate) fn attempts(&self, attempts: u32) {
        self.span.set_attribute(LLM_ATTEMPTS, i64::from(attempts));
    }

    /// The call failed for good.
    pub(crate) fn fail(&self, error: &LlmError) {
        self.span.set_attribute(ERROR_TYPE, error.kind());
        self.span.set_status(Status::error(error.to_string()));
    }

    /// A whole answer arrived.
    pub(crate) fn complete(&self, completion: &ChatCompletion) {
        self.response(
            Some(&completion.model),
            completion.id.as_deref(),
            &completion.finish_reason,
        );
        if let Some(usage) = completion.usage {
            self.usage(usage);
        }
        self.output(&completion.text, &completion.finish_reason);
    }

    /// The response's model, id and finish reason.
    pub(crate) fn response(&self, model: Option<&str>, id: Option<&str>, finish_reason: &str) {
        if let Some(model) = model {
            self.span.set_attribute(GEN_AI_RESPONSE_MODEL, model.to_owned());
        }
        if let Some(id) = id {
            self.span.set_attribute(GEN_AI_RESPONSE_ID, id.to_owned());
        }
        self.span.set_attribute(
            GEN_AI_RESPONSE_FINISH_REASONS,
            Value::Array(vec![StringValue::from(finish_reason.to_owned())].into()),
        );
    }

    /// Token counts as the backend reported them.
    pub(crate) fn usage(&self, usage: Usage) {
        self.span
            .set_attribute(GEN_AI_USAGE_INPUT_TOKENS, i64::from(usage.input_tokens));
        self.span
            .set_attribute(GEN_AI_USAGE_OUTPUT_TOKENS, i64::from(usage.output_tokens));
    }

    /// The generated text and why it stopped, recorded only with content capture on.
    pub(crate) fn output(&self, text: &str, finish_reason: &str) {
        if let Some(cap) = self.capture {
            let message = serde_json::json!([{
                "role": "assistant",
                "parts": [text_part(text, cap)],
                "finish_reason": finish_reason,
            }]);
            self.span.set_attribute(GEN_AI_OUTPUT_MESSAGES, message.to_string());
        }
    }

    /// Whether captured output is wanted, and up to how many bytes.
    pub(crate) fn capture(&self) -> Option<usize> {
        self.capture
    }
}

/// One text part of a captured message, its content cut to `cap` bytes (the content, never the JSON around it).
fn text_part(content: &str, cap: usize) -> serde_json::Value {
    serde_json::json!({"type": "text", "content": truncate(content.to_owned(), cap)})
}

/// Adds the current span's trace context (and baggage) to an outgoing request's headers, with whatever
/// propagator the process installed globally (none: nothing is added).
pub(crate) fn inject_context(headers: &mut reqwest::header::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// `text` cut to at most `cap` bytes on a character boundary, marked when cut.
pub fn truncate(mut text: String, cap: usize) -> String {
    if text.len() > cap {
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h…");
        assert_eq!(truncate("héllo".to_owned(), 3), "hé…");
        assert_eq!(truncate("hello".to_owned(), 5), "hello");
    }
}

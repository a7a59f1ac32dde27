//! One OpenAI-compatible backend: configuration, the HTTP client, whole and streamed completions.

use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;

use crate::telemetry::{self, ChatSpan, SpanTarget};
use crate::wire::{Completion, RequestBody, StreamOptions};
use crate::{LlmError, sse};

/// How much of an error reply's body is read (for the message); the rest is never read.
const ERROR_BODY_LIMIT: usize = 4096;

/// How much of an error reply's body an error message quotes, in characters.
const ERROR_BODY_QUOTE: usize = 300;

/// A backend as configured (validated by the caller's config layer).
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The backend's name in config; every error names it.
    pub name: String,
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8081/v1` (no trailing slash).
    pub base_url: String,
    /// The model to ask for.
    pub model: String,
    /// Bearer token, read from the environment variable the config names; never from the file itself. Held as
    /// a `SecretString`: `Debug` shows it redacted, and only the request reads it.
    pub api_key: Option<SecretString>,
    /// CA certificates the backend's TLS certificate must chain to, instead of the system's roots (a private CA
    /// for in-cluster backends); empty: the system's roots.
    pub ca_certificates: Vec<reqwest::Certificate>,
    /// Limit for establishing the connection.
    pub connect_timeout: Duration,
    /// Limit for the whole exchange, streamed bodies included.
    pub request_timeout: Duration,
    /// Extra headers sent with every request (e.g. an organisation id).
    pub headers: Vec<(String, String)>,
    /// Largest reply accepted, in bytes (a whole body, or all of a stream's bytes); beyond it the call fails
    /// with `TooLarge` (UNAVAILABLE), a stream after the text already sent.
    pub max_response_bytes: usize,
    /// Longest silence between two events of a stream once it has started; beyond it the stream fails with
    /// `Timeout` (DEADLINE_EXCEEDED) and its connection is closed.
    pub inter_token_timeout: Duration,
    /// `gen_ai.provider.name` on the backend's spans (`openai`, `llama.cpp`, `vllm`, ...).
    pub provider: String,
    /// Record prompts and answers on the backend's spans, cut to this many bytes; `None` (the default): never.
    pub capture_content: Option<usize>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".to_owned(),
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".to_owned(),
            content: content.into(),
        }
    }
}

/// What to ask the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

impl ChatRequest {
    /// The prompt's size in characters, all messages together (for estimating input tokens).
    pub fn prompt_chars(&self) -> usize {
        self.messages.iter().map(|m| m.content.chars().count()).sum()
    }
}

/// Token counts as the backend reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens.
    pub output_tokens: u32,
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    /// The generated text.
    pub text: String,
    /// Why generation stopped (`stop`, `length`, ...).
    pub finish_reason: String,
    /// The model the backend says answered (else the one asked for).
    pub model: String,
    /// The backend's id for this completion, when it sent one.
    pub id: Option<String>,
    /// Token counts, when the backend reported them.
    pub usage: Option<Usage>,
}

/// One event of a streamed answer, in order: deltas, then the finish, then usage (when reported).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of text.
    Delta(String),
    /// Generation stopped for this reason; `model` is what the backend says answered.
    Finish {
        /// `stop`, `length`, ...
        finish_reason: String,
        /// The answering model, if reported.
        model: Option<String>,
        /// The backend's id for this completion, if reported.
        id: Option<String>,
    },
    /// Token counts (`stream_options.include_usage`).
    Usage(Usage),
}

/// A configured OpenAI-compatible backend. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct ChatBackend {
    config: Arc<BackendConfig>,
    http: reqwest::Client,
    /// Host and port of `base_url`, for `server.address` and `server.port`.
    host: Option<String>,
    port: Option<u16>,
}

impl ChatBackend {
    /// Builds the HTTP client for `config`.
    pub fn new(config: BackendConfig) -> Result<Self, LlmError> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| LlmError::Protocol {
                backend: config.name.clone(),
                detail: format!("header {name:?}: {e}"),
            })?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|e| LlmError::Protocol {
                backend: config.name.clone(),
                detail: format!("header {name}: {e}"),
            })?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder();
        if !config.ca_certificates.is_empty() {
            builder = builder.tls_certs_only(config.ca_certificates.iter().cloned());
        }
        let http = builder
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A request body goes out in more than one write; Nagle would hold the last for the server's ACK.
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Protocol {
                backend: config.name.clone(),
                // reqwest's own text is only "builder error"; the cause (e.g. no CA certificates) is below it.
                detail: crate::error::error_chain(&e),
            })?;
        let url = reqwest::Url::parse(&config.base_url).ok();
        Ok(Self {
            host: url.as_ref().and_then(|u| u.host_str().map(str::to_owned)),
            port: url.as_ref().and_then(reqwest::Url::port_or_known_default),
            config: Arc::new(config),
            http,
        })
    }

    /// Opens the `chat {model}` span of one call, a child of the current span.
    pub(crate) fn chat_span(&self, request: &ChatRequest, streaming: bool) -> ChatSpan {
        ChatSpan::start(
            &SpanTarget {
                name: &self.config.name,
                provider: &self.config.provider,
                model: &self.config.model,
                host: self.host.as_deref(),
                port: self.port,
                capture: self.config.capture_content,
            },
            request,
            streaming,
        )
    }

    /// The backend's name in config.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The model asked for.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The provider (`gen_ai.provider.name`), from config.
    pub fn provider(&self) -> &str {
        &self.config.provider
    }

    /// The base URL's host and port (`server.address`, `server.port`).
    pub fn address(&self) -> (Option<&str>, Option<u16>) {
        (self.host.as_deref(), self.port)
    }

    /// Asks for a whole answer.
    pub async fn complete(&self, request: &ChatRequest) -> Result<ChatCompletion, LlmError> {
        let mut response = self.send(request, false).await?;
        let body = self.read_body(&mut response, self.config.max_response_bytes).await?;
        let completion: Completion = serde_json::from_slice(&body).map_err(|e| self.protocol(e))?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| self.protocol("no choices in the answer"))?;
        Ok(ChatCompletion {
            text: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".to_owned()),
            model: completion.model.unwrap_or_else(|| self.config.model.clone()),
            id: completion.id,
            usage: completion.usage.map(|u| Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            }),
        })
    }

    /// Asks for a streamed answer. The HTTP request is dropped (connection closed) when the stream is dropped.
    pub async fn stream(
        &self,
        request: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent, LlmError>>, LlmError> {
        let response = self.send(request, true).await?;
        let config = self.config.clone();
        let limit = config.max_response_bytes;
        let mut received = 0usize;
        let bytes = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| LlmError::from_transport(&config.name, &e, config.request_timeout))?;
            received = received.saturating_add(chunk.len());
            if received > limit {
                return Err(LlmError::TooLarge {
                    backend: config.name.clone(),
                    limit,
                });
            }
            Ok(chunk)
        });
        Ok(sse::stream(bytes, self.config.name.clone(), self.config.inter_token_timeout).boxed())
    }

    /// Reads a body of at most `limit` bytes; a longer one fails with `TooLarge` without reading the rest.
    async fn read_body(&self, response: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, LlmError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > limit {
                return Err(LlmError::TooLarge {
                    backend: self.config.name.clone(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<reqwest::Response, LlmError> {
        let body = RequestBody {
            model: &self.config.model,
            messages: &request.messages,
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        };
        // The trace continues at the backend: its spans (where it emits any) become children of the chat span.
        let mut trace_headers = reqwest::header::HeaderMap::new();
        telemetry::inject_context(&mut trace_headers);
        let mut call = self
            .http
            .post(format!("{}/chat/completions", self.config.base_url))
            .headers(trace_headers)
            .json(&body);
        if let Some(key) = &self.config.api_key {
            call = call.bearer_auth(key.expose_secret());
        }
        let response = call.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            return Err(LlmError::RateLimited {
                backend: self.config.name.clone(),
                retry_after,
            });
        }
        // Only the start of an error body is read: it is quoted, and a backend must not make us buffer more.
        let mut response = response;
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_LIMIT - body.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        Err(LlmError::Upstream {
            backend: self.config.name.clone(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(ERROR_BODY_QUOTE).collect(),
        })
    }

    fn transport(&self, error: &reqwest::Error) -> LlmError {
        LlmError::from_transport(&self.config.name, error, self.config.request_timeout)
    }

    fn protocol(&self, detail: impl std::fmt::Display) -> LlmError {
        LlmError::Protocol {
            backend: self.config.name.clone(),
            detail: detail.to_string(),
        }
    }
}

/// `Retry-After` in either form (RFC 9110): delay seconds, or an HTTP date (a date in the past means now).
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads a PEM bundle of CA certificates (for [`BackendConfig::ca_certificates`]); fails when the file cannot be
/// read or holds no certificate.
pub fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())?;
    if certificates.is_empty() {
        return Err("no certificate in the file".to_owned());
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::parse_retry_after;

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: retry now"
        );
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }
}

//! The soak's request classes: what each sends and how one call's outcome is recorded.

use std::time::{Duration, Instant};

use switchyard_proto::v1::RouteRequest;
use switchyard_proto::v1::router_client::RouterClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::body::{Scenario, request};

/// A kind of request in the soak's mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Class {
    /// A record and no text: classified, then scored (never touches the LLM).
    Structured,
    /// A question: answered by the LLM backend.
    Nl,
    /// A record and a "why" question: scored, then explained by the LLM (fails open to the score alone).
    Hybrid,
    /// Requests the gateway must refuse as invalid (empty, out-of-range temperature, a mistyped or extra feature).
    Malformed,
    /// Requests over the size limits (text over `max_text_bytes`, a message over the decoding limit).
    Oversized,
    /// No key, a wrong key, or a valid key naming another tenant in the body.
    Unauthenticated,
}

impl Class {
    /// The name written in the soak's output.
    pub fn name(self) -> &'static str {
        match self {
            Class::Structured => "structured",
            Class::Nl => "nl",
            Class::Hybrid => "hybrid",
            Class::Malformed => "malformed",
            Class::Oversized => "oversized",
            Class::Unauthenticated => "unauthenticated",
        }
    }

    /// Whether the class waits on the LLM backend (and so gets the LLM deadline).
    pub fn uses_llm(self) -> bool {
        matches!(self, Class::Nl | Class::Hybrid)
    }
}

/// Questions the default policy sends to the assistant; rotated so the classifier sees more than one text.
const QUESTIONS: [&str; 4] = [
    "what is the capital of france?",
    "how do i reset my voicemail pin?",
    "tell me a fun fact about octopuses",
    "what time zone is tokyo in?",
];

/// One call's outcome: its gRPC code name (`Ok`, `Unavailable`, ...) or `Hung` when no answer came within the
/// deadline plus the grace, its latency and, for an answer flagged degraded, why.
pub struct Outcome {
    pub code: String,
    pub latency: Duration,
    pub degraded: Option<String>,
}

/// Makes the `n`th request of a class and sends it with the deadline; never waits past `deadline + grace`.
pub async fn call(
    channel: Channel,
    class: Class,
    n: u64,
    api_key: &str,
    deadline: Duration,
    grace: Duration,
) -> Outcome {
    let began = Instant::now();
    let (body, credential) = compose(class, n, api_key);
    let mut request = tonic::Request::new(body);
    request.set_timeout(deadline);
    if let Some(value) = credential.and_then(|c| MetadataValue::try_from(format!("Bearer {c}")).ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    let mut client = RouterClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let (code, degraded) = match tokio::time::timeout(deadline + grace, client.route(request)).await {
        Ok(Ok(response)) => {
            let response = response.into_inner();
            ("Ok".to_owned(), response.degraded.then_some(response.degraded_reason))
        }
        Ok(Err(status)) => (format!("{:?}", status.code()), None),
        Err(_) => ("Hung".to_owned(), None),
    };
    Outcome {
        code,
        latency: began.elapsed(),
        degraded,
    }
}

/// The request body and the key to present (none: no `authorization` header).
fn compose(class: Class, n: u64, api_key: &str) -> (RouteRequest, Option<String>) {
    let key = Some(api_key.to_owned());
    let scenario = |s| request(s).unwrap_or_default();
    match class {
        Class::Structured => (vary_record(scenario(Scenario::Structured), n), key),
        Class::Nl => {
            let question = QUESTIONS[(n % QUESTIONS.len() as u64) as usize];
            (
                RouteRequest {
                    text: question.to_owned(),
                    ..scenario(Scenario::Nl)
                },
                key,
            )
        }
        Class::Hybrid => (vary_record(scenario(Scenario::Hybrid), n), key),
        Class::Malformed => (malformed(n), key),
        Class::Oversized => {
            // 40 kB is over `max_text_bytes` (32 kB); 200 kB is over the decoding limit (text limit + 64 kB).
            let bytes = if n.is_multiple_of(2) { 40 * 1024 } else { 200 * 1024 };
            (
                RouteRequest {
                    text: "a".repeat(bytes),
                    ..RouteRequest::default()
                },
                key,
            )
        }
        Class::Unauthenticated => match n % 3 {
            0 => (scenario(Scenario::Structured), None),
            1 => (scenario(Scenario::Structured), Some(format!("{api_key}-wrong"))),
            _ => (
                RouteRequest {
                    tenant: "ops".to_owned(),
                    ..scenario(Scenario::Structured)
                },
                key,
            ),
        },
    }
}

/// The example record with its tenure and charges varied, so the scorer sees many inputs.
fn vary_record(mut body: RouteRequest, n: u64) -> RouteRequest {
    if let Some(features) = body.features.as_mut() {
        let tenure = (n % 72) as f64;
        let charges = 20.0 + (n % 100) as f64;
        features.fields.insert("tenure".to_owned(), number(tenure));
        features.fields.insert("monthlycharges".to_owned(), number(charges));
        features
            .fields
            .insert("totalcharges".to_owned(), number(tenure * charges));
    }
    body
}

fn number(value: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(value)),
    }
}

fn text(value: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(value.to_owned())),
    }
}

/// Invalid requests, one of four shapes by turn.
fn malformed(n: u64) -> RouteRequest {
    let record = request(Scenario::Structured).unwrap_or_default();
    match n % 4 {
        0 => RouteRequest::default(),
        1 => RouteRequest {
            temperature: Some(7.0),
            ..record
        },
        2 => {
            let mut body = record;
            if let Some(features) = body.features.as_mut() {
                features.fields.insert("tenure".to_owned(), text("two years"));
            }
            body
        }
        _ => {
            let mut body = record;
            if let Some(features) = body.features.as_mut() {
                for i in 0..70 {
                    features.fields.insert(format!("extra_{i}"), number(1.0));
                }
            }
            body
        }
    }
}

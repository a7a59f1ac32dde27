//! The `switchyard.v1.Router` gRPC service: converts at the edge and delegates to the engine.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use llm::StreamEvent;
use switchyard_proto::v1 as pb;
use switchyard_proto::v1::route_event::Event;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::convert;
use crate::engine::{Engine, Routing, ShadowPlan, SharedEngine, StreamStart, estimate_tokens, llm_attributes};
use crate::error::RouterError;
use crate::metrics::SharedMetrics;
use crate::request::RouteInput;
use crate::telemetry::names::{HAS_RECORD, REQUEST_ID, TENANT, TEXT_BYTES};
use crate::telemetry::spans;
use opentelemetry::KeyValue;

/// Events buffered between the LLM stream and a slow gRPC reader; beyond it the LLM read pauses.
const STREAM_BUFFER: usize = 16;

/// The gRPC service. Answers UNAVAILABLE until the engine (models) is loaded.
pub struct RouterService {
    engine: SharedEngine,
    metrics: SharedMetrics,
}

impl RouterService {
    /// A service over the (possibly still loading) engine.
    pub fn new(engine: SharedEngine, metrics: SharedMetrics) -> Self {
        Self { engine, metrics }
    }

    /// Ends one call: its status on the SERVER span, `rpc.server.duration`, and one access-log line in the span
    /// (ids, decision, status; never content).
    fn finish<T>(
        &self,
        span: &tracing::Span,
        method: &'static str,
        started: Instant,
        result: &Result<T, Status>,
        access: &Access,
    ) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        spans::record_status(span, code, result.as_ref().err().map_or("", Status::message));
        let _in_span = span.enter();
        let elapsed = started.elapsed();
        self.metrics.rpc_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", "switchyard.v1.Router"),
                KeyValue::new("rpc.method", method),
                KeyValue::new("rpc.grpc.status_code", code as i64),
                KeyValue::new("switchyard.target", access.target.clone()),
            ],
        );
        tracing::info!(
            target: "switchyard::access",
            rpc_method = method,
            request_id = %access.request_id,
            tenant = %access.tenant,
            label = %access.label,
            route_target = %access.target,
            rule = %access.rule,
            policy_version = %access.policy_version,
            grpc_status = code as i32,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }

    /// Runs the shadow of a mirrored request in the background, in the request's trace (under the current
    /// SERVER span, without holding it open); the caller's answer never waits for it.
    fn mirror(&self, input: &RouteInput, plan: &ShadowPlan) {
        let engine = self.engine.clone();
        let (input, plan) = (input.clone(), plan.clone());
        let parent = tracing::Span::current().context();
        tokio::spawn(async move {
            if let Some(engine) = engine.get() {
                engine.shadow(&input, &plan, parent).await;
            }
        });
    }

    /// Admits a call: the loaded engine, the caller's deadline, and the checked input (noted for the access line
    /// and on the SERVER span).
    fn admit(
        &self,
        request: Request<pb::RouteRequest>,
        span: &tracing::Span,
        access: &mut Access,
    ) -> Result<(&Engine, Option<Instant>, RouteInput), Status> {
        let engine = self.engine.get().ok_or(RouterError::NotReady)?;
        let deadline = deadline(request.metadata());
        let input = access.input(RouteInput::try_from(request.into_inner())?, span);
        Ok((engine, deadline, input))
    }

    /// Notes a dispatched request's decision for the access line, and mirrors it when its decision says so.
    fn dispatched(&self, access: &mut Access, input: &RouteInput, routing: &Routing, shadow: Option<&ShadowPlan>) {
        access.routing(routing);
        if let Some(plan) = shadow {
            self.mirror(input, plan);
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RouteEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::router_server::Router for RouterService {
    async fn route(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RouteResponse>, Status> {
        let span = spans::server("Route", request.metadata());
        let started = Instant::now();
        let mut access = Access::default();
        let result = async {
            let (engine, deadline, input) = self.admit(request, &span, &mut access)?;
            let outcome = engine.route(&input, deadline).await?;
            self.dispatched(&mut access, &input, &outcome.routing, outcome.shadow.as_ref());
            Ok(convert::response(input.request_id, &outcome))
        }
        .instrument(span.clone())
        .await;
        self.finish(&span, "Route", started, &result, &access);
        result.map(Response::new)
    }

    type RouteStreamStream = EventStream;

    async fn route_stream(&self, request: Request<pb::RouteRequest>) -> Result<Response<EventStream>, Status> {
        let span = spans::server("RouteStream", request.metadata());
        let started = Instant::now();
        let mut access = Access::default();
        let result = async {
            let (engine, deadline, input) = self.admit(request, &span, &mut access)?;
            let start = engine.route_stream(&input, deadline).await?;
            self.dispatched(&mut access, &input, &start.routing, start.shadow.as_ref());
            Ok((input.request_id, start))
        }
        .instrument(span.clone())
        .await;
        // Measured until the stream opened (decision made, first token received): the stream's length is the
        // caller's reading pace, not the service's latency. The SERVER span lasts until the stream ends.
        self.finish(&span, "RouteStream", started, &result, &access);
        let (request_id, start) = result?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(forward(self.engine.clone(), request_id, start, sender).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn explain(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RoutingDecision>, Status> {
        let span = spans::server("Explain", request.metadata());
        let started = Instant::now();
        let mut access = Access::default();
        let result = async {
            let (engine, _, input) = self.admit(request, &span, &mut access)?;
            let routing = engine.explain(&input).await?;
            access.routing(&routing);
            Ok(pb::RoutingDecision::from(&routing))
        }
        .instrument(span.clone())
        .await;
        self.finish(&span, "Explain", started, &result, &access);
        result.map(Response::new)
    }
}

/// What one request's access-log line and metrics carry: identifiers and the decision, never content.
#[derive(Debug, Default)]
struct Access {
    request_id: String,
    tenant: String,
    label: String,
    target: String,
    rule: String,
    policy_version: String,
}

impl Access {
    /// Notes the request's identifiers, here and on its SERVER span (sizes only: text goes on spans only with
    /// content capture, on the `classify` span).
    fn input(&mut self, input: RouteInput, span: &tracing::Span) -> RouteInput {
        self.request_id.clone_from(&input.request_id);
        self.tenant.clone_from(&input.tenant);
        span.record(REQUEST_ID, input.request_id.as_str());
        span.record(TENANT, input.tenant.as_str());
        span.set_attribute(HAS_RECORD, input.record.is_some());
        span.set_attribute(TEXT_BYTES, i64::try_from(input.text.len()).unwrap_or(i64::MAX));
        input
    }

    fn routing(&mut self, routing: &Routing) {
        self.label.clone_from(&routing.classified.label);
        self.target.clone_from(&routing.decision.target.name);
        self.rule = routing.decision.rule.clone().unwrap_or_default();
        self.policy_version.clone_from(&routing.decision.policy_version);
    }
}

/// Sends decision, prediction, deltas and summary in order. Stops, dropping the LLM stream (and so its HTTP
/// connection), as soon as the client is gone.
async fn forward(
    engine: SharedEngine,
    request_id: String,
    start: StreamStart,
    sender: mpsc::Sender<Result<pb::RouteEvent, Status>>,
) {
    let send = |event: Event| {
        let sender = sender.clone();
        let message = convert::event(&request_id, event);
        async move { sender.send(Ok(message)).await.is_ok() }
    };
    if !send(Event::Decision((&start.routing).into())).await {
        return;
    }
    if let Some(prediction) = &start.prediction
        && !send(Event::Prediction(prediction.into())).await
    {
        return;
    }
    if let Some(reason) = start.rejection {
        let _ = send(Event::Rejection(pb::Rejection { reason })).await;
        return;
    }
    let Some(mut stream) = start.generation else {
        let summary = match start.degraded {
            Some(reason) => pb::Summary {
                finish_reason: "degraded".to_owned(),
                degraded: true,
                degraded_reason: reason,
                ..Default::default()
            },
            None => pb::Summary {
                finish_reason: "scored".to_owned(),
                ..Default::default()
            },
        };
        let _ = send(Event::Summary(summary)).await;
        return;
    };
    let mut summary = pb::Summary {
        backend: stream.backend,
        attempts: stream.attempts,
        failed_backends: stream.failed_backends,
        ..Default::default()
    };
    let mut usage = None;
    let mut output_chars = 0;
    loop {
        // The caller leaving ends the upstream request at once, without waiting for the backend's next token.
        let event = tokio::select! {
            () = sender.closed() => return,
            event = stream.events.next() => event,
        };
        let Some(event) = event else { break };
        match event {
            Ok(StreamEvent::Delta(text)) => {
                output_chars += text.chars().count();
                if !send(Event::Delta(pb::TextDelta { text })).await {
                    return;
                }
            }
            Ok(StreamEvent::Finish {
                finish_reason, model, ..
            }) => {
                summary.finish_reason = finish_reason;
                summary.model = model.unwrap_or_default();
            }
            Ok(StreamEvent::Usage(reported)) => usage = Some(reported),
            Err(error) => {
                let status = Status::from(RouterError::Llm(error));
                spans::record_status(&tracing::Span::current(), status.code(), status.message());
                let _ = sender.send(Err(status)).await;
                return;
            }
        }
    }
    summary.usage_estimated = usage.is_none();
    let usage = usage.unwrap_or(llm::Usage {
        input_tokens: estimate_tokens(stream.prompt_chars),
        output_tokens: estimate_tokens(output_chars),
    });
    summary.input_tokens = usage.input_tokens;
    summary.output_tokens = usage.output_tokens;
    summary.cost = stream.prices.cost(usage.input_tokens, usage.output_tokens);
    if let Some(engine) = engine.get() {
        engine.record_usage(
            &start.routing.decision.target.name,
            &summary.backend,
            usage,
            summary.cost,
        );
        let attributes = llm_attributes(&summary.backend, &stream.model);
        engine
            .metrics()
            .llm_duration
            .record(stream.started.elapsed().as_secs_f64(), &attributes);
    }
    let _ = send(Event::Summary(summary)).await;
}

/// The caller's deadline from the `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n), less a
/// small margin: the LLM call gives up just before the caller does, so the caller receives DEADLINE_EXCEEDED
/// naming the backend rather than a bare cancellation from the transport's own timer.
fn deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    let margin = (timeout / 10).min(Duration::from_millis(50));
    Instant::now().checked_add(timeout - margin)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn grpc_timeout_header_becomes_a_deadline() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert!(deadline(&metadata).is_none());
        metadata.insert("grpc-timeout", "1500m".parse().unwrap());
        let left = deadline(&metadata).unwrap().saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_millis(1500) && left > Duration::from_millis(1400),
            "{left:?}"
        );
        metadata.insert("grpc-timeout", "2X".parse().unwrap());
        assert!(deadline(&metadata).is_none());
    }
}

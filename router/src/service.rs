//! The `switchyard.v1.Router` gRPC service: converts at the edge and delegates to the engine. The SERVER span,
//! `rpc.server.call.duration` and the access line are the layers' (`layers/`); a handler notes its call's ids and
//! decision for them.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use switchyard_proto::v1 as pb;
use switchyard_proto::v1::route_event::Event;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::Authenticated;
use crate::convert;
use crate::engine::{Engine, GenerationEvent, Prepared, Routing, ShadowPlan, SharedEngine};
use crate::error::RouterError;
use crate::layers::CallNotes;
use crate::policy::Permissions;
use crate::quota::Admission;
use crate::request::RouteInput;
use crate::telemetry::names::{HAS_RECORD, REQUEST_ID, TENANT, TEXT_BYTES};

/// Events buffered between the LLM stream and a slow gRPC reader; beyond it the LLM read pauses.
const STREAM_BUFFER: usize = 16;

/// The gRPC service. Answers UNAVAILABLE until the engine (models) is loaded.
pub struct RouterService {
    engine: SharedEngine,
}

impl RouterService {
    /// A service over the (possibly still loading) engine.
    pub fn new(engine: SharedEngine) -> Self {
        Self { engine }
    }

    /// Admits a call: the loaded engine, the caller's deadline, the checked input (noted for the layers and on
    /// the SERVER span), and what the caller may do. An authenticated caller's tenant is its credential's; a body
    /// naming another tenant is refused.
    fn admit(&self, request: Request<pb::RouteRequest>) -> Result<Admitted<'_>, Status> {
        let notes = request
            .extensions()
            .get::<Arc<CallNotes>>()
            .cloned()
            .unwrap_or_default();
        let caller = request.extensions().get::<Authenticated>().cloned();
        let engine = self.engine.get().ok_or(RouterError::NotReady)?;
        let deadline = deadline(request.metadata());
        let mut input = RouteInput::try_from(request.into_inner())?;
        let permissions = match caller {
            Some(caller) => {
                if !input.tenant.is_empty() && input.tenant != caller.tenant {
                    return Err(RouterError::NotPermitted("the tenant does not match the credential").into());
                }
                input.tenant = caller.tenant;
                engine.policy().current().permissions(&input.tenant)
            }
            None => Permissions::ALL,
        };
        note_input(&notes, &input);
        let admission = engine.admit(&input.tenant)?;
        Ok(Admitted {
            engine,
            deadline,
            input,
            notes,
            permissions,
            admission,
        })
    }
}

/// An admitted call.
struct Admitted<'a> {
    engine: &'a Engine,
    /// The caller's deadline.
    deadline: Option<Instant>,
    input: RouteInput,
    /// What the layers report about the call.
    notes: Arc<CallNotes>,
    /// What the caller may do besides routing.
    permissions: Permissions,
    /// The call's in-flight slots (its tenant's and the server's), held until it ends.
    admission: Admission,
}

/// The decision as the caller may see it: without the rule evaluations unless its tenant may see them.
fn visible(mut decision: pb::RoutingDecision, permissions: Permissions) -> pb::RoutingDecision {
    if !permissions.evaluations {
        decision.evaluations.clear();
    }
    decision
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RouteEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::router_server::Router for RouterService {
    async fn route(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RouteResponse>, Status> {
        let call = self.admit(request)?;
        let outcome = call.engine.route(&call.input, call.deadline).await?;
        note_routing(&call.notes, &outcome.routing);
        if let Some(plan) = &outcome.shadow {
            mirror(&self.engine, &call.input, plan);
        }
        let mut response = convert::response(call.input.request_id, &outcome);
        response.decision = response.decision.map(|d| visible(d, call.permissions));
        Ok(Response::new(response))
    }

    type RouteStreamStream = EventStream;

    async fn route_stream(&self, request: Request<pb::RouteRequest>) -> Result<Response<EventStream>, Status> {
        let call = self.admit(request)?;
        let prepared = call.engine.prepare(&call.input, call.deadline).await?;
        note_routing(&call.notes, &prepared.routing);
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        // In the SERVER span, which lasts until the stream ends (the span layer holds it).
        let forwarding = forward(
            self.engine.clone(),
            (call.input, call.deadline, call.permissions),
            call.admission,
            prepared,
            sender,
        );
        tokio::spawn(forwarding.instrument(tracing::Span::current()));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn explain(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RoutingDecision>, Status> {
        let call = self.admit(request)?;
        if !call.permissions.explain {
            return Err(RouterError::NotPermitted("Explain is not allowed for this tenant").into());
        }
        let routing = call.engine.explain(&call.input).await?;
        note_routing(&call.notes, &routing);
        Ok(Response::new(visible(
            pb::RoutingDecision::from(&routing),
            call.permissions,
        )))
    }
}

/// Notes the request's identifiers for the layers and on the SERVER span (sizes only: text goes on spans only
/// with content capture, on the `classify` span).
fn note_input(notes: &CallNotes, input: &RouteInput) {
    let mut noted = notes.lock();
    noted.request_id.clone_from(&input.request_id);
    noted.tenant.clone_from(&input.tenant);
    let span = tracing::Span::current();
    span.record(REQUEST_ID, input.request_id.as_str());
    span.record(TENANT, input.tenant.as_str());
    span.set_attribute(HAS_RECORD, input.record.is_some());
    span.set_attribute(TEXT_BYTES, i64::try_from(input.text.len()).unwrap_or(i64::MAX));
}

/// Notes the decision for the layers.
fn note_routing(notes: &CallNotes, routing: &Routing) {
    let mut noted = notes.lock();
    noted.label.clone_from(&routing.classified.label);
    noted.target.clone_from(&routing.decision.target.name);
    noted.rule = routing.decision.rule.clone().unwrap_or_default();
    noted.policy_version.clone_from(&routing.decision.policy_version);
}

/// Runs the shadow of a mirrored request in the background, in the request's trace (under the current SERVER
/// span, without holding it open); the caller's answer never waits for it.
fn mirror(engine: &SharedEngine, input: &RouteInput, plan: &ShadowPlan) {
    let engine = engine.clone();
    let (input, plan) = (input.clone(), plan.clone());
    let parent = tracing::Span::current().context();
    tokio::spawn(async move {
        if let Some(engine) = engine.get() {
            engine.shadow(&input, &plan, parent).await;
        }
    });
}

/// Sends the decision and the prediction at once, then opens the LLM stream (when the target has one) and
/// forwards its text and summary, or its failure as the stream's status. Stops, dropping the LLM stream (and so
/// its HTTP connection), as soon as the client is gone; the engine accounts for the stream however it ends.
async fn forward(
    shared: SharedEngine,
    (input, deadline, permissions): (RouteInput, Option<Instant>, Permissions),
    _admission: Admission,
    prepared: Prepared,
    sender: mpsc::Sender<Result<pb::RouteEvent, Status>>,
) {
    let Some(engine) = shared.get() else { return };
    let request_id = input.request_id.as_str();
    let send = |event: Event| {
        let sender = sender.clone();
        let message = convert::event(request_id, event);
        async move { sender.send(Ok(message)).await.is_ok() }
    };
    let fail = |error: RouterError| {
        let sender = sender.clone();
        async move {
            let _ = sender.send(Err(Status::from(error))).await;
        }
    };
    if !send(Event::Decision(visible((&prepared.routing).into(), permissions))).await {
        return;
    }
    if let Some(prediction) = &prepared.prediction
        && !send(Event::Prediction(prediction.into())).await
    {
        return;
    }
    // The caller leaving abandons the LLM call at once, as it does a stream below.
    let leg = tokio::select! {
        () = sender.closed() => return,
        leg = engine.open_stream(&prepared, &input, deadline) => leg,
    };
    let leg = match leg {
        Ok(leg) => leg,
        Err(error) => return fail(error).await,
    };
    if let Some(plan) = &leg.shadow {
        mirror(&shared, &input, plan);
    }
    if let Some(reason) = leg.rejection {
        let _ = send(Event::Rejection(pb::Rejection { reason })).await;
        return;
    }
    let Some(mut stream) = leg.generation else {
        let _ = send(Event::Summary(convert::summary_without_text(leg.degraded))).await;
        return;
    };
    loop {
        // The caller leaving ends the upstream request at once, without waiting for the backend's next token.
        let item = tokio::select! {
            () = sender.closed() => return,
            item = stream.next() => item,
        };
        match item {
            None => return,
            Some(Ok(GenerationEvent::Delta(text))) => {
                if !send(Event::Delta(pb::TextDelta { text })).await {
                    return;
                }
            }
            Some(Ok(GenerationEvent::End(mut summary))) => {
                let retried = tokio::select! {
                    () = sender.closed() => return,
                    retried = engine.settle_stream(&prepared, &input, deadline, &mut summary) => retried,
                };
                match retried {
                    Ok(Some(text)) => {
                        if !send(Event::Delta(pb::TextDelta { text })).await {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(error) => return fail(error).await,
                }
                let _ = send(Event::Summary(summary.into())).await;
                return;
            }
            Some(Err(error)) => return fail(error).await,
        }
    }
}

/// The caller's deadline from the `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n), less a
/// small margin: the LLM call gives up just before the caller does, so the caller receives DEADLINE_EXCEEDED
/// naming the backend rather than a bare cancellation from the transport's own timer.
fn deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Instant> {
    let timeout = crate::layers::grpc_timeout(metadata.as_ref())?;
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

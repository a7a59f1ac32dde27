//! The `switchyard.v1.Router` gRPC service: converts at the edge and delegates to the engine.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use llm::StreamEvent;
use switchyard_proto::v1 as pb;
use switchyard_proto::v1::route_event::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::convert;
use crate::engine::{Engine, SharedEngine, StreamStart};
use crate::error::RouterError;
use crate::request::RouteInput;

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

    fn engine(&self) -> Result<&Engine, Status> {
        self.engine.get().ok_or_else(|| RouterError::NotReady.into())
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RouteEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::router_server::Router for RouterService {
    #[instrument(skip_all, fields(rpc = "Route"))]
    async fn route(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RouteResponse>, Status> {
        let engine = self.engine()?;
        let input = RouteInput::try_from(request.into_inner())?;
        let outcome = engine.route(&input).await?;
        Ok(Response::new(convert::response(input.request_id, &outcome)))
    }

    type RouteStreamStream = EventStream;

    #[instrument(skip_all, fields(rpc = "RouteStream"))]
    async fn route_stream(&self, request: Request<pb::RouteRequest>) -> Result<Response<EventStream>, Status> {
        let engine = self.engine()?;
        let input = RouteInput::try_from(request.into_inner())?;
        let start = engine.route_stream(&input).await?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(forward(input.request_id, start, sender));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    #[instrument(skip_all, fields(rpc = "Explain"))]
    async fn explain(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RoutingDecision>, Status> {
        let engine = self.engine()?;
        let input = RouteInput::try_from(request.into_inner())?;
        let routing = engine.explain(&input).await?;
        Ok(Response::new((&routing).into()))
    }
}

/// Sends decision, prediction, deltas and summary in order. Stops, dropping the LLM stream (and so its HTTP
/// connection), as soon as the client is gone.
async fn forward(request_id: String, start: StreamStart, sender: mpsc::Sender<Result<pb::RouteEvent, Status>>) {
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
    let Some((backend, mut events)) = start.generation else {
        let _ = send(Event::Summary(pb::Summary {
            finish_reason: "scored".to_owned(),
            ..Default::default()
        }))
        .await;
        return;
    };
    let mut summary = pb::Summary {
        backend,
        ..Default::default()
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(StreamEvent::Delta(text)) => {
                if !send(Event::Delta(pb::TextDelta { text })).await {
                    return;
                }
            }
            Ok(StreamEvent::Finish { finish_reason, model }) => {
                summary.finish_reason = finish_reason;
                summary.model = model.unwrap_or_default();
            }
            Ok(StreamEvent::Usage(usage)) => {
                summary.input_tokens = usage.input_tokens;
                summary.output_tokens = usage.output_tokens;
            }
            Err(error) => {
                let _ = sender.send(Err(RouterError::Llm(error).into())).await;
                return;
            }
        }
    }
    let _ = send(Event::Summary(summary)).await;
}

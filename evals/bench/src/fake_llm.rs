//! A fake OpenAI-compatible backend: a fixed chat completion, whole or streamed after a fixed time to first
//! token. It does no work, so what a benchmark measures through it is the caller's own cost. Asked for an
//! answer that must begin a given way (Switchyard's hybrid prompt), it answers with that opening, as an
//! instruction-following model would, so the gateway's explanation check passes as it does for the real one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use futures::StreamExt;

/// `fake-llm` arguments.
#[derive(clap::Args)]
pub struct FakeArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
    /// Delay before a stream's first token, in milliseconds (whole answers are immediate).
    #[arg(long, default_value_t = 50)]
    ttft_ms: u64,
    /// Tokens in a streamed answer.
    #[arg(long, default_value_t = 16)]
    tokens: u32,
    /// Delay between streamed tokens, in milliseconds.
    #[arg(long, default_value_t = 10)]
    token_interval_ms: u64,
}

#[derive(Clone, Copy)]
struct Pace {
    ttft: Duration,
    tokens: u32,
    interval: Duration,
}

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1764288000,"model":"smollm2","choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":8,"total_tokens":32}}"#;

pub(crate) async fn serve(args: FakeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let pace = Arc::new(Pace {
        ttft: Duration::from_millis(args.ttft_ms),
        tokens: args.tokens,
        interval: Duration::from_millis(args.token_interval_ms),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(pace);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("fake-llm listening on {}", listener.local_addr()?);
    // Like a real server: a response's headers and its first chunk leave at once, not after the client's ACK.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// The opening a request's last message asks the answer to begin with (`must begin: "..."`).
fn required_opening(request: &serde_json::Value) -> Option<String> {
    let content = request.get("messages")?.as_array()?.last()?.get("content")?.as_str()?;
    let (_, rest) = content.split_once("must begin: \"")?;
    rest.split_once('"').map(|(opening, _)| opening.to_owned())
}

async fn complete(State(pace): State<Arc<Pace>>, body: Bytes) -> Response {
    let request = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let streamed = request
        .as_ref()
        .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    let opening = request.as_ref().and_then(required_opening);
    let response = if streamed {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(events(*pace)))
    } else {
        let body = match opening {
            Some(opening) => COMPLETION.replace(
                "Paris is the capital of France.",
                &format!("{}.", opening.replace('"', "'")),
            ),
            None => COMPLETION.to_owned(),
        };
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
    };
    response.unwrap_or_else(|_| {
        let mut failed = Response::new(Body::empty());
        *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        failed
    })
}

fn events(pace: Pace) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let chunk = |i: u32| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"smollm2\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ))
    };
    let tail = Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"smollm2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"smollm2\",\"choices\":[],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":16,\"total_tokens\":40}}\n\ndata: [DONE]\n\n",
    );
    futures::stream::iter(0..pace.tokens)
        .then(move |i| async move {
            tokio::time::sleep(if i == 0 { pace.ttft } else { pace.interval }).await;
            Ok(chunk(i))
        })
        .chain(futures::stream::once(async move { Ok(tail) }))
}

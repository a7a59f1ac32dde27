//! Concurrent streaming callers, each starting its next stream when the last ends; reports the time to first
//! token. Against the gateway (`--grpc`) a stream is a `RouteStream` call with a question the default policy sends
//! to the LLM; against the fake backend (`--direct`) it is the same chat request made straight to it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use switchyard_proto::v1::route_event::Event;
use switchyard_proto::v1::router_client::RouterClient;
use tonic::transport::{Channel, Endpoint};

use crate::body::{Scenario, request};

/// `streams` arguments.
#[derive(clap::Args)]
pub struct StreamArgs {
    /// The gateway's gRPC address (`http://127.0.0.1:50051`).
    #[arg(long, conflicts_with = "direct")]
    grpc: Option<String>,
    /// The backend's chat completions URL, called directly (the baseline).
    #[arg(long)]
    direct: Option<String>,
    /// Streams open at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// How long to run, in seconds; streams started in the first fifth (or during the ramp) are warm-up and not
    /// reported.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Streams per HTTP/2 connection to the gateway (its per-connection limit is 64 by default).
    #[arg(long, default_value_t = 32)]
    per_connection: usize,
    /// Callers start evenly spread over this many milliseconds (about one stream's length), so their streams do
    /// not start in lockstep waves as no real population of callers does.
    #[arg(long, default_value_t = 2000)]
    ramp_ms: u64,
}

#[derive(Default)]
struct Tally {
    ttft: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

pub(crate) async fn run(args: StreamArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let started = Instant::now();
    let warm_until = started + (Duration::from_secs(args.duration_s) / 5).max(Duration::from_millis(args.ramp_ms));
    let end = started + Duration::from_secs(args.duration_s);
    let mut callers = Vec::with_capacity(args.concurrency);
    let (mode, target) = match (&args.grpc, &args.direct) {
        (Some(addr), _) => ("grpc", addr.clone()),
        (None, Some(url)) => ("direct", url.clone()),
        (None, None) => return Err("give --grpc or --direct".into()),
    };
    let connections = args.concurrency.div_ceil(args.per_connection.max(1));
    let mut channels = Vec::new();
    if mode == "grpc" {
        for _ in 0..connections {
            channels.push(Endpoint::from_shared(target.clone())?.connect().await?);
        }
    }
    let http = reqwest::Client::new();
    let ramp = Duration::from_millis(args.ramp_ms);
    for i in 0..args.concurrency {
        let channel = channels.get(i % connections.max(1)).cloned();
        let http = http.clone();
        let url = target.clone();
        let offset = ramp.mul_f64(i as f64 / args.concurrency as f64);
        callers.push(tokio::spawn(async move {
            tokio::time::sleep_until((started + offset).into()).await;
            let mut tally = Tally::default();
            while Instant::now() < end {
                // The fake's delays run on tokio's millisecond timer wheel: a random phase within the millisecond
                // keeps its rounding from favouring one of the two modes.
                let phase = Duration::from_micros(u64::from(jitter_seed(i) % 1000));
                tokio::time::sleep(phase).await;
                let began = Instant::now();
                let outcome = match &channel {
                    Some(channel) => grpc_stream(channel.clone()).await,
                    None => direct_stream(&http, &url).await,
                };
                match outcome {
                    Ok(ttft) if began >= warm_until => tally.ttft.push(ttft),
                    Ok(_) => {}
                    Err(kind) => *tally.errors.entry(kind).or_default() += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for caller in callers {
        let tally = caller.await?;
        all.ttft.extend(tally.ttft);
        for (kind, n) in tally.errors {
            *all.errors.entry(kind).or_default() += n;
        }
    }
    all.ttft.sort();
    let ms = |q: f64| {
        let index = ((all.ttft.len() as f64 - 1.0) * q).round() as usize;
        all.ttft.get(index).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let report = serde_json::json!({
        "mode": mode,
        "concurrency": args.concurrency,
        "streams": all.ttft.len(),
        "errors": all.errors,
        "ttft_ms": {"p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999)},
    });
    println!("{report}");
    Ok(())
}

/// A per-caller, per-moment number for the phase jitter (no RNG crate needed for this).
fn jitter_seed(caller: usize) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    now.wrapping_mul(2_654_435_761).wrapping_add(caller as u32)
}

async fn grpc_stream(channel: Channel) -> Result<Duration, String> {
    let began = Instant::now();
    let mut client = RouterClient::new(channel);
    let mut stream = client
        .route_stream(request(Scenario::Nl)?)
        .await
        .map_err(|s| format!("{:?}", s.code()))?
        .into_inner();
    let mut first = None;
    while let Some(event) = stream.message().await.map_err(|s| format!("{:?}", s.code()))? {
        if first.is_none() && matches!(event.event, Some(Event::Delta(_))) {
            first = Some(began.elapsed());
        }
    }
    first.ok_or_else(|| "no_token".to_owned())
}

async fn direct_stream(http: &reqwest::Client, url: &str) -> Result<Duration, String> {
    let began = Instant::now();
    let body = serde_json::json!({
        "model": "smollm2",
        "stream": true,
        "temperature": 0.0,
        "messages": [{"role": "user", "content": "what is the capital of france?"}],
    });
    let response = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut bytes = response.bytes_stream();
    let mut first = None;
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|e| format!("read: {e}"))?;
        if first.is_none() && chunk.windows(9).any(|w| w == b"\"content\"") {
            first = Some(began.elapsed());
        }
    }
    first.ok_or_else(|| "no_token".to_owned())
}

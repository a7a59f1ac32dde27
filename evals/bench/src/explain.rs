//! One caller sending `Explain` (classify and decide, no backend call) for a set of texts, one after another:
//! the classification path through the gateway under light load, with the tier that answered each request.
//! Reports client-side latency percentiles overall and per tier, as JSON on stdout.

use std::collections::BTreeMap;
use std::time::Instant;

use switchyard_proto::v1::router_client::RouterClient;

use crate::body::record;

/// `explain` arguments.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The gateway's gRPC address (`http://127.0.0.1:50051`).
    #[arg(long)]
    grpc: String,
    /// JSON lines `{"text": ..., "record": true|false}`; a request with `record` carries the README's customer.
    #[arg(long)]
    texts: std::path::PathBuf,
    /// Passes over the texts; the first is warm-up and not reported.
    #[arg(long, default_value_t = 2)]
    passes: usize,
}

/// Runs the passes and prints `{"all": {...}, "linear": {...}, "encoder": {...}}` (µs percentiles, counts).
pub async fn run(args: ExplainArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut requests = Vec::new();
    for line in std::fs::read_to_string(&args.texts)?
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let text = value["text"].as_str().unwrap_or_default().to_owned();
        let features = match (value["record"].as_bool().unwrap_or(false), record()) {
            (true, serde_json::Value::Object(object)) => Some(switchyard_proto::record::from_json(object)?),
            _ => None,
        };
        requests.push(switchyard_proto::v1::RouteRequest {
            text,
            features,
            ..Default::default()
        });
    }
    let mut client = RouterClient::connect(args.grpc.clone()).await?;
    let mut by_tier: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for pass in 0..args.passes.max(2) {
        for request in &requests {
            let started = Instant::now();
            let decision = client.explain(request.clone()).await?.into_inner();
            let micros = started.elapsed().as_secs_f64() * 1e6;
            if pass > 0 {
                by_tier.entry(decision.tier.clone()).or_default().push(micros);
                by_tier.entry("all".to_owned()).or_default().push(micros);
            }
        }
    }
    let summary: serde_json::Map<String, serde_json::Value> = by_tier
        .into_iter()
        .map(|(tier, mut values)| {
            values.sort_by(f64::total_cmp);
            let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
            let stats = serde_json::json!({
                "requests": values.len(), "p50_us": at(0.5), "p90_us": at(0.9), "p99_us": at(0.99), "max_us": at(1.0),
            });
            (if tier.is_empty() { "linear".to_owned() } else { tier }, stats)
        })
        .collect();
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}

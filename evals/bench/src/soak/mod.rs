//! Chaos soak traffic (`evals/soak/run.sh` drives it): open-loop request streams per class at fixed rates for a
//! fixed time, each call with a deadline. Written as JSON lines: first `{"started_unix_ms"}`, then per second and
//! class the calls by gRPC code, latency percentiles, calls answered after their deadline and degraded answers,
//! then every call of the LLM classes on its own (`{"call": ...}`: start, latency, code), so a failure can be
//! matched with the outage it overlapped. Open loop, so a slow gateway is not hidden by the load generator
//! slowing down with it. `capacity` is the closed-loop measurement the soak's rates are set from.

mod traffic;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

pub use traffic::Class;

/// `soak` arguments.
#[derive(clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    target: Target,
    /// A class and its rate in requests per second, e.g. `structured=2000`; repeat for each class.
    #[arg(long = "rate", value_parser = parse_rate, required = true)]
    rates: Vec<(Class, f64)>,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 600)]
    duration_s: u64,
    /// Where the per-second JSON lines go.
    #[arg(long)]
    out: PathBuf,
}

/// `capacity` arguments.
#[derive(clap::Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    target: Target,
    /// The class to measure.
    #[arg(long, value_enum)]
    class: Class,
    /// Callers, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run, in seconds (the first fifth is warm-up and not counted).
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
}

/// Where and how to call.
#[derive(clap::Args)]
struct Target {
    /// The gateway's gRPC address (`http://127.0.0.1:50051`).
    #[arg(long)]
    grpc: String,
    /// The API key the valid requests present.
    #[arg(long, env = "SWITCHYARD_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Deadline of the requests that do not wait on the LLM, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    deadline_ms: u64,
    /// Deadline of the requests that wait on the LLM, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    llm_deadline_ms: u64,
    /// A call not answered this long after its deadline counts as `Hung`, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    grace_ms: u64,
    /// HTTP/2 connections, used in turn.
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

impl Target {
    fn deadline(&self, class: Class) -> Duration {
        Duration::from_millis(if class.uses_llm() {
            self.llm_deadline_ms
        } else {
            self.deadline_ms
        })
    }

    async fn channels(&self) -> Result<Vec<Channel>, Box<dyn std::error::Error + Send + Sync>> {
        let mut channels = Vec::with_capacity(self.connections);
        for _ in 0..self.connections.max(1) {
            channels.push(Endpoint::from_shared(self.grpc.clone())?.connect().await?);
        }
        Ok(channels)
    }
}

fn parse_rate(text: &str) -> Result<(Class, f64), String> {
    let (class, rate) = text.split_once('=').ok_or("expected CLASS=RATE")?;
    let class = <Class as clap::ValueEnum>::from_str(class, true)?;
    let rate: f64 = rate.parse().map_err(|e| format!("rate: {e}"))?;
    if rate.is_finite() && rate >= 0.0 {
        Ok((class, rate))
    } else {
        Err("rate must be ≥ 0".to_owned())
    }
}

/// One second of one class.
#[derive(Default)]
struct Bucket {
    codes: BTreeMap<String, u64>,
    latencies_ms: Vec<f64>,
    past_deadline: u64,
    degraded: u64,
    /// Calls the schedule held but the generator did not send (it fell behind: see `MAX_LAG`).
    not_sent: u64,
}

/// How far behind its schedule the generator may fall before it drops calls rather than send them in a burst:
/// a stall of the generator itself must not reach the gateway as a wall of simultaneous calls no population of
/// independent callers would make.
const MAX_LAG: Duration = Duration::from_millis(20);

/// One call of an LLM class.
struct Call {
    class: Class,
    start_ms: u64,
    latency_ms: f64,
    code: String,
    degraded: Option<String>,
}

/// What the soak records, filled by every call.
#[derive(Default)]
struct Tallies {
    buckets: BTreeMap<(u64, Class), Bucket>,
    llm_calls: Vec<Call>,
}

type Shared = Arc<Mutex<Tallies>>;

pub(crate) async fn soak(args: SoakArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channels = Arc::new(args.target.channels().await?);
    let target = Arc::new(args.target);
    let tallies: Shared = Arc::default();
    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let end = started + Duration::from_secs(args.duration_s);
    let mut senders = Vec::new();
    for (class, rate) in args.rates.iter().copied() {
        let (channels, target, tallies) = (channels.clone(), target.clone(), tallies.clone());
        senders.push(tokio::spawn(async move {
            // Every millisecond, send what the rate says should have been sent by now.
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut sent = 0u64;
            let mut calls = Vec::new();
            while Instant::now() < end {
                tick.tick().await;
                let elapsed = started.elapsed();
                let due = (elapsed.as_secs_f64() * rate) as u64;
                let lag_allowed = (MAX_LAG.as_secs_f64() * rate) as u64 + 1;
                if due > sent + lag_allowed {
                    let dropped = due - lag_allowed - sent;
                    let mut tallies = tallies.lock().unwrap_or_else(PoisonError::into_inner);
                    tallies.buckets.entry((elapsed.as_secs(), class)).or_default().not_sent += dropped;
                    sent += dropped;
                }
                while sent < due {
                    let channel = channels[(sent as usize) % channels.len()].clone();
                    let (target, tallies) = (target.clone(), tallies.clone());
                    let n = sent;
                    calls.push(tokio::spawn(async move {
                        let start = started.elapsed();
                        let deadline = target.deadline(class);
                        let grace = Duration::from_millis(target.grace_ms);
                        let outcome = traffic::call(channel, class, n, &target.api_key, deadline, grace).await;
                        record(&tallies, start, class, outcome, deadline);
                    }));
                    sent += 1;
                }
                calls.retain(|call| !call.is_finished());
            }
            for call in calls {
                let _ = call.await;
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    write_lines(&tallies, started_unix_ms, &args.out)
}

fn record(tallies: &Shared, start: Duration, class: Class, outcome: traffic::Outcome, deadline: Duration) {
    let mut tallies = tallies.lock().unwrap_or_else(PoisonError::into_inner);
    let latency_ms = outcome.latency.as_secs_f64() * 1e3;
    let bucket = tallies.buckets.entry((start.as_secs(), class)).or_default();
    *bucket.codes.entry(outcome.code.clone()).or_default() += 1;
    bucket.latencies_ms.push(latency_ms);
    // 100 ms of slack: the deadline is the gateway's to enforce, the slack is the network and this process.
    bucket.past_deadline += u64::from(outcome.latency > deadline + Duration::from_millis(100));
    bucket.degraded += u64::from(outcome.degraded.is_some());
    if class.uses_llm() {
        let start_ms = start.as_millis() as u64;
        let (code, degraded) = (outcome.code, outcome.degraded);
        tallies.llm_calls.push(Call {
            class,
            start_ms,
            latency_ms,
            code,
            degraded,
        });
    }
}

fn write_lines(
    tallies: &Shared,
    started_unix_ms: u128,
    out: &PathBuf,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tallies = std::mem::take(&mut *tallies.lock().unwrap_or_else(PoisonError::into_inner));
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(file, "{}", serde_json::json!({ "started_unix_ms": started_unix_ms }))?;
    for (key, mut bucket) in tallies.buckets {
        bucket.latencies_ms.sort_by(f64::total_cmp);
        let line = serde_json::json!({
            "t": key.0,
            "class": key.1.name(),
            "codes": bucket.codes,
            "p50_ms": percentile(&bucket.latencies_ms, 0.5),
            "p99_ms": percentile(&bucket.latencies_ms, 0.99),
            "max_ms": bucket.latencies_ms.last().copied().unwrap_or(f64::NAN),
            "past_deadline": bucket.past_deadline,
            "not_sent": bucket.not_sent,
            "degraded": bucket.degraded,
        });
        writeln!(file, "{line}")?;
    }
    for call in tallies.llm_calls {
        let line = serde_json::json!({ "call": {
            "class": call.class.name(),
            "start_ms": call.start_ms,
            "latency_ms": call.latency_ms,
            "code": call.code,
            "degraded": call.degraded,
        }});
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

pub(crate) async fn capacity(args: CapacityArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channels = args.target.channels().await?;
    let started = Instant::now();
    let counted_from = started + Duration::from_secs(args.duration_s) / 5;
    let end = started + Duration::from_secs(args.duration_s);
    let deadline = args.target.deadline(args.class);
    let grace = Duration::from_millis(args.target.grace_ms);
    let mut callers = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let channel = channels[i % channels.len()].clone();
        let key = args.target.api_key.clone();
        let class = args.class;
        callers.push(tokio::spawn(async move {
            let mut tally: (BTreeMap<String, u64>, Vec<f64>) = Default::default();
            let mut n = i as u64;
            while Instant::now() < end {
                let outcome = traffic::call(channel.clone(), class, n, &key, deadline, grace).await;
                n += 1_000;
                if Instant::now() >= counted_from && Instant::now() < end {
                    *tally.0.entry(outcome.code).or_default() += 1;
                    tally.1.push(outcome.latency.as_secs_f64() * 1e3);
                }
            }
            tally
        }));
    }
    let (mut codes, mut latencies) = (BTreeMap::<String, u64>::new(), Vec::new());
    for caller in callers {
        let (caller_codes, caller_latencies) = caller.await?;
        for (code, n) in caller_codes {
            *codes.entry(code).or_default() += n;
        }
        latencies.extend(caller_latencies);
    }
    latencies.sort_by(f64::total_cmp);
    let seconds = (end - counted_from).as_secs_f64();
    let ok = codes.get("Ok").copied().unwrap_or(0);
    let report = serde_json::json!({
        "class": args.class.name(),
        "concurrency": args.concurrency,
        "ok_per_s": ok as f64 / seconds,
        "codes": codes,
        "p50_ms": percentile(&latencies, 0.5),
        "p99_ms": percentile(&latencies, 0.99),
    });
    println!("{report}");
    Ok(())
}

//! `switchyard-bench`: the pieces `evals/bench/run.sh` needs that no installable tool provides.
//!
//! - `body`: a gRPC-framed `RouteRequest` for one scenario, for h2load's `-d`.
//! - `fake-llm`: an OpenAI-compatible backend with a fixed answer (whole, or streamed after a fixed time to first
//!   token), so the gateway's own overhead can be measured against a backend that costs nearly nothing.
//! - `streams`: N concurrent callers streaming through the gateway (or straight to the fake), reporting the time
//!   to first token; the difference between the two is what the gateway adds.
//! - `explain`: one caller classifying a set of texts through the gateway (`Explain`), latency per cascade tier.
//! - `soak` / `capacity`: the chaos soak's open-loop mixed traffic, and the closed-loop capacity it is set from.

mod body;
mod explain;
mod fake_llm;
mod soak;
mod streams;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchyard-bench", about = "Benchmark tools for Switchyard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes one scenario's request, gRPC-framed (or as JSON for the Python peer), to stdout.
    Body(body::BodyArgs),
    /// Serves a fake OpenAI-compatible chat completions endpoint.
    FakeLlm(fake_llm::FakeArgs),
    /// Measures time to first token at a fixed number of concurrent streams.
    Streams(streams::StreamArgs),
    /// Measures classification latency through the gateway (`Explain`), per cascade tier.
    Explain(explain::ExplainArgs),
    /// Sends open-loop mixed traffic for the chaos soak; writes per-second outcomes as JSON lines.
    Soak(soak::SoakArgs),
    /// Measures one request class's closed-loop capacity through the gateway.
    Capacity(soak::CapacityArgs),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match Cli::parse().command {
        Command::Body(args) => body::write(&args),
        Command::FakeLlm(args) => fake_llm::serve(args).await,
        Command::Streams(args) => streams::run(args).await,
        Command::Explain(args) => explain::run(args).await,
        Command::Soak(args) => soak::soak(args).await,
        Command::Capacity(args) => soak::capacity(args).await,
    }
}

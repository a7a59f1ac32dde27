//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The repository's default config, used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/switchyard.toml");

/// Switchyard: a hybrid router for classical-model and LLM requests.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: the repository's deploy/config/switchyard.toml).
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// gRPC listen address, overriding the config's server.listen.
        #[arg(long, env = "SWITCHYARD_LISTEN")]
        listen: Option<SocketAddr>,
        /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`), overriding the config's server.admin_listen.
        #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
    },
    /// Check a config file and its policy file (against the backends and the classifier's labels); exits
    /// non-zero naming file, line, key and reason.
    Validate {
        /// Config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the policy file's JSON Schema (the one in docs/policy.schema.json).
    Schema,
    /// Send a request to a running gateway and print the answer.
    Route(ClientArgs),
    /// Ask a running gateway where a request would go, without dispatching it.
    Explain(ClientArgs),
}

/// A request, from the command line.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The gateway's address.
    #[arg(long, env = "SWITCHYARD_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Request text.
    #[arg(long, default_value = "")]
    pub text: String,
    /// Customer record as a JSON object.
    #[arg(long)]
    pub features: Option<String>,
    /// Tenant.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Target to force (where the policy allows it).
    #[arg(long, default_value = "")]
    pub force_target: String,
    /// Output token limit.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[arg(long)]
    pub temperature: Option<f32>,
}

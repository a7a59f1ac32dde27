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
    /// Read an API key from stdin and print the SHA-256 digest the keys file holds for it.
    HashKey,
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
    /// Tenant (with authentication on, the key's tenant; a different one is refused).
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// API key, sent as `authorization: Bearer <key>` (from the environment, so it stays out of shell history).
    #[arg(long, env = "SWITCHYARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,
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

/// An API key held by a client (the CLI): never shown by `Debug`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ApiKey {
    type Err = std::convert::Infallible;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Ok(Self(key.trim().to_owned()))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

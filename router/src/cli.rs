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
        #[arg(long, env = "SWITCHYARD_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// gRPC listen address, overriding the config's server.listen.
        #[arg(long, env = "SWITCHYARD_LISTEN")]
        listen: Option<SocketAddr>,
        /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`), overriding the config's server.admin_listen.
        #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
        /// A backend's base URL, overriding the config's `backends.NAME.base_url` (repeatable; in the
        /// environment, comma-separated): where the LLM runs is the deployment's business, not the config's.
        #[arg(
            long = "backend-url",
            value_name = "NAME=URL",
            env = "SWITCHYARD_BACKEND_URLS",
            value_delimiter = ','
        )]
        backend_urls: Vec<BackendUrl>,
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
    /// Ask a running gateway's `grpc.health.v1` service for its status; exits 0 only when it is SERVING (models
    /// loaded, not draining). For container HEALTHCHECKs and Kubernetes exec probes.
    Health(HealthArgs),
}

/// `--backend-url NAME=URL`: one backend's base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrl {
    /// The backend's name in the config (`[backends.NAME]`).
    pub backend: String,
    /// Its new base URL.
    pub url: String,
}

impl std::str::FromStr for BackendUrl {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once('=') {
            Some((backend, url)) if !backend.trim().is_empty() && !url.trim().is_empty() => Ok(Self {
                backend: backend.trim().to_owned(),
                url: url.trim().to_owned(),
            }),
            _ => Err(format!(
                "{value:?} is not NAME=URL (e.g. local=http://127.0.0.1:8081/v1)"
            )),
        }
    }
}

/// `switchyard health`: where to ask and how.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The gateway's address (`https://` when its gRPC port serves TLS).
    #[arg(long, env = "SWITCHYARD_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// The health service name: "" for the server as a whole, `switchyard.v1.Router`, or
    /// `switchyard.backend.<name>` for one LLM backend's circuit.
    #[arg(long, default_value = "")]
    pub service: String,
    /// How long to wait for the answer, connecting included.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// CA certificate (PEM) to verify an `https://` gateway with; default: the system's roots.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), when the gateway requires one (`server.tls.client_ca`).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// The name to verify the gateway's certificate against, when it differs from the address's host.
    #[arg(long)]
    pub tls_server_name: Option<String>,
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

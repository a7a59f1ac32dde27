//! Configuration: the raw TOML shape (serde, unknown keys refused, defaults), then `validate` into typed values.
//!
//! Every error names the file, the key and the reason. Secrets never live in the file: a backend names the
//! environment variable that holds its API key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::telemetry::{OtlpProtocol, TelemetryConfig};

mod drift;
mod raw;
mod scorers;
mod sources;

pub use drift::DriftConfig;
use raw::{RawConfig, RawLogFormat};
pub use scorers::RemoteScorerConfig;
pub use sources::{ModelSource, Resolved, VersionPolicy};

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The offending key, dotted (`backends.local.base_url`); `-` for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (re-read when the models reload).
    pub file: PathBuf,
    /// Server settings.
    pub server: ServerConfig,
    /// Model files and the inference pool.
    pub models: ModelsConfig,
    /// LLM backends by name, with their guards.
    pub backends: BTreeMap<String, (llm::BackendConfig, llm::GuardConfig)>,
    /// Token prices by backend name.
    pub prices: BTreeMap<String, Prices>,
    /// The routing policy file (targets, rules, tenants), checked when the models are loaded.
    pub policy: PolicyConfig,
    /// Traces, metrics export, content capture.
    pub telemetry: TelemetryConfig,
    /// The keys file (API keys, client-certificate names) when authentication is required; `None`: off.
    pub auth: Option<std::sync::Arc<crate::auth::KeysFile>>,
    /// The server's in-flight bound and per-tenant quotas.
    pub limits: crate::quota::Limits,
    /// Input drift monitoring.
    pub drift: DriftConfig,
    /// Remote churn scorers by name.
    pub scorers: BTreeMap<String, RemoteScorerConfig>,
}

/// Environment variable naming the API keys file (overrides `auth.keys_file`).
pub const API_KEYS_FILE_ENV: &str = "SWITCHYARD_API_KEYS_FILE";

/// A backend's token prices, in currency units per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    /// Per million input (prompt) tokens.
    pub input_per_mtok: f64,
    /// Per million output (generated) tokens.
    pub output_per_mtok: f64,
}

impl Prices {
    /// The cost of a call.
    pub fn cost(&self, input_tokens: u32, output_tokens: u32) -> f64 {
        (f64::from(input_tokens) * self.input_per_mtok + f64::from(output_tokens) * self.output_per_mtok) / 1e6
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP address (`/metrics`, `/healthz`, `/readyz`).
    pub admin_listen: SocketAddr,
    /// Log line format.
    pub log_format: crate::telemetry::logs::LogFormat,
    /// Log level filter (`RUST_LOG` overrides it).
    pub log_level: String,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// After SIGTERM, how long the server keeps serving with readiness already off (so load balancers stop
    /// sending before it stops accepting).
    pub drain_delay: Duration,
    /// Upper bound for one request, whatever the caller's deadline.
    pub request_timeout: Duration,
    /// Longest accepted `text`, in bytes.
    pub max_text_bytes: usize,
    /// Concurrent requests per connection; more are shed.
    pub concurrency_per_connection: usize,
    /// What one gRPC connection may hold and how long it lives (HTTP/2), and how many may be open.
    pub connections: ConnectionLimits,
    /// The same for the admin port.
    pub admin_connections: AdminLimits,
    /// TLS on the gRPC port (`None`: plaintext).
    pub tls: Option<crate::tls::TlsFiles>,
}

/// What one gRPC connection may hold and how long it lives: HTTP/2 settings, so a client that opens streams it
/// never reads, or a connection nobody uses, holds bounded memory for a bounded time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; a newcomer beyond is refused (GOAWAY) and closed.
    pub max_connections: usize,
    /// A connection that has sent no byte (or not finished its TLS handshake) by then is dropped.
    pub handshake_timeout: Duration,
    /// A connection with no call in flight for this long is told to go away.
    pub idle_timeout: Duration,
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); a client wanting more waits.
    pub max_concurrent_streams: u32,
    /// An HTTP/2 PING after this long without a frame from the client...
    pub keepalive_interval: Duration,
    /// ...and the connection closed when the PING is not answered within this.
    pub keepalive_timeout: Duration,
    /// After this, the connection is told to go away (GOAWAY): what it held is freed, and L4 load balancers get
    /// to spread the client's next connection.
    pub max_connection_age: Duration,
    /// Calls in flight at the GOAWAY may finish this long; then the connection closes. At least the request
    /// timeout, so no call is cut.
    pub max_connection_age_grace: Duration,
}

/// What the admin port's connections may hold and how long they live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections open at once; a newcomer beyond gets a 503 and is closed.
    pub max_connections: usize,
    /// A request's headers must have arrived within this (also a silent connection's first bytes).
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
}

/// Where the routing policy lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The policy file.
    pub file: PathBuf,
    /// Reload it when it changes (it is also reloaded on SIGHUP).
    pub watch: bool,
}

/// Model files and the inference pool.
#[derive(Debug, Clone)]
pub struct ModelsConfig {
    /// The ONNX Runtime shared library; `None` means `ORT_DYLIB_PATH`.
    pub onnx_runtime: Option<PathBuf>,
    /// Where the classifier comes from.
    pub classifier: ModelSource,
    /// Where the scorer comes from.
    pub scorer: ModelSource,
    /// Pool: workers, queue capacity, batching, the cascade; its model paths are the sources' resolution when
    /// the config was read (a reload resolves again).
    pub pool: classical::PoolConfig,
    /// Reload the models when their sources or the config file change.
    pub watch: bool,
}

impl ModelsConfig {
    /// The pool for the sources as they resolve now, with each source's resolution.
    pub fn resolve(&self) -> Result<(classical::PoolConfig, Resolved, Resolved), String> {
        let classifier = self
            .classifier
            .resolve()
            .map_err(|e| format!("models.classifier: {e}"))?;
        let scorer = self.scorer.resolve().map_err(|e| format!("models.scorer: {e}"))?;
        let pool = classical::PoolConfig {
            classifier: classifier.file.clone(),
            scorer: scorer.file.clone(),
            ..self.pool.clone()
        };
        Ok((pool, classifier, scorer))
    }
}

impl Config {
    /// Reads and validates `path`. Relative model paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| error(path, "-", format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses and validates config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|span| locate(text, span.start))
                .unwrap_or_else(|| "-".to_owned());
            error(path, &key, e.message().to_owned())
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        validate(path, base, raw)
    }

    /// Points backend `name` at `url` (`switchyard serve --backend-url`), checked as the file's `base_url` is.
    pub fn set_backend_url(&mut self, name: &str, url: &str) -> Result<(), ConfigError> {
        let key = format!("backends.{name}.base_url");
        let Some((backend, _)) = self.backends.get_mut(name) else {
            let known: Vec<&str> = self.backends.keys().map(String::as_str).collect();
            let reason = format!("--backend-url names no such backend (configured: {})", known.join(", "));
            return Err(error(&self.file, &key, reason));
        };
        backend.base_url =
            base_url(url).map_err(|reason| error(&self.file, &key, format!("--backend-url: {reason}")))?;
        Ok(())
    }
}

/// A backend's base URL without its trailing `/`, or why it is not one.
fn base_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    Ok(trimmed.to_owned())
}

/// `[telemetry]`: URLs, protocol, CA file, ratio and sizes checked.
fn telemetry(path: &Path, base: &Path, raw: raw::RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
    let err = |key: &str, reason: String| error(path, key, reason);
    let otlp_endpoint = match raw.otlp_endpoint {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            return Err(err("telemetry.otlp_endpoint", format!("{url:?} is not an http(s) URL")));
        }
        Some(url) => Some(url.trim_end_matches('/').to_owned()),
        None => None,
    };
    let otlp_protocol = match raw.otlp_protocol {
        Some(p) => Some(OtlpProtocol::parse(&p).ok_or_else(|| {
            err(
                "telemetry.otlp_protocol",
                format!("{p:?} is not one of \"grpc\", \"http/protobuf\""),
            )
        })?),
        None => None,
    };
    if let Some(ratio) = raw.sample_ratio
        && !(0.0..=1.0).contains(&ratio)
    {
        return Err(err("telemetry.sample_ratio", format!("{ratio} is outside [0, 1]")));
    }
    let otlp_ca = match &raw.otlp_ca_file {
        Some(file) => {
            let file = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            let pem = crate::telemetry::read_ca(&file).map_err(|reason| err("telemetry.otlp_ca_file", reason))?;
            Some(pem)
        }
        None => None,
    };
    let metrics_interval = humantime::parse_duration(&raw.metrics_interval).map_err(|e| {
        err(
            "telemetry.metrics_interval",
            format!("{:?} is not a duration ({e})", raw.metrics_interval),
        )
    })?;
    Ok(TelemetryConfig {
        otlp_endpoint,
        otlp_protocol,
        otlp_ca,
        traces: raw.traces,
        metrics: raw.metrics,
        metrics_interval,
        sample_ratio: raw.sample_ratio,
        capture_content: match raw.capture_content {
            true => Some(positive(path, "telemetry.max_content_bytes", raw.max_content_bytes)?),
            false => None,
        },
        service_instance_id: raw.service_instance_id,
    })
}

fn validate(path: &Path, base: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let err = |key: &str, reason: String| error(path, key, reason);
    let duration = |key: &str, value: &str| {
        humantime::parse_duration(value).map_err(|e| err(key, format!("{value:?} is not a duration ({e})")))
    };
    let positive_duration = |key: &str, value: &str| positive_duration(path, key, value);
    let server = ServerConfig {
        listen: raw.server.listen.parse().map_err(|e| {
            err(
                "server.listen",
                format!("{:?} is not a socket address ({e})", raw.server.listen),
            )
        })?,
        admin_listen: raw.server.admin_listen.parse().map_err(|e| {
            err(
                "server.admin_listen",
                format!("{:?} is not a socket address ({e})", raw.server.admin_listen),
            )
        })?,
        log_format: match raw.server.log_format {
            RawLogFormat::Json => crate::telemetry::logs::LogFormat::Json,
            RawLogFormat::Text => crate::telemetry::logs::LogFormat::Text,
        },
        log_level: match tracing_subscriber::EnvFilter::try_new(&raw.server.log_level) {
            Ok(_) => raw.server.log_level.clone(),
            Err(e) => {
                return Err(err(
                    "server.log_level",
                    format!("{:?} is not a level filter ({e})", raw.server.log_level),
                ));
            }
        },
        shutdown_grace: duration("server.shutdown_grace", &raw.server.shutdown_grace)?,
        drain_delay: duration("server.drain_delay", &raw.server.drain_delay)?,
        request_timeout: duration("server.request_timeout", &raw.server.request_timeout)?,
        max_text_bytes: positive(path, "server.max_text_bytes", raw.server.max_text_bytes)?,
        concurrency_per_connection: positive(
            path,
            "server.concurrency_per_connection",
            raw.server.concurrency_per_connection,
        )?,
        admin_connections: AdminLimits {
            max_connections: positive(path, "server.admin_max_connections", raw.server.admin_max_connections)?,
            header_timeout: positive_duration("server.admin_header_timeout", &raw.server.admin_header_timeout)?,
            idle_timeout: positive_duration("server.admin_idle_timeout", &raw.server.admin_idle_timeout)?,
        },
        connections: ConnectionLimits {
            max_connections: positive(path, "server.max_connections", raw.server.max_connections)?,
            handshake_timeout: positive_duration("server.handshake_timeout", &raw.server.handshake_timeout)?,
            idle_timeout: positive_duration("server.idle_timeout", &raw.server.idle_timeout)?,
            max_concurrent_streams: match raw.server.max_concurrent_streams {
                0 => return Err(err("server.max_concurrent_streams", "must be at least 1".to_owned())),
                streams => streams,
            },
            keepalive_interval: positive_duration("server.keepalive_interval", &raw.server.keepalive_interval)?,
            keepalive_timeout: positive_duration("server.keepalive_timeout", &raw.server.keepalive_timeout)?,
            max_connection_age: positive_duration("server.max_connection_age", &raw.server.max_connection_age)?,
            max_connection_age_grace: duration(
                "server.max_connection_age_grace",
                &raw.server.max_connection_age_grace,
            )?,
        },
        tls: None,
    };
    let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    // A call in flight when its connection reaches its age must be able to finish: no request outlives
    // request_timeout, so a grace at least that long never cuts one.
    if server.connections.max_connection_age_grace < server.request_timeout {
        return Err(err(
            "server.max_connection_age_grace",
            format!(
                "{:?} is shorter than server.request_timeout ({:?}): calls in flight at a connection's maximum age \
                 would be cut",
                raw.server.max_connection_age_grace, raw.server.request_timeout
            ),
        ));
    }
    let mut server = server;
    if let Some(tls) = &raw.server.tls {
        let files = crate::tls::TlsFiles {
            cert: resolve(&tls.cert_file),
            key: resolve(&tls.key_file),
            client_ca: tls.client_ca_file.as_deref().map(resolve),
            admin: tls.admin,
        };
        crate::tls::check(&files).map_err(|e| {
            let key = if e.file == files.key {
                "server.tls.key_file"
            } else if Some(&e.file) == files.client_ca.as_ref() {
                "server.tls.client_ca_file"
            } else {
                "server.tls.cert_file"
            };
            err(key, e.to_string())
        })?;
        server.tls = Some(files);
    }
    if let Some(c) = &raw.models.cascade
        && !resolve(&c.encoder).is_file()
    {
        return Err(err(
            "models.cascade.encoder",
            format!("{} does not exist", resolve(&c.encoder).display()),
        ));
    }
    let cascade = match &raw.models.cascade {
        Some(c) => Some(cascade(path, c, resolve(&c.encoder))?),
        None => None,
    };
    let (classifier, resolved_classifier) = sources::source(
        path,
        "models.classifier",
        resolve(&raw.models.classifier),
        &raw.models.classifier_version,
        &raw.models.classifier_candidate,
    )?;
    let (scorer, resolved_scorer) = sources::source(
        path,
        "models.scorer",
        resolve(&raw.models.scorer),
        &raw.models.scorer_version,
        &raw.models.scorer_candidate,
    )?;
    let models = ModelsConfig {
        onnx_runtime: raw.models.onnx_runtime.as_deref().map(resolve),
        classifier,
        scorer,
        pool: classical::PoolConfig {
            classifier: resolved_classifier.file,
            scorer: resolved_scorer.file,
            workers: positive(path, "models.workers", raw.models.workers)?,
            queue_capacity: positive(path, "models.queue_capacity", raw.models.queue_capacity)?,
            classifier_batch: batch(path, "models.classifier_batch", &raw.models.classifier_batch)?,
            scorer_batch: batch(path, "models.scorer_batch", &raw.models.scorer_batch)?,
            cascade,
        },
        watch: raw.models.watch,
    };

    let telemetry = telemetry(path, base, raw.telemetry)?;
    let mut backends = BTreeMap::new();
    let mut prices = BTreeMap::new();
    for (name, b) in raw.backends {
        let key = |field: &str| format!("backends.{name}.{field}");
        let base_url = base_url(&b.base_url).map_err(|reason| err(&key("base_url"), reason))?;
        if b.model.trim().is_empty() {
            return Err(err(&key("model"), "must not be empty".to_owned()));
        }
        let api_key = match &b.api_key_env {
            None => None,
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| err(&key("api_key_env"), format!("environment variable {var} is not set")))?
                    .into(),
            ),
        };
        let ca_certificates = match &b.ca_file {
            Some(file) => llm::read_ca_bundle(&resolve(file))
                .map_err(|reason| err(&key("ca_file"), format!("{}: {reason}", resolve(file).display())))?,
            None => Vec::new(),
        };
        let request_timeout = duration(&key("request_timeout"), &b.request_timeout)?;
        let first_token_timeout = duration(&key("first_token_timeout"), &b.first_token_timeout)?;
        let config = llm::BackendConfig {
            name: name.clone(),
            base_url,
            model: b.model,
            api_key,
            ca_certificates,
            connect_timeout: duration(&key("connect_timeout"), &b.connect_timeout)?,
            request_timeout,
            inter_token_timeout: duration(&key("inter_token_timeout"), &b.inter_token_timeout)?,
            headers: b.headers.into_iter().collect(),
            max_response_bytes: positive(path, &key("max_response_bytes"), b.max_response_bytes)?,
            provider: match b.provider.trim() {
                "" => return Err(err(&key("provider"), "must not be empty".to_owned())),
                provider => provider.to_owned(),
            },
            capture_content: telemetry.capture_content,
        };
        if !(0.0..=1.0).contains(&b.retry_budget_ratio) {
            return Err(err(
                &key("retry_budget_ratio"),
                format!("{} is outside [0, 1]", b.retry_budget_ratio),
            ));
        }
        for (field, price) in [
            ("input_price_per_mtok", b.input_price_per_mtok),
            ("output_price_per_mtok", b.output_price_per_mtok),
        ] {
            if !(price.is_finite() && price >= 0.0) {
                return Err(err(&key(field), format!("{price} is not a price")));
            }
        }
        let guard = llm::GuardConfig {
            max_concurrent: positive(path, &key("max_concurrent"), b.max_concurrent)?,
            max_queued: b.max_queued,
            first_token_timeout,
            max_attempts: u32::try_from(positive(path, &key("max_attempts"), b.max_attempts as usize)?).unwrap_or(1),
            base_backoff: duration(&key("base_backoff"), &b.base_backoff)?,
            max_backoff: duration(&key("max_backoff"), &b.max_backoff)?,
            retry_budget_ratio: b.retry_budget_ratio,
            breaker: llm::BreakerConfig {
                failure_threshold: u32::try_from(positive(
                    path,
                    &key("breaker_failures"),
                    b.breaker_failures as usize,
                )?)
                .unwrap_or(1),
                open_for: duration(&key("breaker_open_for"), &b.breaker_open_for)?,
                // The longest one attempt can legitimately take: a probe silent for longer is presumed lost.
                probe_timeout: request_timeout.max(first_token_timeout),
            },
        };
        prices.insert(
            name.clone(),
            Prices {
                input_per_mtok: b.input_price_per_mtok,
                output_per_mtok: b.output_price_per_mtok,
            },
        );
        backends.insert(name, (config, guard));
    }

    let scorers = scorers::scorers(path, raw.scorers, &backends)?;
    let policy = PolicyConfig {
        file: resolve(&raw.policy.file),
        watch: raw.policy.watch,
    };
    if !policy.file.is_file() {
        return Err(err("policy.file", format!("{} does not exist", policy.file.display())));
    }
    let auth = match raw.auth.mode {
        raw::RawAuthMode::Off => None,
        raw::RawAuthMode::Required => {
            let file = std::env::var_os(API_KEYS_FILE_ENV)
                .map(PathBuf::from)
                .or_else(|| raw.auth.keys_file.as_deref().map(resolve))
                .ok_or_else(|| {
                    err(
                        "auth.keys_file",
                        format!("required with mode = \"required\" (or set {API_KEYS_FILE_ENV})"),
                    )
                })?;
            let verified = server.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some());
            let keys =
                crate::auth::KeysFile::load(&file, verified).map_err(|e| err("auth.keys_file", e.to_string()))?;
            Some(std::sync::Arc::new(keys))
        }
    };
    let max_in_flight = match raw.limits.max_in_flight {
        Some(n) => Some(positive(path, "limits.max_in_flight", n)?),
        None => None,
    };
    let mut limits = crate::quota::Limits {
        max_in_flight,
        per_tenant: tenant_limits(path, "limits.per_tenant", &raw.limits.per_tenant)?,
        tenants: std::collections::HashMap::new(),
    };
    for (name, tenant) in &raw.limits.tenants {
        let key = format!("limits.tenants.{name}");
        crate::auth::check_tenant(name).map_err(|reason| err(&key, reason))?;
        limits.tenants.insert(name.clone(), tenant_limits(path, &key, tenant)?);
    }
    Ok(Config {
        file: path.to_path_buf(),
        server,
        models,
        backends,
        prices,
        policy,
        telemetry,
        auth,
        limits,
        drift: drift::drift(path, &raw.drift)?,
        scorers,
    })
}

fn tenant_limits(
    path: &Path,
    key: &str,
    raw: &raw::RawTenantLimits,
) -> Result<crate::quota::TenantLimits, ConfigError> {
    let nonzero = |field: &str, value: Option<u32>| match value {
        Some(0) => Err(error(
            path,
            &format!("{key}.{field}"),
            "must be at least 1 (omit it for no limit)".to_owned(),
        )),
        Some(n) => Ok(std::num::NonZeroU32::new(n)),
        None => Ok(None),
    };
    let requests_per_second = nonzero("requests_per_second", raw.requests_per_second)?;
    let burst = nonzero("burst", raw.burst)?;
    if burst.is_some() && requests_per_second.is_none() {
        return Err(error(
            path,
            &format!("{key}.burst"),
            "needs requests_per_second".to_owned(),
        ));
    }
    let max_in_flight = match raw.max_in_flight {
        Some(n) => Some(positive(path, &format!("{key}.max_in_flight"), n)?),
        None => None,
    };
    if raw.llm_tokens_per_hour == Some(0) {
        return Err(error(
            path,
            &format!("{key}.llm_tokens_per_hour"),
            "must be at least 1 (omit it for no limit)".to_owned(),
        ));
    }
    Ok(crate::quota::TenantLimits {
        requests_per_second,
        burst,
        max_in_flight,
        llm_tokens_per_hour: raw.llm_tokens_per_hour,
    })
}

/// Longest a batch may wait for company: beyond it, waiting only adds latency.
const MAX_BATCH_WAIT: Duration = Duration::from_millis(10);
/// Largest batch: bounds one run's memory and the latency of the requests in it.
const MAX_BATCH_SIZE: usize = 1024;

fn batch(path: &Path, key: &str, raw: &raw::RawBatch) -> Result<classical::BatchConfig, ConfigError> {
    let size_key = format!("{key}.max_size");
    let max_size = positive(path, &size_key, raw.max_size)?;
    if max_size > MAX_BATCH_SIZE {
        return Err(error(path, &size_key, format!("{max_size} is above {MAX_BATCH_SIZE}")));
    }
    let wait_key = format!("{key}.max_wait");
    let max_wait = humantime::parse_duration(&raw.max_wait)
        .map_err(|e| error(path, &wait_key, format!("{:?} is not a duration ({e})", raw.max_wait)))?;
    if max_wait > MAX_BATCH_WAIT {
        return Err(error(
            path,
            &wait_key,
            format!(
                "{} is above {}",
                raw.max_wait,
                humantime::format_duration(MAX_BATCH_WAIT)
            ),
        ));
    }
    Ok(classical::BatchConfig { max_size, max_wait })
}

fn cascade(path: &Path, raw: &raw::RawCascade, encoder: PathBuf) -> Result<classical::CascadeConfig, ConfigError> {
    let bars = classical::CascadeBars {
        min_confidence: raw.min_confidence,
        min_margin: raw.min_margin,
        linear_weight: raw.linear_weight,
        out_of_scope_threshold: raw.out_of_scope_threshold,
    };
    bars.validate().map_err(|reason| {
        let field = reason.split(' ').next().unwrap_or_default();
        error(path, &format!("models.cascade.{field}"), reason)
    })?;
    Ok(classical::CascadeConfig { encoder, bars })
}

/// A duration longer than zero, or an error naming `key`.
fn positive_duration(path: &Path, key: &str, value: &str) -> Result<Duration, ConfigError> {
    match humantime::parse_duration(value) {
        Err(e) => Err(error(path, key, format!("{value:?} is not a duration ({e})"))),
        Ok(d) if d.is_zero() => Err(error(path, key, "must be longer than zero".to_owned())),
        Ok(d) => Ok(d),
    }
}

fn positive(path: &Path, key: &str, value: usize) -> Result<usize, ConfigError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(error(path, key, "must be at least 1".to_owned()))
    }
}

fn error(path: &Path, key: &str, reason: String) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        key: key.to_owned(),
        reason,
    }
}

/// `line N` of a byte offset, for TOML syntax errors that carry no key.
fn locate(text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())].lines().count().max(1);
    format!("line {line}")
}

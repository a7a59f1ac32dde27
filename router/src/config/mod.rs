//! Configuration: the raw TOML shape (serde, unknown keys refused, defaults), then `validate` into typed values.
//!
//! Every error names the file, the key and the reason. Secrets never live in the file: a backend names the
//! environment variable that holds its API key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::policy::{Matcher, Policy, Rule, Target, TargetKind};
use crate::prompt;
use crate::telemetry::{OtlpProtocol, TelemetryConfig};

mod raw;

use raw::{RawConfig, RawKind, RawLogFormat};

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
    /// Server settings.
    pub server: ServerConfig,
    /// Model files and the inference pool.
    pub models: ModelsConfig,
    /// LLM backends by name, with their guards.
    pub backends: BTreeMap<String, (llm::BackendConfig, llm::GuardConfig)>,
    /// Token prices by backend name.
    pub prices: BTreeMap<String, Prices>,
    /// The routing policy (targets and rules).
    pub policy: Policy,
    /// The targets' prompt templates, compiled.
    pub prompts: std::sync::Arc<prompt::Prompts>,
    /// Traces, metrics export, content capture.
    pub telemetry: TelemetryConfig,
}

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
    /// Upper bound for one request, whatever the caller's deadline.
    pub request_timeout: Duration,
    /// Longest accepted `text`, in bytes.
    pub max_text_bytes: usize,
    /// Concurrent requests per connection.
    pub concurrency_per_connection: usize,
}

/// Model files and the inference pool.
#[derive(Debug, Clone)]
pub struct ModelsConfig {
    /// The ONNX Runtime shared library; `None` means `ORT_DYLIB_PATH`.
    pub onnx_runtime: Option<PathBuf>,
    /// Pool: model paths, workers, queue capacity.
    pub pool: classical::PoolConfig,
}

const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant for a telecom company's staff. Answer briefly.";
const DEFAULT_HYBRID_PROMPT: &str = "You are a retention analyst at a telecom company. You are given a customer's \
record and the churn model's probability that they leave. Explain briefly, in plain words, what in the record \
likely drives that risk and suggest one or two retention actions. Do not invent data.";

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
        let version = policy_version(text);
        validate(path, base, raw, version)
    }
}

/// `[telemetry]`: URLs, protocol, ratio and sizes checked.
fn telemetry(path: &Path, raw: raw::RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
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
    let metrics_interval = humantime::parse_duration(&raw.metrics_interval).map_err(|e| {
        err(
            "telemetry.metrics_interval",
            format!("{:?} is not a duration ({e})", raw.metrics_interval),
        )
    })?;
    Ok(TelemetryConfig {
        otlp_endpoint,
        otlp_protocol,
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

fn validate(path: &Path, base: &Path, raw: RawConfig, version: String) -> Result<Config, ConfigError> {
    let err = |key: &str, reason: String| error(path, key, reason);
    let duration = |key: &str, value: &str| {
        humantime::parse_duration(value).map_err(|e| err(key, format!("{value:?} is not a duration ({e})")))
    };
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
        request_timeout: duration("server.request_timeout", &raw.server.request_timeout)?,
        max_text_bytes: positive(path, "server.max_text_bytes", raw.server.max_text_bytes)?,
        concurrency_per_connection: positive(
            path,
            "server.concurrency_per_connection",
            raw.server.concurrency_per_connection,
        )?,
    };
    let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    for (key, file) in [
        ("models.classifier", &raw.models.classifier),
        ("models.scorer", &raw.models.scorer),
    ] {
        if !resolve(file).is_file() {
            return Err(err(key, format!("{} does not exist", resolve(file).display())));
        }
    }
    let models = ModelsConfig {
        onnx_runtime: raw.models.onnx_runtime.as_deref().map(resolve),
        pool: classical::PoolConfig {
            classifier: resolve(&raw.models.classifier),
            scorer: resolve(&raw.models.scorer),
            workers: positive(path, "models.workers", raw.models.workers)?,
            queue_capacity: positive(path, "models.queue_capacity", raw.models.queue_capacity)?,
        },
    };

    let telemetry = telemetry(path, raw.telemetry)?;
    let mut backends = BTreeMap::new();
    let mut prices = BTreeMap::new();
    for (name, b) in raw.backends {
        let key = |field: &str| format!("backends.{name}.{field}");
        let base_url = b.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(err(&key("base_url"), format!("{:?} is not an http(s) URL", b.base_url)));
        }
        if b.model.trim().is_empty() {
            return Err(err(&key("model"), "must not be empty".to_owned()));
        }
        let api_key = match &b.api_key_env {
            None => None,
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| err(&key("api_key_env"), format!("environment variable {var} is not set")))?,
            ),
        };
        let config = llm::BackendConfig {
            name: name.clone(),
            base_url,
            model: b.model,
            api_key,
            connect_timeout: duration(&key("connect_timeout"), &b.connect_timeout)?,
            request_timeout: duration(&key("request_timeout"), &b.request_timeout)?,
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
            first_token_timeout: duration(&key("first_token_timeout"), &b.first_token_timeout)?,
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

    let mut targets = BTreeMap::new();
    for (name, t) in raw.targets {
        let key = |field: &str| format!("targets.{name}.{field}");
        let needs_backend = matches!(t.kind, RawKind::Llm | RawKind::Hybrid);
        let chain = match (&t.backend, needs_backend) {
            (Some(b), true) => std::iter::once(b).chain(&t.fallbacks).cloned().collect::<Vec<_>>(),
            (None, true) => return Err(err(&key("backend"), "required for llm and hybrid targets".to_owned())),
            (Some(_), false) => return Err(err(&key("backend"), "only llm and hybrid targets take one".to_owned())),
            (None, false) if !t.fallbacks.is_empty() => {
                return Err(err(
                    &key("fallbacks"),
                    "only llm and hybrid targets take them".to_owned(),
                ));
            }
            (None, false) => Vec::new(),
        };
        for (i, b) in chain.iter().enumerate() {
            if !backends.contains_key(b) {
                let field = if i == 0 {
                    "backend".to_owned()
                } else {
                    format!("fallbacks[{}]", i - 1)
                };
                return Err(err(&key(&field), format!("no backend named {b:?} in [backends]")));
            }
        }
        if t.degrade_to_score && !matches!(t.kind, RawKind::Hybrid) {
            return Err(err(
                &key("degrade_to_score"),
                "only hybrid targets can degrade to a score".to_owned(),
            ));
        }
        if let Some(temperature) = t.temperature
            && !(0.0..=2.0).contains(&temperature)
        {
            return Err(err(&key("temperature"), format!("{temperature} is outside [0, 2]")));
        }
        let kind = match t.kind {
            RawKind::Classical => TargetKind::Classical,
            RawKind::Llm => TargetKind::Llm,
            RawKind::Hybrid => TargetKind::Hybrid,
            RawKind::Reject => TargetKind::Reject,
        };
        let message = match (kind, t.message) {
            (TargetKind::Reject, Some(m)) => m,
            (TargetKind::Reject, None) => return Err(err(&key("message"), "required for reject targets".to_owned())),
            (_, Some(_)) => return Err(err(&key("message"), "only reject targets take one".to_owned())),
            (_, None) => String::new(),
        };
        let hybrid = kind == TargetKind::Hybrid;
        let system_prompt = t.system_prompt.unwrap_or_else(|| {
            if hybrid {
                DEFAULT_HYBRID_PROMPT
            } else {
                DEFAULT_SYSTEM_PROMPT
            }
            .to_owned()
        });
        let user_prompt = t.user_prompt.unwrap_or_else(|| {
            if hybrid {
                prompt::DEFAULT_HYBRID_TEMPLATE
            } else {
                prompt::DEFAULT_CHAT_TEMPLATE
            }
            .to_owned()
        });
        let max_prompt_chars = positive(path, &key("max_prompt_chars"), t.max_prompt_chars)?;
        targets.insert(
            name.clone(),
            Target {
                name,
                kind,
                backends: chain,
                degrade_to_score: t.degrade_to_score,
                system_prompt,
                user_prompt,
                max_prompt_chars,
                max_tokens: t.max_tokens.unwrap_or(256),
                temperature: t.temperature,
                message,
            },
        );
    }

    let target_ref = |key: String, name: &str| {
        if targets.contains_key(name) {
            Ok(name.to_owned())
        } else {
            Err(err(&key, format!("no target named {name:?}")))
        }
    };
    let default_target = target_ref("policy.default_target".to_owned(), &raw.policy.default_target)?;
    let mut allow_force_target = Vec::new();
    for (i, name) in raw.policy.allow_force_target.iter().enumerate() {
        allow_force_target.push(target_ref(format!("policy.allow_force_target[{i}]"), name)?);
    }
    let mut rules = Vec::new();
    for (i, r) in raw.policy.rules.into_iter().enumerate() {
        let key = |field: &str| format!("policy.rules[{i}].{field}");
        let matcher = match (r.label, r.group) {
            (Some(label), None) => Matcher::Label(label),
            (None, Some(group)) => Matcher::Group(group),
            _ => return Err(err(&key("label"), "set exactly one of label or group".to_owned())),
        };
        if !(0.0..=1.0).contains(&r.min_confidence) {
            return Err(err(
                &key("min_confidence"),
                format!("{} is not a probability", r.min_confidence),
            ));
        }
        rules.push(Rule {
            name: r.name,
            matcher,
            min_confidence: r.min_confidence,
            target: target_ref(key("target"), &r.target)?,
            fallback: r.fallback.map(|f| target_ref(key("fallback"), &f)).transpose()?,
        });
    }
    // Templates are compiled now so a syntax error is a config error, not a failed request.
    let prompts = prompt::Prompts::compile(targets.values()).map_err(|(key, reason)| err(&key, reason))?;
    let policy = Policy {
        version,
        targets,
        rules,
        default_target,
        allow_force_target,
    };
    Ok(Config {
        server,
        models,
        backends,
        prices,
        policy,
        prompts: std::sync::Arc::new(prompts),
        telemetry,
    })
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

/// A short content hash identifying the policy that made a decision.
fn policy_version(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

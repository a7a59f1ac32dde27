//! The config file's shape as serde reads it: unknown keys refused, defaults filled in. `super::validate` turns
//! it into typed values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    pub(super) models: RawModels,
    #[serde(default)]
    pub(super) backends: BTreeMap<String, RawBackend>,
    pub(super) policy: RawPolicy,
    #[serde(default)]
    pub(super) telemetry: RawTelemetry,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) drift: RawDrift,
    #[serde(default)]
    pub(super) scorers: BTreeMap<String, RawScorer>,
}

/// A remote churn scorer: a model served over the Open Inference Protocol (gRPC) by Triton, KServe, MLServer or
/// another Switchyard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawScorer {
    pub(super) url: String,
    pub(super) model: String,
    pub(super) version: String,
    pub(super) output: String,
    pub(super) column: usize,
    pub(super) parameters: BTreeMap<String, String>,
    pub(super) connect_timeout: String,
    pub(super) timeout: String,
    pub(super) breaker_failures: u32,
    pub(super) breaker_open_for: String,
    pub(super) threshold: Option<f32>,
}

impl Default for RawScorer {
    fn default() -> Self {
        Self {
            url: String::new(),
            model: String::new(),
            version: String::new(),
            output: "probability".to_owned(),
            column: 0,
            parameters: BTreeMap::new(),
            connect_timeout: "1s".to_owned(),
            timeout: "2s".to_owned(),
            breaker_failures: 5,
            breaker_open_for: "10s".to_owned(),
            threshold: None,
        }
    }
}

/// Input drift monitoring against the models' reference profiles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDrift {
    pub(super) enabled: bool,
    /// The sliding window live counts cover.
    pub(super) window: String,
    /// The window is kept as this many slices; the oldest is dropped each `window / slices`.
    pub(super) slices: usize,
    /// How often the window is compared with the reference (gauges, log lines).
    pub(super) evaluate_every: String,
    /// Below this many requests in the window, nothing is judged.
    pub(super) min_samples: u64,
    pub(super) js_threshold: f64,
    pub(super) psi_threshold: f64,
}

impl Default for RawDrift {
    fn default() -> Self {
        Self {
            enabled: true,
            window: "1h".to_owned(),
            slices: 12,
            evaluate_every: "30s".to_owned(),
            min_samples: 500,
            // Evidently's and NannyML's defaults.
            js_threshold: 0.1,
            psi_threshold: 0.2,
        }
    }
}

/// Global and per-tenant limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    /// Router calls in flight across all connections; beyond, refused at once.
    #[serde(default)]
    pub(super) max_in_flight: Option<usize>,
    #[serde(default)]
    pub(super) per_tenant: RawTenantLimits,
    #[serde(default)]
    pub(super) tenants: BTreeMap<String, RawTenantLimits>,
}

/// One tenant's quotas (absent: unlimited).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenantLimits {
    pub(super) requests_per_second: Option<u32>,
    pub(super) burst: Option<u32>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) llm_tokens_per_hour: Option<u64>,
}

/// Caller authentication.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(default)]
    pub(super) mode: RawAuthMode,
    /// The API keys file (digests only); `SWITCHYARD_API_KEYS_FILE` overrides it.
    #[serde(default)]
    pub(super) keys_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawAuthMode {
    /// Any caller; the tenant is whatever the body says (a development setup).
    #[default]
    Off,
    /// Every call but health needs an API key; the tenant comes from it.
    Required,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTelemetry {
    pub(super) otlp_endpoint: Option<String>,
    pub(super) otlp_protocol: Option<String>,
    pub(super) otlp_ca_file: Option<PathBuf>,
    pub(super) traces: bool,
    pub(super) metrics: bool,
    pub(super) metrics_interval: String,
    pub(super) sample_ratio: Option<f64>,
    pub(super) capture_content: bool,
    pub(super) max_content_bytes: usize,
    pub(super) service_instance_id: Option<String>,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: None,
            otlp_ca_file: None,
            traces: true,
            metrics: false,
            metrics_interval: "60s".to_owned(),
            sample_ratio: None,
            capture_content: false,
            max_content_bytes: 2048,
            service_instance_id: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) admin_listen: String,
    pub(super) log_format: RawLogFormat,
    pub(super) log_level: String,
    pub(super) shutdown_grace: String,
    pub(super) drain_delay: String,
    pub(super) request_timeout: String,
    pub(super) max_text_bytes: usize,
    pub(super) concurrency_per_connection: usize,
    pub(super) max_connections: usize,
    pub(super) handshake_timeout: String,
    pub(super) idle_timeout: String,
    pub(super) admin_max_connections: usize,
    pub(super) admin_header_timeout: String,
    pub(super) admin_idle_timeout: String,
    pub(super) max_concurrent_streams: u32,
    pub(super) keepalive_interval: String,
    pub(super) keepalive_timeout: String,
    pub(super) max_connection_age: String,
    pub(super) max_connection_age_grace: String,
    pub(super) tls: Option<RawTls>,
}

/// TLS on the gRPC port (and, unless `admin = false`, on the admin port).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    #[serde(default)]
    pub(super) client_ca_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub(super) admin: bool,
}

fn yes() -> bool {
    true
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".to_owned(),
            admin_listen: "127.0.0.1:9464".to_owned(),
            log_format: RawLogFormat::Json,
            log_level: "info".to_owned(),
            shutdown_grace: "10s".to_owned(),
            drain_delay: "0s".to_owned(),
            request_timeout: "120s".to_owned(),
            max_text_bytes: 32 * 1024,
            concurrency_per_connection: 64,
            max_connections: 1024,
            handshake_timeout: "10s".to_owned(),
            idle_timeout: "5m".to_owned(),
            admin_max_connections: 64,
            admin_header_timeout: "10s".to_owned(),
            admin_idle_timeout: "60s".to_owned(),
            max_concurrent_streams: 128,
            keepalive_interval: "30s".to_owned(),
            keepalive_timeout: "10s".to_owned(),
            max_connection_age: "30m".to_owned(),
            max_connection_age_grace: "120s".to_owned(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawLogFormat {
    Json,
    Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModels {
    #[serde(default)]
    pub(super) onnx_runtime: Option<PathBuf>,
    /// A `.onnx` file, or a repository entry directory (`<entry>/<version>/model.onnx`).
    pub(super) classifier: PathBuf,
    pub(super) scorer: PathBuf,
    /// For a repository entry: `latest` (the default) or a version.
    #[serde(default)]
    pub(super) classifier_version: Option<String>,
    #[serde(default)]
    pub(super) scorer_version: Option<String>,
    /// For a repository entry: a version run in the serving one's shadow.
    #[serde(default)]
    pub(super) classifier_candidate: Option<String>,
    #[serde(default)]
    pub(super) scorer_candidate: Option<String>,
    /// Reload (and swap) the models when their entries or this file change; SIGHUP and the admin port's
    /// `POST /models/reload` always do.
    #[serde(default = "default_true")]
    pub(super) watch: bool,
    #[serde(default = "default_workers")]
    pub(super) workers: usize,
    #[serde(default = "default_queue")]
    pub(super) queue_capacity: usize,
    #[serde(default)]
    pub(super) classifier_batch: RawBatch,
    #[serde(default)]
    pub(super) scorer_batch: RawBatch,
    /// The classifier cascade's encoder tier; absent: the linear classifier alone.
    #[serde(default)]
    pub(super) cascade: Option<RawCascade>,
}

/// The classifier cascade (`classical::cascade`): where the encoder is and the bars `switchyard-evals cascade`
/// chose.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCascade {
    pub(super) encoder: PathBuf,
    pub(super) min_confidence: f32,
    pub(super) min_margin: f32,
    pub(super) linear_weight: f32,
    pub(super) out_of_scope_threshold: f32,
}

/// Micro-batching of one model's requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    #[serde(default = "default_batch_size")]
    pub(super) max_size: usize,
    #[serde(default = "default_batch_wait")]
    pub(super) max_wait: String,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self {
            max_size: default_batch_size(),
            max_wait: default_batch_wait(),
        }
    }
}

/// The pool's own defaults (`classical::BatchConfig::default`), so there is one place that says what they are.
pub(super) fn default_batch_size() -> usize {
    classical::BatchConfig::default().max_size
}

pub(super) fn default_batch_wait() -> String {
    humantime::format_duration(classical::BatchConfig::default().max_wait).to_string()
}

/// Half the cores, at least one: ONNX runs are about a quarter of a request's CPU and micro-batching keeps a
/// worker busy, while the async runtime needs the rest; each worker's sessions cost ~16 MB.
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1))
}

pub(super) fn default_queue() -> usize {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub(super) base_url: String,
    pub(super) model: String,
    #[serde(default = "default_provider")]
    pub(super) provider: String,
    #[serde(default)]
    pub(super) api_key_env: Option<String>,
    /// PEM CA bundle the backend's certificate must chain to (a private CA), instead of the system's roots.
    #[serde(default)]
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout")]
    pub(super) connect_timeout: String,
    #[serde(default = "default_backend_timeout")]
    pub(super) request_timeout: String,
    #[serde(default = "default_first_token_timeout")]
    pub(super) first_token_timeout: String,
    #[serde(default = "default_inter_token_timeout")]
    pub(super) inter_token_timeout: String,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    #[serde(default = "default_max_concurrent")]
    pub(super) max_concurrent: usize,
    #[serde(default = "default_max_queued")]
    pub(super) max_queued: usize,
    #[serde(default = "default_max_attempts")]
    pub(super) max_attempts: u32,
    #[serde(default = "default_base_backoff")]
    pub(super) base_backoff: String,
    #[serde(default = "default_max_backoff")]
    pub(super) max_backoff: String,
    #[serde(default = "default_retry_budget")]
    pub(super) retry_budget_ratio: f64,
    #[serde(default = "default_breaker_failures")]
    pub(super) breaker_failures: u32,
    #[serde(default = "default_breaker_open_for")]
    pub(super) breaker_open_for: String,
    #[serde(default = "default_max_response_bytes")]
    pub(super) max_response_bytes: usize,
    #[serde(default)]
    pub(super) input_price_per_mtok: f64,
    #[serde(default)]
    pub(super) output_price_per_mtok: f64,
}

pub(super) fn default_provider() -> String {
    "openai".to_owned()
}

pub(super) fn default_max_response_bytes() -> usize {
    4 * 1024 * 1024
}

pub(super) fn default_first_token_timeout() -> String {
    "20s".to_owned()
}

pub(super) fn default_inter_token_timeout() -> String {
    "30s".to_owned()
}

pub(super) fn default_max_concurrent() -> usize {
    8
}

pub(super) fn default_max_queued() -> usize {
    32
}

pub(super) fn default_max_attempts() -> u32 {
    3
}

pub(super) fn default_base_backoff() -> String {
    "100ms".to_owned()
}

pub(super) fn default_max_backoff() -> String {
    "2s".to_owned()
}

pub(super) fn default_retry_budget() -> f64 {
    0.2
}

pub(super) fn default_breaker_failures() -> u32 {
    5
}

pub(super) fn default_breaker_open_for() -> String {
    "10s".to_owned()
}

pub(super) fn default_connect_timeout() -> String {
    "2s".to_owned()
}

pub(super) fn default_backend_timeout() -> String {
    "60s".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) file: PathBuf,
    #[serde(default = "default_watch")]
    pub(super) watch: bool,
}

pub(super) fn default_watch() -> bool {
    true
}

fn default_true() -> bool {
    true
}

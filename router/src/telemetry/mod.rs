//! Telemetry set-up: the tracer provider (OTLP export over gRPC or HTTP/protobuf, batched, parent-based ratio
//! sampling), the W3C propagators, the log subscriber, and the optional OTLP metrics reader.
//!
//! The standard `OTEL_*` variables work: an endpoint from `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT` turns
//! export on when config names none, `OTEL_EXPORTER_OTLP_[..._]PROTOCOL`, `_HEADERS` and `_TIMEOUT` apply,
//! `OTEL_TRACES_SAMPLER[_ARG]` applies when config sets no ratio, `OTEL_BSP_*` tune the batch processor,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` add to the resource, and `OTEL_SDK_DISABLED=true` turns
//! export off. Spans are made (and trace context propagated) even when nothing is exported, so logs and the LLM
//! backends still see the caller's trace.

pub mod export;
pub mod logs;
pub mod names;
pub mod spans;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use self::export::{Counting, ExportFailures};
use self::logs::{JsonLines, LogFormat, SpanFields};

/// Builds an OTLP exporter (`SpanExporter` or `MetricExporter`) for a destination: gRPC, or HTTP/protobuf posting
/// to `{endpoint}{path}`; without a configured endpoint the exporter reads the `OTEL_*` variables. (A macro: the
/// two exporters' builders share the shape but no trait.)
macro_rules! otlp_exporter {
    ($exporter:ty, $destination:expr, $path:literal) => {{
        let destination: &Destination = $destination;
        match destination.protocol {
            OtlpProtocol::Grpc => {
                let mut builder = <$exporter>::builder().with_tonic();
                if let Some(endpoint) = &destination.endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                }
                if let Some(tls) = destination.grpc_tls() {
                    builder = builder.with_tls_config(tls);
                }
                builder.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut builder = <$exporter>::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if let Some(endpoint) = &destination.endpoint {
                    builder = builder.with_endpoint(format!("{endpoint}{}", $path));
                }
                if let Some(client) = destination.http_client()? {
                    builder = builder.with_http_client(client);
                }
                builder.build()
            }
        }
    }};
}

/// How OTLP is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (collector port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (collector port 4318).
    HttpProtobuf,
}

impl OtlpProtocol {
    /// Parses the spec's names: `grpc`, `http/protobuf`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }
}

/// The validated `[telemetry]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP base URL (`http://collector:4317`); `None`: from `OTEL_EXPORTER_OTLP_*ENDPOINT`, else no export.
    pub otlp_endpoint: Option<String>,
    /// `None`: from `OTEL_EXPORTER_OTLP_*PROTOCOL`, else gRPC.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// PEM CA certificates an `https://` collector's certificate must chain to; `None`: the file named by
    /// `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]CERTIFICATE`, else the system's roots.
    pub otlp_ca: Option<Vec<u8>>,
    /// Export traces (when an endpoint is known).
    pub traces: bool,
    /// Also push metrics over OTLP (the Prometheus endpoint is always there).
    pub metrics: bool,
    /// How often metrics are pushed.
    pub metrics_interval: Duration,
    /// Share of new traces sampled (callers' sampled traces are always continued); `None`: `OTEL_TRACES_SAMPLER`.
    pub sample_ratio: Option<f64>,
    /// Record prompt text, generated text and feature values on spans, cut to this many bytes; `None`: never.
    pub capture_content: Option<usize>,
    /// `service.instance.id`; `None`: a random UUID per process.
    pub service_instance_id: Option<String>,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An `OTEL_*` variable holds a value that cannot be used.
    #[error("environment variable {variable}: {reason}")]
    Env {
        /// The variable.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("otlp exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("log subscriber: {0}")]
    Subscriber(String),
    /// TLS to the collector could not be set up.
    #[error("otlp tls: {0}")]
    Tls(String),
}

/// Where one signal goes.
#[derive(Debug, Clone)]
struct Destination {
    /// Base URL from config (`None`: the exporter reads the `OTEL_*` variables).
    endpoint: Option<String>,
    protocol: OtlpProtocol,
    /// Whether the endpoint, wherever it was given, is `https://`.
    https: bool,
    /// PEM CA certificates to trust instead of the system's roots.
    ca: Option<Vec<u8>>,
}

/// How long an OTLP/HTTP export may take (the exporter's own default).
const HTTP_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl Destination {
    /// TLS for an `https://` collector over gRPC: the configured CA, else the system's roots.
    fn grpc_tls(&self) -> Option<tonic::transport::ClientTlsConfig> {
        if !self.https {
            return None;
        }
        let tls = tonic::transport::ClientTlsConfig::new();
        Some(match &self.ca {
            Some(pem) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        })
    }

    /// An HTTP client trusting only the configured CA (`None`: the exporter's own, with the system's roots).
    fn http_client(&self) -> Result<Option<reqwest::blocking::Client>, TelemetryError> {
        let Some(pem) = self.ca.clone() else {
            return Ok(None);
        };
        // A blocking client owns a runtime, which may not be built or dropped on an async thread.
        let built = std::thread::spawn(move || {
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)?;
            reqwest::blocking::Client::builder()
                .timeout(HTTP_EXPORT_TIMEOUT)
                .tls_certs_only(certificates)
                .build()
        })
        .join()
        .map_err(|_| TelemetryError::Tls("building the OTLP/HTTP client panicked".to_owned()))?;
        built.map(Some).map_err(|e| TelemetryError::Tls(e.to_string()))
    }
}

/// Reads a PEM CA bundle for an `https://` collector; the reason when it holds no certificate.
pub fn read_ca(file: &std::path::Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |certs| certs.is_empty()) {
        return Err(format!("{}: no PEM certificate in the file", file.display()));
    }
    Ok(pem)
}

/// The installed telemetry. Call [`Telemetry::shutdown`] before exit to flush what is buffered.
pub struct Telemetry {
    tracer: SdkTracerProvider,
    resource: Resource,
    failures: Arc<ExportFailures>,
    metrics_to: Option<(Destination, Duration)>,
}

impl Telemetry {
    /// Failed exports so far.
    pub fn failures(&self) -> Arc<ExportFailures> {
        self.failures.clone()
    }

    /// The service's resource (name, version, instance).
    pub fn resource(&self) -> Resource {
        self.resource.clone()
    }

    /// The OTLP metrics reader, when metrics export is on. Call inside the async runtime (gRPC needs it).
    pub fn metric_reader(
        &self,
    ) -> Result<Option<PeriodicReader<Counting<opentelemetry_otlp::MetricExporter>>>, TelemetryError> {
        let Some((destination, interval)) = &self.metrics_to else {
            return Ok(None);
        };
        let exporter = otlp_exporter!(opentelemetry_otlp::MetricExporter, destination, "/v1/metrics")?;
        Ok(Some(
            PeriodicReader::builder(Counting::metrics(exporter, self.failures.clone()))
                .with_interval(*interval)
                .build(),
        ))
    }

    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(&self) {
        if let Err(error) = self.tracer.shutdown() {
            tracing::warn!(target: "switchyard::telemetry", %error, "trace provider shutdown");
        }
    }
}

/// Installs the tracer provider, the propagators and the log subscriber for `serve`. Call inside the async
/// runtime (the gRPC exporter needs it).
pub fn init(config: &TelemetryConfig, format: LogFormat, level: &str) -> Result<Telemetry, TelemetryError> {
    let failures = Arc::new(ExportFailures::default());
    let resource = resource(config);
    let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
    if let Some(ratio) = config.sample_ratio {
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))));
    }
    let traces_to = match config.traces {
        true => destination(
            config,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        )?,
        false => None,
    };
    if let Some(destination) = &traces_to {
        builder = builder.with_batch_exporter(Counting::traces(span_exporter(destination)?, failures.clone()));
    }
    let tracer = builder.build();
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));

    // Switchyard's own spans, whatever the log level: they become OpenTelemetry spans, and log lines written inside
    // them carry their trace id and fields.
    let own_spans = || {
        filter_fn(|metadata| metadata.is_span()).and(
            Targets::new()
                .with_target("switchyard", Level::INFO)
                .with_target("llm", Level::INFO)
                .with_target("classical", Level::INFO),
        )
    };
    // Events by the configured level (`RUST_LOG` wins).
    let log_filter = own_spans().or(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Json => log
            .fmt_fields(SpanFields)
            .event_format(JsonLines)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Text => log.with_filter(log_filter).boxed(),
    };
    // Log events stay in the log (which carries the trace id): span events are only the ones Switchyard adds on
    // purpose, and nothing a log line holds can reach a span by accident.
    // Only the attributes docs/telemetry.md names: no code location (it would point at the span helpers), thread,
    // target or busy/idle times.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer_with_scope(names::scope()))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(own_spans())
        .boxed();
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![log, spans];
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;

    let metrics_to = match config.metrics {
        true => destination(
            config,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        )?
        .map(|d| (d, config.metrics_interval)),
        false => None,
    };
    match &traces_to {
        Some(d) => tracing::info!(
            target: "switchyard::telemetry",
            endpoint = d.endpoint.as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_*"),
            protocol = ?d.protocol,
            "exporting traces"
        ),
        None => tracing::info!(target: "switchyard::telemetry", "no otlp endpoint: traces are not exported"),
    }
    Ok(Telemetry {
        tracer,
        resource,
        failures,
        metrics_to,
    })
}

/// Plain text logs for the short-lived commands (`validate`, `route`, `explain`).
pub fn init_cli_logs(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `service.name` (`switchyard` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names it),
/// `service.version`, `service.instance.id`, plus whatever `OTEL_RESOURCE_ATTRIBUTES` adds.
fn resource(config: &TelemetryConfig) -> Resource {
    let named_by_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut builder = Resource::builder();
    if !named_by_env {
        builder = builder.with_service_name("switchyard");
    }
    let instance = config
        .service_instance_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    builder
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance),
        ])
        .build()
}

/// Where a signal is exported, or `None` when export is off (no endpoint anywhere, or `OTEL_SDK_DISABLED`).
fn destination(
    config: &TelemetryConfig,
    endpoint_var: &'static str,
    protocol_var: &'static str,
    certificate_var: &'static str,
) -> Result<Option<Destination>, TelemetryError> {
    let set = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if config.otlp_endpoint.is_none() && !set(endpoint_var) && !set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        return Ok(None);
    }
    let protocol = match config.otlp_protocol {
        Some(protocol) => protocol,
        None => {
            let mut found = OtlpProtocol::Grpc;
            for var in [protocol_var, "OTEL_EXPORTER_OTLP_PROTOCOL"] {
                if let Ok(value) = std::env::var(var) {
                    found = OtlpProtocol::parse(&value).ok_or_else(|| TelemetryError::Env {
                        variable: var,
                        reason: format!("{value:?} is not one of \"grpc\", \"http/protobuf\""),
                    })?;
                    break;
                }
            }
            found
        }
    };
    let endpoint = config
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var(endpoint_var).ok())
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .unwrap_or_default();
    let ca = match &config.otlp_ca {
        Some(pem) => Some(pem.clone()),
        None => {
            let mut found = None;
            for var in [certificate_var, "OTEL_EXPORTER_OTLP_CERTIFICATE"] {
                if let Some(file) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                    let pem = read_ca(std::path::Path::new(&file))
                        .map_err(|reason| TelemetryError::Env { variable: var, reason })?;
                    found = Some(pem);
                    break;
                }
            }
            found
        }
    };
    Ok(Some(Destination {
        endpoint: config.otlp_endpoint.clone(),
        protocol,
        https: endpoint.trim().starts_with("https://"),
        ca,
    }))
}

fn span_exporter(destination: &Destination) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    Ok(otlp_exporter!(
        opentelemetry_otlp::SpanExporter,
        destination,
        "/v1/traces"
    )?)
}

//! An in-process OTLP trace receiver: the OTLP collector's `TraceService` served with tonic (OTLP/gRPC), and
//! `POST /v1/traces` served with axum (OTLP/HTTP protobuf). It keeps every span it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A span as received, with its resource's attributes.
#[derive(Clone, Debug)]
pub struct Received {
    pub span: Span,
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's schema URL.
    pub schema_url: String,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    pub fn attr(&self, key: &str) -> Option<Value> {
        find(&self.span.attributes, key)
    }

    pub fn str(&self, key: &str) -> Option<String> {
        match self.attr(key)? {
            Value::StringValue(s) => Some(s),
            other => panic!("{key} is not a string: {other:?}"),
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            Value::IntValue(i) => Some(i),
            other => panic!("{key} is not an int: {other:?}"),
        }
    }

    pub fn double(&self, key: &str) -> Option<f64> {
        match self.attr(key)? {
            Value::DoubleValue(d) => Some(d),
            other => panic!("{key} is not a double: {other:?}"),
        }
    }

    pub fn resource_str(&self, key: &str) -> Option<String> {
        match find(&self.resource, key)? {
            Value::StringValue(s) => Some(s),
            _ => None,
        }
    }

    /// Names of the span's events, in order.
    pub fn events(&self) -> Vec<String> {
        self.span.events.iter().map(|e| e.name.clone()).collect()
    }

    /// Every string in the span (attribute values, event attribute values, status message), for leak checks.
    pub fn all_text(&self) -> String {
        let mut text = format!("{} ", self.span.name);
        let mut add = |attributes: &[KeyValue]| {
            for kv in attributes {
                text.push_str(&format!("{:?} ", kv.value));
            }
        };
        add(&self.span.attributes);
        for event in &self.span.events {
            add(&event.attributes);
        }
        if let Some(status) = &self.span.status {
            text.push_str(&status.message);
        }
        text
    }
}

fn find(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|AnyValue { value }| value)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Store = Arc<Mutex<Vec<Received>>>;

fn keep(store: &Store, request: ExportTraceServiceRequest) {
    let mut spans = store.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    span,
                    resource: resource.clone(),
                    schema_url: scope.schema_url.clone(),
                });
            }
        }
    }
}

struct Collector(Store);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The metrics of each OTLP metrics export received, each with its scope's schema URL.
type MetricStore = Arc<Mutex<Vec<Vec<(String, Metric)>>>>;

struct MetricsCollector(MetricStore);

#[tonic::async_trait]
impl MetricsService for MetricsCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let metrics = request
            .into_inner()
            .resource_metrics
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics.into_iter().map(move |m| (s.schema_url.clone(), m)))
            .collect();
        self.0.lock().unwrap().push(metrics);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A running receiver; stops on drop.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    store: Store,
    metrics: MetricStore,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// OTLP/gRPC (traces and metrics) on an ephemeral loopback port.
    pub async fn grpc() -> Self {
        Self::grpc_with(None).await
    }

    /// OTLP/gRPC over TLS with this certificate and key (PEM).
    pub async fn grpc_tls(cert: &str, key: &str) -> Self {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        Self::grpc_with(Some(tonic::transport::ServerTlsConfig::new().identity(identity))).await
    }

    async fn grpc_with(tls: Option<tonic::transport::ServerTlsConfig>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Store::default();
        let metrics = MetricStore::default();
        let service = TraceServiceServer::new(Collector(store.clone()));
        let metrics_service = MetricsServiceServer::new(MetricsCollector(metrics.clone()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let task = tokio::spawn(async move {
            builder
                .add_service(service)
                .add_service(metrics_service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Self {
            addr,
            scheme,
            store,
            metrics,
            task,
        }
    }

    /// OTLP/HTTP (protobuf bodies) on an ephemeral loopback port.
    pub async fn http() -> Self {
        Self::http_with(None).await
    }

    /// OTLP/HTTP over TLS with the certificate and key in these files.
    pub async fn http_tls(cert_file: &std::path::Path, key_file: &std::path::Path) -> Self {
        let files = switchyard::tls::TlsFiles {
            cert: cert_file.to_path_buf(),
            key: key_file.to_path_buf(),
            client_ca: None,
            admin: true,
        };
        let (_, cert) = switchyard::tls::acceptor(&files).unwrap();
        Self::http_with(Some(switchyard::tls::admin_acceptor(&cert).unwrap())).await
    }

    async fn http_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Store::default();
        let kept = store.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    keep(&kept, ExportTraceServiceRequest::decode(body).unwrap());
                    ExportTraceServiceResponse::default().encode_to_vec()
                }
            }),
        );
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            // The gateway's own HTTPS serving, as its admin port uses it.
            Some(acceptor) => tokio::spawn(async move {
                let (_serving, phase) = tokio::sync::watch::channel(switchyard::listen::Phase::Serving);
                let limits = switchyard::listen::PortLimits {
                    max_connections: 64,
                    handshake_timeout: Duration::from_secs(10),
                    idle_timeout: Duration::from_secs(60),
                    max_connection_age: None,
                    header_read_timeout: Some(Duration::from_secs(10)),
                    max_concurrent_streams: 16,
                    keepalive: None,
                    http2_only: false,
                };
                let metrics = std::sync::Arc::new(switchyard::metrics::Metrics::standalone().unwrap());
                let port = switchyard::listen::Port::Admin;
                switchyard::listen::serve(port, listener, Some(acceptor), limits, app, metrics, phase).await;
            }),
            None => tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
        };
        Self {
            addr,
            scheme,
            store,
            metrics: MetricStore::default(),
            task,
        }
    }

    /// The base URL (`http://127.0.0.1:port`; with TLS `https://localhost:port`, the name its certificate holds).
    pub fn endpoint(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}", self.addr.port()),
            _ => format!("http://{}", self.addr),
        }
    }

    /// Every span received so far.
    pub fn all_spans(&self) -> Vec<Received> {
        self.store.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans of `trace_id`, then returns them.
    pub async fn trace(&self, trace_id: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<Received> = self
                .store
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id() == trace_id)
                .cloned()
                .collect();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "trace {trace_id} incomplete: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a metrics export names every one of `names`; returns the names it holds.
    pub async fn metrics_export_with(&self, names: &[&str]) -> Vec<String> {
        self.metrics_with(names)
            .await
            .into_iter()
            .map(|(_, m)| m.name)
            .collect()
    }

    /// Waits until a metrics export names every one of `names`; returns its metrics with their scopes' schema
    /// URLs.
    pub async fn metrics_with(&self, names: &[&str]) -> Vec<(String, Metric)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let exports = self.metrics.lock().unwrap().clone();
            if let Some(found) = exports
                .into_iter()
                .find(|export| names.iter().all(|n| export.iter().any(|(_, m)| m.name == *n)))
            {
                return found;
            }
            assert!(Instant::now() < deadline, "no metrics export with {names:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every span received so far.
    pub fn all(&self) -> Vec<Received> {
        self.store.lock().unwrap().clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one span named `name` among `spans`.
pub fn named<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| s.span.name == name).collect();
    assert_eq!(found.len(), 1, "want one span {name:?} in {spans:#?}");
    found[0]
}

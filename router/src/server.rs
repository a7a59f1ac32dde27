//! Builds and runs the gRPC server: the Router service, health, reflection, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use switchyard_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use switchyard_proto::v1::router_server::RouterServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;

use crate::admin;
use crate::config::Config;
use crate::engine::{Engine, SharedEngine};
use crate::error::LoadError;
use crate::inference::InferenceService;
use crate::layers::{AccessLog, Admission, Authenticate, Deadline, ObserveLayer, RpcDuration, ServerSpan};
use crate::listen::{self, Phase, Port, PortLimits};
use crate::metrics::{Metrics, MetricsError, SharedMetrics};
use crate::policy::{self, ReloadOutcome};
use crate::service::RouterService;
use crate::telemetry::Telemetry;

/// Room in a request message beyond its text: the record (at most 64 fields), ids, tenant, options.
const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;

/// The health service name of the router (besides "", the server as a whole).
const ROUTER_SERVICE: &str = "switchyard.v1.Router";

/// The largest Open Inference Protocol request accepted (tonic's default, made explicit).
const INFERENCE_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The models, the policy or the backends could not be loaded.
    #[error("cannot load: {0}")]
    Load(#[from] LoadError),
    /// The metrics could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A task the server runs (loading, serving) panicked or was cancelled.
    #[error("server task failed: {0}")]
    Crashed(String),
    /// The TLS certificate, key or client CA could not be loaded.
    #[error("tls: {0}")]
    Tls(crate::tls::TlsError),
    /// Reflection could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish for up to the
/// configured grace period.
pub async fn serve(
    config: Config,
    telemetry: &Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics: SharedMetrics = Arc::new(Metrics::new(telemetry)?);
    serve_with(config, metrics, shutdown).await
}

/// [`serve`] with the metrics given (e.g. `Metrics::standalone`, to run a gateway inside a test or a tool).
pub async fn serve_with(
    config: Config,
    metrics: SharedMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind { addr: listen, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: listen, source })?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", ServingStatus::NotServing).await;
    reporter
        .set_service_status(ROUTER_SERVICE, ServingStatus::NotServing)
        .await;
    // Reflection in both protocol versions: grpcurl and many tools still speak only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(switchyard_proto::INFERENCE_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let ready = Arc::new(AtomicBool::new(false));
    let admin_addr = config.server.admin_listen;
    let admin_listener = TcpListener::bind(admin_addr).await.map_err(|source| ServeError::Bind {
        addr: admin_addr,
        source,
    })?;
    let admin_local = admin_listener.local_addr().map_err(|source| ServeError::Bind {
        addr: admin_addr,
        source,
    })?;
    // One certificate for both ports, reloaded by one watcher.
    let tls = match &config.server.tls {
        Some(files) => {
            let (acceptor, cert) = crate::tls::acceptor(files).map_err(ServeError::Tls)?;
            tokio::spawn(cert.clone().watch());
            Some((acceptor, cert, files.admin))
        }
        None => None,
    };
    let engine: SharedEngine = Arc::new(tokio::sync::OnceCell::new());
    let (admin_phase, admin_phase_rx) = watch::channel(Phase::Serving);
    let admin_tls = match &tls {
        Some((_, cert, true)) => Some(crate::tls::admin_acceptor(cert).map_err(ServeError::Tls)?),
        _ => None,
    };
    let admin_limits = admin_limits(&config.server.admin_connections);
    let admin_routes = admin::router(metrics.clone(), ready.clone(), engine.clone());
    let admin = tokio::spawn(listen::serve(
        Port::Admin,
        admin_listener,
        admin_tls,
        admin_limits,
        admin_routes,
        metrics.clone(),
        admin_phase_rx,
    ));
    tracing::info!(addr = %admin_local, tls = matches!(tls, Some((_, _, true))), "admin listening");

    // A request is its text plus a small record and a few ids: anything much larger is refused while decoding,
    // before it is buffered whole (tonic's default would take 4 MiB).
    let router = RouterServer::new(RouterService::new(engine.clone()))
        .max_decoding_message_size(config.server.max_text_bytes + MESSAGE_OVERHEAD_BYTES);
    // The Open Inference Protocol for the models themselves: a call carries up to 1024 rows, so its bound is
    // tonic's usual 4 MiB, stated here so it cannot drift.
    let inference = GrpcInferenceServiceServer::new(InferenceService::new(engine.clone(), ready.clone()))
        .max_decoding_message_size(INFERENCE_MESSAGE_BYTES);
    let routes = tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(router)
        .add_service(inference)
        .prepare();
    // Router and Open Inference Protocol calls only; health and reflection pass through each layer untouched.
    let grpc = tower::ServiceBuilder::new()
        .map_request(|request: http::Request<hyper::body::Incoming>| request.map(tonic::body::Body::new))
        // The SERVER span: continues the caller's trace, holds the handler (and a stream) until the call ends,
        // and records its final status.
        .layer(ObserveLayer(ServerSpan))
        // `rpc.server.call.duration`, from arrival to the last byte, by method, status and target.
        .layer(ObserveLayer(RpcDuration(metrics.clone())))
        // The access line, inside the SERVER span, once the call's status is final.
        .layer(ObserveLayer(AccessLog))
        // Beyond its connection's limit a call is refused at once (RESOURCE_EXHAUSTED, with RetryInfo) instead of
        // queueing without bound; inside the observers, so it is still logged and timed.
        .layer(Admission::new(
            config.server.concurrency_per_connection,
            metrics.clone(),
        ))
        // A caller without a deadline still gets an answer or an error within request_timeout; an expired
        // deadline answers DEADLINE_EXCEEDED (logged), never a bare transport cancellation.
        .layer(Deadline::new(config.server.request_timeout))
        // Innermost, so a refused call is still spanned, timed and logged: with auth required, the caller's
        // API key decides its tenant (health stays open; reflection needs the tenant's permission).
        .layer(Authenticate::new(config.auth.clone(), engine.clone()))
        .service(routes);
    if let Some(keys) = &config.auth {
        tokio::spawn(keys.clone().watch());
    }

    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let stop = || {
        let _ = phase.send(Phase::Draining);
    };
    let mut server = tokio::spawn(listen::serve(
        Port::Grpc,
        listener,
        tls.map(|(acceptor, _, _)| acceptor),
        grpc_limits(&config.server),
        grpc,
        metrics.clone(),
        phase_rx,
    ));
    tracing::info!(addr = %local, tls = config.server.tls.is_some(), "listening");

    // Models load off the async runtime while health already answers NOT_SERVING.
    let load_config = config.clone();
    let load_metrics = metrics.clone();
    let loaded = tokio::task::spawn_blocking(move || Engine::load(&load_config, load_metrics));
    tokio::pin!(shutdown);
    tokio::select! {
        result = loaded => {
            match result {
                Ok(Ok(loaded)) => {
                    if let Err(error) = loaded.check_scorers().await {
                        stop();
                        return Err(ServeError::Load(error));
                    }
                    let store = loaded.policy().clone();
                    let version = store.current().version.clone();
                    tokio::spawn(policy::watch(store, config.policy.watch, log_reload(metrics.clone())));
                    let _ = engine.set(loaded);
                    tokio::spawn(drift_timers(engine.clone(), config.drift.clone()));
                    tokio::spawn(model_reloads(engine.clone(), config.clone()));
                    // Backend entries exist before anything says SERVING: a client that saw the server ready
                    // can ask for them at once.
                    if let Some(engine) = engine.get() {
                        report_backends_once(engine, &reporter).await;
                    }
                    reporter.set_service_status("", ServingStatus::Serving).await;
                    reporter.set_service_status(ROUTER_SERVICE, ServingStatus::Serving).await;
                    tokio::spawn(report_backends(engine.clone(), reporter.clone()));
                    metrics.observe(engine.clone());
                    ready.store(true, Ordering::SeqCst);
                    tracing::info!(policy_version = %version, "models loaded; serving");
                }
                Ok(Err(error)) => {
                    stop();
                    return Err(ServeError::Load(error));
                }
                Err(join) => {
                    stop();
                    return Err(ServeError::Crashed(format!("loading the models: {join}")));
                }
            }
        }
        () = &mut shutdown => {
            stop();
            return Ok(());
        }
    }

    tokio::select! {
        result = &mut server => return flatten(result),
        () = &mut shutdown => {}
    }
    // Readiness off first, then keep serving for the drain delay: load balancers and Kubernetes endpoints see
    // NOT_SERVING / 503 and stop sending before the listener closes, so no new call meets a closed port.
    ready.store(false, Ordering::SeqCst);
    reporter.set_service_status("", ServingStatus::NotServing).await;
    reporter
        .set_service_status(ROUTER_SERVICE, ServingStatus::NotServing)
        .await;
    let delay = config.server.drain_delay;
    tracing::info!(drain_delay = ?delay, grace = ?config.server.shutdown_grace, "shutting down: not ready; draining");
    tokio::select! {
        result = &mut server => return flatten(result),
        () = tokio::time::sleep(delay) => {}
    }
    stop();
    let drained = match tokio::time::timeout(config.server.shutdown_grace, &mut server).await {
        Ok(result) => flatten(result),
        Err(_) => {
            tracing::warn!("grace period over: dropping the requests still in flight");
            let _ = phase.send(Phase::Closed);
            flatten(server.await)
        }
    };
    // The admin port outlives the drain: /readyz says 503 and /metrics stays scrapeable until the end.
    let _ = admin_phase.send(Phase::Closed);
    if let Err(join) = admin.await {
        tracing::error!(error = %join, "admin server failed");
    }
    metrics.shutdown();
    drained
}

/// Logs and counts each policy reload; a refused file is logged with its file, line, key and reason.
fn log_reload(metrics: SharedMetrics) -> impl Fn(&ReloadOutcome) + Send + 'static {
    move |outcome| {
        metrics.policy_reload(outcome.as_str());
        match outcome {
            ReloadOutcome::Applied { from, to } => {
                tracing::info!(from_version = %from, policy_version = %to, "policy reloaded");
            }
            ReloadOutcome::Unchanged => tracing::debug!("policy file touched; content unchanged"),
            ReloadOutcome::Rejected(error) => tracing::error!(
                file = %error.file.display(),
                line = error.line,
                key = %error.key,
                reason = %error.reason,
                "policy reload refused; the running policy stays"
            ),
        }
    }
}

/// How often backend health follows the circuit breakers.
const BACKEND_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps one health entry per LLM backend (`switchyard.backend.<name>`) in step with its circuit breaker:
/// SERVING while closed or half-open, NOT_SERVING while open.
async fn report_backends(engine: SharedEngine, reporter: tonic_health::server::HealthReporter) {
    let Some(engine) = engine.get() else { return };
    let mut ticker = tokio::time::interval(BACKEND_HEALTH_INTERVAL);
    loop {
        ticker.tick().await;
        report_backends_once(engine, &reporter).await;
    }
}

/// Sets each backend's health entry from its circuit breaker, once.
async fn report_backends_once(engine: &Engine, reporter: &tonic_health::server::HealthReporter) {
    for (name, circuit) in engine.circuits() {
        let status = match circuit {
            llm::CircuitState::Open => ServingStatus::NotServing,
            llm::CircuitState::Closed | llm::CircuitState::HalfOpen => ServingStatus::Serving,
        };
        reporter
            .set_service_status(&format!("switchyard.backend.{name}"), status)
            .await;
    }
}

/// Model reloads (file changes, SIGHUP) for as long as the engine serves.
async fn model_reloads(engine: SharedEngine, config: Config) {
    if let Some(engine) = engine.get() {
        crate::engine::watch_models(engine, &config).await;
    }
}

/// The drift timers, applied to the monitor of whichever model set serves.
async fn drift_timers(engine: SharedEngine, config: crate::config::DriftConfig) {
    let Some(engine) = engine.get() else { return };
    crate::drift::run(config, |tick| {
        let models = engine.models();
        match tick {
            crate::drift::Tick::Rotate => models.drift.rotate(),
            crate::drift::Tick::Evaluate => models.drift.evaluate(),
        }
    })
    .await;
}

fn flatten(result: Result<(), tokio::task::JoinError>) -> Result<(), ServeError> {
    result.map_err(|join| ServeError::Crashed(format!("serving: {join}")))
}

/// The gRPC port's connection limits, from `[server]`.
fn grpc_limits(server: &crate::config::ServerConfig) -> PortLimits {
    let connections = &server.connections;
    PortLimits {
        max_connections: connections.max_connections,
        handshake_timeout: connections.handshake_timeout,
        idle_timeout: connections.idle_timeout,
        max_connection_age: Some((connections.max_connection_age, connections.max_connection_age_grace)),
        header_read_timeout: None,
        max_concurrent_streams: connections.max_concurrent_streams,
        keepalive: Some((connections.keepalive_interval, connections.keepalive_timeout)),
        http2_only: true,
    }
}

/// HTTP/2 streams one admin connection may have open (a scraper or a probe needs one or two).
const ADMIN_STREAMS: u32 = 16;

/// The admin port's connection limits, from `[server]`.
fn admin_limits(admin: &crate::config::AdminLimits) -> PortLimits {
    PortLimits {
        max_connections: admin.max_connections,
        handshake_timeout: admin.header_timeout,
        idle_timeout: admin.idle_timeout,
        max_connection_age: None,
        header_read_timeout: Some(admin.header_timeout),
        max_concurrent_streams: ADMIN_STREAMS,
        keepalive: None,
        http2_only: false,
    }
}

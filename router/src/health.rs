//! `switchyard health`: one `grpc.health.v1.Health/Check` against a running gateway, for container
//! HEALTHCHECKs and Kubernetes exec probes (the image has no shell, curl or grpc_health_probe).

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::cli::HealthArgs;

/// Why the gateway is not healthy, or could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// A TLS file could not be read, or the address is not a URL.
    #[error("{0}")]
    Setup(String),
    /// No answer within the timeout, or no connection.
    #[error("{addr}: no answer: {reason}")]
    Unreachable {
        /// The address asked.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The gateway answered with an error (NOT_FOUND: no such health service).
    #[error("{addr}: {code}: {message}")]
    Status {
        /// The address asked.
        addr: String,
        /// The gRPC code.
        code: tonic::Code,
        /// The gateway's message.
        message: String,
    },
    /// It answered, but not SERVING (loading its models, draining, or a backend's circuit open).
    #[error("{addr}: service {service:?} is {status}")]
    NotServing {
        /// The address asked.
        addr: String,
        /// The health service name asked about.
        service: String,
        /// What it said.
        status: &'static str,
    },
}

/// Pause between attempts after a transport failure.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Asks until an answer or the timeout; `Ok` only for SERVING. A transport failure (no connection, a connection
/// closed before the answer) is tried again within the timeout, as gRPC clients retry a call the server never
/// saw: once in a few dozen runs of the mutual-TLS test, a fresh process's first call over a new connection was
/// CANCELLED by its own connection closing, and a probe must not fail a healthy pod for that. An answer (a
/// status, NOT_SERVING) is final.
pub async fn check(args: &HealthArgs) -> Result<(), HealthError> {
    let endpoint = endpoint(args)?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let response = loop {
        match tokio::time::timeout_at(deadline, ask(args, &endpoint)).await {
            Ok(Ok(response)) => break response,
            Ok(Err(HealthError::Unreachable { reason, .. }))
                if deadline - tokio::time::Instant::now() > RETRY_PAUSE =>
            {
                tracing::debug!(%reason, "health check: transport failure, trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(HealthError::Unreachable {
                    addr: args.addr.clone(),
                    reason: format!("timed out after {:?}", args.timeout),
                });
            }
        }
    };
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    if status == ServingStatus::Serving {
        return Ok(());
    }
    Err(HealthError::NotServing {
        addr: args.addr.clone(),
        service: args.service.clone(),
        status: status.as_str_name(),
    })
}

/// One attempt: a new connection and one `Check`.
async fn ask(args: &HealthArgs, endpoint: &Endpoint) -> Result<HealthCheckResponse, HealthError> {
    let unreachable = |reason: String| HealthError::Unreachable {
        addr: args.addr.clone(),
        reason,
    };
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(llm::error_chain(&e)))?;
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    let response = HealthClient::new(channel)
        .check(request)
        .await
        .map_err(|status| match status.code() {
            // How tonic reports a connection that failed or closed under the call: a refused client certificate
            // is UNKNOWN "transport error", a connection closed before the answer CANCELLED.
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                unreachable(llm::error_chain(&status))
            }
            code => HealthError::Status {
                addr: args.addr.clone(),
                code,
                message: status.message().to_owned(),
            },
        })?;
    Ok(response.into_inner())
}

/// The channel's endpoint, with TLS when the address is `https://`.
fn endpoint(args: &HealthArgs) -> Result<Endpoint, HealthError> {
    let endpoint = Channel::from_shared(args.addr.clone())
        .map_err(|e| HealthError::Setup(format!("--addr {:?}: {e}", args.addr)))?
        .connect_timeout(args.timeout);
    if !args.addr.starts_with("https://") {
        return Ok(endpoint);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match &args.ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca, "--ca")?)),
        None => tls.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        tls = tls.identity(Identity::from_pem(read(cert, "--cert")?, read(key, "--key")?));
    }
    if let Some(name) = &args.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    endpoint
        .tls_config(tls)
        .map_err(|e| HealthError::Setup(format!("TLS: {}", llm::error_chain(&e))))
}

fn read(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, HealthError> {
    std::fs::read(path).map_err(|e| HealthError::Setup(format!("{flag} {}: {e}", path.display())))
}

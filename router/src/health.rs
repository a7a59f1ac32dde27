//! `switchyard health`: one `grpc.health.v1.Health/Check` against a running gateway, for container
//! HEALTHCHECKs and Kubernetes exec probes (the image has no shell, curl or grpc_health_probe).

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

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

/// Asks once; `Ok` only for SERVING.
pub async fn check(args: &HealthArgs) -> Result<(), HealthError> {
    let unreachable = |reason: String| HealthError::Unreachable {
        addr: args.addr.clone(),
        reason,
    };
    let endpoint = endpoint(args)?;
    let asked = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(llm::error_chain(&e)))?;
        let request = HealthCheckRequest {
            service: args.service.clone(),
        };
        HealthClient::new(channel)
            .check(request)
            .await
            .map_err(|status| match status.code() {
                // tonic reports a failed handshake (a refused client certificate) as UNKNOWN "transport error".
                tonic::Code::Unavailable | tonic::Code::Unknown => unreachable(llm::error_chain(&status)),
                code => HealthError::Status {
                    addr: args.addr.clone(),
                    code,
                    message: status.message().to_owned(),
                },
            })
    };
    let response = tokio::time::timeout(args.timeout, asked)
        .await
        .map_err(|_| unreachable(format!("timed out after {:?}", args.timeout)))??
        .into_inner();
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

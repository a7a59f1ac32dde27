//! TLS on the gRPC port: a client trusting the served CA gets answers and a plaintext client does not; a rotated
//! certificate is served without a restart; with a client CA, only clients with a certificate it signed get in,
//! and a listed certificate name authenticates its tenant. The admin port serves HTTPS with the same certificate.
//! Traces reach an `https://` collector (OTLP/gRPC and OTLP/HTTP) that chains to the configured CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use support::{Gateway, OtlpReceiver, TempDir, config, free_port, request, telco_record};
use switchyard::auth::hash_key;
use switchyard_proto::v1::router_client::RouterClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A CA (PEM certificate) that can sign leaves.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `name` (also its DNS name): (certificate PEM, key PEM).
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    // Written beside, then renamed: the way a secret volume updates, never a half-written file.
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path.display().to_string()
}

async fn tls_client(
    gateway: &Gateway,
    ca: &Ca,
    identity: Option<(String, String)>,
) -> Result<RouterClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://{}", gateway.addr()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(RouterClient::new(channel))
}

async fn scores(client: &mut RouterClient<Channel>) -> bool {
    client
        .route(request("", Some(telco_record())))
        .await
        .is_ok_and(|r| r.into_inner().prediction.is_some())
}

/// Whether a new connection trusting `ca` (and presenting `identity`) gets a score.
async fn gets_in(gateway: &Gateway, ca: &Ca, identity: Option<(String, String)>) -> bool {
    match tls_client(gateway, ca, identity).await {
        Ok(mut client) => scores(&mut client).await,
        Err(_) => false,
    }
}

fn tls_config(cert: &str, key: &str, client_ca: Option<&str>) -> String {
    let mut tls = format!("[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n");
    if let Some(ca) = client_ca {
        tls += &format!("client_ca_file = \"{ca}\"\n");
    }
    config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s").replace("[models]", &format!("{tls}\n[models]"))
}

#[tokio::test]
async fn the_grpc_port_speaks_tls_and_a_rotated_certificate_is_served_without_a_restart() {
    let dir = TempDir::new();
    let (old_ca, new_ca) = (Ca::new("old ca"), Ca::new("new ca"));
    let (cert, key) = old_ca.leaf("localhost");
    let (cert_path, key_path) = (write(&dir.0, "tls.crt", &cert), write(&dir.0, "tls.key", &key));
    let gateway = Gateway::start(&tls_config(&cert_path, &key_path, None)).await;

    let mut client = tls_client(&gateway, &old_ca, None).await.unwrap();
    assert!(
        scores(&mut client).await,
        "a client trusting the CA gets answers over TLS"
    );
    let plain = RouterClient::connect(gateway.url()).await;
    let refused = match plain {
        Ok(mut c) => c.route(request("", Some(telco_record()))).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "plaintext gets nothing");
    assert!(
        !gets_in(&gateway, &new_ca, None).await,
        "a client trusting another CA does not get in"
    );

    // Rotate to a certificate from another CA, as cert-manager would (key and certificate replaced).
    let (cert, key) = new_ca.leaf("localhost");
    write(&dir.0, "tls.key", &key);
    write(&dir.0, "tls.crt", &cert);
    let mut rotated = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if gets_in(&gateway, &new_ca, None).await {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "new connections get the rotated certificate");
    assert!(
        scores(&mut client).await,
        "a connection made before the rotation keeps working"
    );

    // A broken rotation is refused: the running certificate stays.
    write(&dir.0, "tls.crt", "not a certificate");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        gets_in(&gateway, &new_ca, None).await,
        "the running certificate stays after a bad rotation"
    );
}

/// A gateway serving a `localhost` certificate from `server_ca` and requiring client certificates from `client_ca`.
async fn mutual_tls_gateway(dir: &TempDir, server_ca: &Ca, client_ca: &Ca) -> Gateway {
    let (cert, key) = server_ca.leaf("localhost");
    let config = tls_config(
        &write(&dir.0, "tls.crt", &cert),
        &write(&dir.0, "tls.key", &key),
        Some(&write(&dir.0, "clients.crt", &client_ca.pem())),
    );
    Gateway::start(&config).await
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificates_get_in() {
    let dir = TempDir::new();
    let (server_ca, client_ca, stranger_ca) = (Ca::new("server ca"), Ca::new("client ca"), Ca::new("stranger"));
    let gateway = mutual_tls_gateway(&dir, &server_ca, &client_ca).await;
    let mut member = tls_client(&gateway, &server_ca, Some(client_ca.leaf("ops")))
        .await
        .unwrap();
    assert!(scores(&mut member).await);
    for identity in [None, Some(stranger_ca.leaf("ops"))] {
        assert!(
            !gets_in(&gateway, &server_ca, identity).await,
            "a client without a certificate from the client CA must not get in"
        );
    }
}

#[tokio::test]
async fn switchyard_health_checks_a_mutual_tls_gateway_with_a_probe_certificate() {
    let dir = TempDir::new();
    let (server_ca, client_ca) = (Ca::new("server ca"), Ca::new("client ca"));
    let gateway = mutual_tls_gateway(&dir, &server_ca, &client_ca).await;
    let ca = write(&dir.0, "ca.crt", &server_ca.pem());
    let (probe_cert, probe_key) = client_ca.leaf("probe");
    let (probe_cert, probe_key) = (
        write(&dir.0, "probe.crt", &probe_cert),
        write(&dir.0, "probe.key", &probe_key),
    );
    // The certificate names `localhost`; the probe dials the IP, as a kubelet exec probe does.
    let addr = format!("https://{}", gateway.addr);
    let health = |extra: &[&str]| {
        let mut args = vec!["health", "--addr", &addr, "--ca", &ca, "--tls-server-name", "localhost"];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(&args)
            .output()
            .unwrap()
    };
    let with_cert = health(&["--cert", &probe_cert, "--key", &probe_key]);
    assert!(
        with_cert.status.success(),
        "{}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with_cert.stdout).trim(), "SERVING");
    let without = health(&[]);
    assert!(!without.status.success(), "no client certificate, no answer");
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("no answer"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
}

#[test]
fn unusable_tls_files_are_refused_at_start_naming_the_key() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    let (cert, key) = ca.leaf("localhost");
    let (_, other_key) = ca.leaf("localhost");
    let cert_path = write(&dir.0, "tls.crt", &cert);
    let key_path = write(&dir.0, "tls.key", &key);
    let other_key_path = write(&dir.0, "other.key", &other_key);
    let garbage = write(&dir.0, "garbage.pem", "hello");
    for (cert, key, ca, expected) in [
        (garbage.as_str(), key_path.as_str(), None, "server.tls.cert_file"),
        (cert_path.as_str(), other_key_path.as_str(), None, "server.tls.key_file"),
        (cert_path.as_str(), garbage.as_str(), None, "server.tls.key_file"),
        (
            cert_path.as_str(),
            key_path.as_str(),
            Some(garbage.as_str()),
            "server.tls.client_ca_file",
        ),
    ] {
        let path = support::write_config(&dir.0, &tls_config(cert, key, ca));
        let error = switchyard::config::Config::load(&path).unwrap_err();
        assert_eq!(error.key, expected, "{error}");
    }
}

/// GET `path` on the admin port over HTTPS, trusting `ca`: the status, or the error.
async fn admin_https(gateway: &Gateway, ca: &Ca, path: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .resolve("localhost", gateway.admin)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}{path}", gateway.admin.port());
    let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn the_admin_port_serves_https_with_the_grpc_ports_certificate_unless_turned_off() {
    let dir = TempDir::new();
    let (ca, stranger) = (Ca::new("ca"), Ca::new("stranger"));
    let (cert, key) = ca.leaf("localhost");
    let (cert_path, key_path) = (write(&dir.0, "tls.crt", &cert), write(&dir.0, "tls.key", &key));
    let gateway = Gateway::start(&tls_config(&cert_path, &key_path, None)).await;
    assert_eq!(admin_https(&gateway, &ca, "/readyz").await, Ok(200));
    assert_eq!(admin_https(&gateway, &ca, "/metrics").await, Ok(200));
    assert!(
        admin_https(&gateway, &stranger, "/readyz").await.is_err(),
        "a client trusting another CA does not get in"
    );
    assert!(
        reqwest::get(format!("http://{}/readyz", gateway.admin)).await.is_err(),
        "plain HTTP gets nothing from a TLS admin port"
    );

    let plain_admin =
        tls_config(&cert_path, &key_path, None).replace("[server.tls]\n", "[server.tls]\nadmin = false\n");
    let gateway = Gateway::start(&plain_admin).await;
    assert_eq!(
        gateway.admin_get("/readyz").await.0,
        200,
        "admin = false keeps it plain"
    );
}

#[tokio::test]
async fn a_listed_client_certificate_name_authenticates_its_tenant() {
    let dir = TempDir::new();
    let (server_ca, client_ca) = (Ca::new("server ca"), Ca::new("client ca"));
    let (cert, key) = server_ca.leaf("localhost");
    let keys = format!(
        "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n[[certificates]]\ntenant = \"billing\"\nname = \"billing.internal\"\n",
        hash_key("ops-key")
    );
    let keys_path = write(&dir.0, "keys.toml", &keys);
    let config = tls_config(
        &write(&dir.0, "tls.crt", &cert),
        &write(&dir.0, "tls.key", &key),
        Some(&write(&dir.0, "clients.crt", &client_ca.pem())),
    ) + &format!("\n[auth]\nmode = \"required\"\nkeys_file = \"{keys_path}\"\n");
    let gateway = Gateway::start(&config).await;

    let mut billing = tls_client(&gateway, &server_ca, Some(client_ca.leaf("billing.internal")))
        .await
        .unwrap();
    assert!(scores(&mut billing).await, "the certificate alone authenticates");
    let mut as_ops = request("", Some(telco_record()));
    as_ops.tenant = "ops".to_owned();
    let refused = billing.route(as_ops).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::PermissionDenied,
        "the certificate's tenant is billing, so a body naming ops is refused: {refused:?}"
    );

    let mut unlisted = tls_client(&gateway, &server_ca, Some(client_ca.leaf("stranger.internal")))
        .await
        .unwrap();
    let status = unlisted.route(request("", Some(telco_record()))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}

#[test]
fn certificate_names_without_a_client_ca_are_refused_at_start() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    let (cert, key) = ca.leaf("localhost");
    let keys = write(
        &dir.0,
        "keys.toml",
        "[[certificates]]\ntenant = \"billing\"\nname = \"billing.internal\"\n",
    );
    let text = tls_config(&write(&dir.0, "tls.crt", &cert), &write(&dir.0, "tls.key", &key), None)
        + &format!("\n[auth]\nmode = \"required\"\nkeys_file = \"{keys}\"\n");
    let error = switchyard::config::Config::load(&support::write_config(&dir.0, &text)).unwrap_err();
    assert_eq!(error.key, "auth.keys_file", "{error}");
    assert!(error.to_string().contains("client_ca_file"), "{error}");
}

#[tokio::test]
async fn traces_reach_an_https_collector_trusting_the_configured_ca_over_grpc_and_http() {
    let dir = TempDir::new();
    let (ca, stranger) = (Ca::new("collector ca"), Ca::new("stranger"));
    let (cert, key) = ca.leaf("localhost");
    let (cert_file, key_file) = (
        write(&dir.0, "collector.crt", &cert),
        write(&dir.0, "collector.key", &key),
    );
    let ca_file = write(&dir.0, "collector-ca.crt", &ca.pem());
    let stranger_file = write(&dir.0, "stranger-ca.crt", &stranger.pem());
    let grpc = OtlpReceiver::grpc_tls(&cert, &key).await;
    let http = OtlpReceiver::http_tls(Path::new(&cert_file), Path::new(&key_file)).await;
    let base = config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s");
    for (receiver, protocol) in [(&grpc, "grpc"), (&http, "http/protobuf")] {
        let telemetry = format!("otlp_protocol = \"{protocol}\"\notlp_ca_file = \"{ca_file}\"");
        let gateway = Gateway::start_traced(&base, &receiver.endpoint(), &telemetry).await;
        assert!(scores(&mut gateway.client().await).await);
        let mut received = false;
        for _ in 0..100 {
            if !receiver.all_spans().is_empty() {
                received = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(received, "{protocol}: spans reach the https collector");
    }

    // A collector whose certificate does not chain to the configured CA gets nothing.
    let before = grpc.all_spans().len();
    let telemetry = format!("otlp_ca_file = \"{stranger_file}\"");
    let gateway = Gateway::start_traced(&base, &grpc.endpoint(), &telemetry).await;
    assert!(scores(&mut gateway.client().await).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        grpc.all_spans().len(),
        before,
        "an untrusted collector must get no spans"
    );
}

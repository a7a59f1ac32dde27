//! A backend behind TLS with a private CA: reached when the CA bundle is configured, refused (as a connection
//! failure naming the backend) when it is not, and the API key never shows in `Debug`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use llm::{BackendConfig, ChatBackend, ChatMessage, ChatRequest, LlmError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANSWER: &str = r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"over tls"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;

/// An HTTPS server for `localhost` answering every request with [`ANSWER`]; returns its port and CA (PEM).
async fn https_backend() -> (u16, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(leaf.pem().as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut buffer = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Headers, then the body by its content-length.
                loop {
                    let Ok(n) = tls.read(&mut buffer).await else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, ca.pem())
}

fn backend(port: u16, ca_certificates: Vec<reqwest::Certificate>) -> ChatBackend {
    ChatBackend::new(BackendConfig {
        name: "private".into(),
        base_url: format!("https://localhost:{port}/v1"),
        model: "m".into(),
        api_key: Some("sk-do-not-print-me".to_owned().into()),
        ca_certificates,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        inter_token_timeout: Duration::from_secs(5),
        headers: Vec::new(),
        max_response_bytes: 1 << 20,
        provider: "openai".into(),
        capture_content: None,
    })
    .unwrap()
}

fn question() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user("hello")],
        max_tokens: Some(4),
        temperature: Some(0.0),
    }
}

#[tokio::test]
async fn a_backend_with_a_private_ca_is_reached_only_with_its_bundle() {
    let (port, ca_pem) = https_backend().await;
    let dir = std::env::temp_dir().join(format!("switchyard-llm-ca-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca.pem");
    std::fs::write(&bundle, &ca_pem).unwrap();
    let trusted = backend(port, llm::read_ca_bundle(&bundle).unwrap());
    let answer = trusted.complete(&question()).await.unwrap();
    assert_eq!(answer.text, "over tls");

    let untrusted = backend(port, Vec::new());
    match untrusted.complete(&question()).await {
        Err(error @ LlmError::Connect { .. }) => assert!(error.to_string().contains("private"), "{error}"),
        other => panic!("an unknown CA must fail the connection: {other:?}"),
    }
    let debug = format!("{:?}", backend(port, Vec::new()));
    assert!(!debug.contains("sk-do-not-print-me"), "the key shows in Debug: {debug}");
    std::fs::write(&bundle, "no certificates here").unwrap();
    assert!(llm::read_ca_bundle(&bundle).is_err());
}

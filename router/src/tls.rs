//! TLS for the gRPC port and the admin port (rustls): the certificate and key from files, reloaded when they
//! change (so a cert-manager rotation needs no restart), and, on the gRPC port, optional client certificates
//! checked against a CA (mTLS).
//!
//! The served certificate sits behind an `ArcSwap`; each handshake takes the current one. A watcher compares the
//! files' modification times every second and swaps in a new pair only when it parses and the key matches the
//! certificate; a bad rotation is logged and the running certificate stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// The files TLS is set up from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates; when set, every gRPC client must present a certificate they signed (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Whether the admin port serves HTTPS with the same certificate (no client certificate asked: Prometheus
    /// and the kubelet's probes present none).
    pub admin: bool,
}

/// Why TLS could not be set up (or a rotation was refused).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct TlsError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The served certificate, swapped when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ReloadingCert {
    /// Loads the pair once; fails naming the file when it does not parse or the key does not match.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = certified_key(files, &provider)?;
        Ok(Self {
            files: files.clone(),
            provider,
            current: ArcSwap::from_pointee(current),
        })
    }

    /// Swaps in a changed pair that loads, checking the files every [`crate::reload::RELOAD_INTERVAL`]; runs
    /// until dropped.
    pub async fn watch(self: Arc<Self>) {
        let files = vec![self.files.cert.clone(), self.files.key.clone()];
        crate::reload::on_change(files, || match certified_key(&self.files, &self.provider) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(cert = %self.files.cert.display(), "tls certificate reloaded");
            }
            Err(error) => tracing::error!(
                file = %error.file.display(),
                reason = %error.reason,
                "tls certificate reload refused; the running certificate stays"
            ),
        })
        .await;
    }
}

/// The acceptor for the gRPC port (HTTP/2 only, as gRPC needs) and the certificate it serves, to be watched.
pub fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<ReloadingCert>), TlsError> {
    let cert = Arc::new(ReloadingCert::load(files)?);
    let builder = rustls::ServerConfig::builder_with_provider(cert.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&files.cert, e))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in read_certs(ca)? {
                roots.add(der).map_err(|e| fail(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), cert.provider.clone())
                .build()
                .map_err(|e| fail(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert))
}

/// The acceptor for the admin port: the gRPC port's certificate, HTTP/2 or HTTP/1.1, no client certificate.
pub fn admin_acceptor(cert: &Arc<ReloadingCert>) -> Result<TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(cert.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&cert.files.cert, e))?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Checks that `files` load, without serving them (config validation).
pub fn check(files: &TlsFiles) -> Result<(), TlsError> {
    acceptor(files).map(|_| ())
}

fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| fail(&files.key, e))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(&files.key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| fail(&files.key, format!("does not match the certificate: {e}")))?;
    Ok(certified)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(path, e))?;
    if certs.is_empty() {
        return Err(fail(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn fail(file: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    }
}

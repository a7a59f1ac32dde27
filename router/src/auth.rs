//! Caller authentication: API keys, stored only as SHA-256 digests, and client-certificate identities, each
//! naming the tenant it authenticates.
//!
//! The keys file (TOML, outside the main config, e.g. a mounted Kubernetes Secret) lists `[[keys]]` entries of
//! `tenant` and `sha256` (hex of the key's digest; `switchyard hash-key` prints it). A caller sends
//! `authorization: Bearer <key>`; the gateway hashes what it got and looks the digest up. Keys are random tokens
//! (at least 32 bytes of entropy are expected), so an unsalted fast hash is the right tool: there is nothing to
//! brute-force, and a lookup by digest compares no secret byte by byte. Every failure answers the same
//! `UNAUTHENTICATED` message, so a caller learns nothing about which part was wrong.
//!
//! With mTLS (`server.tls.client_ca_file`), `[[certificates]]` entries of `tenant` and `name` let a caller
//! authenticate with its client certificate alone: the certificate the TLS handshake verified names the tenant
//! when one of its subject alternative names (DNS name or URI, e.g. a SPIFFE ID) equals `name` exactly. A caller
//! that sends a key is judged by the key.
//!
//! The file is checked every second and a changed one that loads replaces the credentials in force ([`KeysFile`]):
//! keys rotate by adding the new one, moving callers over, then removing the old, with no restart. A file that
//! does not load is logged and the running credentials stay.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

/// The metadata key carrying the credential.
pub const AUTHORIZATION: &str = "authorization";

/// Longest tenant name accepted anywhere (keys file, request body).
pub const MAX_TENANT_BYTES: usize = 64;

/// The credentials that authenticate callers: API keys by digest, client-certificate names.
#[derive(Clone, Default)]
pub struct Credentials {
    by_digest: HashMap<[u8; 32], String>,
    by_certificate_name: HashMap<String, String>,
}

/// A caller the gateway authenticated: its tenant comes from the credential, never from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The tenant the key belongs to.
    pub tenant: String,
}

/// Why a keys file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct KeysError {
    /// The keys file.
    pub file: PathBuf,
    /// The entry (`keys[3].sha256`), or `-` for the file.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    certificates: Vec<RawCertificate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    tenant: String,
    name: String,
}

/// Longest certificate name accepted (a DNS name's limit; URIs such as SPIFFE IDs fit).
const MAX_CERTIFICATE_NAME_BYTES: usize = 2048;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    tenant: String,
    sha256: String,
}

impl Credentials {
    /// Reads and checks a keys file: every digest 64 hex digits and unique, every certificate name non-empty and
    /// unique, every tenant a valid name.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let fail = |key: &str, reason: String| KeysError {
            file: path.to_path_buf(),
            key: key.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail("-", e.to_string()))?;
        let raw: RawKeys = toml::from_str(&text).map_err(|e| fail("-", e.message().to_owned()))?;
        let mut by_digest = HashMap::new();
        for (i, entry) in raw.keys.into_iter().enumerate() {
            if let Err(reason) = check_tenant(&entry.tenant) {
                return Err(fail(&format!("keys[{i}].tenant"), reason));
            }
            let digest = parse_digest(&entry.sha256).ok_or_else(|| {
                fail(
                    &format!("keys[{i}].sha256"),
                    "must be 64 hexadecimal digits (the key's SHA-256)".to_owned(),
                )
            })?;
            if by_digest.insert(digest, entry.tenant).is_some() {
                return Err(fail(
                    &format!("keys[{i}].sha256"),
                    "the same key is listed twice".to_owned(),
                ));
            }
        }
        let mut by_certificate_name = HashMap::new();
        for (i, entry) in raw.certificates.into_iter().enumerate() {
            if let Err(reason) = check_tenant(&entry.tenant) {
                return Err(fail(&format!("certificates[{i}].tenant"), reason));
            }
            let name = entry.name.trim();
            if name.is_empty() || name.len() > MAX_CERTIFICATE_NAME_BYTES {
                return Err(fail(
                    &format!("certificates[{i}].name"),
                    format!("must be 1 to {MAX_CERTIFICATE_NAME_BYTES} bytes: a DNS name or URI of the certificate"),
                ));
            }
            if by_certificate_name.insert(name.to_owned(), entry.tenant).is_some() {
                return Err(fail(
                    &format!("certificates[{i}].name"),
                    "the same name is listed twice".to_owned(),
                ));
            }
        }
        if by_digest.is_empty() && by_certificate_name.is_empty() {
            return Err(fail(
                "keys",
                "no keys and no certificates: with auth required nobody could call".to_owned(),
            ));
        }
        Ok(Self {
            by_digest,
            by_certificate_name,
        })
    }

    /// The caller's tenant: by the `authorization` metadata value (`Bearer <key>`) when there is one, else by the
    /// verified client certificate (DER, the leaf); `None` when neither authenticates.
    pub fn authenticate(&self, authorization: Option<&str>, certificate: Option<&[u8]>) -> Option<Authenticated> {
        let tenant = match authorization {
            Some(value) => {
                let key = value.strip_prefix("Bearer ")?.trim();
                if key.is_empty() {
                    return None;
                }
                self.by_digest.get(&digest(key))?
            }
            None => self.certificate_tenant(certificate?)?,
        };
        Some(Authenticated { tenant: tenant.clone() })
    }

    /// Whether some tenant authenticates by client certificate (which then needs a client CA to verify them).
    fn names_certificates(&self) -> bool {
        !self.by_certificate_name.is_empty()
    }

    fn certificate_tenant(&self, der: &[u8]) -> Option<&String> {
        if self.by_certificate_name.is_empty() {
            return None;
        }
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = certificate.subject_alternative_name().ok()??;
        names.value.general_names.iter().find_map(|name| match name {
            GeneralName::DNSName(name) | GeneralName::URI(name) => self.by_certificate_name.get(*name),
            _ => None,
        })
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests are not keys, but nothing about them belongs in a log either.
        f.debug_struct("Credentials")
            .field("keys", &self.by_digest.len())
            .field("certificates", &self.by_certificate_name.len())
            .finish()
    }
}

/// The credentials in force, from a keys file that is reloaded when it changes.
pub struct KeysFile {
    file: PathBuf,
    /// Whether client certificates are verified (a client CA is configured), so `[[certificates]]` may be used.
    certificates_verified: bool,
    current: ArcSwap<Credentials>,
}

impl KeysFile {
    /// Loads `file`; `[[certificates]]` are refused unless client certificates are verified.
    pub fn load(file: &Path, certificates_verified: bool) -> Result<Self, KeysError> {
        let credentials = Self::read(file, certificates_verified)?;
        Ok(Self {
            file: file.to_path_buf(),
            certificates_verified,
            current: ArcSwap::from_pointee(credentials),
        })
    }

    /// The credentials in force.
    pub fn current(&self) -> arc_swap::Guard<Arc<Credentials>> {
        self.current.load()
    }

    /// Swaps in a changed file that loads, checking it every [`crate::reload::RELOAD_INTERVAL`]; runs until
    /// dropped.
    pub async fn watch(self: Arc<Self>) {
        crate::reload::on_change(vec![self.file.clone()], || {
            match Self::read(&self.file, self.certificates_verified) {
                Ok(credentials) => {
                    self.current.store(Arc::new(credentials));
                    tracing::info!(file = %self.file.display(), "api keys reloaded");
                }
                Err(error) => tracing::error!(
                    file = %error.file.display(),
                    key = %error.key,
                    reason = %error.reason,
                    "api keys reload refused; the running keys stay"
                ),
            }
        })
        .await;
    }

    fn read(file: &Path, certificates_verified: bool) -> Result<Credentials, KeysError> {
        let credentials = Credentials::load(file)?;
        if credentials.names_certificates() && !certificates_verified {
            return Err(KeysError {
                file: file.to_path_buf(),
                key: "certificates".to_owned(),
                reason: "need server.tls.client_ca_file (only certificates it verified name tenants)".to_owned(),
            });
        }
        Ok(credentials)
    }
}

impl std::fmt::Debug for KeysFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysFile")
            .field("file", &self.file)
            .field("credentials", &*self.current.load())
            .finish()
    }
}

/// The hex SHA-256 of a key: what the keys file holds for it.
pub fn hash_key(key: &str) -> String {
    digest(key.trim()).iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A tenant name: 1 to [`MAX_TENANT_BYTES`] bytes of ASCII letters, digits, `-`, `_` and `.`.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() || tenant.len() > MAX_TENANT_BYTES {
        return Err(format!("must be 1 to {MAX_TENANT_BYTES} bytes"));
    }
    if !tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may hold only ASCII letters, digits, '-', '_' and '.'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn keys(text: &str) -> Result<Credentials, KeysError> {
        let dir = std::env::temp_dir().join(format!("switchyard-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(&path, text).unwrap();
        Credentials::load(&path)
    }

    #[test]
    fn a_key_authenticates_its_tenant_and_nothing_else_does() {
        let file = format!(
            "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n[[keys]]\ntenant = \"web\"\nsha256 = \"{}\"\n",
            hash_key("ops-secret-key"),
            hash_key("web-secret-key").to_uppercase()
        );
        let keys = keys(&file).unwrap();
        let tenant = |header: Option<&str>| keys.authenticate(header, None).map(|a| a.tenant);
        assert_eq!(tenant(Some("Bearer ops-secret-key")).as_deref(), Some("ops"));
        assert_eq!(tenant(Some("Bearer web-secret-key")).as_deref(), Some("web"));
        for wrong in [
            None,
            Some(""),
            Some("Bearer "),
            Some("ops-secret-key"),
            Some("Basic ops-secret-key"),
            Some("Bearer ops-secret-kez"),
        ] {
            assert_eq!(tenant(wrong), None, "{wrong:?}");
        }
        assert!(
            !format!("{keys:?}").contains(&hash_key("ops-secret-key")),
            "digests stay out of Debug"
        );
    }

    #[test]
    fn a_bad_keys_file_is_refused_naming_the_entry() {
        let digest = hash_key("k");
        for (text, key) in [
            ("keys = []".to_owned(), "keys"),
            (
                format!("[[keys]]\ntenant = \"a b\"\nsha256 = \"{digest}\""),
                "keys[0].tenant",
            ),
            (
                "[[keys]]\ntenant = \"a\"\nsha256 = \"abc\"".to_owned(),
                "keys[0].sha256",
            ),
            (
                format!(
                    "[[keys]]\ntenant = \"a\"\nsha256 = \"{digest}\"\n[[keys]]\ntenant = \"b\"\nsha256 = \"{digest}\""
                ),
                "keys[1].sha256",
            ),
            (
                format!("[[keys]]\ntenant = \"a\"\nsha256 = \"{digest}\"\nkey = \"plain\""),
                "-",
            ),
            (
                "[[certificates]]\ntenant = \"a\"\nname = \" \"".to_owned(),
                "certificates[0].name",
            ),
            (
                "[[certificates]]\ntenant = \"a\"\nname = \"x\"\n[[certificates]]\ntenant = \"b\"\nname = \"x\""
                    .to_owned(),
                "certificates[1].name",
            ),
        ] {
            let error = keys(&text).err().unwrap();
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }

    /// A client certificate (DER) with these subject alternative names.
    fn certificate(names: &[rcgen::SanType]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names.to_vec();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_authenticates_the_tenant_one_of_its_names_is_listed_for() {
        let file = format!(
            "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n\
             [[certificates]]\ntenant = \"billing\"\nname = \"billing.internal\"\n\
             [[certificates]]\ntenant = \"web\"\nname = \"spiffe://cluster.local/ns/web/sa/api\"\n",
            hash_key("ops-secret-key")
        );
        let credentials = keys(&file).unwrap();
        let dns = |name: &str| rcgen::SanType::DnsName(name.try_into().unwrap());
        let uri = |name: &str| rcgen::SanType::URI(name.try_into().unwrap());
        let tenant = |header: Option<&str>, names: &[rcgen::SanType]| {
            let der = certificate(names);
            credentials.authenticate(header, Some(&der)).map(|a| a.tenant)
        };
        assert_eq!(tenant(None, &[dns("billing.internal")]).as_deref(), Some("billing"));
        assert_eq!(
            tenant(
                None,
                &[dns("other.internal"), uri("spiffe://cluster.local/ns/web/sa/api")]
            )
            .as_deref(),
            Some("web")
        );
        // Exact names only: no suffix, prefix or wildcard match.
        for names in [
            vec![dns("api.billing.internal")],
            vec![dns("*.internal")],
            vec![dns("billing.internal.evil")],
            vec![uri("spiffe://cluster.local/ns/web/sa/api/x")],
            vec![],
        ] {
            assert_eq!(tenant(None, &names), None, "{names:?}");
        }
        // A caller sending a key is judged by the key, whatever its certificate says.
        assert_eq!(
            tenant(Some("Bearer ops-secret-key"), &[dns("billing.internal")]).as_deref(),
            Some("ops")
        );
        assert_eq!(tenant(Some("Bearer wrong"), &[dns("billing.internal")]), None);
        assert_eq!(credentials.authenticate(None, Some(b"not a certificate")), None);
        assert_eq!(credentials.authenticate(None, None), None);
    }
}

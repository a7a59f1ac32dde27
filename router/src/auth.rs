//! Caller authentication: API keys, stored only as SHA-256 digests, each naming the tenant it authenticates.
//!
//! The keys file (TOML, outside the main config, e.g. a mounted Kubernetes Secret) lists `[[keys]]` entries of
//! `tenant` and `sha256` (hex of the key's digest; `switchyard hash-key` prints it). A caller sends
//! `authorization: Bearer <key>`; the gateway hashes what it got and looks the digest up. Keys are random tokens
//! (at least 32 bytes of entropy are expected), so an unsalted fast hash is the right tool: there is nothing to
//! brute-force, and a lookup by digest compares no secret byte by byte. Every failure answers the same
//! `UNAUTHENTICATED` message, so a caller learns nothing about which part was wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The metadata key carrying the credential.
pub const AUTHORIZATION: &str = "authorization";

/// Longest tenant name accepted anywhere (keys file, request body).
pub const MAX_TENANT_BYTES: usize = 64;

/// The API keys, by digest.
#[derive(Clone, Default)]
pub struct ApiKeys {
    by_digest: HashMap<[u8; 32], String>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    tenant: String,
    sha256: String,
}

impl ApiKeys {
    /// Reads and checks a keys file: every digest 64 hex digits and unique, every tenant a valid name.
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
        if by_digest.is_empty() {
            return Err(fail("keys", "no keys: with auth required nobody could call".to_owned()));
        }
        Ok(Self { by_digest })
    }

    /// The tenant of the `authorization` metadata value (`Bearer <key>`), or `None` for anything else.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<Authenticated> {
        let key = authorization?.strip_prefix("Bearer ")?.trim();
        if key.is_empty() {
            return None;
        }
        let tenant = self.by_digest.get(&digest(key))?;
        Some(Authenticated { tenant: tenant.clone() })
    }

    /// Keys listed.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests are not keys, but nothing about them belongs in a log either.
        f.debug_struct("ApiKeys").field("keys", &self.by_digest.len()).finish()
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

    fn keys(text: &str) -> Result<ApiKeys, KeysError> {
        let dir = std::env::temp_dir().join(format!("switchyard-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(&path, text).unwrap();
        ApiKeys::load(&path)
    }

    #[test]
    fn a_key_authenticates_its_tenant_and_nothing_else_does() {
        let file = format!(
            "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n[[keys]]\ntenant = \"web\"\nsha256 = \"{}\"\n",
            hash_key("ops-secret-key"),
            hash_key("web-secret-key").to_uppercase()
        );
        let keys = keys(&file).unwrap();
        assert_eq!(keys.len(), 2);
        let tenant = |header: Option<&str>| keys.authenticate(header).map(|a| a.tenant);
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
        ] {
            let error = keys(&text).err().unwrap();
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }
}

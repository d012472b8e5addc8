//! The metrics endpoint's web configuration (`--web-config FILE`), in the
//! format node_exporter and the other Prometheus exporters read (the
//! exporter-toolkit's): TLS with a certificate and key, and HTTP basic
//! authentication against bcrypt hashes.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/handshake-monitor/tls.crt
//!   key_file: /etc/handshake-monitor/tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```
//!
//! `/healthz` answers without credentials (liveness and readiness probes
//! carry none); `/metrics` and everything else need them when users are
//! configured.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WebConfigError {
    #[error("cannot read web config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("web config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFiles>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// What the endpoint enforces.
pub struct WebConfig {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    users: BTreeMap<String, String>,
    /// Authorization header values already checked: bcrypt is slow on
    /// purpose, and a scraper sends the same header every time.
    verified: Mutex<HashSet<String>>,
}

/// Verified headers remembered at most (one per scraper, in practice).
const VERIFIED_CACHE: usize = 64;

pub fn load(path: &Path) -> Result<Arc<WebConfig>, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: File = serde_yaml::from_str(&text).map_err(|e| WebConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let invalid = |key: &str, message: String| WebConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    for (user, hash) in &file.basic_auth_users {
        let key = format!("basic_auth_users.{user}");
        if user.is_empty() || user.contains(':') {
            return Err(invalid(
                &key,
                "a user name is not empty and has no ':'".into(),
            ));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(invalid(
                &key,
                "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)".into(),
            ));
        }
    }
    let tls = match &file.tls_server_config {
        Some(files) => Some(acceptor(files).map_err(|(key, message)| invalid(key, message))?),
        None => None,
    };
    Ok(Arc::new(WebConfig {
        tls,
        users: file.basic_auth_users,
        verified: Mutex::new(HashSet::new()),
    }))
}

fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, (&'static str, String)> {
    let cert_key = "tls_server_config.cert_file";
    let key_key = "tls_server_config.key_file";
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| (cert_key, format!("{}: {e}", files.cert_file.display())))?;
    if certs.is_empty() {
        return Err((
            cert_key,
            format!("{}: no certificate in it", files.cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| (key_key, format!("{}: {e}", files.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (cert_key, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            (
                key_key,
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl WebConfig {
    /// Whether a request to `path` with these headers may be answered.
    pub fn authorized(&self, path: &str, head: &str) -> bool {
        if self.users.is_empty() || path == "/healthz" {
            return true;
        }
        let Some(value) = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_string())
        }) else {
            return false;
        };
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.contains(&value) {
            return true;
        }
        let ok = self.check(&value);
        if ok && verified.len() < VERIFIED_CACHE {
            verified.insert(value);
        }
        ok
    }

    fn check(&self, value: &str) -> bool {
        let Some(encoded) = value.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = pair.split_once(':') else {
            return false;
        };
        self.users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

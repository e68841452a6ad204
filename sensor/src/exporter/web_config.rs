//! The web config file of `/metrics` (`--web.config.file`): the format of
//! the Prometheus exporter-toolkit
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>),
//! YAML, so one file serves the sensor and Prometheus' own exporters.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # PEM chain, leaf first
//!   key_file: server.key           # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), VerifyClientCertIfGiven
//!   client_ca_file: clients-ca.crt # PEM; required by the two verifying types
//!   min_version: TLS12             # TLS12 (default) or TLS13
//!   max_version: TLS13             # TLS12 or TLS13 (default)
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hash (`htpasswd -nbB USER PASSWORD`)
//! ```
//!
//! Relative paths are relative to the file's directory, as in the
//! exporter-toolkit. Keys of the format that the sensor does not implement
//! (`cert`, `key`, `client_ca`, `client_allowed_sans`, `cipher_suites`,
//! `prefer_server_cipher_suites`, `curve_preferences`,
//! `http_server_config`, `rate_limit`) are errors that name them, as are
//! unknown keys: a setting silently ignored could leave the endpoint open.

use std::{
    collections::BTreeMap,
    fmt, fs,
    path::{Path, PathBuf},
    str::FromStr as _,
    sync::Arc,
};

use rustls::{
    RootCertStore, ServerConfig, SupportedProtocolVersion,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::WebPkiClientVerifier,
};
use serde::{Deserialize, de::IgnoredAny};

/// The costs bcrypt defines (log2 of its rounds).
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// A web config file that cannot be used: the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("web config {}: {reason}", path.display())]
pub struct WebConfigError {
    path: PathBuf,
    reason: String,
}

/// The file's top level.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    http_server_config: Option<IgnoredAny>,
    rate_limit: Option<IgnoredAny>,
}

/// `tls_server_config`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: ClientAuth,
    client_ca_file: Option<PathBuf>,
    #[serde(default = "TlsVersion::lowest")]
    min_version: TlsVersion,
    #[serde(default = "TlsVersion::highest")]
    max_version: TlsVersion,
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
    cipher_suites: Option<IgnoredAny>,
    prefer_server_cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
}

/// `client_auth_type`: Go's `tls.ClientAuthType` names. The two that accept
/// a certificate without verifying it (`RequestClientCert`,
/// `RequireAnyClientCert`) are not offered.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientAuth {
    /// No client certificate asked for.
    #[default]
    NoClientCert,
    /// A client certificate, if sent, must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A client certificate chaining to `client_ca_file` is required.
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version` (rustls implements TLS 1.2 and 1.3 only).
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TlsVersion {
    TLS12,
    TLS13,
}

impl TlsVersion {
    fn lowest() -> Self {
        Self::TLS12
    }

    fn highest() -> Self {
        Self::TLS13
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            Self::TLS12 => &rustls::version::TLS12,
            Self::TLS13 => &rustls::version::TLS13,
        }
    }
}

/// The TLS settings, paths resolved.
#[derive(Debug)]
struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth: ClientAuth,
    client_ca_file: Option<PathBuf>,
    versions: Vec<TlsVersion>,
}

/// A checked web config file: TLS settings (certificates not yet read) and
/// the basic-auth users.
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Tls>,
    /// User name → bcrypt hash (each one parses as a hash).
    users: BTreeMap<String, String>,
}

impl fmt::Debug for WebConfig {
    /// Leaves the hashes out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    /// Reads and checks `path`: YAML syntax, known keys, the TLS settings'
    /// consistency and every bcrypt hash. Certificate and key files are
    /// read by [`WebConfig::tls`]; an empty file asks for nothing.
    ///
    /// # Errors
    /// Unreadable file, bad YAML, an unknown or unimplemented key, a TLS
    /// setting missing or contradicting another, a password that is not a
    /// bcrypt hash.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let err = |reason: String| WebConfigError {
            path: path.to_path_buf(),
            reason,
        };
        let text = fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| err(yaml_reason(&e)))?
        };
        unimplemented_keys(&file).map_err(err)?;
        for (user, hash) in &file.basic_auth_users {
            let cost = bcrypt::HashParts::from_str(hash).map(|h| h.get_cost());
            if let Err(reason) = cost.map_err(|e| e.to_string()).and_then(|c| {
                BCRYPT_COSTS
                    .contains(&c)
                    .then_some(())
                    .ok_or_else(|| format!("cost {c} outside 4-31"))
            }) {
                return Err(err(format!(
                    "basic_auth_users: `{user}`: not a bcrypt hash ({reason})"
                )));
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = file
            .tls_server_config
            .map(|t| Tls::resolve(t, dir))
            .transpose()
            .map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            tls,
            users: file.basic_auth_users,
        })
    }

    /// Whether the file asks for TLS.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The basic-auth users: name → bcrypt hash; empty for none required.
    pub fn users(&self) -> &BTreeMap<String, String> {
        &self.users
    }

    /// The rustls server settings (ring provider, HTTP/1.1 by ALPN), the
    /// certificate, key and client CA files read now; `None` without
    /// `tls_server_config`.
    ///
    /// # Errors
    /// A file cannot be read or holds no usable PEM item; the key does not
    /// match the certificate; the client CA is not a usable trust anchor.
    pub fn tls(&self) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        tls.server_config()
            .map(Some)
            .map_err(|reason| WebConfigError {
                path: self.path.clone(),
                reason,
            })
    }
}

/// The message of a YAML error, with its line and column, on one line.
fn yaml_reason(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Refuses keys of the exporter-toolkit format the sensor does not implement.
fn unimplemented_keys(file: &File) -> Result<(), String> {
    let mut found = Vec::new();
    if file.http_server_config.is_some() {
        found.push("http_server_config");
    }
    if file.rate_limit.is_some() {
        found.push("rate_limit");
    }
    if let Some(t) = &file.tls_server_config {
        for (key, set) in [
            ("cert", t.cert.is_some()),
            ("key", t.key.is_some()),
            ("client_ca", t.client_ca.is_some()),
            ("client_allowed_sans", t.client_allowed_sans.is_some()),
            ("cipher_suites", t.cipher_suites.is_some()),
            (
                "prefer_server_cipher_suites",
                t.prefer_server_cipher_suites.is_some(),
            ),
            ("curve_preferences", t.curve_preferences.is_some()),
        ] {
            if set {
                found.push(key);
            }
        }
    }
    match found.as_slice() {
        [] => Ok(()),
        keys => Err(format!(
            "not implemented by siem-sensor: {} (it reads tls_server_config's cert_file, \
             key_file, client_auth_type, client_ca_file, min_version, max_version, and \
             basic_auth_users)",
            keys.join(", ")
        )),
    }
}

impl Tls {
    /// Checks the settings' consistency and resolves paths against `dir`.
    fn resolve(t: TlsFile, dir: &Path) -> Result<Self, String> {
        let required = |p: Option<PathBuf>, key: &str| {
            p.map(|p| dir.join(p))
                .ok_or_else(|| format!("tls_server_config: `{key}` is required"))
        };
        let verifying = t.client_auth_type != ClientAuth::NoClientCert;
        match (verifying, &t.client_ca_file) {
            (true, None) => {
                return Err(format!(
                    "tls_server_config: client_auth_type {:?} needs `client_ca_file`",
                    t.client_auth_type
                ));
            }
            (false, Some(_)) => {
                return Err(
                    "tls_server_config: `client_ca_file` is set but client_auth_type is \
                            NoClientCert (use RequireAndVerifyClientCert)"
                        .into(),
                );
            }
            _ => {}
        }
        if t.min_version > t.max_version {
            return Err(format!(
                "tls_server_config: min_version {:?} is above max_version {:?}",
                t.min_version, t.max_version
            ));
        }
        Ok(Self {
            cert_file: required(t.cert_file, "cert_file")?,
            key_file: required(t.key_file, "key_file")?,
            client_auth: t.client_auth_type,
            client_ca_file: t.client_ca_file.map(|p| dir.join(p)),
            versions: [TlsVersion::TLS13, TlsVersion::TLS12]
                .into_iter()
                .filter(|v| (t.min_version..=t.max_version).contains(v))
                .collect(),
        })
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let pem = |path: &Path, e: rustls::pki_types::pem::Error| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                format!("{}: no PEM item of the expected kind", path.display())
            }
            e => format!("{}: {e}", path.display()),
        };
        let certs = CertificateDer::pem_file_iter(&self.cert_file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| pem(&self.cert_file, e))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", self.cert_file.display()));
        }
        let key =
            PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| pem(&self.key_file, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<_> = self.versions.iter().map(|v| v.rustls()).collect();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| e.to_string())?;
        let builder = match (&self.client_ca_file, self.client_auth) {
            (Some(ca), auth) if auth != ClientAuth::NoClientCert => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).map_err(|e| pem(ca, e))? {
                    roots
                        .add(cert.map_err(|e| pem(ca, e))?)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                let verifier = match auth {
                    ClientAuth::VerifyClientCertIfGiven => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| format!("{}: {e}", ca.display()))?,
                )
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            format!(
                "{} / {}: {e}",
                self.cert_file.display(),
                self.key_file.display()
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests;

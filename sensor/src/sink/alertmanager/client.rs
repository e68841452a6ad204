//! One `POST /api/v2/alerts` (ureq, blocking, on the target's own thread)
//! and what its failure means ([`Fault`]); the TLS settings and the basic
//! auth header a target is reached with.

use std::{
    fmt,
    io::{self, Read as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use ureq::{
    Agent,
    tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider},
};

use super::target::Target;
use crate::text::{Field, render};

/// How long one request may take, connect to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of an error answer kept for the log.
const MAX_ANSWER: u64 = 512;

/// What a failed request means for the transitions it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No answer (connection refused, timeout), or a transient one (5xx,
    /// 408, 429). They wait and are retried.
    Down,
    /// Alertmanager or the way to it refuses us: TLS failed (its
    /// certificate does not verify, or it wants ours), 401 or 403 (basic
    /// auth), 404, 405 or a redirect (not an API v2 URL). They wait: a
    /// fixed setting gets them.
    Refused,
    /// Alertmanager found the request invalid (400 and other 4xx). They are
    /// dropped, never retried.
    Rejected,
}

/// A failed request: what it means and why, for the log (never a
/// credential).
#[derive(Debug)]
pub struct Failure {
    /// What it means.
    pub fault: Fault,
    /// The error or the answer's status and first bytes.
    pub reason: String,
}

/// A `Basic` `Authorization` header value; shown as `Secret(..)`.
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The `Authorization` header for `user` and the password in
/// `password_file` (its first line, without surrounding white space, as
/// Prometheus reads a `password_file`).
///
/// # Errors
/// The file cannot be read, or holds no password.
pub fn basic_auth(user: &str, password_file: &Path) -> io::Result<Secret> {
    let text = std::fs::read_to_string(password_file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", password_file.display())))?;
    let password = text.lines().next().unwrap_or_default().trim();
    if password.is_empty() {
        return Err(io::Error::other(format!(
            "{}: no password in it",
            password_file.display()
        )));
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Ok(Secret(format!("Basic {token}")))
}

/// Trust and identity for `https://` targets.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// PEM file of the CAs that sign Alertmanager's certificate; the
    /// system's trust store when `None`.
    pub ca: Option<PathBuf>,
    /// PEM file of a client certificate (leaf first) and of its key, for
    /// an Alertmanager that asks for one.
    pub client: Option<(PathBuf, PathBuf)>,
}

fn read_err(path: &Path, e: impl fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

/// The certificates in PEM file `path`; at least one.
fn certificates(path: &Path) -> io::Result<Vec<Certificate<'static>>> {
    let ders = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| read_err(path, e))?;
    if ders.is_empty() {
        return Err(read_err(path, "no certificate in it"));
    }
    Ok(ders
        .iter()
        .map(|d| Certificate::from_der(d).to_owned())
        .collect())
}

impl TlsFiles {
    /// The ureq TLS settings: rustls with ring, these roots and this
    /// client certificate.
    ///
    /// # Errors
    /// A file cannot be read or holds no certificate (no key).
    pub fn config(&self) -> io::Result<TlsConfig> {
        let roots = match &self.ca {
            Some(path) => {
                let certs = certificates(path)?;
                let mut store = rustls::RootCertStore::empty();
                for c in &certs {
                    store
                        .add(CertificateDer::from(c.der()))
                        .map_err(|e| read_err(path, e))?;
                }
                certs
            }
            None => rustls_native_certs::load_native_certs()
                .certs
                .iter()
                .map(|d| Certificate::from_der(d).to_owned())
                .collect(),
        };
        let client = match &self.client {
            Some((cert, key)) => {
                let chain = certificates(cert)?;
                let pem = std::fs::read(key).map_err(|e| read_err(key, e))?;
                let key = PrivateKey::from_pem(&pem).map_err(|e| read_err(key, e))?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
            None => None,
        };
        Ok(TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(RootCerts::from(roots))
            .client_cert(client)
            .build())
    }
}

/// A target's HTTP client.
#[derive(Debug)]
pub struct Client {
    agent: Agent,
    url: String,
    auth: Option<Secret>,
}

impl Client {
    /// A client posting to `target`'s alerts URL with `tls` and `auth`. No
    /// proxy from the environment, no redirect followed.
    pub fn new(target: &Target, tls: TlsConfig, auth: Option<Secret>) -> Self {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(TIMEOUT))
            .user_agent(concat!("siem-sensor/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .new_agent();
        Self {
            agent,
            url: target.alerts_url(),
            auth,
        }
    }

    /// Posts `body` (a JSON array of `postableAlert`s).
    ///
    /// # Errors
    /// Anything but a 2xx answer, with its [`Fault`].
    pub fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(Secret(auth)) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let mut answer = match request.send(body) {
            Ok(a) => a,
            Err(e) => {
                let fault = if is_tls(&e) {
                    Fault::Refused
                } else {
                    Fault::Down
                };
                return Err(Failure {
                    fault,
                    reason: e.to_string(),
                });
            }
        };
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return Ok(());
        }
        let mut text = Vec::new();
        let _ = answer
            .body_mut()
            .as_reader()
            .take(MAX_ANSWER)
            .read_to_end(&mut text);
        // Shown as the sensor shows traffic: no control character reaches the log.
        let text = render(text.trim_ascii(), Field::UserAgent);
        Err(Failure {
            fault: status_fault(status),
            reason: format!("HTTP {status}: {text}"),
        })
    }
}

/// What an answer's non-2xx status means.
pub fn status_fault(status: u16) -> Fault {
    match status {
        408 | 429 | 500.. => Fault::Down,
        300..=399 | 401 | 403 | 404 | 405 => Fault::Refused,
        _ => Fault::Rejected,
    }
}

/// Whether TLS itself failed (a handshake error inside).
fn is_tls(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

//! The `/metrics` HTTP server (hyper, HTTP/1.1; TLS by tokio-rustls) on
//! the daemon's tokio runtime: the address allow-list (403), then the web
//! config's basic auth (401), then `GET`/`HEAD /metrics` (404, 405
//! otherwise) answered with the recorder's rendering.
//!
//! As in the Prometheus exporter-toolkit, the web config file is read
//! again for each connection (certificates, keys, client CA) and each
//! request (users), so a renewed certificate or a changed password applies
//! without a restart; a file that has become unusable refuses service (the
//! connection is closed, or the request answered 500) and the log says
//! why. Switching TLS on or off needs a restart.

use std::{
    convert::Infallible,
    io,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use metrics::counter;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::{
    auth::{BasicAuth, Refusal},
    web_config::WebConfig,
};

/// Scrapes refused, by `reason`.
pub const AUTH_FAILURES: &str = "siem_sensor_metrics_auth_failures_total";

/// Connections served at once; one more is closed as soon as accepted.
const MAX_CONNECTIONS: usize = 64;

/// Time a client has for the TLS handshake, and for each request head
/// (counted from the end of the previous response on a kept-alive
/// connection, so idle connections are closed too).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest request head read (a scrape's is a few hundred bytes); a
/// longer one is answered 431.
const MAX_HEAD: usize = 16 * 1024;

/// The Prometheus text exposition format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The path served.
const PATH: &str = "/metrics";

/// What every connection shares.
pub struct Server {
    /// Where clients connect.
    pub listener: TcpListener,
    /// Addresses allowed to scrape; all when empty.
    pub allow: Vec<IpNet>,
    /// `--web.config.file`.
    pub web_config: Option<PathBuf>,
    /// Whether the web config asked for TLS at start.
    pub tls: bool,
    /// Renders the recorder's metrics.
    pub handle: PrometheusHandle,
    /// Basic-auth verdicts.
    pub auth: BasicAuth,
}

impl Server {
    /// Accepts connections for ever, each served by its own task.
    pub async fn run(self) {
        let server = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match server.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    warn!(error = %e, "metrics: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                debug!(%peer, "metrics: too many connections, closing");
                continue;
            };
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                server.connection(stream, peer).await;
                drop(slot);
            });
        }
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let allowed = self.allowed(peer.ip());
        let acceptor = match self.acceptor() {
            Ok(acceptor) => acceptor,
            Err(reason) => {
                warn!(%peer, %reason, "metrics: connection refused");
                return;
            }
        };
        let Some(acceptor) = acceptor else {
            return self.http(stream, allowed).await;
        };
        match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.http(tls, allowed).await,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {}
            Ok(Err(e)) => {
                counter!(AUTH_FAILURES, "reason" => "tls").increment(1);
                debug!(%peer, error = %e, "metrics: TLS handshake failed");
            }
            Err(_) => debug!(%peer, "metrics: TLS handshake timed out"),
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// The TLS acceptor from the web config as it is now; `None` for plain
    /// HTTP.
    fn acceptor(&self) -> Result<Option<TlsAcceptor>, String> {
        let Some(path) = &self.web_config else {
            return Ok(None);
        };
        let config = WebConfig::load(path).map_err(|e| e.to_string())?;
        if config.has_tls() != self.tls {
            return Err(format!(
                "{}: TLS was switched {} since start; restart the sensor to apply it",
                path.display(),
                if self.tls { "off" } else { "on" }
            ));
        }
        Ok(config
            .tls()
            .map_err(|e| e.to_string())?
            .map(TlsAcceptor::from))
    }

    /// Serves HTTP/1.1 requests on `io` until the client is done.
    async fn http<I>(self: Arc<Self>, io: I, allowed: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| {
            let server = Arc::clone(&self);
            async move { Ok::<_, Infallible>(server.respond(&request, allowed).await) }
        });
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(CLIENT_TIMEOUT)
            .max_header_size(MAX_HEAD)
            .serve_connection(TokioIo::new(io), service)
            .await;
        if let Err(e) = served {
            debug!(error = %e, "metrics: connection ended");
        }
    }

    async fn respond(&self, request: &Request<Incoming>, allowed: bool) -> Response<Full<Bytes>> {
        if !allowed {
            counter!(AUTH_FAILURES, "reason" => "address").increment(1);
            return status(StatusCode::FORBIDDEN);
        }
        let config = match self.web_config.as_deref().map(WebConfig::load).transpose() {
            Ok(config) => config,
            Err(e) => {
                warn!(error = %e, "metrics: request refused");
                return status(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        if let Some(config) = &config
            && let Err(refusal) = self.auth.check(config.users(), request.headers()).await
        {
            return unauthorized(refusal);
        }
        if request.uri().path() != PATH {
            return status(StatusCode::NOT_FOUND);
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let mut response = Response::new(Full::new(Bytes::from(self.handle.render())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
        response
    }
}

/// A response of `code` whose body is its reason phrase.
fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let reason = code.canonical_reason().unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
    *response.status_mut() = code;
    response
}

/// 401 with the Basic challenge (RFC 7617), counted.
fn unauthorized(refusal: Refusal) -> Response<Full<Bytes>> {
    counter!(AUTH_FAILURES, "reason" => refusal.label()).increment(1);
    let mut response = status(StatusCode::UNAUTHORIZED);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="siem-sensor", charset="UTF-8""#),
    );
    response
}

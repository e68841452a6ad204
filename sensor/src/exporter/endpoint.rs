//! Setting the exporter up: the web config checked, the listener bound,
//! the recorder installed; then serving and the recorder's upkeep.

use std::{io, net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tokio::net::TcpListener;
use tracing::warn;

use super::{
    auth,
    server::{self, AUTH_FAILURES},
    web_config::{WebConfig, WebConfigError},
};

/// How long a gauge lives without an update: two windows.
pub const TOP_N_IDLE: Duration = Duration::from_secs(30);

/// How often histograms are drained into their rendering and idle series
/// dropped (the recorder's upkeep; its own exporter's default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Where and how `/metrics` is served.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The address to listen on (`--listen`).
    pub listen: SocketAddr,
    /// Addresses or networks allowed to scrape (`--metrics-allow`); any
    /// when empty. Others are answered 403.
    pub allow: Vec<IpNet>,
    /// The exporter-toolkit web config file (`--web.config.file`): TLS and
    /// basic auth; plain, open HTTP without one.
    pub web_config: Option<PathBuf>,
}

/// Why `/metrics` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The web config file is unusable.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    /// The address cannot be listened on (in use, not local, no permission).
    #[error("cannot listen on {0}")]
    Listen(SocketAddr, #[source] io::Error),
    /// The global recorder cannot be installed (one already is).
    #[error("cannot install the metrics recorder")]
    Recorder(#[from] BuildError),
    /// No randomness for the basic-auth verdict memory's key.
    #[error("no randomness for the basic-auth verdicts' key")]
    Random(#[from] getrandom::Error),
}

/// The recorder, installed, with its listener bound but not yet serving
/// (publish a first time, then [`Exporter::serve`], so the first scrape
/// sees every series).
pub struct Exporter {
    server: server::Server,
}

/// Checks the web config (certificates and keys read, hashes parsed),
/// listens on the endpoint and installs the global recorder, with an idle
/// timeout of [`TOP_N_IDLE`] for gauges and the latency histogram's buckets.
///
/// # Errors
/// See [`ExporterError`].
pub async fn install(endpoint: Endpoint) -> Result<Exporter, ExporterError> {
    let tls = match &endpoint.web_config {
        Some(path) => {
            let config = WebConfig::load(path)?;
            let tls = config.tls()?.is_some();
            if !tls && !config.users().is_empty() {
                warn!(file = %path.display(), "metrics: basic auth without TLS sends passwords in the clear");
            }
            tls
        }
        None => false,
    };
    let listener = TcpListener::bind(endpoint.listen)
        .await
        .map_err(|e| ExporterError::Listen(endpoint.listen, e))?;
    let auth = auth::BasicAuth::new()?;
    let handle = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::GAUGE, Some(TOP_N_IDLE))
        .set_buckets_for_metric(
            Matcher::Full(crate::sink::metrics::LATENCY.into()),
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?
        .install_recorder()?;
    gauge!("siem_sensor_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for reason in ["no_credentials", "bad_credentials", "address", "tls"] {
        counter!(AUTH_FAILURES, "reason" => reason).absolute(0);
    }
    Ok(Exporter {
        server: server::Server {
            listener,
            allow: endpoint.allow,
            web_config: endpoint.web_config,
            tls,
            handle,
            auth,
        },
    })
}

impl Exporter {
    /// Serves `/metrics` on the current tokio runtime, and runs the
    /// recorder's upkeep, until the runtime ends.
    pub fn serve(self) {
        tokio::spawn(upkeep(self.server.handle.clone()));
        tokio::spawn(self.server.run());
    }
}

async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

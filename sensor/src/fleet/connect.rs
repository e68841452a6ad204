//! The connection to NATS and the stream, shared by the publishing sensors
//! and the fleet analysers (NATS docs: "Connecting", "Securing
//! Connections", JetStream "Streams").
//!
//! Servers are `nats://HOST:PORT` or `tls://HOST:PORT` (TLS required; the
//! server's certificate must chain to the CA file given, else to the
//! system's trust store, and name HOST); a credentials file (`.creds`: a
//! user JWT and its NKey seed) authenticates. A client reconnects by
//! itself, forever, and starts even while every server is down.
//!
//! The stream [`STREAM`] holds both subject families, kept by age
//! (`max_age`: the retention, 2 h by default, covering the longest window
//! a fleet analyser rebuilds: the error detector's one-hour baseline, the
//! resolve time and the lateness) in files. Its duplicate window
//! ([`DUPLICATE_WINDOW`]) is how long JetStream remembers a
//! `Nats-Msg-Id`: a message published again with the same id within it is
//! acknowledged as a duplicate and not stored (JetStream docs, "Message
//! Deduplication"). A publisher never sends a message again after
//! [`RETRY_FOR`] from its first attempt, well inside that window.

use std::{path::PathBuf, time::Duration};

use async_nats::{
    Client, ConnectOptions, ServerAddr,
    jetstream::{self, Context, stream},
};

use super::subject::{Family, STREAM};

/// How long the stream remembers a message id (JetStream's default).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long after its first attempt a message may be published again.
pub const RETRY_FOR: Duration = Duration::from_secs(60);

/// The stream's default retention.
pub const RETENTION: Duration = Duration::from_secs(2 * 3600);

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Server URLs (`nats://` or `tls://`), tried in turn.
    pub servers: Vec<ServerAddr>,
    /// PEM file of the CAs that sign the servers' certificates; the
    /// system's trust store when `None`.
    pub ca: Option<PathBuf>,
    /// A NATS credentials file (user JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// The client name the server shows (`connz`).
    pub name: String,
}

/// A server URL as `--publish` and `--nats` take it: `nats://HOST:PORT`
/// or `tls://HOST:PORT`.
///
/// # Errors
/// Not a URL, or another scheme.
pub fn parse_server(s: &str) -> Result<ServerAddr, String> {
    if !(s.starts_with("nats://") || s.starts_with("tls://")) {
        return Err(format!(
            "`{s}`: expected nats://HOST:PORT or tls://HOST:PORT"
        ));
    }
    s.parse().map_err(|e| format!("`{s}`: {e}"))
}

/// A server's URL as counters and logs show it: scheme, host and port,
/// never a user or password written into the URL.
pub fn display(server: &ServerAddr) -> String {
    let url = server.clone().into_inner();
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(4222)
    )
}

impl Connection {
    /// The servers as counters show them, comma-separated.
    pub fn target(&self) -> String {
        let servers: Vec<String> = self.servers.iter().map(display).collect();
        servers.join(",")
    }

    /// A client, connecting in the background (it is usable at once;
    /// requests wait for the connection or time out).
    ///
    /// # Errors
    /// The credentials file cannot be read.
    pub async fn connect(
        &self,
        client_capacity: usize,
    ) -> Result<Client, async_nats::ConnectError> {
        let mut options = ConnectOptions::new()
            .name(&self.name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .client_capacity(client_capacity.max(16))
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis(100 * u64::try_from(attempt.min(10)).unwrap_or(10))
            })
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("nats: connected"),
                    async_nats::Event::Disconnected => tracing::warn!("nats: disconnected"),
                    other => tracing::debug!(%other, "nats event"),
                }
            });
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some(creds) = &self.creds {
            options = options.credentials_file(creds).await.map_err(|e| {
                async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::Io, e)
            })?;
        }
        options.connect(self.servers.clone()).await
    }
}

/// The stream's configuration with `retention`.
pub fn stream_config(retention: Duration) -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("siem-sensor request events and node heartbeats".to_owned()),
        subjects: Family::ALL.iter().map(|f| f.wildcard()).collect(),
        retention: stream::RetentionPolicy::Limits,
        max_age: retention.max(DUPLICATE_WINDOW),
        duplicate_window: DUPLICATE_WINDOW,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// The stream, created with `retention` if it does not exist yet (an
/// existing stream keeps its settings).
///
/// # Errors
/// JetStream is unreachable or refuses.
pub async fn stream(
    js: &Context,
    retention: Duration,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    Ok(js.get_or_create_stream(stream_config(retention)).await?)
}

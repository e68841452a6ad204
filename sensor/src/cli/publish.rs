//! The publish flags: requests to the fleet's NATS JetStream stream
//! (`siem-sensor fleet` analyses them across nodes).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use async_nats::ServerAddr;
use clap::Args;
use sensor::{
    fleet::{
        connect::{Connection, RETENTION, parse_server},
        event::{MAX_NODE, valid_node},
    },
    join::JoinConfig,
    sink::publish::{PublishConfig, Publisher},
};

/// Requests to the fleet stream.
#[derive(Args)]
#[command(next_help_heading = "Publish (fleet-wide detection)")]
pub struct PublishArgs {
    /// Publish every request the detectors count, as a compact event, to
    /// the NATS JetStream server at URL: `nats://HOST:PORT`, or
    /// `tls://HOST:PORT` (TLS required); repeat for the servers of one
    /// cluster. `run` only.
    #[arg(long = "publish", value_name = "URL", value_parser = parse_server)]
    servers: Vec<ServerAddr>,
    /// PEM file of the CAs that sign the servers' certificates (default:
    /// the system's trust store).
    #[arg(long, value_name = "FILE")]
    publish_ca: Option<PathBuf>,
    /// NATS credentials file (user JWT and NKey seed).
    #[arg(long, value_name = "FILE")]
    publish_creds: Option<PathBuf>,
    /// This node's name in events and fleet alerts (letters, digits, `.`,
    /// `_`, `-`; default: the host name).
    #[arg(long, value_name = "NAME", value_parser = node_name)]
    publish_node: Option<String>,
    /// Events queued while the broker is slow or down; more are dropped
    /// and counted.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    publish_queue: usize,
    /// Retention of the stream, when this sensor is the first to create it
    /// (at least the longest window a fleet analyser rebuilds).
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    publish_retention: humantime::Duration,
}

fn node_name(s: &str) -> Result<String, String> {
    if valid_node(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}`: 1 to {MAX_NODE} letters, digits, `.`, `_` or `-`"
        ))
    }
}

/// The host name, as the default node name.
fn host_name() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading the host name")?
        .trim()
        .to_owned();
    node_name(&name).map_err(|e| anyhow::anyhow!("the host name {e}: set --publish-node"))
}

impl PublishArgs {
    /// Whether publishing is asked for.
    pub fn enabled(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The sink, or none without servers.
    ///
    /// # Errors
    /// No usable node name; the sender thread cannot start.
    pub fn sink(&self) -> Result<Option<Publisher>> {
        if self.servers.is_empty() {
            return Ok(None);
        }
        let node = match &self.publish_node {
            Some(n) => n.clone(),
            None => host_name()?,
        };
        if let Some(creds) = &self.publish_creds
            && !creds.is_file()
        {
            bail!("--publish-creds {}: no such file", creds.display());
        }
        let config = PublishConfig {
            connection: Connection {
                servers: self.servers.clone(),
                ca: self.publish_ca.clone(),
                creds: self.publish_creds.clone(),
                name: format!("siem-sensor {node}"),
            },
            node,
            queue: self.publish_queue,
            retention: Duration::from(self.publish_retention).max(RETENTION / 120),
            drain: Duration::from_secs(2),
            heartbeat_lag_ns: JoinConfig::default().wait_ns,
        };
        Publisher::start(config)
            .map(Some)
            .context("cannot start the publisher")
    }
}

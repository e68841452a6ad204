//! The `siem-sensor` subcommands and the flags they share.

pub mod config;
mod detect;
pub mod replay;
pub mod run;
mod syslog;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use ipnet::IpNet;
use sensor::{
    flow::FlowLimits,
    http::HttpLimits,
    identity::{FingerprintKey, IdentityConfig, Resolver},
    pipeline::{Pipeline, Sinks},
    sink::{JsonLines, SegmentLog, metrics::TransactionMetrics},
};

/// Flags of the pipeline after the source, the same for `run` and `replay`.
#[derive(Args)]
pub struct PipelineArgs {
    /// Config file (TOML); its settings apply unless a flag overrides them.
    /// `run` reads /etc/siem-sensor/sensor.toml when it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write every HTTP transaction as a JSON line to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    transactions: Option<PathBuf>,
    /// Proxy address or CIDR whose X-Forwarded-For / X-Real-IP is trusted
    /// (your Kong nodes, load balancers); repeat for several.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_net)]
    trusted_proxies: Vec<IpNet>,
    /// Kong key-auth key name (header or query parameter); repeat for several.
    #[arg(long = "key-name", value_name = "NAME", default_value = "apikey")]
    key_names: Vec<String>,
    /// The per-installation key for credential fingerprints; created (mode
    /// 0600) on first use.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/siem-sensor/fingerprint.key"
    )]
    fingerprint_key: PathBuf,
    /// Most TCP connections tracked at once.
    #[arg(long, default_value_t = FlowLimits::default().max_flows)]
    max_flows: usize,
    /// Write every alert as a JSON line to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    alerts: Option<PathBuf>,
    #[command(flatten)]
    detect: detect::DetectArgs,
    #[command(flatten)]
    syslog: syslog::SyslogArgs,
}

/// A CIDR, or a bare address as a host route.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
}

/// Which command builds the pipeline, and the outputs only it has.
pub enum Mode {
    /// `run`: the segment log if asked, alerts also logged, metrics if served.
    Live {
        /// `--debug-segments`.
        segments: Option<SegmentLog>,
        /// Whether `/metrics` is served.
        metrics: bool,
    },
    /// `replay`: with `json`, alerts as JSON lines on stdout.
    Replay {
        /// `--json`.
        json: bool,
    },
}

impl PipelineArgs {
    /// The outputs for `mode`: files opened (appending), syslog senders
    /// started.
    ///
    /// # Errors
    /// An output file cannot be opened; a syslog sender cannot start.
    pub fn sinks(&self, mode: Mode) -> Result<Sinks> {
        let open = |name, path: &Option<PathBuf>| -> Result<Option<JsonLines>> {
            path.as_deref()
                .map(|p| {
                    JsonLines::create(name, p)
                        .with_context(|| format!("cannot create {}", p.display()))
                })
                .transpose()
        };
        let (segments, metrics, log_alerts, alerts) = match mode {
            Mode::Live { segments, metrics } => (segments, metrics, true, self.alerts.clone()),
            Mode::Replay { json: true } => (None, false, false, Some(PathBuf::from("-"))),
            Mode::Replay { json: false } => (None, false, false, self.alerts.clone()),
        };
        Ok(Sinks {
            segments,
            transactions: open("transactions", &self.transactions)?,
            alerts: open("alerts", &alerts)?,
            log_alerts,
            metrics: metrics.then(TransactionMetrics::default),
            syslog: self.syslog.sink()?,
        })
    }

    /// The detector settings (none with `--no-detectors`).
    pub fn detect_config(&self) -> Option<sensor::detect::DetectConfig> {
        self.detect.config()
    }

    /// Validates what flag parsing cannot (decoy globs), touching nothing.
    ///
    /// # Errors
    /// A bad decoy route.
    pub fn check(&self) -> Result<()> {
        self.detect.detectors().map(drop)
    }

    /// Builds the pipeline for `mode`.
    ///
    /// # Errors
    /// The fingerprint key or an output file cannot be opened; a bad decoy.
    pub fn pipeline(&self, mode: Mode) -> Result<Pipeline> {
        let key = FingerprintKey::load_or_create(&self.fingerprint_key)?;
        let config = IdentityConfig {
            trusted_proxies: self.trusted_proxies.clone(),
            key_names: self.key_names.clone(),
        };
        let detectors = self.detect.detectors()?;
        let flows = FlowLimits {
            max_flows: self.max_flows,
            ..FlowLimits::default()
        };
        let sinks = self.sinks(mode)?;
        let resolver = Resolver::new(config, key);
        Ok(Pipeline::new(
            resolver,
            flows,
            HttpLimits::default(),
            detectors,
            sinks,
        ))
    }
}

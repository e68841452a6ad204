//! The flags of the pipeline after the source, shared by `run` and
//! `replay`, and the assembly of the pipeline and its sinks from them.

use std::{
    io,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::Args;
use ipnet::IpNet;
use sensor::{
    flow::FlowLimits,
    http::HttpLimits,
    identity::{FORWARDED_FOR, FingerprintKey, HeaderNames, IdentityConfig, Resolver, Topology},
    pipeline::Pipeline,
    sink::{
        AlertLog, JsonLines, PayloadRedactor, Records, SegmentLog, Sink, Sinks, TransactionFormat,
        metrics::TransactionMetrics,
    },
};

use super::{alertmanager, choice::ChoiceParser, detect, publish, syslog};

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
    /// The transactions' shape: the sensor's record, or Kong's log
    /// serializer's (`kong`: what Kong's log plugins write).
    #[arg(long, default_value = "sensor", value_parser = ChoiceParser::<TransactionFormat>::new())]
    transactions_format: TransactionFormat,
    /// Load balancer or CDN address or CIDR in front of Kong whose
    /// real-IP header names the client (nginx `set_real_ip_from`); never
    /// trusted for consumer headers. Repeat for several.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_net)]
    trusted_proxies: Vec<IpNet>,
    /// The header a trusted proxy names the client in (nginx
    /// `real_ip_header`), read right to left as a list.
    #[arg(long, value_name = "NAME", default_value = FORWARDED_FOR, value_parser = header_name)]
    real_ip_header: String,
    /// Kong node address or CIDR: flows these open (to servers other than a
    /// Kong proxy listener) are Kong's upstream leg, the only place its
    /// consumer headers are believed. Repeat for several. Default: `run`,
    /// this node's own addresses; `replay`, none.
    #[arg(long = "kong-address", value_name = "CIDR", value_parser = parse_net)]
    kong_addresses: Vec<IpNet>,
    /// Kong proxy listener ports, comma-separated (kong.conf
    /// `proxy_listen`): flows to them on a Kong address are the client leg.
    #[arg(long, value_delimiter = ',', default_value = "8000,8443")]
    proxy_ports: Vec<u16>,
    /// Kong key-auth key name (header or query parameter); repeat for several.
    #[arg(long = "key-name", value_name = "NAME", default_value = "apikey", value_parser = header_name)]
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
    /// MiB the process may hold: what it holds at start (code, runtime)
    /// and the traffic-driven state (flows, held segments, buffered heads,
    /// waiting requests, detector tables); past it the least recently seen
    /// flows' buffers, then those flows, are shed.
    #[arg(long, value_name = "MIB", default_value_t = FlowLimits::default().memory_budget >> 20)]
    memory_budget: u64,
    /// Write every alert as a JSON line to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    alerts: Option<PathBuf>,
    /// Mode (octal) of the output files the sensor creates; they name
    /// clients and principals, so not world-readable by default.
    #[arg(long, value_name = "OCTAL", default_value = "0640", value_parser = file_mode)]
    file_mode: u32,
    #[command(flatten)]
    detect: detect::DetectArgs,
    #[command(flatten)]
    syslog: syslog::SyslogArgs,
    #[command(flatten)]
    alertmanager: alertmanager::AlertmanagerArgs,
    #[command(flatten)]
    publish: publish::PublishArgs,
}

/// A file mode in octal, at most `0666` (no execute, setuid or sticky bits).
pub(super) fn file_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s, 8).map_err(|_| format!("`{s}` is not an octal mode"))?;
    if mode & !0o666 != 0 {
        return Err(format!("`{s}`: only read and write bits (at most 0666)"));
    }
    Ok(mode)
}

/// A header name (RFC 9110 section 5.1; Kong's key names are a subset:
/// letters, digits, `_` and `-`).
fn header_name(s: &str) -> Result<String, String> {
    if sensor::field_name::is_valid(s.as_bytes()) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
        ))
    }
}

/// A CIDR, or a bare address as a host route.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
}

/// Which command builds the pipeline, and the outputs only it has.
#[derive(Clone, Copy)]
pub enum Mode {
    /// `run`: alerts also logged; the segment log and per-transaction
    /// metrics if asked.
    Live {
        /// `--debug-segments` (`Some(true)`: redacted) or
        /// `--debug-segments-raw` (`Some(false)`): every segment to stdout.
        debug_segments: Option<bool>,
        /// Whether `/metrics` is served.
        metrics: bool,
    },
    /// `replay`: with `json`, alerts as JSON lines on stdout; else as text,
    /// on stderr when stdout carries JSON lines (`--transactions -`).
    Replay {
        /// `--json`.
        json: bool,
    },
}

impl PipelineArgs {
    /// The sinks for `mode`: files opened (appending), syslog senders
    /// started. This is where every sink is assembled.
    ///
    /// # Errors
    /// An output file cannot be opened; a syslog or Alertmanager sender
    /// cannot start.
    pub fn sinks(&self, mode: Mode) -> Result<Vec<Box<dyn Sink>>> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let mut open = |records, name, path: &Option<PathBuf>| -> Result<()> {
            if let Some(p) = path {
                let lines = JsonLines::create(records, name, p, self.file_mode)
                    .with_context(|| format!("cannot create {}", p.display()))?;
                sinks.push(Box::new(lines));
            }
            Ok(())
        };
        let alerts = match mode {
            Mode::Replay { json: true } => Some(PathBuf::from("-")),
            _ => self.alerts.clone(),
        };
        open(
            self.transactions_format.records(),
            "transactions",
            &self.transactions,
        )?;
        open(Records::Alerts, "alerts", &alerts)?;
        match mode {
            Mode::Live {
                debug_segments,
                metrics,
            } => {
                if let Some(redacted) = debug_segments {
                    // Stdout is line-buffered and shared, so segment and
                    // transaction lines never interleave mid-line.
                    let redactor = redacted.then(|| PayloadRedactor::new(self.key_names.clone()));
                    if !redacted {
                        tracing::warn!("--debug-segments-raw: credentials are printed verbatim");
                    }
                    sinks.push(Box::new(SegmentLog::new(Box::new(io::stdout()), redactor)));
                }
                if metrics {
                    sinks.push(Box::new(TransactionMetrics::default()));
                }
                sinks.push(Box::new(AlertLog::Tracing));
            }
            Mode::Replay { json: false } => {
                // Text never joins JSON lines on one stream (`| jq`).
                let stdout = [&self.transactions, &self.alerts]
                    .into_iter()
                    .any(|p| p.as_deref() == Some(Path::new("-")));
                let stream: Box<dyn io::Write> = if stdout {
                    Box::new(io::stderr())
                } else {
                    Box::new(io::stdout())
                };
                sinks.push(Box::new(AlertLog::Stream(Some(stream))));
            }
            Mode::Replay { json: true } => {}
        }
        if let Some(syslog) = self.syslog.sink()? {
            sinks.push(Box::new(syslog));
        }
        if let Some(alertmanager) = self.alertmanager.sink()? {
            sinks.push(Box::new(alertmanager));
        }
        if self.publish.enabled() && !matches!(mode, Mode::Live { .. }) {
            anyhow::bail!("--publish is for `run`: heartbeats carry the live clock");
        }
        if let Some(publisher) = self.publish.sink()? {
            sinks.push(Box::new(publisher));
        }
        Ok(sinks)
    }

    /// Addresses never blocked whatever the policy: Kong's node addresses
    /// (as the pipeline takes them for `mode`) and the trusted proxies.
    ///
    /// # Errors
    /// The node's addresses cannot be listed.
    pub fn never_block(&self, mode: Mode) -> Result<Vec<IpNet>> {
        let mut never = match mode {
            Mode::Live { .. } if self.kong_addresses.is_empty() => node_addresses()?,
            _ => self.kong_addresses.clone(),
        };
        never.extend(self.trusted_proxies.iter().copied());
        Ok(never)
    }

    /// Kong's proxy listener ports (`--proxy-ports`).
    pub fn proxy_ports(&self) -> &[u16] {
        &self.proxy_ports
    }

    /// The detector settings (none with `--no-detectors`).
    pub fn detect_config(&self) -> Option<sensor::detect::DetectConfig> {
        self.detect.config()
    }

    /// Validates what flag parsing cannot (decoy globs, the Alertmanager
    /// sink's files), touching nothing; an error comes with the flag it is
    /// about.
    ///
    /// # Errors
    /// A bad decoy route; an unusable Alertmanager CA, certificate, key or
    /// password file.
    pub fn check(&self) -> Result<(), (&'static str, anyhow::Error)> {
        self.detect.detectors().map_err(|e| ("decoy", e))?;
        self.alertmanager.check().map_err(|e| ("alertmanager", e))
    }

    /// Builds the pipeline for `mode`.
    ///
    /// # Errors
    /// The fingerprint key or an output file cannot be opened; a bad decoy.
    pub fn pipeline(&self, mode: Mode) -> Result<Pipeline> {
        let key = FingerprintKey::load_or_create(&self.fingerprint_key)?;
        let kong_addresses = match mode {
            Mode::Live { .. } if self.kong_addresses.is_empty() => node_addresses()?,
            _ => self.kong_addresses.clone(),
        };
        let config = IdentityConfig {
            trusted_proxies: self.trusted_proxies.clone(),
            names: HeaderNames {
                key_names: self.key_names.clone(),
                real_ip_header: self.real_ip_header.to_ascii_lowercase(),
            },
            topology: Topology {
                kong_addresses,
                proxy_ports: self.proxy_ports.clone(),
            },
        };
        let detectors = self.detect.detectors()?;
        let flows = FlowLimits {
            max_flows: self.max_flows,
            // The process's own share (code, runtime, libraries) is what
            // it holds before any traffic: the state gets the rest.
            memory_budget: (self.memory_budget << 20).saturating_sub(resident_bytes()),
            ..FlowLimits::default()
        };
        let sinks = Sinks::new(self.sinks(mode)?);
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

/// This node's own addresses (every interface of the sensor's network
/// namespace, loopback included): the default Kong addresses of `run`,
/// which runs on the Kong node.
///
/// # Errors
/// The interfaces cannot be listed.
fn node_addresses() -> Result<Vec<IpNet>> {
    let interfaces = if_addrs::get_if_addrs().context("listing this node's addresses")?;
    Ok(interfaces.iter().map(|i| IpNet::from(i.ip())).collect())
}

/// The process's resident set now, bytes (`VmRSS` of `/proc/self/status`;
/// 0 where it cannot be read).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib << 10)
}

//! The `siem-sensor` subcommands and the flags they share.

pub mod replay;
pub mod run;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use ipnet::IpNet;
use sensor::{
    flow::FlowLimits,
    http::HttpLimits,
    identity::{FingerprintKey, IdentityConfig, Resolver},
    pipeline::{Pipeline, Sinks},
    sink::{JsonLines, SegmentLog},
};

/// Flags of the pipeline after the source, the same for `run` and `replay`.
#[derive(Args)]
pub struct PipelineArgs {
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
}

/// A CIDR, or a bare address as a host route.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
}

impl PipelineArgs {
    /// Builds the pipeline, with the segment log if given.
    ///
    /// # Errors
    /// The fingerprint key or the transactions file cannot be opened.
    pub fn pipeline(&self, segments: Option<SegmentLog>) -> Result<Pipeline> {
        let key = FingerprintKey::load_or_create(&self.fingerprint_key)?;
        let config = IdentityConfig {
            trusted_proxies: self.trusted_proxies.clone(),
            key_names: self.key_names.clone(),
        };
        let transactions = match &self.transactions {
            Some(path) => Some(
                JsonLines::create("transactions", path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => None,
        };
        let flows = FlowLimits {
            max_flows: self.max_flows,
            ..FlowLimits::default()
        };
        let sinks = Sinks {
            segments,
            transactions,
        };
        Ok(Pipeline::new(
            Resolver::new(config, key),
            flows,
            HttpLimits::default(),
            sinks,
        ))
    }
}

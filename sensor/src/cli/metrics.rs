//! The metrics endpoint's flags, the same for `run` (:9251) and `fleet`
//! (:9252).

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use ipnet::IpNet;
use sensor::exporter::{self, web_config::WebConfig};

use super::pipeline::parse_net;

/// Where and how Prometheus metrics are served.
#[derive(Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http(s)://ADDR/metrics (default:
    /// 0.0.0.0:9251 for `run`, 0.0.0.0:9252 for `fleet`).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_metrics")]
    listen: Option<SocketAddr>,
    /// Address or CIDR allowed to scrape; repeat for several (default: any).
    #[arg(long = "metrics-allow", value_name = "CIDR", value_parser = parse_net)]
    metrics_allow: Vec<IpNet>,
    /// Web config file (YAML, the Prometheus exporter-toolkit format) for
    /// the metrics endpoint: TLS, client certificates, basic-auth users.
    /// Re-read on every connection and request.
    #[arg(
        long = "web.config.file",
        value_name = "FILE",
        conflicts_with = "no_metrics"
    )]
    web_config_file: Option<PathBuf>,
    /// Serve no metrics.
    #[arg(long)]
    no_metrics: bool,
}

impl MetricsArgs {
    /// Validates the web config file (`check-config`).
    ///
    /// # Errors
    /// It cannot be read, parsed or its TLS files loaded.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.web_config_file {
            WebConfig::load(path).and_then(|c| c.tls())?;
        }
        Ok(())
    }

    /// Where and how metrics are served, on 0.0.0.0:`port` unless
    /// `--listen` says otherwise; `None` for `--no-metrics`.
    pub fn endpoint(&self, port: u16) -> Option<exporter::Endpoint> {
        (!self.no_metrics).then(|| exporter::Endpoint {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port))),
            allow: self.metrics_allow.clone(),
            web_config: self.web_config_file.clone(),
        })
    }
}

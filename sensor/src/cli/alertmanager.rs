//! The Alertmanager flags, and the node name outputs carry.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use clap::Args;
use sensor::sink::{
    Alertmanager, AlertmanagerConfig,
    alertmanager::{Target, TlsFiles},
};

/// Alerts to Alertmanager.
#[derive(Args)]
#[command(next_help_heading = "Alertmanager")]
pub struct AlertmanagerArgs {
    /// Push alert transitions to the Alertmanager at URL (API v2):
    /// `http://HOST:PORT[/PREFIX]` or `https://...`; repeat for several
    /// (each gets every alert, as Prometheus sends to every Alertmanager
    /// of a cluster).
    #[arg(long = "alertmanager", value_name = "URL")]
    alertmanagers: Vec<Target>,
    /// PEM file of the CAs that sign `https://` Alertmanagers'
    /// certificates (default: the system's trust store).
    #[arg(long, value_name = "FILE")]
    alertmanager_ca: Option<PathBuf>,
    /// PEM client certificate (leaf first) for an Alertmanager that asks
    /// for one; with --alertmanager-key.
    #[arg(long, value_name = "FILE", requires = "alertmanager_key")]
    alertmanager_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "alertmanager_cert")]
    alertmanager_key: Option<PathBuf>,
    /// Basic-auth user; with --alertmanager-password-file.
    #[arg(long, value_name = "NAME", requires = "alertmanager_password_file")]
    alertmanager_user: Option<String>,
    /// File whose first line is the basic-auth password (never given on
    /// the command line).
    #[arg(long, value_name = "FILE", requires = "alertmanager_user")]
    alertmanager_password_file: Option<PathBuf>,
    /// How often firing alerts are sent again (Prometheus'
    /// `--rules.alert.resend-delay`); each send holds for 4 times this.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = resend)]
    alertmanager_resend: Duration,
    /// Alert transitions queued per Alertmanager; more are counted as
    /// overflow.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    alertmanager_queue: usize,
    /// Firing alert episodes re-sent per Alertmanager; past it the least
    /// recently changed are no longer re-sent (counted as forgotten).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    alertmanager_max_active: usize,
    /// This sensor's name in its alerts (Alertmanager's `node` label);
    /// default: the host name.
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
}

/// A re-send period: at least a second.
fn resend(s: &str) -> Result<Duration, String> {
    let d: Duration = s
        .parse::<humantime::Duration>()
        .map_err(|e| e.to_string())?
        .into();
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

/// The kernel's host name (`/proc/sys/kernel/hostname`), or empty.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl AlertmanagerArgs {
    /// The settings, or none without targets.
    fn config(&self) -> Option<AlertmanagerConfig> {
        if self.alertmanagers.is_empty() {
            return None;
        }
        let client = self
            .alertmanager_cert
            .clone()
            .zip(self.alertmanager_key.clone());
        Some(AlertmanagerConfig {
            targets: self.alertmanagers.clone(),
            tls: TlsFiles {
                ca: self.alertmanager_ca.clone(),
                client,
            },
            auth: self
                .alertmanager_user
                .clone()
                .zip(self.alertmanager_password_file.clone()),
            node: self.node_name.clone().unwrap_or_else(host_name),
            resend: self.alertmanager_resend,
            queue: self.alertmanager_queue,
            max_active: self.alertmanager_max_active,
            drain: Duration::from_secs(2),
        })
    }

    /// The sink, or none without targets.
    ///
    /// # Errors
    /// A CA, certificate, key or password file cannot be used; a sender
    /// thread cannot be started.
    pub fn sink(&self) -> Result<Option<Alertmanager>> {
        let Some(config) = self.config() else {
            return Ok(None);
        };
        Alertmanager::start(&config)
            .map(Some)
            .context("cannot start the Alertmanager senders")
    }

    /// Reads the files the sink needs (starting and stopping its idle
    /// senders), touching nothing else.
    ///
    /// # Errors
    /// As [`AlertmanagerArgs::sink`].
    pub fn check(&self) -> Result<()> {
        self.sink().map(drop)
    }
}

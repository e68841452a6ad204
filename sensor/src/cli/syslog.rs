//! The syslog flags.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use clap::Args;
use sensor::sink::syslog::{
    Body, DEFAULT_MAX_RECORD, Header, MIN_MAX_RECORD, Syslog, SyslogConfig, Target, parse_facility,
};

use super::choice::ChoiceParser;

/// Alerts to syslog.
#[derive(Args)]
#[command(next_help_heading = "Syslog")]
pub struct SyslogArgs {
    /// Send every alert to TARGET: `unix:/dev/log`, `udp:ADDR:PORT`,
    /// `tcp:ADDR:PORT` (octet-counting framing) or `tls:ADDR:PORT[/NAME]`
    /// (RFC 5425: the receiver's certificate must name NAME, by default the
    /// address, and chain to --syslog-ca); IPv6 as `[ADDR]:PORT`; repeat
    /// for several.
    #[arg(long = "syslog", value_name = "TARGET")]
    targets: Vec<Target>,
    /// Record header.
    #[arg(long, default_value = "rfc5424", value_parser = ChoiceParser::<Header>::new())]
    syslog_format: Header,
    /// Message body.
    #[arg(long, default_value = "kv", value_parser = ChoiceParser::<Body>::new())]
    syslog_body: Body,
    /// Facility (syslog(3) name).
    #[arg(long, default_value = "auth", value_parser = parse_facility)]
    syslog_facility: fasyslog::Facility,
    /// Alerts queued per target while its receiver is down; more are
    /// counted as overflow.
    #[arg(long, default_value_t = 10_000)]
    syslog_queue: usize,
    /// PEM file of the CAs that sign `tls:` receivers' certificates
    /// (default: the system's trust store).
    #[arg(long, value_name = "FILE")]
    syslog_ca: Option<PathBuf>,
    /// Longest record, bytes (480 to 65000; rsyslog's default
    /// `maxMessageSize` is 8192): past it an alert's evidence is trimmed.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_RECORD, value_parser = max_record)]
    syslog_max_record: usize,
}

/// A record cap between [`MIN_MAX_RECORD`] and 65000 bytes (a UDP datagram
/// carries at most 65507).
fn max_record(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if !(MIN_MAX_RECORD..=65_000).contains(&n) {
        return Err(format!("must be between {MIN_MAX_RECORD} and 65000"));
    }
    Ok(n)
}

impl SyslogArgs {
    /// The sink, or none without targets.
    ///
    /// # Errors
    /// A sender thread cannot be started.
    pub fn sink(&self) -> Result<Option<Syslog>> {
        if self.targets.is_empty() {
            return Ok(None);
        }
        let config = SyslogConfig {
            targets: self.targets.clone(),
            header: self.syslog_format,
            body: self.syslog_body,
            facility: self.syslog_facility,
            queue: self.syslog_queue,
            drain: Duration::from_secs(2),
            ca: self.syslog_ca.clone(),
            max_record: self.syslog_max_record,
        };
        Syslog::start(&config)
            .map(Some)
            .context("cannot start the syslog senders")
    }
}

//! The `--block` flags of `run` (config file `[block]`), and the
//! `siem-sensor blocks` command that lists and removes the blocks of a
//! running sensor through its control socket.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use humantime::Duration;
use ipnet::IpNet;
use sensor::{
    block::{ControlRequest, Mode, Policy, client_request},
    detect::Detector,
};

use super::{choice::ChoiceParser, pipeline::parse_net};

/// Where `run` listens and `blocks` asks, under the unit's
/// `RuntimeDirectory=siem-sensor`.
pub const CONTROL_SOCKET: &str = "/run/siem-sensor/control.sock";

/// The kernel block of offenders (README "Blocking offenders").
#[derive(Args)]
#[command(next_help_heading = "Blocking offenders")]
pub struct BlockArgs {
    /// Block the packet source of a triggering alert in the kernel (on),
    /// only log and count what would be blocked (dry-run), or neither.
    #[arg(long = "block", default_value = "off", value_parser = ChoiceParser::<Mode>::new())]
    mode: Mode,
    /// A detector whose alerts trigger a block; repeat for several.
    #[arg(long = "block-detector", value_name = "DETECTOR", default_value = "honeypot",
          value_parser = ChoiceParser::<Detector>::new())]
    detectors: Vec<Detector>,
    /// A first offender's block; the n-th block of an address within 24 h
    /// of its last lasts TTL * 2^(n-1), up to --block-max-ttl.
    #[arg(long, default_value = "10m")]
    block_ttl: Duration,
    /// The longest a repeat offender's block grows to.
    #[arg(long, default_value = "24h")]
    block_max_ttl: Duration,
    /// New blocks allowed in any 60 s (extensions of a block in force do
    /// not count).
    #[arg(long, default_value_t = 60)]
    block_max_per_minute: u32,
    /// An address or CIDR never blocked, besides Kong's node addresses,
    /// the trusted proxies and loopback; repeat for several.
    #[arg(long = "block-allow", value_name = "CIDR", value_parser = parse_net)]
    allow: Vec<IpNet>,
    /// The control socket `siem-sensor blocks` talks to (created mode 0600
    /// when blocking is on or dry-run).
    #[arg(long, value_name = "PATH", default_value = CONTROL_SOCKET)]
    control_socket: PathBuf,
}

impl BlockArgs {
    /// The policy, its allow-list completed with `never` (Kong's node
    /// addresses and the trusted proxies) and loopback; `None` when off.
    ///
    /// # Errors
    /// A TTL of zero.
    pub fn policy(&self, never: Vec<IpNet>) -> Result<Option<Policy>> {
        if self.mode == Mode::Off {
            return Ok(None);
        }
        if self.block_ttl.is_zero() {
            bail!("--block-ttl must be longer than 0");
        }
        let mut allow = Policy::loopback();
        allow.extend(never);
        allow.extend(self.allow.iter().copied());
        Ok(Some(Policy {
            mode: self.mode,
            detectors: self.detectors.clone(),
            ttl: *self.block_ttl,
            max_ttl: *self.block_max_ttl,
            max_per_minute: self.block_max_per_minute,
            allow,
        }))
    }

    /// The control socket's path.
    pub fn control_socket(&self) -> &std::path::Path {
        &self.control_socket
    }
}

/// `siem-sensor blocks`.
#[derive(Args)]
pub struct BlocksArgs {
    /// The running sensor's control socket.
    #[arg(long, value_name = "PATH", default_value = CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print the answer as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<BlocksCommand>,
}

/// What `blocks` does.
#[derive(Subcommand)]
enum BlocksCommand {
    /// List the blocks in force (the default).
    List,
    /// End the block of each ADDRESS now (or of every address with --all).
    Remove {
        /// The blocked addresses.
        #[arg(value_name = "ADDRESS", required_unless_present = "all")]
        addresses: Vec<std::net::IpAddr>,
        /// Every block.
        #[arg(long, conflicts_with = "addresses")]
        all: bool,
    },
}

/// Runs `siem-sensor blocks`.
///
/// # Errors
/// No sensor answers on the socket, or it refused the request.
pub fn blocks(args: &BlocksArgs) -> Result<()> {
    let requests: Vec<ControlRequest> = match &args.command {
        None | Some(BlocksCommand::List) => vec![ControlRequest::List],
        Some(BlocksCommand::Remove { all: true, .. }) => vec![ControlRequest::Remove { ip: None }],
        Some(BlocksCommand::Remove { addresses, .. }) => addresses
            .iter()
            .map(|ip| ControlRequest::Remove { ip: Some(*ip) })
            .collect(),
    };
    let mut removed = 0;
    let mut last = None;
    for request in &requests {
        let answer = client_request(&args.socket, request).with_context(|| {
            format!(
                "no answer on {} (is `siem-sensor run --block` running?)",
                args.socket.display()
            )
        })?;
        if !answer.ok {
            bail!("the sensor refused: {}", answer.error.unwrap_or_default());
        }
        removed += answer.removed;
        last = Some(answer);
    }
    let Some(mut answer) = last else {
        return Ok(());
    };
    answer.removed = removed;
    if args.json {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(());
    }
    if matches!(args.command, Some(BlocksCommand::Remove { .. })) {
        println!("removed {removed}");
    }
    println!(
        "mode {}: {} block(s) in force",
        answer.mode,
        answer.blocks.len()
    );
    for b in &answer.blocks {
        println!(
            "{:<39} {:>7}s left  until {}  {} offence {}{}",
            b.ip,
            b.remaining_s,
            b.until,
            b.detector,
            b.offence,
            if b.enforced { "" } else { "  (dry-run)" }
        );
    }
    Ok(())
}

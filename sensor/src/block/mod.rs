//! The opt-in kernel block of offenders (`--block off|dry-run|on`).
//!
//! An alert of a triggering detector (default: `honeypot` only) about a
//! client IP that was the **packet source** of a request on a handshaken,
//! confirmed flow blocks that address: the kernel programs drop its
//! packets to Kong's proxy ports on ingress until the block's deadline
//! (`sensor_ebpf::block`). Everything else gets advice, never a kernel
//! block: a client a trusted proxy named in `X-Forwarded-For` (blocking
//! the proxy would block everyone behind it), Kong's upstream leg, a
//! credential or a principal. The advice is the Kong containment an
//! operator would run (RUNBOOK.md), carried in the alert's `response`.
//!
//! The rules, the complaints of CrowdSec bouncer users turned around:
//! - **Never the load balancer**: the allow-list always holds Kong's node
//!   addresses, the `--trusted-proxy` ranges and loopback, plus
//!   `--block-allow`; an address on it is never blocked.
//! - **No framing**: only a transaction whose flow's three-way handshake
//!   was seen, and that the server answered or acknowledged, can block
//!   (`Transaction::handshake`, `Transaction::confirmed`): a spoofed or
//!   bad-checksum segment never becomes one.
//! - **TTL** (default 10 min); a repeat offender's grows: the n-th block
//!   of an address within the offence memory (24 h after its last block)
//!   lasts `ttl * 2^(n-1)`, capped at `--block-max-ttl` (default 24 h).
//! - **Overlaps keep the longest**: a new decision for a blocked address
//!   moves its deadline only later, never earlier, and is not a new
//!   offence.
//! - **Exact expiry**: the kernel compares the deadline with
//!   `bpf_ktime_get_boot_ns()` on every packet; the daemon removes expired
//!   entries within a second and records the `unblock`.
//! - **Rate cap**: at most `--block-max-per-minute` new blocks in any 60 s
//!   (a burst of alerts, a framing attempt that got through, cannot fill
//!   the map); extensions do not count.
//! - **Fail-open**: nothing is pinned; the kernel applies blocks only while
//!   the daemon's heartbeat (`ALIVE_UNTIL`, pushed 5 s ahead every second)
//!   is fresh, so a killed sensor's leftover programs (netlink tc filters
//!   outlive the process) block nothing after 5 s; a stopping sensor
//!   clears the maps first.

mod control;
mod engine;
mod table;

use std::{net::IpAddr, time::Duration};

use ipnet::IpNet;

pub use control::{
    BlockInfo, ControlRequest, ControlResponse, client_request, handle, listen, serve,
};
pub use engine::{BlockCounters, Blocker, SharedBlocker};
pub use table::Table;

use crate::{choice::Choice, detect::Detector};

/// `--block`: what a triggering alert does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: no response on alerts, the kernel maps stay empty.
    Off,
    /// Decide, record and count as `on` would, drop nothing.
    DryRun,
    /// Block in the kernel.
    On,
}

impl Choice for Mode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("off", Self::Off),
        ("dry-run", Self::DryRun),
        ("on", Self::On),
    ];
}

/// The block policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Off, dry-run or on.
    pub mode: Mode,
    /// Detectors whose `firing` or `updated` alerts trigger a block.
    pub detectors: Vec<Detector>,
    /// A first offender's block.
    pub ttl: Duration,
    /// The longest a repeat offender's block grows to.
    pub max_ttl: Duration,
    /// New blocks allowed in any 60 s.
    pub max_per_minute: u32,
    /// Never blocked: Kong nodes, trusted proxies, loopback, configured.
    pub allow: Vec<IpNet>,
}

/// How long an address's offences are remembered after its last block.
pub const OFFENCE_MEMORY: Duration = Duration::from_secs(24 * 3600);

impl Policy {
    /// The allow-list every policy has: IPv4 and IPv6 loopback.
    pub fn loopback() -> Vec<IpNet> {
        vec![
            "127.0.0.0/8".parse().expect("literal"),
            "::1/128".parse().expect("literal"),
        ]
    }

    /// Whether `ip` is on the allow-list.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(&ip))
    }

    /// The TTL of an address's `offence`-th block (1-based): `ttl *
    /// 2^(offence-1)`, at most `max_ttl`.
    pub fn ttl_of(&self, offence: u32) -> Duration {
        let factor = 1u32 << offence.saturating_sub(1).min(20);
        self.ttl
            .saturating_mul(factor)
            .min(self.max_ttl.max(self.ttl))
    }
}

/// Writes blocks where they are enforced: the kernel maps
/// (`capture::live::KernelBlocks`), or nothing (dry-run, tests).
/// Deadlines are `CLOCK_BOOTTIME` ns.
pub trait Enforcer: Send {
    /// Blocks `ip` until `deadline_ns` (replacing any deadline it had).
    ///
    /// # Errors
    /// The map refused the entry (full, or a kernel error).
    fn insert(&mut self, ip: IpAddr, deadline_ns: u64) -> std::io::Result<()>;
    /// Unblocks `ip` (no error when it was not blocked).
    ///
    /// # Errors
    /// The map refused the deletion.
    fn remove(&mut self, ip: IpAddr) -> std::io::Result<()>;
    /// Sets the number of blocked addresses (0: the kernel check stops at
    /// its first read) and pushes the liveness deadline to `alive_until_ns`.
    ///
    /// # Errors
    /// The state map refused the update.
    fn state(&mut self, active: u64, alive_until_ns: u64) -> std::io::Result<()>;
}

/// An enforcer that enforces nothing (`--block dry-run`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEnforcer;

impl Enforcer for NoEnforcer {
    fn insert(&mut self, _ip: IpAddr, _deadline_ns: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn remove(&mut self, _ip: IpAddr) -> std::io::Result<()> {
        Ok(())
    }
    fn state(&mut self, _active: u64, _alive_until_ns: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// The two clocks a block needs, in ns: `CLOCK_BOOTTIME` (the kernel's
/// deadlines) and the wall clock (records).
pub trait Clock: Send {
    /// `(boot_ns, wall_ns)` now.
    fn now(&self) -> (u64, u64);
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> (u64, u64) {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes a valid timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let boot = (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (boot, wall)
    }
}

#[cfg(test)]
mod tests;

impl Choice for Detector {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("request_flood", Self::RequestFlood),
        ("error_rate", Self::ErrorRate),
        ("credential_spread", Self::CredentialSpread),
        ("success_then_failure", Self::SuccessThenFailure),
        ("honeypot", Self::Honeypot),
    ];
}

//! The block policy's settings, and the two things it acts through: the
//! [`Enforcer`] (the kernel maps) and the [`Clock`].

use std::{net::IpAddr, time::Duration};

use ipnet::IpNet;

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

impl Choice for Detector {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("request_flood", Self::RequestFlood),
        ("error_rate", Self::ErrorRate),
        ("credential_spread", Self::CredentialSpread),
        ("success_then_failure", Self::SuccessThenFailure),
        ("honeypot", Self::Honeypot),
    ];
}

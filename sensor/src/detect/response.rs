//! What the sensor did, or advises, about an alert's subject (`--block`):
//! the [`Response`] an alert carries, and the [`BlockEvent`] records of
//! blocks starting and ending. Plain data; the policy that makes them is
//! `crate::block`.
//!
//! Only a packet source is ever blocked in the kernel. A client named by a
//! trusted proxy's header, a principal or a credential gets advice: the
//! Kong containment an operator would apply (RUNBOOK.md, "Containment with
//! Kong"), as [`KongAction`]s.

use std::net::IpAddr;

use serde::Serialize;

use super::alert::Detector;

/// The response to one alert (`response` in its JSON record, the
/// `response` label in Alertmanager, `response=` in syslog).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Response {
    /// What was decided.
    pub action: Action,
    /// The address blocked, or that would have been, when the subject is
    /// a packet source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// When the block ends (wall clock, RFC 3339), for `blocked` and
    /// `dry_run`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time::rfc3339_opt"
    )]
    pub until: Option<u64>,
    /// The block's length from now, whole seconds (see the TTL rule in
    /// `crate::block`), for `blocked` and `dry_run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// Which block of this address in the offence memory this is (1 for a
    /// first offender).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offence: Option<u32>,
    /// What a Kong operator would run (RUNBOOK.md "Containment with Kong").
    pub kong: Vec<KongAction>,
}

/// What was decided about an alert's subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Its packets to Kong's proxy ports are dropped in the kernel until
    /// `until` (`--block on`).
    Blocked,
    /// It would have been blocked (`--block dry-run`): logged and counted,
    /// nothing dropped.
    DryRun,
    /// Not a packet source (a client a trusted proxy named, Kong's
    /// upstream leg, a credential): never blocked in the kernel; the
    /// `kong` actions are the response.
    Advised,
    /// On the allow-list (Kong node, trusted proxy, loopback,
    /// `--block-allow`): never blocked.
    AllowListed,
    /// Over `--block-max-per-minute`: not blocked this time.
    RateCapped,
    /// The request was not on a flow whose three-way handshake was seen:
    /// possibly forged, never a reason to block.
    Unconfirmed,
    /// The kernel map could not take it (full, or an error; logged).
    Failed,
}

impl Action {
    /// Every action, in table order.
    pub const ALL: [Action; 7] = [
        Self::Blocked,
        Self::DryRun,
        Self::Advised,
        Self::AllowListed,
        Self::RateCapped,
        Self::Unconfirmed,
        Self::Failed,
    ];

    /// The name in outputs: `blocked`, `dry_run`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::DryRun => "dry_run",
            Self::Advised => "advised",
            Self::AllowListed => "allow_listed",
            Self::RateCapped => "rate_capped",
            Self::Unconfirmed => "unconfirmed",
            Self::Failed => "failed",
        }
    }
}

/// One Kong containment step, named as RUNBOOK.md's sections name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KongAction {
    /// `ip-restriction deny` (the address), `acl deny group` (the
    /// consumer, into group `siem-quarantine`) or `revoke credential`
    /// (the credential's fingerprint, of the consumer when known).
    pub action: &'static str,
    /// What it applies to: an address, a consumer name, a fingerprint.
    pub target: String,
    /// The consumer owning the credential, for `revoke credential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

impl std::fmt::Display for KongAction {
    /// `ACTION TARGET[ of CONSUMER]`, e.g. `ip-restriction deny 203.0.113.7`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.action, self.target)?;
        if let Some(c) = &self.consumer {
            write!(f, " of {c}")?;
        }
        Ok(())
    }
}

/// A block starting or ending: one record on the JSON alert output
/// (`{"event":"block",...}`), syslog and the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockEvent {
    /// `block` or `unblock`.
    pub event: BlockEventKind,
    /// When (wall clock, RFC 3339).
    #[serde(rename = "time", serialize_with = "crate::time::rfc3339")]
    pub time_ns: u64,
    /// The address.
    pub ip: IpAddr,
    /// The detector whose alert made the block.
    pub detector: Detector,
    /// The alert episode's id (empty for a block added by hand).
    pub alert_id: String,
    /// Whether the kernel drops its packets (`false`: `--block dry-run`).
    pub enforced: bool,
    /// When the block ends (wall clock, RFC 3339).
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub until: u64,
    /// The block's length, whole seconds (on `unblock`: as decided).
    pub ttl_s: u64,
    /// Which block of this address in the offence memory this is.
    pub offence: u32,
    /// Why it ended (`unblock` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<UnblockReason>,
}

/// Whether a [`BlockEvent`] starts or ends a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockEventKind {
    /// A block started, or an active one was extended.
    Block,
    /// A block ended.
    Unblock,
}

/// Why a block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnblockReason {
    /// Its TTL ran out.
    Expired,
    /// `siem-sensor blocks remove`.
    Removed,
    /// The sensor stopped (nothing outlives it).
    Stopped,
}

impl UnblockReason {
    /// The name in outputs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Removed => "removed",
            Self::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for BlockEvent {
    /// One line: `block ip=10.0.0.9 detector=honeypot enforced=true
    /// ttl_s=600 offence=1 until=... [reason=expired]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.event {
            BlockEventKind::Block => "block",
            BlockEventKind::Unblock => "unblock",
        };
        write!(
            f,
            "{kind} ip={} detector={} enforced={} ttl_s={} offence={} until={}",
            self.ip,
            self.detector.as_str(),
            self.enforced,
            self.ttl_s,
            self.offence,
            crate::time::Rfc3339(self.until),
        )?;
        if !self.alert_id.is_empty() {
            write!(f, " alert_id={}", self.alert_id)?;
        }
        if let Some(r) = self.reason {
            write!(f, " reason={}", r.as_str())?;
        }
        Ok(())
    }
}

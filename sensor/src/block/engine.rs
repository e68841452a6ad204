//! [`Blocker`]: the policy applied to alerts, the table kept and the
//! enforcer written, with the records and counters that make every
//! decision visible.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use sensor_ebpf::block::{HEARTBEAT_GRACE_NS, MAX_ENTRIES};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    policy::{Clock, Enforcer, Mode, OFFENCE_MEMORY, Policy},
    table::{Entry, Outcome, Table},
};
use crate::{
    detect::{
        Action, Alert, BlockEvent, BlockEventKind, Detector, KongAction, Response, State,
        UnblockReason,
    },
    http::Transaction,
    identity::{Leg, PrincipalSource},
    pipeline::Responder,
};

/// The block counters (metrics `siem_sensor_blocks_*`, the summary's
/// `block`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlockCounters {
    /// Blocks in force now.
    pub active: u64,
    /// Decisions by action.
    pub decisions: BTreeMap<Action, u64>,
    /// New blocks (enforced or dry-run) by detector.
    pub blocks: BTreeMap<Detector, u64>,
    /// Blocks ended, by detector and reason.
    pub unblocks: BTreeMap<Detector, BTreeMap<UnblockReason, u64>>,
}

/// One block in force, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The blocked source address.
    pub ip: IpAddr,
    /// The detector whose alert made it.
    pub detector: String,
    /// The alert episode's id.
    pub alert_id: String,
    /// When it ends, RFC 3339.
    pub until: String,
    /// Seconds left, rounded up.
    pub remaining_s: u64,
    /// Its length as decided, seconds.
    pub ttl_s: u64,
    /// Which block of the address this is.
    pub offence: u32,
    /// Whether the kernel drops its packets (`false`: dry-run).
    pub enforced: bool,
}

/// The block policy at work. Shared by the pipeline (decisions on alerts),
/// the daemon's clock (expiry, heartbeat) and the control socket.
pub struct Blocker {
    policy: Policy,
    table: Table,
    enforcer: Box<dyn Enforcer>,
    clock: Box<dyn Clock>,
    counters: BlockCounters,
    /// Records made outside an alert (removal by hand), for the sinks.
    pending: Vec<BlockEvent>,
}

impl Blocker {
    /// A blocker applying `policy` through `enforcer` (the kernel maps for
    /// `on`; anything for `dry-run`, which never writes to it).
    pub fn new(policy: Policy, enforcer: Box<dyn Enforcer>, clock: Box<dyn Clock>) -> Self {
        let mut this = Self {
            policy,
            table: Table::default(),
            enforcer,
            clock,
            counters: BlockCounters::default(),
            pending: Vec::new(),
        };
        this.heartbeat();
        this
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn enforced(&self) -> bool {
        self.policy.mode == Mode::On
    }

    /// Pushes the state (active count, liveness) to the kernel.
    fn heartbeat(&mut self) {
        if !self.enforced() {
            return;
        }
        let (boot, _) = self.clock.now();
        let active = self.table.len() as u64;
        if let Err(e) = self
            .enforcer
            .state(active, boot.saturating_add(HEARTBEAT_GRACE_NS))
        {
            warn!(error = %e, "block: cannot refresh the kernel state");
        }
    }

    /// Decides on `alert`, raised by `tx`: the response it carries (none
    /// when blocking is off or the detector does not trigger) and the
    /// block records made.
    pub fn decide(
        &mut self,
        tx: &Transaction,
        alert: &Alert,
    ) -> (Option<Response>, Vec<BlockEvent>) {
        if self.policy.mode == Mode::Off
            || alert.state == State::Resolved
            || !self.policy.detectors.contains(&alert.detector)
        {
            return (None, Vec::new());
        }
        let mut response = Response {
            action: Action::Advised,
            ip: None,
            until: None,
            ttl_s: None,
            offence: None,
            kong: Vec::new(),
        };
        let mut events = Vec::new();
        match alert.client_ip {
            None => {}
            Some(ip) if self.policy.allowed(ip) => response.action = Action::AllowListed,
            Some(ip) if !(tx.leg == Leg::Client && tx.client_is_peer && tx.client_ip == ip) => {
                response.kong.push(KongAction {
                    action: "ip-restriction deny",
                    target: ip.to_string(),
                    consumer: None,
                });
            }
            Some(ip) => {
                response.kong.push(KongAction {
                    action: "ip-restriction deny",
                    target: ip.to_string(),
                    consumer: None,
                });
                if !(tx.handshake && tx.confirmed) || tx.midstream {
                    response.action = Action::Unconfirmed;
                } else {
                    self.block(ip, alert, &mut response, &mut events);
                }
            }
        }
        advise_principal(tx, alert, &mut response.kong);
        *self.counters.decisions.entry(response.action).or_default() += 1;
        info!(
            detector = alert.detector.as_str(),
            id = %alert.id,
            action = response.action.as_str(),
            ip = ?alert.client_ip,
            "block decision"
        );
        (Some(response), events)
    }

    /// Blocks `ip` (or would, in dry-run) for `alert`.
    fn block(
        &mut self,
        ip: IpAddr,
        alert: &Alert,
        response: &mut Response,
        events: &mut Vec<BlockEvent>,
    ) {
        let (boot, wall) = self.clock.now();
        // A decision while blocked extends the block in force (same offence).
        let offence = match self.table.get(&ip) {
            Some(e) => e.offence,
            None => self
                .table
                .next_offence(&ip, boot, OFFENCE_MEMORY.as_nanos() as u64),
        };
        let ttl_ns = self.policy.ttl_of(offence).as_nanos() as u64;
        let before = self.table.get(&ip).map(|e| e.deadline_ns);
        let outcome = self.table.decide(
            ip,
            (boot, wall),
            ttl_ns,
            offence,
            (alert.detector, &alert.id),
            self.policy.max_per_minute,
            MAX_ENTRIES as usize,
        );
        let (entry, new) = match outcome {
            Outcome::New(e) => (e, true),
            Outcome::Extended(e) => (e, false),
            Outcome::RateCapped => {
                response.action = Action::RateCapped;
                return;
            }
            Outcome::Full => {
                response.action = Action::Failed;
                return;
            }
        };
        if self.enforced() && before != Some(entry.deadline_ns) {
            if let Err(e) = self.enforcer.insert(ip, entry.deadline_ns) {
                warn!(%ip, error = %e, "block: the kernel map refused the address");
                if new {
                    self.table.remove(&ip);
                }
                response.action = Action::Failed;
                return;
            }
            self.heartbeat();
        }
        response.action = if self.enforced() {
            Action::Blocked
        } else {
            Action::DryRun
        };
        response.ip = Some(ip);
        response.until = Some(entry.until_wall_ns);
        response.ttl_s = Some(entry.ttl_s);
        response.offence = Some(entry.offence);
        if new {
            *self.counters.blocks.entry(alert.detector).or_default() += 1;
        }
        if before != Some(entry.deadline_ns) {
            events.push(self.event(BlockEventKind::Block, ip, &entry, wall, None));
        }
    }

    fn event(
        &self,
        kind: BlockEventKind,
        ip: IpAddr,
        e: &Entry,
        time_ns: u64,
        reason: Option<UnblockReason>,
    ) -> BlockEvent {
        BlockEvent {
            event: kind,
            time_ns,
            ip,
            detector: e.detector,
            alert_id: e.alert_id.clone(),
            enforced: self.enforced(),
            until: e.until_wall_ns,
            ttl_s: e.ttl_s,
            offence: e.offence,
            reason,
        }
    }

    /// Ends `entries` for `reason`: out of the kernel map, counted, one
    /// `unblock` record each (timed at the deadline for an expiry).
    fn end(&mut self, entries: Vec<(IpAddr, Entry)>, reason: UnblockReason) -> Vec<BlockEvent> {
        let (_, wall) = self.clock.now();
        let mut events = Vec::new();
        for (ip, e) in entries {
            if self.enforced()
                && let Err(err) = self.enforcer.remove(ip)
            {
                warn!(%ip, error = %err, "block: cannot remove the address from the kernel map");
            }
            *self
                .counters
                .unblocks
                .entry(e.detector)
                .or_default()
                .entry(reason)
                .or_default() += 1;
            let time = match reason {
                UnblockReason::Expired => e.until_wall_ns.min(wall),
                _ => wall,
            };
            events.push(self.event(BlockEventKind::Unblock, ip, &e, time, Some(reason)));
        }
        self.heartbeat();
        events
    }

    /// Once a second: ends the blocks whose deadline passed, refreshes the
    /// kernel's liveness deadline, and returns every record made since.
    pub fn tick(&mut self) -> Vec<BlockEvent> {
        let (boot, _) = self.clock.now();
        let expired = self.table.expire(boot);
        let mut events = std::mem::take(&mut self.pending);
        events.extend(self.end(expired, UnblockReason::Expired));
        events
    }

    /// Removes the block of `ip`, or every block (`None`); the records go
    /// out at the next [`Blocker::tick`]. Returns how many were removed.
    pub fn remove(&mut self, ip: Option<IpAddr>) -> usize {
        let gone = match ip {
            Some(ip) => self
                .table
                .remove(&ip.to_canonical())
                .map(|e| vec![(ip.to_canonical(), e)])
                .unwrap_or_default(),
            None => self.table.clear(),
        };
        let n = gone.len();
        let events = self.end(gone, UnblockReason::Removed);
        self.pending.extend(events);
        n
    }

    /// The sensor stops: every block ends and the kernel state says so
    /// (active 0, liveness over), before the programs are detached.
    pub fn stop(&mut self) -> Vec<BlockEvent> {
        let all = self.table.clear();
        let mut events = std::mem::take(&mut self.pending);
        events.extend(self.end(all, UnblockReason::Stopped));
        if self.enforced()
            && let Err(e) = self.enforcer.state(0, 0)
        {
            warn!(error = %e, "block: cannot clear the kernel state");
        }
        events
    }

    /// The blocks in force, soonest to end first.
    pub fn list(&self) -> Vec<BlockInfo> {
        let (boot, _) = self.clock.now();
        self.table
            .entries()
            .into_iter()
            .map(|(ip, e)| BlockInfo {
                ip,
                detector: e.detector.as_str().to_owned(),
                alert_id: e.alert_id.clone(),
                until: crate::time::Rfc3339(e.until_wall_ns).to_string(),
                remaining_s: e.deadline_ns.saturating_sub(boot).div_ceil(1_000_000_000),
                ttl_s: e.ttl_s,
                offence: e.offence,
                enforced: self.enforced(),
            })
            .collect()
    }

    /// The counters now.
    pub fn counters(&self) -> BlockCounters {
        BlockCounters {
            active: self.table.len() as u64,
            ..self.counters.clone()
        }
    }
}

/// Kong containment for the principal behind an alert: quarantine Kong's
/// consumer (ACL deny group); for a credential alert, revoke the
/// credential (its fingerprint; the runbook says how to find it).
fn advise_principal(tx: &Transaction, alert: &Alert, kong: &mut Vec<KongAction>) {
    let consumer = tx.consumer.clone().or_else(|| {
        alert
            .principal
            .as_ref()
            .filter(|p| p.source == PrincipalSource::KongConsumer)
            .map(|p| p.name.clone())
    });
    if let Some(fp) = alert.credential {
        kong.push(KongAction {
            action: "revoke credential",
            target: fp.to_string(),
            consumer: consumer.clone(),
        });
    }
    if let Some(c) = consumer {
        kong.push(KongAction {
            action: "acl deny group",
            target: c,
            consumer: None,
        });
    }
}

/// A [`Blocker`] shared between the pipeline and the daemon.
#[derive(Clone)]
pub struct SharedBlocker(pub Arc<Mutex<Blocker>>);

impl SharedBlocker {
    /// Runs `f` on the blocker (a poisoned lock is taken over: the state
    /// is a table, consistent after every call).
    pub fn with<R>(&self, f: impl FnOnce(&mut Blocker) -> R) -> R {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

impl Responder for SharedBlocker {
    fn respond(&mut self, tx: &Transaction, alert: &mut Alert) -> Vec<BlockEvent> {
        let (response, events) = self.with(|b| b.decide(tx, alert));
        alert.response = response;
        events
    }
}

//! Alert lifecycle: the alerts the detectors raise about one subject (an
//! IP, a credential) are one episode, reported as transitions:
//!
//! - `firing`: the first raise; the episode's id is fixed then (a hash of
//!   detector, subject and start time, so replay gives the same ids);
//! - `updated`: a raise whose extent grew materially (the rule below);
//! - `resolved`: no raise for `resolve_after` (default 5 min), reported at
//!   the last raise plus that time (event time: replay resolves alike).
//!
//! Other raises are folded into the episode and counted (`suppressed` on
//! the next transition). The extent, and what counts as material growth:
//!
//! | detector | extent | an update when |
//! |---|---|---|
//! | `credential_spread` | client IPs using the credential | any new IP |
//! | `honeypot` | distinct decoy paths hit (at most 16) | a new path |
//! | `request_flood` | requests counted at each raise, summed | the sum doubled since the last transition |
//! | `error_rate` | errors counted at each raise, summed | the sum doubled |
//! | `success_then_failure` | failures counted at each raise, summed | the sum doubled |
//!
//! A credential still used from the IPs that made it spread keeps its
//! episode open ([`Lifecycle::touch`]) without a transition.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::{
    alert::{Alert, Detector, Severity, State, Subject},
    bounded::{BoundedMap, Weighted},
};

/// Most decoy paths an episode remembers.
const MAX_PATHS: usize = 16;
/// How often (event time, ns) quiet episodes are looked for.
const SCAN_EVERY_NS: u64 = 1_000_000_000;

#[derive(Debug)]
struct Episode {
    last_ns: u64,
    extent: u64,
    reported: u64,
    suppressed: u64,
    /// Hashes of the decoy paths hit (honeypot).
    paths: SmallVec<[u64; 4]>,
    /// The last transition, without evidence (the resolved record's body).
    last: Alert,
}

/// The quietest episodes go first.
impl Weighted for Episode {
    fn weight(&self) -> u64 {
        self.last_ns
    }
}

/// The episodes open now, by (detector, subject).
#[derive(Debug)]
pub struct Lifecycle {
    resolve_after_ns: u64,
    runbook: String,
    episodes: BoundedMap<(Detector, Subject), Episode>,
    next_scan_ns: u64,
}

impl Lifecycle {
    /// Episodes resolving after `resolve_after_ns` of quiet, at most
    /// `capacity` open at once (the least recently raised is forgotten
    /// first); every record links `runbook` + `#` + the detector's name.
    pub fn new(resolve_after_ns: u64, runbook: String, capacity: usize) -> Self {
        Self {
            resolve_after_ns,
            runbook,
            episodes: BoundedMap::new(capacity),
            next_scan_ns: 0,
        }
    }

    /// New settings; open episodes stay.
    pub fn set(&mut self, resolve_after_ns: u64, runbook: String) {
        self.resolve_after_ns = resolve_after_ns;
        self.runbook = runbook;
    }

    /// A raised alert: its transition (`firing` or `updated`, with id,
    /// episode start and suppressed count filled in), or `None` when it
    /// only folds into its episode.
    pub fn raise(&mut self, mut alert: Alert) -> Option<Alert> {
        let subject = alert.subject()?;
        let key = (alert.detector, subject);
        alert.runbook_url = format!("{}#{}", self.runbook, alert.detector.as_str());
        let fresh = || Episode {
            last_ns: 0,
            extent: 0,
            reported: 0,
            suppressed: 0,
            paths: SmallVec::new(),
            last: alert.clone(),
        };
        let e = self.episodes.entry(key, fresh);
        let new = e.last_ns == 0;
        e.last_ns = alert.time_ns.max(1);
        e.extent = grow(e, &alert);
        let material = new
            || match alert.detector {
                Detector::CredentialSpread | Detector::Honeypot => e.extent > e.reported,
                _ => e.extent >= e.reported.saturating_mul(2),
            };
        if !material {
            e.suppressed += 1;
            return None;
        }
        if new {
            alert.id = episode_id(key, alert.time_ns);
            alert.episode_start_ns = alert.time_ns;
        } else {
            alert.id.clone_from(&e.last.id);
            alert.episode_start_ns = e.last.episode_start_ns;
            alert.state = State::Updated;
        }
        alert.extent = e.extent;
        alert.suppressed = std::mem::take(&mut e.suppressed);
        e.reported = e.extent;
        e.last = Alert {
            evidence: Vec::new(),
            ..alert.clone()
        };
        Some(alert)
    }

    /// `detector` still sees `subject` at `time_ns` (without a new alert):
    /// its open episode, if any, stays open.
    pub fn touch(&mut self, detector: Detector, subject: Subject, time_ns: u64) {
        if let Some(e) = self.episodes.get_mut(&(detector, subject)) {
            e.last_ns = e.last_ns.max(time_ns);
        }
    }

    /// Resolves the episodes quiet for the resolve time at `now_ns` into
    /// `out` (checked once a second of event time).
    pub fn advance(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        if now_ns < self.next_scan_ns {
            return;
        }
        self.next_scan_ns = now_ns.saturating_add(SCAN_EVERY_NS);
        let after = self.resolve_after_ns;
        self.resolve(out, |e| e.last_ns.saturating_add(after) <= now_ns);
    }

    /// Resolves every open episode (end of input: a capture shows nothing
    /// more of them).
    pub fn resolve_all(&mut self, out: &mut Vec<Alert>) {
        self.resolve(out, |_| true);
    }

    fn resolve(&mut self, out: &mut Vec<Alert>, quiet: impl Fn(&Episode) -> bool) {
        let after = self.resolve_after_ns;
        self.episodes.retain(|_, e| {
            if !quiet(e) {
                return true;
            }
            out.push(Alert {
                time_ns: e.last_ns.saturating_add(after),
                state: State::Resolved,
                suppressed: e.suppressed,
                ..e.last.clone()
            });
            false
        });
    }

    /// Open episodes by detector and severity.
    pub fn active(&self) -> BTreeMap<(Detector, Severity), u64> {
        let mut by = BTreeMap::new();
        for ((detector, _), _) in self.episodes.iter() {
            *by.entry((*detector, detector.severity())).or_default() += 1;
        }
        by
    }

    /// Bytes the episode table holds (an alert without evidence each).
    pub fn memory(&self) -> u64 {
        self.episodes.memory(512)
    }

    /// Episodes forgotten to make room.
    pub fn evictions(&self) -> u64 {
        self.episodes.evictions()
    }
}

/// The episode's extent after `alert` (see the module table).
fn grow(e: &mut Episode, alert: &Alert) -> u64 {
    let count = |name| alert.counts.get(name).copied().unwrap_or(0);
    match alert.detector {
        Detector::CredentialSpread => e.extent.max(alert.ips.len() as u64),
        Detector::Honeypot => {
            let path = alert
                .evidence
                .first()
                .map_or("", |ev| ev.path.split('?').next().unwrap_or_default());
            let hash = u64::from_le_bytes(
                blake3::hash(path.as_bytes()).as_bytes()[..8]
                    .try_into()
                    .unwrap_or_default(),
            );
            if !e.paths.contains(&hash) && e.paths.len() < MAX_PATHS {
                e.paths.push(hash);
            }
            e.paths.len() as u64
        }
        Detector::RequestFlood => e.extent + count("requests"),
        Detector::ErrorRate => e.extent + count("errors"),
        Detector::SuccessThenFailure => e.extent + count("failures"),
    }
}

/// The episode id: 16 hex digits of BLAKE3 over detector, subject and
/// start (ns), the same on every run and node.
fn episode_id((detector, subject): (Detector, Subject), start_ns: u64) -> String {
    let subject = match subject {
        Subject::Ip(ip) => ip.to_string(),
        Subject::Credential(fp) => fp.to_string(),
    };
    let text = format!("{}|{subject}|{start_ns}", detector.as_str());
    blake3::hash(text.as_bytes()).to_hex()[..16].to_owned()
}

//! Detection: the four detectors and the decoy routes, over transactions, in
//! event time (the transactions' own timestamps), so a replay raises the
//! same alerts on every run.
//!
//! | detector | key | default |
//! |---|---|---|
//! | `request_flood` | client IP | more than 600 requests in a 15 s window |
//! | `error_rate` | client IP | >= 20 errors, >= 50% of its requests, >= 3x the population baseline, in a 15 s window |
//! | `credential_spread` | credential | 3 or more client IPs within 5 min |
//! | `success_then_failure` | client IP | >= 5 successes in 60 s, then >= 10 failures making >= 80% of 15 s |
//! | `honeypot` | client IP | any request for a decoy route |
//!
//! Only confirmed transactions count ([`Transaction::confirmed`]: the
//! server answered, or acknowledged the request on a handshaken flow), so
//! a forged segment from a spoofed address frames nobody. Each request
//! arrives once, its legs joined ([`crate::join`]): the status the client
//! got, the principal Kong named. Every table is bounded
//! ([`bounded::BoundedMap`]); the alerts about one subject are one episode
//! whose transitions go out ([`lifecycle`]).

pub mod alert;
pub mod bounded;
mod honeypot;
pub mod lifecycle;
mod per_ip;
pub mod response;
mod sequence;
mod spread;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use alert::{Alert, Detector, Evidence, Severity, State, Subject};
pub use honeypot::DecoyError;
pub use per_ip::{ErrorConfig, FloodConfig, WindowGauges};
pub use response::{Action, BlockEvent, BlockEventKind, KongAction, Response, UnblockReason};
pub use sequence::SequenceConfig;
pub use spread::{CredentialGauge, SpreadConfig};

use crate::http::Transaction;

/// Every detector setting.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Tumbling window of the per-IP detectors, ns.
    pub window_ns: u64,
    /// `request_flood`.
    pub flood: FloodConfig,
    /// `error_rate`.
    pub errors: ErrorConfig,
    /// `credential_spread`.
    pub spread: SpreadConfig,
    /// `success_then_failure`.
    pub sequence: SequenceConfig,
    /// Decoy routes (see `honeypot`).
    pub decoys: Vec<String>,
    /// An episode resolves after this long without a raise, ns.
    pub resolve_after_ns: u64,
    /// Where the runbook is: every alert links this + `#` + detector.
    pub runbook_url: String,
    /// Client IPs tracked per table.
    pub max_ips: usize,
    /// Credentials tracked.
    pub max_credentials: usize,
}

const SECOND: u64 = 1_000_000_000;

/// The runbook as the Debian package installs it.
pub const RUNBOOK_URL: &str = "file:///usr/share/doc/siem-sensor/RUNBOOK.md";

impl Default for DetectConfig {
    /// The defaults of the module table: 15 s windows as the reference SIEM,
    /// episodes resolved after 5 min of quiet, 200,000
    /// IPs and 50,000 credentials per table. The flood budget is 600, not
    /// the reference's 300: a real browser loading pages reaches 328
    /// requests in one 15 s window (`example.pcap` in the shared captures).
    fn default() -> Self {
        Self {
            window_ns: 15 * SECOND,
            flood: FloodConfig { budget: 600 },
            errors: ErrorConfig {
                min_errors: 20,
                min_ratio: 0.5,
                baseline_factor: 3.0,
                baseline_windows: 240,
            },
            spread: SpreadConfig {
                min_ips: 3,
                window_ns: 300 * SECOND,
            },
            sequence: SequenceConfig {
                min_successes: 5,
                success_window_ns: 60 * SECOND,
                min_failures: 10,
                min_failure_ratio: 0.8,
                failure_window_ns: 15 * SECOND,
            },
            decoys: Vec::new(),
            resolve_after_ns: 300 * SECOND,
            runbook_url: RUNBOOK_URL.to_owned(),
            max_ips: 200_000,
            max_credentials: 50_000,
        }
    }
}

/// Detection counters (totals).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetectCounters {
    /// Transactions seen.
    pub transactions: u64,
    /// Transactions not confirmed (no response, no acknowledgement on a
    /// handshaken flow: possibly forged), which no detector counts.
    pub unconfirmed: u64,
    /// Transactions older than the current per-IP window (counted into it).
    pub late: u64,
    /// Episodes fired, by detector.
    pub alerts: std::collections::BTreeMap<Detector, u64>,
    /// Transitions sent, by state.
    pub transitions: std::collections::BTreeMap<State, u64>,
    /// Raises folded into an open episode.
    pub suppressed: u64,
    /// Entries evicted from the bounded tables (IPs, credentials).
    pub evictions: u64,
}

/// What the gauges show (exported by the metrics sink): the last closed
/// window and the credentials' spread.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// The last closed per-IP window, once one has closed.
    pub window: Option<WindowGauges>,
    /// Credentials used from most IPs, most first (top 50).
    pub credentials: Vec<CredentialGauge>,
    /// Credentials tracked now.
    pub tracked_credentials: u64,
    /// Open alert episodes, per detector (every detector listed).
    pub active: Vec<ActiveAlerts>,
}

/// Open alert episodes of one detector.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActiveAlerts {
    /// The detector.
    pub detector: Detector,
    /// Its severity.
    pub severity: Severity,
    /// Episodes open now.
    pub open: u64,
}

/// Which detectors a transaction feeds: every one (a sensor), or those of
/// one key (the fleet analyser, whose events arrive partitioned by client
/// IP and, apart, by credential: `crate::fleet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every detector.
    All,
    /// The per-IP ones: `request_flood`, `error_rate`,
    /// `success_then_failure`, `honeypot`.
    ClientIp,
    /// `credential_spread`.
    Credential,
}

/// All detectors.
#[derive(Debug)]
pub struct Detectors {
    per_ip: per_ip::PerIp,
    sequence: sequence::Sequence,
    spread: spread::Spread,
    honeypot: honeypot::Honeypot,
    lifecycle: lifecycle::Lifecycle,
    counters: DetectCounters,
    raised: Vec<Alert>,
    /// Subjects a detector still sees, without a new alert.
    touched: Vec<(Detector, Subject, u64)>,
    /// Transitions ready: resolutions found by the clock.
    ready: Vec<Alert>,
}

impl Detectors {
    /// Detectors with `config`.
    ///
    /// # Errors
    /// A decoy route that is not a valid glob.
    pub fn new(config: DetectConfig) -> Result<Self, DecoyError> {
        Ok(Self {
            honeypot: honeypot::Honeypot::new(&config.decoys)?,
            per_ip: per_ip::PerIp::new(
                config.window_ns,
                config.flood,
                config.errors,
                config.max_ips,
            ),
            sequence: sequence::Sequence::new(config.sequence, config.max_ips),
            spread: spread::Spread::new(config.spread, config.max_credentials),
            lifecycle: lifecycle::Lifecycle::new(
                config.resolve_after_ns,
                config.runbook_url,
                config.max_ips,
            ),
            counters: DetectCounters::default(),
            raised: Vec::new(),
            touched: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// Applies new settings without losing state (windows, counts, IP and
    /// credential tables, open episodes): thresholds, windows of the
    /// sliding detectors, decoys, the resolve time and the runbook take
    /// effect at once;
    /// the per-IP window length and the table sizes need a restart.
    ///
    /// # Errors
    /// A bad decoy route; nothing is changed then.
    pub fn reconfigure(&mut self, c: DetectConfig) -> Result<(), DecoyError> {
        self.honeypot = honeypot::Honeypot::new(&c.decoys)?;
        self.per_ip.set(c.flood, c.errors);
        self.sequence.set(c.sequence);
        self.spread.set(c.spread);
        self.lifecycle.set(c.resolve_after_ns, c.runbook_url);
        Ok(())
    }

    /// Runs every detector on `tx`, one request (its legs joined: see
    /// [`crate::join`]); returns the transitions it caused.
    pub fn transaction(&mut self, tx: &Transaction) -> impl Iterator<Item = Alert> + '_ {
        self.transaction_in(tx, Scope::All)
    }

    /// [`Detectors::transaction`] for the detectors of `scope` only.
    pub fn transaction_in(
        &mut self,
        tx: &Transaction,
        scope: Scope,
    ) -> impl Iterator<Item = Alert> + '_ {
        self.counters.transactions += 1;
        if tx.confirmed {
            if scope != Scope::Credential {
                self.per_ip.transaction(tx, &mut self.raised);
                self.sequence.transaction(tx, &mut self.raised);
                self.honeypot.transaction(tx, &mut self.raised);
            }
            if scope != Scope::ClientIp {
                self.spread
                    .transaction(tx, &mut self.raised, &mut self.touched);
            }
        } else {
            self.counters.unconfirmed += 1;
        }
        for (detector, subject, time_ns) in self.touched.drain(..) {
            self.lifecycle.touch(detector, subject, time_ns);
        }
        let (lifecycle, counters) = (&mut self.lifecycle, &mut self.counters);
        self.raised.drain(..).filter_map(move |alert| {
            let Some(alert) = lifecycle.raise(alert) else {
                counters.suppressed += 1;
                return None;
            };
            count(counters, &alert);
            Some(alert)
        })
    }

    /// Event time moved to `now_ns` without a transaction; closes windows
    /// that have ended, so the gauges follow the clock when traffic stops.
    pub fn advance(&mut self, now_ns: u64) {
        self.per_ip.advance(now_ns);
        self.lifecycle.advance(now_ns, &mut self.ready);
    }

    /// Ends the open windows; with `resolve` (end of input, not a live
    /// stop) also every open episode.
    pub fn finish(&mut self, resolve: bool) {
        self.per_ip.finish();
        if resolve {
            self.lifecycle.resolve_all(&mut self.ready);
        }
    }

    /// Whether the clock made transitions not yet taken by
    /// [`Detectors::transitions`].
    pub fn has_transitions(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Transitions the clock made (resolutions), counted, in order.
    pub fn transitions(&mut self) -> Vec<Alert> {
        let ready = std::mem::take(&mut self.ready);
        for alert in &ready {
            count(&mut self.counters, alert);
        }
        ready
    }

    /// The gauges now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            window: self.per_ip.last_window().cloned(),
            credentials: self.spread.top(),
            tracked_credentials: self.spread.len() as u64,
            active: {
                let open = self.lifecycle.active();
                Detector::ALL
                    .iter()
                    .map(|&detector| {
                        let severity = detector.severity();
                        ActiveAlerts {
                            detector,
                            severity,
                            open: open.get(&(detector, severity)).copied().unwrap_or(0),
                        }
                    })
                    .collect()
            },
        }
    }

    /// Bytes the detectors' tables hold, estimated from their sizes (they
    /// are bounded by entries: `max_ips`, `max_credentials`).
    pub fn memory(&self) -> u64 {
        self.per_ip.memory()
            + self.sequence.memory()
            + self.spread.memory()
            + self.lifecycle.memory()
    }

    /// The counters so far.
    pub fn counters(&self) -> DetectCounters {
        let mut c = self.counters.clone();
        c.late = self.per_ip.late;
        c.evictions = self.per_ip.evictions()
            + self.sequence.evictions()
            + self.spread.evictions()
            + self.lifecycle.evictions();
        c
    }
}

/// Counts a transition going out.
fn count(counters: &mut DetectCounters, alert: &Alert) {
    *counters.transitions.entry(alert.state).or_default() += 1;
    if alert.state == State::Firing {
        *counters.alerts.entry(alert.detector).or_default() += 1;
    }
}

//! `success_then_failure`: per IP, a run of successes followed by a spike
//! of failures (reconnaissance, then an attack).
//!
//! A spike starts at an IP's first failure (4xx/5xx) and lasts
//! `failure_window`; the alert fires when, within it, the IP has at least
//! `min_failures` failures making at least `min_failure_ratio` of its
//! requests, and in the `success_window` before the spike began at least
//! `min_successes` successes (2xx/3xx). A 429 (the gateway throttling the
//! client, RFC 6585 section 4) is neither: a rate-limited client is
//! `error_rate`'s business, not reconnaissance. Per IP the state is the times of its
//! last `min_successes` successes and the open spike's counts (about 80
//! bytes with the defaults).

use std::net::IpAddr;

use smallvec::SmallVec;

use super::{
    alert::{Alert, Detector, Evidence, Subject, Window},
    bounded::{BoundedMap, Weighted},
};
use crate::http::Transaction;

/// `success_then_failure` settings.
#[derive(Clone, Debug)]
pub struct SequenceConfig {
    /// Successes needed before the failures.
    pub min_successes: u64,
    /// How far back before the spike successes count, ns (default 60 s).
    pub success_window_ns: u64,
    /// Failures needed in the spike.
    pub min_failures: u64,
    /// Share of the spike's requests that must be failures.
    pub min_failure_ratio: f64,
    /// How long a spike lasts from its first failure, ns (default 15 s).
    pub failure_window_ns: u64,
}

#[derive(Debug)]
struct Spike {
    start_ns: u64,
    requests: u64,
    failures: u64,
    /// Successes in the success window before `start_ns`.
    successes: u64,
}

#[derive(Debug, Default)]
struct IpState {
    /// Times of the latest successes, oldest first, at most `min_successes`
    /// (inline up to the default 5: a new client costs no allocation).
    successes: SmallVec<[u64; 5]>,
    spike: Option<Spike>,
    last_ns: u64,
}

/// Idle IPs go first; an IP with successes on record matters more.
impl Weighted for IpState {
    fn weight(&self) -> u64 {
        self.last_ns >> 20 | (self.successes.len() as u64) << 60
    }
}

/// The detector.
#[derive(Debug)]
pub struct Sequence {
    config: SequenceConfig,
    ips: BoundedMap<IpAddr, IpState>,
}

impl Sequence {
    /// Empty state for at most `max_ips` IPs.
    pub fn new(config: SequenceConfig, max_ips: usize) -> Self {
        Self {
            config,
            ips: BoundedMap::new(max_ips),
        }
    }

    /// New thresholds, from the next transaction on; state is kept.
    pub fn set(&mut self, config: SequenceConfig) {
        self.config = config;
    }

    /// Bytes the table holds (success times, up to `min_successes`).
    pub fn memory(&self) -> u64 {
        self.ips.memory(self.config.min_successes as usize * 8)
    }

    /// IPs evicted so far.
    pub fn evictions(&self) -> u64 {
        self.ips.evictions()
    }

    /// Counts `tx`; pushes an alert when the sequence completes.
    pub fn transaction(&mut self, tx: &Transaction, out: &mut Vec<Alert>) {
        let Some(status) = tx.outcome_status().filter(|&s| s != 429) else {
            return;
        };
        let (success, failure) = ((200..400).contains(&status), status >= 400);
        let c = &self.config;
        let now = tx.time_ns;
        let ip = self.ips.entry(tx.client_ip, IpState::default);
        ip.last_ns = ip.last_ns.max(now);
        if ip
            .spike
            .as_ref()
            .is_some_and(|s| now >= s.start_ns.saturating_add(c.failure_window_ns))
        {
            ip.spike = None;
        }
        if failure && ip.spike.is_none() {
            let since = now.saturating_sub(c.success_window_ns);
            let successes = ip
                .successes
                .iter()
                .filter(|&&t| t >= since && t <= now)
                .count();
            ip.spike = Some(Spike {
                start_ns: now,
                requests: 0,
                failures: 0,
                successes: successes as u64,
            });
        }
        if success {
            if ip.successes.len() as u64 >= c.min_successes.max(1) {
                ip.successes.remove(0);
            }
            ip.successes.push(now);
        }
        let Some(spike) = &mut ip.spike else { return };
        spike.requests += 1;
        spike.failures += u64::from(failure);
        let fired = failure
            && spike.successes >= c.min_successes
            && spike.failures >= c.min_failures
            && spike.failures as f64 >= c.min_failure_ratio * spike.requests as f64;
        if !fired {
            return;
        }
        let window = Window {
            start: spike.start_ns.saturating_sub(c.success_window_ns),
            end: now,
        };
        let counts = [
            ("successes", spike.successes),
            ("failures", spike.failures),
            ("requests", spike.requests),
        ]
        .into();
        out.push(Alert::new(
            Detector::SuccessThenFailure,
            Subject::Ip(tx.client_ip),
            now,
            window,
            counts,
            vec![Evidence::from(tx)],
        ));
        ip.spike = None;
        ip.successes.clear();
    }
}

//! `success_then_failure`: per IP, a run of successes followed by a spike
//! of failures (reconnaissance, then an attack).
//!
//! Per IP the state is a ring of 5-second buckets covering the success
//! lookback plus the failure window (75 s, 15 buckets, 90 bytes by default):
//! the alert fires when, in the last `failure_window`, the IP has at least
//! `min_failures` failures (4xx/5xx) making at least `min_failure_ratio` of
//! its requests, and in the `success_window` before that at least
//! `min_successes` successes (2xx/3xx).

use std::net::IpAddr;

use super::{
    alert::{Alert, Detector, Evidence, Severity, Window},
    bounded::BoundedMap,
};
use crate::http::Transaction;

/// Bucket width, ns.
const BUCKET_NS: u64 = 5_000_000_000;

/// `success_then_failure` settings; windows are whole multiples of 5 s.
#[derive(Clone, Debug)]
pub struct SequenceConfig {
    /// Successes needed before the failures.
    pub min_successes: u64,
    /// How far back successes count, ns (default 60 s).
    pub success_window_ns: u64,
    /// Failures needed in the failure window.
    pub min_failures: u64,
    /// Share of the window's requests that must be failures.
    pub min_failure_ratio: f64,
    /// Failure window, ns (default 15 s).
    pub failure_window_ns: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    successes: u16,
    failures: u16,
    requests: u16,
}

#[derive(Debug)]
struct Ring {
    /// Bucket index of the newest bucket.
    newest: u64,
    buckets: Box<[Bucket]>,
}

impl Ring {
    fn advance(&mut self, index: u64) {
        let n = self.buckets.len() as u64;
        let steps = index.saturating_sub(self.newest).min(n);
        for i in 1..=steps {
            self.buckets[((self.newest + i) % n) as usize] = Bucket::default();
        }
        self.newest = self.newest.max(index);
    }

    /// Sums over buckets `newest - to + 1 ..= newest - from`.
    fn sum(&self, from: u64, to: u64, f: impl Fn(&Bucket) -> u16) -> u64 {
        let n = self.buckets.len() as u64;
        (from..to)
            .filter(|&back| back <= self.newest)
            .map(|back| u64::from(f(&self.buckets[((self.newest - back) % n) as usize])))
            .sum()
    }
}

/// The detector.
#[derive(Debug)]
pub struct Sequence {
    config: SequenceConfig,
    failure_buckets: u64,
    ips: BoundedMap<IpAddr, Ring>,
}

impl Sequence {
    /// Empty state for at most `max_ips` IPs.
    pub fn new(config: SequenceConfig, max_ips: usize) -> Self {
        let failure_buckets = (config.failure_window_ns / BUCKET_NS).max(1);
        Self {
            config,
            failure_buckets,
            ips: BoundedMap::new(max_ips),
        }
    }

    /// IPs evicted so far.
    pub fn evictions(&self) -> u64 {
        self.ips.evictions()
    }

    /// Counts `tx`; pushes an alert when the sequence completes.
    pub fn transaction(&mut self, tx: &Transaction, out: &mut Vec<Alert>) {
        let Some(status) = tx.status else { return };
        let (success, failure) = ((200..400).contains(&status), status >= 400);
        let index = tx.time_ns / BUCKET_NS;
        let len = (self.failure_buckets + self.config.success_window_ns / BUCKET_NS) as usize;
        let ring = self.ips.entry(
            tx.client_ip,
            || Ring {
                newest: index,
                buckets: vec![Bucket::default(); len].into(),
            },
            |r| r.newest,
        );
        ring.advance(index);
        if index < ring.newest.saturating_sub(len as u64 - 1) {
            return; // older than the ring: too late to matter
        }
        let b = &mut ring.buckets[(index % len as u64) as usize];
        b.requests = b.requests.saturating_add(1);
        b.successes = b.successes.saturating_add(u16::from(success));
        b.failures = b.failures.saturating_add(u16::from(failure));
        if !failure {
            return;
        }
        let fw = self.failure_buckets;
        let failures = ring.sum(0, fw, |b| b.failures);
        let requests = ring.sum(0, fw, |b| b.requests);
        let successes = ring.sum(fw, len as u64, |b| b.successes);
        let c = &self.config;
        if failures >= c.min_failures
            && failures as f64 >= c.min_failure_ratio * requests as f64
            && successes >= c.min_successes
        {
            let end = (ring.newest + 1) * BUCKET_NS;
            out.push(Alert {
                time_ns: tx.time_ns,
                detector: Detector::SuccessThenFailure,
                severity: Severity::High,
                client_ip: Some(tx.client_ip),
                credential: None,
                principal: None,
                ips: Vec::new(),
                window: Window {
                    start: end.saturating_sub(len as u64 * BUCKET_NS),
                    end,
                },
                counts: [
                    ("successes", successes),
                    ("failures", failures),
                    ("requests", requests),
                ]
                .into(),
                evidence: vec![Evidence::from(tx)],
                suppressed: 0,
            });
            ring.buckets.fill(Bucket::default());
        }
    }
}

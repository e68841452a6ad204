//! The per-IP window detectors: `request_flood` and `error_rate`.
//!
//! Both count a client IP's requests in tumbling event-time windows (15 s by
//! default, as the reference SIEM). A flood is an IP over its request budget;
//! an unusual error count is one above an absolute floor and ratio AND far
//! above the population's baseline: the median, over the last hour of
//! windows, of each window's 99th-percentile per-IP error count. IPs already
//! flagged by `error_rate` are left out of that percentile: in a small
//! population the 99th percentile is the maximum, and one scanner would
//! otherwise raise the bar for the next.

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
};

use serde::Serialize;

use super::{
    alert::{Alert, Detector, Evidence, MAX_EVIDENCE, Subject, Window},
    bounded::{BoundedMap, Weighted},
};
use crate::http::Transaction;

/// `request_flood` settings.
#[derive(Clone, Debug)]
pub struct FloodConfig {
    /// Requests one IP may send in a window before it is a flood.
    pub budget: u64,
}

/// `error_rate` settings.
#[derive(Clone, Debug)]
pub struct ErrorConfig {
    /// Fewest errors (4xx/5xx) in a window for an alert.
    pub min_errors: u64,
    /// Smallest share of the IP's requests that must be errors.
    pub min_ratio: f64,
    /// How far above the population baseline the errors must be.
    pub baseline_factor: f64,
    /// Windows of history the baseline covers (240 x 15 s = 1 h).
    pub baseline_windows: usize,
}

/// Error classes counted per IP (`counts` keys of `error_rate` alerts).
const CLASSES: [&str; 5] = [
    "auth_failures",
    "not_found",
    "rate_limited",
    "server_errors",
    "other_4xx",
];

fn class(status: u16) -> Option<usize> {
    match status {
        401 | 403 => Some(0),
        404 => Some(1),
        429 => Some(2),
        500..=599 => Some(3),
        400..=499 => Some(4),
        _ => None,
    }
}

/// One IP's counts in the current window.
#[derive(Debug, Default)]
struct IpWindow {
    requests: u64,
    errors: [u64; CLASSES.len()],
    flood_alerted: bool,
    errors_alerted: bool,
    /// The IP's latest requests, kept once it is busy enough to matter
    /// (boxed: the one-shot IPs of a flood hold 8 bytes, not 32).
    #[expect(clippy::box_collection, reason = "8 bytes in every IP's entry, not 32")]
    recent: Option<Box<VecDeque<Evidence>>>,
}

impl IpWindow {
    fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// The IPs with the fewest requests in the window go first.
impl Weighted for IpWindow {
    fn weight(&self) -> u64 {
        self.requests
    }
}

/// How long after its end a window stays open for transactions in flight.
pub const GRACE_NS: u64 = 5_000_000_000;

/// Requests an IP sends in a window before its requests are kept as evidence
/// (one-shot IPs of a spoofed flood never cost an allocation).
const EVIDENCE_FROM: u64 = 8;

/// The per-IP window state and the two detectors on it.
#[derive(Debug)]
pub struct PerIp {
    window_ns: u64,
    flood: FloodConfig,
    errors: ErrorConfig,
    /// Index (start / window) of the current window.
    current: Option<u64>,
    ips: BoundedMap<IpAddr, IpWindow>,
    /// 99th-percentile per-IP error counts of past windows, newest last.
    p99_history: VecDeque<u64>,
    /// Transactions older than the current window, counted into it.
    pub late: u64,
    /// Requests and new IPs in the current window.
    requests: u64,
    distinct: u64,
    /// The last closed window's gauges.
    last: Option<WindowGauges>,
    /// Errors an IP needs in the current window ([`PerIp::error_threshold`]).
    threshold: u64,
}

/// What the reference SIEM's gauges showed for one closed window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowGauges {
    /// The window.
    pub window: Window,
    /// Requests in it (`aps_siem_requests`).
    pub requests: u64,
    /// Distinct client IPs (`aps_siem_ip`); an upper bound once the table
    /// evicted, since an evicted IP that comes back counts again.
    pub distinct_ips: u64,
    /// The busiest IPs and their requests, most first (`aps_siem_ip_topn`).
    pub top_ips: Vec<(IpAddr, u64)>,
    /// Requests of every other IP (`aps_siem_ip_topn{client_ip="other"}`).
    pub other_requests: u64,
    /// The IPs with most errors and their error counts, most first.
    pub top_error_ips: Vec<(IpAddr, u64)>,
    /// IPs held in the table at the close (`aps_siem_ip_buffer`).
    pub buffered_ips: u64,
}

/// IPs in `top_ips` (the reference's top 10) and `top_error_ips` (top 15).
const TOP_IPS: usize = 10;
const TOP_ERROR_IPS: usize = 15;

/// The `n` largest `(key, value)` pairs with a non-zero value, largest first
/// (ties by key, so the order is stable).
fn top<K: Ord + Copy>(items: impl Iterator<Item = (K, u64)>, n: usize) -> Vec<(K, u64)> {
    let mut all: Vec<_> = items.filter(|(_, v)| *v > 0).collect();
    all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

impl PerIp {
    /// Empty state; at most `max_ips` IPs per window.
    pub fn new(window_ns: u64, flood: FloodConfig, errors: ErrorConfig, max_ips: usize) -> Self {
        let mut this = Self {
            window_ns,
            flood,
            errors,
            current: None,
            ips: BoundedMap::new(max_ips),
            p99_history: VecDeque::new(),
            late: 0,
            requests: 0,
            distinct: 0,
            last: None,
            threshold: 0,
        };
        this.threshold = this.error_threshold();
        this
    }

    /// New thresholds, from the next transaction on; counts are kept.
    pub fn set(&mut self, flood: FloodConfig, errors: ErrorConfig) {
        (self.flood, self.errors) = (flood, errors);
        self.threshold = self.error_threshold();
    }

    /// Bytes the window table holds (the few IPs busy enough to keep
    /// evidence hold a little more; not counted).
    pub fn memory(&self) -> u64 {
        self.ips.memory(0)
    }

    /// IPs evicted from the window table so far.
    pub fn evictions(&self) -> u64 {
        self.ips.evictions()
    }

    /// Counts `tx` against its client IP; pushes any alert it raises.
    pub fn transaction(&mut self, tx: &Transaction, out: &mut Vec<Alert>) {
        let index = tx.time_ns / self.window_ns;
        match self.current {
            Some(c) if index > c => {
                self.close();
                self.current = Some(index);
            }
            Some(c) if index < c => self.late += 1,
            Some(_) => {}
            None => self.current = Some(index),
        }
        let window = self.window(self.current.unwrap_or(index));
        let threshold = self.threshold;
        let ip = self.ips.entry(tx.client_ip, IpWindow::default);
        ip.requests += 1;
        self.requests += 1;
        self.distinct += u64::from(ip.requests == 1);
        if let Some(c) = tx.outcome_status().and_then(class) {
            ip.errors[c] += 1;
        }
        if ip.requests >= EVIDENCE_FROM {
            let recent = ip.recent.get_or_insert_default();
            if recent.len() == MAX_EVIDENCE {
                recent.rotate_left(1);
                if let Some(oldest) = recent.back_mut() {
                    oldest.assign(tx);
                }
            } else {
                recent.push_back(Evidence::from(tx));
            }
        }
        let mut raised = Vec::new();
        if !ip.flood_alerted && ip.requests > self.flood.budget {
            ip.flood_alerted = true;
            let counts = [("requests", ip.requests), ("budget", self.flood.budget)].into();
            raised.push((Detector::RequestFlood, counts));
        }
        let errors = ip.errors();
        let ratio = errors as f64 / ip.requests as f64;
        if !ip.errors_alerted && errors >= threshold && ratio >= self.errors.min_ratio {
            ip.errors_alerted = true;
            let mut counts: BTreeMap<_, _> = CLASSES.iter().copied().zip(ip.errors).collect();
            counts.extend([
                ("errors", errors),
                ("requests", ip.requests),
                ("threshold", threshold),
            ]);
            raised.push((Detector::ErrorRate, counts));
        }
        for (detector, counts) in raised {
            let evidence = ip.recent.iter().flat_map(|r| r.iter()).cloned().collect();
            let subject = Subject::Ip(tx.client_ip);
            out.push(Alert::new(
                detector, subject, tx.time_ns, window, counts, evidence,
            ));
        }
    }

    /// Event time moved to `now_ns` without a transaction (idle traffic):
    /// closes the current window once it ended [`GRACE_NS`] ago, leaving
    /// time for transactions still in flight (a transaction's time is its
    /// request's start, known only when its response ends).
    pub fn advance(&mut self, now_ns: u64) {
        let index = now_ns.saturating_sub(GRACE_NS) / self.window_ns;
        if self.current.is_some_and(|c| index > c) {
            self.close();
            self.current = Some(index);
        }
    }

    /// Ends the current window (end of input).
    pub fn finish(&mut self) {
        self.close();
    }

    /// Window number `index`, in event time (saturating: a crafted
    /// timestamp near `u64::MAX` must not wrap).
    fn window(&self, index: u64) -> Window {
        let start = index.saturating_mul(self.window_ns);
        Window {
            start,
            end: start.saturating_add(self.window_ns),
        }
    }

    /// Errors an IP needs in a window: the floor, or the baseline times
    /// the factor if higher. Computed once per window, at the close of the
    /// one before.
    fn error_threshold(&self) -> u64 {
        let mut past: Vec<u64> = self.p99_history.iter().copied().collect();
        let baseline = if past.is_empty() {
            0
        } else {
            let mid = past.len() / 2;
            *past.select_nth_unstable(mid).1
        };
        self.errors
            .min_errors
            .max((baseline as f64 * self.errors.baseline_factor).ceil() as u64)
    }

    /// The gauges of the last closed window.
    pub fn last_window(&self) -> Option<&WindowGauges> {
        self.last.as_ref()
    }

    fn close(&mut self) {
        if let Some(index) = self.current {
            let top_ips = top(self.ips.iter().map(|(ip, w)| (*ip, w.requests)), TOP_IPS);
            let shown: u64 = top_ips.iter().map(|(_, n)| n).sum();
            self.last = Some(WindowGauges {
                window: self.window(index),
                requests: self.requests,
                distinct_ips: self.distinct,
                other_requests: self.requests - shown,
                top_ips,
                top_error_ips: top(
                    self.ips.iter().map(|(ip, w)| (*ip, w.errors())),
                    TOP_ERROR_IPS,
                ),
                buffered_ips: self.ips.len() as u64,
            });
        }
        (self.requests, self.distinct) = (0, 0);
        let mut errors: Vec<u64> = self
            .ips
            .iter()
            .filter(|(_, w)| !w.errors_alerted)
            .map(|(_, w)| w.errors())
            .collect();
        if !errors.is_empty() {
            let at = (errors.len() * 99 / 100).min(errors.len() - 1);
            let p99 = *errors.select_nth_unstable(at).1;
            self.p99_history.push_back(p99);
            if self.p99_history.len() > self.errors.baseline_windows {
                self.p99_history.pop_front();
            }
        }
        self.threshold = self.error_threshold();
        self.ips.clear();
    }
}

//! The pipeline every source feeds: segments in, transactions and alerts
//! out.
//!
//! ```text
//! Segment -> FlowTable (reassembly) -> http::Conn (framing, pairing)
//!         -> Transaction -> Detectors -> Alert
//!                 \-> sinks           \-> sinks
//! ```
//!
//! Live capture and capture files call the same [`Pipeline::segment`]; time
//! is the segments' event time throughout.

use std::{cell::RefCell, rc::Rc};

use serde::Serialize;

use tracing::warn;

use crate::{
    capture::Segment,
    detect::{Alert, DecoyError, DetectConfig, DetectCounters, Detectors, Snapshot},
    flow::{FlowCounters, FlowLimits, FlowTable},
    http::{Conn, HttpContext, HttpCounters, HttpLimits, Transaction},
    identity::Resolver,
    sink::{
        JsonLines, SegmentLog, metrics,
        syslog::{Syslog, TargetCounters},
    },
};

/// How often idle flows are looked for, in event time (ns).
const EXPIRE_EVERY_NS: u64 = 1_000_000_000;

/// Where the pipeline's output goes.
#[derive(Default)]
pub struct Sinks {
    /// Every segment as a JSON line (debugging).
    pub segments: Option<SegmentLog>,
    /// Every transaction as a JSON line.
    pub transactions: Option<JsonLines>,
    /// Every alert as a JSON line.
    pub alerts: Option<JsonLines>,
    /// Log every alert (a `warn` line with its fields).
    pub log_alerts: bool,
    /// Per-transaction metrics (see [`crate::sink::metrics`]), when served.
    pub metrics: Option<metrics::TransactionMetrics>,
    /// Every alert to syslog.
    pub syslog: Option<Syslog>,
}

/// What the pipeline emits, for [`Pipeline::observe`].
#[derive(Clone, Copy, Debug)]
pub enum Output<'a> {
    /// A transaction.
    Transaction(&'a Transaction),
    /// An alert.
    Alert(&'a Alert),
}

/// A callback taking everything the pipeline emits.
type Observer = Box<dyn FnMut(Output<'_>)>;

/// Everything a bounded input produced, from [`Pipeline::collect`].
#[derive(Debug)]
pub struct Collected {
    /// Transactions, in emission order.
    pub transactions: Vec<Transaction>,
    /// Alerts, in the order raised.
    pub alerts: Vec<Alert>,
    /// Final counters.
    pub counters: PipelineCounters,
}

/// Counters of everything the pipeline did.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineCounters {
    /// Flow table and reassembly.
    pub flows: FlowCounters,
    /// HTTP framing and pairing.
    pub http: HttpCounters,
    /// Detectors.
    pub detect: DetectCounters,
    /// Syslog delivery, per target.
    pub syslog: Vec<TargetCounters>,
}

/// Consumes segments from any source.
pub struct Pipeline {
    flows: FlowTable<Conn>,
    http: HttpContext,
    detectors: Option<Detectors>,
    sinks: Sinks,
    /// Latest event time seen, ns since the epoch.
    now_ns: u64,
    next_expiry_ns: u64,
    /// Called with every transaction and alert (tests, tools).
    observer: Option<Observer>,
    /// Counts of syslog senders already stopped (reloads, shutdown).
    syslog_past: Vec<TargetCounters>,
}

impl Pipeline {
    /// A pipeline resolving identities with `resolver` and detecting with
    /// `detectors` (none: transactions only).
    pub fn new(
        resolver: Resolver,
        flow: FlowLimits,
        http: HttpLimits,
        detectors: Option<Detectors>,
        sinks: Sinks,
    ) -> Self {
        Self {
            flows: FlowTable::new(flow),
            http: HttpContext::new(resolver, http),
            detectors,
            sinks,
            now_ns: 0,
            next_expiry_ns: 0,
            observer: None,
            syslog_past: Vec::new(),
        }
    }

    /// Feeds a fresh pipeline (default limits and detectors, no sinks)
    /// through `feed`, ends every flow, and returns everything it emitted.
    /// For tests and tools that want a bounded input's output in memory.
    pub fn collect(resolver: Resolver, feed: impl FnOnce(&mut Pipeline)) -> Collected {
        let detectors = Detectors::new(DetectConfig::default()).ok();
        let sinks = Sinks::default();
        let mut p = Self::new(
            resolver,
            FlowLimits::default(),
            HttpLimits::default(),
            detectors,
            sinks,
        );
        let out = Rc::new(RefCell::new((Vec::new(), Vec::new())));
        let sink = Rc::clone(&out);
        p.observe(move |o| match o {
            Output::Transaction(tx) => sink.borrow_mut().0.push(tx.clone()),
            Output::Alert(a) => sink.borrow_mut().1.push(a.clone()),
        });
        feed(&mut p);
        p.finish();
        let counters = p.counters();
        drop(p);
        let (transactions, alerts) = Rc::try_unwrap(out)
            .map(RefCell::into_inner)
            .unwrap_or_default();
        Collected {
            transactions,
            alerts,
            counters,
        }
    }

    /// Calls `f` with every transaction and alert, after the sinks.
    pub fn observe(&mut self, f: impl FnMut(Output<'_>) + 'static) {
        self.observer = Some(Box::new(f));
    }

    /// Takes one segment.
    pub fn segment(&mut self, segment: &Segment<'_>) {
        if let Some(log) = &mut self.sinks.segments {
            log.write(segment);
        }
        self.flows.segment(segment, &mut self.http);
        self.advance(segment.time_ns);
        self.deliver();
    }

    /// Moves event time to `now_ns` without a segment (the live source calls
    /// this when traffic is idle), expiring idle flows.
    pub fn tick(&mut self, now_ns: u64) {
        self.advance(now_ns);
        self.deliver();
    }

    /// Ends every flow (end of input or shutdown) and flushes the sinks.
    pub fn finish(&mut self) {
        self.flows.finish(&mut self.http);
        self.deliver();
        if let Some(d) = &mut self.detectors {
            d.finish();
        }
        self.flush();
        if let Some(s) = self.sinks.syslog.take() {
            let counts = s.stop();
            self.retire(counts);
        }
    }

    /// New detector settings, keeping the detectors' state (see
    /// [`Detectors::reconfigure`]). Detectors cannot be switched on or off
    /// while running.
    ///
    /// # Errors
    /// A bad decoy route; the old settings stay.
    pub fn reconfigure(&mut self, detect: Option<DetectConfig>) -> Result<(), DecoyError> {
        match (&mut self.detectors, detect) {
            (Some(d), Some(c)) => d.reconfigure(c),
            _ => Ok(()),
        }
    }

    /// New outputs (SIGHUP with a changed config): the old syslog senders
    /// deliver what they hold first; the segment log stays.
    pub fn set_outputs(&mut self, mut sinks: Sinks) {
        if sinks.segments.is_none() {
            sinks.segments = self.sinks.segments.take();
        }
        self.flush();
        let old = std::mem::replace(&mut self.sinks, sinks);
        if let Some(s) = old.syslog {
            let counts = s.stop();
            self.retire(counts);
        }
    }

    /// Reopens the output files (SIGHUP, after log rotation).
    pub fn reopen(&mut self) {
        for sink in [&mut self.sinks.transactions, &mut self.sinks.alerts]
            .into_iter()
            .flatten()
        {
            sink.reopen();
        }
    }

    /// Flushes buffered sink output.
    pub fn flush(&mut self) {
        if let Some(log) = &mut self.sinks.segments {
            log.flush();
        }
        if let Some(log) = &mut self.sinks.transactions {
            log.flush();
        }
        if let Some(log) = &mut self.sinks.alerts {
            log.flush();
        }
    }

    /// Publishes the counters and gauges as metrics.
    pub fn publish_metrics(&self) {
        metrics::pipeline(&self.counters(), self.snapshot().as_ref());
    }

    /// The detectors' gauges now, if detectors run.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.detectors.as_ref().map(Detectors::snapshot)
    }

    /// The counters so far.
    pub fn counters(&self) -> PipelineCounters {
        PipelineCounters {
            flows: self.flows.counters().clone(),
            http: self.http.counters.clone(),
            detect: self
                .detectors
                .as_ref()
                .map(Detectors::counters)
                .unwrap_or_default(),
            syslog: {
                let mut all = self.syslog_past.clone();
                let now = self.sinks.syslog.as_ref().map(Syslog::counters);
                add(&mut all, now.unwrap_or_default());
                all
            },
        }
    }

    /// Keeps the counts of a stopped syslog sink.
    fn retire(&mut self, counts: Vec<TargetCounters>) {
        add(&mut self.syslog_past, counts);
    }

    fn advance(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        if let Some(d) = &mut self.detectors {
            d.advance(self.now_ns);
        }
        if self.now_ns >= self.next_expiry_ns {
            self.flows.expire(self.now_ns, &mut self.http);
            self.next_expiry_ns = self.now_ns + EXPIRE_EVERY_NS;
        }
    }

    fn deliver(&mut self) {
        for tx in self.http.out.drain(..) {
            if let Some(log) = &mut self.sinks.transactions {
                log.write(&tx);
            }
            if let Some(m) = &self.sinks.metrics {
                m.record(&tx);
            }
            if let Some(f) = &mut self.observer {
                f(Output::Transaction(&tx));
            }
            let Some(detectors) = &mut self.detectors else {
                continue;
            };
            for alert in detectors.transaction(&tx) {
                if let Some(log) = &mut self.sinks.alerts {
                    log.write(&alert);
                }
                if let Some(s) = &self.sinks.syslog {
                    s.send(&alert);
                }
                if self.sinks.log_alerts {
                    warn!("alert: {alert}");
                }
                if let Some(f) = &mut self.observer {
                    f(Output::Alert(&alert));
                }
            }
        }
    }
}

/// Adds `more` into `into`, target by target.
fn add(into: &mut Vec<TargetCounters>, more: Vec<TargetCounters>) {
    for m in more {
        match into.iter_mut().find(|c| c.target == m.target) {
            Some(c) => {
                c.sent += m.sent;
                c.overflow += m.overflow;
                c.undelivered += m.undelivered;
            }
            None => into.push(m),
        }
    }
}

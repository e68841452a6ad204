//! Sinks: where the pipeline's output goes.
//!
//! Every output implements [`Sink`]; the pipeline holds a [`Sinks`] list and
//! knows none of them by name. A sink must never block the pipeline: one
//! that talks to a network peer queues to its own thread or task and counts
//! what it cannot deliver ([`Delivery`]). Adding a sink is one file here
//! and one line where the command line assembles the list (`cli/mod.rs`).

mod alert_log;
mod collector;
mod json_lines;
pub mod metrics;
mod segment_log;
pub mod syslog;

use serde::Serialize;

pub use alert_log::AlertLog;
pub use collector::{Collector, Outputs};
pub use json_lines::{JsonLines, Records};
pub use segment_log::{SegmentLog, escape_payload, flags_string};

use crate::{capture::Segment, detect::Alert, http::Transaction};

/// One output of the pipeline. Every method has a do-nothing default, so a
/// sink implements only what it takes.
pub trait Sink {
    /// Whether [`Sink::segment`] wants every segment (checked once, when
    /// the list is built, so the per-segment path skips the others).
    fn takes_segments(&self) -> bool {
        false
    }
    /// A segment as the source delivered it, before reassembly.
    fn segment(&mut self, _segment: &Segment<'_>) {}
    /// A transaction, in emission order.
    fn transaction(&mut self, _tx: &Transaction) {}
    /// An alert, in the order raised.
    fn alert(&mut self, _alert: &Alert) {}
    /// Flushes what is buffered (called after each batch of input).
    fn flush(&mut self) {}
    /// Reopens files (SIGHUP, after log rotation moved them away).
    fn reopen(&mut self) {}
    /// Delivery counts so far, one entry per destination.
    fn delivery(&self) -> Vec<Delivery> {
        Vec::new()
    }
    /// Delivers what is queued (bounded by the sink's own drain timeout),
    /// stops and returns the final counts.
    fn stop(self: Box<Self>) -> Vec<Delivery> {
        self.delivery()
    }
}

/// Delivery counts of one destination of a sink (a syslog target, say).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The sink (`syslog`); metrics name it `siem_sensor_<sink>_records_total`.
    pub sink: &'static str,
    /// The destination, e.g. `udp:127.0.0.1:514`.
    pub target: String,
    /// Records delivered.
    pub sent: u64,
    /// Records dropped because the sink's queue was full.
    pub overflow: u64,
    /// Records that could not be delivered (receiver down at shutdown,
    /// refused, too large for the transport).
    pub undelivered: u64,
}

impl Delivery {
    /// Adds `other`'s counts (same sink and target) into this one.
    fn add(&mut self, other: &Delivery) {
        self.sent += other.sent;
        self.overflow += other.overflow;
        self.undelivered += other.undelivered;
    }
}

/// The pipeline's sinks, and the delivery counts of sinks already stopped
/// (replaced on SIGHUP), so counters never go backwards.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Box<dyn Sink>>,
    /// Indices of the sinks that take segments.
    segment_sinks: Vec<usize>,
    retired: Vec<Delivery>,
}

impl Sinks {
    /// A list of `sinks`, fed in order.
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        let mut this = Self::default();
        this.install(sinks);
        this
    }

    fn install(&mut self, sinks: Vec<Box<dyn Sink>>) {
        self.segment_sinks = (0..sinks.len())
            .filter(|&i| sinks[i].takes_segments())
            .collect();
        self.sinks = sinks;
    }

    /// Stops the current sinks (keeping their counts) and feeds `sinks`
    /// from now on.
    pub fn replace(&mut self, sinks: Vec<Box<dyn Sink>>) {
        self.stop();
        self.install(sinks);
    }

    /// Passes a segment to the sinks that take segments.
    pub fn segment(&mut self, segment: &Segment<'_>) {
        for &i in &self.segment_sinks {
            self.sinks[i].segment(segment);
        }
    }

    /// Passes a transaction to every sink.
    pub fn transaction(&mut self, tx: &Transaction) {
        for s in &mut self.sinks {
            s.transaction(tx);
        }
    }

    /// Passes an alert to every sink.
    pub fn alert(&mut self, alert: &Alert) {
        for s in &mut self.sinks {
            s.alert(alert);
        }
    }

    /// Flushes every sink.
    pub fn flush(&mut self) {
        for s in &mut self.sinks {
            s.flush();
        }
    }

    /// Reopens every sink's files.
    pub fn reopen(&mut self) {
        for s in &mut self.sinks {
            s.reopen();
        }
    }

    /// Stops every sink, keeping their final counts.
    pub fn stop(&mut self) {
        self.segment_sinks.clear();
        for s in std::mem::take(&mut self.sinks) {
            let counts = s.stop();
            merge(&mut self.retired, &counts);
        }
    }

    /// Delivery counts of every sink so far, stopped ones included, one
    /// entry per (sink, target).
    pub fn delivery(&self) -> Vec<Delivery> {
        let mut all = self.retired.clone();
        for s in &self.sinks {
            merge(&mut all, &s.delivery());
        }
        all
    }
}

/// Adds each of `more` into the entry of `into` with its sink and target.
fn merge(into: &mut Vec<Delivery>, more: &[Delivery]) {
    for m in more {
        match into
            .iter_mut()
            .find(|d| d.sink == m.sink && d.target == m.target)
        {
            Some(d) => d.add(m),
            None => into.push(m.clone()),
        }
    }
}

//! The [`Sink`] trait every output implements, and the delivery counts a
//! sink reports.

use std::any::Any;

use serde::Serialize;

use crate::{
    capture::Segment,
    detect::{Alert, BlockEvent},
    http::Transaction,
};

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
    /// A request the detectors count (its first record: not a late leg,
    /// not one of Kong's own requests), after its [`Sink::transaction`].
    fn counted(&mut self, _tx: &Transaction) {}
    /// An alert, in the order raised.
    fn alert(&mut self, _alert: &Alert) {}
    /// A kernel block started or ended (`--block`), in order.
    fn block_event(&mut self, _event: &BlockEvent) {}
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
    /// Takes over what `previous`, a sink this one replaces (SIGHUP), must
    /// not lose when it stops (the Alertmanager sink's firing episodes,
    /// which it goes on re-sending); called before `previous` stops, for
    /// every pair of old and new sinks.
    fn take_over(&mut self, _previous: &mut dyn Sink) {}
    /// This sink as [`Any`], for [`Sink::take_over`] to know its own kind.
    fn as_any(&mut self) -> Option<&mut dyn Any> {
        None
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
    /// Records dropped because the destination can never take them: too
    /// large for a record or for the transport (a datagram over the
    /// socket's limit), or one that broke every fresh connection.
    pub dropped: u64,
    /// Records still queued when the sink stopped while the destination
    /// refused the connection (a TLS receiver whose certificate does not
    /// verify).
    pub refused: u64,
    /// Records still queued when the sink stopped while the destination
    /// was down.
    pub undelivered: u64,
    /// Firing alerts a sink that re-sends them (Alertmanager) stopped
    /// re-sending to make room; `None` for sinks that re-send nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<u64>,
}

impl Delivery {
    /// Adds `other`'s counts (same sink and target) into this one.
    pub(super) fn add(&mut self, other: &Delivery) {
        self.sent += other.sent;
        self.overflow += other.overflow;
        self.dropped += other.dropped;
        self.refused += other.refused;
        self.undelivered += other.undelivered;
        if let Some(n) = other.forgotten {
            *self.forgotten.get_or_insert(0) += n;
        }
    }
}

//! The list of sinks a pipeline feeds.

use super::interface::{Delivery, Sink};
use crate::{
    capture::Segment,
    detect::{Alert, BlockEvent},
    http::Transaction,
};

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
    /// from now on; each new sink first takes over what an old one must
    /// not lose ([`Sink::take_over`]).
    pub fn replace(&mut self, mut sinks: Vec<Box<dyn Sink>>) {
        for new in &mut sinks {
            for old in &mut self.sinks {
                new.take_over(old.as_mut());
            }
        }
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

    /// Passes a request the detectors count to every sink.
    pub fn counted(&mut self, tx: &Transaction) {
        for s in &mut self.sinks {
            s.counted(tx);
        }
    }

    /// Passes an alert to every sink.
    pub fn alert(&mut self, alert: &Alert) {
        for s in &mut self.sinks {
            s.alert(alert);
        }
    }

    /// Passes a block record to every sink.
    pub fn block_event(&mut self, event: &BlockEvent) {
        for s in &mut self.sinks {
            s.block_event(event);
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

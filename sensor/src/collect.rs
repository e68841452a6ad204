//! A bounded input through a fresh pipeline, its output kept in memory: for
//! tests and tools (the fuzz harness, the replay property test).

use crate::{
    detect::{Alert, DetectConfig, Detectors},
    flow::FlowLimits,
    http::{HttpLimits, Transaction},
    identity::Resolver,
    pipeline::{Pipeline, PipelineCounters},
    sink::{Collector, Sinks},
};

/// Everything a bounded input produced.
#[derive(Debug)]
pub struct Collected {
    /// Transactions, in emission order.
    pub transactions: Vec<Transaction>,
    /// Alerts, in the order raised.
    pub alerts: Vec<Alert>,
    /// Final counters.
    pub counters: PipelineCounters,
}

/// Feeds a fresh pipeline (default limits and detectors, a [`Collector`]
/// as its only sink) through `feed`, ends every flow, and returns
/// everything it emitted with the final counters.
pub fn collect(resolver: Resolver, feed: impl FnOnce(&mut Pipeline)) -> Collected {
    let detectors = Detectors::new(DetectConfig::default()).ok();
    let (collector, outputs) = Collector::new();
    let mut p = Pipeline::new(
        resolver,
        FlowLimits::default(),
        HttpLimits::default(),
        detectors,
        Sinks::new(vec![Box::new(collector)]),
    );
    feed(&mut p);
    p.finish(true);
    let counters = p.counters();
    drop(p);
    let outputs = outputs.take();
    Collected {
        transactions: outputs.transactions,
        alerts: outputs.alerts,
        counters,
    }
}

//! The pipeline every source feeds: segments in, transactions and alerts
//! out to the sinks.
//!
//! ```text
//! Segment -> FlowTable (reassembly) -> http::Connection (framing, pairing)
//!         -> Transaction (one per leg) -> Joiner (one per request)
//!         -> Detectors -> Alert
//!   \-> sinks          \-> sinks
//! ```
//!
//! Live capture and capture files call the same [`Pipeline::segment`]; time
//! is the segments' event time throughout. The pipeline knows no source
//! and no sink by name: sources call it, and it hands its output to a
//! [`Sinks`] list.

use serde::Serialize;

use crate::{
    capture::{Segment, Trim},
    detect::{Alert, BlockEvent, DecoyError, DetectConfig, DetectCounters, Detectors, Snapshot},
    flow::{FlowCounters, FlowLimits, FlowTable},
    http::{Connection, HttpContext, HttpCounters, HttpLimits, Transaction},
    identity::Resolver,
    join::{JoinConfig, JoinCounters, Joiner},
    sink::{Delivery, Sink, Sinks},
};

/// How often idle flows are looked for, in event time (ns).
const EXPIRE_EVERY_NS: u64 = 1_000_000_000;

/// Counters of everything the pipeline did.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineCounters {
    /// Flow table and reassembly.
    pub flows: FlowCounters,
    /// HTTP framing and pairing.
    pub http: HttpCounters,
    /// The join of the legs.
    pub join: JoinCounters,
    /// Detectors.
    pub detect: DetectCounters,
    /// Sink delivery, per sink and destination.
    pub sinks: Vec<Delivery>,
    /// Bytes the state holds now, by part, and the budget.
    pub memory: Memory,
}

/// Bytes the pipeline's state holds (estimates), against its budget.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Memory {
    /// Flows, held segments, buffered heads and waiting requests.
    pub flows: u64,
    /// The detectors' tables.
    pub detectors: u64,
    /// Legs waiting for their partner.
    pub join: u64,
    /// The budget ([`FlowLimits::memory_budget`]).
    pub budget: u64,
}

/// Decides what to do about an alert before the sinks see it (the block
/// policy, `crate::block`): may set [`Alert::response`] and returns the
/// block records its decision made, which the sinks get after the alert.
pub trait Responder: Send {
    /// `alert` was raised by the request `tx` (its legs joined).
    fn respond(&mut self, tx: &Transaction, alert: &mut Alert) -> Vec<BlockEvent>;
}

/// Consumes segments from any source.
pub struct Pipeline {
    flows: FlowTable<Connection>,
    http: HttpContext,
    joiner: Joiner,
    detectors: Option<Detectors>,
    sinks: Sinks,
    /// The block policy, when `--block` is on or dry-run.
    responder: Option<Box<dyn Responder>>,
    /// Latest event time seen, ns since the epoch.
    now_ns: u64,
    next_expiry_ns: u64,
    /// See [`FlowLimits::memory_budget`].
    memory_budget: u64,
}

impl Pipeline {
    /// A pipeline resolving identities with `resolver`, detecting with
    /// `detectors` (none: transactions only) and writing to `sinks`.
    pub fn new(
        resolver: Resolver,
        flow: FlowLimits,
        http: HttpLimits,
        detectors: Option<Detectors>,
        sinks: Sinks,
    ) -> Self {
        let join = JoinConfig {
            topology: resolver.topology().clone(),
            ..JoinConfig::default()
        };
        Self {
            memory_budget: flow.memory_budget,
            flows: FlowTable::new(flow),
            joiner: Joiner::new(join),
            http: HttpContext::new(resolver, http),
            detectors,
            sinks,
            responder: None,
            now_ns: 0,
            next_expiry_ns: 0,
        }
    }

    /// Takes one segment.
    pub fn segment(&mut self, segment: &Segment<'_>) {
        self.sinks.segment(segment);
        self.flows.segment(segment, &mut self.http);
        self.advance(segment.time_ns);
        self.keep_within_budget();
        self.deliver();
    }

    /// Bytes the pipeline's state holds now (flows, buffers, detector
    /// tables), estimated; see [`FlowLimits::memory_budget`].
    pub fn memory(&self) -> u64 {
        self.flows.memory() + self.others()
    }

    /// Bytes of the state shedding flows cannot free: the detector tables
    /// and the legs waiting to be joined.
    fn others(&self) -> u64 {
        self.detectors.as_ref().map_or(0, Detectors::memory) + self.joiner.memory()
    }

    /// Keeps the state within half the memory budget (the rest is the
    /// process's own: code, the allocator's fragmentation as buffers come
    /// and go, the rings' pages): past it, sheds flow state down to
    /// three eighths, so shedding, which sorts the flows, runs rarely.
    fn keep_within_budget(&mut self) {
        let tables = self.others();
        if self.flows.memory() + tables > self.memory_budget / 2 {
            let target = self.memory_budget / 8 * 3;
            self.flows.shed(target, tables, &mut self.http);
        }
    }

    /// Moves event time to `now_ns` without a segment (the live source calls
    /// this when traffic is idle), expiring idle flows.
    pub fn tick(&mut self, now_ns: u64) {
        self.advance(now_ns);
        self.deliver();
    }

    /// Ends every flow (end of input or shutdown), then stops the sinks,
    /// which deliver what they hold. `end_of_input` (replay) also resolves
    /// every open alert episode; a live stop leaves them open (Alertmanager
    /// ends them itself if the sensor does not come back).
    pub fn finish(&mut self, end_of_input: bool) {
        self.flows.finish(&mut self.http);
        self.deliver();
        self.joiner.finish();
        self.deliver();
        if let Some(d) = &mut self.detectors {
            d.finish(end_of_input);
        }
        self.deliver();
        self.sinks.flush();
        self.sinks.stop();
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

    /// The client and upstream legs come from two sources read one after
    /// the other (the TLS tap's ring buffer and tc's): the join's client
    /// legs wait from the start ([`crate::join::JoinConfig::two_sources`]).
    pub fn legs_from_two_sources(&mut self) {
        self.joiner.two_sources();
    }

    /// Advise the live tap to leave out bodies with at least `min_bytes`
    /// still to come (`--trim-bodies`; 0: never), taken with
    /// [`Pipeline::take_trims`].
    pub fn trim_bodies(&mut self, min_bytes: u64) {
        self.flows.trim_bodies(min_bytes);
    }

    /// The body ranges for the live tap advised since the last call.
    pub fn take_trims(&mut self) -> Vec<Trim> {
        self.flows.take_trims()
    }

    /// Sets the responder that decides on alerts before the sinks see them.
    pub fn set_responder(&mut self, responder: Box<dyn Responder>) {
        self.responder = Some(responder);
    }

    /// Hands block records made outside an alert (expiry, removal by
    /// hand, stop) to the sinks.
    pub fn block_events(&mut self, events: &[BlockEvent]) {
        for e in events {
            self.sinks.block_event(e);
        }
    }

    /// New sinks (SIGHUP with a changed config): the old ones deliver what
    /// they hold first, and their counts are kept.
    pub fn set_sinks(&mut self, sinks: Vec<Box<dyn Sink>>) {
        self.sinks.flush();
        self.sinks.replace(sinks);
    }

    /// Reopens the sinks' files (SIGHUP, after log rotation).
    pub fn reopen(&mut self) {
        self.sinks.reopen();
    }

    /// Flushes buffered sink output.
    pub fn flush(&mut self) {
        self.sinks.flush();
    }

    /// The detectors' gauges now, if detectors run.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.detectors.as_ref().map(Detectors::snapshot)
    }

    /// The counters so far.
    pub fn counters(&self) -> PipelineCounters {
        PipelineCounters {
            flows: self.flows.counters(),
            http: self.http.counters.clone(),
            join: self.joiner.counters(),
            detect: self
                .detectors
                .as_ref()
                .map(Detectors::counters)
                .unwrap_or_default(),
            sinks: self.sinks.delivery(),
            memory: Memory {
                flows: self.flows.memory(),
                detectors: self.detectors.as_ref().map_or(0, Detectors::memory),
                join: self.joiner.memory(),
                budget: self.memory_budget,
            },
        }
    }

    fn advance(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.joiner.expire(self.now_ns);
        // Requests reach the detectors up to the join's wait late: their
        // clock lags by as much, so no window closes before they arrive.
        if let Some(d) = &mut self.detectors {
            d.advance(self.now_ns.saturating_sub(self.joiner.wait_ns()));
        }
        if self.now_ns >= self.next_expiry_ns {
            self.flows.expire(self.now_ns, &mut self.http);
            self.next_expiry_ns = self.now_ns.saturating_add(EXPIRE_EVERY_NS);
        }
    }

    /// Joins the legs emitted so far, hands each request ready to the
    /// sinks and, once per request, to the detectors, and the detectors'
    /// alerts to the sinks. Runs per segment, and most segments complete
    /// nothing: each stage is asked first, which costs less than an empty
    /// drain.
    fn deliver(&mut self) {
        if self.http.has_emitted() {
            for tx in self.http.drain() {
                self.joiner.push(tx, self.now_ns);
            }
        }
        if self.joiner.has_ready() {
            let mut detectors = self.detectors.as_mut();
            let mut responder = self.responder.as_deref_mut();
            for request in self.joiner.drain() {
                self.sinks.transaction(&request.tx);
                if !request.counted {
                    continue;
                }
                self.sinks.counted(&request.tx);
                if let Some(d) = detectors.as_deref_mut() {
                    detect(d, responder.as_deref_mut(), &mut self.sinks, &request.tx);
                }
            }
        }
        self.deliver_transitions();
    }

    /// Hands the detectors' clock-made transitions to the sinks.
    fn deliver_transitions(&mut self) {
        if let Some(detectors) = &mut self.detectors
            && detectors.has_transitions()
        {
            for alert in detectors.transitions() {
                self.sinks.alert(&alert);
            }
        }
    }
}

/// Runs the detectors on one counted request and hands each alert, and the
/// block events the responder made of it, to the sinks.
fn detect(
    detectors: &mut Detectors,
    mut responder: Option<&mut (dyn Responder + 'static)>,
    sinks: &mut Sinks,
    tx: &Transaction,
) {
    for mut alert in detectors.transaction(tx) {
        let events = match responder.as_deref_mut() {
            Some(r) => r.respond(tx, &mut alert),
            None => Vec::new(),
        };
        sinks.alert(&alert);
        for e in &events {
            sinks.block_event(e);
        }
    }
}

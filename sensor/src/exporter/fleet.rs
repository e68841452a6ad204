//! The fleet analyser's metrics (`siem-sensor fleet`, served on its own
//! port): the detectors' counters and gauges as a sensor's, and the
//! fleet's own (the table in the module above).

use metrics::{counter, gauge};

use crate::{
    detect::Snapshot,
    fleet::{analysis::AnalysisCounters, claim::ClaimCounters},
    sink::Delivery,
};

/// What a fleet analyser publishes.
pub struct FleetMetrics<'a> {
    /// The analysis.
    pub analysis: &'a AnalysisCounters,
    /// The claims of alert transitions.
    pub claims: ClaimCounters,
    /// Messages replayed to rebuild the detectors.
    pub replayed: u64,
    /// The sinks' delivery counts.
    pub sinks: &'a [Delivery],
    /// The detectors' gauges.
    pub snapshot: &'a Snapshot,
    /// Bytes the state holds (detectors and node table).
    pub memory: u64,
}

/// Publishes a fleet analyser's counters and gauges.
pub fn fleet(m: &FleetMetrics<'_>) {
    let a = m.analysis;
    let taken = a.messages - a.malformed - a.too_many_nodes;
    for (result, n) in [
        ("taken", taken),
        ("malformed", a.malformed),
        ("too_many_nodes", a.too_many_nodes),
    ] {
        counter!("siem_sensor_fleet_messages_total", "result" => result).absolute(n);
    }
    for (node, c) in &a.nodes {
        counter!("siem_sensor_fleet_events_total", "node" => node.clone(), "family" => "ip")
            .absolute(c.requests);
        counter!("siem_sensor_fleet_events_total", "node" => node.clone(), "family" => "cred")
            .absolute(c.credential_requests);
        counter!("siem_sensor_fleet_heartbeats_total", "node" => node.clone())
            .absolute(c.heartbeats);
    }
    counter!("siem_sensor_fleet_late_events_total").absolute(a.merge.late);
    counter!("siem_sensor_fleet_forced_events_total").absolute(a.merge.forced);
    gauge!("siem_sensor_fleet_buffered_events").set(a.merge.buffered as f64);
    gauge!("siem_sensor_fleet_watermark_seconds").set(a.watermark_ns as f64 / 1e9);
    counter!("siem_sensor_fleet_replayed_total").absolute(m.replayed);
    for (result, n) in [
        ("claimed", m.claims.claimed),
        ("already_raised", m.claims.already_raised),
        ("unclaimed", m.claims.unclaimed),
    ] {
        counter!("siem_sensor_fleet_claims_total", "result" => result).absolute(n);
    }
    gauge!("siem_sensor_state_bytes", "part" => "detectors").set(m.memory as f64);
    super::detection(&a.detect);
    super::deliveries(m.sinks);
    super::gauges(Some(m.snapshot));
}

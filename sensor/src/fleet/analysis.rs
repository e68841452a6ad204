//! The fleet analyser's core, without the network: messages from the
//! partitions in, merged into event time (`watermark`), run through the
//! same detectors as a sensor's, alerts out naming the nodes involved.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    event::{Event, Message, valid_node},
    nodes::Nodes,
    subject::{Family, Partition, credential_partition},
    watermark::{Merge, MergeCounters},
};
use crate::detect::{
    Alert, DecoyError, DetectConfig, DetectCounters, Detectors, Scope, Snapshot, Subject,
};

/// How the merge waits for the nodes.
#[derive(Clone, Copy, Debug)]
pub struct MergeConfig {
    /// How long after a node's clock its events may still arrive in order, ns.
    pub lateness_ns: u64,
    /// A node this far behind the newest clock no longer holds the
    /// watermark back, ns.
    pub node_timeout_ns: u64,
    /// Most events held for the watermark.
    pub max_buffered: usize,
}

/// One node's messages.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct NodeCounters {
    /// Request events on the client-IP partitions.
    pub requests: u64,
    /// Request events on the credential partitions.
    pub credential_requests: u64,
    /// Heartbeats.
    pub heartbeats: u64,
}

/// What the analysis did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AnalysisCounters {
    /// Messages taken.
    pub messages: u64,
    /// Messages that are not a valid event or heartbeat (bad JSON, a bad
    /// node name, a credential event without a credential of its
    /// partition): dropped.
    pub malformed: u64,
    /// Messages from nodes past the table's limit: dropped.
    pub too_many_nodes: u64,
    /// Per node (by name).
    pub nodes: BTreeMap<String, NodeCounters>,
    /// The merge into event time.
    pub merge: MergeCounters,
    /// The watermark, ns since the epoch.
    pub watermark_ns: u64,
    /// The detectors.
    pub detect: DetectCounters,
}

/// The analysis of the partitions one instance owns.
pub struct Analysis {
    detectors: Detectors,
    merge: Merge<(Partition, u32, Event<'static>)>,
    nodes: Nodes,
    counters: AnalysisCounters,
    released: Vec<(Partition, u32, Event<'static>)>,
}

impl Analysis {
    /// Detectors with `detect`, merging as `merge` says.
    ///
    /// # Errors
    /// A bad decoy route.
    pub fn new(detect: DetectConfig, merge: MergeConfig) -> Result<Self, DecoyError> {
        let subjects = detect.max_ips + detect.max_credentials;
        Ok(Self {
            detectors: Detectors::new(detect)?,
            merge: Merge::new(merge.lateness_ns, merge.node_timeout_ns, merge.max_buffered),
            nodes: Nodes::new(subjects),
            counters: AnalysisCounters::default(),
            released: Vec::new(),
        })
    }

    /// `partitions` are about to be replayed from the stream (a rebuild):
    /// each holds the watermark at its replay's position until
    /// [`Analysis::caught_up`], so the replays merge in event time.
    pub fn rebuilding(&mut self, partitions: impl IntoIterator<Item = Partition>) {
        for p in partitions {
            self.merge.hold(p.index());
        }
    }

    /// `partition`'s replay is over: the live messages go on from there.
    pub fn caught_up(&mut self, partition: Partition) {
        self.merge.unhold(partition.index());
    }

    /// Takes one message of `partition` replayed by its rebuild.
    pub fn replayed(&mut self, partition: Partition, payload: &[u8]) {
        if let Some(time_ns) = self.take(partition, payload) {
            self.merge.hold_at(partition.index(), time_ns);
        }
    }

    /// Takes one message of `partition`.
    pub fn message(&mut self, partition: Partition, payload: &[u8]) {
        self.take(partition, payload);
    }

    /// Takes one message; its time if it was valid.
    fn take(&mut self, partition: Partition, payload: &[u8]) -> Option<u64> {
        self.counters.messages += 1;
        let Some(message) = serde_json::from_slice::<Message<'static>>(payload)
            .ok()
            .filter(|m| valid_node(m.node()))
        else {
            self.counters.malformed += 1;
            return None;
        };
        let time_ns = message.time_ns();
        let Some(node) = self.nodes.intern(message.node()) else {
            self.counters.too_many_nodes += 1;
            return None;
        };
        let counts = self
            .counters
            .nodes
            .entry(message.node().to_owned())
            .or_default();
        match message {
            Message::Heartbeat(h) => {
                counts.heartbeats += 1;
                self.merge.clock(partition.index(), node, h.time_ns);
            }
            Message::Request(mut event) => {
                if partition.family == Family::Credential {
                    let mine: Vec<_> = event
                        .counted_credentials()
                        .iter()
                        .copied()
                        .filter(|&fp| credential_partition(fp) == partition)
                        .collect();
                    if mine.is_empty() {
                        self.counters.malformed += 1;
                        return None;
                    }
                    counts.credential_requests += 1;
                    event.credentials = mine.into();
                    event.kong_credential = None;
                } else {
                    counts.requests += 1;
                }
                self.merge.push(
                    partition.index(),
                    node,
                    event.time_ns,
                    (partition, node, event),
                );
            }
        }
        Some(time_ns)
    }

    /// Runs the detectors on every event the watermark passed, in time
    /// order, then moves their clock to the watermark; pushes the alert
    /// transitions to `out`, each naming its nodes.
    pub fn release(&mut self, out: &mut Vec<Alert>) {
        let first = out.len();
        self.merge.release(&mut self.released);
        for (partition, node, event) in self.released.drain(..) {
            let tx = event.transaction();
            let scope = match partition.family {
                Family::Ip => {
                    self.nodes.saw(Subject::Ip(tx.client_ip), node, tx.time_ns);
                    Scope::ClientIp
                }
                Family::Credential => {
                    for &fp in &tx.credentials {
                        self.nodes.saw(Subject::Credential(fp), node, tx.time_ns);
                    }
                    Scope::Credential
                }
            };
            out.extend(self.detectors.transaction_in(&tx, scope));
        }
        self.detectors.advance(self.merge.watermark());
        out.extend(self.detectors.transitions());
        for alert in &mut out[first..] {
            self.nodes.name_on(alert);
        }
    }

    /// Ends the open windows (a stop: episodes stay open).
    pub fn finish(&mut self) {
        self.detectors.finish(false);
    }

    /// The detectors' gauges.
    pub fn snapshot(&self) -> Snapshot {
        self.detectors.snapshot()
    }

    /// Bytes the state holds, estimated: the detectors' tables and the
    /// node table (the merge's buffer is bounded by events).
    pub fn memory(&self) -> u64 {
        self.detectors.memory() + self.nodes.memory()
    }

    /// The counters so far.
    pub fn counters(&self) -> AnalysisCounters {
        AnalysisCounters {
            merge: self.merge.counters(),
            watermark_ns: self.merge.watermark(),
            detect: self.detectors.counters(),
            ..self.counters.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::State, fleet::subject::ip_partition, http::Transaction, identity::FingerprintKey,
    };

    const S: u64 = 1_000_000_000;

    fn analysis() -> Analysis {
        let merge = MergeConfig {
            lateness_ns: S,
            node_timeout_ns: 30 * S,
            max_buffered: 100_000,
        };
        Analysis::new(DetectConfig::default(), merge).unwrap()
    }

    fn request(a: &mut Analysis, partition: Partition, node: &str, tx: &Transaction) {
        let m = Message::Request(Event::new(node, tx));
        a.message(partition, &serde_json::to_vec(&m).unwrap());
    }

    fn beat(a: &mut Analysis, node: &str, time_ns: u64) {
        for p in Partition::all() {
            let m = Message::Heartbeat(super::super::event::Heartbeat {
                node: node.into(),
                time_ns,
            });
            a.message(p, &serde_json::to_vec(&m).unwrap());
        }
    }

    #[test]
    fn a_flood_split_over_two_nodes_is_one_alert_naming_both() {
        let mut a = analysis();
        let ip = "10.1.2.3";
        let p = ip_partition(ip.parse().unwrap());
        let start = 1_800_000_000 * S; // a window boundary (15 s)
        for i in 0..400u64 {
            for node in ["gw-1", "gw-2"] {
                let tx = Transaction::sample(ip, start + i * 1_000_000, 200);
                request(&mut a, p, node, &tx);
            }
        }
        let mut alerts = Vec::new();
        a.release(&mut alerts);
        assert!(alerts.is_empty(), "held until both clocks pass");
        beat(&mut a, "gw-1", start + 5 * S);
        a.release(&mut alerts);
        assert!(alerts.is_empty(), "gw-2 holds the watermark back");
        beat(&mut a, "gw-2", start + 5 * S);
        a.release(&mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!(
            (alert.detector.as_str(), alert.state),
            ("request_flood", State::Firing)
        );
        assert_eq!(alert.nodes, ["gw-1", "gw-2"]);
        let c = a.counters();
        assert_eq!(c.nodes["gw-1"].requests, 400);
        assert_eq!(c.detect.transactions, 800);
        a.message(p, b"{not json");
        a.message(p, br#"{"type":"heartbeat","node":"bad name","time_ns":1}"#);
        assert_eq!(a.counters().malformed, 2);
    }

    #[test]
    fn a_rebuild_raises_the_same_alert_whatever_the_arrival_order() {
        let ip = "10.1.2.3";
        let p = ip_partition(ip.parse().unwrap());
        let start = 1_800_000_000 * S;
        let sent: Vec<(&str, Transaction)> = (0..400u64)
            .flat_map(|i| {
                ["gw-1", "gw-2"].map(|n| {
                    let t = start + i * 1_000_000 + u64::from(n == "gw-2") * 500_000;
                    (n, Transaction::sample(ip, t, 200))
                })
            })
            .collect();
        let mut live = analysis();
        for (node, tx) in &sent {
            request(&mut live, p, node, tx);
        }
        beat(&mut live, "gw-1", start + 5 * S);
        beat(&mut live, "gw-2", start + 5 * S);
        let mut first = Vec::new();
        live.release(&mut first);
        assert_eq!(first.len(), 1);

        // Restarted: the other partitions are live long before this one's
        // replay starts, and the replay has gw-2's events first.
        let mut again = analysis();
        again.rebuilding(Partition::all());
        for q in Partition::all().filter(|&q| q != p) {
            again.caught_up(q);
            for node in ["gw-1", "gw-2"] {
                let m = Message::Heartbeat(super::super::event::Heartbeat {
                    node: node.into(),
                    time_ns: start + 20 * S,
                });
                again.message(q, &serde_json::to_vec(&m).unwrap());
            }
        }
        let mut second = Vec::new();
        again.release(&mut second);
        assert!(second.is_empty());
        let mut order: Vec<_> = sent.iter().filter(|(n, _)| *n == "gw-2").collect();
        order.extend(sent.iter().filter(|(n, _)| *n == "gw-1"));
        for (node, tx) in order {
            let m = Message::Request(Event::new(node, tx));
            again.replayed(p, &serde_json::to_vec(&m).unwrap());
        }
        again.caught_up(p);
        for node in ["gw-1", "gw-2"] {
            let m = Message::Heartbeat(super::super::event::Heartbeat {
                node: node.into(),
                time_ns: start + 20 * S,
            });
            again.message(p, &serde_json::to_vec(&m).unwrap());
        }
        again.release(&mut second);
        assert_eq!(again.counters().merge.late, 0);
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!(
            (&second[0].id, second[0].time_ns),
            (&first[0].id, first[0].time_ns)
        );
    }

    #[test]
    fn a_key_from_two_addresses_on_each_node_spreads_fleet_wide() {
        let mut a = analysis();
        let fp = FingerprintKey::from_bytes([9; 32]).fingerprint(b"k");
        let p = credential_partition(fp);
        let t = 1_800_000_000 * S;
        for (i, (node, ip)) in [
            ("gw-1", "10.0.0.1"),
            ("gw-1", "10.0.0.2"),
            ("gw-2", "10.0.0.3"),
            ("gw-2", "10.0.0.4"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut tx = Transaction::sample(ip, t + i as u64 * S, 200);
            tx.credentials.push(fp);
            request(&mut a, p, node, &tx);
            // The same request on its IP partition feeds no spread.
            request(&mut a, ip_partition(tx.client_ip), node, &tx);
        }
        for node in ["gw-1", "gw-2"] {
            beat(&mut a, node, t + 10 * S);
        }
        let mut alerts = Vec::new();
        a.release(&mut alerts);
        let states: Vec<_> = alerts
            .iter()
            .map(|a| (a.detector.as_str(), a.state, a.ips.len(), a.nodes.clone()))
            .collect();
        let both = vec!["gw-1".to_string(), "gw-2".to_string()];
        assert_eq!(
            states,
            [
                ("credential_spread", State::Firing, 3, both.clone()),
                ("credential_spread", State::Updated, 4, both)
            ]
        );
    }
}

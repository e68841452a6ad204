//! Property: a capture replayed with duplicated and reordered segments yields
//! the same transactions as the capture in file order.
//!
//! Real captures from `../shared/pcaps/` are loaded once; proptest then
//! generates lists of perturbations of their segment order:
//!
//! - **duplicate**: a copy of a segment is inserted up to [`W`] positions
//!   after it, as a retransmission (or a tap seeing a frame twice) would be;
//! - **delay**: a segment is moved up to [`W`] positions later.
//!
//! Each perturbation must be one a network produces, or the property would
//! fail for the wrong reasons. So:
//!
//! - A copy does not pass the FIN or RST of its own connection. A sender
//!   retransmits only what is unacknowledged, before the FIN exchange
//!   completes; a copy arriving after the close is another case (the
//!   sensor cannot tell it from a connection joined mid-stream, and reports
//!   the request it carries).
//! - A delayed segment passes segments of other connections, and segments
//!   of its own connection and direction, but not those that overlap it in
//!   sequence space (passing a copy of its own bytes, a retransmission the
//!   capture already holds, changes which copy comes first, and so, rightly,
//!   the time the bytes carry), nor SYNs or RSTs (a SYN precedes everything
//!   of its direction; a segment overtaken by the RST ending its connection
//!   is not part of that connection any more). SYN and RST segments are
//!   never delayed.
//! - Nothing passes the other direction of its own connection: a response
//!   overtaking the request it answers, or data overtaking the ACKs that let
//!   the peer send it, is causality violated, not reordering.
//! - [`W`] is small: real reordering spans a few segments (a path change,
//!   parallel queues in a switch), well within the 64 segments a direction
//!   may hold (`FlowLimits::max_pending_segments`).
//!
//! Every delivered chunk carries its own segment's timestamp, so times must
//! survive the perturbations too: whole [`Transaction`]s are compared.
//! They are compared per connection, in emission order there (the request
//! order, which pipelining must keep): the interleaving of different
//! connections' transactions depends on which connection completes first,
//! and rightly changes when segments of two connections swap.
//!
//! The property fails when retransmitted bytes are not trimmed, when held
//! segments are not held, or when they are delivered with another
//! segment's time (each checked by hand on a mutated copy of `flow/`).
//! `PROPTEST_CASES=10000` runs a longer search.

mod support;

use std::net::{IpAddr, SocketAddr};

use proptest::{
    collection::vec,
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestRunner},
};
use sensor::{
    capture::{
        OwnedSegment,
        file::{Checksums, read_file},
    },
    flow::FlowLimits,
    http::{HttpLimits, Transaction},
    identity::{FingerprintKey, IdentityConfig, Resolver},
    pipeline::Pipeline,
    sink::{Collector, Sinks},
};
use sensor_ebpf::tcp_flags::{FIN, RST, SYN};
use support::pcaps;

/// Largest displacement of a perturbation, in segments.
const W: usize = 8;

/// What the perturbations need to know of a segment.
trait Perturb {
    fn conn(&self) -> (SocketAddr, SocketAddr);
    fn range(&self) -> (u32, u32);
    fn describe(&self, at: usize) -> String;
    fn copy_may_pass(&self, other: &Self) -> bool;
    fn may_pass(&self, other: &Self) -> bool;
}

impl Perturb for OwnedSegment {
    /// The connection, whichever way the segment goes.
    fn conn(&self) -> (SocketAddr, SocketAddr) {
        if self.src <= self.dst {
            (self.src, self.dst)
        } else {
            (self.dst, self.src)
        }
    }

    /// The payload's sequence range `[start, start + len)`.
    fn range(&self) -> (u32, u32) {
        let start = self.seq.wrapping_add(u32::from(self.flags & SYN != 0));
        (start, self.payload_len)
    }

    /// The segment at position `at` of the replay, for failure reports.
    fn describe(&self, at: usize) -> String {
        format!(
            "[{at}] {} -> {} flags {:#04x} seq {} len {} ({} captured) at {} ns",
            self.src,
            self.dst,
            self.flags,
            self.seq,
            self.payload_len,
            self.payload.len(),
            self.time_ns,
        )
    }

    /// Whether a retransmitted copy of `self` may pass `other`: anything
    /// but the FIN or RST of its own connection (see the module docs).
    fn copy_may_pass(&self, other: &Self) -> bool {
        self.conn() != other.conn() || other.flags & (FIN | RST) == 0
    }

    /// Whether `self`, delayed, may pass `other` (see the module docs).
    fn may_pass(&self, other: &Self) -> bool {
        if self.conn() != other.conn() {
            return true;
        }
        self.src == other.src && other.flags & (SYN | RST) == 0 && !overlap(self, other)
    }
}

/// Whether two segments of one direction carry some of the same bytes.
fn overlap(a: &OwnedSegment, b: &OwnedSegment) -> bool {
    let ((a0, alen), (b0, blen)) = (a.range(), b.range());
    let before = |x: u32, y: u32| (x.wrapping_sub(y) as i32) < 0;
    alen > 0 && blen > 0 && before(a0, b0.wrapping_add(blen)) && before(b0, a0.wrapping_add(alen))
}

/// One perturbation of the segment order.
#[derive(Clone, Debug)]
enum Op {
    /// Insert a copy of the segment at `at` after up to `by` following
    /// segments, stopping before the first it may not pass.
    Duplicate { at: Index, by: usize },
    /// Move the segment at `at` past up to `by` following segments, stopping
    /// before the first it may not pass.
    Delay { at: Index, by: usize },
}

/// Lists of 1 to `max` perturbations.
fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        (any::<Index>(), 0..=W).prop_map(|(at, by)| Op::Duplicate { at, by }),
        (any::<Index>(), 1..=W).prop_map(|(at, by)| Op::Delay { at, by }),
    ];
    vec(op, 1..=max)
}

/// The replay order after `ops`, as indices into `segs`, and what each
/// perturbation did (for failure reports).
fn perturb(segs: &[OwnedSegment], ops: &[Op]) -> (Vec<usize>, Vec<String>) {
    let mut order: Vec<usize> = (0..segs.len()).collect();
    let mut done = Vec::new();
    for op in ops {
        match *op {
            Op::Duplicate { at, by } => {
                let i = at.index(order.len());
                let s = &segs[order[i]];
                let passed = order[i + 1..]
                    .iter()
                    .take(by)
                    .take_while(|&&j| s.copy_may_pass(&segs[j]))
                    .count();
                done.push(format!("duplicate {} past {passed}", s.describe(i)));
                order.insert(i + 1 + passed, order[i]);
            }
            Op::Delay { at, by } => {
                let i = at.index(order.len());
                let s = &segs[order[i]];
                if s.flags & (SYN | RST) != 0 {
                    continue;
                }
                let passed = order[i + 1..]
                    .iter()
                    .take(by)
                    .take_while(|&&j| s.may_pass(&segs[j]))
                    .count();
                done.push(format!("delay {} past {passed}", s.describe(i)));
                order[i..=i + passed].rotate_left(1);
            }
        }
    }
    (order, done)
}

/// Every TCP segment of a capture, in file order.
fn load(file: &str) -> Option<Vec<OwnedSegment>> {
    let mut segs = Vec::new();
    read_file(&pcaps()?.join(file), false, Checksums::Auto, &mut |s| {
        segs.push(OwnedSegment::from(s));
    })
    .unwrap();
    Some(segs)
}

/// Replays `order` and returns the transactions grouped by connection, each
/// connection's in emission order.
fn replay<'a>(order: impl Iterator<Item = &'a OwnedSegment>) -> Vec<Transaction> {
    let resolver = Resolver::new(
        IdentityConfig::default(),
        FingerprintKey::from_bytes([1; 32]),
    );
    let (collector, out) = Collector::new();
    let mut p = Pipeline::new(
        resolver,
        FlowLimits::default(),
        HttpLimits::default(),
        None,
        Sinks::new(vec![Box::new(collector)]),
    );
    for seg in order {
        p.segment(&seg.as_segment());
    }
    p.finish(true);
    let mut txs = out.take().transactions;
    // Stable: keeps each connection's own order.
    txs.sort_by_key(conn_of);
    txs
}

fn conn_of(t: &Transaction) -> (IpAddr, u16, IpAddr, u16) {
    (t.client_ip, t.client_port, t.server_ip, t.server_port)
}

/// Checks the property on `file` for `cases` generated lists of up to
/// `max_ops` perturbations (`PROPTEST_CASES` overrides `cases`, for longer
/// runs).
fn check(file: &str, cases: u32, max_ops: usize) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let Some(segs) = load(file) else {
        return;
    };
    let expected = replay(segs.iter());
    assert!(!expected.is_empty(), "{file}: no transactions to compare");
    let config = Config {
        // Minimal failing cases are printed; no regression files in tests/.
        failure_persistence: None,
        ..Config::with_cases(cases)
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(max_ops), |ops| {
        let (order, done) = perturb(&segs, &ops);
        let got = replay(order.iter().map(|&i| &segs[i]));
        if let Some(i) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i))
        {
            return Err(TestCaseError::fail(format!(
                "after\n  {}\n{} transactions instead of {}; first difference at {i}:\n  \
                 expected {:?}\n  got      {:?}",
                done.join("\n  "),
                got.len(),
                expected.len(),
                expected.get(i),
                got.get(i),
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{file} ({} segments): {e}", segs.len());
    }
}

// Case counts: about 1 s per test in a debug build, 3 s for the file
// (replays of the small captures cost under 2 ms each, of example.pcap 20 ms).

#[test]
fn pipelined_requests_survive_reordering() {
    // 36 segments, 40 pipelined requests on one connection, 7 retransmissions.
    check(
        "OISF/suricata-verify/tests/http-protocol-nodup/input.pcap",
        1024,
        32,
    );
}

#[test]
fn parallel_flows_survive_reordering() {
    // 614 segments, 41 interleaved connections with one range request each.
    check(
        "OISF/suricata-verify/tests/http-range-multiflows/input.pcap",
        256,
        64,
    );
}

#[test]
fn webdav_survives_reordering() {
    // 92 segments, 16 WebDAV requests on separate connections.
    check("ntop/nDPI/tests/cfgs/default/pcap/webdav.pcap", 1024, 32);
}

#[test]
fn mixed_lan_traffic_survives_reordering() {
    // 4492 segments, 338 transactions over dozens of browser connections;
    // few cases, each with many perturbations.
    check(
        "seladb/PcapPlusPlus/Tests/Pcap++Test/PcapExamples/example.pcap",
        48,
        512,
    );
}

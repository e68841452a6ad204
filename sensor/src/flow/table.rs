//! The connection table: flows keyed by their 4-tuple, each with its two
//! reassembled streams and its analyzer.

use std::{collections::VecDeque, net::SocketAddr};

use hashbrown::HashMap;
use sensor_ebpf::tcp_flags::{ACK, RST, SYN};

use super::{
    analyzer::{Analyzer, Endpoint, FlowInfo},
    limits::{FlowCounters, FlowLimits},
    reassembly::{Chunk, Stream},
    trim::Trimmer,
};
use crate::capture::{Segment, Trim};

struct Flow<A> {
    info: FlowInfo,
    /// Reassembly of the bytes each endpoint sends, by [`Endpoint::index`].
    streams: [Stream; 2],
    analyzer: Counted<A>,
}

/// An analyzer and the heap bytes it holds as last counted in the table's
/// total: each change is counted by one [`Analyzer::memory`] call after
/// it, not one before and one after.
#[derive(Default)]
struct Counted<A> {
    analyzer: A,
    bytes: u64,
}

impl<A: Analyzer> Counted<A> {
    /// Runs `f` on the analyzer, then moves `total` by its memory's change.
    fn update(&mut self, total: &mut u64, f: impl FnOnce(&mut A)) {
        f(&mut self.analyzer);
        let now = self.analyzer.memory() as u64;
        *total = (*total + now).saturating_sub(self.bytes);
        self.bytes = now;
    }

    /// Takes what it holds out of `total` (the flow ends with it).
    fn release(&mut self, total: &mut u64) {
        *total = total.saturating_sub(std::mem::take(&mut self.bytes));
    }
}

/// The connection table.
pub struct FlowTable<A: Analyzer> {
    /// Boxed: the table's slots stay small (key and pointer), so a lookup
    /// among many flows touches little memory besides the flow it finds.
    flows: HashMap<Key, Box<Flow<A>>>,
    /// Connections closed by FIN or RST in the last [`TIME_WAIT_NS`], with
    /// their close time, oldest first in `closed_order`.
    closed: HashMap<Key, u64>,
    closed_order: VecDeque<(u64, Key)>,
    limits: FlowLimits,
    counters: FlowCounters,
    /// Heap bytes the analyzers hold now (see [`Analyzer::memory`]).
    analyzer_bytes: u64,
    /// No flow was last seen before this at the last expiry scan (flows
    /// are only ever seen later, new ones later still): until it is idle
    /// for the timeout, an expiry has nothing to find and skips the scan.
    oldest_seen_ns: u64,
    /// Body ranges for the live tap to leave out.
    trimmer: Trimmer,
}

/// The endpoints in order, and whether the flow is TLS plaintext (the TLS
/// tap's), kept apart from the packets of the same 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    first: SocketAddr,
    second: SocketAddr,
    tls: bool,
}

impl Key {
    /// The key of the flow `seg` belongs to, and which endpoint sent it.
    fn of(seg: &Segment<'_>) -> (Self, Endpoint) {
        let tls = seg.source.is_tls();
        if seg.src <= seg.dst {
            let key = Self {
                first: seg.src,
                second: seg.dst,
                tls,
            };
            (key, Endpoint::First)
        } else {
            let key = Self {
                first: seg.dst,
                second: seg.src,
                tls,
            };
            (key, Endpoint::Second)
        }
    }
}

/// Three words into the hasher where `SocketAddr`'s derived hash makes
/// about ten writes (discriminants, lengths, octets, ports): this hash is
/// computed for every segment. Equal keys write equal words (IPv6 flow
/// labels and scopes are left out; equality still compares them).
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        fn bits(ip: std::net::IpAddr) -> u128 {
            match ip {
                std::net::IpAddr::V4(v4) => u128::from(v4.to_bits()) | 1 << 64,
                std::net::IpAddr::V6(v6) => v6.to_bits(),
            }
        }
        state.write_u128(bits(self.first.ip()));
        state.write_u128(bits(self.second.ip()));
        let ports = u64::from(self.first.port()) << 32 | u64::from(self.second.port()) << 16;
        state.write_u64(ports | u64::from(self.tls));
    }
}

/// How long a closed connection's late segments are recognised and dropped:
/// Linux's TIME_WAIT (`TCP_TIMEWAIT_LEN`, 60 s). Without it, a retransmitted
/// request arriving after the FINs would start a new flow and a second
/// transaction.
const TIME_WAIT_NS: u64 = 60_000_000_000;

impl<A: Analyzer> FlowTable<A> {
    /// An empty table with `limits`.
    pub fn new(limits: FlowLimits) -> Self {
        Self {
            flows: HashMap::new(),
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            limits,
            counters: FlowCounters::default(),
            analyzer_bytes: 0,
            oldest_seen_ns: 0,
            trimmer: Trimmer::default(),
        }
    }

    /// Advise the live tap to leave out bodies with at least `min_bytes`
    /// still to come (0: never; see `Trimmer::after_segment`).
    pub fn trim_bodies(&mut self, min_bytes: u64) {
        self.trimmer = Trimmer::new(min_bytes);
    }

    /// The body ranges advised since the last call.
    pub fn take_trims(&mut self) -> Vec<Trim> {
        self.trimmer.take()
    }

    /// The counters so far.
    pub fn counters(&self) -> FlowCounters {
        FlowCounters {
            analyzer_bytes: self.analyzer_bytes,
            ..self.counters.clone()
        }
    }

    /// Memory the table holds, in bytes (an estimate from sizes and
    /// capacities): every flow's fixed part, held out-of-order bytes, what
    /// the analyzers buffer, and the TIME_WAIT entries.
    pub fn memory(&self) -> u64 {
        let fixed = (self.flows.len() * flow_bytes::<A>()) as u64;
        let closed = (self.closed_order.len() * 64) as u64;
        fixed + closed + self.counters.buffered_bytes + self.analyzer_bytes
    }

    /// Frees memory until the table holds at most `target` bytes (beside
    /// `other` bytes held elsewhere): first the buffers of the least
    /// recently seen flows (heads in progress, held segments), then, if
    /// that is not enough, those flows themselves. Counts what it shed.
    pub fn shed(&mut self, target: u64, other: u64, ctx: &mut A::Context) {
        let over = |t: &Self| t.memory() + other > target;
        let oldest = self.oldest_first(|_| true);
        for key in &oldest {
            if !over(self) {
                return;
            }
            let Some(flow) = self.flows.get_mut(key) else {
                continue;
            };
            let held = flow
                .streams
                .iter()
                .map(Stream::pending_bytes)
                .sum::<usize>();
            if held == 0 && flow.analyzer.bytes == 0 {
                continue;
            }
            self.counters.shed_flows += 1;
            let Flow {
                info,
                streams,
                analyzer,
                ..
            } = &mut **flow;
            let c = &mut self.counters;
            let bytes = &mut self.analyzer_bytes;
            for (from, stream) in [Endpoint::First, Endpoint::Second]
                .into_iter()
                .zip(streams.iter_mut())
            {
                stream.flush(c, &mut |chunk| {
                    deliver(analyzer, ctx, info, from, chunk, bytes)
                });
            }
            analyzer.update(bytes, |a| a.shed(ctx, info));
        }
        for key in oldest {
            if !over(self) {
                return;
            }
            self.counters.budget_evictions += 1;
            self.end(key, ctx, Ending::Evicted);
        }
    }

    /// Takes one segment from any source.
    pub fn segment(&mut self, seg: &Segment<'_>, ctx: &mut A::Context) {
        self.counters.segments += 1;
        let (key, from) = Key::of(seg);
        let opens = seg.flags & SYN != 0 && seg.flags & ACK == 0;
        if opens
            && self
                .flows
                .get(&key)
                .is_some_and(|f| f.streams[from.index()].is_new_syn(seg.seq))
        {
            self.end(key, ctx, Ending::Closed);
        }
        self.forget_closed(seg.time_ns);
        if opens {
            self.closed.remove(&key);
        }
        // One lookup for a known flow (nearly every segment).
        let done = if let Some(flow) = self.flows.get_mut(&key) {
            let (c, bytes) = (&mut self.counters, &mut self.analyzer_bytes);
            let done = feed(flow, seg, from, &self.limits, c, bytes, ctx);
            if !done {
                let Flow {
                    info,
                    streams,
                    analyzer,
                } = &mut **flow;
                let stream = &mut streams[from.index()];
                self.trimmer
                    .after_segment(seg, from, info, &analyzer.analyzer, stream, c);
            }
            done
        } else {
            if seg.flags & SYN == 0 && (seg.payload_len == 0 || self.closed.contains_key(&key)) {
                self.counters.segments_without_flow += 1;
                return;
            }
            self.make_room(ctx);
            self.counters.flows += 1;
            self.counters.active += 1;
            let mut flow = Box::new(Flow {
                info: FlowInfo::new([key.first, key.second], seg.flags & SYN == 0, seg.time_ns),
                streams: Default::default(),
                analyzer: Counted::default(),
            });
            self.oldest_seen_ns = self.oldest_seen_ns.min(seg.time_ns);
            let (c, bytes) = (&mut self.counters, &mut self.analyzer_bytes);
            let done = feed(&mut flow, seg, from, &self.limits, c, bytes, ctx);
            self.flows.insert(key, flow);
            done
        };
        if done {
            self.end(key, ctx, Ending::Closed);
        }
    }

    /// Expires flows idle since before `now_ns - idle_timeout` (event time).
    /// Scans the table only when its least recently seen flow may be due.
    pub fn expire(&mut self, now_ns: u64, ctx: &mut A::Context) {
        let deadline = now_ns.saturating_sub(self.limits.idle_timeout_ns);
        if self.oldest_seen_ns >= deadline {
            return;
        }
        for key in self.oldest_first(|f| f.info.last_ns < deadline) {
            self.end(key, ctx, Ending::Expired);
        }
        self.oldest_seen_ns = self
            .flows
            .values()
            .map(|f| f.info.last_ns)
            .min()
            .unwrap_or(now_ns);
    }

    /// Ends every flow (end of input or shutdown); they count as expired.
    pub fn finish(&mut self, ctx: &mut A::Context) {
        for key in self.oldest_first(|_| true) {
            self.end(key, ctx, Ending::Expired);
        }
    }

    /// Keys of the flows matching `which`, least recently seen first, so
    /// what they emit comes out in the same order on every run.
    fn oldest_first(&self, which: impl Fn(&Flow<A>) -> bool) -> Vec<Key> {
        let mut keys: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, f)| which(f))
            .map(|(k, f)| (f.info.last_ns, *k))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// Evicts the least recently seen eighth of the table when it is full.
    fn make_room(&mut self, ctx: &mut A::Context) {
        if self.flows.len() < self.limits.max_flows {
            return;
        }
        let n = (self.flows.len() / 8).max(1);
        for key in self.oldest_first(|_| true).into_iter().take(n) {
            self.end(key, ctx, Ending::Evicted);
        }
    }

    /// Drops TIME_WAIT entries older than [`TIME_WAIT_NS`] at `now_ns`, and
    /// the oldest past `max_flows` entries.
    fn forget_closed(&mut self, now_ns: u64) {
        while let Some(&(at, key)) = self.closed_order.front() {
            if at.saturating_add(TIME_WAIT_NS) >= now_ns
                && self.closed_order.len() <= self.limits.max_flows
            {
                return;
            }
            self.closed_order.pop_front();
            if self.closed.get(&key) == Some(&at) {
                self.closed.remove(&key);
            }
        }
    }

    fn end(&mut self, key: Key, ctx: &mut A::Context, how: Ending) {
        let Some(mut flow) = self.flows.remove(&key) else {
            return;
        };
        let c = &mut self.counters;
        match how {
            Ending::Closed => {
                c.closed += 1;
                self.closed.insert(key, flow.info.last_ns);
                self.closed_order.push_back((flow.info.last_ns, key));
            }
            Ending::Expired => c.expired += 1,
            Ending::Evicted => c.evicted += 1,
        }
        c.active -= 1;
        let Flow {
            info,
            streams,
            analyzer,
            ..
        } = &mut *flow;
        let bytes = &mut self.analyzer_bytes;
        for (from, stream) in [Endpoint::First, Endpoint::Second]
            .into_iter()
            .zip(streams.iter_mut())
        {
            stream.flush(c, &mut |chunk| {
                deliver(analyzer, ctx, info, from, chunk, bytes)
            });
            stream.release(c);
        }
        // Everything the analyzer holds goes with the flow.
        analyzer.release(bytes);
        analyzer.analyzer.close(ctx, info);
    }
}

/// Takes `seg`, sent by `from`, into `flow`: its acknowledgement, then its
/// payload, each delivering what it completes. True when the flow is done
/// (reset, or both sides finished).
fn feed<A: Analyzer>(
    flow: &mut Flow<A>,
    seg: &Segment<'_>,
    from: Endpoint,
    limits: &FlowLimits,
    c: &mut FlowCounters,
    bytes: &mut u64,
    ctx: &mut A::Context,
) -> bool {
    if seg.flags & SYN != 0 && flow.info.client.is_none() {
        let opens = seg.flags & ACK == 0;
        flow.info.client = Some(if opens { from } else { from.peer() });
    }
    flow.info.last_ns = flow.info.last_ns.max(seg.time_ns);
    let Flow {
        info,
        streams,
        analyzer,
        ..
    } = flow;
    let [first, second] = streams;
    let (this, peer) = match from {
        Endpoint::First => (first, second),
        Endpoint::Second => (second, first),
    };
    // Acknowledgements first: a segment's ACK may confirm the request
    // its own payload answers.
    if seg.flags & ACK != 0 {
        peer.acknowledged(seg.ack, c, &mut |chunk| {
            deliver(analyzer, ctx, info, from.peer(), chunk, bytes)
        });
        if let Some(n) = peer.acked() {
            info.acked[from.peer().index()] = n;
        }
        info.handshake |=
            this.opened() && peer.opened() && this.acked().is_some() && peer.acked().is_some();
    }
    this.segment(
        seg.time_ns,
        seg.seq,
        seg.flags,
        seg.payload_len,
        seg.payload,
        limits,
        c,
        &mut |chunk| deliver(analyzer, ctx, info, from, chunk, bytes),
    );
    if c.buffered_bytes > limits.max_buffered_bytes as u64 {
        c.pending_overflows += 1;
        this.flush(c, &mut |chunk| {
            deliver(analyzer, ctx, info, from, chunk, bytes)
        });
    }
    seg.flags & RST != 0 || (this.finished() && peer.finished())
}

/// Hands a chunk sent by `from` to the analyzer, counting its bytes as
/// delivered first and the analyzer's memory change after.
fn deliver<A: Analyzer>(
    analyzer: &mut Counted<A>,
    ctx: &mut A::Context,
    info: &mut FlowInfo,
    from: Endpoint,
    chunk: Chunk<'_>,
    analyzer_bytes: &mut u64,
) {
    info.delivered[from.index()] += chunk.data.len() as u64 + chunk.unknown;
    analyzer.update(analyzer_bytes, |a| a.chunk(ctx, info, from, chunk));
}

/// What one tracked flow costs beyond what it buffers: the boxed flow
/// (both streams and the analyzer) and its table slot with the hash
/// table's overhead. A hashbrown table holds up to 16/7 slots per entry
/// just after it grows (7/8 load factor, power-of-two buckets), and the
/// old table lives on while it rehashes: two slots per entry, plus the
/// control bytes.
pub fn flow_bytes<A>() -> usize {
    std::mem::size_of::<Flow<A>>() + 2 * (std::mem::size_of::<(Key, Box<Flow<A>>)>() + 1)
}

enum Ending {
    Closed,
    Expired,
    Evicted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Source;

    /// Records the bytes each flow delivered, at its close.
    #[derive(Default)]
    struct Bytes(u64);

    impl Analyzer for Bytes {
        type Context = Vec<u64>;
        fn chunk(&mut self, _: &mut Vec<u64>, _: &mut FlowInfo, _: Endpoint, chunk: Chunk<'_>) {
            self.0 += chunk.data.len() as u64 + chunk.unknown;
        }
        fn close(&mut self, closed: &mut Vec<u64>, _: &FlowInfo) {
            closed.push(self.0);
        }
        fn memory(&self) -> usize {
            0
        }
        fn shed(&mut self, _: &mut Vec<u64>, _: &FlowInfo) {}
    }

    fn seg(port: u16, time_s: u64, flags: u8, payload: &[u8]) -> Segment<'_> {
        Segment {
            time_ns: time_s * 1_000_000_000,
            src: SocketAddr::from(([10, 0, 0, 2], port)),
            dst: SocketAddr::from(([10, 0, 0, 1], 80)),
            seq: 1,
            ack: 0,
            flags,
            payload_len: payload.len() as u32,
            payload,
            source: Source::File,
        }
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_seen_eighth() {
        let limits = FlowLimits {
            max_flows: 16,
            ..FlowLimits::default()
        };
        let (mut table, mut closed) = (FlowTable::<Bytes>::new(limits), Vec::new());
        for port in 0..17 {
            table.segment(&seg(1000 + port, u64::from(port), ACK, b"x"), &mut closed);
        }
        let c = table.counters();
        assert_eq!((c.flows, c.evicted, c.active), (17, 2, 15));
        assert_eq!(closed, [1, 1]);
    }

    #[test]
    fn idle_flows_expire_in_event_time() {
        let (mut table, mut closed) = (FlowTable::<Bytes>::new(FlowLimits::default()), Vec::new());
        table.segment(&seg(1000, 0, ACK, b"old"), &mut closed);
        table.segment(&seg(1001, 100, ACK, b"new"), &mut closed);
        table.expire(121_000_000_000, &mut closed);
        assert_eq!((table.counters().expired, table.counters().active), (1, 1));
        assert_eq!(closed, [3]);
    }

    /// Holds what it was sent until a chunk ends a line.
    #[derive(Default)]
    struct Lines(Vec<u8>);

    impl Analyzer for Lines {
        type Context = ();
        fn chunk(&mut self, _: &mut (), _: &mut FlowInfo, _: Endpoint, chunk: Chunk<'_>) {
            self.0.extend_from_slice(chunk.data);
            if self.0.ends_with(b"\n") {
                self.0.clear();
            }
        }
        fn close(&mut self, _: &mut (), _: &FlowInfo) {}
        fn memory(&self) -> usize {
            self.0.len()
        }
        fn shed(&mut self, _: &mut (), _: &FlowInfo) {
            self.0.clear();
        }
    }

    #[test]
    fn analyzer_memory_is_counted_as_it_changes_and_leaves_with_its_flow() {
        let mut table = FlowTable::<Lines>::new(FlowLimits::default());
        let mut send = |port, seq, flags, payload: &[u8]| {
            table.segment(
                &Segment {
                    seq,
                    ..seg(port, 0, flags, payload)
                },
                &mut (),
            );
            table.counters().analyzer_bytes
        };
        assert_eq!(send(1000, 1, ACK, b"abc"), 3);
        assert_eq!(send(1001, 1, ACK, b"xy"), 5);
        assert_eq!(send(1000, 4, ACK, b"d\n"), 2);
        assert_eq!(send(1000, 6, ACK, b"ef"), 4);
        // A reset ends flow 1001 and what its analyzer held.
        assert_eq!(send(1001, 3, ACK | RST, b""), 2);
        // Shedding empties the one analyzer left holding bytes.
        table.shed(table.memory() - 1, 0, &mut ());
        let c = table.counters();
        assert_eq!((c.analyzer_bytes, c.shed_flows, c.active), (0, 1, 1));
    }

    #[test]
    fn segments_of_unknown_flows_without_payload_start_nothing() {
        let (mut table, mut closed) = (FlowTable::<Bytes>::new(FlowLimits::default()), Vec::new());
        table.segment(&seg(1000, 0, ACK, b""), &mut closed);
        table.segment(&seg(1000, 0, ACK | RST, b""), &mut closed);
        assert_eq!(table.counters().segments_without_flow, 2);
        assert_eq!(table.counters().flows, 0);
    }
}

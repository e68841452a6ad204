//! In-order reassembly of one direction of a TCP connection.
//!
//! Segments may carry only a prefix of their payload (the live tap copies the
//! first N bytes), so the stream is delivered as [`Chunk`]s: captured bytes
//! followed by a count of bytes that passed but were not captured or were
//! lost. Framing downstream advances by sequence arithmetic over both.

use super::limits::{FlowCounters, FlowLimits};

/// A piece of the byte stream, in order: `data` then `unknown` bytes whose
/// content is not known (not captured, or lost in a gap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Capture time of the segment the chunk comes from, ns since the epoch.
    pub time_ns: u64,
    /// Known bytes. When non-empty they start a segment, or its first new byte
    /// after a retransmitted overlap.
    pub data: &'a [u8],
    /// Bytes after `data` whose content is unknown.
    pub unknown: u64,
}

/// A segment that arrived ahead of a hole, kept until the hole fills.
#[derive(Debug)]
struct Pending {
    seq: u32,
    len: u32,
    time_ns: u64,
    data: Vec<u8>,
}

/// One direction's reassembly state.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the next byte to deliver; `None` before the first
    /// SYN or payload of this direction is seen.
    next_seq: Option<u32>,
    /// Sequence number just past the FIN, once a FIN is seen.
    fin_seq: Option<u32>,
    /// Initial sequence number, when the SYN was seen.
    isn: Option<u32>,
    /// Bytes of this direction the peer acknowledged, counted from the
    /// first byte after the SYN; known only once the SYN was seen.
    acked: Option<u64>,
    /// Out-of-order segments, sorted by `seq`.
    pending: Vec<Pending>,
    /// Captured bytes held in `pending`.
    pending_bytes: usize,
    /// The last segments delivered, to tell a retransmission carrying
    /// different bytes (an insertion attempt, or the gateway seeing one
    /// copy and the tap another) from an honest one.
    recent: [Delivered; 2],
    /// Sequence number just past the range the live tap was told to trim
    /// ([`Stream::trim`]): a hole before it is bytes left out on purpose.
    trim_until: Option<u32>,
}

/// A delivered segment's range and a hash of its captured bytes.
#[derive(Debug, Default, Clone, Copy)]
struct Delivered {
    seq: u32,
    captured: u32,
    hash: u64,
}

/// A hash of captured bytes (not cryptographic: a collision only hides a
/// difference, never invents one). Seeded once per process at random: the
/// sender picks both copies' bytes, and with a seed known to him he could
/// pick two that collide and hide the difference.
fn bytes_hash(data: &[u8]) -> u64 {
    use std::{hash::BuildHasher as _, sync::LazyLock};
    static SEED: LazyLock<foldhash::fast::FixedState> =
        LazyLock::new(|| foldhash::fast::FixedState::with_seed(fastrand::u64(..)));
    SEED.hash_one(data)
}

/// Signed distance from `b` to `a` in sequence space (RFC 9293 section 3.4).
fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl Stream {
    /// Captured bytes held out of order.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Marks the next `bytes` bytes (at most 2^30) as left out by the tap
    /// and returns their range `[from, until)` of sequence numbers; `None`
    /// while segments wait out of order (the range would not start at the
    /// next byte to deliver) or a range already covers the next byte.
    pub fn trim(&mut self, bytes: u64) -> Option<(u32, u32)> {
        let next = self.next_seq?;
        if !self.pending.is_empty() || self.trim_until.is_some_and(|u| seq_diff(u, next) > 0) {
            return None;
        }
        let until = next.wrapping_add(bytes.min(1 << 30) as u32);
        self.trim_until = Some(until);
        Some((next, until))
    }

    /// True when a SYN with initial sequence number `isn` starts a new
    /// connection on this tuple rather than retransmitting this one's SYN.
    pub fn is_new_syn(&self, isn: u32) -> bool {
        self.next_seq.is_some() && self.isn != Some(isn)
    }

    /// Whether this direction's SYN was seen.
    pub fn opened(&self) -> bool {
        self.isn.is_some()
    }

    /// Bytes of this direction the peer acknowledged (from the first byte
    /// after the SYN), once the SYN and an ACK of it were seen.
    pub fn acked(&self) -> Option<u64> {
        self.acked
    }

    /// True when every byte up to the FIN has been delivered.
    pub fn finished(&self) -> bool {
        matches!((self.next_seq, self.fin_seq), (Some(n), Some(f)) if n == f)
    }

    /// Takes one segment of this direction: `seq` of its first payload byte
    /// (for a SYN, the ISN), its full `payload_len`, and the captured prefix
    /// `payload`. Delivers every newly in-order chunk to `deliver`.
    /// Retransmitted bytes are trimmed and counted, never delivered twice.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        time_ns: u64,
        mut seq: u32,
        flags: u8,
        payload_len: u32,
        payload: &[u8],
        limits: &FlowLimits,
        counters: &mut FlowCounters,
        deliver: &mut impl FnMut(Chunk<'_>),
    ) {
        use sensor_ebpf::tcp_flags::{FIN, SYN};
        if flags & SYN != 0 {
            if self.next_seq.is_none() {
                self.isn = Some(seq);
                self.next_seq = Some(seq.wrapping_add(1));
            }
            seq = seq.wrapping_add(1);
        }
        if flags & FIN != 0 {
            self.fin_seq = Some(seq.wrapping_add(payload_len));
        }
        if payload_len == 0 {
            return;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let mut ahead = seq_diff(seq, next);
        if ahead > 0 && self.trimmed_hole(seq) {
            // The tap left these bytes out on purpose: a known hole.
            counters.trimmed_bytes += ahead as u64;
            deliver(Chunk {
                time_ns,
                data: &[],
                unknown: ahead as u64,
            });
            self.next_seq = Some(seq);
            ahead = 0;
        }
        if ahead > 0 {
            self.hold(time_ns, seq, payload_len, payload, limits, counters);
            self.force_if_over(limits, counters, deliver);
            return;
        }
        let overlap = (-ahead) as u64;
        self.compare(seq, payload, counters);
        if overlap >= u64::from(payload_len) {
            counters.retransmitted_bytes += u64::from(payload_len);
            return;
        }
        counters.retransmitted_bytes += overlap;
        emit(time_ns, payload_len, payload, overlap, deliver);
        self.remember(seq, payload);
        self.next_seq = Some(seq.wrapping_add(payload_len));
        self.drain(counters, deliver);
    }

    /// Whether the hole before a segment at `seq` lies within the trimmed
    /// range, with nothing held inside it.
    fn trimmed_hole(&self, seq: u32) -> bool {
        self.trim_until.is_some_and(|u| seq_diff(seq, u) <= 0)
            && self
                .pending
                .first()
                .is_none_or(|p| seq_diff(p.seq, seq) >= 0)
    }

    /// Linux keeps the first copy of bytes it accepted (the first copy
    /// wins here too): a later copy of the same range with other captured
    /// bytes is counted as `overlap_different_data` (Suricata's
    /// `stream.reassembly.overlap_different_data`). Only copies of a whole
    /// recent segment are compared.
    fn compare(&self, seq: u32, payload: &[u8], counters: &mut FlowCounters) {
        let earlier = self
            .recent
            .iter()
            .find(|d| d.seq == seq && d.captured > 0 && payload.len() >= d.captured as usize);
        if let Some(d) = earlier
            && bytes_hash(&payload[..d.captured as usize]) != d.hash
        {
            counters.overlap_different_data += 1;
        }
    }

    /// Notes a delivered segment for [`Stream::compare`].
    fn remember(&mut self, seq: u32, payload: &[u8]) {
        self.recent[1] = self.recent[0];
        self.recent[0] = Delivered {
            seq,
            captured: payload.len() as u32,
            hash: bytes_hash(payload),
        };
    }

    /// The peer acknowledged up to `ack`: bytes before it passed the tap even
    /// if the capture missed them. A hole below a held segment that the peer
    /// has acknowledged past will never fill, so it is skipped as a gap.
    pub fn acknowledged(
        &mut self,
        ack: u32,
        counters: &mut FlowCounters,
        deliver: &mut impl FnMut(Chunk<'_>),
    ) {
        if let Some(isn) = self.isn {
            // Within 2^31 of the first byte: a larger distance is an old or
            // forged ACK, not progress.
            let n = seq_diff(ack, isn.wrapping_add(1));
            if n >= 0 {
                let n = n as u64;
                self.acked = Some(self.acked.map_or(n, |a| a.max(n)));
            }
        }
        let Some(first) = self.pending.first() else {
            return;
        };
        if seq_diff(ack, first.seq.wrapping_add(first.len)) >= 0 {
            self.skip_hole(counters, deliver);
        }
    }

    /// Delivers everything held, skipping holes as gaps (connection end).
    pub fn flush(&mut self, counters: &mut FlowCounters, deliver: &mut impl FnMut(Chunk<'_>)) {
        while !self.pending.is_empty() {
            self.skip_hole(counters, deliver);
        }
    }

    fn hold(
        &mut self,
        time_ns: u64,
        seq: u32,
        len: u32,
        payload: &[u8],
        limits: &FlowLimits,
        counters: &mut FlowCounters,
    ) {
        let at = self.pending.partition_point(|p| seq_diff(p.seq, seq) < 0);
        if let Some(p) = self.pending.get(at)
            && p.seq == seq
            && p.len >= len
        {
            let n = p.data.len().min(payload.len());
            counters.overlap_different_data += u64::from(p.data[..n] != payload[..n]);
            counters.retransmitted_bytes += u64::from(len);
            return;
        }
        counters.out_of_order_segments += 1;
        let keep = payload.len().min(limits.max_segment_hold);
        self.pending_bytes += keep;
        counters.buffered_bytes += keep as u64;
        self.pending.insert(
            at,
            Pending {
                seq,
                len,
                time_ns,
                data: payload[..keep].to_vec(),
            },
        );
    }

    /// Past the per-stream caps, stop waiting for the hole.
    fn force_if_over(
        &mut self,
        limits: &FlowLimits,
        counters: &mut FlowCounters,
        deliver: &mut impl FnMut(Chunk<'_>),
    ) {
        while self.pending.len() > limits.max_pending_segments
            || self.pending_bytes > limits.max_pending_bytes
        {
            counters.pending_overflows += 1;
            self.skip_hole(counters, deliver);
        }
    }

    /// Declares the bytes before the first held segment lost, then delivers
    /// whatever became contiguous.
    fn skip_hole(&mut self, counters: &mut FlowCounters, deliver: &mut impl FnMut(Chunk<'_>)) {
        let (Some(next), Some(first)) = (self.next_seq, self.pending.first()) else {
            return;
        };
        let hole = seq_diff(first.seq, next);
        if hole > 0 {
            counters.gaps += 1;
            counters.gap_bytes += hole as u64;
            deliver(Chunk {
                time_ns: first.time_ns,
                data: &[],
                unknown: hole as u64,
            });
            self.next_seq = Some(first.seq);
        }
        self.drain(counters, deliver);
    }

    /// Delivers held segments that are now in order.
    fn drain(&mut self, counters: &mut FlowCounters, deliver: &mut impl FnMut(Chunk<'_>)) {
        while let (Some(next), Some(first)) = (self.next_seq, self.pending.first()) {
            let ahead = seq_diff(first.seq, next);
            if ahead > 0 {
                return;
            }
            let p = self.pending.remove(0);
            self.pending_bytes -= p.data.len();
            counters.buffered_bytes -= p.data.len() as u64;
            let overlap = (-ahead) as u64;
            if overlap >= u64::from(p.len) {
                counters.retransmitted_bytes += u64::from(p.len);
                continue;
            }
            counters.retransmitted_bytes += overlap;
            emit(p.time_ns, p.len, &p.data, overlap, deliver);
            self.remember(p.seq, &p.data);
            self.next_seq = Some(p.seq.wrapping_add(p.len));
        }
    }

    /// Releases held bytes from the global count (the flow is going away).
    pub fn release(&mut self, counters: &mut FlowCounters) {
        counters.buffered_bytes -= self.pending_bytes as u64;
        self.pending_bytes = 0;
        self.pending.clear();
    }
}

/// Delivers a segment's bytes after its first `skip` (already delivered).
fn emit(time_ns: u64, len: u32, captured: &[u8], skip: u64, deliver: &mut impl FnMut(Chunk<'_>)) {
    let end = captured.len().min(len as usize);
    let data = captured.get(skip as usize..end).unwrap_or(&[]);
    let unknown = u64::from(len) - skip - data.len() as u64;
    deliver(Chunk {
        time_ns,
        data,
        unknown,
    });
}

#[cfg(test)]
mod tests {
    use sensor_ebpf::tcp_flags::{ACK, FIN, SYN};

    use super::*;

    /// Feeds segments `(seq, len, captured)` and returns the delivered
    /// stream as text, with `<n>` for n unknown bytes.
    fn feed(stream: &mut Stream, segs: &[(u32, u8, u32, &[u8])], c: &mut FlowCounters) -> String {
        let limits = FlowLimits {
            max_pending_segments: 3,
            ..FlowLimits::default()
        };
        let mut out = String::new();
        for &(seq, flags, len, data) in segs {
            stream.segment(0, seq, flags, len, data, &limits, c, &mut |ch| {
                out.push_str(std::str::from_utf8(ch.data).unwrap());
                if ch.unknown > 0 {
                    out.push_str(&format!("<{}>", ch.unknown));
                }
            });
        }
        out
    }

    #[test]
    fn delivers_in_order_after_syn() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let out = feed(
            &mut s,
            &[
                (99, SYN, 0, b""),
                (100, ACK, 3, b"abc"),
                (103, ACK, 2, b"de"),
            ],
            &mut c,
        );
        assert_eq!(out, "abcde");
    }

    #[test]
    fn retransmissions_are_delivered_once_and_counted() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let segs: &[(u32, u8, u32, &[u8])] = &[
            (100, ACK, 3, b"abc"),
            (100, ACK, 3, b"abc"),
            (101, ACK, 4, b"bcde"),
            (105, ACK, 1, b"f"),
        ];
        assert_eq!(feed(&mut s, segs, &mut c), "abcdef");
        assert_eq!(c.retransmitted_bytes, 3 + 2);
    }

    #[test]
    fn out_of_order_segments_wait_for_the_hole() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let segs: &[(u32, u8, u32, &[u8])] = &[
            (100, ACK, 2, b"ab"),
            (104, ACK, 2, b"ef"),
            (102, ACK, 2, b"cd"),
        ];
        assert_eq!(feed(&mut s, segs, &mut c), "abcdef");
        assert_eq!(
            (c.out_of_order_segments, c.gaps, c.buffered_bytes),
            (1, 0, 0)
        );
    }

    #[test]
    fn uncaptured_bytes_are_counted_not_invented() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let out = feed(
            &mut s,
            &[(100, ACK, 10, b"abc"), (110, ACK, 2, b"kl")],
            &mut c,
        );
        assert_eq!(out, "abc<7>kl");
    }

    #[test]
    fn a_trimmed_range_is_a_known_hole_not_a_gap() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        assert_eq!(
            feed(&mut s, &[(100, ACK, 10, b"0123456789")], &mut c),
            "0123456789"
        );
        assert_eq!(s.trim(1000), Some((110, 1110)));
        assert_eq!(s.trim(1000), None, "one range at a time");
        // The tap records only the range's last segment, as a bare header;
        // the next message starts after it.
        let out = feed(
            &mut s,
            &[(1010, ACK, 100, b""), (1110, ACK, 3, b"GET")],
            &mut c,
        );
        assert_eq!(out, "<900><100>GET");
        assert_eq!(
            (c.trimmed_bytes, c.gaps, c.out_of_order_segments),
            (900, 0, 0)
        );
        // Past the range, a hole is held as before.
        assert_eq!(feed(&mut s, &[(1200, ACK, 1, b"x")], &mut c), "");
        assert_eq!(c.out_of_order_segments, 1);
        assert_eq!(s.trim(10), None, "not while segments wait");
    }

    #[test]
    fn a_hole_the_peer_acknowledged_is_skipped_as_a_gap() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let mut out = feed(
            &mut s,
            &[(100, ACK, 2, b"ab"), (105, ACK, 2, b"fg")],
            &mut c,
        );
        s.acknowledged(106, &mut c, &mut |_| panic!("ack inside the held segment"));
        s.acknowledged(107, &mut c, &mut |ch| {
            out.push_str(std::str::from_utf8(ch.data).unwrap());
            out.push_str(&format!("<{}>", ch.unknown));
        });
        assert_eq!(out, "ab<3>fg<0>");
        assert_eq!((c.gaps, c.gap_bytes), (1, 3));
    }

    #[test]
    fn too_many_held_segments_force_the_hole_closed() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let segs: &[(u32, u8, u32, &[u8])] = &[
            (100, ACK, 1, b"a"),
            (102, ACK, 1, b"c"),
            (103, ACK, 1, b"d"),
            (104, ACK, 1, b"e"),
            (105, ACK, 1, b"f"),
        ];
        assert_eq!(feed(&mut s, segs, &mut c), "a<1>cdef");
        assert_eq!((c.pending_overflows, c.gap_bytes), (1, 1));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let segs: &[(u32, u8, u32, &[u8])] = &[(u32::MAX - 1, ACK, 2, b"ab"), (0, ACK, 2, b"cd")];
        assert_eq!(feed(&mut s, segs, &mut c), "abcd");
    }

    #[test]
    fn fin_finishes_the_stream_once_all_bytes_arrived() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        feed(
            &mut s,
            &[(100, ACK, 2, b"ab"), (104, ACK | FIN, 0, b"")],
            &mut c,
        );
        assert!(!s.finished());
        feed(&mut s, &[(102, ACK, 2, b"cd")], &mut c);
        assert!(s.finished());
    }

    #[test]
    fn a_new_isn_is_a_new_connection() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        feed(&mut s, &[(99, SYN, 0, b"")], &mut c);
        assert!(!s.is_new_syn(99));
        assert!(s.is_new_syn(5000));
    }

    #[test]
    fn a_copy_with_other_bytes_is_counted_and_the_first_kept() {
        let (mut s, mut c) = (Stream::default(), FlowCounters::default());
        let out = feed(
            &mut s,
            &[
                (100, ACK, 10, b"GET /hello"),
                (100, ACK, 10, b"GET /admin"),
                (100, ACK, 10, b"GET /hello"),
                (120, ACK, 2, b"xy"),
                (120, ACK, 2, b"zz"),
                (110, ACK, 10, b"0123456789"),
            ],
            &mut c,
        );
        assert_eq!(out, "GET /hello0123456789xy");
        assert_eq!(c.overlap_different_data, 2);
    }
}

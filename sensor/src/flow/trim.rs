//! Which body ranges the live tap is told to leave out (`--trim-bodies`):
//! the flow table asks a flow's analyzer after each segment from the packet
//! tap, and collects the advice for the daemon to write to the kernel.

use super::{
    analyzer::{Analyzer, Endpoint, FlowInfo},
    limits::FlowCounters,
    reassembly::Stream,
};
use crate::capture::{Segment, Trim};

/// Ranges handed over per second of capture time, at most: each costs the
/// daemon a map update (a syscall, about 1-2 us), so a flood of cheap
/// large-body requests cannot turn into a flood of syscalls.
const MAX_PER_SECOND: u32 = 10_000;

/// The trimming policy and the advice not yet taken.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// Fewest opaque bytes worth a range; 0: off.
    min_bytes: u64,
    advice: Vec<Trim>,
    /// Start of the current one-second window (capture time, ns).
    window_ns: u64,
    in_window: u32,
}

impl Trimmer {
    /// Advise ranges of at least `min_bytes` (0: never).
    pub fn new(min_bytes: u64) -> Self {
        Self {
            min_bytes,
            ..Self::default()
        }
    }

    /// After `seg` (sent by `from`) was taken into a flow: advise trimming
    /// what its analyzer will not read, when all hold: trimming is on, the
    /// segment came from the packet tap and was cut by the capture length
    /// (the body flows in large segments: a head alone never earns a
    /// range), the flow's handshake was seen (a forger's flow gets none),
    /// at least `min_bytes` are opaque, and the stream is in order.
    pub fn after_segment<A: Analyzer>(
        &mut self,
        seg: &Segment<'_>,
        from: Endpoint,
        info: &FlowInfo,
        analyzer: &A,
        stream: &mut Stream,
        counters: &mut FlowCounters,
    ) {
        if self.min_bytes == 0
            || !seg.source.is_packet_tap()
            || seg.payload.len() >= seg.payload_len as usize
            || !info.handshake
        {
            return;
        }
        let opaque = analyzer.opaque_ahead(info, from);
        if opaque < self.min_bytes {
            return;
        }
        if seg.time_ns.saturating_sub(self.window_ns) >= 1_000_000_000 {
            (self.window_ns, self.in_window) = (seg.time_ns, 0);
        }
        if self.in_window >= MAX_PER_SECOND {
            counters.trims_over_rate += 1;
            return;
        }
        let Some((from_seq, until_seq)) = stream.trim(opaque) else {
            return;
        };
        self.in_window += 1;
        counters.trims += 1;
        self.advice.push(Trim {
            src: seg.src,
            dst: seg.dst,
            from_seq,
            until_seq,
        });
    }

    /// The advice so far, taken.
    pub fn take(&mut self) -> Vec<Trim> {
        std::mem::take(&mut self.advice)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use sensor_ebpf::tcp_flags::ACK;

    use super::*;
    use crate::{
        capture::{Direction, Hook, Source},
        flow::{Chunk, FlowLimits},
    };

    /// An analyzer with `.0` opaque bytes ahead.
    #[derive(Default)]
    struct Body(u64);

    impl Analyzer for Body {
        type Context = ();
        fn chunk(&mut self, _: &mut (), _: &mut FlowInfo, _: Endpoint, _: Chunk<'_>) {}
        fn opaque_ahead(&self, _: &FlowInfo, _: Endpoint) -> u64 {
            self.0
        }
        fn close(&mut self, _: &mut (), _: &FlowInfo) {}
        fn memory(&self) -> usize {
            0
        }
        fn shed(&mut self, _: &mut (), _: &FlowInfo) {}
    }

    #[test]
    fn a_range_only_for_a_cut_body_segment_of_a_handshaken_tap_flow() {
        let (src, dst): (SocketAddr, SocketAddr) = (
            "10.77.1.2:8080".parse().unwrap(),
            "10.77.1.1:40000".parse().unwrap(),
        );
        let prefix = [0u8; 512];
        let seg = Segment {
            time_ns: 1,
            src,
            dst,
            seq: 1000,
            ack: 0,
            flags: ACK,
            payload_len: 1400,
            payload: &prefix,
            source: Source::Live {
                hook: Hook::Tc,
                direction: Direction::Ingress,
                ifindex: 2,
            },
        };
        let mut c = FlowCounters::default();
        let mut stream = Stream::default();
        let limits = FlowLimits::default();
        stream.segment(1, 1000, ACK, 1400, &prefix, &limits, &mut c, &mut |_| {});
        let mut info = FlowInfo::new([dst, src], false, 1);
        info.handshake = true;
        let mut t = Trimmer::new(16_384);
        let mut advise = |t: &mut Trimmer, seg: &Segment<'_>, info: &FlowInfo, body: u64| {
            let stream = &mut stream;
            t.after_segment(seg, Endpoint::Second, info, &Body(body), stream, &mut c);
            t.take()
        };
        let file = Segment {
            source: Source::File,
            ..seg.clone()
        };
        assert!(advise(&mut t, &file, &info, 100_000).is_empty(), "replay");
        let whole = Segment {
            payload_len: 512,
            ..seg.clone()
        };
        assert!(advise(&mut t, &whole, &info, 100_000).is_empty(), "not cut");
        assert!(advise(&mut t, &seg, &info, 16_383).is_empty(), "too short");
        let forged = FlowInfo {
            handshake: false,
            ..info
        };
        assert!(
            advise(&mut t, &seg, &forged, 100_000).is_empty(),
            "no handshake"
        );
        assert!(
            advise(&mut Trimmer::new(0), &seg, &info, 100_000).is_empty(),
            "off"
        );
        let advice = advise(&mut t, &seg, &info, 100_000);
        assert_eq!(
            advice,
            [Trim {
                src,
                dst,
                from_seq: 2400,
                until_seq: 102_400
            }]
        );
        assert!(
            advise(&mut t, &seg, &info, 100_000).is_empty(),
            "once per range"
        );
        assert_eq!(c.trims, 1);
    }
}

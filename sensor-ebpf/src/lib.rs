//! The record types shared by siem-sensor's kernel programs and its daemon.
//! The TLS tap's records are in [`tls`].
//!
//! Every TCP segment that passes the port filter becomes one record in
//! its CPU's ring ([`ring`]), but a segment inside a body the daemon will
//! not read (see [`trim`]): a fixed [`SegmentHeader`] followed by
//! [`SegmentHeader::captured_len`] bytes of TCP payload. Control segments
//! (SYN, FIN, RST) without payload are recorded too, as a bare header.
//! All integers are in host byte order; both sides run on the same host.
#![no_std]

pub mod headers;
pub mod ring;
pub mod tls;

/// Largest payload prefix the kernel programs copy into a record, in bytes.
/// The effective cap is chosen at load time (`CAPTURE_LEN`, default
/// [`DEFAULT_CAPTURE_LEN`]) and clamped to this.
pub const MAX_CAPTURE_LEN: u32 = 1024;

/// Default payload prefix per record, in bytes.
pub const DEFAULT_CAPTURE_LEN: u32 = 512;

/// Name of the per-CPU counter array, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Name of the port filter: `Array<u8>` of 65536 entries, each a set of
/// [`port_bits`].
pub const PORTS_MAP: &str = "PORTS";

/// Bits of a [`PORTS_MAP`] entry.
pub mod port_bits {
    /// Segments from or to the port are captured.
    pub const CAPTURE: u8 = 1;
    /// The port is a Kong proxy listener: a blocked source's packets to it
    /// are dropped on ingress (see [`super::block`]).
    pub const PROXY: u8 = 2;
}

/// The kernel block of offenders (`--block on`): two hash maps of blocked
/// source addresses, each mapped to its deadline, and a state array.
///
/// On ingress (tc or XDP), a TCP segment is dropped when all hold: the
/// state's [`ACTIVE`](block::ACTIVE) slot is non-zero (one array read when
/// no block is active, nothing else), its destination port is a
/// [`port_bits::PROXY`] port, `bpf_ktime_get_boot_ns()` is before the
/// state's [`ALIVE_UNTIL`](block::ALIVE_UNTIL) slot (the daemon pushes it
/// forward every second: a dead daemon's blocks stop applying within
/// [`block::HEARTBEAT_GRACE_NS`]) and before the source's deadline.
/// Deadlines are `CLOCK_BOOTTIME` nanoseconds (`bpf_ktime_get_boot_ns`,
/// Linux 5.8), so a suspended host does not stretch a block.
pub mod block {
    /// Name of the IPv4 map: `HashMap<[u8; 4], u64>`, address (network
    /// order) to deadline.
    pub const V4_MAP: &str = "BLOCKED_V4";
    /// Name of the IPv6 map: `HashMap<[u8; 16], u64>`.
    pub const V6_MAP: &str = "BLOCKED_V6";
    /// Name of the state array: `Array<u64>` of [`STATE_SLOTS`].
    pub const STATE_MAP: &str = "BLOCK_STATE";
    /// State slot: number of addresses in the maps (0: the check stops at
    /// this one read).
    pub const ACTIVE: u32 = 0;
    /// State slot: boot-clock ns after which no block applies (liveness).
    pub const ALIVE_UNTIL: u32 = 1;
    /// Number of state slots.
    pub const STATE_SLOTS: u32 = 2;
    /// Entries of each map (allocated on use: `BPF_F_NO_PREALLOC`).
    pub const MAX_ENTRIES: u32 = 131_072;
    /// How far ahead of now the daemon sets [`ALIVE_UNTIL`]: 5 s.
    pub const HEARTBEAT_GRACE_NS: u64 = 5_000_000_000;
}
/// Body trimming (`--trim-bodies`): the daemon tells the kernel programs
/// which sequence ranges of a direction are bytes it will not read (the
/// rest of an HTTP/1.1 body of known length), and the programs record
/// nothing of a segment inside such a range but its end.
///
/// The map `TRIMS` (`BPF_MAP_TYPE_LRU_HASH`) maps a direction's [`key`]
/// to a range (see [`range`]); `TRIM_STATE` slot 0 is non-zero once any
/// range was written (until then a segment costs one array read). For a
/// data segment of a direction with a range, [`verdict`] decides; the
/// segment that reaches the range's end is recorded as a bare header, so
/// the daemon learns the body ended when it did, and fills the bytes it
/// was not sent as a known hole (never a capture gap).
pub mod trim {
    /// Name of the range map.
    pub const MAP: &str = "TRIMS";
    /// Name of the state array (one `u64` slot).
    pub const STATE_MAP: &str = "TRIM_STATE";
    /// Entries of the range map; the least recently used is evicted
    /// (kernel doc: bpf/map_hash.rst), which at worst records a body again.
    pub const MAX_ENTRIES: u32 = 16_384;
    /// Bytes of a [`key`].
    pub const KEY_LEN: usize = 40;

    /// Writes the map key of one direction of a flow into `k`: source
    /// address, destination address (16 bytes each, IPv4 in the first 4,
    /// as in [`super::SegmentHeader`]), source and destination port (host
    /// order), the family, three zero bytes. (A buffer, not a return
    /// value: the kernel programs build it in a map's memory, their stack
    /// being full.)
    #[inline(always)]
    pub fn write_key(
        k: &mut [u8; KEY_LEN],
        family: u8,
        saddr: &[u8; 16],
        daddr: &[u8; 16],
        sport: u16,
        dport: u16,
    ) {
        k[..16].copy_from_slice(saddr);
        k[16..32].copy_from_slice(daddr);
        k[32..34].copy_from_slice(&sport.to_ne_bytes());
        k[34..36].copy_from_slice(&dport.to_ne_bytes());
        k[36..].copy_from_slice(&[family, 0, 0, 0]);
    }

    /// The map value of the range of sequence numbers `[from, until)`
    /// (RFC 9293 modular arithmetic: `until` may have wrapped).
    pub fn range(from: u32, until: u32) -> u64 {
        u64::from(from) | (u64::from(until) << 32)
    }

    /// What the programs do with a data segment (`seq`, `len` payload
    /// bytes, no SYN, FIN or RST) of a direction with the range `range`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Verdict {
        /// Not inside the range: recorded as usual; the entry stays (the
        /// segment is older than the range, or a retransmission).
        Record,
        /// Inside and short of the end: not recorded (counted `Trimmed`).
        Drop,
        /// Ends exactly at the range's end: recorded as a bare header
        /// (its length, no bytes), and the entry deleted.
        Last,
        /// Reaches past the range's end (the next message starts in it) or
        /// starts at or after it: recorded as usual, the entry deleted.
        Past,
    }

    /// The [`Verdict`] for a segment at `seq` of `len` bytes.
    #[inline(always)]
    pub fn verdict(range: u64, seq: u32, len: u32) -> Verdict {
        let (from, until) = (range as u32, (range >> 32) as u32);
        let span = until.wrapping_sub(from);
        let off = seq.wrapping_sub(from);
        if off >= span {
            // Before `from` (wrapped to a large offset) or at/after `until`.
            return if (seq.wrapping_sub(until) as i32) >= 0 {
                Verdict::Past
            } else {
                Verdict::Record
            };
        }
        let end = u64::from(off) + u64::from(len);
        match end.cmp(&u64::from(span)) {
            core::cmp::Ordering::Less => Verdict::Drop,
            core::cmp::Ordering::Equal => Verdict::Last,
            core::cmp::Ordering::Greater => Verdict::Past,
        }
    }
}

/// Name of the `.rodata` global holding the payload capture length (u32).
pub const CAPTURE_LEN_GLOBAL: &str = "CAPTURE_LEN";
/// Name of the `.rodata` global that, when non-zero, captures every TCP port (u8).
pub const ALL_PORTS_GLOBAL: &str = "ALL_PORTS";

/// Whether a record of `reserved` bytes (as asked of
/// `bpf_ringbuf_reserve`) should wake the reader: it took the data waiting
/// in the ring (`waiting`, `BPF_RB_AVAIL_DATA` after its reservation)
/// across `threshold`. The ring adds an 8-byte header to each record and
/// rounds it up to 8 bytes (kernel/bpf/ringbuf.c). Waking on every record
/// above the threshold instead sends an IPI per record (`irq_work_queue`)
/// until the reader drains, about 5 us each in a VM; a crossing missed in
/// a race with another CPU leaves the records to the reader's poll timer.
#[inline(always)]
pub fn wakes_reader(waiting: u64, threshold: u64, reserved: u64) -> bool {
    let size = (reserved + 8 + 7) & !7;
    waiting >= threshold && waiting < threshold.saturating_add(size)
}

/// Program names in the object, as `#[classifier]` / `#[xdp]` functions.
pub const TC_INGRESS_PROGRAM: &str = "tc_ingress";
/// See [`TC_INGRESS_PROGRAM`].
pub const TC_EGRESS_PROGRAM: &str = "tc_egress";
/// See [`TC_INGRESS_PROGRAM`].
pub const XDP_PROGRAM: &str = "xdp_ingress";

/// Per-CPU counters kept by the kernel programs. Invariant, summed over CPUs:
/// `Seen == Submitted + RingFull + CopyError + Trimmed`; `Fragments` and
/// `Blocked` stand apart.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// TCP segments that passed the port filter and should become a record.
    Seen = 0,
    /// Records written to the CPU's ring ([`ring`]).
    Submitted = 1,
    /// Segments lost because the CPU's ring had no room (or, never seen
    /// on tc and XDP, was in use by an interrupted run).
    RingFull = 2,
    /// Segments lost because copying the payload failed (`bpf_*_load_bytes`).
    CopyError = 3,
    /// IP fragments of TCP (IPv4 with "more fragments" or an offset, IPv6
    /// with a fragment header). IPv4 ones are also recorded
    /// ([`checks::FRAGMENT`]) for userspace to reassemble; IPv6 ones are
    /// only counted.
    Fragments = 4,
    /// Packets dropped on ingress because their source is blocked
    /// ([`block`]); not part of the invariant.
    Blocked = 5,
    /// Segments not recorded: inside a body the daemon will not read
    /// ([`trim`], [`trim::Verdict::Drop`]).
    Trimmed = 6,
}

/// Number of [`Counter`] slots.
pub const COUNTER_SLOTS: u32 = 7;

/// [`SegmentHeader::checks`] bits: what the kernel programs found about
/// whether the gateway's IP and TCP stack accepts the segment.
pub mod checks {
    /// The IP length claims more bytes than the frame holds
    /// (`ip_rcv_core` drops it).
    pub const BAD_IP_LENGTH: u32 = 1;
    /// The IPv4 header checksum is wrong (`ip_rcv_core` always verifies
    /// it and drops it).
    pub const BAD_IP_CHECKSUM: u32 = 2;
    /// The TCP checksum is wrong and the stack would verify it
    /// (`ip_summed` `CHECKSUM_NONE` or `CHECKSUM_COMPLETE`): TCP drops it.
    pub const BAD_TCP_CHECKSUM: u32 = 4;
    /// The TCP checksum is known good: verified here, by the NIC
    /// (`CHECKSUM_UNNECESSARY`), or the segment was made by this host
    /// (`CHECKSUM_PARTIAL`, tc egress). Absent: not known (XDP, a segment
    /// too long to sum in the kernel, no BTF).
    pub const TCP_CHECKSUM_KNOWN_GOOD: u32 = 8;
    /// Not a segment but an IPv4 fragment of one (RFC 791 section 3.2):
    /// `seq` holds the identification, `ack` the fragment's offset in
    /// bytes with [`MORE_FRAGMENTS`] set when more follow, the payload is
    /// the fragment's data; userspace reassembles the datagram. Ports are
    /// not known, so every IPv4 fragment of TCP is recorded.
    pub const FRAGMENT: u32 = 16;
    /// In a [`FRAGMENT`] record's `ack`: more fragments follow.
    pub const MORE_FRAGMENTS: u32 = 1 << 31;
    /// Any of the bits that mean the stack drops the segment.
    pub const DROPPED_BY_STACK: u32 = BAD_IP_LENGTH | BAD_IP_CHECKSUM | BAD_TCP_CHECKSUM;
}

/// Name of the `.rodata` global: byte offset of the byte holding
/// `sk_buff.ip_summed` on the running kernel, from its BTF; 0 when unknown
/// (u32).
pub const IP_SUMMED_BYTE_GLOBAL: &str = "IP_SUMMED_BYTE";
/// Name of the `.rodata` global: bit position of `ip_summed` in that byte
/// (u8).
pub const IP_SUMMED_SHIFT_GLOBAL: &str = "IP_SUMMED_SHIFT";

/// Traffic direction relative to the interface the program is attached to.
pub const DIRECTION_INGRESS: u8 = 0;
/// See [`DIRECTION_INGRESS`].
pub const DIRECTION_EGRESS: u8 = 1;

/// The hook that produced a record.
pub const HOOK_TC: u8 = 0;
/// See [`HOOK_TC`].
pub const HOOK_XDP: u8 = 1;

/// Fixed header at the start of every ring-buffer record (72 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, nanoseconds.
    pub ktime_ns: u64,
    /// Source address; IPv4 in the first 4 bytes, rest zero.
    pub saddr: [u8; 16],
    /// Destination address, as `saddr`.
    pub daddr: [u8; 16],
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgement number.
    pub ack: u32,
    /// Full TCP payload length of the segment in bytes; for a GSO
    /// super-packet on tc egress, of the whole super-packet.
    pub payload_len: u32,
    /// Payload bytes that follow this header (`<= payload_len`, `<= CAPTURE_LEN`).
    pub captured_len: u32,
    /// Interface index the segment was seen on.
    pub ifindex: u32,
    /// TCP source port.
    pub sport: u16,
    /// TCP destination port.
    pub dport: u16,
    /// 4 or 6.
    pub family: u8,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20).
    pub tcp_flags: u8,
    /// [`DIRECTION_INGRESS`] or [`DIRECTION_EGRESS`].
    pub direction: u8,
    /// [`HOOK_TC`] or [`HOOK_XDP`].
    pub hook: u8,
    /// [`checks`] bits.
    pub checks: u32,
}

/// Size of [`SegmentHeader`] in bytes.
pub const HEADER_LEN: usize = core::mem::size_of::<SegmentHeader>();
const _: () = assert!(HEADER_LEN == 72);

/// TCP flag bits, RFC 9293 section 3.1.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
}

#[cfg(test)]
mod tests {
    use super::{
        trim::{Verdict, range, verdict},
        wakes_reader,
    };

    #[test]
    fn a_trim_range_drops_what_is_inside_and_records_its_end() {
        let r = range(1000, 5000);
        assert_eq!(verdict(r, 1000, 1000), Verdict::Drop);
        assert_eq!(verdict(r, 3000, 1999), Verdict::Drop);
        assert_eq!(verdict(r, 3000, 2000), Verdict::Last);
        assert_eq!(
            verdict(r, 3000, 2001),
            Verdict::Past,
            "the next head starts inside"
        );
        assert_eq!(verdict(r, 5000, 10), Verdict::Past);
        assert_eq!(verdict(r, 999, 10), Verdict::Record, "straddles the start");
        assert_eq!(verdict(r, 500, 10), Verdict::Record, "older bytes");
        // Across the wrap of the sequence space.
        let w = range(u32::MAX - 99, 100);
        assert_eq!(verdict(w, u32::MAX - 99, 150), Verdict::Drop);
        assert_eq!(verdict(w, 50, 50), Verdict::Last);
        assert_eq!(verdict(w, 100, 1), Verdict::Past);
        assert_eq!(verdict(w, u32::MAX - 200, 1), Verdict::Record);
    }

    #[test]
    fn a_stream_of_records_wakes_the_reader_once_per_crossing() {
        let (threshold, reserved) = (1000, 100);
        let size = 112; // 100 + 8, rounded up to 8
        let mut waiting = 0;
        let mut wakes = 0;
        for _ in 0..100 {
            waiting += size;
            wakes += u32::from(wakes_reader(waiting, threshold, reserved));
        }
        assert_eq!(wakes, 1);
        // The record that reaches the threshold exactly wakes it too.
        assert!(wakes_reader(threshold, threshold, reserved));
        assert!(!wakes_reader(threshold - 1, threshold, reserved));
    }
}

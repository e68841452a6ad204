//! Capture: the sources segments come from.
//!
//! Each source hands [`Segment`]s, the unit every later stage consumes, to
//! a callback and keeps its own counters: [`live`] loads the kernel programs
//! of `sensor-ebpf`, attaches them and drains their ring buffer; [`tls`]
//! reads the gateway's TLS plaintext from uprobes on its OpenSSL, as
//! synthetic segments; [`file`](mod@file) reads pcap and pcapng files. None knows
//! what consumes the segments.

pub mod btf;
pub mod defrag;
pub mod file;
pub mod live;
pub mod tls;

use std::net::SocketAddr;

pub use live::Hook;

/// Takes the map `name` out of a loaded eBPF object as a `T` (a ring
/// buffer, an array, a hash map of the object's key and value types).
///
/// # Errors
/// The object has no map of that name, or it is of another type.
pub(crate) fn kernel_map<T>(ebpf: &mut aya::Ebpf, name: &str) -> anyhow::Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow::anyhow!("map {name} missing from the eBPF object"))?;
    T::try_from(map).map_err(|e| anyhow::anyhow!("map {name}: {e}"))
}

/// Counter `index` of a per-CPU array of counters, summed over the CPUs.
///
/// # Errors
/// The map lookup failed (an index past the array).
pub(crate) fn per_cpu_total(
    map: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    index: u32,
) -> anyhow::Result<u64> {
    Ok(map.get(&index, 0)?.iter().sum())
}

/// Traffic direction relative to the interface the segment was seen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Arriving on the interface.
    Ingress,
    /// Leaving through the interface.
    Egress,
}

/// One TCP segment as seen by a source, borrowing its payload prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    /// TCP sequence number of the first payload byte.
    pub seq: u32,
    /// TCP acknowledgement number.
    pub ack: u32,
    /// TCP flags byte (see `sensor_ebpf::tcp_flags`).
    pub flags: u8,
    /// Full payload length of the segment in bytes; `payload` may hold only a
    /// prefix of it (the capture length), so framing uses this, not `payload.len()`.
    pub payload_len: u32,
    /// The captured payload prefix.
    pub payload: &'a [u8],
    /// Where the segment was captured.
    pub source: Source,
}

/// Advice to the live tap: bytes of one direction of a flow that the
/// daemon will not read (the rest of a body of known length), by TCP
/// sequence number, `[from_seq, until_seq)` modulo 2^32. The tap records
/// nothing of a segment inside the range but the one that ends it (as a
/// bare header), see `sensor_ebpf::trim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    /// Sender of the bytes.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first byte not to record.
    pub from_seq: u32,
    /// Sequence number just past the last.
    pub until_seq: u32,
}

/// Where a segment was captured: the live tap (with its hook, direction and
/// interface), the TLS tap, or a capture file, which records none of those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The kernel programs of `sensor-ebpf`.
    Live {
        /// Which hook saw the segment.
        hook: Hook,
        /// Direction on the interface.
        direction: Direction,
        /// Interface index the segment was seen on.
        ifindex: u32,
    },
    /// The TLS tap: a synthetic segment carrying one SSL call's
    /// plaintext (or a handshake or FIN standing for the connection's
    /// start and end). The flow table keys these apart from packet
    /// segments of the same 4-tuple (which carry the ciphertext).
    Tls {
        /// Relative to the gateway: `Ingress` for `SSL_read`, `Egress`
        /// for `SSL_write`.
        direction: Direction,
        /// The gateway process.
        pid: u32,
    },
    /// A pcap or pcapng file.
    File,
}

impl Source {
    /// Whether the segment is TLS plaintext.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls { .. })
    }

    /// Whether the live packet tap captured it (its records can be
    /// trimmed, see [`Trim`]).
    pub fn is_packet_tap(&self) -> bool {
        matches!(self, Self::Live { .. })
    }
}

/// A [`Segment`] that owns its payload, for holding segments beyond the
/// source's callback (tests, tools that reorder or replay them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedSegment {
    /// See [`Segment::time_ns`].
    pub time_ns: u64,
    /// See [`Segment::src`].
    pub src: SocketAddr,
    /// See [`Segment::dst`].
    pub dst: SocketAddr,
    /// See [`Segment::seq`].
    pub seq: u32,
    /// See [`Segment::ack`].
    pub ack: u32,
    /// See [`Segment::flags`].
    pub flags: u8,
    /// See [`Segment::payload_len`].
    pub payload_len: u32,
    /// The captured payload prefix.
    pub payload: Vec<u8>,
    /// See [`Segment::source`].
    pub source: Source,
}

impl From<&Segment<'_>> for OwnedSegment {
    fn from(s: &Segment<'_>) -> Self {
        Self {
            time_ns: s.time_ns,
            src: s.src,
            dst: s.dst,
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            payload_len: s.payload_len,
            payload: s.payload.to_vec(),
            source: s.source,
        }
    }
}

impl OwnedSegment {
    /// The segment, borrowing the payload.
    pub fn as_segment(&self) -> Segment<'_> {
        Segment {
            time_ns: self.time_ns,
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            payload_len: self.payload_len,
            payload: &self.payload,
            source: self.source,
        }
    }
}

//! Capture: where segments come from.
//!
//! [`live`] loads the kernel programs from `sensor-ebpf`, attaches them and
//! reads their ring buffer; [`record`] decodes one ring-buffer record into a
//! [`Segment`], the unit every later stage consumes.

mod attach;
mod clock;
pub mod file;
mod link;
pub mod live;
mod preflight;
pub mod record;

use std::net::SocketAddr;

pub use attach::{AttachPlan, Hook, TcAttach, XdpMode};
pub use clock::Clock;
pub use preflight::PreflightError;

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

/// Where a segment was captured: the live tap (with its hook, direction and
/// interface) or a capture file, which records none of those.
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
    /// A pcap or pcapng file.
    File,
}

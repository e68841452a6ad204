//! IPv4 fragment reassembly, as the receiving host does it, so a request
//! carried in fragments is read as the server read it: capture files and
//! the live tap (which records fragments of TCP whole, as far as its
//! capture length reaches) both reassemble here.
//!
//! Each datagram's fragments are kept by (source, destination,
//! identification) in `etherparse`'s [`IpDefragBuf`] until they cover it
//! from offset 0 to a fragment without "more fragments". As Linux since 4.19
//! ("ip: discard IPv4 datagrams with overlapping segments"), overlapping
//! fragments drop the whole datagram (they are how insertion attacks hide
//! data). Bounded: at most [`MAX_DATAGRAMS`] datagrams in progress, each
//! given up after [`TIMEOUT_NS`] of event time (Linux's `ipfrag_time`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use etherparse::{IpFragOffset, IpNumber, TcpSlice, defrag::IpDefragBuf};
use hashbrown::HashMap;

use super::{Segment, Source};

/// One IPv4 fragment of a TCP segment (RFC 791 section 3.2).
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// Source and destination addresses.
    pub src: Ipv4Addr,
    /// See `src`.
    pub dst: Ipv4Addr,
    /// The datagram's identification field.
    pub id: u16,
    /// Offset of this fragment's data in the datagram's payload, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// This fragment's data (as captured).
    pub data: &'a [u8],
}

/// Datagrams reassembled at once; a new one past it drops the oldest.
pub const MAX_DATAGRAMS: usize = 1024;

/// How long a datagram may take to arrive whole (event time): 30 s.
pub const TIMEOUT_NS: u64 = 30_000_000_000;

/// What adding a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The datagram is still incomplete.
    Pending,
    /// The datagram is whole: its payload (a TCP segment).
    Complete(Vec<u8>),
    /// The datagram was dropped (overlap, bad offsets or length).
    Dropped,
}

type Key = (Ipv4Addr, Ipv4Addr, u16);

/// Datagrams in progress.
#[derive(Default)]
pub struct Defrag {
    datagrams: HashMap<Key, (u64, IpDefragBuf)>,
    /// Datagrams given up (timed out or pushed out) so far.
    pub expired: u64,
}

impl Defrag {
    /// Takes one fragment seen at `now_ns`.
    pub fn add(&mut self, f: &Fragment<'_>, now_ns: u64) -> Outcome {
        self.datagrams
            .retain(|_, (first, _)| first.saturating_add(TIMEOUT_NS) >= now_ns);
        let key = (f.src, f.dst, f.id);
        if !self.datagrams.contains_key(&key) && self.datagrams.len() >= MAX_DATAGRAMS {
            let oldest = self
                .datagrams
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.datagrams.remove(&k);
                self.expired += 1;
            }
        }
        let (_, buf) = self.datagrams.entry(key).or_insert_with(|| {
            (
                now_ns,
                IpDefragBuf::new(IpNumber::TCP, Vec::new(), Vec::new()),
            )
        });
        let end = usize::from(f.offset) + f.data.len();
        let overlaps = buf
            .sections()
            .iter()
            .any(|s| usize::from(s.start) < end && usize::from(f.offset) < usize::from(s.end));
        let offset = IpFragOffset::try_new(f.offset / 8);
        let added = match offset {
            Ok(o) if !overlaps && f.offset.is_multiple_of(8) => buf.add(o, f.more, f.data).is_ok(),
            _ => false,
        };
        if !added {
            self.datagrams.remove(&key);
            return Outcome::Dropped;
        }
        if !buf.is_complete() {
            return Outcome::Pending;
        }
        let (_, buf) = self.datagrams.remove(&key).expect("present");
        let (data, _) = buf.take_bufs();
        Outcome::Complete(data)
    }
}

/// The TCP segment of a reassembled IPv4 datagram from `src` to `dst`.
///
/// Returns the segment and whether its TCP checksum is right; `None` when
/// the datagram is not a TCP segment.
pub fn reassembled(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    datagram: &[u8],
    time_ns: u64,
    source: Source,
) -> Option<(Segment<'_>, bool)> {
    let tcp = TcpSlice::from_slice(datagram).ok()?;
    let checksum = tcp.calc_checksum_ipv4(src.octets(), dst.octets());
    let checksum_ok = checksum.is_ok_and(|sum| sum == tcp.checksum());
    let payload = tcp.payload();
    let segment = Segment {
        time_ns,
        src: SocketAddr::new(IpAddr::V4(src), tcp.source_port()),
        dst: SocketAddr::new(IpAddr::V4(dst), tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: tcp.header_slice()[13],
        payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        payload,
        source,
    };
    Some((segment, checksum_ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(offset: u16, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: Ipv4Addr::new(10, 0, 0, 1),
            id: 7,
            offset,
            more,
            data,
        }
    }

    #[test]
    fn fragments_in_any_order_make_the_datagram() {
        let mut d = Defrag::default();
        assert_eq!(d.add(&frag(8, true, b"89abcdef"), 0), Outcome::Pending);
        assert_eq!(d.add(&frag(16, false, b"gh"), 1), Outcome::Pending);
        assert_eq!(
            d.add(&frag(0, true, b"01234567"), 2),
            Outcome::Complete(b"0123456789abcdefgh".to_vec())
        );
        assert!(d.datagrams.is_empty());
    }

    #[test]
    fn overlaps_drop_the_datagram_and_time_bounds_it() {
        let mut d = Defrag::default();
        assert_eq!(d.add(&frag(0, true, b"01234567"), 0), Outcome::Pending);
        assert_eq!(d.add(&frag(0, true, b"ABCDEFGH"), 1), Outcome::Dropped);
        assert_eq!(d.add(&frag(8, false, b"x"), 2), Outcome::Pending);
        assert_eq!(
            d.add(&frag(0, true, b"01234567"), TIMEOUT_NS + 3),
            Outcome::Pending
        );
        assert_eq!(d.datagrams.len(), 1, "the first fragment at 2 ns timed out");
    }
}

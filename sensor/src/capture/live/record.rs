//! Decoding of ring-buffer records written by `sensor-ebpf`.
//!
//! A record is a [`SegmentHeader`] followed by the captured payload prefix.
//! Decoding validates every field it relies on, so a corrupt record becomes a
//! counted [`RecordError`], never a panic or a bogus segment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sensor_ebpf::{
    DIRECTION_EGRESS, DIRECTION_INGRESS, HEADER_LEN, HOOK_TC, HOOK_XDP, SegmentHeader,
};

use super::{Clock, Hook};
use crate::capture::{Direction, Segment, Source};

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Shorter than the fixed header.
    #[error("record of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    /// `family` is neither 4 nor 6.
    #[error("unknown address family {0}")]
    Family(u8),
    /// `captured_len` exceeds the record or the segment's payload length.
    #[error(
        "captured length {captured} does not fit (record payload {room}, segment payload {payload})"
    )]
    CapturedLen {
        /// Claimed captured bytes.
        captured: u32,
        /// Bytes present after the header.
        room: usize,
        /// Full segment payload length.
        payload: u32,
    },
    /// Unknown hook or direction code.
    #[error("unknown hook {hook} or direction {direction}")]
    Origin {
        /// Hook code.
        hook: u8,
        /// Direction code.
        direction: u8,
    },
}

/// Decodes one record, borrowing the payload from `bytes`; also returns
/// its `sensor_ebpf::checks` bits.
///
/// # Errors
/// [`RecordError`] when the record is short or a field is out of range.
pub fn decode<'a>(bytes: &'a [u8], clock: &Clock) -> Result<(Segment<'a>, u32), RecordError> {
    if bytes.len() < HEADER_LEN {
        return Err(RecordError::Short(bytes.len()));
    }
    // SAFETY: at least HEADER_LEN bytes are present; SegmentHeader is
    // repr(C) plain data for which every bit pattern is valid.
    let h: SegmentHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let room = bytes.len() - HEADER_LEN;
    if h.captured_len as usize > room || h.captured_len > h.payload_len {
        return Err(RecordError::CapturedLen {
            captured: h.captured_len,
            room,
            payload: h.payload_len,
        });
    }
    let (src, dst) = match h.family {
        4 => (ipv4(&h.saddr), ipv4(&h.daddr)),
        6 => (
            IpAddr::V6(Ipv6Addr::from(h.saddr)),
            IpAddr::V6(Ipv6Addr::from(h.daddr)),
        ),
        other => return Err(RecordError::Family(other)),
    };
    let hook = match h.hook {
        HOOK_TC => Hook::Tc,
        HOOK_XDP => Hook::Xdp,
        _ => {
            return Err(RecordError::Origin {
                hook: h.hook,
                direction: h.direction,
            });
        }
    };
    let direction = match h.direction {
        DIRECTION_INGRESS => Direction::Ingress,
        DIRECTION_EGRESS => Direction::Egress,
        _ => {
            return Err(RecordError::Origin {
                hook: h.hook,
                direction: h.direction,
            });
        }
    };
    let segment = Segment {
        time_ns: clock.wall_ns(h.ktime_ns),
        src: SocketAddr::new(src, h.sport),
        dst: SocketAddr::new(dst, h.dport),
        seq: h.seq,
        ack: h.ack,
        flags: h.tcp_flags,
        payload_len: h.payload_len,
        payload: &bytes[HEADER_LEN..HEADER_LEN + h.captured_len as usize],
        source: Source::Live {
            hook,
            direction,
            ifindex: h.ifindex,
        },
    };
    Ok((segment, h.checks))
}

fn ipv4(a: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a record the way the kernel programs lay it out.
    pub(crate) fn encode(h: &SegmentHeader, payload: &[u8], capture_len: usize) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + capture_len];
        // SAFETY: `out` has room for the header; SegmentHeader is plain data.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast(), *h) };
        out[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
        out
    }

    fn header(payload: &[u8]) -> SegmentHeader {
        let mut h = SegmentHeader {
            ktime_ns: 7,
            seq: 1000,
            ack: 2000,
            payload_len: payload.len() as u32 + 100,
            captured_len: payload.len() as u32,
            ifindex: 3,
            sport: 41000,
            dport: 8000,
            family: 4,
            tcp_flags: 0x18,
            direction: DIRECTION_INGRESS,
            hook: HOOK_TC,
            ..Default::default()
        };
        h.saddr[..4].copy_from_slice(&[10, 77, 0, 2]);
        h.daddr[..4].copy_from_slice(&[10, 77, 0, 1]);
        h
    }

    #[test]
    fn decodes_an_ipv4_record_with_a_payload_prefix() {
        let payload = b"GET / HTTP/1.1\r\n";
        let bytes = encode(&header(payload), payload, 512);
        let (seg, checks) = decode(&bytes, &Clock::with_offset(10)).unwrap();
        assert_eq!(checks, 0);
        assert_eq!(seg.src, "10.77.0.2:41000".parse().unwrap());
        assert_eq!(seg.dst, "10.77.0.1:8000".parse().unwrap());
        assert_eq!((seg.seq, seg.ack, seg.flags), (1000, 2000, 0x18));
        assert_eq!(seg.payload, payload);
        assert_eq!(seg.payload_len, payload.len() as u32 + 100);
        assert_eq!(seg.time_ns, 17);
        assert_eq!(
            seg.source,
            Source::Live {
                hook: Hook::Tc,
                direction: Direction::Ingress,
                ifindex: 3
            }
        );
    }

    #[test]
    fn decodes_ipv6_and_egress_xdp_codes() {
        let mut h = header(b"");
        h.family = 6;
        h.saddr = "fd77::2".parse::<Ipv6Addr>().unwrap().octets();
        h.daddr = "fd77::1".parse::<Ipv6Addr>().unwrap().octets();
        h.direction = DIRECTION_EGRESS;
        h.hook = HOOK_XDP;
        let bytes = encode(&h, b"", 0);
        let (seg, _) = decode(&bytes, &Clock::with_offset(0)).unwrap();
        assert_eq!(seg.src, "[fd77::2]:41000".parse().unwrap());
        assert!(matches!(
            seg.source,
            Source::Live {
                hook: Hook::Xdp,
                direction: Direction::Egress,
                ..
            }
        ));
        assert!(seg.payload.is_empty());
    }

    #[test]
    fn rejects_corrupt_records() {
        let clock = Clock::with_offset(0);
        assert_eq!(decode(&[0u8; 10], &clock), Err(RecordError::Short(10)));
        let mut h = header(b"abc");
        h.family = 5;
        assert_eq!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::Family(5))
        );
        let mut h = header(b"abc");
        h.captured_len = 9;
        assert!(matches!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::CapturedLen { .. })
        ));
        let mut h = header(b"abc");
        h.payload_len = 2;
        assert!(matches!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::CapturedLen { .. })
        ));
        let mut h = header(b"abc");
        h.hook = 9;
        assert!(matches!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::Origin { .. })
        ));
    }
}

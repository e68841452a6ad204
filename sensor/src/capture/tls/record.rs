//! Decoding of the TLS tap's ring-buffer records (`sensor_ebpf::tls`).
//! Every field relied on is checked, so a corrupt record becomes a counted
//! [`RecordError`], never a panic or a bogus chunk.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sensor_ebpf::tls::{TLS_HEADER_LEN, TlsHeader, flags, kind, op};

use crate::capture::live::Clock;

/// A connection: the gateway process and its `SSL*` (unique until `SSL_free`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The process.
    pub tgid: u32,
    /// The `SSL*`.
    pub ssl: u64,
}

/// The connection's socket, from the gateway's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// The gateway's address and port.
    pub local: SocketAddr,
    /// The peer's.
    pub peer: SocketAddr,
}

/// Who the TLS server is, when the connection's start was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `SSL_set_accept_state`: the gateway serves it.
    Server,
    /// `SSL_set_connect_state`: the gateway opened it (an upstream over TLS).
    Client,
}

/// Which way a chunk of plaintext went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `SSL_read`: from the peer to the gateway.
    Read,
    /// `SSL_write`: from the gateway to the peer.
    Write,
}

impl Op {
    /// 0 (read) or 1 (write), to index per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Self::Read => Self::Write,
            Self::Write => Self::Read,
        }
    }
}

/// One SSL call's plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Its direction.
    pub op: Op,
    /// The connection's call number (from 0).
    pub seq: u32,
    /// Bytes of this direction before it.
    pub offset: u64,
    /// Bytes the call moved.
    pub len: u32,
    /// The first of them (the capture length), empty when the copy failed.
    pub bytes: &'a [u8],
}

/// What a record says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// An SSL call's plaintext.
    Data(Chunk<'a>),
    /// The socket became known.
    Bind,
    /// `SSL_free`.
    Close,
}

/// One decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsRecord<'a> {
    /// The connection.
    pub conn: ConnId,
    /// Wall-clock time, ns since the epoch.
    pub time_ns: u64,
    /// The socket, once bound (IPv4-mapped IPv6 addresses unmapped).
    pub tuple: Option<Tuple>,
    /// Who the server is, when the connection's start was seen.
    pub role: Option<Role>,
    /// What happened.
    pub event: Event<'a>,
}

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Shorter than the fixed header.
    #[error("TLS record of {0} bytes is shorter than the {TLS_HEADER_LEN}-byte header")]
    Short(usize),
    /// `family` is not 0, 4 or 6.
    #[error("unknown address family {0}")]
    Family(u8),
    /// `kind` or `op` is unknown.
    #[error("unknown record kind {kind} or op {op}")]
    Kind {
        /// The kind code.
        kind: u8,
        /// The op code.
        op: u8,
    },
    /// `captured_len` exceeds the record or the call's length.
    #[error("captured length {captured} does not fit (record room {room}, call length {len})")]
    CapturedLen {
        /// Claimed captured bytes.
        captured: u32,
        /// Bytes present after the header.
        room: usize,
        /// The call's length.
        len: u32,
    },
}

/// Decodes one record, borrowing the plaintext from `bytes`.
///
/// # Errors
/// [`RecordError`] when the record is short or a field is out of range.
pub fn decode<'a>(bytes: &'a [u8], clock: &Clock) -> Result<TlsRecord<'a>, RecordError> {
    if bytes.len() < TLS_HEADER_LEN {
        return Err(RecordError::Short(bytes.len()));
    }
    // SAFETY: at least TLS_HEADER_LEN bytes are present; TlsHeader is
    // repr(C) plain data for which every bit pattern is valid.
    let h: TlsHeader = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let tuple = match h.family {
        0 => None,
        4 => Some((ipv4(&h.local), ipv4(&h.peer))),
        6 => Some((ipv6(h.local), ipv6(h.peer))),
        other => return Err(RecordError::Family(other)),
    }
    .map(|(local, peer)| Tuple {
        local: SocketAddr::new(local, h.local_port),
        peer: SocketAddr::new(peer, h.peer_port),
    });
    let role = if h.flags & flags::ACCEPTED != 0 {
        Some(Role::Server)
    } else if h.flags & flags::CONNECTED != 0 {
        Some(Role::Client)
    } else {
        None
    };
    let bad_kind = RecordError::Kind {
        kind: h.kind,
        op: h.op,
    };
    let event = match h.kind {
        kind::DATA => {
            let room = bytes.len() - TLS_HEADER_LEN;
            if h.captured_len as usize > room || h.captured_len > h.full_len {
                return Err(RecordError::CapturedLen {
                    captured: h.captured_len,
                    room,
                    len: h.full_len,
                });
            }
            Event::Data(Chunk {
                op: match h.op {
                    op::READ => Op::Read,
                    op::WRITE => Op::Write,
                    _ => return Err(bad_kind),
                },
                seq: h.seq,
                offset: h.stream_offset,
                len: h.full_len,
                bytes: &bytes[TLS_HEADER_LEN..TLS_HEADER_LEN + h.captured_len as usize],
            })
        }
        kind::BIND if tuple.is_some() => Event::Bind,
        kind::CLOSE => Event::Close,
        _ => return Err(bad_kind),
    };
    Ok(TlsRecord {
        conn: ConnId {
            tgid: h.tgid,
            ssl: h.ssl,
        },
        time_ns: clock.wall_ns(h.ktime_ns),
        tuple,
        role,
        event,
    })
}

fn ipv4(a: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

/// A dual-stack listener's sockets carry IPv4 peers as `::ffff:a.b.c.d`;
/// they are the IPv4 addresses the tc tap sees.
fn ipv6(a: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(a);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a record the way the kernel programs lay it out: the
    /// header, then `capture` bytes of room holding `payload`.
    pub(crate) fn encode(h: &TlsHeader, payload: &[u8], capture: usize) -> Vec<u8> {
        let mut out = vec![0u8; TLS_HEADER_LEN + capture];
        // SAFETY: `out` has room for the header; TlsHeader is plain data.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast(), *h) };
        out[TLS_HEADER_LEN..TLS_HEADER_LEN + payload.len()].copy_from_slice(payload);
        out
    }

    /// A DATA header of connection (7, 0x1000) bound to 10.77.0.1:8443 <-
    /// 10.77.0.2:40000.
    pub(crate) fn data(op_code: u8, seq: u32, offset: u64, payload: &[u8]) -> TlsHeader {
        let mut h = TlsHeader {
            ktime_ns: 5,
            ssl: 0x1000,
            stream_offset: offset,
            tgid: 7,
            seq,
            full_len: payload.len() as u32,
            captured_len: payload.len() as u32,
            local_port: 8443,
            peer_port: 40000,
            family: 4,
            kind: kind::DATA,
            op: op_code,
            flags: flags::ACCEPTED,
            ..TlsHeader::default()
        };
        h.local[..4].copy_from_slice(&[10, 77, 0, 1]);
        h.peer[..4].copy_from_slice(&[10, 77, 0, 2]);
        h
    }

    #[test]
    fn decodes_a_data_record_with_its_tuple_and_role() {
        let h = data(op::READ, 3, 100, b"GET / HTTP/1.1\r\n");
        let bytes = encode(&h, b"GET / HTTP/1.1\r\n", 512);
        let r = decode(&bytes, &Clock::with_offset(10)).unwrap();
        assert_eq!(
            r.conn,
            ConnId {
                tgid: 7,
                ssl: 0x1000
            }
        );
        assert_eq!(r.time_ns, 15);
        assert_eq!(r.role, Some(Role::Server));
        let t = r.tuple.unwrap();
        assert_eq!(t.local, "10.77.0.1:8443".parse().unwrap());
        assert_eq!(t.peer, "10.77.0.2:40000".parse().unwrap());
        let Event::Data(c) = r.event else {
            panic!("{r:?}")
        };
        assert_eq!((c.op, c.seq, c.offset, c.len), (Op::Read, 3, 100, 16));
        assert_eq!(c.bytes, b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn unbound_records_have_no_tuple_and_mapped_addresses_are_unmapped() {
        let mut h = data(op::WRITE, 0, 0, b"x");
        h.family = 0;
        h.flags = 0;
        let bytes = encode(&h, b"x", 8);
        let r = decode(&bytes, &Clock::with_offset(0)).unwrap();
        assert_eq!((r.tuple, r.role), (None, None));
        let mut h = data(op::WRITE, 0, 0, b"");
        h.kind = kind::BIND;
        h.family = 6;
        h.local = "::ffff:10.77.0.1".parse::<Ipv6Addr>().unwrap().octets();
        h.peer = "fd77::2".parse::<Ipv6Addr>().unwrap().octets();
        let bytes = encode(&h, b"", 0);
        let r = decode(&bytes, &Clock::with_offset(0)).unwrap();
        let t = r.tuple.unwrap();
        assert_eq!(t.local, "10.77.0.1:8443".parse().unwrap());
        assert_eq!(t.peer, "[fd77::2]:40000".parse().unwrap());
        assert_eq!(r.event, Event::Bind);
    }

    #[test]
    fn rejects_corrupt_records() {
        let clock = Clock::with_offset(0);
        assert_eq!(decode(&[0; 12], &clock), Err(RecordError::Short(12)));
        let mut h = data(op::READ, 0, 0, b"abc");
        h.family = 5;
        assert_eq!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::Family(5))
        );
        let mut h = data(op::READ, 0, 0, b"abc");
        h.captured_len = 9;
        assert!(matches!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::CapturedLen { .. })
        ));
        let mut h = data(op::READ, 0, 0, b"abc");
        h.op = 7;
        assert!(matches!(
            decode(&encode(&h, b"abc", 8), &clock),
            Err(RecordError::Kind { .. })
        ));
        // A BIND without a tuple says nothing.
        let mut h = data(op::READ, 0, 0, b"");
        h.kind = kind::BIND;
        h.family = 0;
        assert!(matches!(
            decode(&encode(&h, b"", 0), &clock),
            Err(RecordError::Kind { .. })
        ));
    }
}

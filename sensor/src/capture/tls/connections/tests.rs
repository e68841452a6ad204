//! Per-connection ordering: what segments the records of a connection
//! become, and in which order.

use std::net::SocketAddr;

use sensor_ebpf::tcp_flags::{ACK, FIN, PSH, SYN};

use super::*;
use crate::capture::OwnedSegment;

const GATEWAY: &str = "10.77.0.1:8443";
const CLIENT: &str = "10.77.0.2:40000";

fn tuple(local: &str, peer: &str) -> Tuple {
    Tuple {
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
    }
}

fn conn(ssl: u64) -> ConnId {
    ConnId { tgid: 7, ssl }
}

/// A record of connection `ssl` at `t` seconds.
fn record<'a>(
    ssl: u64,
    t: u64,
    tuple: Option<Tuple>,
    role: Option<Role>,
    event: Event<'a>,
) -> TlsRecord<'a> {
    TlsRecord {
        conn: conn(ssl),
        time_ns: t * 1_000_000_000,
        tuple,
        role,
        event,
    }
}

fn data(op: Op, seq: u32, offset: u64, bytes: &[u8]) -> Event<'_> {
    Event::Data(Chunk {
        op,
        seq,
        offset,
        len: bytes.len() as u32,
        bytes,
    })
}

/// Feeds `records`, collecting the segments.
fn play(c: &mut Connections, records: &[TlsRecord<'_>]) -> Vec<OwnedSegment> {
    let mut out = Vec::new();
    for r in records {
        c.record(r, &mut |s| out.push(OwnedSegment::from(s)));
    }
    out
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `(src, flags, seq, ack, payload)` of each segment.
fn shape(segs: &[OwnedSegment]) -> Vec<(SocketAddr, u8, u32, u32, &[u8])> {
    segs.iter()
        .map(|s| (s.src, s.flags, s.seq, s.ack, s.payload.as_slice()))
        .collect()
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn a_read_before_the_socket_is_known_waits_then_goes_out_in_call_order() {
    let mut c = Connections::new(vec![8443]);
    let t = Some(tuple(GATEWAY, CLIENT));
    let server = Some(Role::Server);
    // Read-ahead: the request came with the handshake, no socket call yet.
    let early = play(
        &mut c,
        &[record(1, 1, None, server, data(Op::Read, 0, 0, REQUEST))],
    );
    assert!(early.is_empty());
    let segs = play(
        &mut c,
        &[
            record(1, 2, t, server, Event::Bind),
            record(1, 3, t, server, data(Op::Write, 1, 0, RESPONSE)),
            record(1, 4, t, server, Event::Close),
        ],
    );
    let (req, resp) = (REQUEST.len() as u32, RESPONSE.len() as u32);
    let (gw, cl) = (addr(GATEWAY), addr(CLIENT));
    assert_eq!(
        shape(&segs),
        [
            (cl, SYN, 0, 0, &[][..]),
            (gw, SYN | ACK, 0, 1, &[][..]),
            (cl, ACK, 1, 1, &[][..]),
            (cl, ACK | PSH, 1, 1, REQUEST),
            // The response acknowledges the request the gateway read.
            (gw, ACK | PSH, 1, 1 + req, RESPONSE),
            (gw, FIN | ACK, 1 + resp, 1 + req, &[][..]),
            (cl, FIN | ACK, 1 + req, 2 + resp, &[][..]),
        ]
    );
    assert!(segs.iter().all(|s| s.dst != s.src));
    assert_eq!(
        segs[3].time_ns, 1_000_000_000,
        "the chunk keeps its own time"
    );
    assert!(matches!(
        segs[3].source,
        Source::Tls {
            direction: Direction::Ingress,
            pid: 7
        }
    ));
    assert_eq!(c.counters().delivered, 2);
}

#[test]
fn a_lost_record_leaves_a_hole_at_its_offset_which_the_other_side_acknowledges() {
    let mut c = Connections::new(vec![8443]);
    let t = Some(tuple(GATEWAY, CLIENT));
    let segs = play(
        &mut c,
        &[
            record(1, 1, t, None, data(Op::Read, 0, 0, b"0123456789")),
            // seq 1 (5 bytes at offset 10) was lost to a full ring.
            record(1, 1, t, None, data(Op::Read, 2, 15, b"abc")),
            record(1, 1, t, None, data(Op::Write, 3, 0, b"ok")),
        ],
    );
    // Open before the tap: no handshake, a mid-stream flow.
    assert_eq!(
        shape(&segs),
        [
            (addr(CLIENT), ACK | PSH, 1, 1, &b"0123456789"[..]),
            (addr(CLIENT), ACK | PSH, 16, 1, &b"abc"[..]),
            (addr(GATEWAY), ACK | PSH, 1, 19, &b"ok"[..]),
        ]
    );
}

#[test]
fn interleaved_connections_each_keep_their_order_and_their_tuple() {
    let mut c = Connections::new(vec![8443]);
    let (a, b) = (
        Some(tuple(GATEWAY, CLIENT)),
        Some(tuple(GATEWAY, "10.77.0.3:40001")),
    );
    let segs = play(
        &mut c,
        &[
            record(1, 1, a, None, data(Op::Read, 0, 0, b"GET /a")),
            record(2, 1, None, None, data(Op::Read, 0, 0, b"GET /b")),
            record(1, 1, a, None, data(Op::Read, 1, 6, b" HTTP/1.1")),
            record(2, 2, b, None, Event::Bind),
            record(2, 2, b, None, data(Op::Read, 1, 6, b" HTTP/1.1")),
        ],
    );
    let from = |src: &str| -> Vec<(u32, &[u8])> {
        segs.iter()
            .filter(|s| s.src == addr(src))
            .map(|s| (s.seq, s.payload.as_slice()))
            .collect()
    };
    assert_eq!(from(CLIENT), [(1, &b"GET /a"[..]), (7, b" HTTP/1.1")]);
    assert_eq!(
        from("10.77.0.3:40001"),
        [(1, &b"GET /b"[..]), (7, b" HTTP/1.1")]
    );
}

#[test]
fn only_proxy_traffic_counts() {
    let mut c = Connections::new(vec![8443]);
    // Accepted on the admin API's port: not proxy traffic.
    let admin = Some(tuple("10.77.0.1:8444", CLIENT));
    // Opened by the gateway to an upstream over TLS: the gateway is the client.
    let upstream = Some(tuple("10.77.1.1:51000", "10.77.1.2:443"));
    let segs = play(
        &mut c,
        &[
            record(
                1,
                1,
                admin,
                Some(Role::Server),
                data(Op::Read, 0, 0, REQUEST),
            ),
            record(
                2,
                1,
                upstream,
                Some(Role::Client),
                data(Op::Write, 0, 0, REQUEST),
            ),
        ],
    );
    let gw = addr("10.77.1.1:51000");
    assert_eq!(
        shape(&segs),
        [
            (gw, SYN, 0, 0, &[][..]),
            (addr("10.77.1.2:443"), SYN | ACK, 0, 1, &[][..]),
            (gw, ACK, 1, 1, &[][..]),
            (gw, ACK | PSH, 1, 1, REQUEST),
        ]
    );
    let n = c.counters();
    assert_eq!((n.delivered, n.other_port), (1, 1));
}

#[test]
fn http2_goes_on_as_the_bytes_it_is() {
    let mut c = Connections::new(vec![8443]);
    let t = Some(tuple(GATEWAY, CLIENT));
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let segs = play(
        &mut c,
        &[
            record(1, 1, t, None, data(Op::Read, 0, 0, preface)),
            record(
                1,
                1,
                t,
                None,
                data(Op::Write, 1, 0, b"\0\0\0\x04\0\0\0\0\0"),
            ),
        ],
    );
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].payload, preface);
    assert_eq!(c.counters().delivered, 2);
}

#[test]
fn a_reused_ssl_address_ends_the_old_connection_and_starts_a_new_one() {
    let mut c = Connections::new(vec![8443]);
    let (old, new) = (
        Some(tuple(GATEWAY, CLIENT)),
        Some(tuple(GATEWAY, "10.77.0.2:40002")),
    );
    let server = Some(Role::Server);
    // The old connection's SSL_free record was lost; the kernel started the
    // reused SSL* over (call 0).
    let segs = play(
        &mut c,
        &[
            record(1, 1, old, server, data(Op::Read, 0, 0, REQUEST)),
            record(1, 2, new, server, data(Op::Read, 0, 0, REQUEST)),
        ],
    );
    let flags: Vec<(SocketAddr, u8)> = segs.iter().map(|s| (s.src, s.flags)).collect();
    let (cl, gw, cl2) = (addr(CLIENT), addr(GATEWAY), addr("10.77.0.2:40002"));
    assert_eq!(
        flags,
        [
            (cl, SYN),
            (gw, SYN | ACK),
            (cl, ACK),
            (cl, ACK | PSH),
            (gw, FIN | ACK),
            (cl, FIN | ACK),
            (cl2, SYN),
            (gw, SYN | ACK),
            (cl2, ACK),
            (cl2, ACK | PSH),
        ]
    );
}

#[test]
fn chunks_never_tied_to_a_socket_are_counted() {
    let mut c = Connections::new(vec![8443]);
    let segs = play(
        &mut c,
        &[
            record(1, 1, None, None, data(Op::Read, 0, 0, b"GET")),
            record(1, 2, None, None, Event::Close),
            record(2, 3, None, None, data(Op::Read, 0, 0, b"GET")),
        ],
    );
    assert!(segs.is_empty());
    assert_eq!(c.counters().unbound, 1, "closed unbound");
    c.tick(3_000_000_000 + UNBOUND_WAIT_NS + 1, &mut |_| {
        panic!("nothing to emit")
    });
    assert_eq!(c.counters().unbound, 2, "waited too long");
    let capped: Vec<_> = (0..MAX_PENDING_CHUNKS as u32 + 3)
        .map(|i| record(3, 10, None, None, data(Op::Read, i, u64::from(i), b"x")))
        .collect();
    play(&mut c, &capped);
    assert_eq!(c.counters().unbound, 5, "past the queue's cap");
    c.finish();
    assert_eq!(c.counters().unbound, 5 + MAX_PENDING_CHUNKS as u64);
}

#[test]
fn bytes_beyond_the_capture_are_counted_and_framed_by_length() {
    let mut c = Connections::new(vec![8443]);
    let t = Some(tuple(GATEWAY, CLIENT));
    let big = Event::Data(Chunk {
        op: Op::Write,
        seq: 0,
        offset: 0,
        len: 65536,
        bytes: &RESPONSE[..8],
    });
    let segs = play(&mut c, &[record(1, 1, t, None, big)]);
    assert_eq!((segs[0].payload_len, segs[0].payload.len()), (65536, 8));
    assert_eq!(c.counters().beyond_capture_bytes, 65536 - 8);
}

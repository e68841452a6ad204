//! Framing and pairing cases, driven through the whole pipeline with crafted
//! segments.

use std::net::SocketAddr;

use sensor_ebpf::tcp_flags::{ACK, FIN, PSH, RST, SYN};

use crate::{
    capture::{OwnedSegment, Source},
    collect::collect,
    http::Transaction,
    identity::{FingerprintKey, IdentityConfig, Resolver},
    pipeline::PipelineCounters,
};

const CLIENT: &str = "10.0.0.2:40000";
const SERVER: &str = "10.0.0.1:8000";

/// One TCP connection, written segment by segment.
pub(in crate::http) struct Wire {
    segs: Vec<OwnedSegment>,
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number of client and server.
    seq: [u32; 2],
    time_ns: u64,
    /// Bytes of each segment captured (None: all), as the live tap's prefix.
    snap: Option<usize>,
}

impl Wire {
    pub(in crate::http) fn new() -> Self {
        Self {
            segs: Vec::new(),
            client: CLIENT.parse().unwrap(),
            server: SERVER.parse().unwrap(),
            seq: [1000, 5000],
            time_ns: 1_700_000_000_000_000_000,
            snap: None,
        }
    }

    /// Segments from `time_ns` on.
    pub(in crate::http) fn at(mut self, time_ns: u64) -> Self {
        self.time_ns = time_ns;
        self
    }

    pub(in crate::http) fn handshake(mut self) -> Self {
        self.raw(0, SYN, 0, b"");
        self.raw(1, SYN | ACK, 0, b"");
        self.seq = [1001, 5001];
        self
    }

    /// A segment from side 0 (client) or 1 (server), advancing its sequence.
    fn raw(&mut self, side: usize, flags: u8, len: u32, data: &[u8]) {
        let (src, dst) = if side == 0 {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        self.time_ns = self.time_ns.saturating_add(1_000_000);
        let ack = self.seq[1 - side];
        let keep = self.snap.unwrap_or(data.len()).min(data.len());
        let flags = if flags & SYN != 0 && side == 0 {
            flags
        } else {
            flags | ACK
        };
        self.segs.push(OwnedSegment {
            time_ns: self.time_ns,
            src,
            dst,
            seq: self.seq[side],
            ack,
            flags,
            payload_len: len,
            payload: data[..keep].to_vec(),
            source: Source::File,
        });
        self.seq[side] = self.seq[side].wrapping_add(len);
    }

    pub(in crate::http) fn client(mut self, data: &[u8]) -> Self {
        self.raw(0, PSH, data.len() as u32, data);
        self
    }

    pub(in crate::http) fn server(mut self, data: &[u8]) -> Self {
        self.raw(1, PSH, data.len() as u32, data);
        self
    }

    /// The server acknowledges everything the client sent, with no data.
    pub(in crate::http) fn server_ack(mut self) -> Self {
        self.raw(1, 0, 0, b"");
        self
    }

    pub(in crate::http) fn fin(mut self) -> Self {
        self.raw(0, FIN, 0, b"");
        self.raw(1, FIN, 0, b"");
        self
    }

    pub(in crate::http) fn run(&self) -> (Vec<Transaction>, PipelineCounters) {
        run(&self.segs)
    }
}

fn run(segs: &[OwnedSegment]) -> (Vec<Transaction>, PipelineCounters) {
    let resolver = Resolver::new(
        IdentityConfig::default(),
        FingerprintKey::from_bytes([7; 32]),
    );
    let c = collect(resolver, |p| {
        for s in segs {
            p.segment(&s.as_segment());
        }
    });
    (c.transactions, c.counters)
}

fn statuses(txs: &[Transaction]) -> Vec<(String, String, Option<u16>)> {
    txs.iter()
        .map(|t| (t.method.to_string(), t.path.to_string(), t.status))
        .collect()
}

#[test]
fn a_simple_exchange_yields_every_field() {
    // The client's own X-Kong-Request-Id is attacker-chosen: the id is the
    // one Kong returns.
    let req = b"GET /a?x=1 HTTP/1.1\r\nHost: api.example\r\nUser-Agent: curl/8\r\nX-Kong-Request-Id: forged\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kong-Request-Id: r1\r\n\r\nhello";
    let (txs, c) = Wire::new().handshake().client(req).server(resp).fin().run();
    assert_eq!(txs.len(), 1);
    let t = &txs[0];
    assert_eq!(
        (t.method.as_str(), t.path.as_str(), t.status),
        ("GET", "/a?x=1", Some(200))
    );
    assert_eq!(t.host.as_deref(), Some("api.example"));
    assert_eq!(t.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(t.request_id, Some("r1".into()));
    assert_eq!(t.client_ip.to_string(), "10.0.0.2");
    assert_eq!((t.client_port, t.server_port), (40000, 8000));
    assert_eq!(
        (t.request_bytes, t.response_bytes),
        (req.len() as u64, resp.len() as u64)
    );
    assert_eq!(t.latency_ms, Some(1.0));
    assert_eq!((c.flows.closed, c.http.without_response), (1, 0));
}

#[test]
fn a_head_split_across_segments_is_joined() {
    let (txs, _) = Wire::new()
        .handshake()
        .client(b"GET /split HT")
        .client(b"TP/1.1\r\nHost: h\r\n")
        .client(b"\r\n")
        .server(b"HTTP/1.1 404 Not Found\r\nContent-")
        .server(b"Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/split".into(), Some(404))]);
}

#[test]
fn chunked_bodies_are_framed_across_segments() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .client(b"lo\r\n0\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;ext=1\r\nabc\r\n")
        .server(b"0\r\nTrailer: x\r\n\r\n")
        .client(b"GET /next HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 204 No Content\r\n\r\n")
        .fin()
        .run();
    assert_eq!(
        statuses(&txs),
        [
            ("POST".into(), "/up".into(), Some(200)),
            ("GET".into(), "/next".into(), Some(204))
        ]
    );
    assert_eq!(txs[0].request_bytes, 49 + 6 + 9);
    assert_eq!(c.http.errors, Default::default());
}

#[test]
fn head_and_304_responses_have_no_body() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"HEAD /h HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        .client(b"GET /c HTTP/1.1\r\nIf-None-Match: x\r\n\r\n")
        .server(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n")
        .client(b"GET /d HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .fin()
        .run();
    let got: Vec<_> = txs.iter().map(|t| t.status).collect();
    assert_eq!(got, [Some(200), Some(304), Some(200)]);
    assert_eq!(c.http.skipped_bytes, 0);
}

#[test]
fn continue_interim_responses_are_not_final() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .server(b"HTTP/1.1 100 Continue\r\n\r\n")
        .client(b"body")
        .server(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].status, Some(201));
    assert_eq!(txs[0].response_bytes, 25 + 43);
    assert_eq!(c.http.interim_responses, 1);
}

#[test]
fn a_body_without_length_ends_with_the_connection() {
    let (txs, _) = Wire::new()
        .handshake()
        .client(b"GET /old HTTP/1.0\r\n\r\n")
        .server(b"HTTP/1.0 200 OK\r\n\r\nsome")
        .server(b" more bytes")
        .fin()
        .run();
    assert_eq!(txs[0].status, Some(200));
    assert_eq!(txs[0].response_bytes, 19 + 15);
}

#[test]
fn pipelined_responses_pair_in_order() {
    let (txs, _) = Wire::new()
        .handshake()
        .client(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 404 NF\r\nContent-Length: 1\r\n\r\nx")
        .server(b"HTTP/1.1 500 E\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    let got: Vec<_> = txs.iter().map(|t| (t.path.as_str(), t.status)).collect();
    assert_eq!(
        got,
        [("/1", Some(200)), ("/2", Some(404)), ("/3", Some(500))]
    );
}

#[test]
fn switching_protocols_stops_parsing() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        .server(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        .client(b"\x81\x85garbage frames")
        .server(b"\x81\x05hello")
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/ws".into(), Some(101))]);
    assert_eq!((c.http.tunnels, c.http.skipped_bytes), (1, 0));
    assert_eq!(c.http.errors, Default::default());
}

#[test]
fn bare_lf_line_endings_parse() {
    let (txs, _) = Wire::new()
        .handshake()
        .client(b"GET /lf HTTP/1.1\nHost: h\n\n")
        .server(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/lf".into(), Some(200))]);
}

#[test]
fn oversized_heads_are_counted_and_skipped() {
    let mut big = b"GET /big HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(40 * 1024, b'a');
    let (txs, c) = Wire::new()
        .handshake()
        .client(&big[..20_000])
        .client(&big[20_000..])
        .client(b"\r\n\r\n")
        .client(b"GET /after HTTP/1.1\r\n\r\n")
        .fin()
        .run();
    assert_eq!(c.http.errors.head_too_large, 1);
    assert_eq!(statuses(&txs), [("GET".into(), "/after".into(), None)]);
}

#[test]
fn requests_without_responses_are_emitted_at_close() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"GET /1 HTTP/1.1\r\n\r\n")
        .client(b"GET /2 HTTP/1.1\r\n\r\n")
        .fin()
        .run();
    assert_eq!(
        txs.iter().map(|t| t.status).collect::<Vec<_>>(),
        [None, None]
    );
    assert_eq!(c.http.without_response, 2);
}

#[test]
fn garbage_is_counted_and_the_next_message_found() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"\x16\x03\x01 not http at all\r\n\r\n")
        .client(b"GET /ok HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/ok".into(), Some(200))]);
    assert_eq!(c.http.skipped_bytes, 23);
}

#[test]
fn bad_heads_are_counted_then_resynchronised() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"GET /x HTTP/1.1\r\nBad Header\x00: y\r\n\r\n")
        .client(b"GET /y HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(c.http.errors.bad_request_head, 1);
    assert_eq!(statuses(&txs), [("GET".into(), "/y".into(), Some(200))]);
}

#[test]
fn a_retransmitted_request_is_one_transaction() {
    let mut conn = Wire::new().handshake();
    let req = b"GET /once HTTP/1.1\r\n\r\n";
    conn.raw(0, PSH, req.len() as u32, req);
    conn.seq[0] -= req.len() as u32;
    let conn = conn
        .client(req)
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin();
    let (txs, c) = conn.run();
    assert_eq!(statuses(&txs), [("GET".into(), "/once".into(), Some(200))]);
    assert_eq!(c.flows.retransmitted_bytes, req.len() as u64);
}

#[test]
fn joining_mid_stream_starts_at_the_next_message() {
    let (txs, c) = Wire::new()
        .server(b"tail of a body that started before the capture")
        .client(b"GET /seen HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/seen".into(), Some(200))]);
    assert!(c.http.skipped_bytes > 0);
}

#[test]
fn uncaptured_body_bytes_are_skipped_by_length() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
    resp.resize(resp.len() + 5000, b'z');
    let mut conn = Wire::new().handshake();
    conn.snap = Some(64);
    let (txs, c) = conn
        .client(b"GET /big HTTP/1.1\r\n\r\n")
        .server(&resp)
        .client(b"GET /next HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(
        statuses(&txs),
        [
            ("GET".into(), "/big".into(), Some(200)),
            ("GET".into(), "/next".into(), Some(200))
        ]
    );
    assert_eq!(txs[0].response_bytes, resp.len() as u64);
    assert_eq!(c.http.skipped_bytes, 0);
}

#[test]
fn a_head_cut_by_the_capture_length_keeps_its_first_lines() {
    let mut req = b"GET /long HTTP/1.1\r\nHost: h\r\nUser-Agent: ua\r\nCookie: ".to_vec();
    req.resize(400, b'c');
    req.extend_from_slice(b"\r\n\r\n");
    let mut conn = Wire::new().handshake();
    conn.snap = Some(100);
    let (txs, c) = conn
        .client(&req)
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/long".into(), Some(200))]);
    assert_eq!(txs[0].user_agent.as_deref(), Some("ua"));
    assert_eq!(c.http.truncated_heads, 1);
}

#[test]
fn a_response_lost_in_a_gap_leaves_its_request_unanswered() {
    let mut conn = Wire::new().handshake().client(b"GET /1 HTTP/1.1\r\n\r\n");
    let lost = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    conn.seq[1] += lost.len() as u32; // the capture missed it
    let (txs, c) = conn
        .client(b"GET /2 HTTP/1.1\r\n\r\n")
        .server(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        .client(b"GET /3 HTTP/1.1\r\n\r\n")
        .fin()
        .run();
    let got: Vec<_> = txs.iter().map(|t| (t.path.as_str(), t.status)).collect();
    assert_eq!(got, [("/1", None), ("/2", Some(403)), ("/3", None)]);
    assert_eq!(c.flows.gap_bytes, lost.len() as u64);
}

#[test]
fn a_response_without_a_request_is_counted() {
    let (txs, c) = Wire::new()
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert!(txs.is_empty());
    assert_eq!(c.http.responses_without_request, 1);
}

#[test]
fn reset_ends_the_flow_at_once() {
    let mut conn = Wire::new().handshake().client(b"GET /r HTTP/1.1\r\n\r\n");
    conn.raw(1, RST, 0, b"");
    let (txs, c) = conn.run();
    assert_eq!(txs.len(), 1);
    assert_eq!((c.flows.closed, c.flows.active), (1, 0));
}

#[test]
fn spaces_in_a_request_target_are_escaped_not_lost() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"GET /cgi-bin/x;cat /etc/passwd|?d=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        .fin()
        .run();
    assert_eq!(
        statuses(&txs),
        [(
            "GET".into(),
            "/cgi-bin/x;cat%20/etc/passwd|?d=1".into(),
            Some(404)
        )]
    );
    assert_eq!(c.http.errors, Default::default());
}

#[test]
fn text_protocols_on_other_ports_are_not_taken_for_http() {
    let (txs, c) = Wire::new()
        .handshake()
        .client(b"EHLO client.example\r\n")
        .server(b"250 OK\r\n")
        .client(b"AUTH NTLM TlRMTVNTUAAB\r\n")
        .fin()
        .run();
    assert!(txs.is_empty());
    assert_eq!(c.http.errors, Default::default());
    assert!(c.http.skipped_bytes > 0);
}

#[test]
fn a_late_copy_after_close_is_not_a_new_request() {
    let req = b"GET /once HTTP/1.1\r\n\r\n";
    let mut conn = Wire::new()
        .handshake()
        .client(req)
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .fin();
    conn.seq[0] = 1001; // the request again, after both FINs (TIME_WAIT)
    let conn = conn.client(req);
    let (txs, c) = conn.run();
    assert_eq!(statuses(&txs), [("GET".into(), "/once".into(), Some(200))]);
    assert_eq!(c.flows.flows, 1);

    // A new connection on the same ports (a new SYN) is a new flow.
    let mut again = Wire::new().handshake().client(req).fin();
    again.seq = [90_000, 95_000];
    again.raw(0, SYN, 0, b"");
    again.seq[0] += 1;
    let (txs, c) = again.client(req).fin().run();
    assert_eq!(txs.len(), 2);
    assert_eq!(c.flows.flows, 2);
}

#[test]
fn timestamps_near_the_end_of_time_do_not_wrap() {
    // A crafted pcapng timestamp saturates at u64::MAX in the file reader;
    // every later stage (flow expiry, windows, detectors) must not overflow.
    let req = b"GET /x HTTP/1.1\r\n\r\n";
    let resp = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let mut wire = Wire::new().at(u64::MAX - 3_000_000).handshake();
    for _ in 0..30 {
        wire = wire.client(req).server(resp);
    }
    let (txs, c) = wire.fin().run();
    assert_eq!(txs.len(), 30);
    assert_eq!(c.detect.transactions, 30);
    assert!(txs.iter().all(|t| t.status == Some(404)));
}

#[test]
fn a_forged_request_is_unconfirmed_and_a_taken_one_confirmed() {
    let req = b"GET /admin/login HTTP/1.1\r\nHost: h\r\n\r\n";
    // One spoofed segment: no handshake, no answer.
    let (txs, _) = Wire::new().client(req).run();
    assert_eq!(txs.len(), 1);
    assert!(txs[0].midstream && !txs[0].confirmed, "{:?}", txs[0]);
    // A handshake, then a request the server's TCP acknowledged but never
    // answered: the server took it.
    let (txs, _) = Wire::new().handshake().client(req).server_ack().run();
    assert!(!txs[0].midstream && txs[0].confirmed, "{:?}", txs[0]);
    // The same without the acknowledgement: not confirmed.
    let (txs, _) = Wire::new().handshake().client(req).run();
    assert!(!txs[0].confirmed);
    // Joined mid-connection, but answered: confirmed, and said to be mid-stream.
    let resp = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let (txs, _) = Wire::new().client(req).server(resp).run();
    assert!(txs[0].midstream && txs[0].confirmed, "{:?}", txs[0]);
}

#[test]
fn what_nginx_serves_is_one_transaction() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    // The first segment holds only the method, then one byte at a time.
    let req = b"GET /split?a=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut wire = Wire::new().handshake().client(b"GET");
    for b in &req[3..] {
        wire = wire.client(&[*b]);
    }
    let (txs, _) = wire.server(resp).fin().run();
    assert_eq!(
        statuses(&txs),
        [("GET".into(), "/split?a=1".into(), Some(200))]
    );
    // More headers than the parser's stack slots.
    let mut many = b"GET /many HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let (txs, _) = Wire::new()
        .handshake()
        .client(&many)
        .server(resp)
        .fin()
        .run();
    assert_eq!(statuses(&txs), [("GET".into(), "/many".into(), Some(200))]);
    // Bytes >= 0x80 that are not UTF-8 in the target: kept, escaped.
    let (txs, _) = Wire::new()
        .handshake()
        .client(b"GET /caf\xe9?q=\xff HTTP/1.1\r\nHost: h\r\n\r\n")
        .server(resp)
        .fin()
        .run();
    assert_eq!(
        statuses(&txs),
        [("GET".into(), "/caf%E9?q=%FF".into(), Some(200))]
    );
    assert_eq!(txs[0].route, "/caf%E9");
}

//! HTTP/2 streams through the whole pipeline, from frames built with an
//! HPACK encoder (`loona-hpack`'s, whose dynamic table the decoder must
//! follow).

use loona_hpack::Encoder;

use super::{PREFACE, frame::flag, frame::kind};
use crate::http::tests::Wire;

/// One frame: header and payload.
fn frame(k: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([k, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// SETTINGS with the given (id, value) pairs.
fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = pairs
        .iter()
        .flat_map(|(id, v)| [id.to_be_bytes().to_vec(), v.to_be_bytes().to_vec()].concat())
        .collect();
    frame(kind::SETTINGS, 0, 0, &payload)
}

/// Both sides' HPACK encoders.
struct Peers {
    client: Encoder<'static>,
    server: Encoder<'static>,
}

impl Peers {
    fn new() -> Self {
        Self {
            client: Encoder::new(),
            server: Encoder::new(),
        }
    }

    fn request(&mut self, stream: u32, fields: &[(&str, &str)], flags: u8) -> Vec<u8> {
        let block = self
            .client
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        frame(kind::HEADERS, flags | flag::END_HEADERS, stream, &block)
    }

    fn response(&mut self, stream: u32, fields: &[(&str, &str)], flags: u8) -> Vec<u8> {
        let block = self
            .server
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        frame(kind::HEADERS, flags | flag::END_HEADERS, stream, &block)
    }
}

fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "http".into()),
        (":authority", "api.example".into()),
        (":path", path.into()),
        ("user-agent", "h2load".into()),
    ]
}

fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, s)| (*n, s.as_str())).collect()
}

#[test]
fn streams_are_transactions_with_http1s_fields() {
    let mut p = Peers::new();
    let mut client = PREFACE.to_vec();
    client.extend(settings(&[]));
    // Interleaved streams; the second reuses the first's indexed headers.
    client.extend(p.request(1, &refs(&get("/a?apikey=s3cret")), flag::END_STREAM));
    client.extend(p.request(3, &refs(&get("/b")), flag::END_STREAM));
    let mut server = settings(&[]);
    server.extend(p.response(3, &[(":status", "404"), ("x-kong-request-id", "r3")], 0));
    server.extend(frame(kind::DATA, flag::END_STREAM, 3, b"nope"));
    let head = p.response(1, &[(":status", "200"), ("x-kong-request-id", "r1")], 0);
    server.extend(&head);
    server.extend(frame(kind::DATA, 0, 1, &[0; 100]));
    server.extend(frame(kind::DATA, flag::END_STREAM, 1, b""));
    let (txs, c) = Wire::new()
        .handshake()
        .client(&client)
        .server(&server)
        .fin()
        .run();
    let got: Vec<_> = txs
        .iter()
        .map(|t| {
            (
                t.path.as_str(),
                t.status,
                t.request_id.as_ref().map(ToString::to_string),
                t.http_version,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/b", Some(404), Some("r3".to_owned()), "HTTP/2"),
            (
                "/a?apikey=REDACTED",
                Some(200),
                Some("r1".to_owned()),
                "HTTP/2"
            ),
        ]
    );
    let a = &txs[1];
    assert_eq!(a.host.as_deref(), Some("api.example"));
    assert_eq!(a.user_agent.as_deref(), Some("h2load"));
    assert_eq!(
        a.credentials.len(),
        1,
        "the key in the query is a credential"
    );
    assert_eq!(a.response_bytes, head.len() as u64 + 9 + 100 + 9);
    assert!(a.confirmed && a.latencies.request.is_some());
    assert_eq!(
        (
            c.http.h2.connections,
            c.http.h2.streams,
            c.http.h2.hpack_lost
        ),
        (1, 2, 0)
    );
}

#[test]
fn continuation_padding_priority_and_table_size_updates_are_followed() {
    let mut p = Peers::new();
    let mut client = PREFACE.to_vec();
    // The server allows a larger table; the client's block says so.
    let block = p.client.encode(
        refs(&get("/c"))
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    let (first, rest) = block.split_at(block.len() / 2);
    let mut headers = vec![3]; // pad length
    headers.extend([0, 0, 0, 0, 16]); // priority fields
    headers.extend_from_slice(first);
    headers.extend([0; 3]);
    client.extend(frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_STREAM,
        1,
        &headers,
    ));
    client.extend(frame(kind::CONTINUATION, flag::END_HEADERS, 1, rest));
    let mut server = settings(&[(1, 16384)]);
    server.extend(p.response(1, &[(":status", "200")], flag::END_STREAM));
    let (txs, _) = Wire::new()
        .handshake()
        .client(&client)
        .server(&server)
        .fin()
        .run();
    assert_eq!(txs.len(), 1);
    assert_eq!((txs[0].path.as_str(), txs[0].status), ("/c", Some(200)));
}

#[test]
fn grpc_calls_carry_service_method_and_status() {
    let mut p = Peers::new();
    let mut req = get("/helloworld.Greeter/SayHello");
    req[0].1 = "POST".into();
    req.push(("content-type", "application/grpc".into()));
    let mut client = PREFACE.to_vec();
    client.extend(p.request(1, &refs(&req), 0));
    client.extend(frame(
        kind::DATA,
        flag::END_STREAM,
        1,
        &[0, 0, 0, 0, 2, 8, 1],
    ));
    let mut server = p.response(
        1,
        &[(":status", "200"), ("content-type", "application/grpc")],
        0,
    );
    server.extend(frame(kind::DATA, 0, 1, &[0, 0, 0, 0, 0]));
    server.extend(p.response(
        1,
        &[("grpc-status", "16"), ("grpc-message", "bad\r\ntoken")],
        flag::END_STREAM,
    ));
    let (txs, _) = Wire::new()
        .handshake()
        .client(&client)
        .server(&server)
        .fin()
        .run();
    let g = txs[0].grpc.as_ref().unwrap();
    assert_eq!(
        (g.service.as_str(), g.method.as_str(), g.status),
        ("helloworld.Greeter", "SayHello", Some(16))
    );
    assert_eq!(g.message.as_deref(), Some("bad\\x0D\\x0Atoken"));
    assert_eq!(txs[0].status, Some(200));
    assert_eq!(
        txs[0].outcome_status(),
        Some(401),
        "UNAUTHENTICATED classes as an auth failure"
    );
}

#[test]
fn resets_unanswered_streams_and_garbage_are_counted_not_fatal() {
    let mut p = Peers::new();
    let mut client = PREFACE.to_vec();
    client.extend(p.request(1, &refs(&get("/reset")), flag::END_STREAM));
    client.extend(p.request(3, &refs(&get("/never")), flag::END_STREAM));
    client.extend(frame(kind::RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    // A header block that is not HPACK: the client's table is lost.
    client.extend(frame(
        kind::HEADERS,
        flag::END_HEADERS,
        5,
        &[0x3f, 0xff, 0xff, 0xff, 0xff, 0xff],
    ));
    let (txs, c) = Wire::new()
        .handshake()
        .client(&client)
        .server_ack()
        .fin()
        .run();
    let paths: Vec<_> = txs.iter().map(|t| (t.path.as_str(), t.status)).collect();
    assert_eq!(paths, [("/reset", None), ("/never", None)]);
    assert!(
        txs.iter().all(|t| t.confirmed),
        "acknowledged on a handshaken flow"
    );
    assert_eq!(c.http.h2.hpack_lost, 1);
}

/// The server's frames after a 101 to `Upgrade: h2c`, in each order the
/// wire may give them: after the client's preface, before it (the server
/// need not wait for it, RFC 7540 section 3.2), and in the 101's segment.
#[test]
fn an_h2c_upgrade_continues_stream_one_as_http2() {
    let upgrade =
        b"GET /up HTTP/1.1\r\nHost: api.example\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                    Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo, H2C\r\n\r\n";
    for order in ["preface first", "frames first", "one segment"] {
        let mut p = Peers::new();
        let mut client = PREFACE.to_vec();
        client.extend(settings(&[]));
        client.extend(p.request(3, &refs(&get("/next")), flag::END_STREAM));
        let mut server = settings(&[]);
        server.extend(p.response(1, &[(":status", "200")], flag::END_STREAM));
        let next = p.response(3, &[(":status", "204")], flag::END_STREAM);
        let mut switched = switching.to_vec();
        switched.extend(&server);
        let wire = Wire::new().handshake().client(upgrade);
        let wire = match order {
            "preface first" => wire.server(switching).client(&client).server(&server),
            "frames first" => wire.server(switching).server(&server).client(&client),
            _ => wire.server(&switched).client(&client),
        };
        let (txs, c) = wire.server(&next).fin().run();
        let got: Vec<_> = txs
            .iter()
            .map(|t| (t.path.as_str(), t.status, t.http_version))
            .collect();
        assert_eq!(
            got,
            [
                ("/up", Some(101), "HTTP/1.1"),
                ("/up", Some(200), "HTTP/2"),
                ("/next", Some(204), "HTTP/2")
            ],
            "{order}"
        );
        assert_eq!((c.http.h2.hpack_lost, c.http.h2.framing_lost), (0, 0));
    }
}

#[test]
fn a_websocket_is_one_transaction_with_its_tunnel() {
    let upgrade =
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    // The server's first frame shares the 101's segment.
    let mut switched = switching.to_vec();
    switched.extend([0x81, 0x02, b'h', b'i']);
    let (txs, c) = Wire::new()
        .handshake()
        .client(upgrade)
        .server(&switched)
        .client(&[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        .server(&[0x81, 0x00])
        .fin()
        .run();
    assert_eq!(txs.len(), 1);
    let t = txs[0].tunnel.as_deref().copied().unwrap();
    assert_eq!((t.bytes_to_server, t.bytes_to_client), (11, 6));
    assert!(t.duration_ms > 0.0);
    assert_eq!(c.http.tunnels, 1);
}

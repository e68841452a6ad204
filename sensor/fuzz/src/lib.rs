//! What the fuzz targets in `fuzz_targets/` share: the structured input of
//! `pipeline` and the harness that replays it (detectors included), the byte layout of
//! `http_message`'s input, and the seed inputs of both (valid HTTP
//! exchanges), written to `seeds/` by the ignored test `write_seeds`:
//!
//! ```sh
//! cargo test --manifest-path sensor/fuzz/Cargo.toml -- --ignored write_seeds
//! ```

use std::{io, net::SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use sensor::{
    capture::{Segment, Source},
    detect::{DetectConfig, Detectors},
    flow::{Chunk, FlowLimits},
    http::{
        Body, FramingError, FramingHeaders, HeadLimits, HttpLimits, MessageKind,
        message::{Framer, MessageHandler},
    },
    identity::{FingerprintKey, IdentityConfig, Resolver, Topology},
    pipeline::Pipeline,
    sink::{JsonLines, PayloadRedactor, Records, SegmentLog, Sinks},
};
use sensor_ebpf::tcp_flags::{ACK, FIN, PSH, SYN};

// ---------------------------------------------------------------- pipeline

/// The `pipeline` target's input: segments of two connections between
/// fixed endpoints, and a choice of limits.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Bit 0: tight flow limits (2 flows, 4 held segments, small holds);
    /// bit 1: tight HTTP limits (64-byte heads, 2 waiting requests).
    pub limits: u8,
    /// The segments, in capture order.
    pub segments: Vec<Seg>,
}

/// One segment of [`Input`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Seg {
    /// Connection 1 (IPv6, a client to Kong's proxy port: the client leg)
    /// rather than 0 (IPv4, Kong to an upstream: the upstream leg, where
    /// Kong's headers are read).
    pub conn: bool,
    /// Sent by the server rather than the client.
    pub server: bool,
    /// TCP flags byte.
    pub flags: u8,
    /// Sequence number, as an offset from the sender's base (wrapping).
    pub seq: u32,
    /// Acknowledgement number, as an offset from the receiver's base.
    pub ack: u32,
    /// Payload bytes not captured, after `payload`.
    pub extra: u16,
    /// Milliseconds since the previous segment (may go back).
    pub time_step_ms: i16,
    /// The captured payload.
    pub payload: Payload,
}

/// Payload bytes: a little-endian `u16` length, then that many bytes (fewer
/// when the input runs out). Simpler to write seeds for than `Vec<u8>`'s
/// length-at-the-end encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Payload {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Payload(u.bytes(len)?.to_vec()))
    }
}

/// Sequence bases of client and server: both wrap within a few hundred bytes.
const SEQ_BASE: [u32; 2] = [u32::MAX - 200, (1 << 31) - 100];
/// Time of the first segment, ns since the epoch.
const TIME_BASE_NS: i64 = 1_700_000_000_000_000_000;

/// Client and server of connection `conn`.
fn endpoints(conn: bool) -> [SocketAddr; 2] {
    if conn {
        [
            "[fd00::2]:40001".parse().unwrap(),
            "[fd00::1]:8000".parse().unwrap(),
        ]
    } else {
        [
            "10.0.0.2:40000".parse().unwrap(),
            "10.0.0.1:8080".parse().unwrap(),
        ]
    }
}

/// Feeds `input` to a pipeline with both sinks writing to nowhere, then
/// ends it, checking what must hold whatever the input. Returns the
/// transactions emitted.
pub fn run_pipeline(input: &Input) -> u64 {
    let config = IdentityConfig {
        topology: Topology {
            kong_addresses: vec!["10.0.0.2/32".parse().unwrap()],
            ..Topology::default()
        },
        ..IdentityConfig::default()
    };
    let resolver = Resolver::new(config, FingerprintKey::from_bytes([3; 32]));
    let mut flow = FlowLimits::default();
    if input.limits & 1 != 0 {
        flow = FlowLimits {
            max_flows: 1,
            idle_timeout_ns: 10_000_000_000,
            max_pending_segments: 4,
            max_pending_bytes: 2048,
            max_segment_hold: 512,
            max_buffered_bytes: 3000,
            memory_budget: 64 * 1024,
        };
    }
    let mut http = HttpLimits::default();
    if input.limits & 2 != 0 {
        http = HttpLimits {
            head: HeadLimits { max_head_bytes: 64 },
            max_pending_requests: 2,
        };
    }
    let sinks = Sinks::new(vec![
        Box::new(SegmentLog::new(Box::new(io::sink()), Some(PayloadRedactor::new(vec!["apikey".into()])))),
        Box::new(JsonLines::new(Records::Transactions, "transactions", Box::new(io::sink()))),
        Box::new(JsonLines::new(Records::Alerts, "alerts", Box::new(io::sink()))),
    ]);
    let detectors = Detectors::new(DetectConfig::default()).ok();
    let mut pipeline = Pipeline::new(resolver, flow, http, detectors, sinks);
    let mut time_ns = TIME_BASE_NS;
    for s in &input.segments {
        let [client, server] = endpoints(s.conn);
        let (src, dst, side) = if s.server {
            (server, client, 1)
        } else {
            (client, server, 0)
        };
        time_ns = time_ns.saturating_add(i64::from(s.time_step_ms) * 1_000_000);
        pipeline.segment(&Segment {
            time_ns: time_ns.max(0) as u64,
            src,
            dst,
            seq: SEQ_BASE[side].wrapping_add(s.seq),
            ack: SEQ_BASE[1 - side].wrapping_add(s.ack),
            flags: s.flags,
            payload_len: s.payload.0.len() as u32 + u32::from(s.extra),
            payload: &s.payload.0,
            source: Source::File,
        });
    }
    pipeline.finish(true);
    let c = pipeline.counters();
    assert_eq!((c.flows.active, c.flows.buffered_bytes), (0, 0));
    // Each request counts once, its legs joined; Kong's own requests not.
    assert!(c.detect.transactions <= c.http.transactions);
    c.http.transactions
}

impl Input {
    /// The bytes `arbitrary` decodes into `self` (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.limits];
        for s in &self.segments {
            out.push(1); // one more element
            out.push(u8::from(s.conn));
            out.push(u8::from(s.server));
            out.push(s.flags);
            out.extend_from_slice(&s.seq.to_le_bytes());
            out.extend_from_slice(&s.ack.to_le_bytes());
            out.extend_from_slice(&s.extra.to_le_bytes());
            out.extend_from_slice(&s.time_step_ms.to_le_bytes());
            out.extend_from_slice(&(s.payload.0.len() as u16).to_le_bytes());
            out.extend_from_slice(&s.payload.0);
        }
        out
    }
}

/// Writes connections segment by segment, as a client and server would.
struct Script {
    segments: Vec<Seg>,
    /// Next sequence offset of client and server, per connection.
    next: [[u32; 2]; 2],
}

impl Script {
    fn new() -> Self {
        Self {
            segments: Vec::new(),
            next: [[0; 2]; 2],
        }
    }

    fn send(&mut self, conn: bool, server: bool, flags: u8, data: &[u8]) -> &mut Self {
        let next = &mut self.next[usize::from(conn)];
        let side = usize::from(server);
        let flags = if flags & SYN != 0 && !server {
            flags
        } else {
            flags | ACK
        };
        self.segments.push(Seg {
            conn,
            server,
            flags,
            seq: next[side],
            ack: next[1 - side],
            extra: 0,
            time_step_ms: 1,
            payload: Payload(data.to_vec()),
        });
        let len = data.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        next[side] = next[side].wrapping_add(len);
        self
    }

    fn handshake(&mut self, conn: bool) -> &mut Self {
        self.send(conn, false, SYN, b"").send(conn, true, SYN, b"")
    }

    fn close(&mut self, conn: bool) -> &mut Self {
        self.send(conn, false, FIN, b"").send(conn, true, FIN, b"")
    }

    fn input(&mut self, limits: u8) -> Input {
        Input {
            limits,
            segments: std::mem::take(&mut self.segments),
        }
    }
}

/// Seed inputs of `pipeline`: named valid HTTP exchanges.
pub fn pipeline_seeds() -> Vec<(&'static str, Input)> {
    let get = b"GET /a?apikey=secret HTTP/1.1\r\nHost: api.example\r\nUser-Agent: curl/8\r\n\
                Authorization: Basic dXNlcjpwdw==\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let kong = b"POST /orders HTTP/1.1\r\nHost: kong\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.7\r\n\
                 X-Consumer-Username: alice\r\nX-Kong-Request-Id: r1\r\n\
                 Transfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n";
    let created = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let mut s = Script::new();
    let simple = s.handshake(false).send(false, false, PSH, get);
    let simple = simple.send(false, true, PSH, ok).close(false).input(0);
    let pipelined = s
        .handshake(true)
        .send(
            true,
            false,
            PSH,
            b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\n",
        )
        .send(
            true,
            true,
            PSH,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n",
        )
        .send(
            true,
            true,
            PSH,
            b"Content-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n",
        )
        .send(true, true, PSH, b"Content-Length: 9\r\n\r\n")
        .close(true)
        .input(0);
    let both = s
        .handshake(false)
        .handshake(true)
        .send(false, false, PSH, kong)
        .send(true, false, PSH, get)
        .send(true, true, PSH, ok)
        .send(false, true, PSH, created)
        .close(true)
        .close(false)
        .input(1);
    let mut tight = both.clone();
    tight.limits = 3;
    // Joined mid-stream: no handshake, and a response whose body the
    // capture cut (extra bytes not captured).
    let mut midstream = s
        .send(
            false,
            false,
            PSH,
            b"PUT /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .send(
            false,
            true,
            PSH,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\nxyz",
        )
        .input(0);
    midstream.segments[1].extra = 2997;
    vec![
        ("simple", simple),
        ("pipelined", pipelined),
        ("two_connections", both),
        ("two_connections_tight_limits", tight),
        ("midstream_snapped", midstream),
    ]
}

// ------------------------------------------------------------------ http2

/// The `http2` target's input: chunks of an HTTP/2 connection after the
/// client preface, each from either side, each possibly followed by
/// uncaptured bytes (as the live tap's prefixes leave).
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct H2Input {
    /// Bit 0: tight limits (as `Input::limits`).
    pub limits: u8,
    /// The chunks, in capture order.
    pub chunks: Vec<H2Chunk>,
}

/// One chunk of [`H2Input`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct H2Chunk {
    /// Sent by the server rather than the client.
    pub server: bool,
    /// Bytes after `payload` that were not captured.
    pub extra: u8,
    /// The captured bytes.
    pub payload: Payload,
}

/// The `pipeline` input that plays `input` on connection 1 (the client
/// leg): handshake, preface, the chunks in order, both FINs.
pub fn h2_pipeline_input(input: &H2Input) -> Input {
    let mut s = Script::new();
    s.handshake(true);
    s.send(true, false, PSH, sensor::http::h2::PREFACE);
    for c in &input.chunks {
        s.send(true, c.server, PSH, &c.payload.0);
        if let Some(seg) = s.segments.last_mut() {
            seg.extra = u16::from(c.extra);
        }
        let next = &mut s.next[1][usize::from(c.server)];
        *next = next.wrapping_add(u32::from(c.extra));
    }
    s.close(true);
    s.input(input.limits & 1)
}

/// Seed inputs of `http2`: a GET answered 200 (static-table HPACK).
pub fn http2_seeds() -> Vec<(&'static str, H2Input)> {
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut request = frame(4, 0, 0, &[0, 1, 0, 0, 0x10, 0]);
    let block = [&[0x82, 0x86, 0x84, 0x41, 11][..], b"api.example"].concat();
    request.extend(frame(1, 0x5, 1, &block));
    let mut response = frame(4, 0, 0, &[]);
    response.extend(frame(1, 0x4, 1, &[0x88]));
    response.extend(frame(0, 0x1, 1, b"hello"));
    let chunk = |server, payload: Vec<u8>| H2Chunk {
        server,
        extra: 0,
        payload: Payload(payload),
    };
    vec![(
        "get_200",
        H2Input {
            limits: 0,
            chunks: vec![chunk(false, request), chunk(true, response)],
        },
    )]
}

impl H2Input {
    /// The bytes `arbitrary` decodes into `self` (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.limits];
        for c in &self.chunks {
            out.extend([1, u8::from(c.server), c.extra]);
            out.extend_from_slice(&(c.payload.0.len() as u16).to_le_bytes());
            out.extend_from_slice(&c.payload.0);
        }
        out
    }
}

// ------------------------------------------------------------ http_message

/// Head limits `http_message` picks from (bits 1-2 of its first byte).
const HEAD_LIMITS: [usize; 4] = [16, 200, 4096, 32 * 1024];

/// Feeds one direction's framing with the layout described in
/// `fuzz_targets/http_message.rs`, then closes it, checking that the bytes
/// of framed messages and skipped bytes never exceed the bytes fed.
/// Returns how many messages ended framed.
pub fn run_http_message(data: &[u8]) -> usize {
    let Some((&first, rest)) = data.split_first() else {
        return 0;
    };
    let kind = if first & 1 == 0 {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let limits = HeadLimits {
        max_head_bytes: HEAD_LIMITS[usize::from(first >> 1) & 3],
    };
    let specs = usize::from(first >> 3 & 7) + 1;
    if rest.len() < specs * 2 + 8 {
        return 0;
    }
    let (specs, rest) = rest.split_at(specs * 2);
    let (choices, mut stream) = rest.split_at(8);
    let mut m = Recorder {
        choices,
        next: 0,
        framed: 0,
        framed_bytes: 0,
        skipped: 0,
    };
    let mut framer = Framer::default();
    let mut fed = 0u64;
    // Every spec is used at least once; then specs are reused until the
    // stream is fed, with a bound for specs that feed no bytes.
    let most = specs.len() / 2 + stream.len();
    for (i, spec) in specs.chunks(2).cycle().enumerate().take(most) {
        if stream.is_empty() && i >= specs.len() / 2 {
            break;
        }
        let len = usize::from(spec[0]).min(stream.len());
        let (data, tail) = stream.split_at(len);
        stream = tail;
        let unknown = unknown_bytes(spec[1]);
        let chunk = Chunk {
            time_ns: i as u64 * 1000,
            data,
            unknown,
        };
        fed += data.len() as u64 + unknown;
        framer.chunk(kind, chunk, limits, &mut m);
        assert!(m.framed_bytes + m.skipped <= fed, "{m:?} fed {fed}");
    }
    framer.close(kind, limits, &mut m);
    assert!(m.framed_bytes + m.skipped <= fed, "{m:?} fed {fed}");
    m.framed
}

/// Bytes of unknown content after a chunk, from its spec byte: mostly none,
/// some a few, a few up to 2^31 (a gap the size of a TCP window at most).
fn unknown_bytes(b: u8) -> u64 {
    match b {
        0..=0x7f => 0,
        0x80..=0xef => u64::from(b - 0x7f),
        _ => 1 << (u32::from(b - 0xf0) * 2 + 1),
    }
}

/// A [`MessageHandler`] that picks body framings from the input and
/// counts what the half reports.
#[derive(Debug)]
struct Recorder<'a> {
    /// Framing choices, used in turn (see [`Recorder::body`]).
    choices: &'a [u8],
    next: usize,
    /// Messages whose end was framed.
    framed: usize,
    /// Bytes of messages whose end was framed.
    framed_bytes: u64,
    /// Bytes reported skipped.
    skipped: u64,
}

impl Recorder<'_> {
    /// The next choice: 0-2 the framing the headers say, else in turn none,
    /// a small length, chunked, until close, tunnel.
    fn body(&mut self, headers: &[httparse::Header<'_>], response: Option<u16>) -> Body {
        let c = self.choices[self.next % self.choices.len()];
        self.next += 1;
        match c % 8 {
            3 => Body::None,
            4 => Body::Length(u64::from(c >> 3)),
            5 => Body::Chunked,
            6 => Body::UntilClose,
            7 => Body::Tunnel,
            _ => from_headers(headers, response),
        }
    }
}

/// The framing the sensor reads off the headers (`FramingHeaders`, the
/// same rules the analyzer applies).
fn from_headers(headers: &[httparse::Header<'_>], response: Option<u16>) -> Body {
    let framing = FramingHeaders::scan(headers);
    match response {
        Some(status) => framing.response_body(status, "").0,
        None => framing.request_body().0,
    }
}

impl MessageHandler for Recorder<'_> {
    fn request(&mut self, head: &httparse::Request<'_, '_>, _: u64, _: bool) -> Body {
        self.body(head.headers, None)
    }

    fn response(&mut self, head: &httparse::Response<'_, '_>, _: u64, _: bool) -> Body {
        self.body(head.headers, head.code)
    }

    fn end(&mut self, bytes: u64, framed: bool) {
        if framed {
            self.framed += 1;
            self.framed_bytes += bytes;
        }
    }

    fn error(&mut self, _: FramingError) {}

    fn skipped(&mut self, bytes: u64) {
        self.skipped += bytes;
    }
}

/// Seed inputs of `http_message`: a request stream and a response stream,
/// each cut at a few places.
pub fn http_message_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let requests = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\n\
                     bodyPUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let responses = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
                      helloHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\
                      HTTP/1.1 204 No Content\r\n\r\n";
    // First byte: kind, head limit 32 KiB, 3 chunk specs.
    let seed = |kind: u8, stream: &[u8]| {
        let mut v = vec![kind | 3 << 1 | 2 << 3];
        v.extend_from_slice(&[10, 0, 40, 0, 255, 0]); // chunk lengths, no unknown
        v.extend_from_slice(&[0; 8]); // framing from the headers
        v.extend_from_slice(stream);
        v
    };
    vec![
        ("requests", seed(0, requests)),
        ("responses", seed(1, responses)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_seeds_decode_as_written_and_yield_transactions() {
        let expected = [1, 2, 2, 2, 1];
        for ((name, input), n) in pipeline_seeds().into_iter().zip(expected) {
            let bytes = input.encode();
            let decoded = Input::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
            assert_eq!(decoded, input, "{name}");
            assert_eq!(run_pipeline(&decoded), n, "{name}");
        }
    }

    #[test]
    fn http2_seeds_decode_and_make_their_stream() {
        for (name, input) in http2_seeds() {
            let bytes = input.encode();
            let decoded = H2Input::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
            assert_eq!(decoded, input, "{name}");
            assert_eq!(run_pipeline(&h2_pipeline_input(&decoded)), 1, "{name}");
        }
    }

    #[test]
    fn http_message_seeds_frame_every_message() {
        let framed: Vec<_> = http_message_seeds()
            .iter()
            .map(|(_, seed)| run_http_message(seed))
            .collect();
        assert_eq!(framed, [3, 4]);
    }

    /// Writes the seeds to `seeds/<target>/<name>`.
    #[test]
    #[ignore = "writes seeds/; run by hand after changing the seeds"]
    fn write_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = dir.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        for (name, input) in pipeline_seeds() {
            write("pipeline", name, &input.encode());
        }
        for (name, bytes) in http_message_seeds() {
            write("http_message", name, &bytes);
        }
        for (name, input) in http2_seeds() {
            write("http2", name, &input.encode());
        }
    }
}

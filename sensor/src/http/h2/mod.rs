//! HTTP/2 on one flow (RFC 9113): frames each direction, decodes header
//! blocks with one HPACK table per direction, and makes each stream one
//! [`Transaction`] with the fields HTTP/1.1 gives (method, authority as
//! host, path, status, latencies, identity from the same header rules),
//! plus gRPC's call and `grpc-status`. Bodies are counted, never kept.
//!
//! Chosen per flow by the client connection preface (RFC 9113 section
//! 3.4), TLS or not, or after an HTTP/1.1 `Upgrade: h2c` answered 101
//! (section 3.2: stream 1 is the upgraded request). What goes wrong is
//! counted and bounded: a header block that fails to decode or was not
//! captured leaves its direction's table unknown (its later streams are
//! emitted from what is known), framing lost to uncaptured bytes ends the
//! analysis of that direction, at most [`MAX_STREAMS`] streams are open (the
//! oldest goes out without its response).

mod frame;
pub mod grpc;
mod hpack;
mod streams;
#[cfg(test)]
mod tests;

pub use frame::PREFACE;
use frame::{Frame, FrameReader, flag, kind};
use hpack::{Headers, Hpack};
use streams::{Stream, Streams};

use super::{context::HttpContext, headers::RequestHeaders, transaction::Transaction};
use crate::flow::{Chunk, Direction, FlowInfo};

/// Most streams tracked per connection.
pub const MAX_STREAMS: usize = 256;
/// Most bytes of one header block (HEADERS and its CONTINUATIONs).
const MAX_BLOCK: usize = 64 * 1024;
/// SETTINGS_HEADER_TABLE_SIZE (RFC 9113 section 6.5.2).
const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;

/// A header block being assembled.
#[derive(Debug)]
struct Block {
    stream: u32,
    /// HEADERS (true) or PUSH_PROMISE.
    headers: bool,
    end_stream: bool,
    bytes: Vec<u8>,
}

/// The HTTP/2 state of one flow.
#[derive(Debug)]
pub(super) struct H2 {
    readers: [FrameReader; 2],
    /// Decoders of each direction's header blocks, by [`Direction::index`].
    hpack: [Hpack; 2],
    blocks: [Option<Block>; 2],
    /// Preface bytes still to read from the client.
    preface_left: usize,
    /// Framing lost, per direction.
    lost: [bool; 2],
    streams: Streams,
    /// An h2c upgrade's request: stream 1.
    upgrade: Option<Transaction>,
}

impl H2 {
    /// A connection starting with the client preface; `upgrade` is the
    /// request of an `Upgrade: h2c` (its response comes on stream 1).
    pub(super) fn new(ctx: &mut HttpContext, upgrade: Option<Transaction>) -> Self {
        ctx.counters.h2.connections += 1;
        Self {
            readers: Default::default(),
            hpack: Default::default(),
            blocks: [None, None],
            preface_left: PREFACE.len(),
            lost: [false; 2],
            streams: Streams::default(),
            upgrade,
        }
    }

    /// Takes the next chunk of `direction`.
    pub(super) fn chunk(
        &mut self,
        ctx: &mut HttpContext,
        flow: &FlowInfo,
        direction: Direction,
        chunk: Chunk<'_>,
    ) {
        let Chunk {
            time_ns,
            mut data,
            unknown,
        } = chunk;
        let d = direction.index();
        if self.lost[d] {
            return;
        }
        if direction == Direction::ToServer && self.preface_left > 0 {
            let n = self.preface_left.min(data.len());
            let at = PREFACE.len() - self.preface_left;
            if data[..n] != PREFACE[at..at + n] {
                self.lose_framing(ctx, d);
                return;
            }
            self.preface_left -= n;
            data = &data[n..];
        }
        // The reader is taken out while its frames are handled, so they are
        // handled where they lie in `data` or its buffer, never copied.
        let mut reader = std::mem::take(&mut self.readers[d]);
        let ok = reader.feed(data, unknown, &mut |f: Frame<'_>| {
            self.frame(ctx, flow, direction, f, time_ns);
        });
        self.readers[d] = reader;
        if !ok {
            self.lose_framing(ctx, d);
        }
        self.emit_reset(ctx, flow);
    }

    /// Emits the client-reset streams whose request the server's TCP took.
    fn emit_reset(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        let Some(client) = flow.client else { return };
        let taken = self
            .streams
            .reset_ids(|s| flow.acknowledged(client, s.request_end));
        for id in taken {
            if let Some(s) = self.streams.remove(id) {
                emit(ctx, flow, s);
            }
        }
    }

    /// The flow ended: every stream left goes out as it stands.
    pub(super) fn close(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        for s in self.streams.take_all() {
            emit(ctx, flow, s);
        }
    }

    /// Heap bytes held.
    pub(super) fn memory(&self) -> usize {
        let streams = self.streams.held();
        let blocks: usize = self
            .blocks
            .iter()
            .flatten()
            .map(|b| b.bytes.capacity())
            .sum();
        let tables: usize = self.hpack.iter().map(Hpack::memory).sum();
        streams + blocks + tables + self.readers.iter().map(FrameReader::memory).sum::<usize>()
    }

    /// Drops what it buffers: streams go out, the tables are given up.
    pub(super) fn shed(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        self.close(ctx, flow);
        for d in 0..2 {
            self.blocks[d] = None;
            self.readers[d] = FrameReader::default();
            self.lost[d] = true;
        }
        ctx.counters.shed_messages += 1;
    }

    fn lose_framing(&mut self, ctx: &mut HttpContext, d: usize) {
        self.lost[d] = true;
        self.blocks[d] = None;
        ctx.counters.h2.framing_lost += 1;
    }

    fn frame(
        &mut self,
        ctx: &mut HttpContext,
        flow: &FlowInfo,
        direction: Direction,
        f: Frame<'_>,
        time_ns: u64,
    ) {
        let d = direction.index();
        if let Some(s) = self.streams.get_mut(f.stream) {
            let bytes = 9 + u64::from(f.len);
            match direction {
                Direction::ToServer => s.tx.request_bytes += bytes,
                Direction::ToClient => s.tx.response_bytes += bytes,
            }
        }
        match f.kind {
            kind::SETTINGS if f.flags & flag::ACK == 0 && f.stream == 0 => {
                // A peer's settings bound what the *other* direction encodes.
                for (id, value) in frame::settings(f.payload.unwrap_or_default()) {
                    if id == SETTINGS_HEADER_TABLE_SIZE {
                        self.hpack[1 - d].allow(value);
                    }
                }
            }
            kind::HEADERS | kind::PUSH_PROMISE => {
                let fragment = f.payload.and_then(|p| frame::fragment(f.kind, f.flags, p));
                let Some(fragment) = fragment else {
                    self.lose_table(ctx, d);
                    return;
                };
                self.blocks[d] = Some(Block {
                    stream: f.stream,
                    headers: f.kind == kind::HEADERS,
                    end_stream: f.flags & flag::END_STREAM != 0,
                    bytes: fragment.to_vec(),
                });
                if f.flags & flag::END_HEADERS != 0 {
                    self.block(ctx, flow, direction, time_ns);
                }
            }
            kind::CONTINUATION => {
                let fits = match (&mut self.blocks[d], f.payload) {
                    (Some(b), Some(p))
                        if b.stream == f.stream && b.bytes.len() + p.len() <= MAX_BLOCK =>
                    {
                        b.bytes.extend_from_slice(p);
                        true
                    }
                    _ => false,
                };
                if !fits {
                    self.lose_table(ctx, d);
                } else if f.flags & flag::END_HEADERS != 0 {
                    self.block(ctx, flow, direction, time_ns);
                }
            }
            kind::DATA if f.flags & flag::END_STREAM != 0 => {
                self.end_stream(ctx, flow, direction, f.stream, time_ns);
            }
            kind::RST_STREAM => match direction {
                // The server refused or cancelled it: an answer.
                Direction::ToClient => {
                    if let Some(mut s) = self.streams.remove(f.stream) {
                        s.tx.confirmed = true;
                        emit(ctx, flow, s);
                    }
                }
                Direction::ToServer => {
                    if let Some(s) = self.streams.set_reset(f.stream) {
                        let sent = flow.delivered[direction_endpoint(flow, direction)];
                        s.request_end = s.request_end.min(sent);
                    }
                }
            },
            _ => {}
        }
    }

    /// A header block's table is lost: nothing of that direction is decoded
    /// again.
    fn lose_table(&mut self, ctx: &mut HttpContext, d: usize) {
        self.blocks[d] = None;
        if !self.hpack[d].broken() {
            self.hpack[d].lose();
            ctx.counters.h2.hpack_lost += 1;
        }
    }

    /// A complete header block of `direction`.
    fn block(
        &mut self,
        ctx: &mut HttpContext,
        flow: &FlowInfo,
        direction: Direction,
        time_ns: u64,
    ) {
        let d = direction.index();
        let Some(block) = self.blocks[d].take() else {
            return;
        };
        let was_broken = self.hpack[d].broken();
        let Some(headers) = self.hpack[d].decode(&block.bytes) else {
            if !was_broken {
                ctx.counters.h2.hpack_lost += 1;
            }
            return;
        };
        ctx.counters.h2.capped_blocks += u64::from(headers.capped);
        if !block.headers {
            return; // a push promise: decoded only to keep the table
        }
        match direction {
            Direction::ToServer => self.request(ctx, flow, block.stream, &headers, time_ns),
            Direction::ToClient => self.response(ctx, block.stream, &headers, time_ns),
        }
        if block.end_stream {
            self.end_stream(ctx, flow, direction, block.stream, time_ns);
        }
    }

    fn request(
        &mut self,
        ctx: &mut HttpContext,
        flow: &FlowInfo,
        stream: u32,
        headers: &Headers,
        time_ns: u64,
    ) {
        if self.streams.contains(stream) {
            return; // request trailers
        }
        let Some((client, server)) = flow.client_server() else {
            return;
        };
        ctx.counters.requests += 1;
        let method = headers.get(b":method").unwrap_or_default();
        let target = headers
            .get(b":path")
            .or_else(|| headers.get(b":authority"))
            .unwrap_or_default();
        let fields = http1_fields(headers);
        let resolver = &ctx.resolver;
        let leg = resolver.topology().leg(client, server);
        let scanned = RequestHeaders::scan(&fields, resolver.header_names());
        let target_text = String::from_utf8_lossy(target);
        let (identity, path) = resolver.resolve(client.ip(), leg, &target_text, &scanned.identity);
        let method_text = String::from_utf8_lossy(method);
        let mut tx = Transaction::request(
            time_ns,
            (client, server),
            leg,
            &method_text,
            &target_text,
            path,
            &scanned,
            identity,
        );
        tx.http_version = "HTTP/2";
        tx.midstream = flow.midstream;
        tx.grpc = grpc::call(headers, target).map(Box::new);
        self.open(ctx, flow, stream, tx);
    }

    fn open(&mut self, ctx: &mut HttpContext, flow: &FlowInfo, stream: u32, tx: Transaction) {
        if self.streams.len() >= MAX_STREAMS
            && let Some(oldest) = self.streams.pop_first()
        {
            ctx.counters.h2.evicted_streams += 1;
            emit(ctx, flow, oldest);
        }
        self.streams.insert(stream, Stream::new(tx, u64::MAX));
    }

    fn response(&mut self, ctx: &mut HttpContext, stream: u32, headers: &Headers, time_ns: u64) {
        if stream == 1
            && !self.streams.contains(1)
            && let Some(mut tx) = self.upgrade.take()
        {
            tx.http_version = "HTTP/2";
            tx.status = None;
            tx.request_bytes = 0;
            tx.response_bytes = 0;
            self.streams.insert(1, Stream::new(tx, 0));
        }
        let status = headers
            .get(b":status")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u16>().ok());
        let counters = &mut ctx.counters;
        let found = self.streams.update(stream, |s| {
            match status {
                Some(100..=199) => counters.interim_responses += 1,
                Some(status) if !s.final_status => {
                    s.final_status = true;
                    counters.responses += 1;
                    s.tx.respond(status, time_ns, headers.get(b"x-kong-request-id"));
                }
                _ => {}
            }
            if let Some(g) = &mut s.tx.grpc {
                grpc::outcome(g, headers);
            }
        });
        if !found {
            counters.h2.responses_without_request += 1;
        }
    }

    /// `direction` of `stream` ended (END_STREAM).
    fn end_stream(
        &mut self,
        ctx: &mut HttpContext,
        flow: &FlowInfo,
        direction: Direction,
        stream: u32,
        time_ns: u64,
    ) {
        match direction {
            Direction::ToServer => {
                if let Some(s) = self.streams.get_mut(stream) {
                    s.request_end = flow.delivered[direction_endpoint(flow, direction)];
                }
            }
            Direction::ToClient => {
                if let Some(mut s) = self.streams.remove(stream) {
                    s.tx.end(time_ns);
                    emit(ctx, flow, s);
                }
            }
        }
    }
}

/// The delivered-bytes index of the endpoint sending `direction`.
fn direction_endpoint(flow: &FlowInfo, direction: Direction) -> usize {
    flow.client.map_or(0, |c| match direction {
        Direction::ToServer => c.index(),
        Direction::ToClient => c.peer().index(),
    })
}

/// The regular (non-pseudo) headers as httparse headers, `:authority` as
/// `host` when there is no `host` header, for the one header scan HTTP/1.1
/// uses. Names that are not UTF-8 are left out.
fn http1_fields(headers: &Headers) -> Vec<httparse::Header<'_>> {
    let mut out: Vec<httparse::Header<'_>> = headers
        .fields
        .iter()
        .filter(|(n, _)| !n.starts_with(b":"))
        .filter_map(|(n, v)| {
            Some(httparse::Header {
                name: std::str::from_utf8(n).ok()?,
                value: v,
            })
        })
        .collect();
    if !out.iter().any(|h| h.name == "host")
        && let Some(authority) = headers.get(b":authority")
    {
        out.push(httparse::Header {
            name: "host",
            value: authority,
        });
    }
    out
}

/// Emits a stream's transaction: confirmed when answered, or when the
/// server's TCP acknowledged its request on a handshaken flow.
fn emit(ctx: &mut HttpContext, flow: &FlowInfo, s: Stream) {
    let mut tx = s.tx;
    let acked = flow
        .client
        .is_some_and(|c| flow.acknowledged(c, s.request_end));
    tx.confirmed |= tx.status.is_some() || acked;
    tx.handshake = flow.handshake;
    ctx.counters.h2.streams += 1;
    ctx.emit(Box::new(tx));
}

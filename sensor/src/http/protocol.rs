//! The HTTP analyzer of one flow: which side is the client, and which
//! protocol it speaks — HTTP/1.1 ([`Http1`]) until the client's first bytes
//! are HTTP/2's connection preface (prior knowledge, or TLS with ALPN `h2`:
//! the preface is the same, RFC 9113 section 3.4), or from the byte after
//! a 101 answering `Upgrade: h2c` (RFC 7540 section 3.2: the server's frames
//! may come before the client's preface, even in the 101's segment).

use super::{
    connection::Http1,
    context::HttpContext,
    h2::{H2, PREFACE},
    message::{MessageKind, starts_message},
};
use crate::flow::{Analyzer, Chunk, Direction, Endpoint, FlowInfo};

/// The HTTP state of one flow.
#[derive(Debug, Default)]
pub struct Connection {
    http1: Http1,
    http2: Option<Box<H2>>,
    /// Whether the client has sent anything yet.
    client_spoke: bool,
}

/// Whether `data`, the client's first bytes, start (or are the start of)
/// the HTTP/2 connection preface.
fn preface(data: &[u8]) -> bool {
    let n = data.len().min(PREFACE.len());
    n > 0 && data[..n] == PREFACE[..n]
}

impl Analyzer for Connection {
    type Context = HttpContext;

    fn chunk(
        &mut self,
        ctx: &mut HttpContext,
        flow: &mut FlowInfo,
        from: Endpoint,
        chunk: Chunk<'_>,
    ) {
        let direction = match flow.direction(from) {
            Some(d) => d,
            None if preface(chunk.data) || starts_message(MessageKind::Request, chunk.data) => {
                flow.client = Some(from);
                Direction::ToServer
            }
            None if starts_message(MessageKind::Response, chunk.data) => {
                flow.client = Some(from.peer());
                Direction::ToClient
            }
            None => {
                ctx.counters.skipped_bytes += chunk.data.len() as u64;
                return;
            }
        };
        if direction == Direction::ToServer && self.http2.is_none() {
            if !self.client_spoke && preface(chunk.data) {
                self.http2 = Some(Box::new(H2::new(ctx, None)));
            }
            self.client_spoke = true;
        }
        if let Some(h2) = &mut self.http2 {
            h2.chunk(ctx, flow, direction, chunk);
            return;
        }
        let rest = self.http1.chunk(ctx, flow, direction, chunk);
        if let Some(upgrade) = self.http1.take_h2c() {
            // The 101's exchange goes out now; its response is stream 1's.
            ctx.emit(Box::new(upgrade.clone()));
            let h2 = self.http2.insert(Box::new(H2::new(ctx, Some(upgrade))));
            let data = &chunk.data[chunk.data.len() - rest..];
            h2.chunk(ctx, flow, direction, Chunk { data, ..chunk });
        }
    }

    /// Response bodies only: their bytes come from the server (Kong or its
    /// upstream), never from the client, who may be an attacker.
    fn opaque_ahead(&self, flow: &FlowInfo, from: Endpoint) -> u64 {
        match (&self.http2, flow.direction(from)) {
            (None, Some(Direction::ToClient)) => self.http1.opaque_ahead(Direction::ToClient),
            // Requests; HTTP/2 frames are all read.
            _ => 0,
        }
    }

    fn close(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        self.http1.close(ctx, flow);
        if let Some(h2) = &mut self.http2 {
            h2.close(ctx, flow);
        }
    }

    fn memory(&self) -> usize {
        self.http1.memory() + self.http2.as_ref().map_or(0, |h| h.memory())
    }

    fn shed(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        self.http1.shed(ctx, flow);
        if let Some(h2) = &mut self.http2 {
            h2.shed(ctx, flow);
        }
    }
}

//! The HTTP analyzer of one flow: which side is the client, and which
//! protocol it speaks — HTTP/1.1 ([`Http1`]) until the client's first bytes
//! are HTTP/2's connection preface (prior knowledge, or TLS with ALPN `h2`:
//! the preface is the same, RFC 9113 section 3.4) or an `Upgrade: h2c` was
//! answered 101 and the preface follows (section 3.2).

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
            let opens = !self.client_spoke || self.http1.fresh_tunnel();
            if opens && preface(chunk.data) {
                let upgrade = self.http1.take_upgrade();
                if let Some(tx) = &upgrade {
                    ctx.emit(Box::new(tx.clone()));
                }
                self.http2 = Some(Box::new(H2::new(ctx, upgrade)));
            }
            self.client_spoke = true;
        }
        match &mut self.http2 {
            Some(h2) => h2.chunk(
                ctx,
                flow,
                direction,
                chunk.data,
                chunk.unknown,
                chunk.time_ns,
            ),
            None => self.http1.chunk(ctx, flow, direction, chunk),
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

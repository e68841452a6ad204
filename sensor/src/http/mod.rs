//! HTTP/1.1 analysis: framing both directions of a flow, pairing responses
//! with requests in order (pipelining included), and emitting
//! [`Transaction`]s.
//!
//! A request without a response (one-sided capture, lost response) is still
//! emitted, with no status, when its flow ends or when too many requests
//! wait. A response seen without a request (joined mid-stream) is counted and
//! dropped: a transaction is request-driven.

mod exchange;
pub mod message;
#[cfg(test)]
mod tests;
mod transaction;

use std::collections::VecDeque;

use serde::Serialize;

pub use exchange::HttpContext;
use exchange::{Exchange, Side};
pub use message::{Body, FramingError, HeadLimits, Kind};
pub use transaction::Transaction;

use crate::flow::{Analyzer, Chunk, FlowInfo};
use message::{Half, starts_message};

/// Limits of the HTTP analyzer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Head buffering limit.
    pub head: HeadLimits,
    /// Requests waiting for responses per flow; past it the oldest is emitted
    /// without one.
    pub max_pending_requests: usize,
}

impl Default for HttpLimits {
    /// 32 KiB heads, 64 waiting requests.
    fn default() -> Self {
        Self {
            head: HeadLimits {
                max_head_bytes: 32 * 1024,
            },
            max_pending_requests: 64,
        }
    }
}

/// HTTP analyzer counters (totals).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpCounters {
    /// Transactions emitted.
    pub transactions: u64,
    /// Request heads parsed.
    pub requests: u64,
    /// Final response heads parsed.
    pub responses: u64,
    /// Interim (1xx other than 101) response heads.
    pub interim_responses: u64,
    /// Transactions emitted without a response.
    pub without_response: u64,
    /// Final responses with no request to pair with.
    pub responses_without_request: u64,
    /// Heads parsed from a capture cut short (first lines only).
    pub truncated_heads: u64,
    /// Flows that switched protocols (101, CONNECT) and were left alone.
    pub tunnels: u64,
    /// Bytes skipped while looking for a message start.
    pub skipped_bytes: u64,
    /// Framing losses, by kind.
    pub errors: ErrorCounters,
}

/// Framing losses by kind; each sends a direction back to looking for the
/// next message start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounters {
    /// Request heads httparse rejected.
    pub bad_request_head: u64,
    /// Response heads httparse rejected.
    pub bad_response_head: u64,
    /// Heads over the size limit.
    pub head_too_large: u64,
    /// Heads cut by uncaptured bytes that could not be salvaged.
    pub head_truncated: u64,
    /// Bad chunked framing.
    pub bad_chunk: u64,
    /// Bad or conflicting Content-Length.
    pub bad_content_length: u64,
}

/// The HTTP state of one flow.
#[derive(Debug, Default)]
pub struct Conn {
    halves: [Half; 2],
    /// Requests in order, each waiting for its response or its emission.
    exchanges: VecDeque<Exchange>,
    /// The response half lost its framing since the last response.
    response_resynced: bool,
    /// The connection switched protocols; nothing more is parsed.
    tunnel: bool,
    /// The response in progress is interim (1xx).
    interim: bool,
    /// The response in progress answers no known request.
    orphan: bool,
}

impl Analyzer for Conn {
    type Context = HttpContext;

    fn chunk(&mut self, ctx: &mut HttpContext, flow: &mut FlowInfo, side: usize, chunk: Chunk<'_>) {
        let client = match flow.client {
            Some(c) => c,
            None if starts_message(Kind::Request, chunk.data) => *flow.client.insert(side),
            None if starts_message(Kind::Response, chunk.data) => *flow.client.insert(1 - side),
            None => {
                ctx.counters.skipped_bytes += chunk.data.len() as u64;
                return;
            }
        };
        let kind = if side == client {
            Kind::Request
        } else {
            Kind::Response
        };
        let limits = ctx.limits.head;
        let mut half = std::mem::take(&mut self.halves[side]);
        half.chunk(kind, chunk, limits, &mut Side::new(self, ctx, flow, kind));
        self.halves[side] = half;
        self.after(ctx);
    }

    fn close(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        if let Some(client) = flow.client {
            for side in [client, 1 - client] {
                let kind = if side == client {
                    Kind::Request
                } else {
                    Kind::Response
                };
                let mut half = std::mem::take(&mut self.halves[side]);
                half.close(kind, ctx.limits.head, &mut Side::new(self, ctx, flow, kind));
            }
        }
        while let Some(e) = self.exchanges.pop_front() {
            ctx.emit(e);
        }
    }
}

impl Conn {
    /// Emits finished exchanges in request order and bounds the queue.
    fn after(&mut self, ctx: &mut HttpContext) {
        if self.tunnel {
            for half in &mut self.halves {
                half.tunnel();
            }
        }
        while self.exchanges.front().is_some_and(Exchange::done)
            || self.exchanges.len() > ctx.limits.max_pending_requests
        {
            if let Some(e) = self.exchanges.pop_front() {
                ctx.emit(e);
            }
        }
    }
}

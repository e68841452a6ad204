//! What every flow's HTTP analyzer shares: limits, counters, identity
//! resolution and the transactions emitted.

use serde::Serialize;

use super::{message::HeadLimits, transaction::Transaction};
use crate::identity::Resolver;

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
    /// Messages in progress dropped to stay within the memory budget.
    pub shed_messages: u64,
    /// Framing losses, by kind.
    pub errors: ErrorCounters,
    /// HTTP/2.
    pub h2: super::h2::H2Counters,
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

/// What every flow's HTTP analyzer shares: identity resolution, limits,
/// counters, and the transactions emitted and not yet taken.
pub struct HttpContext {
    /// Client IP and credential resolution.
    pub(super) resolver: Resolver,
    /// Limits.
    pub(super) limits: HttpLimits,
    /// Counters.
    pub counters: HttpCounters,
    /// Transactions emitted, oldest first, until [`HttpContext::drain`].
    emitted: Vec<Transaction>,
}

impl HttpContext {
    /// A context with no transactions yet.
    pub fn new(resolver: Resolver, limits: HttpLimits) -> Self {
        Self {
            resolver,
            limits,
            counters: HttpCounters::default(),
            emitted: Vec::new(),
        }
    }

    /// Takes the transactions emitted so far, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Transaction> {
        self.emitted.drain(..)
    }

    /// Counts and queues a finished transaction.
    pub(super) fn emit(&mut self, tx: Transaction) {
        self.counters.transactions += 1;
        if tx.status.is_none() {
            self.counters.without_response += 1;
        }
        self.emitted.push(tx);
    }
}

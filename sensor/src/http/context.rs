//! What every flow's HTTP analyzer shares: limits, counters, identity
//! resolution and the transactions emitted.

use super::{counters::HttpCounters, message::HeadLimits, transaction::Transaction};
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

/// What every flow's HTTP analyzer shares: identity resolution, limits,
/// counters, and the transactions emitted and not yet taken.
pub struct HttpContext {
    /// Client IP and credential resolution.
    pub(super) resolver: Resolver,
    /// Limits.
    pub(super) limits: HttpLimits,
    /// Counters.
    pub counters: HttpCounters,
    /// Transactions emitted, oldest first, until [`HttpContext::drain`];
    /// boxed where they were parsed, so each hand-over moves a pointer.
    #[allow(clippy::vec_box)]
    emitted: Vec<Box<Transaction>>,
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

    /// Whether any transaction waits to be taken by [`HttpContext::drain`].
    pub fn has_emitted(&self) -> bool {
        !self.emitted.is_empty()
    }

    /// Takes the transactions emitted so far, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Box<Transaction>> {
        self.emitted.drain(..)
    }

    /// Counts and queues a finished transaction.
    pub(super) fn emit(&mut self, tx: Box<Transaction>) {
        self.counters.transactions += 1;
        if tx.status.is_none() {
            self.counters.without_response += 1;
        }
        self.emitted.push(tx);
    }
}

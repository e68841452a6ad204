//! HTTP/1.1 analysis: framing both directions of a flow, pairing responses
//! with requests in order (pipelining included), and emitting
//! [`Transaction`]s.
//!
//! One concept per file: `message.rs` frames one direction's byte stream
//! into heads and bodies; `connection.rs` is a flow's analyzer, pairing
//! each direction's messages into exchanges; `headers.rs` is the one scan
//! of a request's headers; `transaction.rs` the unit emitted.
//!
//! A request without a response (one-sided capture, lost response) is still
//! emitted, with no status, when its flow ends or when too many requests
//! wait. A response seen without a request (joined mid-stream) is counted
//! and dropped: a transaction is request-driven.

mod connection;
mod context;
mod headers;
pub mod message;
mod route;
#[cfg(test)]
mod tests;
mod transaction;

pub use connection::Connection;
pub use context::{ErrorCounters, HttpContext, HttpCounters, HttpLimits};
pub use headers::RequestHeaders;
pub use message::{Body, FramingError, FramingHeaders, HeadLimits, MessageKind};
pub use route::route;
pub use transaction::{Latencies, Transaction, UpstreamLeg};

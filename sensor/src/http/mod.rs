//! HTTP analysis: HTTP/1.1 (framing both directions of a flow, pairing
//! responses with requests in order, pipelining included) and HTTP/2
//! (streams, HPACK, gRPC), emitting [`Transaction`]s.
//!
//! One concept per file: `protocol.rs` is a flow's analyzer, choosing the
//! protocol; `message.rs` frames one direction's HTTP/1.1 byte stream into
//! heads and bodies, parsing a head with `strict_head.rs`'s fast path or
//! httparse; `connection.rs` pairs them into exchanges; `h2/` is
//! HTTP/2; `context.rs` and `counters.rs` are
//! what every flow's analyzer shares; `headers.rs` is the one scan of a request's headers;
//! `transaction.rs` the unit emitted, `request_id.rs` the id that joins
//! its legs.
//!
//! A request without a response (one-sided capture, lost response) is still
//! emitted, with no status, when its flow ends or when too many requests
//! wait. A response seen without a request (joined mid-stream) is counted
//! and dropped: a transaction is request-driven.

mod connection;
mod context;
mod counters;
pub mod h2;
mod headers;
pub mod message;
mod protocol;
mod request_id;
mod route;
mod strict_head;
#[cfg(test)]
mod strict_head_tests;
#[cfg(test)]
mod tests;
mod transaction;

pub use context::{HttpContext, HttpLimits};
pub use counters::{ErrorCounters, H2Counters, HttpCounters};
pub use h2::grpc::Grpc;
pub use headers::RequestHeaders;
pub use message::{Body, FramingError, FramingHeaders, HeadLimits, MessageKind};
pub use protocol::Connection;
pub use request_id::RequestId;
pub use route::route;
pub use transaction::{Latencies, Transaction, Tunnel, UpstreamLeg};

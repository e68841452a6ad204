//! The HTTP analyzers' counters (totals), exported as metrics.

use serde::Serialize;

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
    pub h2: H2Counters,
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

/// HTTP/2 counters (totals).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct H2Counters {
    /// Flows read as HTTP/2.
    pub connections: u64,
    /// Streams emitted as transactions.
    pub streams: u64,
    /// Directions whose HPACK table became unknown (a block failed to
    /// decode, was not captured, or was too large).
    pub hpack_lost: u64,
    /// Directions whose framing was lost to uncaptured bytes.
    pub framing_lost: u64,
    /// Header blocks whose headers were capped (an "HPACK bomb").
    pub capped_blocks: u64,
    /// Streams emitted early: more than [`MAX_STREAMS`](super::h2::MAX_STREAMS) open.
    pub evicted_streams: u64,
    /// Responses on streams with no request seen.
    pub responses_without_request: u64,
}

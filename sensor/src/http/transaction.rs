//! The HTTP transaction: one request and its response, the unit every
//! detector consumes.

use std::net::IpAddr;

use serde::Serialize;

use crate::identity::Fingerprint;

/// One request and, when it was seen, its final response.
///
/// Serializes to one JSON object whose keys are the field names, with
/// `time_ns` as `time` in RFC 3339 (nanoseconds, UTC).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transaction {
    /// Time of the request's first byte, ns since the Unix epoch.
    #[serde(rename = "time", serialize_with = "crate::time::rfc3339")]
    pub time_ns: u64,
    /// The client: the TCP peer, or the address a trusted proxy reported
    /// (see [`crate::identity`]).
    pub client_ip: IpAddr,
    /// The TCP peer's port.
    pub client_port: u16,
    /// The server's address.
    pub server_ip: IpAddr,
    /// The server's port.
    pub server_port: u16,
    /// Request method, e.g. `GET`.
    pub method: String,
    /// `Host` header, else the authority of an absolute-form target.
    pub host: Option<String>,
    /// Request target with secret-looking query values redacted.
    pub path: String,
    /// Final (non-1xx) response status; `None` when no response was seen.
    pub status: Option<u16>,
    /// From the request's first byte to the final response's first byte, ms.
    pub latency_ms: Option<f64>,
    /// Request bytes on the wire: head and body.
    pub request_bytes: u64,
    /// Response bytes on the wire: interim and final heads and the body.
    pub response_bytes: u64,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Non-secret principal: Basic user name, JWT `sub`, Kong consumer.
    pub principal: Option<String>,
    /// Keyed fingerprint of the credential, never the credential.
    pub credential: Option<Fingerprint>,
    /// Kong consumer (`X-Consumer-Username`, else `X-Consumer-ID`).
    pub consumer: Option<String>,
    /// `X-Kong-Request-Id` (else `X-Request-Id`) of the request, else of the
    /// response.
    pub request_id: Option<String>,
    /// The request came from Kong on its way to an upstream: it carried
    /// `X-Kong-Request-Id` (Kong >= 3.5 adds it to upstream requests; clients
    /// do not send it) or an `X-Consumer-*` header. Not serialized.
    #[serde(skip)]
    pub upstream_leg: bool,
}

//! gRPC over HTTP/2 (grpc/grpc "PROTOCOL-HTTP2.md"): the call from the
//! path, the outcome from the `grpc-status` trailer.

use serde::Serialize;

use super::hpack::Headers;
use crate::text::{Field, render};

/// A gRPC call (gRPC over HTTP/2, "PROTOCOL-HTTP2.md" of grpc/grpc).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Grpc {
    /// The service, from the path `/SERVICE/METHOD`.
    pub service: String,
    /// The method.
    pub method: String,
    /// `grpc-status` of the trailers (or a trailers-only response); `None`
    /// when none was seen.
    pub status: Option<u32>,
    /// `grpc-message`, rendered and capped like any attacker-chosen text.
    pub message: Option<String>,
}

/// A gRPC call's record, when `request` is one (`content-type:
/// application/grpc...`): service and method from `/SERVICE/METHOD`.
pub fn call(request: &Headers, path: &[u8]) -> Option<Grpc> {
    let content_type = request.get(b"content-type")?;
    if !content_type.starts_with(b"application/grpc") {
        return None;
    }
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let (service, method) = match path.iter().position(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, &b""[..]),
    };
    Some(Grpc {
        service: render(service, Field::Path),
        method: render(method, Field::Path),
        status: None,
        message: None,
    })
}

/// Fills in `grpc-status` and `grpc-message` from a response's trailers
/// (or a trailers-only response's headers).
pub fn outcome(grpc: &mut Grpc, headers: &Headers) {
    if let Some(status) = headers
        .get(b"grpc-status")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
    {
        grpc.status = Some(status);
    }
    if let Some(message) = headers.get(b"grpc-message") {
        grpc.message = Some(render(message, Field::UserAgent));
    }
}

/// The HTTP status a non-zero `grpc-status` stands for, so the detectors
/// class gRPC failures with HTTP's (the reverse of gRPC's "HTTP to gRPC
/// Status Code Mapping", doc/http-grpc-status-mapping.md, and
/// google.rpc.Code's documented HTTP mapping): UNAUTHENTICATED 401,
/// PERMISSION_DENIED 403, NOT_FOUND 404, RESOURCE_EXHAUSTED 429,
/// INVALID_ARGUMENT/FAILED_PRECONDITION/OUT_OF_RANGE 400, ALREADY_EXISTS and
/// ABORTED 409, CANCELLED 499, UNIMPLEMENTED 501, UNAVAILABLE 503,
/// DEADLINE_EXCEEDED 504, UNKNOWN/INTERNAL/DATA_LOSS 500.
pub fn http_status(code: u32) -> Option<u16> {
    Some(match code {
        0 => return None,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    })
}

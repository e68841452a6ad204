//! The HTTP transaction: one request and its response, the unit every
//! detector consumes.

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
};

use compact_str::CompactString;
use serde::Serialize;

use super::{
    h2::grpc::{self, Grpc},
    headers::RequestHeaders,
    request_id::RequestId,
    route::route,
};
use crate::{
    identity::{Credentials, Identity, Leg, Principal},
    text::{Field, render_compact},
};

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
    pub method: CompactString,
    /// Which leg the request travelled, by topology.
    pub leg: Leg,
    /// `Host` header, else the authority of an absolute-form target.
    pub host: Option<CompactString>,
    /// Request target as received, with secret-looking query values
    /// redacted (up to 24 bytes held without a heap allocation).
    pub path: CompactString,
    /// The path the server routes it to (see `route.rs`): what decoys and
    /// per-route keys match.
    pub route: CompactString,
    /// Final (non-1xx) response status; `None` when no response was seen.
    pub status: Option<u16>,
    /// From the request's first byte to the final response's first byte, ms.
    pub latency_ms: Option<f64>,
    /// Request bytes on the wire: head and body.
    pub request_bytes: u64,
    /// Response bytes on the wire: interim and final heads and the body.
    pub response_bytes: u64,
    /// `User-Agent` header.
    pub user_agent: Option<CompactString>,
    /// Non-secret principal and where it came from (Kong's consumer, a
    /// Basic user name, an unverified JWT `sub`, ...); serialized as
    /// `principal` and `principal_source`.
    #[serde(flatten)]
    pub principal: Option<Principal>,
    /// Keyed fingerprints of every credential, never a credential.
    pub credentials: Credentials,
    /// Kong consumer (`X-Consumer-Username`, else `X-Consumer-ID`).
    pub consumer: Option<String>,
    /// Kong's `X-Consumer-ID` (the consumer's id).
    pub consumer_id: Option<String>,
    /// The credential Kong authenticated the request with (its
    /// `X-Credential-Identifier` on the upstream leg, fingerprinted; one of
    /// `credentials`): the credential the request counts for when known.
    pub kong_credential: Option<crate::identity::Fingerprint>,
    /// The flow was joined mid-connection (no SYN seen): open before the
    /// capture started, or forged.
    pub midstream: bool,
    /// The server took the request: it answered it, or its TCP acknowledged
    /// the request's bytes on a flow whose handshake was seen. A forged
    /// segment (no handshake, spoofed source) never is; detectors count
    /// only confirmed requests.
    pub confirmed: bool,
    /// The flow's three-way handshake was seen (a SYN from each side, each
    /// acknowledged): the client's address really sent it.
    #[serde(skip)]
    pub handshake: bool,
    /// The client IP is the TCP peer (see
    /// [`crate::identity::Identity::client_is_peer`]).
    #[serde(skip)]
    pub client_is_peer: bool,
    /// The client sent Kong's consumer headers itself (see
    /// [`crate::identity::Identity::claims_consumer`]).
    #[serde(skip)]
    pub claims_consumer: bool,
    /// Kong's request id: on the upstream leg the `X-Kong-Request-Id` (else
    /// `X-Request-Id`) Kong sent with the request; on the client leg the
    /// one Kong returned with the response (a client's own header is never
    /// read: it is attacker-chosen).
    pub request_id: Option<RequestId>,
    /// Latencies in Kong's terms, from the legs seen (see [`Latencies`]).
    pub latencies: Latencies,
    /// The upstream leg of the same request (joined by request id), on a
    /// client-leg transaction whose upstream leg was seen.
    pub upstream: Option<UpstreamLeg>,
    /// The protocol: `HTTP/1.1` or `HTTP/2`.
    pub http_version: &'static str,
    /// gRPC facts, for a gRPC call (`content-type: application/grpc`).
    pub grpc: Option<Box<Grpc>>,
    /// What a tunnel carried after this request switched protocols (101:
    /// WebSocket; 2xx to CONNECT), reported when the connection ended.
    pub tunnel: Option<Box<Tunnel>>,
    /// Time of the final response's last byte, ns since the epoch.
    #[serde(skip)]
    pub response_end_ns: Option<u64>,
}

/// What a tunnel carried.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tunnel {
    /// Bytes the client sent through it.
    pub bytes_to_server: u64,
    /// Bytes the server sent through it.
    pub bytes_to_client: u64,
    /// From the switch to the connection's last segment, ms.
    pub duration_ms: f64,
}

/// Per-request latencies as Kong's log plugins report them (Kong docs,
/// "Log plugins: latencies"), in ms, each `None` when its leg was not
/// seen whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latencies {
    /// `latencies.request`: the client leg, from the request's first byte
    /// to the response's last byte.
    pub request: Option<f64>,
    /// `latencies.proxy`: the upstream's share, the upstream leg from the
    /// request's first byte to the response's last byte.
    pub proxy: Option<f64>,
    /// `latencies.kong`: Kong's own share, `request - proxy`.
    pub kong: Option<f64>,
}

/// What the upstream leg of a joined request adds to its client leg.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpstreamLeg {
    /// The upstream server's address.
    pub server_ip: IpAddr,
    /// Its port.
    pub server_port: u16,
    /// The target Kong sent upstream (redacted; `strip_path` and the
    /// service path may make it differ from the client's).
    pub path: Option<CompactString>,
    /// The upstream's final status (the client may have had another).
    pub status: Option<u16>,
    /// From Kong's request's first byte to the upstream's first response
    /// byte, ms.
    pub latency_ms: Option<f64>,
}

impl Transaction {
    /// A transaction for a request that started at `time_ns` on the flow
    /// between `(client, server)` on `leg`: its `method`, its `target` as
    /// received, that target redacted (`path`), its scanned headers and the
    /// identity resolved from them. No response yet.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        time_ns: u64,
        (client, server): (SocketAddr, SocketAddr),
        leg: Leg,
        method: &str,
        target: &str,
        path: Cow<'_, str>,
        headers: &RequestHeaders<'_>,
        identity: Identity,
    ) -> Self {
        let path_text = render_compact(path.as_bytes(), Field::Path);
        let route = route_text(&path, &path_text);
        Self {
            time_ns,
            client_ip: identity.client_ip,
            client_is_peer: identity.client_is_peer,
            claims_consumer: identity.claims_consumer,
            handshake: false,
            client_port: client.port(),
            server_ip: server.ip(),
            server_port: server.port(),
            method: method_text(method),
            leg,
            host: headers
                .host
                .or_else(|| authority(target))
                .map(|h| render_compact(without_userinfo(h), Field::Host)),
            route,
            path: path_text,
            status: None,
            latency_ms: None,
            request_bytes: 0,
            response_bytes: 0,
            midstream: false,
            confirmed: false,
            user_agent: headers
                .user_agent
                .map(|v| render_compact(v, Field::UserAgent)),
            principal: identity.principal,
            credentials: identity.credentials,
            consumer: identity.consumer,
            consumer_id: identity.consumer_id,
            kong_credential: identity.kong_credential,
            // A client's own X-Kong-Request-Id is attacker-chosen: on the
            // client leg the id is the one Kong returns (`respond`).
            request_id: match leg {
                Leg::Upstream => headers.any_request_id().map(RequestId::new),
                Leg::Client => None,
            },
            latencies: Latencies::default(),
            upstream: None,
            http_version: "HTTP/1.1",
            grpc: None,
            tunnel: None,
            response_end_ns: None,
        }
    }

    /// The final response ended at `time_ns`: the leg's own latency in
    /// Kong's terms (`request` on the client leg, `proxy` upstream).
    pub fn end(&mut self, time_ns: u64) {
        self.response_end_ns = Some(time_ns);
        let ms = Some(ms_between(self.time_ns, time_ns));
        match self.leg {
            Leg::Client => self.latencies.request = ms,
            Leg::Upstream => self.latencies.proxy = ms,
        }
    }

    /// The status the detectors class: a gRPC call's non-zero
    /// `grpc-status` as the HTTP status it stands for
    /// ([`grpc::http_status`]), else the HTTP status.
    pub fn outcome_status(&self) -> Option<u16> {
        match self.grpc.as_ref().and_then(|g| g.status) {
            Some(code) if code != 0 => grpc::http_status(code),
            _ => self.status,
        }
    }

    /// Heap bytes its fields hold (for the memory budget).
    pub fn heap_bytes(&self) -> usize {
        let compact = [
            Some(&self.method),
            self.host.as_ref(),
            Some(&self.route),
            Some(&self.path),
            self.user_agent.as_ref(),
            self.upstream.as_ref().and_then(|u| u.path.as_ref()),
        ];
        let compact = compact
            .iter()
            .flatten()
            .filter(|s| s.is_heap_allocated())
            .map(|s| s.capacity())
            .sum::<usize>();
        let strings = [
            self.principal.as_ref().map(|p| &p.name),
            self.consumer.as_ref(),
            self.consumer_id.as_ref(),
        ];
        let credentials = if self.credentials.spilled() {
            self.credentials.capacity() * std::mem::size_of::<crate::identity::Fingerprint>()
        } else {
            0
        };
        // The rare parts, boxed so the record moves cheaply.
        let grpc = self.grpc.as_ref().map_or(0, |g| {
            std::mem::size_of::<Grpc>()
                + g.service.capacity()
                + g.method.capacity()
                + g.message.as_ref().map_or(0, String::capacity)
        });
        let tunnel = self
            .tunnel
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<Tunnel>());
        strings
            .iter()
            .flatten()
            .map(|s| s.capacity())
            .sum::<usize>()
            + compact
            + self.request_id.as_ref().map_or(0, RequestId::heap_bytes)
            + credentials
            + grpc
            + tunnel
    }

    /// The final response's head arrived at `time_ns` with `status`; its
    /// request id fills in one the request lacked. Returns the heap bytes
    /// this added (what [`Transaction::heap_bytes`] grew by).
    pub fn respond(&mut self, status: u16, time_ns: u64, request_id: Option<&[u8]>) -> usize {
        self.status = Some(status);
        self.latency_ms = Some(ms_between(self.time_ns, time_ns));
        if self.request_id.is_some() {
            return 0;
        }
        self.request_id = request_id.map(RequestId::new);
        self.request_id.as_ref().map_or(0, RequestId::heap_bytes)
    }
}

/// Milliseconds from `start_ns` to `end_ns` (0 if earlier), to the µs.
fn ms_between(start_ns: u64, end_ns: u64) -> f64 {
    (end_ns.saturating_sub(start_ns) / 1000) as f64 / 1000.0
}

/// The authority of an absolute-form target (`http://host:port/path`).
fn authority(target: &str) -> Option<&[u8]> {
    let rest = target.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &rest.as_bytes()[..end])
}

/// The route of `path` as text, `path_text` being `path` rendered. A clean
/// route is a slice of the path: when the path renders as it is (the rule
/// changed no byte and cut none), so does the route, unchecked again.
fn route_text(path: &str, path_text: &str) -> CompactString {
    match route(path.as_bytes()) {
        Cow::Borrowed(route) if path_text.as_bytes() == path.as_bytes() => route.into(),
        route => render_compact(route.as_bytes(), Field::Path),
    }
}

/// The method as text: the methods of RFC 9110 section 9 and PATCH (RFC
/// 5789) as constants, any other by the rendering rule.
fn method_text(method: &str) -> CompactString {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|m| **m == method) {
        Some(m) => CompactString::const_new(m),
        None => render_compact(method.as_bytes(), Field::Method),
    }
}

/// `authority` without a `userinfo@` (RFC 3986 section 3.2.1: deprecated,
/// and a secret when present), in an absolute-form target or a forged
/// `Host`.
fn without_userinfo(authority: &[u8]) -> &[u8] {
    match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    }
}

#[cfg(test)]
impl Transaction {
    /// A confirmed client-leg `GET /v1/items?page=2` from `ip` to
    /// 10.0.0.1:8000 at `time_ns`, answered `status` 1 ms later (tests).
    pub(crate) fn sample(ip: &str, time_ns: u64, status: u16) -> Self {
        Self {
            time_ns,
            client_ip: ip.parse().unwrap(),
            client_port: 40000,
            server_ip: "10.0.0.1".parse().unwrap(),
            server_port: 8000,
            method: "GET".into(),
            leg: Leg::Client,
            host: Some("api.example".into()),
            path: "/v1/items?page=2".into(),
            route: "/v1/items".into(),
            status: Some(status),
            latency_ms: Some(1.0),
            request_bytes: 100,
            response_bytes: 200,
            midstream: false,
            confirmed: true,
            handshake: true,
            client_is_peer: true,
            claims_consumer: false,
            user_agent: None,
            principal: None,
            credentials: Credentials::new(),
            consumer: None,
            consumer_id: None,
            kong_credential: None,
            request_id: None,
            latencies: Latencies::default(),
            upstream: None,
            http_version: "HTTP/1.1",
            grpc: None,
            tunnel: None,
            response_end_ns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts give what the rendering rule gives: a method, and a
    /// route from a path that renders as it is, or not (escaped, cut).
    #[test]
    fn shortcuts_render_as_the_rule_does() {
        let methods = [
            "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT",
        ];
        for m in methods
            .into_iter()
            .chain(["TRACE", "get", "PROPFIND", "GE", "GETX", "G\x01T"])
        {
            assert_eq!(
                method_text(m),
                render_compact(m.as_bytes(), Field::Method),
                "{m}"
            );
        }
        let long = format!("/{}?q=1", "a".repeat(Field::Path.cap()));
        let paths = [
            "/v1/items?page=2",
            "/a\\b?c",
            "/a%41/b",
            "/x//y",
            "/\u{e9}t\u{e9}",
            "",
            "*",
        ];
        for path in paths
            .into_iter()
            .chain([long.as_str(), "/a\x1b[31m/b?x", "/p?\\"])
        {
            let path_text = render_compact(path.as_bytes(), Field::Path);
            let want = render_compact(route(path.as_bytes()).as_bytes(), Field::Path);
            assert_eq!(route_text(path, &path_text), want, "{path:?}");
        }
    }
}

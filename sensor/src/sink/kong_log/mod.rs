//! Transactions in the shape of Kong's log serializer (the JSON object
//! Kong's log plugins write: file-log, http-log, tcp-log, syslog; Kong
//! docs, "Log format"), so pipelines built on Kong's logs read the
//! sensor's output unchanged (`--transactions-format kong`).
//!
//! | Kong field | from |
//! |---|---|
//! | `client_ip` | the client IP (the TCP peer, or the address a trusted proxy or Kong named) |
//! | `started_at` | the request's first byte, ms since the epoch |
//! | `request.method`, `.uri`, `.size` | method, target as sent (redacted), request bytes |
//! | `request.url` | `http(s)://HOST` + target (`https` for Kong's TLS listener ports 8443 and 443) |
//! | `request.querystring` | the target's query parameters, values redacted as in `uri` |
//! | `request.headers` | `host`, `user-agent` only (the sensor keeps no other header) |
//! | `upstream_uri` | the upstream leg's target (redacted), when it was seen |
//! | `response.status`, `.size` | the client's status (null when none was seen) and response bytes |
//! | `response.headers` | `x-kong-request-id` |
//! | `latencies.request`, `.proxy`, `.kong` | Kong's latencies, whole ms (null when a leg was not seen) |
//! | `tries` | the upstream leg's server (`ip`, `port`), when seen |
//! | `service` | `host` and `port` of the upstream leg's server, when seen |
//! | `consumer.username`, `.id` | Kong's `X-Consumer-Username` / `X-Consumer-ID` on the upstream leg |
//! | `authenticated_entity.id` | the fingerprint of Kong's `X-Credential-Identifier` (never the identifier) |
//! | `authenticated_entity.consumer_id` | `X-Consumer-ID` |
//! | `source` | `upstream` when the upstream leg answered, `kong` when Kong answered alone |
//! | `route`, `workspaces` | null and empty: route and workspace ids never cross the wire |

use std::{borrow::Cow, collections::BTreeMap, net::IpAddr};

use serde::{Serialize, Serializer};
use smallvec::SmallVec;

use crate::{
    http::{RequestId, Transaction},
    identity::{Fingerprint, Leg},
};

/// Kong's TLS proxy ports (kong.conf `proxy_listen` 8443 and the common
/// 443 mapping): requests to them were `https`.
const TLS_PORTS: [u16; 2] = [8443, 443];

/// One transaction in Kong's log shape, borrowing from it: serialized
/// straight to JSON, with no intermediate `serde_json::Value`. Fields are
/// declared in byte order, at every level, so the object's keys come out
/// sorted, as they did when the record was built as a `Value`.
#[derive(Debug, Serialize)]
pub struct KongRecord<'t> {
    authenticated_entity: Entity<'t>,
    client_ip: IpAddr,
    consumer: Consumer<'t>,
    latencies: Latencies,
    request: Request<'t>,
    response: Response<'t>,
    /// Always null: route ids never cross the wire.
    route: (),
    service: Option<Server>,
    source: Option<&'static str>,
    /// ms since the epoch.
    started_at: u64,
    #[serde(serialize_with = "zero_or_one")]
    tries: Option<Try>,
    upstream_uri: Option<&'t str>,
    /// Always empty: workspace ids never cross the wire.
    workspaces: [(); 0],
}

/// `authenticated_entity`: Kong's credential (its fingerprint) and consumer.
#[derive(Debug, Serialize)]
struct Entity<'t> {
    consumer_id: Option<&'t str>,
    id: Option<Fingerprint>,
}

/// `consumer`: the `X-Consumer-*` headers Kong sent upstream.
#[derive(Debug, Serialize)]
struct Consumer<'t> {
    created_at: (),
    id: Option<&'t str>,
    username: Option<&'t str>,
}

/// Kong's latencies in whole ms.
#[derive(Debug, Serialize)]
struct Latencies {
    kong: Option<u64>,
    proxy: Option<u64>,
    request: Option<u64>,
}

/// `request`: the client's request as the sensor kept it.
#[derive(Debug, Serialize)]
struct Request<'t> {
    headers: RequestHeaders<'t>,
    method: &'t str,
    querystring: BTreeMap<&'t str, Param<'t>>,
    size: u64,
    uri: &'t str,
    url: Cow<'t, str>,
}

/// `request.headers`: the two request headers the sensor keeps, when sent.
#[derive(Debug, Serialize)]
struct RequestHeaders<'t> {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'t str>,
    #[serde(rename = "user-agent", skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'t str>,
}

/// `response`: the client's response.
#[derive(Debug, Serialize)]
struct Response<'t> {
    headers: ResponseHeaders<'t>,
    size: u64,
    status: Option<u16>,
}

/// `response.headers`: Kong's request id (null when none was seen).
#[derive(Debug, Serialize)]
struct ResponseHeaders<'t> {
    #[serde(rename = "x-kong-request-id")]
    request_id: Option<&'t RequestId>,
}

/// `service`: the upstream leg's server.
#[derive(Debug, Serialize)]
struct Server {
    host: IpAddr,
    port: u16,
}

/// One of `tries`: the upstream leg's server.
#[derive(Debug, Serialize)]
struct Try {
    ip: IpAddr,
    port: u16,
}

/// One value of a query parameter: its text, or `true` for a name
/// without `=`.
#[derive(Debug, Clone, Copy)]
struct One<'t>(Option<&'t str>);

impl Serialize for One<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) => s.serialize_str(v),
            None => s.serialize_bool(true),
        }
    }
}

/// A query parameter's values: one as itself, a repeated name's as an
/// array (as `kong.request.get_query()`).
#[derive(Debug, Default)]
struct Param<'t>(SmallVec<[One<'t>; 1]>);

impl Serialize for Param<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            values => s.collect_seq(values),
        }
    }
}

/// `tries`: an array of the one try seen, or empty.
fn zero_or_one<S: Serializer>(tried: &Option<Try>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(tried)
}

/// `tx` as Kong's log serializer would have written it.
pub fn record(tx: &Transaction) -> KongRecord<'_> {
    let scheme = if TLS_PORTS.contains(&tx.server_port) {
        "https"
    } else {
        "http"
    };
    let url = if tx.path.starts_with('/') {
        let host = tx
            .host
            .as_deref()
            .map_or_else(|| tx.server_ip.to_string(), str::to_owned);
        Cow::Owned(format!("{scheme}://{host}{}", tx.path))
    } else {
        Cow::Borrowed(tx.path.as_str())
    };
    let upstream = tx.upstream.as_ref();
    let whole_ms = |ms: Option<f64>| ms.map(|ms| ms.round() as u64);
    let source = match (upstream, tx.leg, tx.status) {
        (Some(_), _, _) | (None, Leg::Upstream, _) => Some("upstream"),
        (None, Leg::Client, Some(_)) => Some("kong"),
        (None, Leg::Client, None) => None,
    };
    KongRecord {
        authenticated_entity: Entity {
            consumer_id: tx.consumer_id.as_deref(),
            id: tx.kong_credential,
        },
        client_ip: tx.client_ip,
        consumer: Consumer {
            created_at: (),
            id: tx.consumer_id.as_deref(),
            username: tx.consumer.as_deref(),
        },
        latencies: Latencies {
            kong: whole_ms(tx.latencies.kong),
            proxy: whole_ms(tx.latencies.proxy),
            request: whole_ms(tx.latencies.request),
        },
        request: Request {
            headers: RequestHeaders {
                host: tx.host.as_deref(),
                user_agent: tx.user_agent.as_deref(),
            },
            method: &tx.method,
            querystring: querystring(&tx.path),
            size: tx.request_bytes,
            uri: &tx.path,
            url,
        },
        response: Response {
            headers: ResponseHeaders {
                request_id: tx.request_id.as_ref(),
            },
            size: tx.response_bytes,
            status: tx.status,
        },
        route: (),
        service: upstream.map(|u| Server {
            host: u.server_ip,
            port: u.server_port,
        }),
        source,
        started_at: tx.time_ns / 1_000_000,
        tries: upstream.map(|u| Try {
            ip: u.server_ip,
            port: u.server_port,
        }),
        upstream_uri: upstream.and_then(|u| u.path.as_deref()),
        workspaces: [],
    }
}

/// The query parameters of `target` (already redacted) as Kong's
/// `querystring` object: `name` -> its values (see [`Param`]).
fn querystring(target: &str) -> BTreeMap<&str, Param<'_>> {
    let mut out: BTreeMap<&str, Param<'_>> = BTreeMap::new();
    let query = target
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or_default());
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        out.entry(name).or_default().0.push(One(value));
    }
    out
}

#[cfg(test)]
mod tests;

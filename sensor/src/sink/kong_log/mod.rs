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

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{http::Transaction, identity::Leg};

/// Kong's TLS proxy ports (kong.conf `proxy_listen` 8443 and the common
/// 443 mapping): requests to them were `https`.
const TLS_PORTS: [u16; 2] = [8443, 443];

/// `tx` as Kong's log serializer would have written it.
pub fn record(tx: &Transaction) -> Value {
    let scheme = if TLS_PORTS.contains(&tx.server_port) {
        "https"
    } else {
        "http"
    };
    let host = tx
        .host
        .as_deref()
        .map_or_else(|| tx.server_ip.to_string(), str::to_owned);
    let url = if tx.path.starts_with('/') {
        format!("{scheme}://{host}{}", tx.path)
    } else {
        tx.path.to_string()
    };
    let mut headers = BTreeMap::new();
    if let Some(h) = &tx.host {
        headers.insert("host", h.as_str());
    }
    if let Some(ua) = &tx.user_agent {
        headers.insert("user-agent", ua.as_str());
    }
    let upstream = tx.upstream.as_ref();
    let whole_ms = |ms: Option<f64>| ms.map(|ms| ms.round() as u64);
    let source = match (upstream, tx.leg, tx.status) {
        (Some(_), _, _) | (None, Leg::Upstream, _) => Some("upstream"),
        (None, Leg::Client, Some(_)) => Some("kong"),
        (None, Leg::Client, None) => None,
    };
    json!({
        "client_ip": tx.client_ip,
        "started_at": tx.time_ns / 1_000_000,
        "request": {
            "method": tx.method,
            "uri": tx.path,
            "url": url,
            "size": tx.request_bytes,
            "querystring": querystring(&tx.path),
            "headers": headers,
        },
        "upstream_uri": upstream.and_then(|u| u.path.clone()),
        "response": {
            "status": tx.status,
            "size": tx.response_bytes,
            "headers": {"x-kong-request-id": tx.request_id},
        },
        "latencies": {
            "request": whole_ms(tx.latencies.request),
            "proxy": whole_ms(tx.latencies.proxy),
            "kong": whole_ms(tx.latencies.kong),
        },
        "tries": upstream
            .map(|u| vec![json!({"ip": u.server_ip, "port": u.server_port})])
            .unwrap_or_default(),
        "service": upstream.map(|u| json!({"host": u.server_ip, "port": u.server_port})),
        "route": Value::Null,
        "workspaces": [],
        "consumer": {
            "username": tx.consumer,
            "id": tx.consumer_id,
            "created_at": Value::Null,
        },
        "authenticated_entity": {
            "id": tx.kong_credential,
            "consumer_id": tx.consumer_id,
        },
        "source": source,
    })
}

/// The query parameters of `target` (already redacted) as Kong's
/// `querystring` object: `name` -> value, `true` for a name without `=`, an
/// array for a repeated name (as `kong.request.get_query()`).
fn querystring(target: &str) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let query = target
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or_default());
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Value::from(v)),
            None => (param, Value::Bool(true)),
        };
        match out.get_mut(name) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                out.insert(name.to_owned(), value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

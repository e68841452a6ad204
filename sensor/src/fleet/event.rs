//! The messages on the fleet stream: one compact JSON object each, a
//! request event or a node's heartbeat, told apart by `type`.
//!
//! ```json
//! {"type":"request","node":"gw-1","time_ns":1767225600123456789,"client_ip":"10.77.0.13",
//!  "status":200,"class":"2xx","method":"GET","host":"api.example","route":"/api/orders",
//!  "principal":"dave","principal_source":"kong_consumer",
//!  "credentials":["6ad8fd86ed4a3a9b1e18f026b67b3972"],"kong_credential":"6ad8fd86ed4a3a9b1e18f026b67b3972",
//!  "consumer":"dave","request_id":"5e0f3c…","confirmed":true}
//! {"type":"heartbeat","node":"gw-1","time_ns":1767225601000000000}
//! ```
//!
//! A request event carries what the detectors read from a transaction,
//! nothing else: never a secret (credentials are keyed fingerprints, the
//! route is the normalised path without its query, every text field was
//! rendered and capped when the transaction was made). Absent values are
//! left out. Readers ignore fields they do not know, so fields are only
//! ever added.
//!
//! A heartbeat's `time_ns` is the node's promise: it has published every
//! request event older than that, but for requests slower than the
//! fleet's lateness allowance (see `watermark`).

use std::{borrow::Cow, net::IpAddr};

use serde::{Deserialize, Serialize};

use crate::{
    http::{Latencies, RequestId, Transaction},
    identity::{Credentials, Fingerprint, Leg, Principal, PrincipalSource},
    text::{Field, render},
};

/// Longest node name, bytes.
pub const MAX_NODE: usize = 64;

/// Whether `name` can name a node: 1 to [`MAX_NODE`] ASCII letters,
/// digits, `.`, `_` or `-` (it appears in alerts, syslog records and
/// metric labels as it is).
pub fn valid_node(name: &str) -> bool {
    (1..=MAX_NODE).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A message on the fleet stream.
// One message lives at a time, decoded and taken apart at once: boxing
// the request would cost an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "decoded one at a time and taken apart at once: a box would cost an allocation per event"
)]
pub enum Message<'a> {
    /// One request a node's detectors counted.
    Request(Event<'a>),
    /// A node's clock, sent on each partition it has sent nothing to for
    /// a second.
    Heartbeat(Heartbeat),
}

impl Message<'_> {
    /// The node that sent it.
    pub fn node(&self) -> &str {
        match self {
            Self::Request(e) => &e.node,
            Self::Heartbeat(h) => &h.node,
        }
    }

    /// Its event time, ns since the epoch.
    pub fn time_ns(&self) -> u64 {
        match self {
            Self::Request(e) => e.time_ns,
            Self::Heartbeat(h) => h.time_ns,
        }
    }
}

/// A node's clock (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node (`--publish-node`).
    pub node: String,
    /// Every request event before this time was published, ns since the epoch.
    pub time_ns: u64,
}

/// One request, as the fleet's detectors need it. A sensor's event
/// borrows its text from the transaction ([`Event::new`]), so encoding it
/// copies each string once, into the message; a decoded one owns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// The node whose sensor saw it (`--publish-node`).
    pub node: Cow<'a, str>,
    /// The request's first byte, ns since the epoch.
    pub time_ns: u64,
    /// The client: the TCP peer, or the address a trusted proxy or Kong named.
    pub client_ip: IpAddr,
    /// The outcome status the detectors class, when a response was seen:
    /// the HTTP status, or a gRPC call's non-zero `grpc-status` as the HTTP
    /// status it stands for ([`Transaction::outcome_status`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The status class, `1xx` to `5xx`, or `none` (for readers; the fleet
    /// goes by `status`).
    #[serde(default)]
    pub class: Cow<'a, str>,
    /// Request method.
    pub method: Cow<'a, str>,
    /// `Host`, when sent (decoys may name hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Cow<'a, str>>,
    /// The normalised route (the path Kong routes, no query).
    pub route: Cow<'a, str>,
    /// The non-secret principal, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Cow<'a, str>>,
    /// Where the principal's name came from (`kong_consumer`,
    /// `basic_user`, `jwt_sub_unverified`, `digest_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_source: Option<PrincipalSource>,
    /// Keyed fingerprints of every credential the request carried (every
    /// node must share the fingerprint key: `--fingerprint-key`).
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub credentials: Cow<'a, [Fingerprint]>,
    /// The credential Kong authenticated, when Kong named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kong_credential: Option<Fingerprint>,
    /// Kong's consumer, when Kong named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<Cow<'a, str>>,
    /// Kong's request id, when seen (as its text; read back by
    /// [`RequestId::new`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// The server took the request (see [`Transaction::confirmed`]).
    pub confirmed: bool,
}

/// `1xx` ... `5xx`, or `none`.
fn class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "none",
    }
}

impl<'a> Event<'a> {
    /// The event of `tx`, seen by `node`, borrowing their text.
    pub fn new(node: &'a str, tx: &'a Transaction) -> Self {
        Self {
            node: node.into(),
            time_ns: tx.time_ns,
            client_ip: tx.client_ip,
            status: tx.outcome_status(),
            class: class(tx.outcome_status()).into(),
            method: tx.method.as_str().into(),
            host: tx.host.as_deref().map(Cow::from),
            route: tx.route.as_str().into(),
            principal: tx.principal.as_ref().map(|p| p.name.as_str().into()),
            principal_source: tx.principal.as_ref().map(|p| p.source),
            credentials: tx.credentials.as_slice().into(),
            kong_credential: tx.kong_credential,
            consumer: tx.consumer.as_deref().map(Cow::from),
            request_id: tx.request_id.clone(),
            confirmed: tx.confirmed,
        }
    }

    /// The credentials `credential_spread` counts the request for: Kong's
    /// when it named one, else every one it carried.
    pub fn counted_credentials(&self) -> &[Fingerprint] {
        match &self.kong_credential {
            Some(fp) => std::slice::from_ref(fp),
            None => &self.credentials,
        }
    }

    /// The transaction the detectors take: a client-leg record with the
    /// event's fields, every text rendered and capped again (the stream
    /// is input like any other), the route standing in for the path in
    /// evidence, and nothing the event does not carry (ports, sizes,
    /// latencies).
    pub fn transaction(&self) -> Transaction {
        let text = |s: &str, field| render(s.as_bytes(), field);
        let principal = match (&self.principal, self.principal_source) {
            (Some(name), Some(source)) => Principal::new(name.as_bytes(), source),
            _ => None,
        };
        let route = text(&self.route, Field::Path);
        Transaction {
            time_ns: self.time_ns,
            client_ip: self.client_ip,
            client_port: 0,
            server_ip: IpAddr::from([0, 0, 0, 0]),
            server_port: 0,
            method: text(&self.method, Field::Method).into(),
            leg: Leg::Client,
            host: self.host.as_deref().map(|h| text(h, Field::Host).into()),
            path: route.as_str().into(),
            route: route.into(),
            status: self.status,
            latency_ms: None,
            request_bytes: 0,
            response_bytes: 0,
            user_agent: None,
            principal,
            credentials: self.credentials.iter().copied().collect::<Credentials>(),
            consumer: self.consumer.as_deref().map(|c| text(c, Field::Principal)),
            consumer_id: None,
            kong_credential: self.kong_credential,
            midstream: false,
            confirmed: self.confirmed,
            // A fleet event is never a packet source of this node.
            handshake: false,
            client_is_peer: false,
            claims_consumer: false,
            request_id: self.request_id.clone(),
            latencies: Latencies::default(),
            upstream: None,
            response_end_ns: None,
            // Not carried: the detectors do not need them.
            http_version: "HTTP/1.1",
            grpc: None,
            tunnel: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::FingerprintKey;

    fn sample() -> Transaction {
        let fp = FingerprintKey::from_bytes([1; 32]).fingerprint(b"key");
        let mut tx = Transaction::sample("10.0.0.7", 1_000, 401);
        tx.credentials.push(fp);
        tx.kong_credential = Some(fp);
        tx.principal = Principal::new(b"dave", PrincipalSource::KongConsumer);
        tx.consumer = Some("dave".into());
        tx.request_id = Some("abc".into());
        tx
    }

    #[test]
    fn round_trips_what_the_detectors_read() {
        let tx = sample();
        let message = Message::Request(Event::new("gw-1", &tx));
        let json = serde_json::to_string(&message).unwrap();
        assert!(
            json.starts_with(r#"{"type":"request","node":"gw-1","time_ns":1000,"#),
            "{json}"
        );
        assert!(json.contains(r#""class":"4xx""#), "{json}");
        assert!(!json.contains("page=2"), "the query stays home: {json}");
        let Message::Request(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a request");
        };
        let rebuilt = back.transaction();
        for (a, b) in [
            (rebuilt.client_ip.to_string(), tx.client_ip.to_string()),
            (rebuilt.method.to_string(), tx.method.to_string()),
            (rebuilt.route.to_string(), tx.route.to_string()),
            (format!("{:?}", rebuilt.host), format!("{:?}", tx.host)),
            (
                format!("{:?}", rebuilt.principal),
                format!("{:?}", tx.principal),
            ),
            (
                format!("{:?}", rebuilt.credentials),
                format!("{:?}", tx.credentials),
            ),
            (
                format!("{:?}", rebuilt.kong_credential),
                format!("{:?}", tx.kong_credential),
            ),
            (
                format!("{:?}", rebuilt.request_id),
                format!("{:?}", tx.request_id),
            ),
        ] {
            assert_eq!(a, b);
        }
        assert_eq!(
            (rebuilt.time_ns, rebuilt.status, rebuilt.confirmed),
            (1_000, Some(401), true)
        );
    }

    /// The wire form, byte for byte: nodes of two versions share a
    /// stream, so a change here must be one the analysers read.
    #[test]
    fn the_encoding_is_pinned() {
        let mut tx = sample();
        tx.request_id = Some(RequestId::new(b"0123456789abcdef0123456789abcdef"));
        let json = serde_json::to_string(&Message::Request(Event::new("gw-1", &tx))).unwrap();
        let fp = "0f69b1b7dc8bc30337a362a966ae3c7e";
        assert_eq!(
            json,
            format!(
                r#"{{"type":"request","node":"gw-1","time_ns":1000,"client_ip":"10.0.0.7","status":401,"class":"4xx","method":"GET","host":"api.example","route":"/v1/items","principal":"dave","principal_source":"kong_consumer","credentials":["{fp}"],"kong_credential":"{fp}","consumer":"dave","request_id":"0123456789abcdef0123456789abcdef","confirmed":true}}"#
            )
        );
        let Message::Request(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(back, Event::new("gw-1", &tx), "read back whole");
    }

    #[test]
    fn a_grpc_error_travels_as_the_status_it_stands_for() {
        let mut tx = Transaction::sample("10.0.0.7", 1_000, 200);
        tx.grpc = Some(Box::new(crate::http::Grpc {
            service: "lab.Echo".into(),
            method: "Say".into(),
            status: Some(16),
            message: None,
        }));
        let event = Event::new("gw-1", &tx);
        assert_eq!((event.status, &*event.class), (Some(401), "4xx"));
        assert_eq!(event.transaction().outcome_status(), Some(401));
    }

    #[test]
    fn heartbeats_and_hostile_input() {
        let beat = Message::Heartbeat(Heartbeat {
            node: "gw-2".into(),
            time_ns: 5,
        });
        let json = serde_json::to_string(&beat).unwrap();
        assert_eq!(json, r#"{"type":"heartbeat","node":"gw-2","time_ns":5}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), beat);
        for bad in [
            "",
            "{}",
            r#"{"type":"request"}"#,
            r#"{"type":"x","node":"a","time_ns":1}"#,
        ] {
            assert!(serde_json::from_str::<Message>(bad).is_err(), "{bad}");
        }
        let evil = r#"{"type":"request","node":"n","time_ns":1,"client_ip":"1.2.3.4",
            "method":"GET\u0007","route":"/a\nb","confirmed":true,"unknown":1}"#;
        let Message::Request(e) = serde_json::from_str(evil).unwrap() else {
            panic!()
        };
        let tx = e.transaction();
        assert!(
            !tx.method.contains('\u{7}') && !tx.route.contains('\n'),
            "{tx:?}"
        );
        assert!(valid_node("gw-1.eu_west") && !valid_node("") && !valid_node("a b"));
        assert!(!valid_node(&"a".repeat(65)));
    }
}

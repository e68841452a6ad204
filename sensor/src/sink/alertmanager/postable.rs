//! Alert transitions as Alertmanager API v2 `postableAlert`s, the items of
//! the JSON array `POST /api/v2/alerts` takes (the API's OpenAPI spec,
//! `api/v2/openapi.yaml`: `labels`, a label set, required; `annotations`;
//! `startsAt` and `endsAt`, date-times (RFC 3339); `generatorURL`, unused
//! here).
//!
//! Labels identify an alert in Alertmanager, so they are fixed per episode
//! (the `id` label keeps two episodes of one subject apart); annotations
//! are replaced by each send.
//!
//! | label | value |
//! |---|---|
//! | `alertname` | the detector (`request_flood`, ...) |
//! | `severity` | `low`, `medium` or `high` |
//! | `id` | the episode id (16 hex digits) |
//! | `node` | the sensor's node name (`--node-name`) |
//! | `client_ip` | the client IP, for per-IP detectors |
//! | `credential`, `principal`, `principal_source` | the credential's fingerprint and, when known, its principal, for `credential_spread` |
//! | `consumer` | Kong's consumer, when the principal is one |
//! | `response` | what `--block` decided on the episode's first send: `blocked`, `dry_run`, `advised`, `allow_listed`, `rate_capped`, `unconfirmed`, `failed` |
//!
//! | annotation | value |
//! |---|---|
//! | `summary` | one line: detector, subject, counts |
//! | `description` | the evidence in brief (at most [`MAX_EVIDENCE`] requests, each path cut to [`PATH_CAP`] bytes), the window, extent and suppressed count |
//! | `runbook_url` | the runbook section of the detector |
//! | `kong_action` | with `--block`: the Kong containment to apply (`ip-restriction deny 203.0.113.7; acl deny group dave`) and, when blocked, until when |

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    detect::{Alert, State, alert::MAX_EVIDENCE},
    identity::PrincipalSource,
    text::cut,
    time::{Rfc3339, rfc3339},
};

/// Longest request path in a description, bytes.
pub const PATH_CAP: usize = 200;
/// Most client IPs a description lists.
const MAX_IPS: usize = 10;

/// A label set or annotations: names to values.
pub type LabelSet = BTreeMap<&'static str, String>;

/// One alert transition as every target sends it: built once, on the
/// pipeline's thread, and shared.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The episode id.
    pub id: String,
    /// Firing, updated or resolved.
    pub state: State,
    /// The labels (see the module table).
    pub labels: LabelSet,
    /// The annotations (see the module table).
    pub annotations: LabelSet,
    /// When the episode started, ns since the epoch (event time).
    pub starts_ns: u64,
    /// When the transition happened (for `resolved`: when the episode
    /// ended), ns since the epoch (event time).
    pub time_ns: u64,
}

impl Transition {
    /// The transition `alert` reports, from the sensor named `node` (no
    /// `node` label when empty).
    pub fn new(alert: &Alert, node: &str) -> Self {
        Self {
            id: alert.id.clone(),
            state: alert.state,
            labels: labels(alert, node),
            annotations: annotations(alert),
            starts_ns: alert.episode_start_ns,
            time_ns: alert.time_ns,
        }
    }
}

/// The labels of `alert` (see the module table).
fn labels(alert: &Alert, node: &str) -> LabelSet {
    let mut l = LabelSet::new();
    l.insert("alertname", alert.detector.as_str().to_owned());
    l.insert("severity", alert.severity.as_str().to_owned());
    l.insert("id", alert.id.clone());
    if !node.is_empty() {
        l.insert("node", node.to_owned());
    }
    if let Some(ip) = alert.client_ip {
        l.insert("client_ip", ip.to_string());
    }
    if let Some(fp) = alert.credential {
        l.insert("credential", fp.to_string());
        if let Some(p) = &alert.principal {
            l.insert("principal", p.name.clone());
            l.insert("principal_source", p.source.as_str().to_owned());
        }
    }
    if let Some(p) = &alert.principal
        && p.source == PrincipalSource::KongConsumer
    {
        l.insert("consumer", p.name.clone());
    }
    if let Some(r) = &alert.response {
        l.insert("response", r.action.as_str().to_owned());
    }
    l
}

/// The annotations of `alert` (see the module table).
fn annotations(alert: &Alert) -> LabelSet {
    let mut a = LabelSet::new();
    a.insert("summary", summary(alert));
    a.insert("description", description(alert));
    if !alert.runbook_url.is_empty() {
        a.insert("runbook_url", alert.runbook_url.clone());
    }
    if let Some(r) = &alert.response {
        let mut text: Vec<String> = r.kong.iter().map(ToString::to_string).collect();
        if let Some(until) = r.until {
            text.push(format!("{} until {}", r.action.as_str(), Rfc3339(until)));
        }
        if !text.is_empty() {
            a.insert("kong_action", text.join("; "));
        }
    }
    a
}

/// One line: `request_flood from 192.0.2.7: budget=600 requests=601`, or
/// `credential_spread of credential 0123... (principal dave): ip_count=3`.
pub fn summary(alert: &Alert) -> String {
    let mut s = alert.detector.as_str().to_owned();
    if let Some(fp) = alert.credential {
        let _ = write!(s, " of credential {fp}");
        if let Some(p) = &alert.principal {
            let _ = write!(s, " (principal {})", p.name);
        }
    } else if let Some(ip) = alert.client_ip {
        let _ = write!(s, " from {ip}");
    }
    let counts: Vec<String> = alert
        .counts
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if !counts.is_empty() {
        let _ = write!(s, ": {}", counts.join(" "));
    }
    s
}

/// The evidence in brief, one request a line (`GET /admin/login -> 404`),
/// then the window, extent and suppressed raises, a claimed principal and
/// a credential's client IPs; at most a few kilobytes.
pub fn description(alert: &Alert) -> String {
    let mut d = String::new();
    for e in alert.evidence.iter().take(MAX_EVIDENCE) {
        let status = e.status.map_or("no response".to_owned(), |s| s.to_string());
        let _ = writeln!(d, "{} {} -> {status}", e.method, cut(&e.path, PATH_CAP));
    }
    let _ = write!(
        d,
        "window {} to {}; extent {}; suppressed {}",
        Rfc3339(alert.window.start),
        Rfc3339(alert.window.end),
        alert.extent,
        alert.suppressed
    );
    if let (Some(p), None) = (&alert.principal, alert.credential) {
        let _ = write!(d, "\nprincipal {} ({})", p.name, p.source.as_str());
    }
    if !alert.ips.is_empty() {
        let shown: Vec<String> = alert
            .ips
            .iter()
            .take(MAX_IPS)
            .map(ToString::to_string)
            .collect();
        let _ = write!(d, "\nclient IPs {}", shown.join(", "));
        if alert.ips.len() > MAX_IPS {
            let _ = write!(d, " and {} more", alert.ips.len() - MAX_IPS);
        }
    }
    d
}

/// One `postableAlert` of a request body.
#[derive(Debug, Serialize)]
pub struct Postable<'a> {
    /// The episode's labels.
    pub labels: &'a LabelSet,
    /// The latest annotations.
    pub annotations: &'a LabelSet,
    /// The episode's start.
    #[serde(rename = "startsAt", serialize_with = "rfc3339")]
    pub starts_ns: u64,
    /// While firing, the send time plus four re-send periods; once
    /// resolved, the resolution time.
    #[serde(rename = "endsAt", serialize_with = "rfc3339")]
    pub ends_ns: u64,
}

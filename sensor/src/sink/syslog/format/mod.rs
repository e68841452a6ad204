//! Syslog records of alerts: the header (RFC 5424 by default, RFC 3164 as
//! an option; `fasyslog` formats both) and the message body (key=value
//! text, ArcSight CEF, or JSON), never longer than the configured cap.
//!
//! Every value taken from traffic was rendered once by [`crate::text`]
//! (no control characters, capped); each format adds its own escaping:
//! [`quote_kv`] for key=value, RFC 5424 section 6.3.3 for structured data
//! (`"`, `\`, `]`, by `fasyslog`), CEF's in `cef`, JSON's.

mod cef;
#[cfg(test)]
mod tests;

use fasyslog::{SDElement, Severity as SyslogSeverity, format::SyslogContext};
use serde::Serialize;

use crate::{
    choice::Choice,
    detect::{Alert, BlockEvent, BlockEventKind, Severity},
    text::{cut, quote_kv},
    time::Rfc3339,
};

/// The record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// RFC 5424, with the alert's fields as structured data too.
    Rfc5424,
    /// RFC 3164 (BSD syslog).
    Rfc3164,
}

/// The message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `detector=... severity=... client_ip=... requests=601`.
    Kv,
    /// ArcSight Common Event Format, version 0.
    Cef,
    /// The alert's JSON object.
    Json,
}

impl Choice for Header {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("rfc5424", Self::Rfc5424), ("rfc3164", Self::Rfc3164)];
}

impl Choice for Body {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("kv", Self::Kv), ("cef", Self::Cef), ("json", Self::Json)];
}

/// SD-ID of the alert element: `siem@32473`, 32473 being the private
/// enterprise number RFC 5612 reserves for documentation and examples.
pub const SD_ID: &str = "siem@32473";

/// Default cap on a record, bytes: rsyslog's default `maxMessageSize`
/// (8 KiB; imtcp truncates longer ones, imudp drops them).
pub const DEFAULT_MAX_RECORD: usize = 8192;
/// The smallest cap allowed, bytes: what every receiver must accept over
/// UDP/IPv4 (RFC 5426 section 3.2).
pub const MIN_MAX_RECORD: usize = 480;

/// Syslog severity of an alert: high -> crit, medium -> warning, low ->
/// notice (RFC 5424 section 6.2.1).
pub fn severity(s: Severity) -> SyslogSeverity {
    match s {
        Severity::High => SyslogSeverity::CRITICAL,
        Severity::Medium => SyslogSeverity::WARNING,
        Severity::Low => SyslogSeverity::NOTICE,
    }
}

/// The alert's fields as (name, value) text pairs, in a fixed order; the
/// first evidence entry's request as `method`, `path`, `request_id`.
fn fields(a: &Alert) -> Vec<(&'static str, String)> {
    let time = |ns: u64| Rfc3339(ns).to_string();
    let mut f = vec![
        ("detector", a.detector.as_str().to_owned()),
        ("severity", a.severity.as_str().to_owned()),
        ("state", a.state.as_str().to_owned()),
        ("id", a.id.clone()),
        ("time", time(a.time_ns)),
        ("episode_start", time(a.episode_start_ns)),
    ];
    if let Some(ip) = a.client_ip {
        f.push(("client_ip", ip.to_string()));
    }
    if let Some(c) = a.credential {
        f.push(("credential", c.to_string()));
    }
    if let Some(p) = &a.principal {
        f.push(("principal", p.name.clone()));
        f.push(("principal_source", p.source.as_str().to_owned()));
    }
    if !a.ips.is_empty() {
        let ips: Vec<String> = a.ips.iter().map(ToString::to_string).collect();
        f.push(("ips", ips.join(",")));
    }
    f.push(("window_start", time(a.window.start)));
    f.push(("window_end", time(a.window.end)));
    for (name, n) in &a.counts {
        f.push((name, n.to_string()));
    }
    f.push(("extent", a.extent.to_string()));
    f.push(("suppressed", a.suppressed.to_string()));
    if let Some(e) = a.evidence.first() {
        f.push(("method", e.method.to_string()));
        f.push(("path", e.path.to_string()));
        if let Some(id) = &e.request_id {
            f.push(("request_id", id.to_string()));
        }
    }
    f.push(("runbook_url", a.runbook_url.clone()));
    if !a.nodes.is_empty() {
        f.push(("nodes", a.nodes.join(",")));
    }
    if let Some(r) = &a.response {
        f.push(("response", r.action.as_str().to_owned()));
        if let Some(until) = r.until {
            f.push(("response_until", time(until)));
        }
        if !r.kong.is_empty() {
            let kong: Vec<String> = r.kong.iter().map(ToString::to_string).collect();
            f.push(("kong", kong.join("; ")));
        }
    }
    f
}

/// A block record's fields as (name, value) pairs.
fn block_fields(e: &BlockEvent) -> Vec<(&'static str, String)> {
    let mut f = vec![
        (
            "event",
            match e.event {
                BlockEventKind::Block => "block",
                BlockEventKind::Unblock => "unblock",
            }
            .to_owned(),
        ),
        ("time", Rfc3339(e.time_ns).to_string()),
        ("ip", e.ip.to_string()),
        ("detector", e.detector.as_str().to_owned()),
        ("alert_id", e.alert_id.clone()),
        ("enforced", e.enforced.to_string()),
        ("until", Rfc3339(e.until).to_string()),
        ("ttl_s", e.ttl_s.to_string()),
        ("offence", e.offence.to_string()),
    ];
    if let Some(r) = e.reason {
        f.push(("reason", r.as_str().to_owned()));
    }
    f
}

/// One syslog record of a block starting or ending (severity warning;
/// MSGID `block` or `unblock`; a few hundred bytes, always under the cap).
pub fn block_record(
    ctx: &SyslogContext,
    (header, body_form): (Header, Body),
    e: &BlockEvent,
) -> String {
    let fields = block_fields(e);
    let kv = || {
        fields
            .iter()
            .map(|(name, value)| format!("{name}={}", quote_kv(value)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = match body_form {
        Body::Json => serde_json::to_string(e).unwrap_or_default(),
        Body::Kv => kv(),
        Body::Cef => cef::block(e),
    };
    let level = SyslogSeverity::WARNING;
    match header {
        Header::Rfc3164 => ctx.format_rfc3164(level, Some(text)).to_string(),
        Header::Rfc5424 => {
            let mut sd = Vec::new();
            if let Ok(mut element) = SDElement::new(SD_ID) {
                for (name, value) in fields {
                    let _ = element.add_param(name, value);
                }
                sd.push(element);
            }
            let msgid = match e.event {
                BlockEventKind::Block => "block",
                BlockEventKind::Unblock => "unblock",
            };
            ctx.format_rfc5424(level, Some(msgid), sd, Some(text))
                .to_string()
        }
    }
}

/// The alert as JSON, with how many evidence entries were left out to fit.
#[derive(Serialize)]
struct Trimmed<'a> {
    #[serde(flatten)]
    alert: &'a Alert,
    #[serde(skip_serializing_if = "is_zero")]
    evidence_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The body of `alert` in `body` form; `omitted`: evidence entries left
/// out (said in JSON bodies).
pub fn body(alert: &Alert, body: Body, omitted: usize) -> String {
    match body {
        Body::Json => serde_json::to_string(&Trimmed {
            alert,
            evidence_omitted: omitted,
        })
        .unwrap_or_default(),
        Body::Kv => {
            let pairs: Vec<String> = fields(alert)
                .iter()
                .map(|(name, value)| format!("{name}={}", quote_kv(value)))
                .collect();
            pairs.join(" ")
        }
        Body::Cef => cef::body(alert),
    }
}

/// One record of `alert`, header and body, without transport framing, no
/// longer than `max` bytes: past it, evidence entries are left out from the
/// last (JSON bodies, which carry them all), then the first one's path is
/// cut, then it too is left out. `None` when even that does not fit (a
/// `max` near [`MIN_MAX_RECORD`] with a long principal).
pub fn record(
    ctx: &SyslogContext,
    (header, body_form): (Header, Body),
    alert: &Alert,
    max: usize,
) -> Option<String> {
    let mut r = format(ctx, header, body_form, alert, 0);
    if r.len() <= max {
        return Some(r);
    }
    let mut a = alert.clone();
    let mut omitted = 0;
    loop {
        let excess = r.len() - max;
        let path = a.evidence.first().map_or(0, |e| e.path.len());
        if a.evidence.len() > 1 && body_form == Body::Json {
            a.evidence.pop();
            omitted += 1;
        } else if path > 2 * excess + 64 {
            // The path may appear twice (structured data and body).
            let e = &mut a.evidence[0];
            e.path = cut(&e.path, path - 2 * excess).into();
        } else if !a.evidence.is_empty() {
            omitted += a.evidence.len();
            a.evidence.clear();
        } else {
            return None;
        }
        r = format(ctx, header, body_form, &a, omitted);
        if r.len() <= max {
            return Some(r);
        }
    }
}

/// The record with `omitted` evidence entries said to be left out.
fn format(
    ctx: &SyslogContext,
    header: Header,
    body_form: Body,
    alert: &Alert,
    omitted: usize,
) -> String {
    let text = body(alert, body_form, omitted);
    let level = severity(alert.severity);
    match header {
        Header::Rfc3164 => ctx.format_rfc3164(level, Some(text)).to_string(),
        Header::Rfc5424 => {
            let mut sd = Vec::new();
            if let Ok(mut element) = SDElement::new(SD_ID) {
                for (name, value) in fields(alert) {
                    let _ = element.add_param(name, value);
                }
                sd.push(element);
            }
            ctx.format_rfc5424(level, Some(alert.detector.as_str()), sd, Some(text))
                .to_string()
        }
    }
}

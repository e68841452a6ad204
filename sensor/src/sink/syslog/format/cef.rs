//! ArcSight CEF:0 bodies ("Implementing ArcSight CEF", revision 25): the
//! standard extension keys where one fits, the custom `cs<N>`/`cn<N>`
//! keys with their `Label` keys otherwise.
//!
//! | alert | CEF |
//! |---|---|
//! | detector | header Device Event Class ID and Name |
//! | episode id, state | `externalId`, `cs4` "Alert State" |
//! | severity | header Severity: low 3, medium 5, high 8 |
//! | time | `rt` (ms since the epoch) |
//! | client IP | `src` (IPv4) or `c6a2` "Source IPv6 Address" |
//! | principal, its source | `suser`, `cs2` "Principal Source" |
//! | credential fingerprint | `cs1` "Credential Fingerprint" |
//! | a credential's IPs | `cs3` "Client IPs" |
//! | window | `start`, `end` (ms) |
//! | counts | `cn1`..`cn3` labelled with the count's name |
//! | suppressed repeats | `cnt` (repeats + 1, the occurrences it stands for) |
//! | first evidence request | `requestMethod`, `request`, `cs6` "Kong Request ID" |
//! | runbook section | `cs5` "Runbook" |
//!
//! Header fields escape `\` and `|`; extension values `\`, `=`, and CR/LF
//! as `\r`/`\n`.

use std::{fmt::Write as _, net::IpAddr};

use crate::detect::{Alert, BlockEvent, BlockEventKind, Severity};

/// A header field, escaped.
fn header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

/// An extension value, escaped.
fn value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The CEF:0 body of `alert`.
pub fn body(alert: &Alert) -> String {
    let level = match alert.severity {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
    };
    let name = alert.detector.as_str();
    let mut ext: Vec<(String, String)> =
        vec![("rt".into(), (alert.time_ns / 1_000_000).to_string())];
    let mut push = |key: &str, v: String| ext.push((key.to_owned(), v));
    push("externalId", alert.id.clone());
    push("cs4", alert.state.as_str().into());
    push("cs4Label", "Alert State".into());
    match alert.client_ip {
        Some(IpAddr::V4(ip)) => push("src", ip.to_string()),
        Some(IpAddr::V6(ip)) => {
            push("c6a2", ip.to_string());
            push("c6a2Label", "Source IPv6 Address".into());
        }
        None => {}
    }
    if let Some(c) = alert.credential {
        push("cs1", c.to_string());
        push("cs1Label", "Credential Fingerprint".into());
    }
    if let Some(p) = &alert.principal {
        push("suser", p.name.clone());
        push("cs2", p.source.as_str().into());
        push("cs2Label", "Principal Source".into());
    }
    if !alert.ips.is_empty() {
        let ips: Vec<String> = alert.ips.iter().map(ToString::to_string).collect();
        push("cs3", ips.join(","));
        push("cs3Label", "Client IPs".into());
    }
    push("start", (alert.window.start / 1_000_000).to_string());
    push("end", (alert.window.end / 1_000_000).to_string());
    for (i, (count, n)) in alert.counts.iter().take(3).enumerate() {
        push(&format!("cn{}", i + 1), n.to_string());
        push(&format!("cn{}Label", i + 1), (*count).into());
    }
    push("cnt", (alert.suppressed + 1).to_string());
    if let Some(r) = &alert.response {
        push("act", r.action.as_str().into());
    }
    if let Some(e) = alert.evidence.first() {
        push("requestMethod", e.method.to_string());
        push("request", e.path.to_string());
        if let Some(id) = &e.request_id {
            push("cs6", id.to_string());
            push("cs6Label", "Kong Request ID".into());
        }
    }
    push("cs5", alert.runbook_url.clone());
    push("cs5Label", "Runbook".into());
    let mut out = format!(
        "CEF:0|siem-sensor|siem-sensor|{}|{}|{}|{level}|",
        header(env!("CARGO_PKG_VERSION")),
        header(name),
        header(&name.replace('_', " ")),
    );
    for (i, (key, v)) in ext.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(out, "{sep}{key}={}", value(v));
    }
    out
}

/// The CEF:0 body of a block record: Device Event Class ID `block` or
/// `unblock`, severity 5, `src`/`c6a2` the address, `act`, `end` (ms),
/// `externalId` the alert episode, `cs1` the detector, `reason` in `cs2`.
pub fn block(e: &BlockEvent) -> String {
    let (class, name) = match e.event {
        BlockEventKind::Block => ("block", "kernel block"),
        BlockEventKind::Unblock => ("unblock", "kernel unblock"),
    };
    let mut ext: Vec<(&str, String)> = vec![("rt", (e.time_ns / 1_000_000).to_string())];
    match e.ip {
        IpAddr::V4(ip) => ext.push(("src", ip.to_string())),
        IpAddr::V6(ip) => {
            ext.push(("c6a2", ip.to_string()));
            ext.push(("c6a2Label", "Source IPv6 Address".into()));
        }
    }
    let act = if e.enforced { class } else { "dry_run" };
    ext.push(("act", act.into()));
    ext.push(("end", (e.until / 1_000_000).to_string()));
    ext.push(("externalId", e.alert_id.clone()));
    ext.push(("cs1", e.detector.as_str().into()));
    ext.push(("cs1Label", "Detector".into()));
    if let Some(r) = e.reason {
        ext.push(("cs2", r.as_str().into()));
        ext.push(("cs2Label", "Reason".into()));
    }
    let mut out = format!(
        "CEF:0|siem-sensor|siem-sensor|{}|{class}|{name}|5|",
        header(env!("CARGO_PKG_VERSION")),
    );
    for (i, (key, v)) in ext.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(out, "{sep}{key}={}", value(v));
    }
    out
}

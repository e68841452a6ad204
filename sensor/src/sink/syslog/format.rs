//! Syslog records of alerts: the header (RFC 5424 by default, RFC 3164 as
//! an option; `fasyslog` formats both) and the message body (key=value
//! text, ArcSight CEF, or JSON).

use std::fmt::Write as _;

use fasyslog::{SDElement, Severity as SyslogSeverity, format::SyslogContext};

use crate::{
    choice::Choice,
    detect::{Alert, Severity},
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

/// Syslog severity of an alert: high -> crit, medium -> warning, low ->
/// notice (RFC 5424 section 6.2.1).
pub fn severity(s: Severity) -> SyslogSeverity {
    match s {
        Severity::High => SyslogSeverity::CRITICAL,
        Severity::Medium => SyslogSeverity::WARNING,
        Severity::Low => SyslogSeverity::NOTICE,
    }
}

/// The alert's fields as (name, value) text pairs, in a fixed order.
fn fields(a: &Alert) -> Vec<(&'static str, String)> {
    let time = |ns: u64| Rfc3339(ns).to_string();
    let mut f = vec![
        ("detector", a.detector.as_str().to_owned()),
        ("severity", a.severity.as_str().to_owned()),
        ("time", time(a.time_ns)),
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
    f.push(("suppressed", a.suppressed.to_string()));
    f
}

/// The body of `alert` in `body` form.
pub fn body(alert: &Alert, body: Body) -> String {
    match body {
        Body::Json => serde_json::to_string(alert).unwrap_or_default(),
        Body::Kv => {
            let mut out = String::new();
            for (name, value) in fields(alert) {
                if !out.is_empty() {
                    out.push(' ');
                }
                let plain = !value.is_empty() && !value.contains([' ', '"', '=', '\\']);
                if plain {
                    let _ = write!(out, "{name}={value}");
                } else {
                    let _ = write!(out, "{name}={value:?}");
                }
            }
            out
        }
        Body::Cef => cef(alert),
    }
}

/// CEF:0 (ArcSight "Implementing ArcSight CEF", rev. 25): header fields
/// escape `\` and `|`, extension values `\` and `=`; severity 0-10.
fn cef(alert: &Alert) -> String {
    let header = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|");
    let value = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('=', "\\=")
            .replace(['\r', '\n'], " ")
    };
    let level = match alert.severity {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
    };
    let name = alert.detector.as_str();
    let mut out = format!(
        "CEF:0|siem-sensor|siem-sensor|{}|{}|{}|{level}|rt={}",
        header(env!("CARGO_PKG_VERSION")),
        header(name),
        header(&name.replace('_', " ")),
        alert.time_ns / 1_000_000,
    );
    if let Some(ip) = alert.client_ip {
        let _ = write!(out, " src={ip}");
    }
    if let Some(p) = &alert.principal {
        let _ = write!(out, " suser={}", value(&p.name));
    }
    for (name, v) in fields(alert) {
        if !matches!(
            name,
            "detector" | "severity" | "time" | "client_ip" | "principal"
        ) {
            let _ = write!(out, " cs_{name}={}", value(&v));
        }
    }
    out
}

/// One complete record (header and body), without transport framing.
pub fn record(ctx: &SyslogContext, header: Header, body_form: Body, alert: &Alert) -> String {
    let text = body(alert, body_form);
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

#[cfg(test)]
mod tests {
    use fasyslog::Facility;

    use super::*;
    use crate::{
        detect::{Detector, Evidence, alert::Window},
        identity::{Principal, PrincipalSource},
    };

    fn alert() -> Alert {
        Alert {
            time_ns: 1_795_219_215_000_000_000,
            detector: Detector::RequestFlood,
            severity: Severity::Medium,
            client_ip: Some("192.0.2.7".parse().unwrap()),
            credential: None,
            principal: Principal::new(b"ann \"a=b\"", PrincipalSource::BasicUser),
            ips: Vec::new(),
            window: Window {
                start: 1_795_219_200_000_000_000,
                end: 1_795_219_215_000_000_000,
            },
            counts: [("budget", 600), ("requests", 601)].into(),
            evidence: vec![Evidence {
                method: "GET".into(),
                path: "/x".into(),
                status: Some(200),
                request_id: None,
            }],
            suppressed: 2,
        }
    }

    fn context() -> SyslogContext {
        let mut c = SyslogContext::const_new();
        c.hostname("kong-1")
            .appname("siem-sensor")
            .procid("42")
            .facility(Facility::AUTH);
        c
    }

    /// The record without its delivery timestamp (the send time).
    fn untimed(record: &str) -> String {
        let mut parts: Vec<&str> = record.splitn(3, ' ').collect();
        parts[1] = "TS";
        parts.join(" ")
    }

    #[test]
    fn key_value_bodies_quote_what_needs_it() {
        assert_eq!(
            body(&alert(), Body::Kv),
            "detector=request_flood severity=medium time=2026-11-21T00:00:15.000000000Z client_ip=192.0.2.7 \
             principal=\"ann \\\"a=b\\\"\" principal_source=basic_user window_start=2026-11-21T00:00:00.000000000Z window_end=2026-11-21T00:00:15.000000000Z \
             budget=600 requests=601 suppressed=2"
        );
    }

    #[test]
    fn cef_escapes_its_separators() {
        assert_eq!(
            body(&alert(), Body::Cef),
            format!(
                "CEF:0|siem-sensor|siem-sensor|{}|request_flood|request flood|5|rt=1795219215000 \
                 src=192.0.2.7 suser=ann \"a\\=b\" cs_principal_source=basic_user cs_window_start=2026-11-21T00:00:00.000000000Z \
                 cs_window_end=2026-11-21T00:00:15.000000000Z cs_budget=600 cs_requests=601 cs_suppressed=2",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn json_bodies_are_the_alert() {
        let v: serde_json::Value = serde_json::from_str(&body(&alert(), Body::Json)).unwrap();
        assert_eq!(
            (v["detector"].as_str(), v["counts"]["requests"].as_u64()),
            (Some("request_flood"), Some(601))
        );
    }

    #[test]
    fn rfc5424_records_carry_structured_data() {
        let r = record(&context(), Header::Rfc5424, Body::Kv, &alert());
        // auth (4) x 8 + warning (4) = 36.
        assert!(
            untimed(&r).starts_with(
                "<36>1 TS kong-1 siem-sensor 42 request_flood [siem@32473 detector=\"request_flood\" \
                 severity=\"medium\" time=\"2026-11-21T00:00:15.000000000Z\" client_ip=\"192.0.2.7\" \
                 principal=\"ann \\\"a=b\\\"\" principal_source=\"basic_user\" window_start="
            ),
            "{r}"
        );
        assert!(r.ends_with("suppressed=\"2\"] detector=request_flood severity=medium time=2026-11-21T00:00:15.000000000Z client_ip=192.0.2.7 principal=\"ann \\\"a=b\\\"\" principal_source=basic_user window_start=2026-11-21T00:00:00.000000000Z window_end=2026-11-21T00:00:15.000000000Z budget=600 requests=601 suppressed=2"), "{r}");
    }

    #[test]
    fn rfc3164_records_are_bsd_syslog() {
        let r = record(&context(), Header::Rfc3164, Body::Json, &alert());
        assert!(r.starts_with("<36>"), "{r}");
        assert!(r.contains(" kong-1 siem-sensor[42]: {\"time\""), "{r}");
    }
}

use fasyslog::Facility;

use super::*;
use crate::{
    detect::{Detector, Evidence, State, Subject, alert::Window},
    identity::{Principal, PrincipalSource},
    text::{Field, render},
};

fn alert() -> Alert {
    let mut a = Alert::new(
        Detector::RequestFlood,
        Subject::Ip("192.0.2.7".parse().unwrap()),
        1_795_219_215_000_000_000,
        Window {
            start: 1_795_219_200_000_000_000,
            end: 1_795_219_215_000_000_000,
        },
        [("budget", 600), ("requests", 601)].into(),
        vec![Evidence {
            method: "GET".into(),
            path: "/x".into(),
            status: Some(200),
            request_id: None,
        }],
    );
    a.principal = Principal::new(b"ann \"a=b\"", PrincipalSource::BasicUser);
    a.id = "0123456789abcdef".into();
    a.state = State::Updated;
    a.episode_start_ns = 1_795_219_200_000_000_000;
    a.extent = 1202;
    a.suppressed = 2;
    a.runbook_url = "file:///RUNBOOK.md#request_flood".into();
    a
}

/// An alert whose traffic-derived values hold every separator of every
/// format, control bytes and a forged record, as the pipeline renders them.
fn hostile() -> Alert {
    let evil = b"x\"]|=\\ \r\n<13>1 2026-01-01T00:00:00Z h sshd 99 - - Accepted\0\x1b[2J\xff";
    let mut a = alert();
    a.principal = Principal::new(evil, PrincipalSource::JwtSubUnverified);
    a.evidence[0].path = render(evil, Field::Path).into();
    a.evidence[0].method = render(b"G|E=T", Field::Method).into();
    a
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

const ALL: [(Header, Body); 6] = [
    (Header::Rfc5424, Body::Kv),
    (Header::Rfc5424, Body::Cef),
    (Header::Rfc5424, Body::Json),
    (Header::Rfc3164, Body::Kv),
    (Header::Rfc3164, Body::Cef),
    (Header::Rfc3164, Body::Json),
];

#[test]
fn key_value_bodies_quote_what_needs_it() {
    assert_eq!(
        body(&alert(), Body::Kv, 0),
        "detector=request_flood severity=medium state=updated id=0123456789abcdef time=2026-11-21T00:00:15.000000000Z \
         episode_start=2026-11-21T00:00:00.000000000Z client_ip=192.0.2.7 \
         principal=\"ann \\\"a=b\\\"\" principal_source=basic_user window_start=2026-11-21T00:00:00.000000000Z window_end=2026-11-21T00:00:15.000000000Z \
         budget=600 requests=601 extent=1202 suppressed=2 method=GET path=/x runbook_url=file:///RUNBOOK.md#request_flood"
    );
}

#[test]
fn cef_uses_standard_keys_and_escapes_its_separators() {
    assert_eq!(
        body(&alert(), Body::Cef, 0),
        format!(
            "CEF:0|siem-sensor|siem-sensor|{}|request_flood|request flood|5|rt=1795219215000 \
             externalId=0123456789abcdef cs4=updated cs4Label=Alert State \
             src=192.0.2.7 suser=ann \"a\\=b\" cs2=basic_user cs2Label=Principal Source \
             start=1795219200000 end=1795219215000 cn1=600 cn1Label=budget cn2=601 cn2Label=requests \
             cnt=3 requestMethod=GET request=/x cs5=file:///RUNBOOK.md#request_flood cs5Label=Runbook",
            env!("CARGO_PKG_VERSION")
        )
    );
    let mut v6 = alert();
    v6.client_ip = Some("2001:db8::7".parse().unwrap());
    assert!(body(&v6, Body::Cef, 0).contains(" c6a2=2001:db8::7 c6a2Label=Source IPv6 Address "));
}

#[test]
fn json_bodies_are_the_alert() {
    let v: serde_json::Value = serde_json::from_str(&body(&alert(), Body::Json, 0)).unwrap();
    assert_eq!(
        (v["detector"].as_str(), v["counts"]["requests"].as_u64()),
        (Some("request_flood"), Some(601))
    );
    assert!(v.get("evidence_omitted").is_none());
    let v: serde_json::Value = serde_json::from_str(&body(&alert(), Body::Json, 4)).unwrap();
    assert_eq!(v["evidence_omitted"], 4);
}

#[test]
fn rfc5424_records_carry_structured_data() {
    let r = record(&context(), (Header::Rfc5424, Body::Kv), &alert(), 8192).unwrap();
    // auth (4) x 8 + warning (4) = 36.
    assert!(
        untimed(&r).starts_with(
            "<36>1 TS kong-1 siem-sensor 42 request_flood [siem@32473 detector=\"request_flood\" \
             severity=\"medium\" state=\"updated\" id=\"0123456789abcdef\" \
             time=\"2026-11-21T00:00:15.000000000Z\" episode_start=\"2026-11-21T00:00:00.000000000Z\" \
             client_ip=\"192.0.2.7\" principal=\"ann \\\"a=b\\\"\" principal_source=\"basic_user\" window_start="
        ),
        "{r}"
    );
    assert!(
        r.ends_with("path=\"/x\" runbook_url=\"file:///RUNBOOK.md#request_flood\"] detector=request_flood severity=medium state=updated id=0123456789abcdef time=2026-11-21T00:00:15.000000000Z episode_start=2026-11-21T00:00:00.000000000Z client_ip=192.0.2.7 principal=\"ann \\\"a=b\\\"\" principal_source=basic_user window_start=2026-11-21T00:00:00.000000000Z window_end=2026-11-21T00:00:15.000000000Z budget=600 requests=601 extent=1202 suppressed=2 method=GET path=/x runbook_url=file:///RUNBOOK.md#request_flood"),
        "{r}"
    );
}

#[test]
fn rfc3164_records_are_bsd_syslog() {
    let r = record(&context(), (Header::Rfc3164, Body::Json), &alert(), 8192).unwrap();
    assert!(r.starts_with("<36>"), "{r}");
    assert!(r.contains(" kong-1 siem-sensor[42]: {\"time\""), "{r}");
}

#[test]
fn hostile_values_stay_inside_their_field_in_every_format() {
    for form in ALL {
        let r = record(&context(), form, &hostile(), 8192).unwrap();
        assert!(!r.chars().any(char::is_control), "{form:?}: {r:?}");
        // The forged record's header is there only as text inside a value.
        // In the principal and the path, in structured data and body.
        let copies = if form.0 == Header::Rfc5424 { 4 } else { 2 };
        assert_eq!(r.matches("<13>1").count(), copies, "{r}");
        match form.1 {
            Body::Json => {
                let json = &r[r.find('{').unwrap()..];
                let v: serde_json::Value = serde_json::from_str(json).unwrap();
                assert_eq!(v["principal"], hostile().principal.unwrap().name);
            }
            Body::Cef => {
                let ext = r.split("|8|").nth(1).or(r.split("|5|").nth(1)).unwrap();
                // `=` only after keys: every unescaped `=` is preceded by a key.
                let keys: Vec<&str> = ext
                    .split(' ')
                    .filter_map(|w| w.split_once('=').map(|(k, _)| k))
                    .filter(|k| !k.ends_with('\\'))
                    .collect();
                assert!(
                    keys.iter()
                        .all(|k| k.chars().all(|c| c.is_ascii_alphanumeric())),
                    "{keys:?}"
                );
                assert!(ext.contains("suser=x\"]|\\=\\\\x5C "), "{ext}");
            }
            Body::Kv => {
                assert!(
                    r.contains("principal=\"x\\\"]|=\\\\x5C \\\\x0D\\\\x0A<13>1"),
                    "{r}"
                );
            }
        }
        if form.0 == Header::Rfc5424 {
            // Structured data escapes `"`, `\` and `]` (RFC 5424 section 6.3.3).
            assert!(r.contains("principal=\"x\\\"\\]|=\\\\x5C "), "{r}");
        }
    }
}

#[test]
fn records_fit_the_cap_by_trimming_evidence() {
    let mut big = alert();
    big.evidence = (0..5)
        .map(|i| Evidence {
            method: "GET".into(),
            path: render(
                format!("/{i}{}", "a".repeat(30_000)).as_bytes(),
                Field::Path,
            )
            .into(),
            status: Some(404),
            request_id: Some("r".repeat(36).as_str().into()),
        })
        .collect();
    for form in ALL {
        for max in [MIN_MAX_RECORD, 2048, DEFAULT_MAX_RECORD, 65_000] {
            let Some(r) = record(&context(), form, &big, max) else {
                assert!(max < 1024, "{form:?} {max}");
                continue;
            };
            assert!(r.len() <= max, "{form:?} {max}: {}", r.len());
            assert!(r.contains("request_flood"));
            if form.1 == Body::Json {
                let v: serde_json::Value =
                    serde_json::from_str(&r[r.find('{').unwrap()..]).unwrap();
                let kept = v["evidence"].as_array().unwrap().len();
                assert_eq!(
                    kept + v["evidence_omitted"].as_u64().unwrap_or(0) as usize,
                    5
                );
            }
        }
    }
    // A small alert is never changed.
    let small = record(&context(), (Header::Rfc5424, Body::Json), &alert(), 8192).unwrap();
    assert!(!small.contains("evidence_omitted"));
}

#[test]
fn a_record_that_cannot_fit_is_refused() {
    let mut a = alert();
    a.principal = Principal::new("p".repeat(300).as_bytes(), PrincipalSource::BasicUser);
    assert_eq!(
        record(&context(), (Header::Rfc5424, Body::Kv), &a, MIN_MAX_RECORD),
        None
    );
}

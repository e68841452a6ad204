//! Known secrets — a Basic password, a bearer token, API keys in a header
//! and in the query, and every leak the outputs issue found: userinfo of an
//! absolute-form target without Host, query values named `pass`, `pw`,
//! `PHPSESSID`, `otp`, `ticket`, `hmac`, a `;token=` matrix parameter, a JWT
//! as a path segment, userinfo inside a URL in the query, a Basic
//! credential whose user-id is the key (`KEY:X`), a cookie — pushed through
//! the lab from several addresses (so credential alerts fire and name their
//! principals), then every output is searched for them: transactions and
//! alerts files, syslog as rsyslog received it in every body format, the
//! metrics page, the summary, the debug log and the (redacted) segment log.
//! None may appear, in clear or base64.

mod support;

use std::{fs, time::Duration};

use base64::Engine as _;

use lab::{
    BOTH_LEGS, Lab,
    rsyslog::{Rsyslog, TCP_PORT},
};
use support::{require_root, start_sensor};

const BASIC: &str = "carol:Basic-S3cret-pw";
const BASIC_B64: &str = "Y2Fyb2w6QmFzaWMtUzNjcmV0LXB3";
/// A JWT whose `sub` is `dave` (the principal, which may appear).
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkYXZlIn0.Bearer-S3cret-sig";
const KEY_HEADER: &str = "Key-S3cret-header";
const KEY_QUERY: &str = "Key-S3cret-query";
/// A JWT used as a path segment (`/reset/<jwt>`).
const PATH_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZXNldCJ9.Path-S3cret-sig";
/// The user-id of a `KEY:X` Basic credential: the key itself.
const KEY_USER: &str = "Freshdesk-S3cret-key";

/// Requests carrying the listed leaks, each to a plain route.
fn leaky_paths() -> Vec<String> {
    vec![
        "/hello?pass=Pass-S3cret&pw=Pw-S3cret&PHPSESSID=Sess-S3cret".into(),
        "/hello?otp=Otp-S3cret&ticket=Ticket-S3cret&hmac=Hmac-S3cret".into(),
        "/hello;token=Matrix-S3cret?x=1".into(),
        format!("/reset/{PATH_JWT}"),
        "/hello?url=http://joe:Url-S3cret@internal/".into(),
    ]
}

/// Every secret the test sends.
fn secrets() -> Vec<String> {
    let mut all: Vec<String> = [
        "Basic-S3cret-pw",
        BASIC_B64,
        "Bearer-S3cret-sig",
        BEARER,
        KEY_HEADER,
        KEY_QUERY,
        "Abs-S3cret",
        "Pass-S3cret",
        "Pw-S3cret",
        "Sess-S3cret",
        "Otp-S3cret",
        "Ticket-S3cret",
        "Hmac-S3cret",
        "Matrix-S3cret",
        PATH_JWT,
        "Path-S3cret-sig",
        "Url-S3cret",
        KEY_USER,
        "Cookie-S3cret",
    ]
    .map(str::to_owned)
    .to_vec();
    all.push(base64::engine::general_purpose::STANDARD.encode(format!("{KEY_USER}:X")));
    all
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn no_output_carries_a_secret() {
    require_root();
    let lab = Lab::up("ss-secret").unwrap();
    for body in ["kv", "cef", "json"] {
        let outputs = run(&lab, body);
        for (name, text) in &outputs {
            for secret in secrets() {
                let line = text.lines().find(|l| l.contains(&secret));
                assert_eq!(line, None, "{secret} leaked into the {name} ({body})");
            }
        }
    }
    lab.teardown();
}

/// One sensor run with syslog bodies in `body` form: the outputs, by name.
fn run(lab: &Lab, body: &str) -> Vec<(&'static str, String)> {
    let dir = lab.workdir().join(body);
    let rsyslog = Rsyslog::start(lab, &dir.join("rsyslog")).unwrap();
    let (tx_file, alert_file) = (dir.join("tx.jsonl"), dir.join("alerts.jsonl"));
    let (tx_path, alert_path) = (
        tx_file.display().to_string(),
        alert_file.display().to_string(),
    );
    let tcp = format!("tcp:127.0.0.1:{TCP_PORT}");
    let args = [
        &BOTH_LEGS[..],
        &[
            "--listen",
            "127.0.0.1:9251",
            "--transactions",
            &tx_path,
            "--alerts",
            &alert_path,
            "--syslog",
            &tcp,
            "--syslog-body",
            body,
            "--debug-segments",
        ],
    ]
    .concat();
    let sensor = start_sensor(lab, &args);
    let query = format!("/hello?apikey={KEY_QUERY}");
    let bearer = format!("Authorization: Bearer {BEARER}");
    let header = format!("apikey: {KEY_HEADER}");
    let key_user = format!("{KEY_USER}:X");
    for i in 0..3 {
        let source = Lab::extra_client(i);
        for extra in [
            vec!["-u", BASIC],
            vec!["-H", &bearer],
            vec!["-H", &header],
            vec!["-u", &key_user],
            vec![],
        ] {
            let path = if extra.is_empty() {
                query.as_str()
            } else {
                "/hello"
            };
            lab.curl_from(&source, &extra, path, 1).unwrap();
        }
    }
    let cookie = ["-H", "Cookie: session=Cookie-S3cret"];
    for path in leaky_paths() {
        lab.curl_from(&Lab::extra_client(3), &cookie, &path, 1)
            .unwrap();
    }
    // Absolute-form with userinfo and no Host header.
    lab.send_raw(
        &Lab::extra_client(4),
        &[b"GET http://user:Abs-S3cret@gw/hello HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec()],
    )
    .unwrap();
    // A credential_spread alert per credential: Basic, bearer, the header
    // key, the query key and the KEY:X credential.
    let syslog = rsyslog.wait_for("tcp", 5, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500)); // metrics are published every second
    let metrics = String::from_utf8(
        lab.command(&lab.gateway_ns(), "curl")
            .args(["-s", "http://127.0.0.1:9251/metrics"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let run = sensor.stop().unwrap();
    let (transactions, alerts) = (
        fs::read_to_string(&tx_file).unwrap(),
        fs::read_to_string(&alert_file).unwrap(),
    );
    drop(rsyslog);

    // The outputs are not empty: the secrets had every chance to leak.
    assert!(transactions.lines().count() >= 21, "{transactions}");
    for redacted in [
        "/reset/REDACTED",
        "/hello;token=REDACTED?x=1",
        "url=http://REDACTED@internal/",
        "\"host\":\"gw\"",
    ] {
        assert!(
            transactions.contains(redacted),
            "{redacted}: {transactions}"
        );
    }
    assert_eq!(syslog.len(), 5, "{syslog:#?}");
    assert!(
        alerts.contains("\"principal\":\"carol\"") && alerts.contains("\"principal\":\"dave\""),
        "{alerts}"
    );
    assert!(metrics.contains("aps_siem_credential_ips"), "{metrics}");
    let segments: Vec<String> = run.segments.iter().map(ToString::to_string).collect();
    assert!(
        segments
            .iter()
            .any(|s| s.contains("Authorization:REDACTED")),
        "the segment log shows where it redacted"
    );
    vec![
        ("transactions", transactions),
        ("alerts", alerts),
        ("syslog", syslog.join("\n")),
        ("metrics", metrics),
        ("summary", run.summary.to_string()),
        ("log", run.log),
        ("segment log", segments.join("\n")),
    ]
}

//! Known secrets — a Basic password, a bearer token, API keys in a header
//! and in the query — pushed through the lab from several addresses (so
//! credential alerts fire and name their principals), then every output is
//! searched for them: transactions and alerts files, syslog as rsyslog
//! received it, the metrics page, the summary and the debug log. None may
//! appear, in clear or base64.

mod support;

use std::{fs, time::Duration};

use lab::{
    GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab,
    rsyslog::{Rsyslog, TCP_PORT},
};
use support::{require_root, start_sensor};

const BASIC: &str = "carol:Basic-S3cret-pw";
const BASIC_B64: &str = "Y2Fyb2w6QmFzaWMtUzNjcmV0LXB3";
/// A JWT whose `sub` is `dave` (the principal, which may appear).
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkYXZlIn0.Bearer-S3cret-sig";
const KEY_HEADER: &str = "Key-S3cret-header";
const KEY_QUERY: &str = "Key-S3cret-query";

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn no_output_carries_a_secret() {
    require_root();
    let lab = Lab::up("ss-secret").unwrap();
    let dir = lab.workdir().to_path_buf();
    let rsyslog = Rsyslog::start(&lab, &dir.join("rsyslog")).unwrap();
    let (tx_file, alert_file) = (dir.join("tx.jsonl"), dir.join("alerts.jsonl"));
    let (tx_path, alert_path) = (
        tx_file.display().to_string(),
        alert_file.display().to_string(),
    );
    let tcp = format!("tcp:127.0.0.1:{TCP_PORT}");
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--iface",
        GATEWAY_UPSTREAM_IF,
        "--listen",
        "127.0.0.1:9251",
        "--transactions",
        &tx_path,
        "--alerts",
        &alert_path,
        "--syslog",
        &tcp,
        "--syslog-body",
        "json",
    ];
    let sensor = start_sensor(&lab, &args);
    let query = format!("/hello?apikey={KEY_QUERY}");
    let bearer = format!("Authorization: Bearer {BEARER}");
    let header = format!("apikey: {KEY_HEADER}");
    for i in 0..3 {
        let source = Lab::extra_client(i);
        for extra in [
            vec!["-u", BASIC],
            vec!["-H", &bearer],
            vec!["-H", &header],
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
    let syslog = rsyslog.wait_for("tcp", 4, Duration::from_secs(10));
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
    lab.teardown();

    // The outputs are not empty: the secrets had every chance to leak.
    assert!(transactions.lines().count() >= 24, "{transactions}");
    assert_eq!(
        syslog.len(),
        4,
        "a credential_spread alert per credential: {syslog:#?}"
    );
    assert!(
        alerts.contains("\"principal\":\"carol\"") && alerts.contains("\"principal\":\"dave\""),
        "{alerts}"
    );
    assert!(metrics.contains("aps_siem_credential_ips"), "{metrics}");
    let outputs = [
        ("transactions", transactions),
        ("alerts", alerts),
        ("syslog", syslog.join("\n")),
        ("metrics", metrics),
        ("summary", run.summary.to_string()),
        ("log", run.log),
    ];
    for (name, text) in &outputs {
        for secret in [
            "Basic-S3cret-pw",
            BASIC_B64,
            "Bearer-S3cret-sig",
            BEARER,
            KEY_HEADER,
            KEY_QUERY,
        ] {
            assert!(!text.contains(secret), "{secret} leaked into the {name}");
        }
    }
}

//! Kong-log-shaped transactions (`--transactions-format kong`) against the
//! gateway's own access log: for every request of a lab run, the values
//! existing Kong log pipelines read (`client_ip`, `started_at`,
//! `latencies.request`, `response.status`, `consumer.username`) match what
//! the gateway itself logged for the same `X-Kong-Request-Id`.

mod support;

use std::{collections::HashMap, fs};

use lab::{BOTH_LEGS, Lab, consumers::Consumer};
use serde_json::Value;
use support::{require_root, start_sensor};

/// Timestamps differ by where they are taken (the wire in the kernel, or
/// nginx's event loop after it read the request): ms of slack.
const SLACK_MS: f64 = 15.0;

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn kong_format_matches_the_gateways_access_log() {
    require_root();
    let lab = Lab::up("ss-kongfmt").unwrap();
    let before = lab.access_log().unwrap().len();
    let file = lab.workdir().join("kong.jsonl");
    let path = file.display().to_string();
    let sensor = start_sensor(
        &lab,
        &[
            &BOTH_LEGS[..],
            &["--transactions", &path, "--transactions-format", "kong"],
        ]
        .concat(),
    );
    let alice = Consumer::named("alice").header();
    let client = Lab::extra_client(0);
    lab.curl_from(&client, &["-H", &alice], "/api/orders", 5)
        .unwrap();
    lab.curl_from(&client, &["-H", "apikey: wrong"], "/api/orders", 3)
        .unwrap();
    lab.curl_from(&client, &[], "/hello?x=1", 3).unwrap();
    lab.curl_from(&client, &[], "/big", 1).unwrap();
    let run = sensor.stop().unwrap();
    let logged: Vec<_> = lab.access_log().unwrap().split_off(before);
    let records: HashMap<String, Value> = fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            let id = r["response"]["headers"]["x-kong-request-id"]
                .as_str()
                .unwrap()
                .to_owned();
            (id, r)
        })
        .collect();
    lab.teardown();

    assert_eq!(logged.len(), 12, "{logged:#?}");
    assert_eq!(records.len(), logged.len(), "{}", run.summary);
    for entry in &logged {
        let r = &records[&entry.request_id];
        let ctx = format!("{entry:?} {r}");
        assert_eq!(r["client_ip"], entry.remote_addr.as_str(), "{ctx}");
        assert_eq!(r["response"]["status"], entry.status, "{ctx}");
        let started = (entry.msec - entry.request_time) * 1000.0;
        let started_at = r["started_at"].as_f64().unwrap();
        assert!(
            (started_at - started).abs() <= SLACK_MS,
            "started_at: {ctx}"
        );
        let latency = r["latencies"]["request"].as_f64().unwrap();
        assert!(
            (latency - entry.request_time * 1000.0).abs() <= SLACK_MS,
            "latency: {ctx}"
        );
        let consumer = r["consumer"]["username"].as_str().unwrap_or("");
        if entry.request.contains(" /api/") {
            assert_eq!(consumer, entry.consumer, "{ctx}");
        }
    }
    let rejected = records.values().filter(|r| r["source"] == "kong").count();
    assert_eq!(rejected, 3, "Kong's own 401s");
}

//! A real Alertmanager gets the live sensor's alerts over its API v2: every
//! alert of the labeled scenarios, with its labels and runbook; and across
//! an Alertmanager restart, nothing is lost: an alert raised while it was
//! down arrives once it is back, one still firing is restored by the
//! periodic re-send (Alertmanager keeps alerts in memory only), and an
//! episode resolved while it was down arrives resolved; a SIGHUP does
//! not stop the re-sends.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use lab::{GATEWAY_CLIENT_IF, Lab, alertmanager::Alertmanager, scenarios, sensor::SensorProcess};
use serde_json::Value;
use support::{SENSOR, require_root, start_sensor};

/// An alert as (detector, subject): the client IP, or the principal for
/// `credential_spread`; from the sensor's JSON line or Alertmanager's labels.
fn key(alert: &Value) -> (String, String) {
    let labels = alert.get("labels").unwrap_or(alert);
    let detector = labels["alertname"].as_str().or(labels["detector"].as_str());
    let subject = labels["client_ip"]
        .as_str()
        .or(labels["principal"].as_str());
    (
        detector.unwrap_or("?").to_owned(),
        subject.unwrap_or("?").to_owned(),
    )
}

/// The summary's counts for Alertmanager target `url`: sent, overflow,
/// dropped, refused, undelivered, forgotten.
fn counts(summary: &Value, url: &str) -> [u64; 6] {
    let sinks = summary["sinks"].as_array().unwrap();
    let c = sinks
        .iter()
        .find(|c| c["sink"] == "alertmanager" && c["target"] == url)
        .unwrap_or_else(|| panic!("no {url} in {summary}"));
    [
        "sent",
        "overflow",
        "dropped",
        "refused",
        "undelivered",
        "forgotten",
    ]
    .map(|k| c[k].as_u64().unwrap())
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn the_scenarios_alerts_reach_alertmanager_with_their_labels() {
    require_root();
    let lab = Lab::up("ss-am").unwrap();
    let am = Alertmanager::start(&lab, &lab.workdir().join("alertmanager")).unwrap();
    let url = am.url();
    let runbook = "https://wiki.example/siem/RUNBOOK.md";
    let mut args = scenarios::live_args();
    args.extend(["--alertmanager", &url, "--node-name", "kong-lab"]);
    args.extend(["--runbook-url", runbook]);
    let sensor = start_sensor(&lab, &args);
    let all = scenarios::all();
    for s in &all {
        s.play(&lab).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
    }
    // Stopped, the sensor has delivered every transition; Alertmanager
    // holds the firing alerts until their endsAt, minutes ahead.
    let run = sensor.stop().unwrap();
    let shown = am.alerts();
    drop(am);
    lab.teardown();

    let expected: BTreeSet<(String, String)> = all
        .iter()
        .flat_map(|s| s.raises.iter().map(|(d, s)| (d.to_string(), s.clone())))
        .collect();
    let keys: BTreeSet<_> = shown.iter().map(key).collect();
    assert_eq!(keys, expected, "{shown:#?}");
    let firing: BTreeMap<&str, &Value> = run
        .alerts
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| (a["id"].as_str().unwrap(), a))
        .collect();
    let ids: BTreeSet<&str> = shown
        .iter()
        .map(|a| a["labels"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        firing.keys().copied().collect(),
        "one alert per episode"
    );
    for a in &shown {
        let labels = &a["labels"];
        let sensor = firing[labels["id"].as_str().unwrap()];
        let detector = sensor["detector"].as_str().unwrap();
        assert_eq!(key(a), key(sensor), "{a}");
        assert_eq!(labels["severity"], sensor["severity"], "{a}");
        assert_eq!(labels["node"], "kong-lab", "{a}");
        assert_eq!(
            a["annotations"]["runbook_url"],
            format!("{runbook}#{detector}"),
            "{a}"
        );
        assert!(
            a["annotations"]["summary"]
                .as_str()
                .unwrap()
                .starts_with(detector),
            "{a}"
        );
        // Alertmanager shows milliseconds.
        let start = sensor["episode_start"].as_str().unwrap();
        assert_eq!(a["startsAt"].as_str().unwrap()[..23], start[..23], "{a}");
        if detector == "credential_spread" {
            assert_eq!(labels["principal_source"], "kong_consumer", "{a}");
            assert_eq!(labels["consumer"], labels["principal"], "{a}");
            assert_eq!(labels["credential"], sensor["credential"], "{a}");
        } else {
            assert_eq!(labels["client_ip"], sensor["client_ip"], "{a}");
        }
    }
    let transitions = run.alerts.len() as u64;
    assert_eq!(counts(&run.summary, &url), [transitions, 0, 0, 0, 0, 0]);
}

/// A decoy hit from extra client `i`.
fn decoy(lab: &Lab, i: u8) {
    lab.curl_from(&Lab::extra_client(i), &[], "/admin/login", 1)
        .unwrap();
}

/// The active alerts' client IPs.
fn ips(alerts: &[Value]) -> BTreeSet<String> {
    alerts.iter().map(|a| key(a).1).collect()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn nothing_is_lost_while_alertmanager_restarts() {
    require_root();
    let lab = Lab::up("ss-am-down").unwrap();
    let mut am = Alertmanager::start(&lab, &lab.workdir().join("alertmanager")).unwrap();
    let url = am.url();
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--no-metrics",
        "--decoy",
        "/admin/**",
        "--alerts",
        "-",
        "--resolve-after",
        "6s",
        "--alertmanager",
        &url,
        "--alertmanager-resend",
        "2s",
    ];
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&lines);
    let hook = Box::new(move |l: &str| seen.lock().unwrap().push(l.to_owned()));
    let sensor = SensorProcess::start(&lab, Path::new(SENSOR), &args, Some(hook)).unwrap();
    let (h0, h1, h2) = (
        Lab::extra_client(0),
        Lab::extra_client(1),
        Lab::extra_client(2),
    );

    decoy(&lab, 0);
    decoy(&lab, 1);
    let before = am.wait_for(Duration::from_secs(10), |a| a.len() == 2);
    am.stop().unwrap();
    decoy(&lab, 2); // raised while Alertmanager is down
    // h1 and h2 keep their episodes open; h0's resolves meanwhile.
    let resolved = |ip: &str| {
        lines.lock().unwrap().iter().any(|l| {
            l.contains("\"state\":\"resolved\"") && l.contains(&format!("\"client_ip\":\"{ip}\""))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while !resolved(&h0) && Instant::now() < deadline {
        decoy(&lab, 1);
        decoy(&lab, 2);
        thread::sleep(Duration::from_secs(1));
    }
    assert!(resolved(&h0), "h0 resolved while Alertmanager was down");
    am.resume().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = Vec::new();
    while Instant::now() < deadline {
        decoy(&lab, 1);
        decoy(&lab, 2);
        after = am.alerts();
        if after.len() >= 2 && am.received("resolved") >= 1 {
            break;
        }
        thread::sleep(Duration::from_secs(1));
    }
    let resolutions_back = am.received("resolved");
    // A SIGHUP (log rotation) replaces the sinks: h1's re-sends go on (each
    // moves its updatedAt), though it has no transition to send.
    let updated = |ip: &str| {
        let alerts = am.alerts();
        let a = alerts.iter().find(|a| key(a).1 == ip);
        a.map(|a| a["updatedAt"].as_str().unwrap().to_owned())
    };
    sensor.reload().unwrap();
    let mark = updated(&h1);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut resent = false;
    while !resent && Instant::now() < deadline {
        decoy(&lab, 1);
        decoy(&lab, 2);
        thread::sleep(Duration::from_secs(1));
        resent = updated(&h1) > mark;
    }
    // Now every episode resolves, with Alertmanager up.
    let ended = am.wait_for(Duration::from_secs(40), <[Value]>::is_empty);
    let run = sensor.stop().unwrap();
    drop(am);
    lab.teardown();

    assert_eq!(ips(&before), BTreeSet::from([h0.clone(), h1.clone()]));
    assert_eq!(
        ips(&after),
        BTreeSet::from([h1.clone(), h2.clone()]),
        "{after:#?}"
    );
    assert_eq!(resolutions_back, 1, "h0's resolution arrived");
    assert!(resent, "re-sent after the SIGHUP");
    let id = |ip: &str| {
        let a = run.alerts.iter().find(|a| a["client_ip"] == ip).unwrap();
        a["id"].clone()
    };
    for a in &after {
        assert_eq!(a["labels"]["id"], id(&key(a).1), "{a}");
    }
    assert!(ended.is_empty(), "{ended:#?}");
    let states: Vec<&str> = run
        .alerts
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "firing").count(),
        3,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "resolved").count(),
        3,
        "{states:?}"
    );
    assert_eq!(counts(&run.summary, &url), [6, 0, 0, 0, 0, 0]);
    assert!(
        run.log.contains("alertmanager unreachable") && run.log.contains("delivering again"),
        "{}",
        run.log
    );
}

//! The labeled scenarios (`lab::scenarios`) against the live sensor: each
//! raises its alerts and none of its near misses, `replay` of a tcpdump
//! capture of the same traffic raises the same alerts as `run` did live,
//! the joined transactions show the gateway behaving as Kong does, and
//! no consumer's API key appears in what the sensor wrote.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use lab::{Lab, PROXY_PORT, consumers::CONSUMERS, scenarios};
use serde_json::Value;
use support::{replay_json, require_root, start_sensor, stop_tcpdump, tcpdump};

/// An alert as (detector, subject): the client IP, or the principal for
/// `credential_spread`.
fn key(alert: &Value) -> (String, String) {
    let detector = alert["detector"].as_str().unwrap().to_string();
    let subject = alert["client_ip"].as_str().or(alert["principal"].as_str());
    (detector, subject.unwrap_or("?").to_string())
}

/// The resolve time the scenario tests use (the default 5 min would keep
/// the test waiting).
const RESOLVE_AFTER: &str = "5s";

/// Each alert episode's transitions, in order, by (detector, subject).
fn transitions(alerts: &[Value]) -> BTreeMap<(String, String), Vec<String>> {
    let mut by: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for a in alerts {
        by.entry(key(a))
            .or_default()
            .push(a["state"].as_str().unwrap().to_string());
    }
    by
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn scenarios_raise_their_alerts_live_and_in_replay() {
    require_root();
    let lab = Lab::up("ss-det").unwrap();
    let dir = lab.workdir().display().to_string();
    let pcap = format!("{dir}/scenarios.pcap");
    let dump = tcpdump(&lab, &pcap);
    // Requests before the sensor started (the lab's own readiness checks).
    let before = lab.access_log().unwrap().len() as u64;
    let mut args = scenarios::live_args();
    args.extend(["--transactions", "-", "--resolve-after", RESOLVE_AFTER]);
    let sensor = start_sensor(&lab, &args);
    let all = scenarios::all();
    for s in &all {
        s.play(&lab).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
    }
    // Every episode resolves: the resolve time after its last raise, on
    // the detectors' clock (which lags by the join's 5 s wait).
    std::thread::sleep(std::time::Duration::from_secs(13));
    let live = sensor.stop().unwrap();
    stop_tcpdump(dump);
    let key_file = format!("{dir}/fingerprint.key");
    let mut args = vec![
        "--fingerprint-key",
        key_file.as_str(),
        "--resolve-after",
        RESOLVE_AFTER,
    ];
    args.extend(scenarios::replay_args());
    let replayed = replay_json(&pcap, &args, "detector");
    let sent = lab.access_log().unwrap().len() as u64 - before;
    lab.teardown();

    let raised: BTreeSet<_> = live.alerts.iter().map(key).collect();
    for s in &all {
        for (detector, subject) in &s.raises {
            let want = (detector.to_string(), subject.clone());
            assert!(
                raised.contains(&want),
                "{}: missing {want:?} in {raised:?}",
                s.name
            );
        }
        for (detector, subject) in &s.quiet {
            let never = (detector.to_string(), subject.clone());
            assert!(!raised.contains(&never), "{}: raised {never:?}", s.name);
        }
    }
    let expected: usize = all.iter().map(|s| s.raises.len()).sum();
    assert_eq!(raised.len(), expected, "unexpected alerts: {raised:?}");
    let spread = live
        .alerts
        .iter()
        .find(|a| a["detector"] == "credential_spread")
        .unwrap();
    assert_eq!(spread["ips"].as_array().unwrap().len(), 3, "{spread}");
    assert!(!spread.to_string().contains("wonderland"));

    let lost = ["ring_full", "copy_error"]
        .iter()
        .map(|k| live.summary["kernel"][k].as_u64().unwrap())
        .sum::<u64>()
        + live.summary["flows"]["gaps"].as_u64().unwrap();
    kong_on_the_wire(&live.transactions, &live.summary["join"], lost);
    // Every request the clients sent (the gateway logged) counted once,
    // though both legs were captured; a lost response may cost one.
    let counted = live.summary["detect"]["transactions"].as_u64().unwrap();
    assert!(
        counted <= sent && sent - counted <= lost,
        "{counted} counted of {sent} sent, {lost} segments lost: {} {}",
        live.summary["join"],
        live.summary["http"]
    );
    let everything = format!("{:?}{:?}{}", live.transactions, live.alerts, live.log);
    for c in CONSUMERS {
        assert!(
            !everything.contains(c.key),
            "{}'s API key leaked",
            c.username
        );
    }

    let replayed_set: BTreeSet<_> = replayed.iter().map(key).collect();
    assert_eq!(
        replayed_set, raised,
        "replay of the capture raised other alerts"
    );
    // The lifecycle: every episode fired once and resolved once, dave's
    // key updated when its fourth address joined; live and replayed alike.
    let live_transitions = transitions(&live.alerts);
    assert_eq!(live_transitions, transitions(&replayed));
    for (detector, subject) in &raised {
        let states = &live_transitions[&(detector.clone(), subject.clone())];
        let firing = states.iter().filter(|s| *s == "firing").count();
        let resolved = states.iter().filter(|s| *s == "resolved").count();
        assert_eq!(
            (firing, resolved),
            (1, 1),
            "{detector} {subject}: {states:?}"
        );
    }
    assert_eq!(
        live_transitions[&("credential_spread".to_string(), "dave".to_string())],
        ["firing", "updated", "resolved"]
    );
}

/// The lab's gateway answered as Kong does, and both legs were captured
/// and joined into one record per request: Kong's own 401s and 429s with
/// no upstream leg, the upstream leg naming the consumer, every other
/// request joined by its request id (but for responses the capture lost:
/// `lost` segments dropped or skipped).
fn kong_on_the_wire(transactions: &[Value], join: &Value, lost: u64) {
    let upstream_only: Vec<_> = transactions
        .iter()
        .filter(|t| t["server_port"] != PROXY_PORT)
        .collect();
    assert!(
        upstream_only.len() as u64 <= lost,
        "{upstream_only:#?} {join}"
    );
    let count = |ip: &str, status: u64, upstream: bool| {
        transactions
            .iter()
            .filter(|t| t["client_ip"] == ip && t["status"] == status)
            .filter(|t| t["upstream"].is_object() == upstream)
            .count()
    };
    let (guesser, mallory) = (Lab::extra_client(8), Lab::extra_client(12));
    assert_eq!(
        count(&guesser, 401, false),
        15,
        "Kong refuses guessed keys itself"
    );
    assert_eq!(count(&guesser, 401, true), 0);
    let limited = count(&mallory, 429, false);
    assert!(
        (200..300).contains(&limited),
        "{limited} rate-limited of 300, by Kong itself"
    );
    let statuses: std::collections::BTreeMap<String, usize> = transactions
        .iter()
        .filter(|t| t["client_ip"] == mallory.as_str())
        .fold(Default::default(), |mut by, t| {
            let joined = if t["upstream"].is_object() {
                "joined"
            } else {
                "one leg"
            };
            *by.entry(format!("{} {joined}", t["status"])).or_default() += 1;
            by
        });
    // Every request Kong let through is joined; a lost segment may cost one.
    let passed = count(&mallory, 200, true);
    assert!(
        passed <= 300 - limited && (300 - limited - passed) as u64 <= lost,
        "{passed} joined 200s of {}, {lost} segments lost; mallory's \
         transactions by status: {statuses:?}; {join}",
        300 - limited
    );
    for (i, name) in [(3, "dave"), (4, "dave"), (6, "erin")] {
        let ip = Lab::extra_client(i);
        let named = transactions
            .iter()
            .filter(|t| t["client_ip"] == ip.as_str() && t["upstream"].is_object())
            .all(|t| t["consumer"] == name && t["principal"] == name);
        assert!(named, "joined requests from {ip} name {name}");
    }
    let joined = join["joined"].as_u64().unwrap();
    assert!(joined > 1000, "{join}");
    let unjoined = join["upstream_only"].as_u64().unwrap() + join["late"].as_u64().unwrap();
    assert!(
        unjoined <= lost,
        "one id joins both legs: {join}, {lost} segments lost"
    );
}

/// Upstream-only: with only Kong's upstream leg captured (the client leg
/// TLS the tap cannot read, say), the scenarios raise every alert but those
/// that only Kong's own rejections raise, the client IPs the ones Kong
/// named.
#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn upstream_only_raises_all_but_what_kong_rejected_itself() {
    require_root();
    let lab = Lab::up("ss-up").unwrap();
    let mut args = vec!["--iface", lab::GATEWAY_UPSTREAM_IF, "--alerts", "-"];
    args.extend(scenarios::SENSOR_ARGS);
    let sensor = start_sensor(&lab, &args);
    let all = scenarios::all();
    for s in &all {
        s.play(&lab).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
    }
    let live = sensor.stop().unwrap();
    lab.teardown();

    let raised: BTreeSet<_> = live.alerts.iter().map(key).collect();
    let rejected: BTreeSet<_> = scenarios::kong_rejections()
        .into_iter()
        .map(|(d, s)| (d.to_string(), s))
        .collect();
    let expected: BTreeSet<_> = all
        .iter()
        .flat_map(|s| s.raises.iter().map(|(d, s)| (d.to_string(), s.clone())))
        .filter(|a| !rejected.contains(a))
        .collect();
    assert_eq!(raised, expected, "{:#?}", live.alerts);
    let join = &live.summary["join"];
    assert_eq!(join["joined"], 0, "{join}");
    assert!(join["upstream_only"].as_u64().unwrap() > 1000, "{join}");
    let named = live
        .alerts
        .iter()
        .find(|a| a["detector"] == "credential_spread")
        .unwrap();
    assert_eq!(named["principal_source"], "kong_consumer", "{named}");
}

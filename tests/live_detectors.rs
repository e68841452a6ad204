//! The labeled scenarios (`xtask::scenarios`) against the live sensor: each
//! raises its alerts and none of its near misses, and `replay` of a tcpdump
//! capture of the same traffic raises the same alerts as `run` did live.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{replay_json, require_root, start_sensor, stop_tcpdump, tcpdump};
use xtask::{
    lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, GATEWAY_UPSTREAM_V4, Lab},
    scenarios,
};

/// An alert as (detector, subject): the client IP, or the principal for
/// `credential_spread`.
fn key(alert: &Value) -> (String, String) {
    let detector = alert["detector"].as_str().unwrap().to_string();
    let subject = alert["client_ip"].as_str().or(alert["principal"].as_str());
    (detector, subject.unwrap_or("?").to_string())
}

#[test]
fn scenarios_raise_their_alerts_live_and_in_replay() {
    require_root();
    let lab = Lab::up("ss-det").unwrap();
    let dir = lab.workdir().display().to_string();
    let pcap = format!("{dir}/scenarios.pcap");
    let dump = tcpdump(&lab, &pcap);
    let mut args = vec![
        "--iface",
        GATEWAY_CLIENT_IF,
        "--iface",
        GATEWAY_UPSTREAM_IF,
        "--alerts",
        "-",
        "--trusted-proxy",
        GATEWAY_UPSTREAM_V4,
    ];
    args.extend(scenarios::SENSOR_ARGS);
    let sensor = start_sensor(&lab, &args);
    let all = scenarios::all();
    for s in &all {
        s.play(&lab).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
    }
    let live = sensor.stop().unwrap();
    stop_tcpdump(dump);
    let key_file = format!("{dir}/fingerprint.key");
    let mut args = vec![
        "--fingerprint-key",
        &key_file,
        "--trusted-proxy",
        GATEWAY_UPSTREAM_V4,
    ];
    args.extend(scenarios::SENSOR_ARGS);
    let replayed = replay_json(&pcap, &args, "detector");
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

    let replayed: BTreeSet<_> = replayed.iter().map(key).collect();
    assert_eq!(
        replayed, raised,
        "replay of the capture raised other alerts"
    );
}

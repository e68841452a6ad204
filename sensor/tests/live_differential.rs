//! The differential test against nginx's own access log: requests nginx
//! accepts but a naive sensor loses (tiny and one-byte segments, a split
//! request line, many headers, bytes >= 0x80, pipelining, absolute-form,
//! bare LF, a request in IPv4 fragments), and hostile segments (an
//! insertion with a bad TCP checksum, an overlap whose copies differ,
//! forged segments without a handshake) go
//! through the lab's gateway; every request nginx logged is exactly one
//! transaction of the sensor's with the same request id, client, method,
//! target and status; nothing else is a confirmed request, and nothing
//! raises an alert (a decoy covers `/admin/**`, which only forged or
//! inserted bytes ask for).

mod support;

use std::{collections::BTreeMap, fs};

use lab::{GATEWAY_CLIENT_IF, GATEWAY_V4, Lab, PROXY_PORT, REQUESTS_PY, run_quiet};
use serde_json::Value;
use support::{require_root, start_sensor};

/// A target as nginx logs it (`\xXX` for bytes it escapes) written as the
/// sensor writes paths (`%XX`).
fn as_sensor_path(logged: &str) -> String {
    logged.replace("\\x", "%").to_string()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn every_request_nginx_logged_is_one_transaction_with_the_same_fields() {
    require_root();
    let lab = Lab::up("ss-diff").unwrap();
    let script = lab.workdir().join("requests.py");
    fs::write(&script, REQUESTS_PY).unwrap();
    let script = script.display().to_string();
    let (crafter, victim) = (Lab::extra_client(1), Lab::extra_client(2));
    lab.drop_own_resets(&crafter).unwrap();
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--transactions",
        "-",
        "--alerts",
        "-",
        "--decoy",
        "/admin/**",
    ];
    // The lab's own readiness check was logged before the sensor started.
    let before = lab.access_log().unwrap().len();
    let sensor = start_sensor(&lab, &args);
    let port = PROXY_PORT.to_string();
    let python = |ns: &str, args: &[&str]| {
        let out = run_quiet(lab.command(ns, "/usr/bin/python3").arg(&script).args(args)).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let odd = python(&lab.client_ns(), &["odd", GATEWAY_V4, &port]);
    let crafter_ns = lab.client_ns_of(&crafter).unwrap();
    let hostile = python(
        &crafter_ns,
        &["hostile", &crafter, GATEWAY_V4, &port, "eth0", &victim],
    );
    let live = sensor.stop().unwrap();
    let logged = lab.access_log().unwrap().split_off(before);
    lab.teardown();
    eprintln!("{odd}{hostile}");

    let by_id: BTreeMap<&str, Vec<&Value>> =
        live.transactions.iter().fold(BTreeMap::new(), |mut m, t| {
            if let Some(id) = t["request_id"].as_str() {
                m.entry(id).or_insert_with(Vec::new).push(t);
            }
            m
        });
    assert!(logged.len() >= 13, "nginx logged {logged:#?}");
    for entry in &logged {
        let txs = by_id
            .get(entry.request_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        assert_eq!(txs.len(), 1, "{entry:?}: {txs:?}");
        let t = txs[0];
        let mut words = entry.request.split(' ');
        let (method, target) = (words.next().unwrap(), words.next().unwrap());
        assert_eq!(t["client_ip"], entry.remote_addr.as_str(), "{entry:?}");
        assert_eq!(t["method"], method, "{entry:?}");
        assert_eq!(t["path"], as_sensor_path(target).as_str(), "{entry:?}");
        assert_eq!(t["status"], entry.status, "{entry:?}");
    }
    // Nothing nginx did not answer is a confirmed request.
    let confirmed = live
        .transactions
        .iter()
        .filter(|t| t["confirmed"] == true)
        .count();
    assert_eq!(confirmed, logged.len(), "{:#?}", live.transactions);
    // The inserted and forged bytes were never the request: no decoy hit.
    assert!(live.alerts.is_empty(), "{:#?}", live.alerts);
    let s = &live.summary;
    assert!(
        s["reader"]["bad_tcp_checksum"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert!(
        s["flows"]["overlap_different_data"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert!(s["detect"]["unconfirmed"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["reader"]["reassembled"].as_u64().unwrap() >= 1, "{s}");
}

//! A real rsyslog receives the live sensor's alerts over its unix socket,
//! UDP and TCP; stopped mid-run, it gets every alert queued meanwhile once
//! it is back (unix socket and TCP), none twice. No credential reaches it.

mod support;

use std::{collections::BTreeSet, time::Duration};

use lab::{
    GATEWAY_CLIENT_IF, Lab,
    rsyslog::{Rsyslog, TCP_PORT, UDP_PORT},
};
use support::{require_root, start_sensor};

/// A decoy hit from extra client `i`, with its own Basic credentials.
fn decoy(lab: &Lab, i: u8) {
    let user = format!("user{i}:wonderland");
    lab.curl_from(&Lab::extra_client(i), &["-u", &user], "/admin/login", 1)
        .unwrap();
}

/// The `client_ip="..."` structured-data values of RFC 5424 records.
fn ips(records: &[String]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| {
            r.split("client_ip=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn rsyslog_gets_every_alert_even_across_a_restart() {
    require_root();
    let lab = Lab::up("ss-syslog").unwrap();
    let mut rsyslog = Rsyslog::start(&lab, &lab.workdir().join("rsyslog")).unwrap();
    let (unix, udp, tcp) = (
        format!("unix:{}", rsyslog.socket().display()),
        format!("udp:127.0.0.1:{UDP_PORT}"),
        format!("tcp:127.0.0.1:{TCP_PORT}"),
    );
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--decoy",
        "/admin/**",
        "--no-metrics",
        "--alerts",
        "-",
    ];
    let mut args = args.to_vec();
    args.extend(["--syslog", &unix, "--syslog", &udp, "--syslog", &tcp]);
    let transactions = lab.workdir().join("transactions.jsonl");
    let rotated = lab.workdir().join("transactions.jsonl.1");
    let path = transactions.display().to_string();
    args.extend(["--transactions", &path]);
    let sensor = start_sensor(&lab, &args);

    for i in 0..3 {
        decoy(&lab, i);
    }
    let first = rsyslog.wait_for("tcp", 3, Duration::from_secs(10));
    assert_eq!(first.len(), 3, "{first:#?}");
    rsyslog.stop().unwrap();
    // Log rotation: move the transactions file away, SIGHUP, go on.
    std::fs::rename(&transactions, &rotated).unwrap();
    sensor.reload().unwrap();
    for i in 3..5 {
        decoy(&lab, i);
    }
    std::thread::sleep(Duration::from_secs(2)); // the senders find rsyslog gone
    rsyslog.resume().unwrap();
    let tcp_records = rsyslog.wait_for("tcp", 5, Duration::from_secs(15));
    let unix_records = rsyslog.wait_for("unix", 5, Duration::from_secs(5));
    let run = sensor.stop().unwrap();
    let udp_records = rsyslog.records("udp");
    let lines = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
    let (before, after) = (lines(&rotated), lines(&transactions));
    drop(rsyslog);
    lab.teardown();

    let want: BTreeSet<String> = (0..5).map(Lab::extra_client).collect();
    let alerted: BTreeSet<String> = run
        .alerts
        .iter()
        .map(|a| a["client_ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(alerted, want);
    for (name, records) in [("tcp", &tcp_records), ("unix", &unix_records)] {
        assert_eq!(records.len(), 5, "{name}: {records:#?}");
        assert_eq!(ips(records), want, "{name}: every alert once");
        for r in records.iter() {
            // auth (4) x 8 + crit (2): a high-severity alert, RFC 5424 version 1.
            assert!(r.starts_with("<34>1 "), "{name}: {r}");
            assert!(r.contains(" siem-sensor "), "{r}");
            assert!(
                r.contains(
                    r#"[siem@32473 detector="honeypot" severity="high" state="firing" id=""#
                ),
                "{r}"
            );
            assert!(
                r.contains(" detector=honeypot severity=high state=firing "),
                "{r}"
            );
        }
    }
    // UDP delivers what was sent while rsyslog ran; the rest is lost.
    assert!(
        ips(&udp_records).is_superset(&ips(&first)),
        "{udp_records:#?}"
    );
    let counts = &run.summary["sinks"];
    let tcp_counts = counts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == tcp.as_str())
        .unwrap();
    assert_eq!(
        (tcp_counts["sent"].as_u64(), tcp_counts["overflow"].as_u64()),
        (Some(5), Some(0)),
        "{counts}"
    );
    assert_eq!(
        (before, after),
        (3, 2),
        "transactions file rotated on SIGHUP"
    );
    let everything = format!(
        "{tcp_records:?}{unix_records:?}{udp_records:?}{}{}",
        run.log, run.summary
    );
    assert!(!everything.contains("wonderland"));
}

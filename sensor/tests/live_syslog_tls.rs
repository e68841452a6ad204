//! A real rsyslog receives the live sensor's alerts over TLS (RFC 5425,
//! rsyslog's openssl stream driver): `tls:` targets from the command line
//! and from the config file each deliver one record per alert; a receiver
//! whose certificate does not chain to the CA given, or does not carry the
//! name given, gets nothing, and the summary counts the alerts as refused.
//! A target the flag cannot read is reported at its line of the file.

mod support;

use std::{collections::BTreeSet, time::Duration};

use lab::{
    GATEWAY_CLIENT_IF, Lab,
    rsyslog::{Rsyslog, TLS_PORT, write_ca},
};
use serde_json::Value;
use support::{SENSOR, require_root, start_sensor};

/// A decoy hit from extra client `i`.
fn decoy(lab: &Lab, i: u8) {
    lab.curl_from(&Lab::extra_client(i), &[], "/admin/login", 1)
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

/// The summary's counts for syslog target `target`.
fn counts(summary: &Value, target: &str) -> [u64; 5] {
    let sinks = summary["sinks"].as_array().unwrap();
    let c = sinks
        .iter()
        .find(|c| c["target"] == target)
        .unwrap_or_else(|| panic!("no {target} in {summary}"));
    ["sent", "overflow", "dropped", "refused", "undelivered"].map(|k| c[k].as_u64().unwrap())
}

/// Asserts `records` are the high-severity honeypot alerts from
/// `clients`, one each.
fn assert_one_record_per_alert(records: &[String], clients: std::ops::Range<u8>) {
    let want: BTreeSet<String> = clients.map(Lab::extra_client).collect();
    assert_eq!(records.len(), want.len(), "{records:#?}");
    assert_eq!(ips(records), want, "{records:#?}");
    for r in records {
        assert!(r.starts_with("<34>1 "), "{r}");
        assert!(r.contains(" detector=honeypot severity=high "), "{r}");
    }
}

const DECOY: [&str; 4] = ["--decoy", "/admin/**", "--alerts", "-"];

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn tls_targets_on_the_command_line_reach_rsyslog() {
    require_root();
    let lab = Lab::up("ss-tls-cli").unwrap();
    let rsyslog = Rsyslog::start(&lab, &lab.workdir().join("rsyslog")).unwrap();
    let (target, ca) = (
        format!("tls:127.0.0.1:{TLS_PORT}"),
        rsyslog.ca().display().to_string(),
    );
    let mut args = vec!["--iface", GATEWAY_CLIENT_IF, "--no-metrics"];
    args.extend(DECOY);
    args.extend(["--syslog", &target, "--syslog-ca", &ca]);
    let sensor = start_sensor(&lab, &args);
    for i in 0..3 {
        decoy(&lab, i);
    }
    rsyslog.wait_for("tls", 3, Duration::from_secs(10));
    let run = sensor.stop().unwrap();
    let records = rsyslog.wait_for("tls", 4, Duration::from_secs(1));
    drop(rsyslog);
    lab.teardown();

    assert_eq!(run.alerts.len(), 3, "{}", run.log);
    assert_one_record_per_alert(&records, 0..3);
    assert_eq!(counts(&run.summary, &target), [3, 0, 0, 0, 0]);
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn tls_targets_in_the_config_file_reach_rsyslog_and_a_wrong_name_is_refused() {
    require_root();
    let lab = Lab::up("ss-tls-conf").unwrap();
    let rsyslog = Rsyslog::start(&lab, &lab.workdir().join("rsyslog")).unwrap();
    let good = format!("tls:127.0.0.1:{TLS_PORT}");
    // rsyslog's certificate names 127.0.0.1 only.
    let wrong = format!("tls:127.0.0.1:{TLS_PORT}/syslog.example.com");
    let file = lab.workdir().join("sensor.toml");
    let config = format!(
        "[capture]\ninterfaces = [\"{GATEWAY_CLIENT_IF}\"]\n\
         [metrics]\nenabled = false\n\
         [detectors]\ndecoys = [\"/admin/**\"]\n\
         [syslog]\ntargets = [\"{good}\", \"{wrong}\"]\nca = \"{}\"\n",
        rsyslog.ca().display()
    );
    std::fs::write(&file, config).unwrap();
    let path = file.display().to_string();
    let sensor = start_sensor(&lab, &["--config", &path, "--alerts", "-"]);
    for i in 0..2 {
        decoy(&lab, i);
    }
    rsyslog.wait_for("tls", 2, Duration::from_secs(10));
    let run = sensor.stop().unwrap();
    let records = rsyslog.wait_for("tls", 3, Duration::from_secs(1));
    drop(rsyslog);
    lab.teardown();

    assert_eq!(run.alerts.len(), 2, "{}", run.log);
    assert_one_record_per_alert(&records, 0..2);
    assert_eq!(counts(&run.summary, &good), [2, 0, 0, 0, 0]);
    assert_eq!(counts(&run.summary, &wrong), [0, 0, 0, 2, 0]);
    assert!(
        run.log.contains("syslog receiver refused")
            && run
                .log
                .contains("certificate not valid for name \"syslog.example.com\""),
        "{}",
        run.log
    );
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn a_receiver_whose_certificate_another_ca_signed_gets_nothing() {
    require_root();
    let lab = Lab::up("ss-tls-ca").unwrap();
    let rsyslog = Rsyslog::start(&lab, &lab.workdir().join("rsyslog")).unwrap();
    let other = lab.workdir().join("other-ca.pem");
    write_ca(&other).unwrap();
    let (target, ca) = (
        format!("tls:127.0.0.1:{TLS_PORT}"),
        other.display().to_string(),
    );
    let mut args = vec!["--iface", GATEWAY_CLIENT_IF, "--no-metrics"];
    args.extend(DECOY);
    args.extend(["--syslog", &target, "--syslog-ca", &ca]);
    let sensor = start_sensor(&lab, &args);
    for i in 0..2 {
        decoy(&lab, i);
    }
    std::thread::sleep(Duration::from_secs(2)); // several handshakes refused
    let run = sensor.stop().unwrap();
    let records = rsyslog.records("tls");
    drop(rsyslog);
    lab.teardown();

    assert_eq!(run.alerts.len(), 2, "{}", run.log);
    assert!(records.is_empty(), "{records:#?}");
    assert_eq!(counts(&run.summary, &target), [0, 0, 0, 2, 0]);
    assert!(
        run.log.contains("syslog receiver refused") && run.log.contains("invalid peer certificate"),
        "{}",
        run.log
    );
}

#[test]
fn tls_targets_in_the_config_file_are_checked_like_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let check = |targets: &str| {
        let file = dir.path().join("sensor.toml");
        let text = format!(
            "[capture]\ninterfaces = [\"lo\"]\n[syslog]\ntargets = [{targets}]\nca = \"/etc/ca.pem\"\n"
        );
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(SENSOR)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.success(),
            err.replace(&file.display().to_string(), "FILE"),
        )
    };
    let (ok, err) = check(r#""tls:127.0.0.1:6514", "tls:[::1]:6514/syslog.example.com""#);
    assert!(ok, "{err}");
    let (ok, err) = check(r#""tls:127.0.0.1:6514/bad name""#);
    assert!(!ok);
    assert!(
        err.contains("FILE:4: invalid value 'tls:127.0.0.1:6514/bad name' for '--syslog <TARGET>'")
            && err.contains("`bad name` is not a server name"),
        "{err}"
    );
}

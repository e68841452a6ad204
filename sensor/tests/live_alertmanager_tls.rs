//! A real Alertmanager serving HTTPS and asking for basic auth (its
//! `--web.config.file`) gets the live sensor's alerts with a CA and a
//! password file from the command line and from the config file; a wrong
//! password or an untrusted CA delivers nothing, and the summary counts
//! the alerts as refused. The config file's `[alertmanager]` keys are
//! checked like the flags.

mod support;

use std::{collections::BTreeSet, path::Path, time::Duration};

use lab::{GATEWAY_CLIENT_IF, Lab, alertmanager::Alertmanager, rsyslog::write_ca};
use serde_json::Value;
use support::{SENSOR, require_root, start_sensor};

const USER: &str = "sensor";
const PASSWORD: &str = "correct horse battery staple";

/// Decoy hits from extra clients `clients`.
fn decoys(lab: &Lab, clients: std::ops::Range<u8>) {
    for i in clients {
        lab.curl_from(&Lab::extra_client(i), &[], "/admin/login", 1)
            .unwrap();
    }
}

/// Writes `password` to a file in the lab's workdir; returns its path.
fn password_file(lab: &Lab, name: &str, password: &str) -> String {
    let file = lab.workdir().join(name);
    std::fs::write(&file, format!("{password}\n")).unwrap();
    file.display().to_string()
}

/// The client IPs of Alertmanager's active alerts.
fn ips(alerts: &[Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .map(|a| a["labels"]["client_ip"].as_str().unwrap().to_owned())
        .collect()
}

/// The summary's counts for the Alertmanager target: sent, overflow,
/// dropped, refused, undelivered.
fn counts(summary: &Value) -> [u64; 5] {
    let c = summary["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sink"] == "alertmanager")
        .unwrap_or_else(|| panic!("no alertmanager in {summary}"));
    ["sent", "overflow", "dropped", "refused", "undelivered"].map(|k| c[k].as_u64().unwrap())
}

fn clients(range: std::ops::Range<u8>) -> BTreeSet<String> {
    range.map(Lab::extra_client).collect()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn tls_and_basic_auth_from_the_command_line_and_the_config_file_reach_alertmanager() {
    require_root();
    let lab = Lab::up("ss-am-tls").unwrap();
    let am = Alertmanager::start_tls(&lab, &lab.workdir().join("am"), USER, PASSWORD).unwrap();
    let (url, ca) = (am.url(), am.ca().display().to_string());
    let password = password_file(&lab, "am.password", PASSWORD);

    let mut args = vec!["--iface", GATEWAY_CLIENT_IF, "--no-metrics"];
    args.extend(["--decoy", "/admin/**", "--alerts", "-"]);
    args.extend(["--alertmanager", &url, "--alertmanager-ca", &ca]);
    args.extend(["--alertmanager-user", USER]);
    args.extend(["--alertmanager-password-file", &password]);
    let sensor = start_sensor(&lab, &args);
    decoys(&lab, 0..2);
    let from_flags = am.wait_for(Duration::from_secs(10), |a| a.len() == 2);
    let flags_run = sensor.stop().unwrap();

    let file = lab.workdir().join("sensor.toml");
    let config = format!(
        "[capture]\ninterfaces = [\"{GATEWAY_CLIENT_IF}\"]\n\
         [metrics]\nenabled = false\n\
         [detectors]\ndecoys = [\"/admin/**\"]\n\
         [alertmanager]\nurls = [\"{url}\"]\nca = \"{ca}\"\nuser = \"{USER}\"\n\
         password_file = \"{password}\"\nresend = \"30s\"\n\
         [outputs]\nnode_name = \"kong-tls\"\n"
    );
    std::fs::write(&file, config).unwrap();
    let path = file.display().to_string();
    let sensor = start_sensor(&lab, &["--config", &path, "--alerts", "-"]);
    decoys(&lab, 2..4);
    let from_file = am.wait_for(Duration::from_secs(10), |a| a.len() == 4);
    let file_run = sensor.stop().unwrap();
    drop(am);
    lab.teardown();

    assert_eq!(ips(&from_flags), clients(0..2), "{from_flags:#?}");
    assert_eq!(ips(&from_file), clients(0..4), "{from_file:#?}");
    let node = |ip: String| {
        let a = from_file
            .iter()
            .find(|a| a["labels"]["client_ip"] == ip.as_str());
        a.unwrap()["labels"]["node"].as_str().unwrap().to_owned()
    };
    assert_eq!(node(Lab::extra_client(3)), "kong-tls");
    for run in [&flags_run, &file_run] {
        assert_eq!(run.alerts.len(), 2, "{}", run.log);
        assert_eq!(counts(&run.summary), [2, 0, 0, 0, 0]);
        assert!(!run.log.contains(PASSWORD), "{}", run.log);
    }
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn a_wrong_password_or_an_untrusted_ca_delivers_nothing_and_is_counted() {
    require_root();
    let lab = Lab::up("ss-am-bad").unwrap();
    let am = Alertmanager::start_tls(&lab, &lab.workdir().join("am"), USER, PASSWORD).unwrap();
    let (url, ca) = (am.url(), am.ca().display().to_string());
    let other_ca = lab.workdir().join("other-ca.pem");
    write_ca(&other_ca).unwrap();
    let other_ca = other_ca.display().to_string();
    let (good, wrong) = (
        password_file(&lab, "good.password", PASSWORD),
        password_file(&lab, "wrong.password", "Tr0ub4dor&3"),
    );
    let refused = |ca: &str, password: &str, clients: std::ops::Range<u8>| {
        let mut args = vec!["--iface", GATEWAY_CLIENT_IF, "--no-metrics"];
        args.extend(["--decoy", "/admin/**", "--alerts", "-"]);
        args.extend(["--alertmanager", &url, "--alertmanager-ca", ca]);
        args.extend(["--alertmanager-user", USER]);
        args.extend(["--alertmanager-password-file", password]);
        let sensor = start_sensor(&lab, &args);
        decoys(&lab, clients);
        std::thread::sleep(Duration::from_secs(2)); // several attempts refused
        sensor.stop().unwrap()
    };
    let bad_password = refused(&ca, &wrong, 0..2);
    let untrusted = refused(&other_ca, &good, 2..3);
    let shown = am.alerts();
    drop(am);
    lab.teardown();

    assert!(shown.is_empty(), "{shown:#?}");
    assert_eq!(bad_password.alerts.len(), 2, "{}", bad_password.log);
    assert_eq!(counts(&bad_password.summary), [0, 0, 0, 2, 0]);
    assert!(
        bad_password.log.contains("alertmanager refused the sensor")
            && bad_password.log.contains("HTTP 401"),
        "{}",
        bad_password.log
    );
    assert!(
        !bad_password.log.contains("Tr0ub4dor"),
        "{}",
        bad_password.log
    );
    assert_eq!(untrusted.alerts.len(), 1, "{}", untrusted.log);
    assert_eq!(counts(&untrusted.summary), [0, 0, 0, 1, 0]);
    assert!(
        untrusted.log.contains("alertmanager refused the sensor")
            && untrusted.log.contains("invalid peer certificate"),
        "{}",
        untrusted.log
    );
}

/// `check-config FILE`'s success and stderr (the file's path as `FILE`).
fn check(dir: &Path, section: &str) -> (bool, String) {
    let file = dir.join("sensor.toml");
    let text = format!("[capture]\ninterfaces = [\"lo\"]\n[alertmanager]\n{section}");
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
}

#[test]
fn alertmanager_settings_in_the_config_file_are_checked_like_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("am.password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let ca = dir.path().join("ca.pem");
    write_ca(&ca).unwrap();
    let (p, c) = (password.display(), ca.display());
    let (ok, err) = check(
        dir.path(),
        &format!(
            "urls = [\"https://127.0.0.1:9093\", \"http://[::1]:9093/am\"]\nca = \"{c}\"\n\
             user = \"sensor\"\npassword_file = \"{p}\"\nresend = \"30s\"\nqueue = 100\n\
             max_active = 500\n"
        ),
    );
    assert!(ok, "{err}");
    let (ok, err) = check(dir.path(), "urls = [\"ftp://127.0.0.1:9093\"]\n");
    assert!(!ok);
    assert!(
        err.contains("FILE:4: invalid value 'ftp://127.0.0.1:9093' for '--alertmanager <URL>'"),
        "{err}"
    );
    let (ok, err) = check(
        dir.path(),
        "urls = [\"http://127.0.0.1:9093\"]\nuser = \"sensor\"\n\
         password_file = \"/nonexistent/am.password\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("FILE:4: cannot start the Alertmanager senders")
            && err.contains("/nonexistent/am.password"),
        "{err}"
    );
    let (ok, err) = check(
        dir.path(),
        "urls = [\"http://127.0.0.1:9093\"]\nresend = \"10ms\"\n",
    );
    assert!(!ok && err.contains("must be at least 1s"), "{err}");
    let (ok, err) = check(
        dir.path(),
        "urls = [\"http://127.0.0.1:9093\"]\nuser = \"sensor\"\n",
    );
    assert!(!ok && err.contains("--alertmanager-password-file"), "{err}");
}

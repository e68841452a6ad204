//! The config file: the shipped example is valid, every error names the
//! file, the line and the reason, and command-line flags override the file.

mod support;

use std::{fs, path::Path, process::Command};

use support::{SENSOR, pcaps};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/sensor.toml");

fn sensor(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(SENSOR).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn check(dir: &Path, name: &str, text: &str) -> (bool, String) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    let (ok, _, err) = sensor(&["check-config", path.to_str().unwrap()]);
    (ok, err.replace(&format!("{}", dir.display()), "DIR"))
}

#[test]
fn the_shipped_example_is_valid() {
    let (ok, out, err) = sensor(&["check-config", EXAMPLE]);
    assert!(ok, "{err}");
    assert!(out.ends_with(": OK\n"), "{out}");
}

/// The shipped analyser example (`siem-sensor fleet --config`): every key
/// is one `fleet` takes (clap reads the file's flags before `--help`), and
/// a bad value names its line.
#[test]
fn the_shipped_fleet_example_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/fleet.toml");
    let (ok, _, err) = sensor(&["fleet", "--config", example, "--help"]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.toml");
    fs::write(
        &path,
        "[fleet]\nservers = [\"nats://127.0.0.1:4222\"]\npartitions = \"0-16\"\n",
    )
    .unwrap();
    let (ok, _, err) = sensor(&["fleet", "--config", path.to_str().unwrap(), "--help"]);
    assert!(!ok);
    assert!(
        err.contains("fleet.toml:3: invalid value '0-16' for '--partitions"),
        "{err}"
    );
}

#[test]
fn every_error_names_the_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "unknown-key.toml",
            "[capture]\ninterfaces = [\"lo\"]\n\n[detectors]\nflod_budget = 300\n",
            "DIR/unknown-key.toml:5: unknown key `flod_budget` in [detectors] (known: enabled,",
        ),
        (
            "unknown-section.toml",
            "[capture]\ninterfaces = [\"lo\"]\n[detector]\n",
            "DIR/unknown-section.toml:3: unknown section [detector] (known: capture,",
        ),
        (
            "bad-value.toml",
            "[capture]\ninterfaces = [\"lo\"]\n[detectors]\nflood_budget = \"lots\"\n",
            "DIR/bad-value.toml:4: invalid value 'lots' for '--flood-budget <FLOOD_BUDGET>'",
        ),
        (
            "bad-range.toml",
            "[capture]\ninterfaces = [\"lo\"]\ncapture_len = 4096\n",
            "DIR/bad-range.toml:3: invalid value '4096' for '--capture-len <CAPTURE_LEN>'",
        ),
        (
            "syntax.toml",
            "[capture]\ninterfaces = [\"lo\"\n",
            "DIR/syntax.toml:2: ",
        ),
        (
            "bad-decoy.toml",
            "[capture]\ninterfaces = [\"lo\"]\n[detectors]\ndecoys = [\"/a/[z\"]\n",
            "DIR/bad-decoy.toml:4: bad decoy route `/a/[z`",
        ),
        (
            "bad-key-name.toml",
            "[capture]\ninterfaces = [\"lo\"]\n[identity]\nkey_names = [\"apikey\", \"api key\"]\n",
            "DIR/bad-key-name.toml:4: invalid value 'api key' for '--key-name <NAME>': `api key` is not a header name",
        ),
        (
            "table.toml",
            "capture = 3\n",
            "DIR/table.toml:1: `capture` must be a [section]",
        ),
        (
            "no-interface.toml",
            "[detectors]\nflood_budget = 300\n",
            "DIR/no-interface.toml: --iface <IF> is required: set [capture] interfaces",
        ),
    ];
    for (name, text, expected) in cases {
        let (ok, err) = check(d, name, text);
        assert!(!ok, "{name} passed");
        assert!(
            err.starts_with(&format!("siem-sensor: error: {expected}")),
            "{name}: {err}"
        );
    }
    let (ok, _, err) = sensor(&["check-config", "/nonexistent/sensor.toml"]);
    assert!(
        !ok && err.contains("/nonexistent/sensor.toml: cannot read"),
        "{err}"
    );
}

/// `siem-sensor replay --json` of a real browser's capture (328 answered
/// requests in one 15 s window, `/ping` among them) with a config file of
/// `sections` and a fingerprint key file, then `extra` flags: its stdout
/// and whether the file's key path was used. `None` without the captures.
fn replay_with_config(sections: &str, extra: &[&str]) -> Option<(String, bool)> {
    let dir = pcaps()?;
    let pcap = dir.join("seladb/PcapPlusPlus/Tests/Pcap++Test/PcapExamples/example.pcap");
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sensor.toml");
    let key = tmp.path().join("fp.key");
    let text = format!(
        "[identity]\nfingerprint_key = \"{}\"\n{sections}",
        key.display()
    );
    fs::write(&config, text).unwrap();
    let mut args = vec![
        "replay",
        pcap.to_str().unwrap(),
        "--json",
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend(extra);
    let (ok, out, err) = sensor(&args);
    assert!(ok, "{err}");
    Some((out, key.exists()))
}

#[test]
fn flags_override_the_file() {
    let file = "[detectors]\nflood_budget = 5000\n";
    let floods = |extra: &[&str]| {
        let (out, key_used) = replay_with_config(file, extra)?;
        assert!(key_used, "the file's fingerprint key path was used");
        let firing = |l: &&str| l.contains("\"state\":\"firing\"") && l.contains("request_flood");
        Some(out.lines().filter(firing).count())
    };
    let Some(from_file) = floods(&[]) else { return };
    assert_eq!(from_file, 0, "the file's budget of 5000");
    assert_eq!(
        floods(&["--flood-budget", "300"]),
        Some(1),
        "the flag's budget of 300"
    );
}

#[test]
fn replay_takes_a_nodes_config_file_and_leaves_out_the_live_settings() {
    let file = "[capture]\ninterfaces = [\"eth0\"]\ntrim_bodies = 0\ntls = \"off\"\n\
                [detectors]\ndecoys = [\"/ping\"]\n";
    let Some((out, _)) = replay_with_config(file, &[]) else {
        return;
    };
    assert!(
        out.lines()
            .any(|l| l.contains("\"detector\":\"honeypot\"") && l.contains("/ping")),
        "the file's decoy: {out}"
    );
}

/// SIGHUP applies the file's new detector settings without a restart or a
/// loss of state; a broken file keeps the old settings and says why.
#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn sighup_reloads_the_settings_and_keeps_state() {
    support::require_root();
    let lab = lab::Lab::up("ss-reload").unwrap();
    let file = lab.workdir().join("sensor.toml");
    let base = format!(
        "[capture]\ninterfaces = [\"{}\"]\n[metrics]\nenabled = false\n",
        lab::GATEWAY_CLIENT_IF
    );
    fs::write(&file, &base).unwrap();
    let path = file.display().to_string();
    let sensor = support::start_sensor(&lab, &["--config", &path, "--alerts", "-"]);
    let decoy = |i: u8, path: &str| {
        let source = lab::Lab::extra_client(i);
        lab.curl_from(&source, &[], path, 1).unwrap();
    };
    decoy(0, "/admin/a"); // no decoys yet
    // Captured, and past the half second a client leg waits for its
    // upstream leg, before the change.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // The reload also adds an output: transactions to a file.
    let tx_file = lab.workdir().join("transactions.jsonl");
    let outputs = format!("[outputs]\ntransactions = \"{}\"\n", tx_file.display());
    let decoys = "[detectors]\ndecoys = [\"/admin/**\"]\n";
    fs::write(&file, format!("{base}{outputs}{decoys}")).unwrap();
    sensor.reload().unwrap();
    decoy(1, "/admin/b");
    let broken = "[detectors]\ndecoys = [\"/admin/**\"\n";
    fs::write(&file, format!("{base}{outputs}{broken}")).unwrap();
    sensor.reload().unwrap();
    decoy(2, "/admin/c"); // the broken file changed nothing
    let run = sensor.stop().unwrap();
    let transactions = fs::read_to_string(&tx_file).unwrap();
    lab.teardown();
    let hits: Vec<_> = run
        .alerts
        .iter()
        .map(|a| a["client_ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hits, ["10.77.0.11", "10.77.0.12"]);
    assert_eq!(
        run.summary["detect"]["transactions"], 3,
        "state kept across reloads"
    );
    assert!(
        run.log.contains("settings and outputs reloaded"),
        "{}",
        run.log
    );
    assert_eq!(
        transactions.lines().count(),
        2,
        "the output the reload added: {transactions}"
    );
    assert!(
        run.log.contains(&format!(
            "settings not reloaded, the old ones stay error={path}:"
        )),
        "{}",
        run.log
    );
}

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

#[test]
fn flags_override_the_file() {
    let Some(dir) = pcaps() else { return };
    let pcap = dir.join("ntop/nDPI/tests/cfgs/default/pcap/WebattackRCE.pcap");
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sensor.toml");
    let key = tmp.path().join("fp.key");
    let text = format!(
        "[identity]\nfingerprint_key = \"{}\"\n[detectors]\nflood_budget = 5000\n",
        key.display()
    );
    fs::write(&config, text).unwrap();
    let floods = |extra: &[&str]| {
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
        out.matches("\"detector\":\"request_flood\"").count()
    };
    assert_eq!(floods(&[]), 0, "the file's budget of 5000");
    assert_eq!(
        floods(&["--flood-budget", "600"]),
        1,
        "the flag's budget of 600"
    );
    assert!(key.exists(), "the file's fingerprint key path was used");
}

//! `cargo xtask install` puts the Debian package's files in place under a
//! root, and a second install keeps the operator's edited config.

mod support;

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use support::SENSOR;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn install_places_the_files_and_keeps_an_edited_config() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let written = lab::install::install(Path::new(SRC), Path::new(SENSOR), r).unwrap();
    assert_eq!(written.len(), 6, "{written:?}");
    let mode = |p: &str| fs::metadata(r.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("usr/bin/siem-sensor"), 0o755);
    assert_eq!(mode("lib/systemd/system/siem-sensor.service"), 0o644);
    // The runbook, where the alerts' default runbook_url points.
    let runbook = sensor::detect::RUNBOOK_URL
        .strip_prefix("file:///")
        .unwrap();
    assert_eq!(mode(runbook), 0o644);
    assert_eq!(
        fs::read(r.join(runbook)).unwrap(),
        fs::read(Path::new(SRC).join("RUNBOOK.md")).unwrap()
    );
    let config = r.join("etc/siem-sensor/sensor.toml");
    let out = std::process::Command::new(r.join("usr/bin/siem-sensor"))
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the installed binary accepts the installed config"
    );

    fs::write(&config, "[capture]\ninterfaces = [\"eth1\"]\n").unwrap();
    let again = lab::install::install(Path::new(SRC), Path::new(SENSOR), r).unwrap();
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "[capture]\ninterfaces = [\"eth1\"]\n"
    );
    assert!(!again.contains(&config), "{again:?}");
}

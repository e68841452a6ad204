//! The Debian package (`cargo deb`): `dpkg -i` installs it on this machine,
//! creates the user, enables nothing; the installed binary runs, the
//! installed unit verifies and the runbook is where alerts link to;
//! reinstalling keeps a locally edited config.
//! The package is purged at the end, pass or fail.

mod support;

use std::{fs, path::Path, process::Command};

use support::require_root;

const CONFIG: &str = "/etc/siem-sensor/sensor.toml";

/// Purges the package (and its user) when dropped.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "siem-sensor"])
            .output();
        let _ = Command::new("userdel").arg("siem-sensor").output();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn dpkg_installs_it_and_an_upgrade_keeps_the_config() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("siem-sensor.deb");
    let newer = dir.path().join("siem-sensor-newer.deb");
    // The binary under test, not a release build (cargo-deb warns about it).
    let build = |out: &Path, version: &str| {
        run(Command::new("cargo")
            .args([
                "deb",
                "-p",
                "sensor",
                "--profile",
                "dev",
                "--no-build",
                "--no-strip",
                "--fast",
                "--deb-version",
                version,
                "-o",
            ])
            .arg(out)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
    };
    build(&deb, "0.1.0-1");
    build(&newer, "0.1.0-2");
    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));

    assert!(run(Command::new("/usr/bin/siem-sensor").arg("--version")).starts_with("siem-sensor "));
    run(Command::new("id").arg("siem-sensor"));
    support::assert_unit_verifies(Path::new("/lib/systemd/system/siem-sensor.service"));
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/siem-sensor.service");
    assert!(!wants.exists(), "installing enabled the service");
    run(Command::new("/usr/bin/siem-sensor").args(["check-config", CONFIG]));
    // The runbook the alerts link to by default.
    let runbook = sensor::detect::RUNBOOK_URL.strip_prefix("file://").unwrap();
    assert_eq!(
        fs::read(runbook).unwrap(),
        fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../RUNBOOK.md")).unwrap()
    );

    let edited = "# edited here\n[capture]\ninterfaces = [\"eth1\"]\n";
    fs::write(CONFIG, edited).unwrap();
    run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(&deb));
    assert_eq!(
        fs::read_to_string(CONFIG).unwrap(),
        edited,
        "the upgrade replaced the edited config"
    );
}

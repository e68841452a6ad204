//! `cargo xtask install`: a source install with the Debian package's files
//! and paths. It enables and starts nothing, and never overwrites a config
//! file the operator may have edited.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::run_quiet;

/// What goes where, relative to the install root (`/` for a real install).
const FILES: &[(&str, &str, u32)] = &[
    (
        "systemd/siem-sensor.service",
        "lib/systemd/system/siem-sensor.service",
        0o644,
    ),
    (
        "systemd/siem-sensor.default",
        "etc/default/siem-sensor",
        0o644,
    ),
    ("systemd/sensor.toml", "etc/siem-sensor/sensor.toml", 0o644),
    ("README.md", "usr/share/doc/siem-sensor/README.md", 0o644),
    // Where alerts' runbook_url points by default (sensor::detect::RUNBOOK_URL).
    ("RUNBOOK.md", "usr/share/doc/siem-sensor/RUNBOOK.md", 0o644),
];

/// Files that are the operator's once installed: kept if present.
const CONFIG: &[&str] = &["etc/default/siem-sensor", "etc/siem-sensor/sensor.toml"];

/// Installs `binary` and the service files from the source tree `src` under
/// `root`; returns what was written. With `root` `/`, also creates the
/// `siem-sensor` system user (if missing) and reloads systemd (if running).
///
/// # Errors
/// A file cannot be copied, or `useradd` fails.
pub fn install(src: &Path, binary: &Path, root: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let copy = |from: &Path, to: &Path, mode: u32| -> Result<()> {
        fs::create_dir_all(to.parent().context("install path")?)?;
        fs::copy(from, to).with_context(|| format!("{} -> {}", from.display(), to.display()))?;
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let bin = root.join("usr/bin/siem-sensor");
    copy(binary, &bin, 0o755)?;
    written.push(bin);
    for (from, to, mode) in FILES {
        let target = root.join(to);
        if CONFIG.contains(to) && target.exists() {
            eprintln!("install: keeping the existing {}", target.display());
            continue;
        }
        copy(&src.join(from), &target, *mode)?;
        written.push(target);
    }
    if root == Path::new("/") {
        let exists = Command::new("id")
            .arg("siem-sensor")
            .output()
            .is_ok_and(|o| o.status.success());
        if !exists {
            run_quiet(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/var/lib/siem-sensor",
                "--shell",
                "/usr/sbin/nologin",
                "siem-sensor",
            ]))?;
        }
        if Path::new("/run/systemd/system").exists() {
            run_quiet(Command::new("systemctl").arg("daemon-reload"))?;
        }
        eprintln!(
            "install: done; edit /etc/siem-sensor/sensor.toml, then `systemctl enable --now siem-sensor`"
        );
    }
    Ok(written)
}

//! Instructions per transaction, counted by cachegrind (valgrind): the
//! same on every run, where wall and CPU time swing twofold with the
//! shared host, so a change of a few percent, and the ratio to a peer,
//! show in one run. Under valgrind a program sees the CPU valgrind
//! emulates (AVX2 at most), so SIMD paths that pick AVX-512 natively take
//! their AVX2 versions.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};
use lab::run_quiet;

/// What cachegrind counted in one run.
pub(super) struct Counted {
    /// Instructions executed (`I refs`), start-up included.
    pub instructions: u64,
    /// The program's standard output.
    pub stdout: String,
}

/// Runs `program args` under cachegrind without cache simulation.
///
/// # Errors
/// valgrind missing, the program failing, or no count in its report.
pub(super) fn count<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Result<Counted> {
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
    ])
    .arg(program)
    .args(args);
    let out = run_quiet(&mut cmd)?;
    let report = String::from_utf8_lossy(&out.stderr);
    let instructions = report
        .lines()
        .find_map(|l| l.split_once("I   refs:"))
        .map(|(_, n)| n.trim().replace(',', ""))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no instruction count from cachegrind: {report}"))?;
    Ok(Counted {
        instructions,
        stdout: String::from_utf8(out.stdout)?,
    })
}

/// The first `packets` packets of `capture`, written beside it once (again
/// when the capture is newer).
///
/// # Errors
/// tcpdump failing.
pub(super) fn prefix(capture: &Path, packets: u32) -> Result<PathBuf> {
    let stem = capture.file_stem().unwrap_or_default().to_string_lossy();
    let out = capture.with_file_name(format!("{stem}-first-{packets}.pcap"));
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&out) < modified(capture) {
        let mut tcpdump = Command::new("tcpdump");
        tcpdump.arg("-r").arg(capture);
        tcpdump.args(["-c", &packets.to_string(), "-w"]).arg(&out);
        run_quiet(&mut tcpdump)?;
    }
    Ok(out)
}

//! The block check's cost on the ingress path: `siem-sensor bench-block`
//! runs `tc_ingress` under `BPF_PROG_TEST_RUN` (a million runs a round,
//! median of 5 rounds) with no block in force, with 100,000 blocked
//! addresses that do not match, and with the frame's source blocked.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};
use lab::run_quiet;
use serde_json::Value;

use super::write_section;

/// Runs the measurement with the release `sensor` and writes its section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let out = run_quiet(Command::new(sensor).arg("bench-block"))?;
    let b: Value = serde_json::from_slice(&out.stdout).context("bench-block's JSON")?;
    let ns = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    let (inactive, miss, hit) = (ns("inactive_ns"), ns("miss_ns"), ns("hit_ns"));
    let section = format!(
        "## Kernel block check\n\n\
         `tc_ingress` on one SYN to a Kong proxy port that is not captured (no \
         ring-buffer record), run {repeat} times a round under \
         `BPF_PROG_TEST_RUN`, median of 5 rounds, mean ns per packet as the \
         kernel reports it (the run's own overhead included):\n\n\
         | case | ns/packet | vs. no block |\n|---|---|---|\n\
         | no block in force (one array read) | {inactive:.0} | |\n\
         | {entries} addresses blocked, source not among them | {miss:.0} | +{dm:.0} |\n\
         | source blocked (dropped, verdict {verdict}) | {hit:.0} | +{dh:.0} |\n\n\
         The lookup (the boot clock, the liveness word, a hash lookup among \
         {entries} entries) costs the difference; with no block in force the \
         programs do what they did before plus one array read.\n",
        repeat = b["repeat"],
        entries = b["entries"],
        verdict = b["hit_verdict"],
        dm = miss - inactive,
        dh = hit - inactive,
    );
    write_section(&root.join("BENCHMARKS.md"), "block", &section)?;
    println!("{section}");
    Ok(())
}

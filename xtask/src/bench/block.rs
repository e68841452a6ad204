//! The kernel programs' own cost: `siem-sensor bench-block` runs them
//! under `BPF_PROG_TEST_RUN`. The block check: `tc_ingress` (a million
//! runs a round, median of 5 rounds) with no block in force, with 100,000
//! blocked addresses that do not match, and with the frame's source
//! blocked. A record: `tc_egress` on segments of several sizes to a
//! captured port (20,000 runs a round, median of 15).

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};
use lab::run_quiet;
use serde_json::Value;

use super::write_section;

/// Runs the measurement with the release `sensor` and writes its section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let out = run_quiet(Command::new(sensor).arg("bench-block"))?;
    let all: Value = serde_json::from_slice(&out.stdout).context("bench-block's JSON")?;
    let b = &all["block"];
    let ns = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    let (inactive, miss, hit) = (ns("inactive_ns"), ns("miss_ns"), ns("hit_ns"));
    let section = format!(
        "## Kernel block check\n\n\
         `tc_ingress` on one SYN to a Kong proxy port that is not captured (no \
         record), run {repeat} times a round under \
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
    let records = records(&all["records"]);
    write_section(&root.join("BENCHMARKS.md"), "records", &records)?;
    println!("{records}");
    Ok(())
}

/// The per-record section from `bench-block`'s `records` array.
fn records(cases: &Value) -> String {
    let mut rows = String::new();
    for c in cases.as_array().into_iter().flatten() {
        let ns = c["ns"].as_f64().unwrap_or(f64::NAN);
        rows += &format!("| {} | {ns:.0} |\n", c["case"].as_str().unwrap_or("?"));
    }
    format!(
        "## Kernel cost per record\n\n\
         `tc_egress` on one segment to a captured port, 20,000 runs a round \
         under `BPF_PROG_TEST_RUN` (the CPU's ring holds them all and is \
         drained between rounds), median of 15 rounds, mean ns per run as the \
         kernel reports it, the run's own overhead included. Default capture \
         length (512 bytes). This is the programs' cost with warm caches on \
         one CPU; the live figure (kernel BPF statistics under load, in the \
         live section) adds the cache misses of fresh ring lines and of lines \
         the daemon reads on the other CPU.\n\n\
         | segment | ns/run |\n|---|---|\n{rows}"
    )
}

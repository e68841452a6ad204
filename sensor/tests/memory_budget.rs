//! One memory budget: a capture of thousands of flows, each holding an
//! unfinished 30 KB request head (an attacker opening connections and
//! never finishing a request), stays within `--memory-budget`, and the
//! flood from a real offender in the same capture is still detected.
//! (`cargo xtask bench` runs the same with 100,000 flows and the default
//! budget.)

mod support;

use std::{fs::File, io::BufWriter, process::Command, thread};

use lab::captures::{OFFENDER, unfinished_heads};
use support::SENSOR;

#[test]
fn unfinished_heads_stay_within_the_budget_and_the_offender_is_found() {
    const FLOWS: u32 = 6_000;
    const BUDGET_MIB: u64 = 48;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.pcap");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let path = fifo.clone();
    let writer = thread::spawn(move || {
        let out = BufWriter::new(File::create(path).unwrap());
        unfinished_heads(out, FLOWS, 30 * 1024, 700).unwrap();
    });
    let out = Command::new("/usr/bin/time")
        .args(["-f", "max_rss_kib=%M", SENSOR, "replay", "--json"])
        .arg(&fifo)
        .arg("--fingerprint-key")
        .arg(dir.path().join("fp.key"))
        .args(["--memory-budget", &BUDGET_MIB.to_string()])
        .output()
        .unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss_kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("max_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's report");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.last().unwrap();
    let flows = &summary["pipeline"]["flows"];
    eprintln!("peak RSS {rss_kib} KiB; flows {flows}");
    assert!(
        rss_kib < BUDGET_MIB * 1024,
        "peak RSS {rss_kib} KiB over the {BUDGET_MIB} MiB budget"
    );
    // The input held far more than the budget: it was shed, and said so.
    assert!(u64::from(FLOWS) * 30 > BUDGET_MIB * 1024 * 2);
    assert!(flows["shed_flows"].as_u64().unwrap() > 0, "{flows}");
    let flood = lines
        .iter()
        .find(|a| a["detector"] == "request_flood")
        .expect("the offender's flood");
    assert_eq!(flood["client_ip"], OFFENDER.to_string());
}

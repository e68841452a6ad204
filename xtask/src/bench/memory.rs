//! The memory budget against its worst case: connections that each hold an
//! unfinished ~30 KB request head. Replayed (a generated capture of
//! 100,000 such flows, streamed through a FIFO, with the default budget)
//! and live (thousands of held connections through the lab's nginx, with a
//! small budget so shedding shows), each with a real offender flooding in
//! the same traffic, who must still be detected.

use std::{
    fs::{self, File},
    io::BufWriter,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use lab::{
    GATEWAY_CLIENT_IF, Lab, REQUESTS_PY,
    captures::{OFFENDER, unfinished_heads},
    run_quiet,
    sensor::SensorProcess,
};
use serde_json::Value;

use super::{measure, write_section};

/// Flows of the replayed capture, and their heads' size.
const FLOWS: u32 = 100_000;
const HEAD_BYTES: usize = 30 * 1024;
/// The default `--memory-budget`, MiB.
const DEFAULT_BUDGET_MIB: u64 = 320;
/// Connections held live (the lab's nginx takes 4096 per worker).
const HELD: u32 = 3000;

/// Runs both and writes their section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let replayed = replayed(sensor)?;
    let live = live(sensor)?;
    let section = format!(
        "## Memory budget against unfinished request heads\n\n\
         Method: `cargo xtask bench --only memory`. **Replay:** a generated capture of {FLOWS} \
         flows, each a handshake and a {HEAD_BYTES}-byte request head that never ends \
         ({:.1} GB), then {OFFENDER} sending 700 answered requests, streamed through a FIFO into \
         `siem-sensor replay` with the default `--memory-budget {DEFAULT_BUDGET_MIB}`. \
         **Live:** {HELD} connections from one lab host (the lab nginx's connection limit is \
         4096), each holding seven 4000-byte header lines (28 KB, never finished; nginx \
         waits), and a wrk flood from another host, default budget; peak RSS includes the 32 MiB \
         of rings. Live, the tap copies 512 bytes of each segment, so a head cut by uncaptured \
         bytes is salvaged line by line, never buffered whole: held heads cost little, and \
         nothing needed shedding.\n\n\
         | | input held | budget MiB | peak RSS MiB | flows whose buffers were shed | flows shed | offender alerted | wall s |\n\
         |---|---|---|---|---|---|---|---|\n\
         | replay | {:.0} MiB | {DEFAULT_BUDGET_MIB} | {:.1} | {} | {} | {} | {:.1} |\n\
         | live | {:.0} MiB | {DEFAULT_BUDGET_MIB} | {:.1} | {} | {} | {} | |\n",
        f64::from(FLOWS) * HEAD_BYTES as f64 / 1e9,
        f64::from(FLOWS) * HEAD_BYTES as f64 / 1048576.0,
        replayed.rss_mib,
        replayed.shed_buffers,
        replayed.shed_flows,
        replayed.offender,
        replayed.wall_s,
        f64::from(HELD) * 28_000.0 / 1048576.0,
        live.rss_mib,
        live.shed_buffers,
        live.shed_flows,
        live.offender,
    );
    write_section(&root.join("BENCHMARKS.md"), "memory", &section)?;
    println!("{section}");
    Ok(())
}

/// What one run showed.
struct Run {
    rss_mib: f64,
    shed_buffers: u64,
    shed_flows: u64,
    offender: bool,
    wall_s: f64,
}

fn replayed(sensor: &Path) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let fifo = dir.path().join("heads.pcap");
    run_quiet(Command::new("mkfifo").arg(&fifo))?;
    eprintln!("bench: replaying {FLOWS} flows of unfinished heads");
    let path = fifo.clone();
    let writer = thread::spawn(move || -> Result<()> {
        unfinished_heads(BufWriter::new(File::create(path)?), FLOWS, HEAD_BYTES, 700)
    });
    let m = measure(
        Command::new(sensor)
            .args(["replay", "--json"])
            .arg(&fifo)
            .arg("--fingerprint-key")
            .arg(dir.path().join("fp.key")),
    )?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let lines: Vec<Value> = m
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let flows = &lines.last().context("no summary")?["pipeline"]["flows"];
    Ok(Run {
        rss_mib: m.max_rss_kib as f64 / 1024.0,
        shed_buffers: flows["shed_flows"].as_u64().unwrap_or(0),
        shed_flows: flows["budget_evictions"].as_u64().unwrap_or(0),
        offender: lines
            .iter()
            .any(|a| a["detector"] == "request_flood" && a["client_ip"] == OFFENDER.to_string()),
        wall_s: m.wall_s,
    })
}

fn live(sensor: &Path) -> Result<Run> {
    let lab = Lab::up("ss-mem")?;
    let script = lab.workdir().join("requests.py");
    fs::write(&script, REQUESTS_PY)?;
    let args = ["--iface", GATEWAY_CLIENT_IF, "--alerts", "-"];
    let process = SensorProcess::start(&lab, sensor, &args, None)?;
    let pid = process.pid();
    eprintln!("bench: holding {HELD} unfinished heads live");
    let mut hold = lab
        .command(&lab.client_ns(), "/usr/bin/python3")
        .arg(&script)
        .args([
            "hold",
            lab::GATEWAY_V4,
            &lab::PROXY_PORT.to_string(),
            &HELD.to_string(),
            "12",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    thread::sleep(Duration::from_secs(8));
    let flooder = Lab::extra_client(5);
    run_quiet(lab.command_from(&flooder, "wrk")?.args([
        "-t1",
        "-c2",
        "-d2s",
        &lab.proxy_url(false, "/hello"),
    ]))?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    let run = process.stop()?;
    let held = hold.wait()?;
    lab.teardown();
    if !held.success() {
        bail!("holding the connections failed");
    }
    let flows = &run.summary["flows"];
    Ok(Run {
        rss_mib: hwm_kib as f64 / 1024.0,
        shed_buffers: flows["shed_flows"].as_u64().unwrap_or(0),
        shed_flows: flows["budget_evictions"].as_u64().unwrap_or(0),
        offender: run
            .alerts
            .iter()
            .any(|a| a["detector"] == "request_flood" && a["client_ip"] == flooder.as_str()),
        wall_s: 0.0,
    })
}

//! Body trimming (`--trim-bodies`) on downloads: concurrent clients on
//! slow links (`curl --limit-rate`, small receive buffers) fetch a 4 MiB
//! file through the gateway while the sensor captures both legs, with
//! trimming at its default and off, alternated round by round. Per
//! download: ring records read, the tc programs' runs and time
//! (kernel BPF statistics) and the sensor's CPU; every download must be
//! one transaction of the file's size in both arms.

use std::{fs, path::Path, process::Child};

use anyhow::{Context as _, Result, bail};
use lab::{BOTH_LEGS, Lab, sensor::SensorProcess};

use super::{
    live::{BpfStats, program_time},
    median, write_section,
};

/// Concurrent downloads per run.
const CLIENTS: usize = 16;
/// Each client's rate, bytes/s (curl `--limit-rate`).
const RATE: &str = "4M";
/// Rounds; each runs both arms.
const ROUNDS: usize = 7;
/// The file's size (`/large` in the lab's upstream).
const SIZE: u64 = 4 << 20;

/// One run's cost per download.
struct Run {
    records: f64,
    tc_runs: f64,
    tc_us: f64,
    sensor_us: f64,
    trimmed: u64,
}

/// Runs the measurement with the release `sensor` and writes its section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let lab = Lab::up("ss-bench-trim")?;
    let client = lab.client_ns();
    lab::run_quiet(
        lab.command(&client, "sysctl")
            .args(["-qw", "net.ipv4.tcp_rmem=4096 65536 131072"]),
    )?;
    let _stats = BpfStats::enable()?;
    let arms = [("default (16384)", "16384"), ("off (0)", "0")];
    let mut runs: [Vec<Run>; 2] = Default::default();
    for round in 0..ROUNDS {
        for i in 0..2 {
            let arm = (i + round) % 2;
            runs[arm].push(one_run(&lab, sensor, arms[arm].1)?);
        }
    }
    lab.teardown();
    let m = |arm: &[Run], f: fn(&Run) -> f64| median(arm.iter().map(f).collect());
    let mut rows = String::new();
    for ((name, _), arm) in arms.iter().zip(&runs) {
        rows += &format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.0} | {} |\n",
            m(arm, |r| r.records),
            m(arm, |r| r.tc_runs),
            m(arm, |r| r.tc_us),
            m(arm, |r| r.sensor_us),
            arm.iter().map(|r| r.trimmed).sum::<u64>(),
        );
    }
    let ratio = |f: fn(&Run) -> f64| m(&runs[0], f) / m(&runs[1], f);
    let section = format!(
        "## Body trimming on downloads\n\n\
         Method: `cargo xtask bench --only trim`. {CLIENTS} concurrent `curl \
         --limit-rate {RATE}` clients (receive buffers of at most 128 KiB, so \
         the rate holds on the wire) fetch the lab upstream's 4 MiB `/large` \
         through the gateway while `siem-sensor run` captures both legs; \
         `--trim-bodies` at its default and off, alternated, {ROUNDS} runs \
         each, medians per download. tc runs and time from the kernel's BPF \
         statistics (`kernel.bpf_stats_enabled`), sensor CPU from its \
         threads' `/proc/PID/task/*/schedstat` (ns) over the downloads. In both arms every download \
         was one transaction of the file's size.\n\n\
         | `--trim-bodies` | records read | tc runs | tc time us | sensor CPU us | segments trimmed (all runs) |\n\
         |---|---|---|---|---|---|\n{rows}\n\
         With trimming, per download: records {:.2}x, tc time {:.2}x, \
         sensor CPU {:.2}x of recording every segment. tc still runs on every \
         packet, the client's ACKs included (never recorded): trimming saves \
         the copy and the record, not the run. The gateway sends the bodies \
         in GSO segments of up to 64 KiB (tc sees each once). The upstream \
         leg is read by the gateway at full speed (nginx buffers the \
         response), so its body has mostly passed before the daemon reads \
         its head, and is recorded.\n",
        ratio(|r| r.records),
        ratio(|r| r.tc_us),
        ratio(|r| r.sensor_us),
    );
    write_section(&root.join("BENCHMARKS.md"), "trim", &section)?;
    println!("{section}");
    Ok(())
}

/// One run: the sensor with `--trim-bodies VALUE`, the downloads, the
/// costs per download.
fn one_run(lab: &Lab, sensor: &Path, value: &str) -> Result<Run> {
    let args = [
        &BOTH_LEGS[..],
        &["--transactions", "-", "--trim-bodies", value],
    ]
    .concat();
    let process = SensorProcess::start(lab, sensor, &args, None)?;
    let (cpu0, prog0) = (cpu_ns(process.pid())?, program_time()?);
    let url = lab.proxy_url(false, "/large");
    let clients = (0..CLIENTS)
        .map(|_| {
            lab.command(&lab.client_ns(), "curl")
                .args(["-sf", "-o", "/dev/null", "--limit-rate", RATE, &url])
                .spawn()
                .context("curl")
        })
        .collect::<Result<Vec<Child>>>()?;
    for mut c in clients {
        if !c.wait()?.success() {
            bail!("a download failed");
        }
    }
    let (cpu1, prog1) = (cpu_ns(process.pid())?, program_time()?);
    let run = process.stop()?;
    let downloads: Vec<_> = run
        .transactions
        .iter()
        .filter(|t| t["path"] == "/large")
        .collect();
    if downloads.len() != CLIENTS
        || downloads
            .iter()
            .any(|t| t["response_bytes"].as_u64().unwrap_or(0) < SIZE)
    {
        bail!("downloads not one transaction each of the file's size: {downloads:?}");
    }
    let per = |x: f64| x / CLIENTS as f64;
    Ok(Run {
        records: per(run.summary["reader"]["received"].as_f64().unwrap_or(0.0)),
        tc_runs: per((prog1.runs - prog0.runs) as f64),
        tc_us: per((prog1.run_ns - prog0.run_ns) as f64 / 1e3),
        sensor_us: per((cpu1 - cpu0) as f64 / 1e3),
        trimmed: run.summary["kernel"]["trimmed"].as_u64().unwrap_or(0),
    })
}

/// CPU time of every thread of process `pid` so far, ns (the first field
/// of `/proc/PID/task/TID/schedstat`; `/proc/PID/stat` counts 10 ms ticks).
fn cpu_ns(pid: u32) -> Result<u64> {
    let mut ns = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = fs::read_to_string(task?.path().join("schedstat"))?;
        let first = stat.split_whitespace().next().context("schedstat")?;
        ns += first.parse::<u64>()?;
    }
    Ok(ns)
}

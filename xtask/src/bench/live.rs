//! Live overhead: what attaching the sensor costs the gateway. wrk drives
//! the lab's gateway as fast as it goes, alternately without and with the
//! sensor attached (both legs, detectors and metrics on, as installed),
//! [`ROUNDS`] times each in one run, the order flipped every round so drift
//! hits both alike; medians and their ratios. One more attached run with the
//! kernel's BPF statistics on measures the programs' own time, which no
//! process accounts for.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use xtask::{
    lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, GATEWAY_UPSTREAM_V4, Lab},
    run_quiet,
    sensor::SensorProcess,
};

use super::write_section;

/// Rounds of (without, with).
const ROUNDS: usize = 5;
/// Seconds of load per run.
const SECONDS: u64 = 10;
/// wrk's connections and threads: enough to saturate the gateway.
const CONNECTIONS: &str = "-c32";
const THREADS: &str = "-t2";

/// What wrk measured in one run.
#[derive(Clone, Copy)]
struct Load {
    req_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// What the sensor cost and saw in one attached run.
struct Cost {
    /// User + system CPU of the sensor process during the load, s.
    cpu_s: f64,
    /// Peak resident set, KiB.
    hwm_kib: u64,
    /// Records the programs submitted, and dropped for a full ring.
    submitted: u64,
    ring_full: u64,
}

/// The sensor's CPU by pipeline stage, percent (see [`STAGES`]).
type Stages = Vec<(&'static str, f64)>;

/// Kernel programs' time per run (`kernel.bpf_stats_enabled`).
struct ProgramTime {
    run_ns: u64,
    runs: u64,
}

pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let lab = Lab::up("ss-bench-live")?;
    eprintln!("bench: live overhead, {ROUNDS} rounds of {SECONDS} s without and with the sensor");
    wrk(&lab, 3)?; // warm-up: nginx workers, connection pools, page cache
    let (mut without, mut with, mut costs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for attached in [round % 2 == 1, round % 2 == 0] {
            if attached {
                let (load, cost, ..) = attached_run(&lab, sensor, false)?;
                with.push(load);
                costs.push(cost);
            } else {
                without.push(wrk(&lab, SECONDS)?);
            }
            let last = if attached {
                with.last()
            } else {
                without.last()
            };
            let l = last.context("a run")?;
            eprintln!(
                "bench: round {} {}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
                round + 1,
                if attached { "with" } else { "without" },
                l.req_s,
                l.p50_ms,
                l.p99_ms
            );
        }
    }
    eprintln!("bench: one more attached run with kernel BPF statistics on");
    let (stats_load, stats_cost, programs, stages) = attached_run(&lab, sensor, true)?;
    drop(lab);

    let med = |runs: &[Load], f: fn(&Load) -> f64| median(runs.iter().map(f).collect());
    let (a, b) = (
        Load {
            req_s: med(&without, |l| l.req_s),
            p50_ms: med(&without, |l| l.p50_ms),
            p99_ms: med(&without, |l| l.p99_ms),
        },
        Load {
            req_s: med(&with, |l| l.req_s),
            p50_ms: med(&with, |l| l.p50_ms),
            p99_ms: med(&with, |l| l.p99_ms),
        },
    );
    let cpu_pct = median(
        costs
            .iter()
            .map(|c| c.cpu_s * 100.0 / SECONDS as f64)
            .collect(),
    );
    let hwm_mib = costs.iter().map(|c| c.hwm_kib).max().unwrap_or(0) as f64 / 1024.0;
    let records_s = median(
        costs
            .iter()
            .map(|c| c.submitted as f64 / SECONDS as f64)
            .collect(),
    );
    let drops: u64 = costs.iter().map(|c| c.ring_full).sum();
    let records_per_req = records_s / b.req_s;
    let prog_ns = programs.run_ns as f64 / programs.runs.max(1) as f64;
    let prog_pct = programs.run_ns as f64 / 1e9 * 100.0 / SECONDS as f64;
    let user_us = stats_cost.cpu_s * 1e6 / (stats_load.req_s * SECONDS as f64);
    let runs = |runs: &[Load]| {
        runs.iter()
            .map(|l| format!("{:.0}", l.req_s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let throughput = b.req_s / a.req_s;
    let p99 = b.p99_ms / a.p99_ms;
    let section = format!(
        "## Live overhead on the gateway\n\n\
         Method: `cargo xtask bench`. wrk {THREADS} {CONNECTIONS} -d{SECONDS}s `GET /hello` from the \
         lab's client host through the Kong-like nginx gateway to the upstream, as fast as it goes \
         (the lab's maximum rate). {ROUNDS} runs without and {ROUNDS} with `siem-sensor run` \
         attached by tc on both legs ({GATEWAY_CLIENT_IF}, {GATEWAY_UPSTREAM_IF}) with detectors \
         and the :9251 exporter on, alternated in one run (order flipped each round); medians. \
         Everything shares the machine's cores: wrk, both nginx, the kernel's networking and the \
         sensor.\n\n\
         | | requests/s | p50 ms | p99 ms |\n|---|---|---|---|\n\
         | without sensor | {:.0} | {:.3} | {:.3} |\n\
         | with sensor | {:.0} | {:.3} | {:.3} |\n\
         | ratio | **{:.1}%** | {:+.1}% | **{:+.1}%** |\n\n\
         Targets: throughput at least 95% ({}), p99 at most +5% ({}), zero ring-buffer drops \
         at the maximum rate ({drops} dropped over all attached runs: {}).\n\n\
         Sensor: {cpu_pct:.1}% of one core (user + system, median), peak RSS {hwm_mib:.1} MiB \
         (the 32 MiB ring is mapped, and counted once touched), {records_s:.0} records/s \
         ({records_per_req:.2} per request: request and response on each leg). Runs (requests/s) \
         without: {}; with: {}.\n\n\
         Where the time goes (one more attached run with `kernel.bpf_stats_enabled=1`, \
         {:.0} requests/s): the tc programs ran {} times at {prog_ns:.0} ns each, \
         {prog_pct:.1}% of one core, time no process is charged for; the sensor process spent \
         {user_us:.2} us of CPU per request. Its profile (perf, self time by symbol, grouped \
         by stage):\n\n| stage | share of the sensor's CPU |\n|---|---|\n{}\n",
        a.req_s,
        a.p50_ms,
        a.p99_ms,
        b.req_s,
        b.p50_ms,
        b.p99_ms,
        throughput * 100.0,
        (b.p50_ms / a.p50_ms - 1.0) * 100.0,
        (p99 - 1.0) * 100.0,
        verdict(throughput >= 0.95),
        verdict(p99 <= 1.05),
        verdict(drops == 0),
        runs(&without),
        runs(&with),
        stats_load.req_s,
        programs.runs,
        stages
            .iter()
            .map(|(stage, pct)| format!("| {stage} | {pct:.1}% |"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    write_section(&root.join("BENCHMARKS.md"), "live", &section)?;
    println!("{section}");
    Ok(())
}

/// wrk against the gateway for `seconds`.
fn wrk(lab: &Lab, seconds: u64) -> Result<Load> {
    let out = run_quiet(lab.command(&lab.client_ns(), "wrk").args([
        THREADS,
        CONNECTIONS,
        &format!("-d{seconds}s"),
        "--latency",
        &lab.proxy_url(false, "/hello"),
    ]))?;
    let report = String::from_utf8(out.stdout)?;
    if report.contains("Non-2xx") || report.contains("Socket errors") {
        bail!("wrk saw errors:\n{report}");
    }
    let field = |label: &str| -> Result<f64> {
        let line = report
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(label))
            .with_context(|| format!("no {label:?} in wrk's report:\n{report}"))?;
        let value = line[label.len()..].trim();
        let (number, unit) = value.split_at(
            value
                .find(|c: char| c.is_alphabetic())
                .unwrap_or(value.len()),
        );
        let scale = match unit {
            "us" => 1e-3,
            "ms" | "" => 1.0,
            "s" => 1e3,
            _ => bail!("unknown unit in {line:?}"),
        };
        Ok(number.parse::<f64>()? * scale)
    };
    Ok(Load {
        req_s: field("Requests/sec:")?,
        p50_ms: field("50%")?,
        p99_ms: field("99%")?,
    })
}

/// Starts the sensor on both legs, runs wrk, stops the sensor. With
/// `stats`, also the time its programs ran during the load
/// (`kernel.bpf_stats_enabled` on meanwhile; read while still attached,
/// since a program's statistics go with it).
fn attached_run(
    lab: &Lab,
    sensor: &Path,
    stats: bool,
) -> Result<(Load, Cost, ProgramTime, Stages)> {
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--iface",
        GATEWAY_UPSTREAM_IF,
        "--trusted-proxy",
        GATEWAY_UPSTREAM_V4,
    ];
    let process = SensorProcess::start(lab, sensor, &args, None)?;
    let pid = process.pid();
    thread::sleep(Duration::from_millis(500));
    let _stats = stats.then(BpfStats::enable).transpose()?;
    let profile = lab.workdir().join("sensor.perf");
    let perf = stats
        .then(|| {
            Command::new("perf")
                .args(["record", "-q", "-F", "499", "-p", &pid.to_string(), "-o"])
                .arg(&profile)
                .args(["--", "sleep", &(SECONDS - 2).to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .transpose()?;
    let programs_before = program_time()?;
    let before = cpu_s(pid)?;
    let load = wrk(lab, SECONDS)?;
    let cpu = cpu_s(pid)? - before;
    let programs = program_time()?;
    let stages = match perf {
        Some(mut perf) => {
            perf.wait()?;
            stages(&profile)?
        }
        None => Vec::new(),
    };
    let hwm_kib = status_kib(pid, "VmHWM:")?;
    let summary = process.stop()?.summary;
    let kernel = &summary["kernel"];
    let count = |v: &Value| v.as_u64().context("kernel counter");
    Ok((
        load,
        Cost {
            cpu_s: cpu,
            hwm_kib,
            submitted: count(&kernel["submitted"])?,
            ring_full: count(&kernel["ring_full"])?,
        },
        ProgramTime {
            run_ns: programs.run_ns - programs_before.run_ns,
            runs: programs.runs - programs_before.runs,
        },
        stages,
    ))
}

/// The sensor's pipeline stages, as the symbols of a perf profile name
/// them: (stage, symbol prefixes or substrings).
const STAGES: &[(&str, &[&str])] = &[
    (
        "reading the ring buffer, decoding records",
        &["aya::", "sensor::capture"],
    ),
    (
        "flow table and reassembly",
        &["sensor::flow", "hashbrown", "SocketAddr"],
    ),
    (
        "HTTP parsing and pairing (httparse, sensor::http)",
        &["httparse", "sensor::http"],
    ),
    (
        "identity: client IP, credentials, fingerprints",
        &["sensor::identity", "ipnet", "blake3"],
    ),
    ("detectors", &["sensor::detect"]),
    ("metrics and sinks", &["metrics", "sensor::sink"]),
    ("memory allocation (mimalloc)", &["mi_", "_mi_"]),
    ("kernel (syscalls, interrupts, scheduling)", &["[k]"]),
];

/// Self time of the profiled sensor by stage, percent of its samples, in
/// [`STAGES`] order, then everything else (string and memory routines,
/// the tokio runtime, pipeline glue).
fn stages(profile: &Path) -> Result<Vec<(&'static str, f64)>> {
    let out = run_quiet(
        Command::new("perf")
            .arg("report")
            .arg("-i")
            .arg(profile)
            .args([
                "--no-children",
                "--sort",
                "sym",
                "-q",
                "-g",
                "none",
                "--percent-limit",
                "0",
            ]),
    )?;
    let mut shares = vec![0.0; STAGES.len() + 1];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((pct, symbol)) = line.trim().split_once("%  ") else {
            continue;
        };
        let Ok(pct) = pct.parse::<f64>() else {
            continue;
        };
        let stage = STAGES
            .iter()
            .position(|(_, keys)| keys.iter().any(|k| symbol.contains(k)));
        shares[stage.unwrap_or(STAGES.len())] += pct;
    }
    let names = STAGES.iter().map(|(name, _)| *name);
    Ok(names
        .chain(["other (memcpy, UTF-8, hashing, runtime, pipeline glue)"])
        .zip(shares)
        .collect())
}

/// `kernel.bpf_stats_enabled` on while it lives (the kernel then times
/// every program run, which costs a little).
struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> Result<Self> {
        let old = fs::read_to_string(BPF_STATS)?;
        fs::write(BPF_STATS, "1")?;
        Ok(Self(old.trim().to_string()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.0);
    }
}

/// Summed run time and count of the loaded `tc_*` programs (zero while
/// statistics are off).
fn program_time() -> Result<ProgramTime> {
    let out = run_quiet(Command::new("bpftool").args(["prog", "show", "--json"]))?;
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    let ours = progs
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("tc_")));
    let sum = |key: &str| ours.clone().filter_map(|p| p[key].as_u64()).sum();
    Ok(ProgramTime {
        run_ns: sum("run_time_ns"),
        runs: sum("run_cnt"),
    })
}

/// User + system CPU time of process `pid` so far, s (`/proc/PID/stat`
/// fields 14 and 15, in clock ticks).
fn cpu_s(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = run_quiet(Command::new("getconf").arg("CLK_TCK"))?;
    let hz: f64 = String::from_utf8(hz.stdout)?.trim().parse()?;
    Ok(ticks as f64 / hz)
}

/// A `kB` line of `/proc/PID/status`, KiB.
fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix(key));
    let kib = line.and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok());
    kib.with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// The median of `values` (the upper one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

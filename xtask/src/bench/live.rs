//! Live overhead: what attaching the sensor costs the gateway, beside the
//! peer every operator knows. wrk drives the lab's gateway as fast as it
//! goes without the sensor, with it on both legs and on the client leg
//! only (detectors and metrics on, as installed), and with `tcpdump -s 512
//! -w /dev/null` on the same legs instead, [`ROUNDS`] rounds in one run,
//! the order rotating each round; ratios to the same round's run without
//! either. One more attached run with the
//! kernel's BPF statistics and perf on shows where the time goes: the
//! programs' own time, which no process is charged for, and the sensor's
//! CPU by pipeline stage.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab, run_quiet, sensor::SensorProcess};
use serde_json::Value;

use super::{median, median_interval, write_section};

/// Rounds of (without, with).
const ROUNDS: usize = 15;
/// Seconds of load per run.
const SECONDS: u64 = 10;
/// wrk's connections and threads: enough to saturate the gateway.
const CONNECTIONS: &str = "-c32";
/// wrk's connections for the light load: about a third of the peak's
/// requests a second, where the gateway has idle CPU.
const LIGHT: &str = "-c2";
const THREADS: &str = "-t2";

/// What wrk measured in one run.
#[derive(Clone, Copy)]
pub(super) struct Load {
    pub(super) req_s: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

/// What the capture (the sensor, or tcpdump) cost and saw in one run.
struct Cost {
    /// User + system CPU of the capturing processes during the load, s.
    cpu_s: f64,
    /// Peak resident set, KiB.
    hwm_kib: u64,
    /// Records the programs submitted (packets tcpdump captured), and
    /// dropped for a full ring (by the kernel).
    submitted: u64,
    ring_full: u64,
    /// Times the sensor's event loop slept and woke during the load (its
    /// main thread's voluntary context switches; 0 for tcpdump).
    wakeups: u64,
}

/// The sensor's CPU by pipeline stage, percent (see [`STAGES`]).
type Stages = Vec<(&'static str, f64)>;

/// Kernel programs' time (`kernel.bpf_stats_enabled`): the tc programs'
/// and their runs, and the TLS tap's.
#[derive(Default)]
pub(super) struct ProgramTime {
    pub(super) run_ns: u64,
    pub(super) runs: u64,
    tls_ns: u64,
}

/// What captures in a configuration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    Nothing,
    Sensor,
    /// The peer: `tcpdump -s 512 -w /dev/null`, one per interface.
    Tcpdump,
}

/// A configuration measured: what captures, on these interfaces.
struct Arm {
    name: &'static str,
    capture: Capture,
    interfaces: &'static [&'static str],
}

const BOTH: &[&str] = &[GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF];
const CLIENT: &[&str] = &[GATEWAY_CLIENT_IF];

const ARMS: [Arm; 5] = [
    Arm {
        name: "without capture",
        capture: Capture::Nothing,
        interfaces: &[],
    },
    Arm {
        name: "sensor on both legs",
        capture: Capture::Sensor,
        interfaces: BOTH,
    },
    Arm {
        name: "sensor on the client leg only",
        capture: Capture::Sensor,
        interfaces: CLIENT,
    },
    Arm {
        name: "tcpdump on both legs",
        capture: Capture::Tcpdump,
        interfaces: BOTH,
    },
    Arm {
        name: "tcpdump on the client leg only",
        capture: Capture::Tcpdump,
        interfaces: CLIENT,
    },
];

/// (sensor arm, tcpdump arm) on the same legs, compared round by round.
const PEERS: [(usize, usize); 2] = [(1, 3), (2, 4)];

pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let lab = Lab::up("ss-bench-live")?;
    eprintln!("bench: live overhead, {ROUNDS} rounds of {SECONDS} s per configuration");
    wrk(&lab, 3)?; // warm-up: nginx workers, connection pools, page cache
    // runs[arm][round]; the order of the arms rotates every round.
    let mut runs: Vec<Vec<(Load, Option<Cost>)>> = ARMS.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for k in 0..ARMS.len() {
            let arm = (round + k) % ARMS.len();
            let interfaces = ARMS[arm].interfaces;
            let run = match ARMS[arm].capture {
                Capture::Nothing => (wrk(&lab, SECONDS)?, None),
                Capture::Sensor => {
                    let (load, cost, ..) =
                        attached_run(&lab, sensor, interfaces, CONNECTIONS, false)?;
                    (load, Some(cost))
                }
                Capture::Tcpdump => {
                    let (load, cost) = tcpdump_run(&lab, interfaces)?;
                    (load, Some(cost))
                }
            };
            eprintln!(
                "bench: round {} {}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
                round + 1,
                ARMS[arm].name,
                run.0.req_s,
                run.0.p50_ms,
                run.0.p99_ms
            );
            runs[arm].push(run);
        }
    }
    eprintln!("bench: one more run on both legs with kernel BPF statistics and perf on");
    let (stats_load, stats_cost, programs, stages) =
        attached_run(&lab, sensor, ARMS[1].interfaces, CONNECTIONS, true)?;
    eprintln!("bench: one more run on both legs under a light load (wrk {LIGHT})");
    let (light_load, light_cost, ..) = attached_run(&lab, sensor, BOTH, LIGHT, false)?;
    drop(lab);

    let base = &runs[0];
    // Ratios to the run without the sensor in the same round: the machine's
    // drift between rounds cancels out.
    let ratio = |arm: &[(Load, Option<Cost>)], f: fn(&Load) -> f64| {
        median(
            arm.iter()
                .zip(base)
                .map(|(r, b)| f(&r.0) / f(&b.0))
                .collect(),
        )
    };
    let mut rows = String::new();
    let mut verdicts = Vec::new();
    for (index, (arm, arm_runs)) in ARMS.iter().zip(&runs).enumerate() {
        let med = |f: fn(&Load) -> f64| median(arm_runs.iter().map(|r| f(&r.0)).collect());
        let costs: Vec<&Cost> = arm_runs.iter().filter_map(|r| r.1.as_ref()).collect();
        let (throughput, p50, p99) = (
            ratio(arm_runs, |l| l.req_s),
            ratio(arm_runs, |l| l.p50_ms),
            ratio(arm_runs, |l| l.p99_ms),
        );
        let capture_cols = if costs.is_empty() {
            " | | | |".to_string()
        } else {
            let drops: u64 = costs.iter().map(|c| c.ring_full).sum();
            let per_s =
                |f: fn(&Cost) -> f64| median(costs.iter().map(|c| f(c) / SECONDS as f64).collect());
            if arm.capture == Capture::Sensor {
                let peer = PEERS
                    .iter()
                    .find(|&&(s, _)| s == index)
                    .map_or(1.0, |&(_, t)| ratio(&runs[t], |l| l.req_s));
                verdicts.push(format!(
                    "{}: throughput {} ({:.1}%; tcpdump {:.1}%), p99 {} ({:+.1}%), drops {} ({drops})",
                    arm.name,
                    verdict(throughput >= 0.97 && throughput >= peer),
                    throughput * 100.0,
                    peer * 100.0,
                    verdict(p99 <= 1.05),
                    (p99 - 1.0) * 100.0,
                    verdict(drops == 0),
                ));
            }
            format!(
                " {:.1} | {:.0} | {drops} | {:.1} |",
                per_s(|c| c.cpu_s * 100.0),
                per_s(|c| c.submitted as f64),
                costs.iter().map(|c| c.hwm_kib).max().unwrap_or(0) as f64 / 1024.0,
            )
        };
        rows += &format!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.1}% | {:+.1}% | {:+.1}% |{capture_cols}\n",
            arm.name,
            med(|l| l.req_s),
            med(|l| l.p50_ms),
            med(|l| l.p99_ms),
            throughput * 100.0,
            (p50 - 1.0) * 100.0,
            (p99 - 1.0) * 100.0,
        );
    }
    // The sensor against tcpdump on the same legs, round by round.
    let peers = PEERS
        .iter()
        .map(|&(s, t)| {
            let ratios: Vec<f64> = runs[s]
                .iter()
                .zip(&runs[t])
                .map(|(a, b)| a.0.req_s / b.0.req_s)
                .collect();
            let (lo, hi) = median_interval(ratios.clone());
            format!(
                "{} / {}: **{:.2}** (95% interval of the median {lo:.2}-{hi:.2})",
                ARMS[s].name,
                ARMS[t].name,
                median(ratios)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let all_runs = runs
        .iter()
        .zip(&ARMS)
        .map(|(r, arm)| {
            let rates: Vec<_> = r.iter().map(|(l, _)| format!("{:.0}", l.req_s)).collect();
            format!("{}: {}", arm.name, rates.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let prog_ns = programs.run_ns as f64 / programs.runs.max(1) as f64;
    let prog_pct = programs.run_ns as f64 / 1e9 * 100.0 / SECONDS as f64;
    let requests = stats_load.req_s * SECONDS as f64;
    let user_us = stats_cost.cpu_s * 1e6 / requests;
    let tc_per_request = programs.run_ns as f64 / requests;
    let tls_per_request = programs.tls_ns as f64 / requests;
    let light_us = light_cost.cpu_s * 1e6 / (light_load.req_s * SECONDS as f64);
    let wakeups_per_s = |c: &Cost| c.wakeups as f64 / SECONDS as f64;
    let stages = stages
        .iter()
        .map(|(stage, pct)| format!("| {stage} | {pct:.1}% |"))
        .collect::<Vec<_>>()
        .join("\n");
    let section = format!(
        "## Live overhead on the gateway\n\n\
         Method: `cargo xtask bench`. wrk {THREADS} {CONNECTIONS} -d{SECONDS}s `GET /hello` from the \
         lab's client host through the Kong-like nginx gateway to the upstream, as fast as it goes \
         (the lab's maximum rate). Per round, one run in each configuration, the order rotating \
         each round, {ROUNDS} rounds in one run: without capture; `siem-sensor run` attached by \
         tc on both legs ({GATEWAY_CLIENT_IF}, {GATEWAY_UPSTREAM_IF}); on the client leg only; \
         the peer, `tcpdump -s 512 -w /dev/null` (one per interface, analysing nothing), on the \
         same legs. Detectors and the :9251 exporter on. Features in the sensor's figures: \
         the ingress TCP checksum check (the program sums a segment only when the stack would \
         verify it; the lab's veth segments arrive checksum-offloaded, so none is summed here), \
         the TLS tap in its default `auto` mode (attached to the gateway's libssl; no HTTPS \
         request is made, so its uprobes never fire, and its socket tracepoints, attached only \
         while a connection older than the tap waits for its socket, stay detached), \
         the kernel block off (one array read per ingress segment). \
         Medians; ratios are medians of each \
         round's ratio to that round's run without capture, so drift between rounds cancels. \
         Everything shares the machine's two cores: wrk, both nginx, the kernel's networking and \
         the capture.\n\n\
         | | requests/s | p50 ms | p99 ms | throughput | p50 | p99 | capture CPU, % of a core | records/s | drops | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n{rows}\n\
         Side by side, median of each round's ratio of throughputs (the interval from order \
         statistics, distribution-free): {peers}. Targets (throughput at least 97% and at \
         least tcpdump's on the same legs, p99 at most +5%, no ring drops at the \
         maximum rate): {}. Records \
         are the sensor's ring records or the packets tcpdump captured; drops its full \
         ring or tcpdump's `dropped by kernel`. Peak RSS includes the sensor's 32 MiB of \
         rings, mapped and touched (tcpdump: both processes). Runs (requests/s): {all_runs}.\n\n\
         ### Where the time goes\n\n\
         One more run on both legs with `kernel.bpf_stats_enabled=1` and perf on the sensor \
         ({:.0} requests/s). The tc programs ran {} times at **{prog_ns:.0} ns** each \
         ({tc_per_request:.0} ns per request): {prog_pct:.1}% of a core that no process is \
         charged for (softirq and the senders' system time). The TLS tap's programs took \
         {tls_per_request:.0} ns per request. The sensor process spent **{user_us:.2} us of CPU per request** (four \
         records: request and response on each leg), its event loop waking {:.0} times a second. \
         Under a light load (wrk {LIGHT}, {:.0} requests/s) it spent **{light_us:.2} us per \
         request**, waking {:.0} times a second: the poll interval follows the rate records \
         arrive at (1 to 10 ms). Its profile at the peak, self time by symbol grouped \
         by stage:\n\n| stage | share of the sensor's CPU |\n|---|---|\n{stages}\n",
        verdicts.join("; "),
        stats_load.req_s,
        programs.runs,
        wakeups_per_s(&stats_cost),
        light_load.req_s,
        wakeups_per_s(&light_cost),
    );
    write_section(&root.join("BENCHMARKS.md"), "live", &section)?;
    println!("{section}");
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// wrk against the gateway's plain listener for `seconds`.
pub(super) fn wrk(lab: &Lab, seconds: u64) -> Result<Load> {
    wrk_hello(lab, CONNECTIONS, seconds)
}

/// wrk `GET /hello` on the gateway's plain listener for `seconds` with
/// `connections` (`-cN`).
fn wrk_hello(lab: &Lab, connections: &str, seconds: u64) -> Result<Load> {
    wrk_with(
        lab,
        connections,
        seconds,
        &lab.proxy_url(false, "/hello"),
        &[],
    )
}

/// wrk against `url` for `seconds`, with `extra` arguments (`-H ...`).
pub(super) fn wrk_url(lab: &Lab, seconds: u64, url: &str, extra: &[&str]) -> Result<Load> {
    wrk_with(lab, CONNECTIONS, seconds, url, extra)
}

/// wrk against `url` for `seconds` with `connections` (`-cN`) and
/// `extra` arguments.
fn wrk_with(lab: &Lab, connections: &str, seconds: u64, url: &str, extra: &[&str]) -> Result<Load> {
    let out = run_quiet(
        lab.command(&lab.client_ns(), "wrk")
            .args([THREADS, connections, &format!("-d{seconds}s"), "--latency"])
            .args(extra)
            .arg(url),
    )?;
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

/// Starts the sensor on `interfaces`, runs wrk with `connections`, stops
/// the sensor. With `stats`, also the time its programs ran during the
/// load (`kernel.bpf_stats_enabled` on meanwhile; read while still
/// attached, since a program's statistics go with it).
fn attached_run(
    lab: &Lab,
    sensor: &Path,
    interfaces: &[&str],
    connections: &str,
    stats: bool,
) -> Result<(Load, Cost, ProgramTime, Stages)> {
    let mut args = Vec::new();
    for i in interfaces {
        args.extend(["--iface", i]);
    }
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
    let programs_before = if stats {
        program_time()?
    } else {
        ProgramTime::default()
    };
    let (before, slept) = (cpu_s(pid)?, status_number(pid, WAKEUPS)?);
    let load = wrk_hello(lab, connections, SECONDS)?;
    let cpu = cpu_s(pid)? - before;
    let wakeups = status_number(pid, WAKEUPS)? - slept;
    let programs = if stats {
        program_time()?
    } else {
        ProgramTime::default()
    };
    let stages = match perf {
        Some(mut perf) => {
            perf.wait()?;
            stages(&profile)?
        }
        None => Vec::new(),
    };
    let hwm_kib = status_number(pid, "VmHWM:")?;
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
            wakeups,
        },
        ProgramTime {
            run_ns: programs.run_ns - programs_before.run_ns,
            runs: programs.runs - programs_before.runs,
            tls_ns: programs.tls_ns - programs_before.tls_ns,
        },
        stages,
    ))
}

/// Starts `tcpdump -s 512 -w /dev/null` on each of `interfaces` in the
/// gateway, runs wrk, stops them (SIGINT: they print their counts).
fn tcpdump_run(lab: &Lab, interfaces: &[&str]) -> Result<(Load, Cost)> {
    let mut dumps = Vec::new();
    for i in interfaces {
        let child = lab
            .command(&lab.gateway_ns(), "tcpdump")
            .args(["-i", i, "-n", "-s", "512", "-w", "/dev/null"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        dumps.push(child);
    }
    thread::sleep(Duration::from_millis(1000));
    let before: f64 = dumps.iter().map(|d| cpu_s(d.id())).sum::<Result<f64>>()?;
    let load = wrk(lab, SECONDS)?;
    let cpu: f64 = dumps.iter().map(|d| cpu_s(d.id())).sum::<Result<f64>>()? - before;
    let hwm_kib = dumps
        .iter()
        .map(|d| status_number(d.id(), "VmHWM:"))
        .sum::<Result<u64>>()?;
    let (mut captured, mut dropped) = (0, 0);
    for dump in dumps {
        run_quiet(Command::new("kill").args(["-INT", &dump.id().to_string()]))?;
        let out = dump.wait_with_output()?;
        let report = String::from_utf8_lossy(&out.stderr);
        let count = |what: &str| -> Result<u64> {
            let line = report
                .lines()
                .find(|l| l.ends_with(what))
                .with_context(|| format!("no {what:?} in tcpdump's report:\n{report}"))?;
            Ok(line.split_whitespace().next().unwrap_or("").parse()?)
        };
        captured += count("packets captured")?;
        dropped += count("packets dropped by kernel")?;
    }
    Ok((
        load,
        Cost {
            cpu_s: cpu,
            hwm_kib,
            submitted: captured,
            ring_full: dropped,
            wakeups: 0,
        },
    ))
}

/// The sensor's pipeline stages, as the symbols of a perf profile name
/// them: (stage, symbol prefixes or substrings).
const STAGES: &[(&str, &[&str])] = &[
    ("kernel (syscalls, interrupts, scheduling)", &["[k]"]),
    (
        "reading the rings, decoding records",
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
    ("joining the two legs", &["sensor::join"]),
    (
        "rendering attacker-chosen text",
        &["sensor::text", "compact_str"],
    ),
    ("detectors", &["sensor::detect"]),
    ("metrics and sinks", &["metrics", "sensor::sink"]),
    (
        "memory allocation (glibc malloc/free)",
        &["malloc", "free", "_int_", "unlink_chunk"],
    ),
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
pub(super) struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub(super) fn enable() -> Result<Self> {
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

/// Summed run time and count of the loaded `tc_*` programs, and run time
/// of the `tls_*` ones.
pub(super) fn program_time() -> Result<ProgramTime> {
    let out = run_quiet(Command::new("bpftool").args(["prog", "show", "--json"]))?;
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    let sum = |prefix: &str, key: &str| -> u64 {
        progs
            .iter()
            .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .filter_map(|p| p[key].as_u64())
            .sum()
    };
    Ok(ProgramTime {
        run_ns: sum("tc_", "run_time_ns"),
        runs: sum("tc_", "run_cnt"),
        tls_ns: sum("tls_", "run_time_ns"),
    })
}

/// User + system CPU time of process `pid` so far, s (`/proc/PID/stat`
/// fields 14 and 15, in clock ticks).
pub(super) fn cpu_s(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = run_quiet(Command::new("getconf").arg("CLK_TCK"))?;
    let hz: f64 = String::from_utf8(hz.stdout)?.trim().parse()?;
    Ok(ticks as f64 / hz)
}

/// The voluntary context switches line of `/proc/PID/status` (the main
/// thread's; proc(5)).
const WAKEUPS: &str = "voluntary_ctxt_switches:";

/// A number line of `/proc/PID/status`: a count, or a `kB` line in KiB.
pub(super) fn status_number(pid: u32, key: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix(key));
    let n = line.and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok());
    n.with_context(|| format!("no {key} in /proc/{pid}/status"))
}

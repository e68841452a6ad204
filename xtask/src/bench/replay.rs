//! Replay: a capture of real lab traffic (wrk through the nginx gateway,
//! tcpdump on the client leg, at least a million transactions) is generated
//! once and cached under `target/bench/`. `siem-sensor replay` reads it
//! pinned to one core, several times; tshark decodes HTTP from the same file
//! in the same run, so the figures compare side by side on a noisy machine.

use std::{
    ffi::{OsStr, OsString},
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use lab::{CLIENT_V4, GATEWAY_CLIENT_IF, Lab, PROXY_PORT, run, run_quiet};
use serde_json::Value;

use super::{Measured, measure, median_run, write_section};

/// Transactions the benchmark capture holds at least.
const MIN_TRANSACTIONS: u64 = 1_000_000;
/// Replay runs; the median is reported.
pub(super) const RUNS: usize = 5;

/// Runs the replay benchmarks with the release `sensor` and writes their section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let capture = capture(&root.join("target/bench"))?;
    let replay = |extra: &[&str]| {
        let mut cmd = pinned_replay(root, sensor, &capture);
        cmd.args(extra);
        cmd
    };

    let (mut with, mut without) = with_and_without("replay", replay)?;
    let runs_text = |runs: &[Measured]| {
        runs.iter()
            .map(|m| format!("{:.3}", m.wall_s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (with_text, without_text) = (runs_text(&with), runs_text(&without));
    let peak_rss = with
        .iter()
        .chain(&without)
        .map(|m| m.max_rss_kib)
        .max()
        .unwrap_or(0);
    let (det, plain) = (median_run(&mut with), median_run(&mut without));
    let summary: Value = serde_json::from_str(det.stdout.lines().last().unwrap_or_default())
        .context("replay summary")?;
    let transactions = summary["pipeline"]["http"]["transactions"]
        .as_u64()
        .unwrap_or(0);
    let packets = summary["files"][0]["packets"].as_u64().unwrap_or(0);

    eprintln!("bench: the same capture with every request's X-Forwarded-For trusted");
    let flood = measure(&mut replay(&["--json", "--trusted-proxy", CLIENT_V4]))?;
    let flood_summary: Value =
        serde_json::from_str(flood.stdout.lines().last().unwrap_or_default())?;
    let evictions = flood_summary["pipeline"]["detect"]["evictions"]
        .as_u64()
        .unwrap_or(0);
    let flood_alerts = flood
        .stdout
        .lines()
        .filter(|l| l.contains("\"detector\"") && !l.contains("replay_summary"))
        .count();

    let (t, tshark_requests) = tshark(&capture, &[], "http.request")?;

    let tx_s = transactions as f64 / det.wall_s;
    let tshark_s = tshark_requests as f64 / t.wall_s;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let section = format!(
        "## Replay: transactions per second on one core\n\n\
         Method: `cargo xtask bench`. Capture: {} ({} MB, {packets} packets): wrk through the \
         lab's nginx gateway, every request with a random `X-Forwarded-For`, captured with tcpdump \
         on the client leg. `siem-sensor replay` pinned to core 1 with `taskset`, {RUNS} runs \
         each with and without detectors, alternated, medians; tshark 4.0 (`-Y http.request`) on \
         the same file, same core, same run.\n\n\
         | | wall s | transactions | transactions/s | packets/s | peak RSS MiB |\n\
         |---|---|---|---|---|---|\n\
         | siem-sensor replay | {:.3} | {transactions} | {:.0} | {:.0} | {:.1} |\n\
         | siem-sensor replay --no-detectors | {:.3} | {transactions} | {:.0} | {:.0} | |\n\
         | tshark -Y http.request | {:.3} | {tshark_requests} | {:.0} | {:.0} | {:.1} |\n\n\
         siem-sensor / tshark throughput: **{:.1}x**. Detectors' share of the replay cost: \
         **{:+.1}%** (target: at most 20%). Target: 1,000,000 transactions/s per core with \
         detectors: **{}**. \
         Runs (s): {with_text}; without detectors: {without_text}. Peak RSS over all runs: {:.1} MiB.\n\n\
         ## Memory under a flood of distinct client IPs\n\n\
         The same capture replayed with `--trusted-proxy {CLIENT_V4}`: every request's random \
         `X-Forwarded-For` becomes its client IP, about a million distinct addresses in a few \
         15 s windows. Wall {:.3} s, peak RSS **{:.1} MiB** (budget 256 MiB), {evictions} \
         detector-table evictions, {flood_alerts} alerts.\n",
        capture.strip_prefix(root).unwrap_or(&capture).display(),
        fs::metadata(&capture)?.len() / 1_000_000,
        det.wall_s,
        tx_s,
        packets as f64 / det.wall_s,
        mib(det.max_rss_kib),
        plain.wall_s,
        transactions as f64 / plain.wall_s,
        packets as f64 / plain.wall_s,
        t.wall_s,
        tshark_s,
        packets as f64 / t.wall_s,
        mib(t.max_rss_kib),
        tx_s / tshark_s,
        (det.wall_s / plain.wall_s - 1.0) * 100.0,
        if tx_s >= 1e6 {
            format!("met ({tx_s:.0})")
        } else {
            format!("missed ({tx_s:.0})")
        },
        mib(peak_rss),
        flood.wall_s,
        mib(flood.max_rss_kib),
    );
    write_section(&root.join("BENCHMARKS.md"), "replay", &section)?;
    println!("{section}");
    Ok(())
}

/// The arguments of `siem-sensor replay FILE` with the benchmarks'
/// fingerprint key.
pub(super) fn replay_args(root: &Path, file: &Path) -> Vec<OsString> {
    let key = root.join("target/bench/fingerprint.key");
    let args: [&OsStr; 4] = [
        "replay".as_ref(),
        file.as_ref(),
        "--fingerprint-key".as_ref(),
        key.as_ref(),
    ];
    args.map(OsStr::to_os_string).to_vec()
}

/// [`replay_args`] run by `sensor`, pinned to core 1.
pub(super) fn pinned_replay(root: &Path, sensor: &Path, file: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1"])
        .arg(sensor)
        .args(replay_args(root, file));
    cmd
}

/// [`RUNS`] runs of `replay(extra args)` with and without detectors,
/// alternated so the machine's drift hits both alike.
pub(super) fn with_and_without(
    what: &str,
    replay: impl Fn(&[&str]) -> Command,
) -> Result<(Vec<Measured>, Vec<Measured>)> {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        with.push(measure(&mut replay(&[]))?);
        without.push(measure(&mut replay(&["--no-detectors"]))?);
        eprintln!(
            "bench: {what} run {}: {:.3} s, {:.3} s without detectors",
            i + 1,
            with[i].wall_s,
            without[i].wall_s
        );
    }
    Ok((with, without))
}

/// tshark 4.0 on `file` pinned to core 1 with `options`, printing one line
/// per packet matching `filter`; the run and the lines.
pub(super) fn tshark(file: &Path, options: &[&str], filter: &str) -> Result<(Measured, u64)> {
    eprintln!("bench: tshark on {} (slow)", file.display());
    let mut tshark = Command::new("taskset");
    tshark
        .args(["-c", "1", "tshark"])
        .args(tshark_args(file, options, filter));
    let t = measure(&mut tshark)?;
    let lines = t.stdout.lines().count() as u64;
    Ok((t, lines))
}

/// tshark's arguments: read `file` with `options`, print the frame number
/// of every packet that matches the display filter `filter`.
pub(super) fn tshark_args(file: &Path, options: &[&str], filter: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-n".into(), "-r".into(), file.into()];
    args.extend(options.iter().map(OsString::from));
    args.extend(["-Y", filter, "-T", "fields", "-e", "frame.number"].map(OsString::from));
    args
}

/// The cached lab capture, generated when missing.
pub(super) fn capture(dir: &Path) -> Result<PathBuf> {
    let script = XFF_SCRIPT;
    let filter = format!("tcp port {PROXY_PORT}");
    cached_capture(dir, "lab-http-xff.pcap", Tap::client_leg(&filter), |lab| {
        let path = lab.workdir().join("xff.lua");
        fs::write(&path, script)?;
        let mut requests = 0;
        while requests < MIN_TRANSACTIONS + MIN_TRANSACTIONS / 20 {
            requests += wrk_requests(lab, &path, "/hello")?;
            eprintln!("bench: {requests} requests so far");
        }
        Ok(())
    })
}

/// Runs wrk -t2 -c32 for 15 s from the client host with `script` against
/// the gateway's `path`; the requests it made.
pub(super) fn wrk_requests(lab: &Lab, script: &Path, path: &str) -> Result<u64> {
    let out = run_quiet(
        lab.command(&lab.client_ns(), "wrk")
            .args(["-t2", "-c32", "-d15s", "-s"])
            .arg(script)
            .arg(lab.proxy_url(false, path)),
    )?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .and_then(|(n, _)| n.parse::<u64>().ok())
        })
        .context("wrk printed no request count")
}

/// Where a cached capture is taken in the gateway's namespace: the
/// interfaces the sensor attaches to and a tcpdump filter.
pub(super) struct Tap<'a> {
    pub interfaces: &'a [&'a str],
    pub filter: &'a str,
}

impl Tap<'_> {
    /// The client leg, one port.
    pub fn client_leg(filter: &str) -> Tap<'_> {
        Tap {
            interfaces: &[GATEWAY_CLIENT_IF],
            filter,
        }
    }

    /// tcpdump's interface and filter in the lab's gateway namespace.
    /// Several interfaces are captured on `any`, kept to theirs by
    /// libpcap's `ifindex` (Linux cooked v2 headers): `any` alone also
    /// sees the bridge's ports, so every client-leg packet would be in
    /// the file twice, once per device it crosses, where the sensor
    /// attached to the bridge sees it once.
    fn tcpdump_args(&self, lab: &Lab) -> Result<(String, String)> {
        if let [one] = self.interfaces {
            return Ok((one.to_string(), self.filter.to_string()));
        }
        let mut indexes = Vec::new();
        for name in self.interfaces {
            let out = run_quiet(
                lab.command(&lab.gateway_ns(), "cat")
                    .arg(format!("/sys/class/net/{name}/ifindex")),
            )?;
            let index = String::from_utf8_lossy(&out.stdout).trim().to_string();
            indexes.push(format!("ifindex {index}"));
        }
        let filter = format!("({}) and ({})", indexes.join(" or "), self.filter);
        Ok(("any".to_string(), filter))
    }
}

/// `dir/name`, generated when missing: a lab up, tcpdump at `tap` (whole
/// packets) while `drive` sends the traffic; refused when tcpdump dropped
/// packets.
pub(super) fn cached_capture(
    dir: &Path,
    name: &str,
    tap: Tap<'_>,
    drive: impl FnOnce(&Lab) -> Result<()>,
) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    fs::create_dir_all(dir)?;
    eprintln!("bench: generating {} (about a minute)", path.display());
    let lab = Lab::up("ss-bench")?;
    let partial = dir.join(format!("{name}.partial"));
    let (interface, filter) = tap.tcpdump_args(&lab)?;
    let dump = lab
        .command(&lab.gateway_ns(), "tcpdump")
        .args(["-i", &interface, "-s", "0", "-B", "262144", "-w"])
        .arg(&partial)
        .arg(filter)
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    drive(&lab)?;
    run(Command::new("kill").args(["-INT", &dump.id().to_string()]))?;
    let out = dump.wait_with_output()?;
    lab.teardown();
    let stats = String::from_utf8_lossy(&out.stderr);
    let dropped = stats
        .lines()
        .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
        .and_then(|n| n.trim().parse::<u64>().ok());
    if dropped != Some(0) {
        bail!("tcpdump dropped packets; run again on a quieter machine:\n{stats}");
    }
    fs::rename(&partial, &path)?;
    Ok(path)
}

/// wrk script: every request with a random `X-Forwarded-For` in 10/8.
const XFF_SCRIPT: &str = include_str!("../../../lab/lua/xff.lua");

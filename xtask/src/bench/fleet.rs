//! Fleet-wide detection's costs (README, "Fleet-wide detection"):
//!
//! - **on the node:** wrk flat out through the lab's gateway with the
//!   sensor on both legs, without and with `--publish` to the lab's
//!   nats-server (JetStream, file storage), [`ROUNDS`] rounds alternating;
//!   the sensor's CPU per request and the gateway's throughput side by
//!   side, the publishing cost being the difference;
//! - **the analyser:** `siem-sensor fleet` (a current-thread runtime,
//!   pinned to core 1 with `taskset`) started with fresh durable consumers
//!   on the stream those runs filled, timed until it has taken every
//!   message: events per second on one core.

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use lab::{
    GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab, analyser::Analyser, nats::Nats, run_quiet,
    sensor::SensorProcess,
};
use serde_json::Value;

use super::{
    live::{Load, cpu_s, wrk},
    median, write_section,
};

/// Rounds of (without, with) publishing.
const ROUNDS: usize = 3;
/// Seconds of load per run.
const SECONDS: u64 = 10;
/// The analyser's metrics port (in the NATS namespace).
const METRICS: &str = "127.0.0.1:9252";

/// One attached run.
struct Run {
    load: Load,
    /// Sensor CPU (user + system) during the load, s.
    cpu_s: f64,
    /// The publish sink's counts (`sinks` of the summary), if publishing.
    publish: Option<Value>,
}

pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let lab = Lab::up("ss-bench-fleet")?;
    let nats = Nats::start(&lab)?;
    eprintln!("bench: fleet, {ROUNDS} rounds of {SECONDS} s without and with --publish");
    wrk(&lab, 3)?; // warm-up
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for k in 0..2 {
            let publish = (round + k) % 2 == 1;
            let run = attached_run(&lab, sensor, publish.then(|| nats.url()).as_deref())?;
            eprintln!(
                "bench: round {} {}: {:.0} req/s, sensor {:.2} us/request",
                round + 1,
                if publish { "with --publish" } else { "without" },
                run.load.req_s,
                us_per_request(&run)
            );
            runs[usize::from(publish)].push(run);
        }
    }
    let stream = nats
        .stream_state("SIEM_EVENTS")
        .context("no SIEM_EVENTS stream")?;
    let stored = stream["messages"].as_u64().context("stream messages")?;
    let bytes = stream["bytes"].as_u64().unwrap_or(0);
    eprintln!("bench: the analyser on {stored} stored messages, pinned to core 1");
    let (wall_s, taken, events, cpu) = analyse(&lab, sensor, &nats, stored)?;
    drop(nats);
    drop(lab);

    let med = |r: &[Run], f: fn(&Run) -> f64| median(r.iter().map(f).collect());
    let ratio = median(
        runs[1]
            .iter()
            .zip(&runs[0])
            .map(|(w, wo)| w.load.req_s / wo.load.req_s)
            .collect(),
    );
    let p99 = median(
        runs[1]
            .iter()
            .zip(&runs[0])
            .map(|(w, wo)| w.load.p99_ms / wo.load.p99_ms)
            .collect(),
    );
    let cost = med(&runs[1], us_per_request) - med(&runs[0], us_per_request);
    let count = |k: &str| -> u64 {
        runs[1]
            .iter()
            .filter_map(|r| r.publish.as_ref()?[k].as_u64())
            .sum()
    };
    let rows: String = [
        ("without --publish", &runs[0]),
        ("with --publish", &runs[1]),
    ]
    .iter()
    .map(|(name, r)| {
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} | {:.1} | {:.2} |\n",
            med(r, |r| r.load.req_s),
            med(r, |r| r.load.p50_ms),
            med(r, |r| r.load.p99_ms),
            med(r, |r| r.cpu_s * 100.0 / SECONDS as f64),
            med(r, us_per_request),
        )
    })
    .collect();
    let section = format!(
        "## Fleet-wide detection\n\n\
         Method: `cargo xtask bench --only fleet`. wrk -t2 -c32 -d{SECONDS}s `GET /hello` flat out \
         through the lab's gateway, `siem-sensor run` on both legs ({GATEWAY_CLIENT_IF}, \
         {GATEWAY_UPSTREAM_IF}), without and with `--publish` to the lab's nats-server 2.9 \
         (JetStream, file storage, in its own namespace on the same two cores), {ROUNDS} rounds \
         alternating, medians. Every request is one event on one client-IP partition (no \
         credentials on `/hello`), plus each node's heartbeats.\n\n\
         ### On the node: publishing's cost per transaction\n\n\
         | | requests/s | p50 ms | p99 ms | sensor CPU, % of a core | sensor CPU per request, us |\n\
         |---|---|---|---|---|---|\n{rows}\n\
         Publishing costs **{cost:.2} us of sensor CPU per transaction** (encoding the event, its \
         message id, the queue, the NATS client and its acknowledgements); with it the gateway \
         keeps **{:.1}%** of its throughput, p99 {:+.1}% (medians of each round's ratio; the \
         broker shares the two cores here, it would not in production). Events published: \
         {} sent, {} overflow, {} dropped.\n\n\
         ### The analyser: events per second on one core\n\n\
         `siem-sensor fleet --partitions all` with a new group (fresh durable consumers, no \
         rebuild), pinned to core 1, default detectors, on the stream those runs filled \
         ({stored} messages, {:.0} MiB): it took {taken} messages ({events} request events, the \
         rest heartbeats) in {wall_s:.2} s, **{:.0} messages/s, {:.0} request events/s** on one \
         core, using {:.0}% of it (the rest is waiting on nats-server, which shares the other \
         core with the kernel). It is timed by its own metrics, refreshed every second, so the \
         rates are lower bounds.\n",
        ratio * 100.0,
        (p99 - 1.0) * 100.0,
        count("sent"),
        count("overflow"),
        count("dropped"),
        bytes as f64 / (1024.0 * 1024.0),
        taken as f64 / wall_s,
        events as f64 / wall_s,
        cpu * 100.0 / wall_s,
    );
    write_section(&root.join("BENCHMARKS.md"), "fleet", &section)?;
    println!("{section}");
    Ok(())
}

fn us_per_request(r: &Run) -> f64 {
    r.cpu_s * 1e6 / (r.load.req_s * SECONDS as f64)
}

/// The sensor on both legs (publishing to `publish`, if given) while wrk runs.
fn attached_run(lab: &Lab, sensor: &Path, publish: Option<&str>) -> Result<Run> {
    let mut args = vec!["--iface", GATEWAY_CLIENT_IF, "--iface", GATEWAY_UPSTREAM_IF];
    if let Some(url) = publish {
        args.extend(["--publish", url, "--publish-node", "gw-a"]);
    }
    let process = SensorProcess::start(lab, sensor, &args, None)?;
    let pid = process.pid();
    thread::sleep(Duration::from_millis(500));
    let before = cpu_s(pid)?;
    let load = wrk(lab, SECONDS)?;
    let cpu = cpu_s(pid)? - before;
    let summary = process.stop()?.summary;
    let sinks = summary["sinks"].as_array().cloned().unwrap_or_default();
    let publish = sinks.into_iter().find(|s| s["sink"] == "publish");
    Ok(Run {
        load,
        cpu_s: cpu,
        publish,
    })
}

/// Runs a fresh analyser pinned to core 1 until it has taken `stored`
/// messages: (wall s, messages taken, request events, its CPU s).
fn analyse(lab: &Lab, sensor: &Path, nats: &Nats, stored: u64) -> Result<(f64, u64, u64, f64)> {
    let alerts = lab.workdir().join("bench-fleet-alerts.jsonl");
    let url = nats.url();
    let args = ["--nats", &url, "--group", "bench", "--listen", METRICS];
    let start = Instant::now();
    let analyser = Analyser::start(lab, sensor, &alerts, &args)?;
    let pid = analyser.pid().context("no analyser")?;
    run_quiet(Command::new("taskset").args(["-a", "-pc", "1", &pid.to_string()]))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (taken, events) = progress(lab)?;
        if taken >= stored {
            let wall = start.elapsed().as_secs_f64();
            let cpu = cpu_s(pid)?;
            analyser.stop()?;
            return Ok((wall, taken, events, cpu));
        }
        if Instant::now() > deadline {
            bail!("the analyser took {taken} of {stored} messages in 10 min");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Messages taken and request events so far, from the analyser's metrics.
fn progress(lab: &Lab) -> Result<(u64, u64)> {
    let out = lab
        .command(&lab.nats_ns(), "curl")
        .args([
            "-s",
            "--max-time",
            "2",
            &format!("http://{METRICS}/metrics"),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = |prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok((
        sum("siem_sensor_fleet_messages_total{result=\"taken\"}"),
        sum("siem_sensor_fleet_events_total{"),
    ))
}

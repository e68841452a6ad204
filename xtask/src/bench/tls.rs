//! The TLS tap's cost: wrk over HTTPS (HTTP/1.1 on the gateway's `8443
//! ssl` listener) flat out, without capture, with the sensor on both legs
//! and the TLS tap on, and with the sensor but the tap off, rotated, several
//! rounds in one run; on keep-alive connections and with a new connection
//! per request (a TLS handshake each). The uprobes' trap runs in the gateway's (and every
//! libssl user's) own context, so kernel BPF statistics miss it: the tap's
//! cost per SSL call is measured as the gateway's extra CPU per request
//! with the tap on, over the SSL calls per request the tap counted; its
//! cost per connection as that extra CPU with a connection per request.

use std::{fs, path::Path, thread, time::Duration};

use anyhow::{Context as _, Result};
use lab::{BOTH_LEGS, Lab, Listener, sensor::SensorProcess};

use super::{
    live::{Load, cpu_s, wrk_url},
    median, write_section,
};

const ROUNDS: usize = 5;
const SECONDS: u64 = 10;

/// The configurations: name, and the sensor's TLS setting (none: no sensor).
const ARMS: [(&str, Option<&str>); 3] = [
    ("without capture", None),
    ("sensor, TLS tap on", Some("on")),
    ("sensor, TLS tap off", Some("off")),
];

/// One run: the load, the gateway's and the sensor's CPU (s), the SSL
/// calls the tap saw.
struct Run {
    load: Load,
    gateway_cpu_s: f64,
    sensor_cpu_s: f64,
    ssl_calls: u64,
}

/// The loads: name, and wrk's extra arguments. Kong's HTTPS clients
/// reuse connections or do not; the tap's per-connection probes
/// (`SSL_set_accept_state`, `SSL_free`) show in the second.
const LOADS: [(&str, &[&str]); 2] = [
    ("keep-alive", &[]),
    ("a new connection per request", &["-H", "Connection: close"]),
];

pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let lab = Lab::up("ss-bench-tls")?;
    let url = Listener::Https.url(false, "/hello");
    eprintln!("bench: TLS tap, {ROUNDS} rounds of {SECONDS} s per configuration and load");
    wrk_url(&lab, 3, &url, &[])?; // warm-up
    let mut loads = Vec::new();
    for (load, extra) in LOADS {
        let mut runs: Vec<Vec<Run>> = ARMS.iter().map(|_| Vec::new()).collect();
        for round in 0..ROUNDS {
            for k in 0..ARMS.len() {
                let arm = (round + k) % ARMS.len();
                let run = one_run(&lab, sensor, &url, extra, ARMS[arm].1)?;
                let (name, req_s) = (ARMS[arm].0, run.load.req_s);
                eprintln!(
                    "bench: {load}, round {} {name}: {req_s:.0} req/s",
                    round + 1
                );
                runs[arm].push(run);
            }
        }
        loads.push(runs);
    }
    drop(lab);

    let (kept, fresh) = (&loads[0], &loads[1]);
    // The tap's trap: the gateway's extra CPU per request, round by round,
    // over the SSL calls per request.
    let trap_ns = median(
        tap_extra_us(kept)
            .zip(&kept[1])
            .map(|(extra_us, on)| extra_us * 1e3 / calls_per_request(on).max(1.0))
            .collect(),
    );
    let per_connection_us = median(tap_extra_us(fresh).collect());
    let tap_ratio = |runs: &[Vec<Run>]| {
        median(
            runs[1]
                .iter()
                .zip(&runs[2])
                .map(|(on, off)| on.load.req_s / off.load.req_s)
                .collect(),
        ) * 100.0
    };
    let section = format!(
        "## The TLS tap\n\n\
         Method: `cargo xtask bench --only tls`. wrk -t2 -c32 -d{SECONDS}s `GET /hello` over HTTPS \
         (HTTP/1.1, the gateway's `8443 ssl` listener) flat out, two loads: keep-alive, and a new \
         connection per request (`Connection: close`: a TLS handshake each). Per load and round \
         one run in each configuration, rotated, {ROUNDS} rounds: without capture; \
         `siem-sensor run` on both legs with `--tls on` (the client legs from the gateway's \
         `SSL_read`/`SSL_write`); the same with `--tls off`. Gateway CPU is its nginx workers' \
         user + system time; the uprobes' trap is charged there (and to wrk, whose libssl calls \
         trap too and are filtered out in the kernel). Medians.\n\n\
         Keep-alive:\n\n{}\n\
         A new connection per request:\n\n{}\n\
         The tap's cost: **{trap_ns:.0} ns of the gateway's CPU per SSL call** on keep-alive \
         connections (its extra CPU per request with the tap on, over the SSL calls per request, \
         round by round), and **{per_connection_us:.1} us per request with a new connection \
         each** (the calls plus the connection's start and end). With the tap on the gateway \
         kept **{:.1}%** (keep-alive) and **{:.1}%** (a connection per request) of its \
         throughput with the tap off.\n",
        table(kept),
        table(fresh),
        tap_ratio(kept),
        tap_ratio(fresh),
    );
    write_section(&root.join("BENCHMARKS.md"), "tls", &section)?;
    println!("{section}");
    Ok(())
}

/// The gateway's CPU per request (us) in `r`, for `cpu_s` of it.
fn per_request(r: &Run, cpu_s: f64) -> f64 {
    cpu_s * 1e6 / (r.load.req_s * SECONDS as f64)
}

/// The SSL calls per request the tap counted in `r`.
fn calls_per_request(r: &Run) -> f64 {
    r.ssl_calls as f64 / (r.load.req_s * SECONDS as f64)
}

/// Round by round, the gateway's extra CPU per request (us) with the tap
/// on over the tap off.
fn tap_extra_us(runs: &[Vec<Run>]) -> impl Iterator<Item = f64> + '_ {
    runs[1]
        .iter()
        .zip(&runs[2])
        .map(|(on, off)| per_request(on, on.gateway_cpu_s) - per_request(off, off.gateway_cpu_s))
}

/// One load's table: a row per configuration, medians over the rounds.
fn table(runs: &[Vec<Run>]) -> String {
    let mut rows = String::from(
        "| | requests/s | throughput | p99 ms | gateway CPU per request, us | sensor CPU per request, us | SSL calls per request |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for ((name, _), arm) in ARMS.iter().zip(runs) {
        let ratio = median(
            arm.iter()
                .zip(&runs[0])
                .map(|(r, b)| r.load.req_s / b.load.req_s)
                .collect(),
        );
        let of = |f: &dyn Fn(&Run) -> f64| median(arm.iter().map(f).collect());
        rows += &format!(
            "| {name} | {:.0} | {:.1}% | {:.3} | {:.2} | {:.2} | {:.1} |\n",
            of(&|r| r.load.req_s),
            ratio * 100.0,
            of(&|r| r.load.p99_ms),
            of(&|r| per_request(r, r.gateway_cpu_s)),
            of(&|r| per_request(r, r.sensor_cpu_s)),
            of(&calls_per_request),
        );
    }
    rows
}

/// One run of wrk (`extra`: its extra arguments), with the sensor (`tls`:
/// its `--tls` setting) or without.
fn one_run(lab: &Lab, sensor: &Path, url: &str, extra: &[&str], tls: Option<&str>) -> Result<Run> {
    let process = match tls {
        Some(tls) => {
            let args = [&BOTH_LEGS[..], &["--tls", tls]].concat();
            let p = SensorProcess::start(lab, sensor, &args, None)?;
            thread::sleep(Duration::from_millis(500));
            Some(p)
        }
        None => None,
    };
    let workers = gateway_workers(lab)?;
    let gateway_cpu = |ws: &[u32]| ws.iter().map(|&p| cpu_s(p)).sum::<Result<f64>>();
    let sensor_cpu = |p: &Option<SensorProcess>| p.as_ref().map_or(Ok(0.0), |p| cpu_s(p.pid()));
    let (g0, s0) = (gateway_cpu(&workers)?, sensor_cpu(&process)?);
    let load = wrk_url(lab, SECONDS, url, extra)?;
    let (g1, s1) = (gateway_cpu(&workers)?, sensor_cpu(&process)?);
    let ssl_calls = match process {
        Some(p) => p.stop()?.summary["tls"]["kernel"]["calls"]
            .as_u64()
            .unwrap_or(0),
        None => 0,
    };
    Ok(Run {
        load,
        gateway_cpu_s: g1 - g0,
        sensor_cpu_s: s1 - s0,
        ssl_calls,
    })
}

/// The gateway's nginx worker processes: the children of the master
/// started on the lab's gateway folder.
fn gateway_workers(lab: &Lab) -> Result<Vec<u32>> {
    let folder = lab.workdir().join("gateway");
    let folder = folder.to_string_lossy();
    let mut master = None;
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with("nginx: master") && cmdline.contains(folder.as_ref()) {
            master = Some(pid);
        }
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command's closing parenthesis: state, then the parent.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let master = master.context("the gateway's nginx master")?;
    Ok(parents
        .into_iter()
        .filter(|&(_, ppid)| ppid == master)
        .map(|(pid, _)| pid)
        .collect())
}

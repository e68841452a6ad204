//! The TLS tap's cost: wrk over HTTPS (HTTP/1.1 on the gateway's `8443
//! ssl` listener) flat out, without capture, with the sensor on both legs
//! and the TLS tap on, and with the sensor but the tap off, rotated, several
//! rounds in one run. The uprobes' trap runs in the gateway's (and every
//! libssl user's) own context, so kernel BPF statistics miss it: the tap's
//! cost per SSL call is measured as the gateway's extra CPU per request
//! with the tap on, over the SSL calls per request the tap counted.

use std::{fs, path::Path, thread, time::Duration};

use anyhow::{Context as _, Result};
use lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab, Listener, sensor::SensorProcess};

use super::{
    live::{Load, cpu_s, median, wrk_url},
    write_section,
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

pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let lab = Lab::up("ss-bench-tls")?;
    let url = Listener::Https.url(false, "/hello");
    eprintln!("bench: TLS tap, {ROUNDS} rounds of {SECONDS} s per configuration");
    wrk_url(&lab, 3, &url)?; // warm-up
    let mut runs: Vec<Vec<Run>> = ARMS.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for k in 0..ARMS.len() {
            let arm = (round + k) % ARMS.len();
            let run = one_run(&lab, sensor, &url, ARMS[arm].1)?;
            eprintln!(
                "bench: round {} {}: {:.0} req/s",
                round + 1,
                ARMS[arm].0,
                run.load.req_s
            );
            runs[arm].push(run);
        }
    }
    drop(lab);

    let per_request = |r: &Run, cpu: f64| cpu * 1e6 / (r.load.req_s * SECONDS as f64);
    let mut rows = String::new();
    for ((name, _), arm) in ARMS.iter().zip(&runs) {
        let ratio = median(
            arm.iter()
                .zip(&runs[0])
                .map(|(r, b)| r.load.req_s / b.load.req_s)
                .collect(),
        );
        rows += &format!(
            "| {name} | {:.0} | {:.1}% | {:.3} | {:.2} | {:.2} | {:.1} |\n",
            median(arm.iter().map(|r| r.load.req_s).collect()),
            ratio * 100.0,
            median(arm.iter().map(|r| r.load.p99_ms).collect()),
            median(
                arm.iter()
                    .map(|r| per_request(r, r.gateway_cpu_s))
                    .collect()
            ),
            median(arm.iter().map(|r| per_request(r, r.sensor_cpu_s)).collect()),
            median(
                arm.iter()
                    .map(|r| r.ssl_calls as f64 / (r.load.req_s * SECONDS as f64))
                    .collect()
            ),
        );
    }
    // The tap's trap: the gateway's extra CPU per request, round by round,
    // over the SSL calls per request.
    let trap_ns = median(
        runs[1]
            .iter()
            .zip(&runs[2])
            .map(|(on, off)| {
                let extra_us =
                    per_request(on, on.gateway_cpu_s) - per_request(off, off.gateway_cpu_s);
                let calls = on.ssl_calls as f64 / (on.load.req_s * SECONDS as f64);
                extra_us * 1e3 / calls.max(1.0)
            })
            .collect(),
    );
    let tap_ratio = median(
        runs[1]
            .iter()
            .zip(&runs[2])
            .map(|(on, off)| on.load.req_s / off.load.req_s)
            .collect(),
    );
    let section = format!(
        "## The TLS tap\n\n\
         Method: `cargo xtask bench --only tls`. wrk -t2 -c32 -d{SECONDS}s `GET /hello` over HTTPS \
         (HTTP/1.1, the gateway's `8443 ssl` listener) flat out; per round one run in each \
         configuration, rotated, {ROUNDS} rounds: without capture; `siem-sensor run` on both legs \
         with `--tls on` (the client legs from the gateway's `SSL_read`/`SSL_write`); the same \
         with `--tls off`. Gateway CPU is its nginx workers' user + system time; the uprobes' \
         trap is charged there (and to wrk, whose libssl calls trap too and are filtered out in \
         the kernel). Medians.\n\n\
         | | requests/s | throughput | p99 ms | gateway CPU per request, us | sensor CPU per request, us | SSL calls per request |\n\
         |---|---|---|---|---|---|---|\n{rows}\n\
         The tap's cost: **{trap_ns:.0} ns of the gateway's CPU per SSL call** (its extra CPU per \
         request with the tap on, over the SSL calls per request, round by round); with the tap \
         on the gateway kept **{:.1}%** of its throughput with the tap off.\n",
        tap_ratio * 100.0
    );
    write_section(&root.join("BENCHMARKS.md"), "tls", &section)?;
    println!("{section}");
    Ok(())
}

/// One run of wrk, with the sensor (`tls`: its `--tls` setting) or without.
fn one_run(lab: &Lab, sensor: &Path, url: &str, tls: Option<&str>) -> Result<Run> {
    let process = match tls {
        Some(tls) => {
            let args = [
                "--iface",
                GATEWAY_CLIENT_IF,
                "--iface",
                GATEWAY_UPSTREAM_IF,
                "--tls",
                tls,
            ];
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
    let load = wrk_url(lab, SECONDS, url)?;
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

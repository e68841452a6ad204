//! Replay of HTTP/2: a capture of h2load through the lab gateway's h2c
//! listener (prior knowledge, many streams per connection), generated once
//! and cached under `target/bench/`, replayed pinned to one core, alternated
//! with the HTTP/1.1 capture of [`super::replay`] in the same run so the
//! two figures compare side by side; tshark decodes the same file as the
//! peer.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use lab::{GATEWAY_V4, h2::H2C_PORT, run_quiet};
use serde_json::Value;

use super::{Measured, measure, median_run, replay, write_section};

/// Streams the capture holds.
const STREAMS: u32 = 400_000;
/// Runs of each capture; medians reported.
const RUNS: usize = 5;

/// Runs the HTTP/2 replay benchmark with the release `sensor` and writes
/// its section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let dir = root.join("target/bench");
    let (h1, h2) = (replay::capture(&dir)?, capture(&dir)?);
    let replay = |file: &Path| {
        let mut cmd = replay::pinned_replay(root, sensor, file);
        // Kong's default proxy ports, and the lab's h2c listener.
        cmd.args(["--proxy-ports", &format!("8000,8443,{H2C_PORT}")]);
        cmd
    };
    let (mut h1_runs, mut h2_runs) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        h1_runs.push(measure(&mut replay(&h1))?);
        h2_runs.push(measure(&mut replay(&h2))?);
        eprintln!(
            "bench: replay run {}: HTTP/1.1 {:.3} s, HTTP/2 {:.3} s",
            i + 1,
            h1_runs[i].wall_s,
            h2_runs[i].wall_s
        );
    }
    let (h1_med, h2_med) = (median_run(&mut h1_runs), median_run(&mut h2_runs));
    let (h1_tx, h2_tx) = (transactions(&h1_med)?, transactions(&h2_med)?);
    let h2_summary = summary(&h2_med)?;
    let streams = h2_summary["pipeline"]["http"]["h2"]["streams"]
        .as_u64()
        .unwrap_or(0);

    let decode = format!("tcp.port=={H2C_PORT},http2");
    let (t, tshark_streams) = replay::tshark(&h2, &["-d", &decode], "http2.headers.method")?;

    let (h1_rate, h2_rate) = (h1_tx as f64 / h1_med.wall_s, h2_tx as f64 / h2_med.wall_s);
    let tshark_rate = tshark_streams as f64 / t.wall_s;
    let section = format!(
        "## Replay of HTTP/2: transactions per second on one core\n\n\
         Method: `cargo xtask bench`. Capture: {} ({} MB): h2load (`-c 32 -m 1`, {STREAMS} \
         streams) through the lab gateway's h2c listener (:{H2C_PORT}, prior knowledge), \
         captured with tcpdump on the client leg. Replayed pinned to core 1, {RUNS} runs \
         alternated with the HTTP/1.1 capture above, medians; tshark 4.0 decoding the same file \
         as HTTP/2 (`-Y http2.headers.method`), same core, same run.\n\n\
         | | wall s | transactions | transactions/s | peak RSS MiB |\n\
         |---|---|---|---|---|\n\
         | HTTP/1.1 capture | {:.3} | {h1_tx} | {h1_rate:.0} | {:.1} |\n\
         | HTTP/2 capture | {:.3} | {h2_tx} ({streams} streams) | {h2_rate:.0} | {:.1} |\n\
         | tshark, HTTP/2 capture | {:.3} | {tshark_streams} | {tshark_rate:.0} | {:.1} |\n\n\
         HTTP/2 / HTTP/1.1 transactions/s: **{:.2}**; siem-sensor / tshark on HTTP/2: \
         **{:.1}x**. HPACK decoding (the sensor's own, RFC 7541) and frame parsing replace \
         httparse; every stream is a transaction like an HTTP/1.1 request.\n",
        h2.strip_prefix(root).unwrap_or(&h2).display(),
        fs::metadata(&h2)?.len() / 1_000_000,
        h1_med.wall_s,
        h1_med.max_rss_kib as f64 / 1024.0,
        h2_med.wall_s,
        h2_med.max_rss_kib as f64 / 1024.0,
        t.wall_s,
        t.max_rss_kib as f64 / 1024.0,
        h2_rate / h1_rate,
        h2_rate / tshark_rate,
    );
    write_section(&root.join("BENCHMARKS.md"), "replay-h2", &section)?;
    println!("{section}");
    Ok(())
}

fn summary(m: &Measured) -> Result<Value> {
    serde_json::from_str(m.stdout.lines().last().unwrap_or_default()).context("replay summary")
}

fn transactions(m: &Measured) -> Result<u64> {
    summary(m)?["pipeline"]["http"]["transactions"]
        .as_u64()
        .context("no transaction count")
}

/// The cached h2load capture, generated when missing: one stream at a
/// time per connection, as wrk keeps one request per connection in the
/// HTTP/1.1 capture (more concurrent streams than the gateway keeps idle
/// upstream connections would exhaust its ephemeral ports).
fn capture(dir: &Path) -> Result<PathBuf> {
    let filter = format!("tcp port {H2C_PORT}");
    replay::cached_capture(
        dir,
        "lab-h2c.pcap",
        replay::Tap::client_leg(&filter),
        |lab| {
            run_quiet(
                lab.command(&lab.client_ns(), "h2load")
                    .args(["-n", &STREAMS.to_string(), "-c", "32", "-m", "1"])
                    .arg(format!("http://{GATEWAY_V4}:{H2C_PORT}/hello")),
            )
            .map(drop)
        },
    )
}

//! Replay of a Kong-like API capture on both legs: wrk through the lab
//! gateway to the upstream's JSON resource, every request with one of the
//! consumers' `apikey`s, captured by tcpdump on the two interfaces the
//! sensor attaches to in the gateway's namespace (client and upstream legs
//! in one file, each packet once), generated once and
//! cached under `target/bench/`. The sensor parses both legs and joins
//! them by Kong's request id, so every request costs two transactions and
//! a join; tshark decodes the same file as the peer.

use std::{
    ffi::{OsStr, OsString},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use lab::{
    GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, GATEWAY_UPSTREAM_V4, GATEWAY_V4, PROXY_PORT,
    UPSTREAM_PORT, consumers::CONSUMERS,
};
use serde_json::Value;

use super::{instructions, median_run, replay, write_section};

/// Requests the capture holds at least.
const MIN_REQUESTS: u64 = 250_000;
/// The transactions per second the issue asks of one core.
const TARGET: f64 = 1_000_000.0;
/// Where Kong is, for every replay of the capture: its two addresses.
const KONG_ADDRESSES: [&str; 4] = [
    "--kong-address",
    GATEWAY_V4,
    "--kong-address",
    GATEWAY_UPSTREAM_V4,
];
/// Packets from the capture's start whose instructions cachegrind counts
/// (tshark takes about a minute for them under valgrind).
const COUNTED_PACKETS: u32 = 60_000;

/// Runs the benchmark with the release `sensor` and writes its section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let dir = root.join("target/bench");
    let capture = capture(&dir)?;
    let replay = |extra: &[&str]| {
        let mut cmd = replay::pinned_replay(root, sensor, &capture);
        cmd.args(KONG_ADDRESSES).args(extra);
        cmd
    };
    let (mut with, mut without) = replay::with_and_without("API replay", replay)?;
    let (det, plain) = (median_run(&mut with), median_run(&mut without));
    let summary: Value = serde_json::from_str(det.stdout.lines().last().unwrap_or_default())
        .context("replay summary")?;
    let count = |v: &Value| v.as_u64().context("summary counter");
    let legs = count(&summary["pipeline"]["http"]["transactions"])?;
    let joined = count(&summary["pipeline"]["join"]["joined"])?;
    let requests = count(&summary["pipeline"]["detect"]["transactions"])?;

    let decode = format!("tcp.port=={UPSTREAM_PORT},http");
    let (t, tshark_legs) = replay::tshark(&capture, &["-d", &decode], "http.request")?;

    let counted = count_instructions(root, sensor, &capture, &decode)?;

    let rate = legs as f64 / det.wall_s;
    let tshark_rate = tshark_legs as f64 / t.wall_s;
    let verdict = if rate >= TARGET { "met" } else { "missed" };
    let section = format!(
        "## Replay of a Kong-like API capture, both legs\n\n\
         Method: `cargo xtask bench --only replay`. Capture: {} ({} MB): wrk -t2 -c32 `GET \
         /items?page=N` through the lab gateway (:{PROXY_PORT}) to the upstream (:{UPSTREAM_PORT}), \
         which answers a JSON body; every request carries one of the {} consumers' `apikey` \
         headers in turn (the open route: the lab's key-auth route rate-limits each consumer \
         to 30 requests/s, so flat-out traffic there would be Kong's own 429s); tcpdump on \
         `{GATEWAY_CLIENT_IF}` and `{GATEWAY_UPSTREAM_IF}` in the gateway's namespace (`-i any` \
         kept to them by `ifindex`), the interfaces the sensor attaches to, so the two legs are \
         in one file and each packet in it once (`any` alone adds the bridge ports' copy of every \
         client-leg packet). \
         `siem-sensor replay --kong-address {GATEWAY_V4} --kong-address {GATEWAY_UPSTREAM_V4}` \
         pinned to core 1, {} runs each with and without detectors, alternated, medians; \
         every request is two transactions (one per leg), joined by Kong's request id into \
         one record, its key fingerprinted; tshark 4.0 (`-Y http.request`, the upstream port \
         decoded as HTTP) on the same file, same core, same run.\n\n\
         | | wall s | transactions (legs) | requests (joined) | transactions/s | requests/s | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|\n\
         | siem-sensor replay | {:.3} | {legs} | {requests} ({joined} joined) | {rate:.0} | {:.0} | {:.1} |\n\
         | siem-sensor replay --no-detectors | {:.3} | {legs} | | {:.0} | | |\n\
         | tshark -Y http.request | {:.3} | {tshark_legs} | | {tshark_rate:.0} | | {:.1} |\n\n\
         siem-sensor / tshark: **{:.1}x**. Target: {TARGET:.0} transactions/s on one core \
         with detectors: **{verdict}** ({rate:.0}).\n\n\
         Instructions per transaction, counted by cachegrind (the same on every run, where \
         the times above swing twofold with the host; under valgrind both programs take \
         their AVX2 paths, not AVX-512) on the capture's first {COUNTED_PACKETS} packets, \
         each program's count on its first packet alone (start-up) subtracted: \
         siem-sensor **{:.0}** ({} transactions, detectors on), tshark **{:.0}** ({} \
         requests); tshark / siem-sensor **{:.1}x**. The transaction log \
         (`--transactions FILE`, one JSON line per joined request) adds **{:.0}** instructions \
         per line ({} lines), on top of the two transactions that make it; in Kong's log \
         format (`--transactions-format kong`) **{:.0}**.\n",
        capture.strip_prefix(root).unwrap_or(&capture).display(),
        fs::metadata(&capture)?.len() / 1_000_000,
        CONSUMERS.len(),
        replay::RUNS,
        det.wall_s,
        requests as f64 / det.wall_s,
        det.max_rss_kib as f64 / 1024.0,
        plain.wall_s,
        legs as f64 / plain.wall_s,
        t.wall_s,
        t.max_rss_kib as f64 / 1024.0,
        rate / tshark_rate,
        counted.sensor,
        counted.sensor_transactions,
        counted.tshark,
        counted.tshark_transactions,
        counted.tshark / counted.sensor,
        counted.log_line,
        counted.log_lines,
        counted.kong_line,
    );
    write_section(&root.join("BENCHMARKS.md"), "replay-api", &section)?;
    println!("{section}");
    Ok(())
}

/// Instructions per transaction of both programs, start-up excluded.
struct PerTransaction {
    sensor: f64,
    sensor_transactions: u64,
    tshark: f64,
    tshark_transactions: u64,
    /// What `--transactions FILE` adds per line it writes.
    log_line: f64,
    log_lines: u64,
    /// The same with `--transactions-format kong`.
    kong_line: f64,
}

/// Counts both programs' instructions on the capture's first
/// [`COUNTED_PACKETS`] packets and on its first packet alone.
fn count_instructions(
    root: &Path,
    sensor: &Path,
    capture: &Path,
    decode: &str,
) -> Result<PerTransaction> {
    eprintln!("bench: counting instructions under cachegrind (slow)");
    let start = instructions::prefix(capture, 1)?;
    let part = instructions::prefix(capture, COUNTED_PACKETS)?;
    let sensor_run = |file: &Path, extra: &[&OsStr]| {
        let mut args = replay::replay_args(root, file);
        args.extend(KONG_ADDRESSES.map(OsString::from));
        args.extend(extra.iter().map(|a| a.to_os_string()));
        instructions::count(sensor, &args)
    };
    let tshark_run = |file: &Path| {
        let args = replay::tshark_args(file, &["-d", decode], "http.request");
        instructions::count(Path::new("tshark"), &args)
    };
    let per = |part: u64, start: u64, n: u64| part.saturating_sub(start) as f64 / n.max(1) as f64;
    let (sensor_start, sensor_part) = (sensor_run(&start, &[])?, sensor_run(&part, &[])?);
    // Instructions per line of the transaction log in `format`, and lines.
    let log_cost = |format: &str| -> Result<(f64, u64)> {
        let log = tempfile::NamedTempFile::new()?;
        let args: [&OsStr; 4] = [
            "--transactions".as_ref(),
            log.path().as_ref(),
            "--transactions-format".as_ref(),
            format.as_ref(),
        ];
        let logged = sensor_run(&part, &args)?;
        let lines = fs::read_to_string(log.path())?.lines().count() as u64;
        Ok((
            per(logged.instructions, sensor_part.instructions, lines),
            lines,
        ))
    };
    let (log_line, log_lines) = log_cost("sensor")?;
    let (kong_line, _) = log_cost("kong")?;
    let summary: Value =
        serde_json::from_str(sensor_part.stdout.lines().last().unwrap_or_default())
            .context("replay summary under cachegrind")?;
    let sensor_transactions = summary["pipeline"]["http"]["transactions"]
        .as_u64()
        .context("summary counter")?;
    let (tshark_start, tshark_part) = (tshark_run(&start)?, tshark_run(&part)?);
    let tshark_transactions = tshark_part.stdout.lines().count() as u64;
    Ok(PerTransaction {
        sensor: per(
            sensor_part.instructions,
            sensor_start.instructions,
            sensor_transactions,
        ),
        sensor_transactions,
        tshark: per(
            tshark_part.instructions,
            tshark_start.instructions,
            tshark_transactions,
        ),
        tshark_transactions,
        log_line,
        log_lines,
        kong_line,
    })
}

/// The cached capture, generated when missing.
fn capture(dir: &Path) -> Result<PathBuf> {
    let filter = format!("tcp port {PROXY_PORT} or tcp port {UPSTREAM_PORT}");
    let tap = replay::Tap {
        interfaces: &[GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF],
        filter: &filter,
    };
    replay::cached_capture(dir, "lab-api-gateway-legs.pcap", tap, |lab| {
        let script = lab.workdir().join("apikeys.lua");
        fs::write(&script, script_text())?;
        let mut requests = 0;
        while requests < MIN_REQUESTS + MIN_REQUESTS / 20 {
            requests += replay::wrk_requests(lab, &script, "/items")?;
            eprintln!("bench: {requests} requests so far");
        }
        Ok(())
    })
}

/// wrk script: `GET /items?page=N`, the consumers' keys in turn.
fn script_text() -> String {
    let keys: Vec<String> = CONSUMERS.iter().map(|c| format!("{:?}", c.key)).collect();
    format!(
        "local keys = {{{}}}\n\
         local i = 0\n\
         request = function()\n  \
           i = i + 1\n  \
           return wrk.format(\"GET\", \"/items?page=\" .. (i % 50), {{apikey = keys[i % #keys + 1]}})\n\
         end\n",
        keys.join(", ")
    )
}

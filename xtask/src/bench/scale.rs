//! Scale: the sensor's CPU per transaction as the load widens. Generated
//! keep-alive captures (`lab::captures::keep_alive_load`, cached under
//! `target/bench/`) hold the same transactions over 100 to 100,000
//! concurrent connections, then over 1,000 and a million client IPs.
//! Every connection comes from a trusted proxy and each request names its
//! client in `X-Forwarded-For`, so one series changes only the flows, the
//! other only the client IPs. `siem-sensor replay` pinned to core 1, the
//! cases alternated, medians of user + system CPU.

use std::{
    fs::{self, File},
    io::BufWriter,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use lab::captures::{KEEP_ALIVE_PROXIES, KeepAlive, keep_alive_load};
use serde_json::Value;

use super::{Measured, measure, median as median_of, median_interval, replay, write_section};

/// Transactions of every capture: each of a million client IPs once.
const TRANSACTIONS: u32 = 1_000_000;
/// Capture time between transactions: 2,000 per second, so a connection
/// of 100,000 idles 50 s between requests (under the 120 s idle timeout)
/// and a client of 1,000 sends 30 per 15 s window (no flood).
const GAP: Duration = Duration::from_micros(500);
/// Rounds, each running every case once in a rotated order; a case's
/// ratio to its series' first is the median of the rounds' ratios (drift
/// between rounds cancels), with a 95% interval.
const RUNS: usize = 9;
/// The series: its name, and each case's flows and client IPs; the first
/// case is the baseline.
const SERIES: [(&str, &[(u32, u32)]); 2] = [
    ("flows", &[(100, 1_000), (10_000, 1_000), (100_000, 1_000)]),
    ("client IPs", &[(1_000, 1_000), (1_000, 1_000_000)]),
];

/// One case's median run and its summary.
struct Case {
    shape: KeepAlive,
    /// `--max-flows` and `--memory-budget` raised past the defaults.
    raised: bool,
    median: Measured,
    summary: Value,
    /// Each round's CPU over the series' first case's in the same round
    /// (empty for a rerun with raised limits).
    ratios: Vec<f64>,
}

/// Runs the cases and writes their section.
pub fn bench(root: &Path, sensor: &Path) -> Result<()> {
    let dir = root.join("target/bench");
    let shapes: Vec<KeepAlive> = SERIES
        .iter()
        .flat_map(|(_, cases)| cases.iter())
        .map(|&(flows, client_ips)| KeepAlive {
            flows,
            client_ips,
            transactions: TRANSACTIONS,
            gap: GAP,
        })
        .collect();
    let captures: Vec<PathBuf> = shapes
        .iter()
        .map(|s| capture(&dir, *s))
        .collect::<Result<_>>()?;
    let replay = |capture: &Path, raised: bool| {
        let mut cmd = replay::pinned_replay(root, sensor, capture);
        cmd.args(["--json", "--trusted-proxy", KEEP_ALIVE_PROXIES]);
        if raised {
            cmd.args(["--max-flows", "400000", "--memory-budget", "1024"]);
        }
        cmd
    };
    // Rotate the cases' order each round so drift hits all alike.
    let mut runs: Vec<Vec<Measured>> = shapes.iter().map(|_| Vec::new()).collect();
    for round in 1..=RUNS {
        for k in 0..captures.len() {
            let i = (k + round) % captures.len();
            let m = measure(&mut replay(&captures[i], false))?;
            eprintln!(
                "bench: scale round {round}, {} flows, {} client IPs: {:.2} s CPU",
                shapes[i].flows, shapes[i].client_ips, m.cpu_s
            );
            runs[i].push(m);
        }
    }
    let mut cases = Vec::new();
    let ratios: Vec<Vec<f64>> = (0..shapes.len())
        .map(|i| {
            let first = series_first(&shapes[i]);
            let ratio = |(a, b): (&Measured, &Measured)| a.cpu_s / b.cpu_s;
            runs[i].iter().zip(&runs[first]).map(ratio).collect()
        })
        .collect();
    let cases_runs = shapes.iter().zip(&captures).zip(runs).zip(ratios);
    for (((shape, capture), runs), ratios) in cases_runs {
        let mut case = median(*shape, false, runs)?;
        case.ratios = ratios;
        let flows = &case.summary["pipeline"]["flows"];
        let limited = ["evicted", "shed_flows", "budget_evictions"]
            .iter()
            .any(|k| flows[k].as_u64() != Some(0));
        cases.push(case);
        if limited {
            eprintln!("bench: {} flows hit a limit; again raised", shape.flows);
            let raised = (0..RUNS.min(3))
                .map(|_| measure(&mut replay(capture, true)))
                .collect::<Result<_>>()?;
            cases.push(median(*shape, true, raised)?);
        }
    }
    let section = section(&cases)?;
    write_section(&root.join("BENCHMARKS.md"), "scale", &section)?;
    println!("{section}");
    Ok(())
}

/// The median (by CPU) of `runs` and its summary; every run's summary
/// checked: every generated transaction counted.
fn median(shape: KeepAlive, raised: bool, mut runs: Vec<Measured>) -> Result<Case> {
    let summary = |m: &Measured| -> Result<Value> {
        let summary: Value = serde_json::from_str(m.stdout.lines().last().unwrap_or_default())
            .context("replay summary")?;
        for counter in ["http", "detect"] {
            let counted = summary["pipeline"][counter]["transactions"].as_u64();
            if counted != Some(u64::from(shape.transactions)) {
                bail!(
                    "{} flows, {} client IPs: pipeline.{counter}.transactions is {counted:?}, \
                     {} were generated",
                    shape.flows,
                    shape.client_ips,
                    shape.transactions
                );
            }
        }
        Ok(summary)
    };
    for m in &runs {
        summary(m)?;
    }
    runs.sort_by(|a, b| a.cpu_s.total_cmp(&b.cpu_s));
    let median = runs.swap_remove(runs.len() / 2);
    let summary = summary(&median)?;
    Ok(Case {
        shape,
        raised,
        median,
        summary,
        ratios: Vec::new(),
    })
}

/// The position, among all cases, of the first case of `shape`'s series.
fn series_first(shape: &KeepAlive) -> usize {
    let mut at = 0;
    for (_, cases) in SERIES {
        if cases.contains(&(shape.flows, shape.client_ips)) {
            return at;
        }
        at += cases.len();
    }
    0
}

/// The section's text: method, one table row per case, a verdict per series.
fn section(cases: &[Case]) -> Result<String> {
    let ns_per_tx = |c: &Case| c.median.cpu_s * 1e9 / f64::from(c.shape.transactions);
    let (mut rows, mut verdicts) = (String::new(), String::new());
    for (name, shapes) in SERIES {
        let series: Vec<&Case> = cases
            .iter()
            .filter(|c| shapes.contains(&(c.shape.flows, c.shape.client_ips)))
            .collect();
        let base = ns_per_tx(series.first().context("an empty series")?);
        let mut furthest = (1.0, 1.0, 1.0);
        for c in series {
            let (ratio, lo, hi) = if c.ratios.is_empty() {
                let ratio = ns_per_tx(c) / base;
                (ratio, ratio, ratio)
            } else {
                let (lo, hi) = median_interval(c.ratios.clone());
                (median_of(c.ratios.clone()), lo, hi)
            };
            if !c.raised && (ratio - 1.0f64).abs() > (furthest.0 - 1.0f64).abs() {
                furthest = (ratio, lo, hi);
            }
            let p = &c.summary["pipeline"];
            let alerts: u64 = p["detect"]["alerts"]
                .as_object()
                .map(|a| a.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            rows += &format!(
                "| {name} | {}{} | {} | {} | {:.2} | {:.0} | {ratio:.2} ({lo:.2}-{hi:.2}) | {:.1} | {} / {} / {} | {} | {alerts} |\n",
                c.shape.flows,
                if c.raised { " (raised limits)" } else { "" },
                c.shape.client_ips,
                p["http"]["transactions"],
                c.median.cpu_s,
                ns_per_tx(c),
                c.median.max_rss_kib as f64 / 1024.0,
                p["flows"]["evicted"],
                p["flows"]["shed_flows"],
                p["flows"]["budget_evictions"],
                p["detect"]["evictions"],
            );
        }
        let (ratio, lo, hi) = furthest;
        let met = if (ratio - 1.0).abs() <= 0.2 {
            "met"
        } else {
            "missed"
        };
        verdicts += &format!(
            "- **{name}**: CPU per transaction flat within 20%: **{met}** \
             (furthest case {ratio:.2}x the first, 95% interval {lo:.2}-{hi:.2}).\n"
        );
    }
    Ok(format!(
        "## Scale: CPU per transaction against flows and client IPs\n\n\
         Method: `cargo xtask bench --only scale`. Generated captures (`keep_alive_load` in \
         `lab/src/captures.rs`), {TRANSACTIONS} transactions each: every connection's handshake \
         first (all open at once), then small keep-alive GETs (`Host`, a per-client `apikey`) \
         round-robin over the connections, each answered by a 200 with `Content-Length` and a \
         19-byte JSON body, {} us of capture time apart, then every connection's FINs. The \
         connections come from proxies in {KEEP_ALIVE_PROXIES}, replayed with \
         `--trusted-proxy {KEEP_ALIVE_PROXIES}`; each request names its client in \
         `X-Forwarded-For`, transaction t client t mod N, so the flows series changes only the \
         connections (1,000 client IPs throughout) and the client-IP series only the clients \
         (1,000 connections; with a million IPs each client sends once). `siem-sensor replay \
         --json` pinned to core 1 with `taskset`, {RUNS} rounds, each running every case once in \
         an order rotated each round; CPU is the median user + system CPU (`/usr/bin/time`, 10 \
         ms resolution), and a case's ratio to its series' first is the median of the rounds' \
         ratios (each to the first case's run in the same round, so drift between rounds \
         cancels), with its distribution-free 95% interval. Transactions are the \
         summary's `pipeline.http.transactions` (checked equal to `pipeline.detect.transactions` \
         and to the requests generated). Limits: defaults (`--max-flows 100000`, \
         `--memory-budget 320`); a case that evicts or sheds is run again raised. Detector \
         evictions are the bounded IP and credential tables' (200,000 IPs, 50,000 credentials \
         by default).\n\n\
         | series | flows | client IPs | transactions | CPU s | CPU ns / transaction | ratio to first (95% interval) | peak RSS MiB | flows evicted / buffers shed / flows shed | detector evictions | alerts |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         {rows}\n{verdicts}\n\
         Where the cost grows (`perf record` of one replay of each end of a series, compared \
         symbol by symbol; written by hand with this bench). **Flows:** at 100,000 connections \
         each carries only 10 transactions, so per-connection work (handshake, teardown, the \
         buffers' allocation) shows per transaction, and the flow-table lookup of each segment \
         misses the cache: `hashbrown`'s find grows from 1.5% of the profile at 100 flows to \
         about 10% at 100,000. Counted by cachegrind over the whole captures, the \
         instructions grow only 1.085x (13.80 G at 100 flows, 14.97 G at 100,000: the \
         handshake and teardown packets' decoding and lookups), so the rest of the CPU's \
         growth is waiting for memory. Two ways of hiding it were measured and not kept: \
         slots holding only the flow's box (8 bytes, not key and box, 80) moved the miss \
         from the key compare to the flow itself, which the segment reads next anyway \
         (7 alternated pairs at 100,000 flows: median 2.27 -> 2.22 s CPU, fastest 2.10 -> \
         2.09); and prefetching each segment's flow one segment ahead (replay holding one \
         segment back) cost 22% more CPU in a profiled pair: the miss moved into the \
         prefetch's own probe of the index, and holding the segment back took a copy. \
         **Client IPs:** with a million, nearly every request is from a \
         new client with a new key, and the success_then_failure (200,000 IPs) and \
         credential_spread (50,000 credentials) tables are full, so such a request evicts from \
         both. An eviction now puts the newcomer in the victim's place (no entry moves; only \
         the two keys' index slots change), picks the victim from a dense vector of 8-byte \
         weights, and prefetches the next eviction's candidates one eviction ahead; before, it \
         read five entries of tables of tens of MB and moved the last entry into the gap, each \
         a cache miss (a million IPs, 9 alternated replays, fastest: 2.46 s CPU before, 2.10 s \
         after; 1,000 IPs unchanged). What is left is the index and the window table: erasing \
         the victim's slot and placing the new key's miss the cache in a 2 MB index \
         (`IndexMap::replace_index`, 13% of the profile) and each new IP's first entry in the \
         15 s window table (7%). The bound is memory latency, not work.\n",
        GAP.as_micros(),
    ))
}

/// The cached capture of `shape`, generated when missing.
fn capture(dir: &Path, shape: KeepAlive) -> Result<PathBuf> {
    let name = format!(
        "scale-{}-flows-{}-ips-{}-tx.pcap",
        shape.flows, shape.client_ips, shape.transactions
    );
    let path = dir.join(&name);
    if path.exists() {
        return Ok(path);
    }
    fs::create_dir_all(dir)?;
    eprintln!("bench: generating {}", path.display());
    let partial = dir.join(format!("{name}.partial"));
    keep_alive_load(BufWriter::new(File::create(&partial)?), shape)?;
    fs::rename(&partial, &path)?;
    Ok(path)
}

//! `cargo xtask bench`: every benchmark, written to BENCHMARKS.md, each
//! section with the machine, kernel and date it was measured on.

mod block;
mod fleet;
mod instructions;
mod live;
mod memory;
mod replay;
mod replay_api;
mod replay_h2;
mod scale;
mod tls;
mod trim;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use lab::{run, run_quiet};

use crate::setup::setup;

/// Which benchmarks to run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Gateway throughput and latency with and without the sensor attached.
    Live,
    /// Replay throughput against tshark (the client-leg capture, and a
    /// Kong-like API capture on both legs), and memory under a million IPs.
    Replay,
    /// Replay throughput of an HTTP/2 capture beside the HTTP/1.1 one.
    Http2,
    /// The TLS tap's cost per SSL call and the gateway's HTTPS throughput
    /// with and without it.
    Tls,
    /// The memory budget against unfinished request heads, replayed and
    /// live.
    Memory,
    /// The kernel block check's cost per packet (BPF_PROG_TEST_RUN).
    Block,
    /// Fleet-wide detection: publishing's cost on the node, and the events
    /// one fleet analyser takes per second on one core.
    Fleet,
    /// CPU per transaction against concurrent flows (100 to 100,000) and
    /// tracked client IPs (1,000 and a million).
    Scale,
    /// Body trimming on slow 4 MiB downloads, on and off.
    Trim,
}

pub fn bench(only: Option<Which>) -> Result<()> {
    setup()?;
    run(Command::new("cargo").args(["build", "--release", "-p", "sensor"]))?;
    let root = workspace_root()?;
    let sensor = root.join("target/release/siem-sensor");
    let all = only.is_none();
    if all || only == Some(Which::Live) {
        live::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Replay) {
        replay::bench(&root, &sensor)?;
        replay_api::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Http2) {
        replay_h2::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Tls) {
        tls::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Memory) {
        memory::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Block) {
        block::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Fleet) {
        fleet::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Scale) {
        scale::bench(&root, &sensor)?;
    }
    if all || only == Some(Which::Trim) {
        trim::bench(&root, &sensor)?;
    }
    Ok(())
}

/// One measured process run.
struct Measured {
    wall_s: f64,
    /// User plus system CPU of the process.
    cpu_s: f64,
    max_rss_kib: u64,
    stdout: String,
}

/// Runs `cmd` under `/usr/bin/time` for its CPU time (user + system, to
/// 10 ms) and peak RSS; wall time from here.
fn measure(cmd: &mut Command) -> Result<Measured> {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%U %S %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let start = Instant::now();
    let out = run_quiet(&mut timed)?;
    let wall_s = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fields: Vec<f64> = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("no CPU time and peak RSS from /usr/bin/time")?;
    let [user, sys, max_rss_kib] = fields[..] else {
        bail!("/usr/bin/time printed {stderr}");
    };
    Ok(Measured {
        wall_s,
        cpu_s: user + sys,
        max_rss_kib: max_rss_kib as u64,
        stdout: String::from_utf8(out.stdout)?,
    })
}

/// The median run of `runs` by wall time (taken out of them).
fn median_run(runs: &mut Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    runs.remove(runs.len() / 2)
}

/// The median of `values` (the upper one of an even count).
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A distribution-free 95% confidence interval for the median of
/// `values`: the order statistics k and n+1-k, k the largest rank with
/// P(Binomial(n, 1/2) < k) <= 0.025 (the sign test's interval).
pub(super) fn median_interval(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    // P(X <= j) for X ~ Binomial(n, 1/2), accumulated term by term.
    let (mut term, mut below, mut k) = (0.5f64.powi(n as i32), 0.0, 0);
    for j in 0..n {
        below += term;
        if below > 0.025 {
            break;
        }
        k = j + 1;
        term *= (n - j) as f64 / (j + 1) as f64;
    }
    let k = k.max(1);
    (values[k - 1], values[n - k])
}

/// Replaces the section between `<!-- NAME -->` and `<!-- /NAME -->` in
/// BENCHMARKS.md (appending it the first time), after refreshing the header
/// with this machine's facts.
fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let text = fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let (open, close) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let block = format!("{open}\n{}\n{body}{close}", machine()?);
    let text = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) => format!("{}{block}{}", &text[..a], &text[b + close.len()..]),
        _ => format!("{}\n{block}\n", text.trim_end()),
    };
    fs::write(path, text)?;
    Ok(())
}

/// Date, kernel, CPU and core count of this machine.
fn machine() -> Result<String> {
    let uname = run_quiet(Command::new("uname").arg("-r"))?;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo")?;
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown");
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let date = run_quiet(Command::new("date").args(["-u", "+%Y-%m-%d"]))?;
    Ok(format!(
        "_Measured {} on {cpu}, {cores} cores, Linux {}._\n",
        String::from_utf8_lossy(&date.stdout).trim(),
        String::from_utf8_lossy(&uname.stdout).trim()
    ))
}

fn workspace_root() -> Result<PathBuf> {
    let out = run_quiet(Command::new("cargo").args([
        "locate-project",
        "--workspace",
        "--message-format",
        "plain",
    ]))?;
    let manifest = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    Ok(manifest.parent().context("workspace root")?.to_path_buf())
}

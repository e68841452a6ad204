//! `cargo xtask bench`: every benchmark, written to BENCHMARKS.md, each
//! section with the machine, kernel and date it was measured on.

mod live;
mod replay;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};
use lab::{run, run_quiet};

use crate::setup::setup;

/// Which benchmarks to run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Gateway throughput and latency with and without the sensor attached.
    Live,
    /// Replay throughput against tshark, and memory under a million IPs.
    Replay,
}

pub fn bench(only: Option<Which>) -> Result<()> {
    setup()?;
    run(Command::new("cargo").args(["build", "--release", "-p", "sensor"]))?;
    let root = workspace_root()?;
    let sensor = root.join("target/release/siem-sensor");
    if only != Some(Which::Replay) {
        live::bench(&root, &sensor)?;
    }
    if only != Some(Which::Live) {
        replay::bench(&root, &sensor)?;
    }
    Ok(())
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

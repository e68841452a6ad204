//! `cargo xtask`: setup, lab, demo, test, bench and install tasks for siem-sensor.

mod bench;
mod demo;
mod modules;
mod setup;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::Result;
use clap::{Parser, Subcommand};
use lab::{Lab, run};
use setup::setup;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the build and lab prerequisites (apt packages, rust-src, bpf-linker).
    Setup,
    /// Bring the lab up (and leave it up) or tear it down.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Set up, build, bring up the lab, run the sensor on live traffic, tear down.
    Demo,
    /// Set up, then run the checks and the whole test suite (what CI runs).
    Test,
    /// Check the module graph of every crate for cycles (part of `test`).
    Modules,
    /// Run the benchmarks and write BENCHMARKS.md.
    Bench {
        /// Only these benchmarks (default: all).
        #[arg(long, value_enum)]
        only: Option<bench::Which>,
    },
    /// Build and install the binary, unit, example config, README and runbook with
    /// the Debian package's paths (enables nothing; keeps edited configs).
    Install {
        /// Install under this root instead of `/` (staging, tests).
        #[arg(long, default_value = "/")]
        root: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Bring up the lab named `lab` (namespaces lab-client, lab-gateway, lab-upstream).
    Up,
    /// Tear it down.
    Down,
}

const LAB_PREFIX: &str = "lab";

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::Lab {
            action: LabAction::Up,
        } => {
            let lab = Lab::up(LAB_PREFIX)?;
            eprintln!(
                "lab up: try `ip netns exec {} curl -s {}`",
                lab.client_ns(),
                lab.proxy_url(false, "/")
            );
            lab.leave_running();
            Ok(())
        }
        Task::Lab {
            action: LabAction::Down,
        } => {
            Lab::named(LAB_PREFIX).teardown();
            Ok(())
        }
        Task::Demo => demo::demo(LAB_PREFIX),
        Task::Test => test(),
        Task::Modules => modules::check_acyclic(),
        Task::Bench { only } => bench::bench(only),
        Task::Install { root } => {
            run(Command::new("cargo").args(["build", "--release", "-p", "sensor"]))?;
            let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let binary = src.join("target/release/siem-sensor");
            for path in lab::install::install(&src, &binary, &root)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// The CI entry point: prerequisites, formatting, lints, doc links, every test.
fn test() -> Result<()> {
    setup()?;
    run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    modules::check_acyclic()?;
    // Broken and private intra-doc links fail like lints do.
    run(Command::new("cargo")
        .args([
            "doc",
            "--no-deps",
            "-p",
            "sensor",
            "-p",
            "lab",
            "-p",
            "xtask",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    // Live tests (ignored by a plain `cargo test`: they need root and the
    // lab) share the machine's two cores; one at a time keeps their load
    // figures honest.
    let (passed, failed) = cargo_test(&[
        "test",
        "--workspace",
        "--no-fail-fast",
        "--",
        "--include-ignored",
        "--test-threads=1",
    ])?;
    println!("tests: {passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} tests failed");
    }
    Ok(())
}

/// Runs `cargo ARGS`, echoing its output, and sums the `test result:` lines
/// of every test binary into (passed, failed).
fn cargo_test(args: &[&str]) -> Result<(u64, u64)> {
    let mut child = Command::new("cargo")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            for part in result.split(['.', ';']) {
                match part.trim().split_once(' ') {
                    Some((n, "passed")) => passed += n.parse::<u64>()?,
                    Some((n, "failed")) => failed += n.parse::<u64>()?,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() && failed == 0 {
        anyhow::bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok((passed, failed))
}

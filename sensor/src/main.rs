//! `siem-sensor`: the daemon's command line.

mod cli;

use std::io::{self, IsTerminal as _};

use clap::{Parser, Subcommand};

/// Passive security sensor for Kong API gateway nodes.
#[derive(Parser)]
#[command(name = "siem-sensor", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
// Parsed once per process (and per SIGHUP): its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Capture live traffic with eBPF until SIGINT or SIGTERM.
    Run(cli::run::RunArgs),
    /// Read pcap / pcapng files through the same pipeline as `run`.
    Replay(cli::replay::ReplayArgs),
    /// Fleet-wide detection: the detectors over the events the sensors
    /// publish (`run --publish`) to NATS JetStream, merged across nodes.
    Fleet(cli::fleet::FleetArgs),
    /// List or remove the kernel blocks of a running sensor (`run --block`),
    /// through its control socket.
    Blocks(cli::block::BlocksArgs),
    /// Measure the kernel programs (`cargo xtask bench --only block`):
    /// BPF_PROG_TEST_RUN of tc_ingress with a 100k-entry block map, and of
    /// tc_egress per recorded segment.
    #[command(hide = true)]
    BenchBlock,
    /// Validate a config file (default /etc/siem-sensor/sensor.toml) without
    /// attaching anything.
    CheckConfig {
        /// The file.
        #[arg(value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = match cli::config::parse::<Cli>(std::env::args_os().collect(), true) {
        Ok((cli, _)) => cli,
        Err(e) => return fail(&e),
    };
    let result = match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(cli::run::run(args, reparse_run))),
        Command::Replay(args) => cli::replay::replay(&args),
        Command::Fleet(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(cli::fleet::fleet(args))),
        Command::Blocks(args) => cli::block::blocks(&args),
        Command::BenchBlock => bench_block(),
        Command::CheckConfig { file } => check_config(file),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("siem-sensor: error: {e:#}");
    std::process::ExitCode::FAILURE
}

/// The `run` flags as the command line and config file give them now
/// (SIGHUP re-reads the file).
fn reparse_run() -> anyhow::Result<cli::run::RunArgs> {
    match cli::config::parse::<Cli>(std::env::args_os().collect(), false)?
        .0
        .command
    {
        Command::Run(args) => Ok(args),
        _ => anyhow::bail!("not a `run` command line"),
    }
}

/// `check-config`: the file parses, every value is valid for `run`, and the
/// detectors and syslog sink can be built from it.
fn check_config(file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let path = file.unwrap_or_else(|| cli::config::DEFAULT.into());
    let argv = ["siem-sensor", "run", "--config"].map(std::ffi::OsString::from);
    let mut argv = argv.to_vec();
    argv.push(path.clone().into());
    let (cli, config) = cli::config::parse::<Cli>(argv, true)?;
    if let (Command::Run(args), Some(config)) = (cli.command, config) {
        args.check()
            .map_err(|(flag, e)| config.locate(flag, &format!("{e:#}")).map_or(e, Into::into))?;
    }
    println!("{}: OK", path.display());
    Ok(())
}

/// `bench-block`: the block check's and a record's cost, one JSON line.
fn bench_block() -> anyhow::Result<()> {
    use sensor::capture::live::bench;
    let block = bench::block_lookup(100_000, 1_000_000, 5)?;
    let records = bench::record_costs(20_000, 15)?;
    println!(
        "{}",
        serde_json::json!({ "block": block, "records": records })
    );
    Ok(())
}

//! `siem-sensor`: the daemon's command line.

mod cli;

use std::io::{self, IsTerminal as _};

use clap::{Parser, Subcommand};

/// Passive security sensor for Kong API gateway nodes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture live traffic with eBPF until SIGINT or SIGTERM.
    Run(cli::run::RunArgs),
    /// Read pcap / pcapng files through the same pipeline as `run`.
    Replay(cli::replay::ReplayArgs),
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(cli::run::run(args))),
        Command::Replay(args) => cli::replay::replay(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("siem-sensor: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

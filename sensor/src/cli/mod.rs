//! The `siem-sensor` subcommands and the flags they share.

mod alertmanager;
pub mod block;
mod cadence;
mod choice;
pub mod config;
mod daemon;
mod detect;
pub mod fleet;
mod metrics;
mod pipeline;
mod publish;
pub mod replay;
pub mod run;
mod syslog;

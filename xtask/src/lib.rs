//! siem-sensor's development tasks, as a library so the integration tests
//! drive the same lab that `cargo xtask lab` brings up.

pub mod install;
pub mod lab;
pub mod rsyslog;
pub mod scenarios;
pub mod sensor;
pub mod setup;
mod sh;

pub use sh::{run, run_quiet};

//! Sinks: where the pipeline's output goes.
//!
//! Every output implements [`Sink`]; the pipeline holds a [`Sinks`] list and
//! knows none of them by name. A sink must never block the pipeline: one
//! that talks to a network peer queues to its own thread or task and counts
//! what it cannot deliver ([`Delivery`]). Adding a sink is one file here
//! and one line where the command line assembles the list (`cli/pipeline.rs`).

mod alert_log;
pub mod alertmanager;
mod collector;
mod interface;
mod json_lines;
pub mod kong_log;
pub mod metrics;
pub mod publish;
mod segment_log;
mod sinks;
pub mod syslog;

pub use alert_log::AlertLog;
pub use alertmanager::{Alertmanager, AlertmanagerConfig};
pub use collector::{Collector, Outputs};
pub use interface::{Delivery, Sink};
pub use json_lines::{JsonLines, Records, TransactionFormat};
pub use segment_log::{PayloadRedactor, SegmentLog, escape_payload, flags_string};
pub use sinks::Sinks;

//! Sinks: where the pipeline's output goes.

mod json_lines;
pub mod metrics;
mod segment_log;
pub mod syslog;

pub use json_lines::JsonLines;
pub use segment_log::{SegmentLog, escape_payload, flags_string};

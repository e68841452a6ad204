//! Sinks: where the pipeline's output goes.

mod segment_log;

pub use segment_log::{SegmentLog, escape_payload, flags_string};

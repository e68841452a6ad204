//! siem-sensor: a passive security sensor for Kong API gateway nodes.
//!
//! One pipeline: a source ([`capture`]) yields TCP [`capture::Segment`]s,
//! [`pipeline::Pipeline`] consumes them and hands what it derives to sinks
//! ([`sink`]). The live source reads the eBPF ring buffer; every later stage
//! runs on the segments' own timestamps.

pub mod block;
pub mod capture;
pub mod choice;
pub mod collect;
pub mod detect;
pub mod exporter;
pub mod field_name;
pub mod fleet;
pub mod flow;
pub mod http;
pub mod identity;
pub mod join;
mod lanes;
pub mod pipeline;
pub mod sink;
mod swar;
pub mod text;
pub mod time;

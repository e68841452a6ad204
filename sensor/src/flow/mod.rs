//! Flows: the TCP connection table and per-direction reassembly.
//!
//! [`FlowTable`] keys connections by their 4-tuple, finds which side is the
//! client (the SYN's sender; otherwise the [`Analyzer`] decides from the
//! data), reassembles each direction in order ([`reassembly`]) and hands the
//! byte stream to the flow's analyzer. Flows end on RST, on both FINs, on
//! idle timeout, or by eviction when the table is full; every ending is
//! counted.

mod analyzer;
mod limits;
pub mod reassembly;
mod table;
mod trim;

pub use analyzer::{Analyzer, Direction, Endpoint, FlowInfo};
pub use limits::{FlowCounters, FlowLimits};
pub use reassembly::{Chunk, Stream};
pub use table::{FlowTable, flow_bytes};

//! The flow table's limits and counters.

use serde::Serialize;

/// Hard caps and timeouts of the flow table.
#[derive(Clone, Debug)]
pub struct FlowLimits {
    /// Most connections tracked at once; past it the least recently seen
    /// eighth of the table is evicted.
    pub max_flows: usize,
    /// A flow with no segment for this long (event time, ns) is expired.
    pub idle_timeout_ns: u64,
    /// Out-of-order segments held per direction before skipping the hole.
    pub max_pending_segments: usize,
    /// Captured bytes held per direction before skipping the hole.
    pub max_pending_bytes: usize,
    /// Captured bytes kept of one held segment (the rest becomes unknown).
    pub max_segment_hold: usize,
    /// Captured bytes held across all flows before skipping holes.
    pub max_buffered_bytes: usize,
    /// The memory budget, in bytes, of the traffic-driven state and what
    /// allocating it costs (the CLI gives `--memory-budget` less what the
    /// process holds at start): the state (flows, held segments, buffered
    /// heads, waiting requests, the detectors' tables) is kept within half
    /// of it, the rest being the allocator's fragmentation and the hash
    /// tables' growth. Past that the pipeline sheds the least recently
    /// seen flows' buffers, then those flows.
    pub memory_budget: u64,
}

impl Default for FlowLimits {
    /// 100,000 flows, 120 s idle (above nginx's and Kong's 60-75 s
    /// keep-alive timeouts), 64 segments / 256 KiB per direction, 64 MiB
    /// total; a 320 MiB budget, under the unit's `MemoryMax=512M`.
    fn default() -> Self {
        Self {
            max_flows: 100_000,
            idle_timeout_ns: 120_000_000_000,
            max_pending_segments: 64,
            max_pending_bytes: 256 * 1024,
            max_segment_hold: 16 * 1024,
            max_buffered_bytes: 64 * 1024 * 1024,
            memory_budget: 320 * 1024 * 1024,
        }
    }
}

/// Flow table counters; `active` and `buffered_bytes` are gauges, the rest
/// totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowCounters {
    /// Segments taken.
    pub segments: u64,
    /// Segments of no tracked flow that could not start one: pure ACK, FIN
    /// or RST of an unknown connection, or a late segment of a connection
    /// closed less than 60 s ago (TIME_WAIT).
    pub segments_without_flow: u64,
    /// Flows created.
    pub flows: u64,
    /// Flows tracked now.
    pub active: u64,
    /// Flows ended by FIN from both sides or RST.
    pub closed: u64,
    /// Flows ended by the idle timeout.
    pub expired: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Payload bytes seen again (retransmissions, overlaps) and dropped.
    pub retransmitted_bytes: u64,
    /// Copies of already seen bytes whose content differed from the first
    /// copy, which was kept: evasion attempts, or the tap and the gateway
    /// seeing different copies.
    pub overlap_different_data: u64,
    /// Segments that arrived ahead of a hole and were held.
    pub out_of_order_segments: u64,
    /// Holes skipped (bytes never captured).
    pub gaps: u64,
    /// Bytes in those holes.
    pub gap_bytes: u64,
    /// Holes skipped early because a direction's hold caps were reached.
    pub pending_overflows: u64,
    /// Captured bytes held out of order now, across all flows.
    pub buffered_bytes: u64,
    /// Heap bytes the flows' analyzers hold now (heads, waiting requests).
    pub analyzer_bytes: u64,
    /// Flows whose buffers were dropped to stay within the memory budget.
    pub shed_flows: u64,
    /// Flows ended to stay within the memory budget (counted in `evicted`
    /// too).
    pub budget_evictions: u64,
    /// Body ranges handed to the live tap to trim (`--trim-bodies`).
    pub trims: u64,
    /// Ranges not handed over: past the rate cap.
    pub trims_over_rate: u64,
    /// Bytes the tap left out of trimmed bodies, delivered as known holes
    /// (not gaps).
    pub trimmed_bytes: u64,
}

//! Event time across nodes: events from every node are held until the
//! fleet's watermark passes them, then released in time order, so the
//! detectors see one stream ordered as if one sensor had seen it all.
//!
//! Each node sends a heartbeat to every partition every second, carrying
//! its clock (see `event`). The watermark is the lowest clock among the
//! (partition, node) pairs this instance consumes, minus the lateness
//! allowance (`--lateness`): an event at or before it is released. A node
//! whose clock has fallen more than the node timeout (`--node-timeout`)
//! behind the newest clock has gone (stopped, cut off) and no longer holds
//! the others back. An event that arrives when the watermark has passed
//! it is late: counted, and handed on at once (the per-IP detectors count
//! it into their current window, as the local ones do). The buffer is
//! bounded: past `max_buffered` events the oldest is released early and
//! counted as `forced`.
//!
//! A partition being rebuilt (replayed from the stream after a restart)
//! holds the watermark at its replay's position, less the lateness,
//! whatever the live clocks say and however far behind it is, until it
//! has caught up ([`Merge::hold`], [`Merge::hold_at`], [`Merge::unhold`]):
//! so the replay of every partition is merged in event time, as it was
//! first analysed, and raises the same alerts with the same ids.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap},
};

use serde::Serialize;

/// What the merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MergeCounters {
    /// Events that arrived after the watermark had passed them.
    pub late: u64,
    /// Events released before the watermark reached them because the
    /// buffer was full.
    pub forced: u64,
    /// Events held now.
    pub buffered: u64,
}

struct Held<T> {
    time_ns: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ns, self.seq) == (other.time_ns, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time_ns, self.seq).cmp(&(other.time_ns, other.seq))
    }
}

/// The merge of every node's events into event-time order.
pub struct Merge<T> {
    lateness_ns: u64,
    timeout_ns: u64,
    max_buffered: usize,
    /// Each (partition index, node index)'s clock, ns.
    clocks: HashMap<(usize, u32), u64>,
    /// Partitions being rebuilt, by index: how far their replay got, ns
    /// (0: not started).
    holds: HashMap<usize, u64>,
    newest: u64,
    held: BinaryHeap<Reverse<Held<T>>>,
    /// Items to hand on at the next release (late ones, forced ones).
    ready: Vec<T>,
    seq: u64,
    watermark: u64,
    counters: MergeCounters,
}

impl<T> Merge<T> {
    /// A merge allowing `lateness_ns`, dropping nodes `timeout_ns` behind
    /// the newest clock from the watermark, holding at most `max_buffered`
    /// events.
    pub fn new(lateness_ns: u64, timeout_ns: u64, max_buffered: usize) -> Self {
        Self {
            lateness_ns,
            timeout_ns,
            max_buffered: max_buffered.max(1),
            clocks: HashMap::new(),
            holds: HashMap::new(),
            newest: 0,
            held: BinaryHeap::new(),
            ready: Vec::new(),
            seq: 0,
            watermark: 0,
            counters: MergeCounters::default(),
        }
    }

    /// A heartbeat: `node`'s clock on `partition` is at least `time_ns`.
    pub fn clock(&mut self, partition: usize, node: u32, time_ns: u64) {
        let clock = self.clocks.entry((partition, node)).or_default();
        *clock = (*clock).max(time_ns);
        self.newest = self.newest.max(time_ns);
    }

    /// `partition` is about to be replayed: it holds the watermark back
    /// (at 0 until its replay starts) until [`Merge::unhold`].
    pub fn hold(&mut self, partition: usize) {
        self.holds.insert(partition, 0);
    }

    /// `partition`'s replay has reached `time_ns` (an event or heartbeat
    /// replayed); nothing if it holds nothing.
    pub fn hold_at(&mut self, partition: usize, time_ns: u64) {
        if let Some(at) = self.holds.get_mut(&partition) {
            *at = (*at).max(time_ns);
        }
    }

    /// `partition` has caught up: its live clocks govern it again.
    pub fn unhold(&mut self, partition: usize) {
        self.holds.remove(&partition);
    }

    /// Partitions still being replayed.
    pub fn holding(&self) -> usize {
        self.holds.len()
    }

    /// An event at `time_ns` from `node` on `partition`: held until the
    /// watermark passes it, or ready at once if it already has (late). A
    /// node's first event on a partition, before any heartbeat there,
    /// starts its clock at the event's time.
    pub fn push(&mut self, partition: usize, node: u32, time_ns: u64, item: T) {
        self.clocks.entry((partition, node)).or_insert(time_ns);
        if time_ns < self.watermark {
            self.counters.late += 1;
            self.ready.push(item);
            return;
        }
        self.seq += 1;
        self.held.push(Reverse(Held {
            time_ns,
            seq: self.seq,
            item,
        }));
        if self.held.len() > self.max_buffered
            && let Some(Reverse(oldest)) = self.held.pop()
        {
            self.counters.forced += 1;
            self.watermark = self.watermark.max(oldest.time_ns);
            self.ready.push(oldest.item);
        }
    }

    /// Moves the watermark on from the clocks and hands `out` every event
    /// it passed, in time order (late and forced ones first).
    pub fn release(&mut self, out: &mut Vec<T>) {
        let live = self
            .clocks
            .values()
            .copied()
            .filter(|&c| c.saturating_add(self.timeout_ns) >= self.newest)
            .min();
        let held = self.holds.values().copied().min();
        let lowest = match (live, held) {
            (Some(l), Some(h)) => Some(l.min(h)),
            (l, h) => l.or(h),
        };
        if let Some(lowest) = lowest {
            self.watermark = self.watermark.max(lowest.saturating_sub(self.lateness_ns));
        }
        out.append(&mut self.ready);
        while let Some(Reverse(next)) = self.held.peek() {
            if next.time_ns > self.watermark {
                break;
            }
            if let Some(Reverse(next)) = self.held.pop() {
                out.push(next.item);
            }
        }
    }

    /// The watermark, ns since the epoch (0 before the first heartbeat).
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// The counters so far.
    pub fn counters(&self) -> MergeCounters {
        MergeCounters {
            buffered: self.held.len() as u64,
            ..self.counters
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn released(m: &mut Merge<u64>) -> Vec<u64> {
        let mut out = Vec::new();
        m.release(&mut out);
        out
    }

    #[test]
    fn the_slowest_node_holds_the_rest() {
        let mut m = Merge::new(2 * S, 30 * S, 100);
        m.clock(0, 0, 10 * S);
        m.clock(0, 1, 5 * S);
        for t in [9, 4, 3, 8] {
            m.push(0, 0, t * S, t);
        }
        assert_eq!(released(&mut m), [3]);
        assert_eq!(m.watermark(), 3 * S);
        m.clock(0, 1, 12 * S);
        assert_eq!(released(&mut m), [4, 8]);
        m.push(0, 0, 2 * S, 2);
        assert_eq!(released(&mut m), [2], "late, handed on at once");
        assert_eq!(m.counters().late, 1);
        assert_eq!(m.counters().buffered, 1);
    }

    #[test]
    fn a_gone_node_stops_holding_back() {
        let mut m = Merge::new(0, 30 * S, 100);
        m.clock(0, 0, 100 * S);
        m.clock(1, 1, 75 * S);
        m.push(0, 0, 90 * S, 90);
        assert_eq!(released(&mut m), Vec::<u64>::new());
        m.clock(0, 0, 106 * S);
        assert_eq!(released(&mut m), [90]);
    }

    #[test]
    fn a_replayed_partition_holds_the_watermark_until_it_caught_up() {
        let mut m = Merge::new(S, 30 * S, 100);
        m.hold(1);
        // Live heartbeats of partition 0 run far ahead of the replay.
        m.clock(0, 0, 1000 * S);
        m.push(0, 0, 999 * S, 999);
        assert_eq!(
            released(&mut m),
            Vec::<u64>::new(),
            "the replay has not started"
        );
        for t in [10, 12, 11] {
            m.clock(1, 0, t * S);
            m.hold_at(1, t * S);
            m.push(1, 0, t * S, t);
        }
        assert_eq!(released(&mut m), [10, 11]);
        m.unhold(1);
        // Its replayed clock is far behind the newest: timed out.
        assert_eq!(released(&mut m), [12, 999]);
        assert_eq!(m.counters().late, 0);
    }

    #[test]
    fn a_full_buffer_releases_its_oldest() {
        let mut m = Merge::new(0, 30 * S, 2);
        m.clock(0, 0, 0);
        for t in [5, 3, 4] {
            m.push(0, 0, t * S, t);
        }
        assert_eq!(released(&mut m), [3]);
        assert_eq!(m.counters().forced, 1);
        assert_eq!(m.watermark(), 3 * S);
    }
}

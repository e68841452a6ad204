//! The packet tap's per-CPU rings: how the tc and XDP programs hand
//! segment records to the daemon without a shared reservation.
//!
//! `BPF_MAP_TYPE_RINGBUF` serialises every reservation on one lock taken
//! with interrupts off and on one producer position all CPUs write
//! (kernel/bpf/ringbuf.c); measured, that was about 60% of a tc run. Here
//! each CPU has its own ring with exactly one producer, the programs that
//! run on that CPU. tc and XDP programs run with bottom halves disabled,
//! so two of them never interleave on one CPU; a run that finds
//! [`Position::busy`] set anyway (a nested run) counts the segment as
//! lost rather than corrupt the ring.
//!
//! Two `BPF_F_MMAPABLE` arrays, mapped by the daemon (kernel doc:
//! bpf/map_array.rst):
//! - [`POSITIONS_MAP`]: one [`Position`] per possible CPU;
//! - [`CHUNKS_MAP`]: `chunks_per_cpu` (a power of two, the global
//!   [`CHUNKS_PER_CPU_GLOBAL`]) chunks of [`CHUNK`] bytes per CPU, CPU
//!   `c`'s at indexes `c * chunks_per_cpu ..`.
//!
//! A position is a logical byte count that only grows; [`slot`] maps it to
//! a chunk and an offset. A record never spans two chunks: one that would
//! not fit with the largest payload starts at the next chunk, and the
//! rest of the old chunk is marked with a [`SKIP`] prefix. A record is a
//! [`PREFIX`] (its length in bytes, `u32`, and 4 zero bytes), a
//! [`crate::SegmentHeader`] and `captured_len` payload bytes, rounded up
//! to 8 bytes ([`record_len`]).
//!
//! The producer writes the record, then publishes [`Position::head`] with
//! release order; the daemon reads `head` with acquire order, reads up to
//! it, then publishes [`Position::tail`]. The producer refuses a record
//! that would take `head` more than the ring's size past `tail`. The
//! daemon merges the CPUs' streams by `ktime_ns`, so a response recorded
//! on one CPU never overtakes its request recorded on another.

use crate::{HEADER_LEN, MAX_CAPTURE_LEN};

/// Name of the position array: `Array<Position>`, one entry per possible
/// CPU.
pub const POSITIONS_MAP: &str = "RING_POSITIONS";
/// Name of the chunk array: `Array<[u8; CHUNK]>`.
pub const CHUNKS_MAP: &str = "RING_CHUNKS";
/// Name of the `.rodata` global holding the chunks per CPU (u32, a power
/// of two).
pub const CHUNKS_PER_CPU_GLOBAL: &str = "RING_CHUNKS_PER_CPU";

/// Name of the `.rodata` global (u8) that, when non-zero, says the host
/// keeps stores in program order (x86-64), so the programs publish
/// [`Position::head`] with a plain store rather than a locked exchange.
pub const STORES_IN_ORDER_GLOBAL: &str = "RING_STORES_IN_ORDER";

/// log2 of [`CHUNK`].
pub const CHUNK_SHIFT: u32 = 16;
/// Bytes of one chunk (64 KiB): a map value, so at most the kernel's
/// `KMALLOC_MAX_SIZE`.
pub const CHUNK: usize = 1 << CHUNK_SHIFT;
/// Bytes before a record's header: its length (`u32`) and 4 zero bytes.
pub const PREFIX: usize = 8;
/// A prefix length that means: nothing more in this chunk.
pub const SKIP: u32 = u32::MAX;
/// Bytes a record may need: prefix, header and the largest payload.
pub const MAX_RECORD: usize = PREFIX + HEADER_LEN + MAX_CAPTURE_LEN as usize;

/// One CPU's positions; producer and consumer fields on their own cache
/// lines (128 bytes in all).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Position {
    /// Where the next record goes; written by the CPU's programs only.
    pub head: u64,
    /// Non-zero while a program on this CPU writes a record.
    pub busy: u64,
    _producer: [u64; 6],
    /// Up to where the daemon has read; written by the daemon only.
    pub tail: u64,
    _consumer: [u64; 7],
}

/// Ring bytes a record of `captured` payload bytes takes.
#[inline(always)]
pub const fn record_len(captured: u32) -> u64 {
    (PREFIX as u64 + HEADER_LEN as u64 + captured as u64 + 7) & !7
}

/// Where a record that may need `room` bytes starts when the ring's next
/// free position is `head`: there, or at the next chunk if it would not
/// fit in `head`'s.
#[inline(always)]
pub const fn placement(head: u64, room: u64) -> u64 {
    let mask = CHUNK as u64 - 1;
    if (head & mask) + room > CHUNK as u64 {
        (head | mask) + 1
    } else {
        head
    }
}

/// The chunk index (within the CPU's `chunks`, a power of two) and the
/// byte offset in it of logical position `pos`.
#[inline(always)]
pub const fn slot(pos: u64, chunks: u32) -> (u32, usize) {
    (
        (pos >> CHUNK_SHIFT) as u32 & (chunks - 1),
        (pos & (CHUNK as u64 - 1)) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_would_cross_a_chunk_starts_the_next() {
        let room = MAX_RECORD as u64;
        assert_eq!(placement(0, room), 0);
        let last_fit = CHUNK as u64 - room;
        assert_eq!(placement(last_fit, room), last_fit);
        assert_eq!(placement(last_fit + 8, room), CHUNK as u64);
        assert_eq!(placement(3 * CHUNK as u64 + 8, room), 3 * CHUNK as u64 + 8);
    }

    #[test]
    fn positions_wrap_over_the_cpus_chunks() {
        assert_eq!(slot(0, 4), (0, 0));
        assert_eq!(slot(CHUNK as u64 + 16, 4), (1, 16));
        assert_eq!(slot(5 * CHUNK as u64 + 8, 4), (1, 8));
        assert_eq!(record_len(0), 80);
        assert_eq!(record_len(1), 88);
        assert_eq!(record_len(8), 88);
        assert_eq!(core::mem::size_of::<Position>(), 128);
    }
}

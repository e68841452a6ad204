//! The daemon's side of the packet tap's per-CPU rings
//! ([`sensor_ebpf::ring`]): maps them and hands their records on in
//! kernel-time order across CPUs.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData},
};
use memmap2::{MmapOptions, MmapRaw};
use sensor_ebpf::{
    HEADER_LEN,
    ring::{self, CHUNK, CHUNKS_MAP, POSITIONS_MAP, PREFIX, Position, SKIP},
};

/// How long after its kernel time a record may still be published: the
/// reader hands on only records older than this, so one CPU's record
/// written a little later never comes after a newer one from another CPU.
/// A program run takes microseconds; a record later than this (a vCPU
/// preempted mid-run) is handed on anyway and counted as reordered.
pub const HOLDBACK_NS: u64 = 2_000_000;

/// Byte offsets of [`Position`]'s head and tail.
const HEAD: usize = std::mem::offset_of!(Position, head);
const TAIL: usize = std::mem::offset_of!(Position, tail);

/// Whether this host keeps stores in program order (x86-64's TSO), so
/// the kernel programs may publish with a plain store (see
/// `sensor_ebpf::ring::STORES_IN_ORDER_GLOBAL`).
const STORES_IN_ORDER: bool = cfg!(target_arch = "x86_64");

/// How big the rings are: one per possible CPU, of `chunks_per_cpu`
/// chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Possible CPUs ([`Layout::possible_cpus`]).
    pub cpus: usize,
    /// Chunks of each CPU's ring, a power of two.
    pub chunks_per_cpu: u32,
    /// Whether the programs publish a record with a plain store (this
    /// host keeps stores in program order) or with `BPF_XCHG`. [`split`]
    /// decides by the host; a test may force the exchange.
    ///
    /// [`split`]: Layout::split
    pub stores_in_order: bool,
}

impl Layout {
    /// Rings for a budget of `bytes` on this host (see [`Layout::split`]).
    ///
    /// # Errors
    /// The possible CPUs cannot be read.
    pub fn for_budget(bytes: u32) -> Result<Self> {
        Ok(Self::split(bytes, Self::possible_cpus()?))
    }

    /// The host's possible CPUs (`/sys/devices/system/cpu/possible`): the
    /// ids `bpf_get_smp_processor_id` can return are below it.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn possible_cpus() -> Result<usize> {
        aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))
    }

    /// A budget of `bytes` split over `cpus` CPUs: the largest power of
    /// two of chunks that fits, at least 2 (so at least 128 KiB per CPU,
    /// above the budget on a host of many CPUs and a small budget).
    pub fn split(bytes: u32, cpus: usize) -> Self {
        let per_cpu = u64::from(bytes) / cpus.max(1) as u64 / CHUNK as u64;
        let chunks_per_cpu = match per_cpu {
            0..=2 => 2,
            n => 1 << n.ilog2(),
        };
        Self {
            cpus,
            chunks_per_cpu,
            stores_in_order: STORES_IN_ORDER,
        }
    }

    /// Sizes the ring maps and sets the programs' ring globals.
    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader
            .override_global(ring::CHUNKS_PER_CPU_GLOBAL, &self.chunks_per_cpu, true)
            .override_global(
                ring::STORES_IN_ORDER_GLOBAL,
                if self.stores_in_order { &1u8 } else { &0u8 },
                true,
            )
            .map_max_entries(POSITIONS_MAP, self.cpus as u32)
            .map_max_entries(CHUNKS_MAP, self.cpus as u32 * self.chunks_per_cpu);
    }
}

/// The next record of one CPU's ring, found but not yet handed on.
#[derive(Clone, Copy)]
struct Next {
    ktime_ns: u64,
    /// Byte index of its header in the chunk mapping.
    at: usize,
    /// Header and payload bytes.
    len: usize,
    /// Ring bytes it takes.
    size: u64,
}

/// One CPU's reading state.
#[derive(Default)]
struct Cursor {
    /// What was read: the daemon's position.
    tail: u64,
    /// The producer's position when last loaded.
    head: u64,
    next: Option<Next>,
}

/// The mapped rings of every possible CPU.
pub struct CpuRings {
    positions: MmapRaw,
    chunks: MmapRaw,
    chunks_per_cpu: u32,
    cursors: Vec<Cursor>,
    /// Kernel time of the last record handed on.
    last_ns: u64,
    /// Records handed on after a newer one (see [`HOLDBACK_NS`]).
    pub reordered: u64,
    /// Times a ring held bytes that are not a record: what it held was
    /// dropped.
    pub corrupt: u64,
    /// The maps; the mappings keep them alive too.
    _maps: [MapData; 2],
}

impl CpuRings {
    /// Takes the ring maps out of `ebpf` (loaded after
    /// [`Layout::apply`]) and maps them.
    ///
    /// # Errors
    /// A map is missing or cannot be mapped.
    pub fn open(ebpf: &mut Ebpf, layout: Layout) -> Result<Self> {
        let Layout {
            cpus,
            chunks_per_cpu,
            ..
        } = layout;
        let positions = array(ebpf, POSITIONS_MAP)?;
        let chunks = array(ebpf, CHUNKS_MAP)?;
        let chunk_bytes = cpus * chunks_per_cpu as usize * CHUNK;
        Ok(Self {
            positions: mapped(&positions, cpus * size_of::<Position>())?,
            chunks: mapped(&chunks, chunk_bytes)?,
            chunks_per_cpu,
            cursors: (0..cpus).map(|_| Cursor::default()).collect(),
            last_ns: 0,
            reordered: 0,
            corrupt: 0,
            _maps: [positions, chunks],
        })
    }

    /// Hands up to `limit` records whose kernel time is at most `until_ns`
    /// (CLOCK_MONOTONIC) to `f`, oldest first across CPUs, each as its
    /// header and payload bytes; returns how many. With n CPUs holding
    /// records a record costs n comparisons.
    pub fn drain(&mut self, until_ns: u64, limit: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        for cpu in 0..self.cursors.len() {
            self.cursors[cpu].head = self.position(cpu, HEAD).load(Ordering::Acquire);
        }
        let mut handed = 0;
        while handed < limit {
            let mut oldest: Option<(u64, usize)> = None;
            for cpu in 0..self.cursors.len() {
                if let Some(next) = self.peek(cpu)
                    && next.ktime_ns <= until_ns
                    && oldest.is_none_or(|(t, _)| next.ktime_ns < t)
                {
                    oldest = Some((next.ktime_ns, cpu));
                }
            }
            let Some((_, cpu)) = oldest else { break };
            let Some(next) = self.cursors[cpu].next.take() else {
                break;
            };
            // SAFETY: peek() checked the record lies within the mapping,
            // below the head the producer published (so it no longer
            // writes there) and above the tail (so not yet released).
            let bytes =
                unsafe { std::slice::from_raw_parts(self.chunks.as_ptr().add(next.at), next.len) };
            self.reordered += u64::from(next.ktime_ns < self.last_ns);
            self.last_ns = self.last_ns.max(next.ktime_ns);
            f(bytes);
            self.cursors[cpu].tail += next.size;
            handed += 1;
        }
        for cpu in 0..self.cursors.len() {
            let tail = self.cursors[cpu].tail;
            self.position(cpu, TAIL).store(tail, Ordering::Release);
        }
        handed
    }

    /// CPU `cpu`'s next record, found from its tail.
    fn peek(&mut self, cpu: usize) -> Option<Next> {
        let chunks = self.chunks_per_cpu;
        let base = self.chunks.as_ptr();
        let c = &mut self.cursors[cpu];
        if c.next.is_some() {
            return c.next;
        }
        while c.tail < c.head {
            let (chunk, off) = ring::slot(c.tail, chunks);
            let at = (cpu * chunks as usize + chunk as usize) * CHUNK + off;
            // SAFETY: `at` is within this CPU's chunks (slot() masks),
            // 4 bytes below a chunk's end (offsets are multiples of 8).
            let used = unsafe { base.add(at).cast::<u32>().read_unaligned() };
            if used == SKIP {
                c.tail = (c.tail | (CHUNK as u64 - 1)) + 1;
                continue;
            }
            let size = ring::record_len(used.wrapping_sub((PREFIX + HEADER_LEN) as u32));
            if (used as usize) < PREFIX + HEADER_LEN
                || used as usize > ring::MAX_RECORD
                || off + used as usize > CHUNK
                || c.tail + size > c.head
            {
                self.corrupt += 1;
                c.tail = c.head;
                return None;
            }
            // SAFETY: the record's header lies within the chunk (checked).
            let ktime_ns = unsafe { base.add(at + PREFIX).cast::<u64>().read_unaligned() };
            c.next = Some(Next {
                ktime_ns,
                at: at + PREFIX,
                len: used as usize - PREFIX,
                size,
            });
            return c.next;
        }
        None
    }

    /// The field at byte `field` of CPU `cpu`'s [`Position`] (its head
    /// or tail), shared with the kernel.
    fn position(&self, cpu: usize, field: usize) -> &AtomicU64 {
        let offset = cpu * size_of::<Position>() + field;
        // SAFETY: within the mapping (one Position per CPU), 8-aligned
        // (page-aligned mapping), and only ever accessed atomically here.
        unsafe { AtomicU64::from_ptr(self.positions.as_mut_ptr().add(offset).cast()) }
    }
}

/// Array map `name` taken out of `ebpf`.
fn array(ebpf: &mut Ebpf, name: &str) -> Result<MapData> {
    match ebpf.take_map(name) {
        Some(Map::Array(data)) => Ok(data),
        Some(_) => bail!("map {name} is not an array"),
        None => bail!("map {name} missing from the eBPF object"),
    }
}

/// The first `len` bytes of a `BPF_F_MMAPABLE` array's values, mapped
/// read-write (the kernel rounds the mapping up to whole pages).
fn mapped(map: &MapData, len: usize) -> Result<MmapRaw> {
    let fd = map.fd().as_fd().as_raw_fd();
    MmapOptions::new()
        .len(len)
        .map_raw(fd)
        .with_context(|| format!("mapping a ring map of {len} bytes"))
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn the_budget_is_split_over_the_cpus_in_powers_of_two() {
        let chunks = |bytes, cpus| Layout::split(bytes, cpus).chunks_per_cpu;
        assert_eq!(chunks(32 << 20, 2), 256);
        assert_eq!(chunks(32 << 20, 3), 128);
        assert_eq!(chunks(1 << 20, 64), 2);
    }
}

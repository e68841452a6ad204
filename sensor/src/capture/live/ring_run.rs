//! The per-CPU rings ([`sensor_ebpf::ring`]) exercised in the kernel:
//! `tc_egress` runs under `BPF_PROG_TEST_RUN` on a chosen CPU, and the
//! daemon's reader reads the records back. For `tests/kernel_ring.rs`.

use anyhow::{Context as _, Result, bail};
use aya::maps::{MapData, PerCpuArray};
use sensor_ebpf::{COUNTERS_MAP, Counter, HEADER_LEN, SegmentHeader, TC_EGRESS_PROGRAM, port_bits};

use super::{
    bench::{frame, loaded, test_run},
    rings::{CpuRings, Layout},
};
use crate::capture::{kernel_map, per_cpu_total};

/// `tc_egress` loaded with small rings, and their reader.
pub struct RingRun {
    _ebpf: aya::Ebpf,
    fd: i32,
    rings: CpuRings,
    counters: PerCpuArray<MapData, u64>,
    cpus: usize,
}

/// A record read back: the segment's sequence number and captured length.
pub type ReadBack = (u32, u32);

impl RingRun {
    /// Loads `tc_egress` with rings of `chunks_per_cpu` 64 KiB chunks (a
    /// power of two) on every possible CPU, publishing records with a
    /// plain store when `stores_in_order`, else with `BPF_XCHG` (see
    /// `Layout::stores_in_order`).
    ///
    /// # Errors
    /// Loading or mapping failed (needs root).
    pub fn new(chunks_per_cpu: u32, stores_in_order: bool) -> Result<Self> {
        let cpus = Layout::possible_cpus()?;
        let layout = Layout {
            cpus,
            chunks_per_cpu,
            stores_in_order,
        };
        let (mut ebpf, fd, rings) = loaded(TC_EGRESS_PROGRAM, port_bits::CAPTURE, layout)?;
        let counters = kernel_map(&mut ebpf, COUNTERS_MAP)?;
        Ok(Self {
            _ebpf: ebpf,
            fd,
            rings,
            counters,
            cpus,
        })
    }

    /// Online CPUs this process may run on, the first `n` of them.
    pub fn cpus(&self, n: usize) -> Vec<usize> {
        (0..self.cpus)
            .filter(|&c| pinned(c).map(|p| restore(&p)).is_ok())
            .take(n)
            .collect()
    }

    /// Runs `tc_egress` once on CPU `cpu` on a segment with sequence
    /// number `seq` and `payload` bytes, each the low byte of `seq`.
    ///
    /// # Errors
    /// The thread cannot be moved to `cpu`, or the run failed.
    pub fn segment(&mut self, cpu: usize, seq: u32, payload: u16) -> Result<()> {
        let mut f = frame(payload);
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[54..].fill(seq as u8);
        let previous = pinned(cpu)?;
        let run = test_run(self.fd, &f, 1);
        restore(&previous);
        run.map(|_| ())
    }

    /// Reads every waiting record as the daemon does (oldest first across
    /// CPUs).
    ///
    /// # Errors
    /// A record is short, or a payload byte is not its sequence number's
    /// low byte (a torn or stale record).
    pub fn drain(&mut self) -> Result<Vec<ReadBack>> {
        let mut out = Vec::new();
        let mut torn = 0;
        self.rings.drain(u64::MAX, usize::MAX, &mut |record| {
            if record.len() < HEADER_LEN {
                torn += 1;
                return;
            }
            // SAFETY: a SegmentHeader is plain data, every bit pattern valid.
            let h: SegmentHeader = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
            let payload = &record[HEADER_LEN..];
            if payload.len() != h.captured_len as usize || payload.iter().any(|&b| b != h.seq as u8)
            {
                torn += 1;
            }
            out.push((h.seq, h.captured_len));
        });
        if torn > 0 || self.rings.corrupt > 0 {
            bail!("{torn} torn records, {} corrupt rings", self.rings.corrupt);
        }
        Ok(out)
    }

    /// Segments the kernel counted as lost to a full ring.
    ///
    /// # Errors
    /// The counters cannot be read.
    pub fn ring_full(&self) -> Result<u64> {
        per_cpu_total(&self.counters, Counter::RingFull as u32)
    }
}

/// Moves this thread to CPU `cpu` alone; returns the mask it had.
fn pinned(cpu: usize) -> Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; the calls read or write the one
    // set given, for this thread (pid 0).
    unsafe {
        let mut previous: libc::cpu_set_t = std::mem::zeroed();
        let size = size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut previous) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        let mut only: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut only);
        if libc::sched_setaffinity(0, size, &only) != 0 {
            return Err(std::io::Error::last_os_error()).context(format!("moving to CPU {cpu}"));
        }
        Ok(previous)
    }
}

/// Gives this thread back the mask [`pinned`] returned.
fn restore(mask: &libc::cpu_set_t) {
    // SAFETY: as in pinned().
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), mask) };
}

//! The live source: loads the kernel programs embedded in this binary,
//! attaches them, and drains their per-CPU rings into a callback.
//!
//! [`LiveCapture`] knows nothing of what consumes its segments: the daemon
//! calls [`LiveCapture::drain`] on its poll timer, and at the end
//! [`LiveCapture::stop`]. Shutdown order matters for the loss accounting:
//! programs are detached first, then the rings are drained, then the
//! kernel counters are read, so `submitted == received` holds exactly at
//! the end of a run.

mod attach;
pub mod bench;
mod block_map;
mod clock;
mod preflight;
pub mod privileges;
pub mod record;
pub mod ring_run;
mod rings;
mod skb;
mod trim_map;

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray},
};
use aya_log::EbpfLogger;
use sensor_ebpf::{
    ALL_PORTS_GLOBAL, CAPTURE_LEN_GLOBAL, COUNTERS_MAP, Counter, IP_SUMMED_BYTE_GLOBAL,
    IP_SUMMED_SHIFT_GLOBAL, PORTS_MAP, checks, port_bits,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    task::JoinHandle,
};
use tracing::warn;

pub use attach::{AttachPlan, Hook, TcAttach, XdpMode};
pub use block_map::KernelBlocks;
pub use clock::Clock;
pub use preflight::PreflightError;
pub use trim_map::TrimCounters;

use rings::{CpuRings, Layout};
use trim_map::KernelTrims;

use super::{
    Segment, Trim,
    defrag::{Defrag, Fragment, Outcome, reassembled},
    kernel_map, per_cpu_total,
};

/// The kernel object built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// Forwards `aya-log-ebpf` records from the kernel programs to `tracing`.
type KernelLog = EbpfLogger<&'static dyn log::Log>;

/// Which TCP ports to capture (segments from or to them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Every TCP port.
    All,
    /// Only these ports.
    List(Vec<u16>),
}

/// Everything the live source needs to start.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Hook, interfaces and attach modes.
    pub plan: AttachPlan,
    /// Port filter.
    pub ports: Ports,
    /// Payload bytes copied per segment, 1..=`sensor_ebpf::MAX_CAPTURE_LEN`.
    pub capture_len: u32,
    /// The rings' size in bytes, split over the possible CPUs: a power of
    /// two of 64 KiB chunks each, at least two.
    pub ring_bytes: u32,
    /// Kong's proxy listener ports, where a blocked source's packets are
    /// dropped (`--block on`; empty: the block maps are never written).
    pub block_ports: Vec<u16>,
    /// Whether [`LiveCapture::trim`] writes the daemon's body ranges to the
    /// kernel (`--trim-bodies`); off, it ignores them.
    pub trim_bodies: bool,
}

/// Kernel counters summed over CPUs. See [`Counter`] for the invariant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    /// Segments that passed the filter.
    pub seen: u64,
    /// Records submitted to the ring buffer.
    pub submitted: u64,
    /// Segments dropped because the ring buffer was full.
    pub ring_full: u64,
    /// Segments dropped because the payload copy failed.
    pub copy_error: u64,
    /// IP fragments of TCP seen (counted, not recorded).
    pub fragments: u64,
    /// Packets dropped on ingress because their source was blocked
    /// (`--block on`).
    pub blocked: u64,
    /// Segments not recorded: inside a body the daemon will not read
    /// (`--trim-bodies`).
    pub trimmed: u64,
}

/// Userspace counters of the live source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReaderCounters {
    /// Records read from the rings.
    pub received: u64,
    /// Records read after a newer one from another CPU: published more
    /// than 2 ms (the reader's holdback) after their kernel time; handed
    /// on anyway.
    pub reordered: u64,
    /// Records that failed to decode (see [`record::RecordError`]).
    pub malformed: u64,
    /// Segments dropped because the gateway's stack drops them too: an IP
    /// length beyond the frame.
    pub bad_ip_length: u64,
    /// ... a wrong IPv4 header checksum.
    pub bad_ip_checksum: u64,
    /// ... a wrong TCP checksum the stack verifies.
    pub bad_tcp_checksum: u64,
    /// Segments whose TCP checksum could not be judged (XDP, a segment too
    /// long to sum in the kernel, no BTF): delivered, the first copy of
    /// their bytes wins.
    pub tcp_checksum_unknown: u64,
    /// TCP segments rebuilt from IPv4 fragment records.
    pub reassembled: u64,
    /// IPv4 datagrams whose fragments were dropped: overlapping, cut by the
    /// capture length, or never completed within 30 s.
    pub fragments_dropped: u64,
}

/// The live source's counters, kernel and reader side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureCounters {
    /// Kernel side.
    pub kernel: KernelCounters,
    /// Reader side.
    pub reader: ReaderCounters,
    /// Body ranges written to the kernel.
    pub trims: TrimCounters,
}

impl CaptureCounters {
    /// Every segment seen was delivered or counted as dropped, and every
    /// submitted record reached the reader.
    pub fn balanced(&self) -> bool {
        let k = &self.kernel;
        k.seen == k.submitted + k.ring_full + k.copy_error + k.trimmed
            && k.submitted == self.reader.received
    }
}

/// A running live capture. Dropping it detaches every program.
pub struct LiveCapture {
    ebpf: Ebpf,
    rings: CpuRings,
    counters: PerCpuArray<MapData, u64>,
    /// The task forwarding the kernel programs' log records.
    logger: Option<JoinHandle<()>>,
    reader: ReaderCounters,
    clock: Clock,
    /// IPv4 datagrams being reassembled from fragment records.
    defrag: Defrag,
    /// Whether some program was attached over netlink (tc clsact or XDP),
    /// whose detach needs `CAP_NET_ADMIN`.
    netlink: bool,
    /// The block maps, until [`LiveCapture::take_blocks`].
    blocks: Option<KernelBlocks>,
    /// The body-range map, with `--trim-bodies`.
    trims: Option<KernelTrims>,
    trim_counters: TrimCounters,
}

impl LiveCapture {
    /// Checks interfaces and capabilities, loads and attaches the programs.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A [`PreflightError`], the verifier's log if the kernel refuses a
    /// program, or the failing attach. Nothing stays attached.
    pub fn start(opts: &LiveOptions) -> Result<Self> {
        preflight::interfaces(&opts.plan.interfaces)?;
        let links = !(opts.plan.hook == Hook::Tc && opts.plan.tc == TcAttach::Netlink);
        preflight::capabilities(links)?;
        raise_memlock_limit();
        let all_ports = u8::from(opts.ports == Ports::All);
        let layout = Layout::for_budget(opts.ring_bytes)?;
        let summed = skb::ip_summed();
        if summed.is_none() {
            warn!("sk_buff.ip_summed not found in the kernel's BTF: TCP checksums are not judged");
        }
        let (summed_byte, summed_shift) = summed.map_or((0, 0), |s| (s.byte, s.shift));
        let mut loader = EbpfLoader::new();
        layout.apply(&mut loader);
        let mut ebpf = loader
            .override_global(CAPTURE_LEN_GLOBAL, &opts.capture_len, true)
            .override_global(ALL_PORTS_GLOBAL, &all_ports, true)
            .override_global(IP_SUMMED_BYTE_GLOBAL, &summed_byte, true)
            .override_global(IP_SUMMED_SHIFT_GLOBAL, &summed_shift, true)
            .load(OBJECT)
            .context("loading the eBPF object (maps and BTF)")?;
        {
            let mut filter = Array::<_, u8>::try_from(ebpf.map_mut(PORTS_MAP).context(PORTS_MAP)?)?;
            let mut bits = std::collections::BTreeMap::<u16, u8>::new();
            if let Ports::List(ports) = &opts.ports {
                for &port in ports {
                    *bits.entry(port).or_default() |= port_bits::CAPTURE;
                }
            }
            for &port in &opts.block_ports {
                *bits.entry(port).or_default() |= port_bits::PROXY;
            }
            for (port, b) in bits {
                filter.set(u32::from(port), b, 0)?;
            }
        }
        let blocks = if opts.block_ports.is_empty() {
            None
        } else {
            Some(KernelBlocks::take(&mut ebpf)?)
        };
        let trims = if opts.trim_bodies {
            Some(KernelTrims::take(&mut ebpf)?)
        } else {
            None
        };
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(forward_kernel_log(l)?),
            Err(e) => {
                warn!(error = %e, "kernel log forwarding unavailable");
                None
            }
        };
        let rings = CpuRings::open(&mut ebpf, layout)?;
        let counters = kernel_map(&mut ebpf, COUNTERS_MAP)?;
        let netlink = attach::attach(&mut ebpf, &opts.plan)?;
        Ok(Self {
            ebpf,
            rings,
            counters,
            logger,
            reader: ReaderCounters::default(),
            clock: Clock::now(),
            defrag: Defrag::default(),
            netlink,
            blocks,
            trims,
            trim_counters: TrimCounters::default(),
        })
    }

    /// Writes the daemon's body ranges to the kernel (`--trim-bodies`;
    /// without it, does nothing). A range the map refuses is counted and
    /// its body recorded as usual; the first failure is logged.
    pub fn trim(&mut self, advice: &[Trim]) {
        let Some(trims) = &mut self.trims else {
            return;
        };
        for a in advice {
            match trims.write(a) {
                Ok(()) => self.trim_counters.written += 1,
                Err(e) => {
                    if self.trim_counters.failed == 0 {
                        warn!(error = %e, "cannot write a body range to the kernel");
                    }
                    self.trim_counters.failed += 1;
                }
            }
        }
    }

    /// The block maps (once; `None` when the capture was started without
    /// `block_ports`). They stay valid after [`LiveCapture::stop`]; the
    /// programs that read them are gone then.
    pub fn take_blocks(&mut self) -> Option<KernelBlocks> {
        self.blocks.take()
    }

    /// Whether detaching at [`LiveCapture::stop`] needs `CAP_NET_ADMIN`:
    /// some program is attached over netlink rather than as a link.
    pub fn detach_needs_net_admin(&self) -> bool {
        self.netlink
    }

    /// Hands up to `limit` records waiting in the rings to `on_segment`,
    /// in kernel-time order, but the last 2 ms of them (the holdback); a
    /// record that does not decode is counted and logged. Returns the
    /// records read (fewer than `limit`: none older is left).
    pub fn drain(&mut self, limit: usize, on_segment: &mut dyn FnMut(&Segment<'_>)) -> usize {
        let until = clock::monotonic_ns().saturating_sub(rings::HOLDBACK_NS);
        let mut reader = Reader {
            counters: &mut self.reader,
            clock: &self.clock,
            defrag: &mut self.defrag,
        };
        reader.drain(&mut self.rings, until, limit, on_segment)
    }

    /// Event time that records still held back cannot precede (wall-clock
    /// ns since the epoch), to move event time on when traffic is idle.
    pub fn now_ns(&self) -> u64 {
        self.clock
            .wall_ns(clock::monotonic_ns().saturating_sub(rings::HOLDBACK_NS))
    }

    /// The counters so far.
    ///
    /// # Errors
    /// The kernel counters cannot be read.
    pub fn counters(&self) -> Result<CaptureCounters> {
        Ok(CaptureCounters {
            kernel: read_counters(&self.counters)?,
            reader: self.reader,
            trims: self.trim_counters,
        })
    }

    /// Detaches every program, hands what is left in the rings to
    /// `on_segment` and returns the final counters.
    ///
    /// # Errors
    /// The kernel counters cannot be read.
    pub fn stop(self, on_segment: &mut dyn FnMut(&Segment<'_>)) -> Result<CaptureCounters> {
        let Self {
            ebpf,
            mut rings,
            counters,
            logger,
            mut reader,
            clock,
            mut defrag,
            netlink: _,
            blocks: _,
            trims: _,
            trim_counters,
        } = self;
        drop(ebpf); // detaches and unloads every program; maps we hold stay alive
        // A run that began before the detach may still be writing.
        std::thread::sleep(std::time::Duration::from_millis(10));
        if let Some(task) = logger {
            task.abort();
        }
        Reader {
            counters: &mut reader,
            clock: &clock,
            defrag: &mut defrag,
        }
        .drain(&mut rings, u64::MAX, usize::MAX, on_segment);
        reader.fragments_dropped += defrag.expired;
        let kernel = read_counters(&counters)?;
        Ok(CaptureCounters {
            kernel,
            reader,
            trims: trim_counters,
        })
    }
}

/// Spawns the task that forwards the kernel programs' log records.
fn forward_kernel_log(logger: KernelLog) -> std::io::Result<JoinHandle<()>> {
    // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }?;
    Ok(tokio::spawn(async move {
        while let Ok(mut guard) = fd.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}

/// What reading records needs: counters, the clock, and the fragments
/// being reassembled.
struct Reader<'a> {
    counters: &'a mut ReaderCounters,
    clock: &'a Clock,
    defrag: &'a mut Defrag,
}

impl Reader<'_> {
    /// Hands up to `limit` waiting records' segments to `on_segment`,
    /// dropping what the gateway's stack drops and reassembling fragments;
    /// returns the records read.
    fn drain(
        &mut self,
        rings: &mut CpuRings,
        until_ns: u64,
        limit: usize,
        on_segment: &mut dyn FnMut(&Segment<'_>),
    ) -> usize {
        let corrupt = rings.corrupt;
        let read = rings.drain(until_ns, limit, &mut |bytes| {
            self.counters.received += 1;
            match record::decode(bytes, self.clock) {
                Ok((segment, found)) => self.record(&segment, found, on_segment),
                Err(e) => {
                    self.counters.malformed += 1;
                    warn!(error = %e, "malformed ring record");
                }
            }
        });
        self.counters.reordered = rings.reordered;
        if rings.corrupt > corrupt {
            self.counters.malformed += rings.corrupt - corrupt;
            warn!("a CPU's ring held bytes that are not a record; what it held is lost");
        }
        read
    }

    fn record(
        &mut self,
        segment: &Segment<'_>,
        found: u32,
        on_segment: &mut dyn FnMut(&Segment<'_>),
    ) {
        let c = &mut *self.counters;
        if found & checks::DROPPED_BY_STACK != 0 {
            // What the gateway's stack drops never reaches reassembly.
            c.bad_ip_length += u64::from(found & checks::BAD_IP_LENGTH != 0);
            c.bad_ip_checksum += u64::from(found & checks::BAD_IP_CHECKSUM != 0);
            c.bad_tcp_checksum += u64::from(found & checks::BAD_TCP_CHECKSUM != 0);
        } else if found & checks::FRAGMENT != 0 {
            self.fragment(segment, on_segment);
        } else {
            c.tcp_checksum_unknown += u64::from(found & checks::TCP_CHECKSUM_KNOWN_GOOD == 0);
            on_segment(segment);
        }
    }

    /// A fragment record: into the datagram it belongs to; a datagram it
    /// completes becomes a segment (checked like any other).
    fn fragment(&mut self, record: &Segment<'_>, on_segment: &mut dyn FnMut(&Segment<'_>)) {
        let (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) =
            (record.src.ip(), record.dst.ip())
        else {
            return;
        };
        let c = &mut *self.counters;
        if record.payload.len() < record.payload_len as usize {
            // The capture length cut it: the datagram cannot be rebuilt.
            c.fragments_dropped += 1;
            return;
        }
        let f = Fragment {
            src,
            dst,
            id: record.seq as u16,
            offset: (record.ack & !checks::MORE_FRAGMENTS) as u16,
            more: record.ack & checks::MORE_FRAGMENTS != 0,
            data: record.payload,
        };
        match self.defrag.add(&f, record.time_ns) {
            Outcome::Pending => {}
            Outcome::Dropped => c.fragments_dropped += 1,
            Outcome::Complete(datagram) => {
                match reassembled(src, dst, &datagram, record.time_ns, record.source) {
                    Some((segment, true)) => {
                        c.reassembled += 1;
                        on_segment(&segment);
                    }
                    Some((_, false)) => c.bad_tcp_checksum += 1,
                    None => c.malformed += 1,
                }
            }
        }
    }
}

fn read_counters(map: &PerCpuArray<MapData, u64>) -> Result<KernelCounters> {
    let sum = |c: Counter| per_cpu_total(map, c as u32);
    Ok(KernelCounters {
        seen: sum(Counter::Seen)?,
        submitted: sum(Counter::Submitted)?,
        ring_full: sum(Counter::RingFull)?,
        copy_error: sum(Counter::CopyError)?,
        fragments: sum(Counter::Fragments)?,
        blocked: sum(Counter::Blocked)?,
        trimmed: sum(Counter::Trimmed)?,
    })
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use
/// memcg and ignore it. Best effort: failure only matters on old kernels.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_requires_every_segment_accounted_and_delivered() {
        let kernel = KernelCounters {
            seen: 12,
            submitted: 7,
            ring_full: 2,
            copy_error: 1,
            fragments: 3,
            blocked: 0,
            trimmed: 2,
        };
        let ok = CaptureCounters {
            kernel,
            reader: ReaderCounters {
                received: 7,
                ..ReaderCounters::default()
            },
            trims: TrimCounters::default(),
        };
        assert!(ok.balanced());
        let lost = CaptureCounters {
            reader: ReaderCounters {
                received: 6,
                ..ReaderCounters::default()
            },
            ..ok
        };
        assert!(!lost.balanced());
        let uncounted = CaptureCounters {
            kernel: KernelCounters { seen: 13, ..kernel },
            ..ok
        };
        assert!(!uncounted.balanced());
    }
}

//! The TLS source: the plaintext of the gateway's own TLS connections,
//! read by uprobes on the OpenSSL it maps (Kong's `8443 ssl` listener,
//! where the tc tap sees only ciphertext), handed on as synthetic
//! [`Segment`]s on each connection's real 4-tuple.
//!
//! - **Which library:** every `libssl.so*` the gateway's processes map
//!   (`discover`; when none can be read, as under the systemd unit, the
//!   ones Kong, OpenResty or the distribution's nginx install), and any
//!   named with `--tls-lib`.
//! - **Which calls:** only the gateway's. The uprobes fire in every
//!   process mapping the library (curl and wrk on the same kernel too), so
//!   the kernel records a call only when its process is named like a
//!   gateway (nginx, openresty) and runs in the sensor's network
//!   namespace, decided at the process's first SSL call and kept per
//!   process: workers forked on a reload and a master started after the
//!   sensor are covered alike. Userspace then keeps only proxy traffic, by
//!   topology: connections accepted on a `--proxy-ports` port or opened by
//!   the gateway ([`connections`]); a client's connection never qualifies
//!   (its local port is not a proxy port), so the two tests back each other.
//! - **Which connection:** the descriptor `SSL_set_fd` gives at the
//!   connection's start ties the `SSL*` to its socket's 4-tuple, read at
//!   offsets taken from the kernel's BTF (`offsets`). A connection older
//!   than the tap is tied by the socket send or receive one of its calls
//!   runs (the `sock_send_length` / `sock_recv_length` tracepoints,
//!   attached only while such a connection waits: `binding`).
//! - **Apart from the tc tap:** the flow table keys TLS segments apart from
//!   packet segments, so ciphertext of the same 4-tuple (`--all-ports`)
//!   never mixes with the plaintext.
//!
//! Like the live source it knows nothing of what consumes its segments;
//! its counters are [`TlsCounters`].

mod attach;
mod binding;
pub mod call_site;
pub mod connections;
mod discover;
mod offsets;
pub mod record;

use std::{os::unix::fs::MetadataExt as _, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
};
use sensor_ebpf::tls::{
    FD_OFFSETS_GLOBAL, GATEWAY_NAMES, GATEWAY_NETNS_GLOBAL, NETNS_OFFSETS_GLOBAL, PROCESSES_MAP,
    SOCK_OFFSETS_GLOBAL, TLS_CAPTURE_LEN_GLOBAL, TLS_COUNTERS_MAP, TLS_RECORDS_MAP,
    TLS_WAKEUP_BYTES_GLOBAL, TlsCounter,
};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::{info, warn};

use binding::SockBinding;
pub use connections::ChunkCounters;
use connections::Connections;
use discover::Library;
use record::Event;

use super::{Segment, kernel_map, live::Clock, per_cpu_total};
use crate::choice::Choice;

/// The kernel object built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-tls"));

/// The kernel wakes the reader when 1/WAKEUP_FRACTION of the ring is full.
const WAKEUP_FRACTION: u32 = 16;

/// Whether to tap TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// When a gateway mapping libssl is found; otherwise (or when the tap
    /// cannot load) say why and capture without it.
    Auto,
    /// Always; not being able to is an error.
    On,
    /// Never.
    Off,
}

impl Choice for TlsMode {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("auto", Self::Auto), ("on", Self::On), ("off", Self::Off)];
}

/// Everything the TLS source needs to start.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Whether to.
    pub mode: TlsMode,
    /// Libraries to probe besides those the gateway maps (`--tls-lib`).
    pub libraries: Vec<PathBuf>,
    /// Plaintext bytes copied per call, 1..=`sensor_ebpf::MAX_CAPTURE_LEN`.
    pub capture_len: u32,
    /// Ring buffer size in bytes: a power of two and a multiple of the page size.
    pub ring_bytes: u32,
    /// Kong's proxy listener ports: connections accepted on them count.
    pub proxy_ports: Vec<u16>,
}

/// The kernel side's counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsKernelCounters {
    /// SSL calls of the gateway that moved data.
    pub calls: u64,
    /// Their records submitted.
    pub submitted: u64,
    /// Their records lost to a full ring buffer.
    pub ring_full: u64,
    /// Submitted without bytes: the plaintext could not be copied.
    pub copy_error: u64,
    /// Socket and end records submitted.
    pub events: u64,
    /// Those lost to a full ring buffer.
    pub events_lost: u64,
}

/// The reader's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsReaderCounters {
    /// Call records read.
    pub calls: u64,
    /// Socket and end records read.
    pub events: u64,
    /// Records that failed to decode.
    pub malformed: u64,
    /// What became of the calls' chunks.
    #[serde(flatten)]
    pub chunks: ChunkCounters,
}

/// The TLS source's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsCounters {
    /// Kernel side.
    pub kernel: TlsKernelCounters,
    /// Reader side.
    pub reader: TlsReaderCounters,
    /// The libraries probed.
    pub libraries: Vec<String>,
    /// Processes the kernel found to be the gateway's (those still running
    /// that made an SSL call since the tap attached).
    pub processes: u64,
    /// Times the socket tracepoints were attached, for connections older
    /// than the tap (see `binding`).
    pub socket_tracepoint_attaches: u64,
}

impl TlsCounters {
    /// At the end of a run: every call was recorded or counted lost, every
    /// record read, and every chunk delivered or counted dropped.
    pub fn balanced(&self) -> bool {
        let (k, r, c) = (&self.kernel, &self.reader, &self.reader.chunks);
        k.calls == k.submitted + k.ring_full
            && k.submitted + k.events == r.calls + r.events + r.malformed
            && r.calls == c.delivered + c.unbound + c.other_port
    }
}

/// A running TLS tap. Dropping it detaches every program.
pub struct TlsCapture {
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    processes: HashMap<MapData, u32, u8>,
    libraries: Vec<String>,
    reader: TlsReaderCounters,
    connections: Connections,
    binding: SockBinding,
    clock: Clock,
}

impl TlsCapture {
    /// Finds the gateway, loads and attaches the tap. `None` when `mode`
    /// is off, or auto and the tap does not apply or cannot load (logged).
    /// Must be called inside a tokio runtime, with `CAP_SYS_ADMIN` (uprobes)
    /// and, to read which libssl the gateway maps rather than probe the
    /// ones gateways install, access to its `/proc/PID/maps`
    /// (`CAP_SYS_PTRACE`, or its user).
    ///
    /// # Errors
    /// With `on`: why the tap cannot run. Nothing stays attached.
    pub fn start(opts: &TlsOptions) -> Result<Option<Self>> {
        let started = match opts.mode {
            TlsMode::Off => return Ok(None),
            _ => Self::try_start(opts),
        };
        match (started, opts.mode) {
            (Ok(tap), _) => Ok(Some(tap)),
            (Err(e), TlsMode::On) => Err(e.context("--tls on")),
            (Err(e), _) => {
                warn!(reason = %format!("{e:#}"), "TLS tap off (--tls auto)");
                Ok(None)
            }
        }
    }

    fn try_start(opts: &TlsOptions) -> Result<Self> {
        // perf_uprobe_event_init: `capable(CAP_SYS_ADMIN)` again since Linux
        // 6.16 and the stable kernels of July 2025 (commit ba677dbe77af,
        // "perf: Revert to requiring CAP_SYS_ADMIN for uprobes": a uprobe
        // placed mid-instruction corrupts the process it is in).
        let effective = caps::read(None, caps::CapSet::Effective)?;
        if !effective.contains(&caps::Capability::CAP_SYS_ADMIN) {
            bail!(
                "creating uprobes needs CAP_SYS_ADMIN (Linux 6.16 and later, and stable kernels since July 2025)"
            );
        }
        let offsets = offsets::kernel_offsets().map_err(anyhow::Error::msg)?;
        let netns = std::fs::metadata("/proc/self/ns/net")
            .context("reading this process's network namespace")?
            .ino() as u32;
        let libraries = libraries(&opts.libraries)?;
        let wakeup_bytes = u64::from(opts.ring_bytes / WAKEUP_FRACTION);
        let mut ebpf = EbpfLoader::new()
            .override_global(TLS_CAPTURE_LEN_GLOBAL, &opts.capture_len, true)
            .override_global(TLS_WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .override_global(SOCK_OFFSETS_GLOBAL, &offsets.sock, true)
            .override_global(FD_OFFSETS_GLOBAL, &offsets.fd, true)
            .override_global(NETNS_OFFSETS_GLOBAL, &offsets.netns, true)
            .override_global(GATEWAY_NETNS_GLOBAL, &netns, true)
            .map_max_entries(TLS_RECORDS_MAP, opts.ring_bytes)
            .load(OBJECT)
            .context("loading the TLS tap's eBPF object")?;
        attach::attach(&mut ebpf, &libraries)?;
        let processes = kernel_map(&mut ebpf, PROCESSES_MAP)?;
        let ring: RingBuf<MapData> = kernel_map(&mut ebpf, TLS_RECORDS_MAP)?;
        // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
        let counters = kernel_map(&mut ebpf, TLS_COUNTERS_MAP)?;
        let libraries: Vec<String> = libraries.into_iter().map(|l| l.name).collect();
        info!(?libraries, "TLS tap attached");
        Ok(Self {
            ebpf,
            ring,
            counters,
            processes,
            libraries,
            reader: TlsReaderCounters::default(),
            connections: Connections::new(opts.proxy_ports.clone()),
            binding: SockBinding::default(),
            clock: Clock::now(),
        })
    }

    /// Completes when the kernel woke the reader (enough records wait).
    ///
    /// # Errors
    /// Polling the ring buffer's fd failed.
    pub async fn readable(&mut self) -> std::io::Result<()> {
        self.ring.readable_mut().await?.clear_ready();
        Ok(())
    }

    /// Hands the segments of up to `limit` waiting records to
    /// `on_segment`, in order, drops chunks that waited too long for
    /// their socket, and attaches or detaches the socket tracepoints
    /// (`binding`). Returns the records read (fewer than `limit`: the
    /// ring was emptied).
    pub fn drain(&mut self, limit: usize, on_segment: &mut dyn FnMut(&Segment<'_>)) -> usize {
        let Self {
            ebpf,
            ring,
            reader,
            connections,
            binding,
            clock,
            ..
        } = self;
        let read = read(
            ring.get_mut(),
            clock,
            reader,
            connections,
            limit,
            on_segment,
        );
        let now_ns = clock.now_ns();
        connections.tick(now_ns, on_segment);
        if let Err(e) = binding.update(ebpf, connections.unbound_ns(), now_ns) {
            warn!(error = %format!("{e:#}"), "socket tracepoints");
        }
        read
    }

    /// The counters so far.
    ///
    /// # Errors
    /// The kernel counters cannot be read.
    pub fn counters(&self) -> Result<TlsCounters> {
        Ok(TlsCounters {
            kernel: read_counters(&self.counters)?,
            reader: self.reader(),
            libraries: self.libraries.clone(),
            processes: self.gateway_processes(),
            socket_tracepoint_attaches: self.binding.attaches(),
        })
    }

    /// Processes the kernel found to be the gateway's.
    fn gateway_processes(&self) -> u64 {
        let verdicts = self.processes.iter().filter_map(Result::ok);
        verdicts.filter(|&(_, gateway)| gateway == 1).count() as u64
    }

    fn reader(&self) -> TlsReaderCounters {
        TlsReaderCounters {
            chunks: self.connections.counters(),
            ..self.reader
        }
    }

    /// Detaches every program, hands what is left in the ring buffer to
    /// `on_segment` and returns the final counters.
    ///
    /// # Errors
    /// The kernel counters cannot be read.
    pub fn stop(mut self, on_segment: &mut dyn FnMut(&Segment<'_>)) -> Result<TlsCounters> {
        let processes = self.gateway_processes();
        drop(self.ebpf); // detaches and unloads every program
        read(
            self.ring.get_mut(),
            &self.clock,
            &mut self.reader,
            &mut self.connections,
            usize::MAX,
            on_segment,
        );
        self.connections.finish();
        Ok(TlsCounters {
            kernel: read_counters(&self.counters)?,
            reader: TlsReaderCounters {
                chunks: self.connections.counters(),
                ..self.reader
            },
            libraries: self.libraries,
            processes,
            socket_tracepoint_attaches: self.binding.attaches(),
        })
    }
}

/// The libraries to probe: those the gateway's processes map (when none
/// can be read, those gateways install), and those named with `--tls-lib`.
///
/// # Errors
/// `/proc` cannot be read, or there is no library to probe.
fn libraries(named: &[PathBuf]) -> Result<Vec<Library>> {
    let found = discover::gateway().context("scanning /proc for the gateway")?;
    for path in &found.replaced {
        warn!(
            library = path,
            "the gateway runs a libssl deleted on disk (upgraded?): its calls are not seen until it restarts"
        );
    }
    let mut libraries = found.libraries;
    if found.processes == 0 {
        libraries = discover::installed();
        let names: Vec<&str> = libraries.iter().map(|l| l.name.as_str()).collect();
        info!(
            unreadable = found.unreadable,
            libraries = ?names,
            "no gateway process could be read (other users' are hidden without CAP_SYS_PTRACE): probing the libraries gateways install"
        );
    }
    for path in named {
        let name = path.display().to_string();
        if !libraries.iter().any(|l| l.name == name) {
            libraries.push(Library {
                path: path.clone(),
                name,
            });
        }
    }
    if libraries.is_empty() {
        let why = if found.processes == 0 {
            format!(
                "no gateway process ({}) could be read in this network namespace and none is installed where Kong, OpenResty or the distribution put it",
                GATEWAY_NAMES.join(", ")
            )
        } else {
            "the gateway maps no libssl (linked statically?)".to_string()
        };
        bail!("{why}: name the library with --tls-lib");
    }
    Ok(libraries)
}

/// Reads every waiting record into `connections`.
fn read(
    ring: &mut RingBuf<MapData>,
    clock: &Clock,
    reader: &mut TlsReaderCounters,
    connections: &mut Connections,
    limit: usize,
    on_segment: &mut dyn FnMut(&Segment<'_>),
) -> usize {
    let mut read = 0;
    while read < limit {
        let Some(item) = ring.next() else { break };
        read += 1;
        match record::decode(&item, clock) {
            Ok(r) => {
                match r.event {
                    Event::Data(_) => reader.calls += 1,
                    Event::Bind | Event::Close => reader.events += 1,
                }
                connections.record(&r, on_segment);
            }
            Err(e) => {
                reader.malformed += 1;
                warn!(error = %e, "malformed TLS record");
            }
        }
    }
    read
}

fn read_counters(map: &PerCpuArray<MapData, u64>) -> Result<TlsKernelCounters> {
    let sum = |c: TlsCounter| per_cpu_total(map, c as u32);
    Ok(TlsKernelCounters {
        calls: sum(TlsCounter::Calls)?,
        submitted: sum(TlsCounter::Submitted)?,
        ring_full: sum(TlsCounter::RingFull)?,
        copy_error: sum(TlsCounter::CopyError)?,
        events: sum(TlsCounter::Events)?,
        events_lost: sum(TlsCounter::EventsLost)?,
    })
}

//! The live source: loads the kernel programs embedded in this binary,
//! attaches them, and feeds ring-buffer records to the pipeline.
//!
//! Shutdown order matters for the loss accounting: programs are detached
//! first, then the ring buffer is drained, then the kernel counters are read,
//! so `submitted == received` holds exactly at the end of a run.

use std::{future::Future, time::Duration};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
};
use aya_log::EbpfLogger;
use sensor_ebpf::{
    ALL_PORTS_GLOBAL, CAPTURE_LEN_GLOBAL, COUNTERS_MAP, Counter, PORTS_MAP, RECORDS_MAP,
    WAKEUP_BYTES_GLOBAL,
};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::{info, warn};

use super::{AttachPlan, Clock, attach, preflight, record};
use crate::{pipeline::Pipeline, sink::metrics};

/// The kernel object built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// The kernel wakes the reader when 1/WAKEUP_FRACTION of the ring is full...
const WAKEUP_FRACTION: u32 = 16;
/// ...and the reader polls this often for records submitted without a wakeup.
/// It bounds the delay from packet to pipeline when traffic is light.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How often counters and gauges are published as metrics.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

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
    /// Ring buffer size in bytes: a power of two and a multiple of the page size.
    pub ring_bytes: u32,
    /// Interval between counter log lines; `None` for no periodic log.
    pub stats_interval: Option<Duration>,
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
}

/// Userspace counters of the live source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReaderCounters {
    /// Records read from the ring buffer.
    pub received: u64,
    /// Records that failed to decode (see [`record::RecordError`]).
    pub malformed: u64,
}

/// Counters at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaptureSummary {
    /// Kernel side.
    pub kernel: KernelCounters,
    /// Reader side.
    pub reader: ReaderCounters,
}

impl CaptureSummary {
    /// Every segment seen was delivered or counted as dropped, and every
    /// submitted record reached the reader.
    pub fn balanced(&self) -> bool {
        let k = &self.kernel;
        k.seen == k.submitted + k.ring_full + k.copy_error && k.submitted == self.reader.received
    }
}

/// A running live capture. Dropping it detaches every program.
pub struct LiveCapture {
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    logger: Option<AsyncFd<KernelLog>>,
    reader: ReaderCounters,
    clock: Clock,
    stats_interval: Option<Duration>,
}

impl LiveCapture {
    /// Checks interfaces and capabilities, loads and attaches the programs.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A [`preflight::PreflightError`], the verifier's log if the kernel
    /// refuses a program, or the failing attach. Nothing stays attached.
    pub fn start(opts: &LiveOptions) -> Result<Self> {
        preflight::interfaces(&opts.plan.interfaces)?;
        preflight::capabilities()?;
        raise_memlock_limit();
        let all_ports = u8::from(opts.ports == Ports::All);
        let wakeup_bytes = u64::from(opts.ring_bytes / WAKEUP_FRACTION);
        let mut ebpf = EbpfLoader::new()
            .override_global(CAPTURE_LEN_GLOBAL, &opts.capture_len, true)
            .override_global(ALL_PORTS_GLOBAL, &all_ports, true)
            .override_global(WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .map_max_entries(RECORDS_MAP, opts.ring_bytes)
            .load(OBJECT)
            .context("loading the eBPF object (maps and BTF)")?;
        if let Ports::List(ports) = &opts.ports {
            let mut filter = Array::<_, u8>::try_from(ebpf.map_mut(PORTS_MAP).context(PORTS_MAP)?)?;
            for &port in ports {
                filter.set(u32::from(port), 1, 0)?;
            }
        }
        let logger = match EbpfLogger::init(&mut ebpf) {
            // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd lives.
            Ok(l) => Some(unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }?),
            Err(e) => {
                warn!(error = %e, "kernel log forwarding unavailable");
                None
            }
        };
        let ring = RingBuf::try_from(ebpf.take_map(RECORDS_MAP).context(RECORDS_MAP)?)?;
        // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
        let counters = PerCpuArray::try_from(ebpf.take_map(COUNTERS_MAP).context(COUNTERS_MAP)?)?;
        attach::attach(&mut ebpf, &opts.plan)?;
        Ok(Self {
            ebpf,
            ring,
            counters,
            logger,
            reader: ReaderCounters::default(),
            clock: Clock::now(),
            stats_interval: opts.stats_interval,
        })
    }

    /// Feeds records to `pipeline` until `shutdown` completes, then detaches,
    /// drains what is left and returns the final counters. On SIGHUP it
    /// calls `reload` (new settings, reopened files) between records.
    ///
    /// # Errors
    /// Reading the ring buffer or the counters failed.
    pub async fn run(
        mut self,
        pipeline: &mut Pipeline,
        shutdown: impl Future<Output = ()>,
        mut reload: impl FnMut(&mut Pipeline),
    ) -> Result<CaptureSummary> {
        tokio::pin!(shutdown);
        // Without a stats interval the ticker exists but its branch is disabled.
        let period = self.stats_interval.unwrap_or(Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let mut publish = tokio::time::interval(PUBLISH_INTERVAL);
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    // Clear first: records arriving during the drain re-arm readiness.
                    guard?.clear_ready();
                    self.drain(pipeline);
                }
                _ = poll.tick() => self.drain(pipeline),
                _ = hangup.recv() => {
                    // What arrived before the signal is judged by the old settings.
                    self.drain(pipeline);
                    reload(pipeline);
                }
                _ = publish.tick() => {
                    metrics::capture(&read_counters(&self.counters)?, &self.reader);
                    pipeline.publish_metrics();
                    // The capture loop is alive: feed systemd's watchdog (a
                    // no-op outside systemd).
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                guard = readable(&mut self.logger) => {
                    let mut guard = guard?;
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                _ = ticker.tick(), if self.stats_interval.is_some() => {
                    let k = read_counters(&self.counters)?;
                    info!(seen = k.seen, submitted = k.submitted, ring_full = k.ring_full,
                          copy_error = k.copy_error, received = self.reader.received,
                          malformed = self.reader.malformed, "capture counters");
                }
                () = &mut shutdown => break,
            }
        }
        let Self {
            ebpf,
            mut ring,
            counters,
            logger,
            mut reader,
            clock,
            ..
        } = self;
        drop(ebpf); // detaches and unloads every program; maps we hold stay alive
        drop(logger);
        drain(ring.get_mut(), &clock, &mut reader, pipeline);
        let kernel = read_counters(&counters)?;
        Ok(CaptureSummary { kernel, reader })
    }

    fn drain(&mut self, pipeline: &mut Pipeline) {
        drain(self.ring.get_mut(), &self.clock, &mut self.reader, pipeline);
        pipeline.tick(self.clock.now_ns());
        pipeline.flush();
    }
}

async fn readable(
    logger: &mut Option<AsyncFd<KernelLog>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, KernelLog>> {
    match logger {
        Some(fd) => fd.readable_mut().await,
        None => std::future::pending().await,
    }
}

fn drain(
    ring: &mut RingBuf<MapData>,
    clock: &Clock,
    reader: &mut ReaderCounters,
    pipeline: &mut Pipeline,
) {
    while let Some(item) = ring.next() {
        reader.received += 1;
        match record::decode(&item, clock) {
            Ok(segment) => pipeline.segment(&segment),
            Err(e) => {
                reader.malformed += 1;
                warn!(error = %e, "malformed ring-buffer record");
            }
        }
    }
}

fn read_counters(map: &PerCpuArray<MapData, u64>) -> Result<KernelCounters> {
    let sum = |c: Counter| -> Result<u64> { Ok(map.get(&(c as u32), 0)?.iter().sum()) };
    Ok(KernelCounters {
        seen: sum(Counter::Seen)?,
        submitted: sum(Counter::Submitted)?,
        ring_full: sum(Counter::RingFull)?,
        copy_error: sum(Counter::CopyError)?,
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
            seen: 10,
            submitted: 7,
            ring_full: 2,
            copy_error: 1,
        };
        let ok = CaptureSummary {
            kernel,
            reader: ReaderCounters {
                received: 7,
                malformed: 0,
            },
        };
        assert!(ok.balanced());
        let lost = CaptureSummary {
            reader: ReaderCounters {
                received: 6,
                malformed: 0,
            },
            ..ok
        };
        assert!(!lost.balanced());
        let uncounted = CaptureSummary {
            kernel: KernelCounters { seen: 11, ..kernel },
            ..ok
        };
        assert!(!uncounted.balanced());
    }
}

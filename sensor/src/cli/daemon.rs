//! The daemon's event loop: the sources (the packet tap and, when on, the
//! TLS tap), the pipeline and the exporter, driven by a poll timer (every
//! 1 to 10 ms, by the rate records arrive at: [`Cadence`]), the TLS ring's
//! wakeups, signals and the metrics and stats timers.

use std::{future::Future, time::Duration};

use anyhow::Result;
use sensor::{
    block::SharedBlocker,
    capture::{
        live::{CaptureCounters, LiveCapture},
        tls::{TlsCapture, TlsCounters},
    },
    exporter,
    pipeline::Pipeline,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, interval, interval_at, sleep},
};
use tracing::info;

use super::cadence::Cadence;

/// Records read from one ring buffer before the other's turn.
const BATCH: usize = 1024;
/// How often counters and gauges are published as metrics (and systemd's
/// watchdog is fed).
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// What the loop does besides capture.
pub struct Daemon {
    /// Interval between counter log lines; `None` for none.
    pub stats_interval: Option<Duration>,
    /// Whether `/metrics` is served (counters are published to it).
    pub metrics: bool,
    /// The block policy at work, when `--block` is on or dry-run.
    pub blocker: Option<SharedBlocker>,
}

/// The daemon's sources.
pub struct Sources {
    /// The packet tap (tc or XDP).
    pub live: LiveCapture,
    /// The TLS tap, when on.
    pub tls: Option<TlsCapture>,
}

/// The sources' final counters.
pub struct Stopped {
    /// The packet tap's.
    pub live: CaptureCounters,
    /// The TLS tap's, when on.
    pub tls: Option<TlsCounters>,
}

impl Daemon {
    /// Feeds the sources' segments to `pipeline` until `shutdown`
    /// completes, then stops them (draining what is left into the
    /// pipeline) and returns their final counters. On SIGHUP it drains,
    /// then calls `reload` (new settings, reopened files).
    ///
    /// # Errors
    /// Reading a ring buffer or the kernel counters failed.
    pub async fn run(
        &self,
        mut sources: Sources,
        pipeline: &mut Pipeline,
        shutdown: impl Future<Output = ()>,
        mut reload: impl FnMut(&mut Pipeline),
    ) -> Result<Stopped> {
        tokio::pin!(shutdown);
        // Without a stats interval the ticker exists but its branch is disabled.
        let period = self.stats_interval.unwrap_or(Duration::from_secs(3600));
        let mut stats = interval_at(tokio::time::Instant::now() + period, period);
        let mut cadence = Cadence::default();
        let poll = sleep(cadence.interval());
        tokio::pin!(poll);
        let mut publish = interval(PUBLISH_INTERVAL);
        let mut hangup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                ready = tls_readable(&mut sources.tls) => {
                    ready?;
                    sources.feed(pipeline);
                }
                () = &mut poll => {
                    let at = poll.deadline() + cadence.next(sources.feed(pipeline));
                    poll.as_mut().reset(at.max(Instant::now()));
                }
                _ = hangup.recv() => {
                    // What arrived before the signal is judged by the old settings.
                    sources.feed(pipeline);
                    reload(pipeline);
                }
                _ = publish.tick() => {
                    if let Some(b) = &self.blocker {
                        // Expiry, the kernel's liveness deadline, records.
                        let events = b.with(|b| b.tick());
                        pipeline.block_events(&events);
                        if self.metrics {
                            exporter::blocks(&b.with(|b| b.counters()));
                        }
                    }
                    if self.metrics {
                        exporter::capture(&sources.live.counters()?);
                        if let Some(tls) = &sources.tls {
                            exporter::tls(&tls.counters()?);
                        }
                        exporter::pipeline(&pipeline.counters(), pipeline.snapshot().as_ref());
                    }
                    // The loop is alive: feed systemd's watchdog (a no-op
                    // outside systemd).
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                _ = stats.tick(), if self.stats_interval.is_some() => sources.log_counters()?,
                () = &mut shutdown => break,
            }
        }
        if let Some(b) = &self.blocker {
            // Nothing outlives the sensor: the maps are emptied before the
            // programs are detached.
            let events = b.with(|b| b.stop());
            pipeline.block_events(&events);
        }
        let Sources { live, tls } = sources;
        let live = live.stop(&mut |s| pipeline.segment(s))?;
        let tls = tls
            .map(|t| t.stop(&mut |s| pipeline.segment(s)))
            .transpose()?;
        Ok(Stopped { live, tls })
    }
}

/// Completes when the TLS tap's ring woke its reader; never without a tap.
async fn tls_readable(tls: &mut Option<TlsCapture>) -> std::io::Result<()> {
    match tls {
        Some(tap) => tap.readable().await,
        None => std::future::pending().await,
    }
}

impl Sources {
    /// Drains the ring buffers into the pipeline, a batch from each in
    /// turn, so neither source's event time runs ahead of the other's by
    /// more than a batch while both have a backlog (a client leg from the
    /// TLS tap would otherwise give up on an upstream leg still queued in
    /// the packet ring). When both were empty, moves event time on to now
    /// (expiring idle flows and closing windows); while records arrive,
    /// their own times move it, so a backlog is not judged by how late it
    /// is read. Then flushes the sinks. Returns the records read.
    fn feed(&mut self, pipeline: &mut Pipeline) -> usize {
        let mut read = 0;
        loop {
            let live = self.live.drain(BATCH, &mut |s| pipeline.segment(s));
            // Bodies the batch began: the kernel leaves out what follows.
            self.live.trim(&pipeline.take_trims());
            let tls = self
                .tls
                .as_mut()
                .map_or(0, |t| t.drain(BATCH, &mut |s| pipeline.segment(s)));
            read += live + tls;
            if live < BATCH && tls < BATCH {
                break;
            }
        }
        if read == 0 {
            pipeline.tick(self.live.now_ns());
        }
        pipeline.flush();
        read
    }

    /// The counter log line(s).
    fn log_counters(&self) -> Result<()> {
        let c = self.live.counters()?;
        let (k, r) = (c.kernel, c.reader);
        info!(
            seen = k.seen,
            submitted = k.submitted,
            ring_full = k.ring_full,
            copy_error = k.copy_error,
            received = r.received,
            malformed = r.malformed,
            "capture counters"
        );
        if let Some(tls) = &self.tls {
            let t = tls.counters()?;
            let (k, c) = (t.kernel, t.reader.chunks);
            info!(
                calls = k.calls,
                ring_full = k.ring_full,
                copy_error = k.copy_error,
                delivered = c.delivered,
                unbound = c.unbound,
                other_port = c.other_port,
                processes = t.processes,
                "TLS tap counters"
            );
        }
        Ok(())
    }
}

/// Completes on the first SIGINT or SIGTERM.
///
/// # Errors
/// The signal handlers cannot be installed.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT received"),
            _ = terminate.recv() => info!("SIGTERM received"),
        }
    })
}

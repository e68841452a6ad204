//! The daemon's event loop: the live source, the pipeline and the
//! exporter, driven by the ring buffer's wakeups, a poll timer, signals and
//! the metrics and stats timers.

use std::{future::Future, time::Duration};

use anyhow::Result;
use sensor::{
    capture::live::{CaptureCounters, LiveCapture},
    exporter,
    pipeline::Pipeline,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{MissedTickBehavior, interval, interval_at},
};
use tracing::info;

/// The reader polls this often for records submitted without a wakeup.
/// It bounds the delay from packet to pipeline when traffic is light.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How often counters and gauges are published as metrics (and systemd's
/// watchdog is fed).
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// What the loop does besides capture.
pub struct Daemon {
    /// Interval between counter log lines; `None` for none.
    pub stats_interval: Option<Duration>,
    /// Whether `/metrics` is served (counters are published to it).
    pub metrics: bool,
}

impl Daemon {
    /// Feeds `capture`'s segments to `pipeline` until `shutdown` completes,
    /// then stops the capture (draining what is left into the pipeline)
    /// and returns its final counters. On SIGHUP it drains, then calls
    /// `reload` (new settings, reopened files).
    ///
    /// # Errors
    /// Reading the ring buffer or the kernel counters failed.
    pub async fn run(
        &self,
        mut capture: LiveCapture,
        pipeline: &mut Pipeline,
        shutdown: impl Future<Output = ()>,
        mut reload: impl FnMut(&mut Pipeline),
    ) -> Result<CaptureCounters> {
        tokio::pin!(shutdown);
        // Without a stats interval the ticker exists but its branch is disabled.
        let period = self.stats_interval.unwrap_or(Duration::from_secs(3600));
        let mut stats = interval_at(tokio::time::Instant::now() + period, period);
        let mut poll = interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut publish = interval(PUBLISH_INTERVAL);
        let mut hangup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                ready = capture.readable() => {
                    ready?;
                    feed(&mut capture, pipeline);
                }
                _ = poll.tick() => feed(&mut capture, pipeline),
                _ = hangup.recv() => {
                    // What arrived before the signal is judged by the old settings.
                    feed(&mut capture, pipeline);
                    reload(pipeline);
                }
                _ = publish.tick() => {
                    if self.metrics {
                        exporter::capture(&capture.counters()?);
                        exporter::pipeline(&pipeline.counters(), pipeline.snapshot().as_ref());
                    }
                    // The loop is alive: feed systemd's watchdog (a no-op
                    // outside systemd).
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                _ = stats.tick(), if self.stats_interval.is_some() => {
                    let c = capture.counters()?;
                    let (k, r) = (c.kernel, c.reader);
                    info!(seen = k.seen, submitted = k.submitted, ring_full = k.ring_full,
                          copy_error = k.copy_error, received = r.received,
                          malformed = r.malformed, "capture counters");
                }
                () = &mut shutdown => break,
            }
        }
        capture.stop(&mut |s| pipeline.segment(s))
    }
}

/// Drains the ring buffer into the pipeline, moves event time on to now
/// (expiring idle flows and closing windows when traffic is idle) and
/// flushes the sinks.
fn feed(capture: &mut LiveCapture, pipeline: &mut Pipeline) {
    capture.drain(&mut |s| pipeline.segment(s));
    pipeline.tick(capture.now_ns());
    pipeline.flush();
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

//! A target's sender thread: takes transitions from its bounded queue into
//! its [`Episodes`], posts what is due, re-sends the firing episodes every
//! re-send period and retries failures with a growing pause, so an
//! Alertmanager that is down only delays delivery and never the pipeline.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    client::{Client, Fault},
    episodes::{Episodes, Evicted},
    postable::Transition,
};

/// What the sink puts in a target's queue.
#[derive(Debug)]
pub enum Msg {
    /// An alert transition.
    Transition(Arc<Transition>),
    /// The episodes of the sink this one replaced (SIGHUP), to go on with.
    Adopt(Episodes),
}

/// Counters of one target, shared with its thread; every alert
/// transition ends in one of the first five (see the sink's module
/// documentation).
#[derive(Debug, Default)]
pub struct Tally {
    /// Transitions Alertmanager accepted.
    pub sent: AtomicU64,
    /// Transitions lost to a full queue or a full episode set.
    pub overflow: AtomicU64,
    /// Transitions Alertmanager rejected as invalid.
    pub dropped: AtomicU64,
    /// Transitions still undelivered at stop while Alertmanager refused us.
    pub refused: AtomicU64,
    /// Transitions still undelivered at stop while Alertmanager was down.
    pub undelivered: AtomicU64,
    /// Firing episodes no longer re-sent to make room.
    pub forgotten: AtomicU64,
    /// Set when the sink hands its episodes to its successor: the thread
    /// returns them at once, counting nothing.
    pub handing_over: AtomicBool,
}

impl Tally {
    fn evicted(&self, e: Evicted) {
        self.forgotten.fetch_add(e.forgotten, Ordering::Relaxed);
        self.overflow.fetch_add(e.overflow, Ordering::Relaxed);
    }
}

/// A target's timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How often firing episodes are sent again; each send is valid for
    /// four times this.
    pub resend: Duration,
    /// How long a stopping sink waits for an Alertmanager that is down.
    pub drain: Duration,
}

/// Most alerts in one request.
const BATCH: usize = 100;
/// First pause after a failure; it doubles up to the re-send period
/// (at most 30 s).
const RETRY: Duration = Duration::from_millis(500);

/// Now, ns since the epoch (the wall clock `endsAt` counts from).
fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The thread's state besides its episodes.
struct Sender {
    target: String,
    client: Client,
    tally: Arc<Tally>,
    timing: Timing,
    /// The fault of the last failure, until a request succeeds.
    failing: Option<Fault>,
    /// Whether the episode set has been full (warned once).
    full: bool,
}

impl Sender {
    fn take(&mut self, episodes: &mut Episodes, msg: Msg) {
        let cost = match msg {
            Msg::Transition(t) => episodes.push(&t),
            Msg::Adopt(older) => episodes.adopt(older),
        };
        if cost != Evicted::default() && !self.full {
            self.full = true;
            tracing::warn!(
                target = %self.target,
                "alertmanager: episode set full; the least recently changed are no longer re-sent"
            );
        }
        self.tally.evicted(cost);
    }

    /// Posts everything due; on a failure that is not the request's own
    /// fault, returns it (the rest stays due).
    fn send_due(&mut self, episodes: &mut Episodes) -> Result<(), Fault> {
        let valid = u64::try_from(self.timing.resend.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_mul(4);
        while let Some(batch) = episodes.batch(BATCH, wall_ns(), valid) {
            match self.client.post(&batch.body) {
                Ok(()) => {
                    let n = episodes.delivered(&batch);
                    self.tally.sent.fetch_add(n, Ordering::Relaxed);
                    if self.failing.take().is_some() {
                        tracing::info!(target = %self.target, "alertmanager: delivering again");
                    }
                }
                Err(f) if f.fault == Fault::Rejected => {
                    let n = episodes.rejected(&batch);
                    self.tally.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(
                        target = %self.target, alerts = batch.ids.len(), reason = %f.reason,
                        "alertmanager rejected alerts; dropped"
                    );
                }
                Err(f) => {
                    if self.failing != Some(f.fault) {
                        let what = match f.fault {
                            Fault::Refused => "alertmanager refused the sensor",
                            _ => "alertmanager unreachable",
                        };
                        tracing::warn!(
                            target = %self.target, reason = %f.reason,
                            "{what}; alerts wait and are retried"
                        );
                    }
                    self.failing = Some(f.fault);
                    return Err(f.fault);
                }
            }
        }
        Ok(())
    }

    /// The queue is closed: hands the episodes over at once, or delivers
    /// what is undelivered for at most the drain time and counts the rest.
    fn finish(&mut self, mut episodes: Episodes) -> Episodes {
        if self.tally.handing_over.load(Ordering::Relaxed) {
            return episodes;
        }
        let end = Instant::now() + self.timing.drain;
        while episodes.pending() > 0 {
            if self.send_due(&mut episodes).is_ok() {
                continue;
            }
            if Instant::now() + RETRY >= end {
                break;
            }
            std::thread::sleep(RETRY);
        }
        let counter = if self.failing == Some(Fault::Refused) {
            &self.tally.refused
        } else {
            &self.tally.undelivered
        };
        counter.fetch_add(episodes.pending(), Ordering::Relaxed);
        episodes
    }
}

/// The sender thread of `target`: runs until `queue`'s sender is dropped,
/// then returns its episodes (see [`Tally::handing_over`]).
pub fn run(
    target: String,
    client: Client,
    queue: Receiver<Msg>,
    tally: Arc<Tally>,
    timing: Timing,
    mut episodes: Episodes,
) -> Episodes {
    let mut s = Sender {
        target,
        client,
        tally,
        timing,
        failing: None,
        full: false,
    };
    let resend = timing.resend.max(Duration::from_millis(100));
    let max_pause = resend.min(Duration::from_secs(30)).max(RETRY);
    let mut next_resend = Instant::now() + resend;
    let (mut retry_at, mut pause): (Option<Instant>, Duration) = (None, RETRY);
    loop {
        let now = Instant::now();
        let wake = match retry_at {
            Some(at) => at.min(next_resend),
            None if episodes.is_due() => now,
            None => next_resend,
        };
        match queue.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(msg) => {
                s.take(&mut episodes, msg);
                for msg in queue.try_iter() {
                    s.take(&mut episodes, msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return s.finish(episodes),
        }
        let now = Instant::now();
        if now >= next_resend {
            episodes.resend();
            next_resend = now + resend;
        }
        if retry_at.is_some_and(|at| now < at) {
            continue;
        }
        match s.send_due(&mut episodes) {
            Ok(()) => (retry_at, pause) = (None, RETRY),
            Err(_) => {
                retry_at = Some(now + pause);
                pause = (pause * 2).min(max_pause);
            }
        }
    }
}

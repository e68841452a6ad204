//! The Alertmanager sink: alert transitions pushed to one or more
//! Alertmanagers over their API v2 (`POST /api/v2/alerts`, a JSON array of
//! `postableAlert`s; [`postable`] has the labels and annotations).
//!
//! Firing episodes are sent again every re-send period with `endsAt` four
//! periods ahead, a resolved one once with `endsAt` = its resolution time,
//! as Prometheus' notifier does ([`episodes`] has the rule): Alertmanager
//! keeps alerts in memory only, so a restarted one gets back what is
//! firing, and one that stops hearing from the sensor ends its alerts
//! itself.
//!
//! Each target has a sender thread ([`sender`]) and a bounded queue, so an
//! Alertmanager that is down never slows the pipeline; what fails is
//! retried with a growing pause (0.5 s doubling up to the re-send period,
//! at most 30 s) and transitions queued meanwhile, resolutions included,
//! are delivered when it is back. TLS (rustls, ring; a CA file or the
//! system's roots; an optional client certificate) and basic auth (a
//! password file) as Prometheus' `alertmanager_config` has them. A SIGHUP
//! hands the episodes of each target to the sink that replaces this one
//! ([`Sink::take_over`]), so re-sends go on.
//!
//! Every transition ends in one count of each target ([`Delivery`]):
//! - `sent`: Alertmanager accepted it (the re-sends are not counted);
//! - `overflow`: the queue was full, or its episode was pushed out of a
//!   full set before it was delivered;
//! - `dropped`: Alertmanager rejected it as invalid (400 and other 4xx but
//!   the next); never retried;
//! - `refused`: still undelivered at stop while Alertmanager refused the
//!   sensor (TLS failed, 401, 403, 404, a redirect);
//! - `undelivered`: still undelivered at stop while Alertmanager was down.
//!
//! Besides, `forgotten` counts firing episodes no longer re-sent to make
//! room in a full set (Alertmanager ends them at their last `endsAt`).

mod client;
pub mod episodes;
pub mod postable;
pub mod sender;
mod target;
#[cfg(test)]
mod tests;

use std::{
    any::Any,
    io,
    path::PathBuf,
    sync::{
        Arc,
        atomic::Ordering,
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::Duration,
};

pub use client::TlsFiles;
use client::{Client, Secret, basic_auth};
use episodes::Episodes;
use postable::Transition;
use sender::{Msg, Tally, Timing};
pub use target::Target;
use ureq::tls::{RootCerts, TlsConfig};

use super::interface::{Delivery, Sink};
use crate::detect::Alert;

/// The sink's settings.
#[derive(Clone, Debug)]
pub struct AlertmanagerConfig {
    /// Where alerts go; each gets every transition.
    pub targets: Vec<Target>,
    /// Trust and client certificate for `https://` targets.
    pub tls: TlsFiles,
    /// Basic auth: the user and the file holding the password.
    pub auth: Option<(String, PathBuf)>,
    /// The sensor's name: the `node` label.
    pub node: String,
    /// Re-send period of firing episodes.
    pub resend: Duration,
    /// Transitions queued per target.
    pub queue: usize,
    /// Episodes kept per target.
    pub max_active: usize,
    /// How long a stopping sensor waits for an Alertmanager that is down.
    pub drain: Duration,
}

/// One target: its queue, counters and sender thread.
struct Destination {
    target: Target,
    queue: Option<SyncSender<Msg>>,
    tally: Arc<Tally>,
    thread: Option<JoinHandle<Episodes>>,
}

/// Pushes alert transitions to every target.
pub struct Alertmanager {
    node: String,
    targets: Vec<Destination>,
}

impl Alertmanager {
    /// Reads the CA, client certificate and password files and starts one
    /// sender thread per target. Nothing is connected yet: an Alertmanager
    /// that is down only delays delivery.
    ///
    /// # Errors
    /// A file cannot be read or holds nothing usable; a thread cannot be
    /// spawned.
    pub fn start(config: &AlertmanagerConfig) -> io::Result<Self> {
        let tls = if config.targets.iter().any(Target::is_tls) {
            config.tls.config()?
        } else {
            // Never used: plain http, and no redirect is followed.
            TlsConfig::builder()
                .root_certs(RootCerts::from(Vec::new()))
                .build()
        };
        let auth: Option<Secret> = match &config.auth {
            Some((user, file)) => Some(basic_auth(user, file)?),
            None => None,
        };
        let mut targets: Vec<Destination> = Vec::new();
        for target in &config.targets {
            if targets.iter().any(|t| t.target == *target) {
                continue;
            }
            if auth.is_some() && !target.is_tls() {
                tracing::warn!(%target, "alertmanager: basic auth over plain http");
            }
            let (tx, rx) = sync_channel(config.queue.max(1));
            let tally = Arc::new(Tally::default());
            let client = Client::new(target, tls.clone(), auth.clone());
            let timing = Timing {
                resend: config.resend,
                drain: config.drain,
            };
            let (name, t, episodes) = (
                target.to_string(),
                Arc::clone(&tally),
                Episodes::new(config.max_active),
            );
            let thread = std::thread::Builder::new()
                .name(format!("alertmanager {target}"))
                .spawn(move || sender::run(name, client, rx, t, timing, episodes))?;
            targets.push(Destination {
                target: target.clone(),
                queue: Some(tx),
                tally,
                thread: Some(thread),
            });
        }
        Ok(Self {
            node: config.node.clone(),
            targets,
        })
    }

    /// Queues `alert`'s transition for every target; never blocks.
    fn send(&self, alert: &Alert) {
        let t = Arc::new(Transition::new(alert, &self.node));
        for s in &self.targets {
            let Some(queue) = &s.queue else { continue };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                queue.try_send(Msg::Transition(Arc::clone(&t)))
            {
                s.tally.overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops `target`'s thread at once and returns its episodes, counting
    /// nothing: they go on in the sink that replaces this one.
    fn hand_over(&mut self, target: &Target) -> Option<Episodes> {
        let s = self.targets.iter_mut().find(|s| s.target == *target)?;
        s.tally.handing_over.store(true, Ordering::Relaxed);
        s.queue = None;
        s.thread.take()?.join().ok()
    }

    /// Delivery counts so far.
    fn counters(&self) -> Vec<Delivery> {
        self.targets
            .iter()
            .map(|s| {
                let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                let t = &s.tally;
                Delivery {
                    sink: "alertmanager",
                    target: s.target.to_string(),
                    sent: n(&t.sent),
                    overflow: n(&t.overflow),
                    dropped: n(&t.dropped),
                    refused: n(&t.refused),
                    undelivered: n(&t.undelivered),
                    forgotten: Some(n(&t.forgotten)),
                }
            })
            .collect()
    }

    fn shutdown(&mut self) {
        for s in &mut self.targets {
            s.queue = None;
        }
        for s in &mut self.targets {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Sink for Alertmanager {
    fn alert(&mut self, alert: &Alert) {
        self.send(alert);
    }

    fn delivery(&self) -> Vec<Delivery> {
        self.counters()
    }

    /// Delivers what is undelivered (waiting at most the drain time for an
    /// Alertmanager that is down), stops the threads and returns the final
    /// counts. Firing episodes are left to end at their `endsAt`.
    fn stop(mut self: Box<Self>) -> Vec<Delivery> {
        self.shutdown();
        self.counters()
    }

    /// Takes the episodes of every target `previous` (an Alertmanager sink)
    /// shares with this one; they stay due, so a target added meanwhile
    /// hears of nothing it missed but what fires from now on.
    fn take_over(&mut self, previous: &mut dyn Sink) {
        let Some(previous) = previous
            .as_any()
            .and_then(|p| p.downcast_mut::<Alertmanager>())
        else {
            return;
        };
        for s in &self.targets {
            let (Some(queue), Some(episodes)) = (&s.queue, previous.hand_over(&s.target)) else {
                continue;
            };
            if let Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) =
                queue.try_send(Msg::Adopt(episodes))
                && let Msg::Adopt(lost) = m
            {
                s.tally
                    .overflow
                    .fetch_add(lost.pending(), Ordering::Relaxed);
            }
        }
    }

    fn as_any(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

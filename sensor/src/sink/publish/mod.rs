//! The publish sink: every request the detectors count, as a compact event
//! (`fleet::event`), to the fleet's NATS JetStream stream, for
//! `siem-sensor fleet` to analyse across nodes.
//!
//! Each request goes to its client IP's partition and to the partition of
//! each credential it counts for (`fleet::subject`), with a `Nats-Msg-Id`
//! unique to the request and the subject. A bounded queue stands between
//! the pipeline and a sender thread (`sender`), so a broker that is
//! down never slows local detection: events wait in the queue, and what
//! does not fit is dropped and counted. Every event ends in one count of
//! its target's [`Delivery`]:
//! - `sent`: every message of it stored (or acknowledged as a duplicate of
//!   one already stored: a retry of a publish whose acknowledgement was
//!   lost);
//! - `overflow`: the queue was full;
//! - `dropped`: a message could not be stored within
//!   [`RETRY_FOR`](crate::fleet::connect::RETRY_FOR) of its first attempt
//!   (sending it later could store it twice), or is larger than the
//!   server takes;
//! - `undelivered`: still queued when the sensor stopped while the broker
//!   was down.
//!
//! Heartbeats, retries and duplicate acknowledgements are counted too
//! (`siem_sensor_publish_*_total`, and the log line at stop).

mod sender;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use bytes::Bytes;
use smallvec::SmallVec;
use tokio::sync::mpsc::{Sender, error::TrySendError};

use super::interface::{Delivery, Sink};
use crate::{
    fleet::{
        connect::Connection,
        event::{Event, Message},
        subject::{MsgId, Partition, credential_partition, ip_partition, msg_id},
    },
    http::Transaction,
};

/// The sink's settings.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// The servers and credentials.
    pub connection: Connection,
    /// This node's name in events (`--publish-node`).
    pub node: String,
    /// Events queued while the broker is slow or down.
    pub queue: usize,
    /// The stream's retention, when this sensor creates it.
    pub retention: Duration,
    /// How long a stopping sensor waits for a broker that is down.
    pub drain: Duration,
    /// How far the node's clock in heartbeats lags the wall clock, ns: the
    /// join's wait, the longest a request is held before it is counted.
    pub heartbeat_lag_ns: u64,
}

/// One request's messages: the payload and, per partition, its id.
struct Outgoing {
    time_ns: u64,
    payload: Bytes,
    parts: SmallVec<[(Partition, MsgId); 2]>,
}

/// The sender thread's counts (see the module documentation).
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicU64,
    overflow: AtomicU64,
    dropped: AtomicU64,
    undelivered: AtomicU64,
    retries: AtomicU64,
    duplicates: AtomicU64,
    heartbeats: AtomicU64,
    stopping: AtomicBool,
}

/// Publishes events to the fleet stream.
pub struct Publisher {
    node: String,
    target: String,
    /// Reused for each event: its encoding.
    encoded: Vec<u8>,
    queue: Option<Sender<Outgoing>>,
    tally: Arc<Tally>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts the sender thread; it connects in the background (a broker
    /// that is down only delays delivery).
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn start(config: PublishConfig) -> std::io::Result<Self> {
        let (tx, rx) = tokio::sync::mpsc::channel(config.queue.max(1));
        let tally = Arc::new(Tally::default());
        let (node, target) = (config.node.clone(), config.connection.target());
        let thread_tally = Arc::clone(&tally);
        let thread = std::thread::Builder::new()
            .name("publish".into())
            .spawn(move || sender::run(config, rx, thread_tally))?;
        Ok(Self {
            node,
            target,
            encoded: Vec::new(),
            queue: Some(tx),
            tally,
            thread: Some(thread),
        })
    }

    fn counts(&self) -> Delivery {
        let t = &self.tally;
        Delivery {
            sink: "publish",
            target: self.target.clone(),
            sent: t.sent.load(Ordering::Relaxed),
            overflow: t.overflow.load(Ordering::Relaxed),
            dropped: t.dropped.load(Ordering::Relaxed),
            refused: 0,
            undelivered: t.undelivered.load(Ordering::Relaxed),
            forgotten: None,
        }
    }

    fn shutdown(&mut self) {
        self.tally.stopping.store(true, Ordering::Relaxed);
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            let t = &self.tally;
            tracing::info!(
                target = %self.target,
                sent = t.sent.load(Ordering::Relaxed),
                overflow = t.overflow.load(Ordering::Relaxed),
                dropped = t.dropped.load(Ordering::Relaxed),
                undelivered = t.undelivered.load(Ordering::Relaxed),
                retries = t.retries.load(Ordering::Relaxed),
                duplicates = t.duplicates.load(Ordering::Relaxed),
                heartbeats = t.heartbeats.load(Ordering::Relaxed),
                "publish: stopped"
            );
        }
    }
}

impl Sink for Publisher {
    fn counted(&mut self, tx: &Transaction) {
        let Self {
            node,
            encoded,
            queue: Some(queue),
            tally,
            ..
        } = self
        else {
            return;
        };
        let Some(out) = outgoing(node, encoded, tx) else {
            tally.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Err(TrySendError::Full(_) | TrySendError::Closed(_)) = queue.try_send(out) {
            tally.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn delivery(&self) -> Vec<Delivery> {
        vec![self.counts()]
    }

    /// Publishes what is queued (waiting at most `drain` for a broker that
    /// is down), stops the thread and returns the final counts.
    fn stop(mut self: Box<Self>) -> Vec<Delivery> {
        self.shutdown();
        vec![self.counts()]
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The messages of `tx`'s event seen by `node`; `None` if it cannot be
/// encoded. The event borrows from `tx` and is encoded into `encoded`,
/// reused: the payload is the one allocation of its bytes.
fn outgoing(node: &str, encoded: &mut Vec<u8>, tx: &Transaction) -> Option<Outgoing> {
    let event = Event::new(node, tx);
    let flow = [
        SocketAddr::new(tx.client_ip, tx.client_port),
        SocketAddr::new(tx.server_ip, tx.server_port),
    ];
    let mut partitions: SmallVec<[Partition; 2]> = SmallVec::new();
    partitions.push(ip_partition(tx.client_ip));
    for &fp in event.counted_credentials() {
        let p = credential_partition(fp);
        if !partitions.contains(&p) {
            partitions.push(p);
        }
    }
    let parts = partitions
        .into_iter()
        .map(|p| (p, msg_id(node, flow, tx.time_ns, p)))
        .collect();
    encoded.clear();
    serde_json::to_writer(&mut *encoded, &Message::Request(event)).ok()?;
    Some(Outgoing {
        time_ns: tx.time_ns,
        payload: Bytes::copy_from_slice(encoded),
        parts,
    })
}

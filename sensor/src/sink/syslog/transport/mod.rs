//! Delivery of syslog records: a local socket, UDP, TCP with
//! octet-counting framing (RFC 6587 section 3.4.1), or the same over TLS
//! (RFC 5425, rustls).
//!
//! Each target has a sender thread and a bounded queue, so a receiver that
//! is down never blocks capture: records wait in the queue, the thread
//! reconnects every second and delivers them in order; what does not fit in
//! the queue is counted as overflow. A TCP or TLS connection the receiver
//! closed is noticed before writing (a FIN makes the socket readable with
//! no data), so a record is not written into a dead connection and lost; a
//! stopping sender ends a TLS connection with close_notify. UDP has no
//! delivery guarantee: records sent while the receiver is down are lost, as
//! with any UDP syslog.
//!
//! Every record ends in one count of its target's [`Tally`]:
//! - `sent`: written to the socket;
//! - `overflow`: the queue was full;
//! - `dropped`: the transport can never carry it (a datagram larger than
//!   the socket takes), or it broke [`MAX_TRIES`] fresh connections in a
//!   row; logged at warn with the target and size, never the content, and
//!   the next record goes on at once, so no record can wedge a target;
//! - `refused`: still queued at stop when the receiver had failed TLS
//!   verification (its certificate does not chain to the CAs or does not
//!   name the target) with no verified connection since; logged at warn
//!   when the refusals start;
//! - `undelivered`: still queued at stop while the receiver was down.
//!
//! The failures and what each means for the record are `conn::Fault`.

mod conn;
mod target;
#[cfg(test)]
mod tests;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use rustls::ClientConfig;

use conn::{Conn, Failure, Fault};
pub use target::Target;

/// Delivery counters of one target, shared with its thread (see the
/// module documentation for what each counts).
#[derive(Debug, Default)]
pub struct Tally {
    /// Records written to the socket.
    pub sent: AtomicU64,
    /// Records dropped because the queue was full.
    pub overflow: AtomicU64,
    /// Records dropped because the transport cannot carry them.
    pub dropped: AtomicU64,
    /// Records still queued at stop for a receiver that failed TLS
    /// verification.
    pub refused: AtomicU64,
    /// Records still queued at stop for a receiver that was down.
    pub undelivered: AtomicU64,
    /// Set when the sensor stops: the thread then gives up on a receiver
    /// that stays down.
    pub stopping: AtomicBool,
}

/// Fresh connections a record may break in a row before it is dropped.
pub const MAX_TRIES: u32 = 3;

/// How long a failed attempt waits before the next.
const RETRY: Duration = Duration::from_secs(1);

/// A target's connection, opened when needed.
struct Link {
    target: Target,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    /// A handshake was refused since the last connection that verified
    /// (the warning is logged once per run of refusals).
    refused: bool,
}

impl Link {
    /// Sends `record`, connecting first if needed. On a failure the
    /// connection is closed; the returned flag tells whether it was opened
    /// for this attempt.
    fn send(&mut self, record: &[u8]) -> Result<(), (Failure, bool)> {
        let (conn, fresh) = match self.conn.take() {
            Some(c) => (c, false),
            None => {
                let c = Conn::open(&self.target, self.tls.as_ref()).map_err(|f| (f, true))?;
                self.refused = false;
                (c, true)
            }
        };
        self.conn.insert(conn).send(record).map_err(|f| {
            self.conn = None;
            (f, fresh)
        })
    }

    /// Logs a failure: the first refusal of a run and every dropped record
    /// at warn, the rest (a receiver down, a broken connection) at debug.
    fn note(&mut self, failure: &Failure, size: usize) {
        let (target, error) = (&self.target, &failure.error);
        match failure.fault {
            Fault::Refused if !self.refused => tracing::warn!(
                %target, %error,
                "syslog receiver refused (TLS); records wait until it verifies"
            ),
            Fault::Record => tracing::warn!(
                %target, bytes = size, %error,
                "syslog record dropped: too large for the transport"
            ),
            _ => tracing::debug!(%target, %error, fault = ?failure.fault, "syslog send failed"),
        }
        self.refused |= failure.fault == Fault::Refused;
    }
}

impl Drop for Link {
    /// The thread ends: a TLS connection is closed properly.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
    }
}

/// The sender thread: delivers `queue` to `target` until the queue's sender
/// is dropped, then for at most `drain` more while the target is down.
pub fn run(
    target: Target,
    tls: Option<Arc<ClientConfig>>,
    queue: Receiver<Vec<u8>>,
    delivery: Arc<Tally>,
    drain: Duration,
) {
    let mut link = Link {
        target,
        tls,
        conn: None,
        refused: false,
    };
    // The record being retried and the fresh connections it broke.
    let mut pending: Option<(Vec<u8>, u32)> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        let (record, tries) = match pending.take() {
            Some(p) => p,
            None => match queue.recv_timeout(RETRY) {
                Ok(r) => (r, 0),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        let (failure, fresh) = match link.send(&record) {
            Ok(()) => {
                delivery.sent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(f) => f,
        };
        link.note(&failure, record.len());
        let tries = tries + u32::from(fresh && failure.fault == Fault::Broken);
        if failure.fault == Fault::Record || tries >= MAX_TRIES {
            if failure.fault != Fault::Record {
                tracing::warn!(
                    target = %link.target, bytes = record.len(), tries,
                    "syslog record dropped: it broke every fresh connection"
                );
            }
            delivery.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        pending = Some((record, tries));
        // Stopping: give a down receiver `drain` to come back, then count the rest.
        if delivery.stopping.load(Ordering::Relaxed) {
            let end = *deadline.get_or_insert_with(|| Instant::now() + drain);
            if Instant::now() >= end {
                let left = 1 + queue.try_iter().count() as u64;
                let counter = if link.refused {
                    &delivery.refused
                } else {
                    &delivery.undelivered
                };
                counter.fetch_add(left, Ordering::Relaxed);
                return;
            }
        }
        std::thread::sleep(RETRY);
    }
}

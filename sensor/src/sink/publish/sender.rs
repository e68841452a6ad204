//! The publish sink's sender thread: a tokio runtime of its own with one
//! NATS client, publishing the queue in order with up to [`MAX_INFLIGHT`]
//! messages awaiting their acknowledgement, and every second a heartbeat
//! on every partition.
//!
//! While the client is disconnected nothing is sent (the client would only
//! buffer it): the queue fills instead. A message whose acknowledgement
//! does not come within [`ACK_WAIT`] may still have been stored, so it is
//! sent again with the same `Nats-Msg-Id`, and JetStream stores it once;
//! after [`RETRY_FOR`] from its first attempt it is dropped instead.
//! Heartbeats wait while a retry is pending, so a node's clock never
//! passes an event it has yet to deliver.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_nats::{
    Client,
    connection::State,
    jetstream::{
        self, Context,
        context::{PublishAckFuture, PublishErrorKind},
        message::PublishMessage,
        publish::PublishAck,
    },
};
use bytes::Bytes;
use metrics::{Counter, counter};
use tokio::{
    sync::mpsc::Receiver,
    time::{Instant, sleep, timeout_at},
};

use super::{Outgoing, PublishConfig, Tally};
use crate::fleet::{
    connect::{RETRY_FOR, stream},
    event::{Heartbeat, Message},
    subject::{MsgId, Partition},
};

/// Messages awaiting their acknowledgement at once.
const MAX_INFLIGHT: usize = 256;
/// How long an acknowledgement may take before the message is sent again.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// How often heartbeats go out.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Pause between attempts while the broker is unreachable.
const PAUSE: Duration = Duration::from_millis(100);

/// One message to publish: a request event's to one partition, or a heartbeat.
struct Part {
    partition: Partition,
    payload: Bytes,
    /// `Nats-Msg-Id` and event key, for request events.
    event: Option<(MsgId, u64)>,
    /// First attempt.
    first: Option<Instant>,
}

struct Flight {
    part: Part,
    deadline: Instant,
    ack: PublishAckFuture,
}

/// Metrics beyond the delivery counts.
struct Extra {
    retries: Counter,
    duplicates: Counter,
    heartbeats: Counter,
}

struct Sender {
    config: PublishConfig,
    rx: Receiver<Outgoing>,
    tally: Arc<Tally>,
    extra: Extra,
    client: Client,
    js: Context,
    stream_ready: bool,
    inflight: VecDeque<Flight>,
    retry: VecDeque<Part>,
    parts: VecDeque<Part>,
    /// Per event: messages not yet settled, and whether one failed.
    events: HashMap<u64, (usize, bool)>,
    next_event: u64,
    last_taken_ns: u64,
    next_beat: Instant,
}

/// The thread: publishes until the queue's sender is dropped and the queue
/// is delivered, or for at most the drain time more while the broker is
/// down.
pub(super) fn run(config: PublishConfig, rx: Receiver<Outgoing>, tally: Arc<Tally>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "publish: no runtime; events are dropped");
            return drop_all(rx, &tally);
        }
    };
    runtime.block_on(async move {
        let client = match config.connection.connect(MAX_INFLIGHT * 4).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "publish: cannot connect; events are dropped");
                return drop_all(rx, &tally);
            }
        };
        let js = jetstream::context::ContextBuilder::new()
            .timeout(ACK_WAIT)
            .max_ack_inflight(MAX_INFLIGHT * 2)
            .build(client.clone());
        let extra = Extra {
            retries: counter!("siem_sensor_publish_retries_total"),
            duplicates: counter!("siem_sensor_publish_duplicates_total"),
            heartbeats: counter!("siem_sensor_publish_heartbeats_total"),
        };
        let mut sender = Sender {
            config,
            rx,
            tally,
            extra,
            client,
            js,
            stream_ready: false,
            inflight: VecDeque::new(),
            retry: VecDeque::new(),
            parts: VecDeque::new(),
            events: HashMap::new(),
            next_event: 0,
            last_taken_ns: 0,
            next_beat: Instant::now(),
        };
        sender.run().await;
    });
}

/// Counts every queued event as dropped (the thread cannot publish).
fn drop_all(mut rx: Receiver<Outgoing>, tally: &Tally) {
    while let Some(_event) = rx.blocking_recv() {
        tally.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Sender {
    async fn run(&mut self) {
        let mut deadline: Option<Instant> = None;
        loop {
            let connected = self.client.connection_state() == State::Connected;
            if self.tally.stopping.load(Ordering::Relaxed) {
                let end = *deadline.get_or_insert_with(|| Instant::now() + self.config.drain);
                if self.is_done() || Instant::now() >= end {
                    return self.give_up();
                }
            }
            if connected && !self.stream_ready {
                self.stream_ready = stream(&self.js, self.config.retention).await.is_ok();
                if !self.stream_ready {
                    sleep(PAUSE).await;
                    continue;
                }
            }
            if connected {
                self.fill().await;
                if Instant::now() >= self.next_beat && self.retry.is_empty() {
                    self.heartbeat();
                    self.fill().await;
                }
            }
            if let Some(flight) = self.inflight.pop_front() {
                let result = timeout_at(flight.deadline, flight.ack).await;
                self.settle(
                    flight.part,
                    result.unwrap_or_else(|_| Err(PublishErrorKind::TimedOut.into())),
                );
                continue;
            }
            if !connected || !self.retry.is_empty() || !self.parts.is_empty() {
                sleep(PAUSE).await;
                continue;
            }
            let beat = tokio::time::sleep_until(self.next_beat);
            tokio::select! {
                next = self.rx.recv() => match next {
                    Some(out) => self.take(out),
                    None if self.is_done() => return self.give_up(),
                    None => {}
                },
                () = beat => {}
            }
        }
    }

    /// Nothing left to publish, and the queue is closed.
    fn is_done(&self) -> bool {
        self.rx.is_closed()
            && self.rx.is_empty()
            && self.inflight.is_empty()
            && self.retry.is_empty()
            && self.parts.is_empty()
    }

    /// Stopping with the broker down: what is left is undelivered.
    fn give_up(&mut self) {
        let mut left: std::collections::HashSet<u64> = std::collections::HashSet::new();
        let pending = self.inflight.iter().map(|f| &f.part);
        for part in pending.chain(&self.retry).chain(&self.parts) {
            if let Some((_, key)) = &part.event {
                left.insert(*key);
            }
        }
        let mut queued = 0;
        while self.rx.try_recv().is_ok() {
            queued += 1;
        }
        self.tally
            .undelivered
            .fetch_add(left.len() as u64 + queued, Ordering::Relaxed);
    }

    /// Splits an event into its messages.
    fn take(&mut self, out: Outgoing) {
        self.last_taken_ns = out.time_ns;
        let key = self.next_event;
        self.next_event += 1;
        self.events.insert(key, (out.parts.len(), false));
        for (partition, id) in out.parts {
            self.parts.push_back(Part {
                partition,
                payload: out.payload.clone(),
                event: Some((id, key)),
                first: None,
            });
        }
    }

    /// Sends until [`MAX_INFLIGHT`] await their acknowledgement: retries
    /// first, then the queue.
    async fn fill(&mut self) {
        while self.inflight.len() < MAX_INFLIGHT {
            let part = match self.retry.pop_front().or_else(|| self.parts.pop_front()) {
                Some(p) => p,
                None => match self.rx.try_recv() {
                    Ok(out) => {
                        self.take(out);
                        continue;
                    }
                    Err(_) => return,
                },
            };
            self.send(part).await;
        }
    }

    async fn send(&mut self, mut part: Part) {
        part.first.get_or_insert_with(Instant::now);
        let mut message = PublishMessage::build().payload(part.payload.clone());
        if let Some((id, _)) = &part.event {
            message = message.message_id(id);
        }
        match self
            .js
            .send_publish(part.partition.subject(), message)
            .await
        {
            Ok(ack) => self.inflight.push_back(Flight {
                part,
                deadline: Instant::now() + ACK_WAIT,
                ack,
            }),
            Err(e) => self.settle(part, Err(e)),
        }
    }

    /// The outcome of one message: counted when its event is settled, sent
    /// again when it may still be stored once.
    fn settle(&mut self, part: Part, result: Result<PublishAck, jetstream::context::PublishError>) {
        let Some((_, key)) = &part.event else {
            if result.is_ok() {
                self.tally.heartbeats.fetch_add(1, Ordering::Relaxed);
                self.extra.heartbeats.increment(1);
            }
            return;
        };
        let key = *key;
        let failed = match result {
            Ok(ack) => {
                if ack.duplicate {
                    self.tally.duplicates.fetch_add(1, Ordering::Relaxed);
                    self.extra.duplicates.increment(1);
                }
                false
            }
            Err(e) => {
                let kind = e.kind();
                if kind == PublishErrorKind::StreamNotFound {
                    self.stream_ready = false;
                }
                let retryable = kind != PublishErrorKind::MaxPayloadExceeded;
                let young = part.first.is_some_and(|f| f.elapsed() < RETRY_FOR);
                if retryable && young {
                    self.tally.retries.fetch_add(1, Ordering::Relaxed);
                    self.extra.retries.increment(1);
                    tracing::debug!(error = %e, "publish: retrying");
                    self.retry.push_back(part);
                    return;
                }
                tracing::warn!(error = %e, "publish: event dropped");
                true
            }
        };
        let Some((left, any_failed)) = self.events.get_mut(&key) else {
            return;
        };
        *left -= 1;
        *any_failed |= failed;
        if *left == 0 {
            let counter = if *any_failed {
                &self.tally.dropped
            } else {
                &self.tally.sent
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.events.remove(&key);
        }
    }

    /// Queues a heartbeat for every partition, after what is queued: the
    /// node's clock, behind by the join's wait, and no later than the
    /// newest event taken while more wait in the queue.
    fn heartbeat(&mut self) {
        self.next_beat = Instant::now() + HEARTBEAT_EVERY;
        let mut clock = now_ns();
        if !self.rx.is_empty() {
            clock = clock.min(self.last_taken_ns);
        }
        let beat = Message::Heartbeat(Heartbeat {
            node: self.config.node.clone(),
            time_ns: clock.saturating_sub(self.config.heartbeat_lag_ns),
        });
        let Ok(payload) = serde_json::to_vec(&beat) else {
            return;
        };
        let payload = Bytes::from(payload);
        for partition in Partition::all() {
            self.parts.push_back(Part {
                partition,
                payload: payload.clone(),
                event: None,
                first: None,
            });
        }
    }
}

//! Taking the partitions a fleet analyser owns from the stream: one
//! durable pull consumer per partition subject (nats-server 2.9 filters a
//! consumer on one subject), named `GROUP-ip-N` / `GROUP-cred-N`, so a
//! restarted analyser resumes where it was.
//!
//! On start each partition first rebuilds: an ordered (ephemeral)
//! consumer replays the partition from the horizon (`--rebuild`: the
//! longest window a detector keeps, before the durable consumer's last
//! delivered message) up to that message, so the detectors' windows,
//! baselines and episodes are as they were; then the durable consumer
//! goes on from there. Messages are acknowledged as they are taken, and a
//! redelivered message at or before the last one taken is skipped, so
//! each message is analysed once per run. Alerts the rebuild raises again
//! are known by their ids (`claim`). Each partition says when its rebuild
//! is over ([`Taken::CaughtUp`]): until then it holds the analysis's
//! watermark at its replay (see `watermark`).

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream::Stream,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::mpsc::Sender;

use super::subject::Partition;

/// What a partition's task hands on.
#[derive(Debug)]
pub struct Delivered {
    /// Its partition.
    pub partition: Partition,
    /// What it is.
    pub taken: Taken,
}

/// A message taken from a partition, or the end of its rebuild.
#[derive(Debug)]
pub enum Taken {
    /// A message replayed by the rebuild (see `event` for the payload).
    Replayed(Bytes),
    /// The rebuild is over (or there was nothing to rebuild): every message
    /// after this one is new. Sent once per partition, even when the
    /// rebuild failed.
    CaughtUp,
    /// A new message from the durable consumer.
    Live(Bytes),
}

/// Pause before trying again after the server failed a request.
const PAUSE: Duration = Duration::from_secs(1);

/// The durable consumer's name of `partition` in `group`.
pub fn durable_name(group: &str, partition: Partition) -> String {
    format!("{group}-{}-{}", partition.family.token(), partition.number)
}

/// Takes `partition` of `stream` for `group` into `out`, rebuilding the
/// last `horizon` first, until `out` closes. Server errors are logged and
/// retried.
pub async fn partition(
    stream: Stream,
    group: String,
    partition: Partition,
    horizon: Duration,
    out: Sender<Delivered>,
) {
    let name = durable_name(&group, partition);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: partition.subject(),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 20_000,
        ..Default::default()
    };
    let mut consumer = loop {
        match stream.get_or_create_consumer(&name, config.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "fleet: cannot create the consumer; retrying")
            }
        }
        tokio::time::sleep(PAUSE).await;
    };
    let end = match consumer.info().await {
        Ok(info) => info.delivered.stream_sequence,
        Err(e) => {
            tracing::warn!(consumer = %name, error = %e, "fleet: no consumer info; not rebuilding");
            0
        }
    };
    if end > 0 {
        match rebuild(&stream, partition, end, horizon, &out).await {
            Ok(n) => tracing::info!(consumer = %name, messages = n, "fleet: partition rebuilt"),
            Err(e) => tracing::warn!(consumer = %name, error = %e, "fleet: rebuild failed"),
        }
    }
    let caught_up = Delivered {
        partition,
        taken: Taken::CaughtUp,
    };
    if out.send(caught_up).await.is_err() {
        return;
    }
    let mut last = end;
    loop {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(1000)
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "fleet: cannot pull; retrying");
                tokio::time::sleep(PAUSE).await;
                continue;
            }
        };
        while let Some(next) = messages.next().await {
            let message = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(consumer = %name, error = %e, "fleet: pull");
                    continue;
                }
            };
            let seq = message.info().map_or(0, |i| i.stream_sequence);
            if let Err(e) = message.ack().await {
                tracing::debug!(consumer = %name, error = %e, "fleet: ack failed");
            }
            if seq != 0 && seq <= last {
                continue;
            }
            last = last.max(seq);
            let taken = Delivered {
                partition,
                taken: Taken::Live(message.payload.clone()),
            };
            if out.send(taken).await.is_err() {
                return;
            }
        }
    }
}

/// Replays `partition` from `horizon` before message `end` up to it;
/// returns how many messages it replayed.
async fn rebuild(
    stream: &Stream,
    partition: Partition,
    end: u64,
    horizon: Duration,
    out: &Sender<Delivered>,
) -> Result<u64, async_nats::Error> {
    let last = stream.get_raw_message(end).await?;
    let config = pull::OrderedConfig {
        filter_subject: partition.subject(),
        deliver_policy: DeliverPolicy::ByStartTime {
            start_time: last.time - horizon,
        },
        ..Default::default()
    };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    let mut n = 0;
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > end {
            break;
        }
        n += 1;
        let replayed = Delivered {
            partition,
            taken: Taken::Replayed(message.payload.clone()),
        };
        if out.send(replayed).await.is_err() || seq == end || pending == 0 {
            break;
        }
    }
    Ok(n)
}

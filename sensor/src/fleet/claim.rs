//! The alert transitions a fleet already raised, kept in a JetStream
//! key-value bucket (`siem-alerts-GROUP`), so an analyser that restarts
//! and rebuilds its detectors from the stream raises none of them again,
//! and two instances never raise one twice.
//!
//! Episode ids are deterministic (a hash of detector, subject and start:
//! `detect::lifecycle`), so the rebuild raises the same transitions with
//! the same ids. A transition is claimed by creating its key: `ID.firing`,
//! `ID.updated.EXTENT`, `ID.resolved`; creating a key that exists fails,
//! so only the first claim wins. The claim is made before the alert goes
//! to any sink: an analyser killed between the two loses that alert
//! rather than raising it twice.

use std::time::Duration;

use async_nats::jetstream::{
    Context,
    kv::{CreateErrorKind, Store},
    stream::{self, DiscardPolicy, StorageType},
};

use crate::detect::{Alert, State};

/// How long a claim is retried while the server does not answer; past
/// it the alert goes out unclaimed (counted), rather than never.
const GIVE_UP: Duration = Duration::from_secs(60);

/// The bucket of `group`'s claims.
pub fn bucket(group: &str) -> String {
    format!("siem-alerts-{group}")
}

/// The key of an alert transition.
pub fn key(alert: &Alert) -> String {
    match alert.state {
        State::Firing => format!("{}.firing", alert.id),
        State::Updated => format!("{}.updated.{}", alert.id, alert.extent),
        State::Resolved => format!("{}.resolved", alert.id),
    }
}

/// What claiming did.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ClaimCounters {
    /// Transitions claimed (raised).
    pub claimed: u64,
    /// Transitions already claimed (raised before a restart, or by
    /// another instance): not raised again.
    pub already_raised: u64,
    /// Transitions raised without a claim: the server did not answer for
    /// a minute.
    pub unclaimed: u64,
}

/// The claims bucket.
pub struct Claims {
    store: Store,
    counters: ClaimCounters,
}

impl Claims {
    /// The bucket of `group`, created if missing, its keys kept for `max_age`.
    ///
    /// The bucket's stream is created here as the key-value API lays it out
    /// (ADR-8: `KV_BUCKET` on `$KV.BUCKET.>`, one value per key, discard
    /// new, rollups, direct get): async-nats 0.51's `create_key_value` reads
    /// the account's info first, and cannot decode nats-server 2.9's (no
    /// `reserved_memory`).
    ///
    /// # Errors
    /// JetStream is unreachable or refuses.
    pub async fn open(
        js: &Context,
        group: &str,
        max_age: Duration,
    ) -> Result<Self, async_nats::Error> {
        let name = bucket(group);
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{name}"),
            description: Some("alert transitions raised by siem-sensor fleet".into()),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: StorageType::File,
            num_replicas: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            ..Default::default()
        })
        .await?;
        let store = js.get_key_value(&name).await?;
        Ok(Self {
            store,
            counters: ClaimCounters::default(),
        })
    }

    /// Whether `alert` is raised now: its key was created, or the server
    /// did not answer for `GIVE_UP`.
    pub async fn claim(&mut self, alert: &Alert) -> bool {
        let key = key(alert);
        let start = tokio::time::Instant::now();
        loop {
            match self
                .store
                .create(&key, alert.time_ns.to_string().into())
                .await
            {
                Ok(_) => {
                    self.counters.claimed += 1;
                    return true;
                }
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    self.counters.already_raised += 1;
                    return false;
                }
                Err(e) if start.elapsed() >= GIVE_UP => {
                    tracing::warn!(key, error = %e, "fleet: alert raised without a claim");
                    self.counters.unclaimed += 1;
                    return true;
                }
                Err(e) => {
                    tracing::debug!(key, error = %e, "fleet: claim failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> ClaimCounters {
        self.counters
    }
}

//! What one target is told: the episodes it must hear about, and the
//! transitions not yet delivered.
//!
//! The rule is Prometheus' notifier's (`rules/alerting.go`: an active alert
//! is sent again every `resend_delay` with `endsAt` = send time + 4 ×
//! that, a resolved one with `endsAt` = its resolution time):
//! - a transition is due at once; an `updated` one replaces the
//!   annotations, the labels stay those of the episode's first send;
//! - every firing episode is due again each re-send period, with `endsAt`
//!   moved on, so Alertmanager (which keeps alerts in memory only) gets
//!   them back after a restart, and ends them itself when the sensor is
//!   gone;
//! - a resolved episode is sent once (until delivered) with `endsAt` = its
//!   resolution time, keeping its last annotations, then forgotten;
//! - what fails stays due, so transitions queued through an outage are
//!   delivered, in one go, when Alertmanager is back.
//!
//! At most `max` episodes are kept. A new one past that evicts the least
//! recently changed episode whose transitions were delivered (no longer
//! re-sent: `forgotten`; Alertmanager ends it at its `endsAt`), else the
//! least recently changed one, whose undelivered transitions are lost
//! (`overflow`).

use std::collections::HashMap;

use super::postable::{Postable, Transition};
use crate::detect::State;

/// An episode as this target knows it.
#[derive(Debug)]
struct Entry {
    /// The labels of its first send; the latest state, annotations, times.
    t: Transition,
    /// Transitions not yet delivered.
    pending: u64,
    /// To go in the next request.
    due: bool,
    /// When it last changed (a counter), for eviction.
    touched: u64,
}

/// What making room cost: counts for the target's tally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Delivered firing episodes no longer re-sent.
    pub forgotten: u64,
    /// Undelivered transitions lost with their episode.
    pub overflow: u64,
}

/// One request: the episodes it carries and its body, a JSON array of
/// `postableAlert`s.
#[derive(Debug)]
pub struct Batch {
    /// Episode ids, in body order.
    pub ids: Vec<String>,
    /// The request body.
    pub body: Vec<u8>,
}

/// The episodes of one target (see the module documentation).
#[derive(Debug, Default)]
pub struct Episodes {
    max: usize,
    entries: HashMap<String, Entry>,
    clock: u64,
}

impl Episodes {
    /// An empty set holding at most `max` episodes (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            ..Self::default()
        }
    }

    /// Episodes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Transitions not yet delivered.
    pub fn pending(&self) -> u64 {
        self.entries.values().map(|e| e.pending).sum()
    }

    /// Whether something is due.
    pub fn is_due(&self) -> bool {
        self.entries.values().any(|e| e.due)
    }

    /// Takes transition `t` (due at once); returns what making room cost.
    pub fn push(&mut self, t: &Transition) -> Evicted {
        self.merge(t.clone(), 1)
    }

    /// Takes `t` with `pending` undelivered transitions behind it.
    fn merge(&mut self, t: Transition, pending: u64) -> Evicted {
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(&t.id) {
            if t.state != State::Resolved {
                e.t.annotations = t.annotations;
            }
            (e.t.state, e.t.time_ns) = (t.state, t.time_ns);
            e.pending += pending;
            (e.due, e.touched) = (true, self.clock);
            return Evicted::default();
        }
        let evicted = if self.entries.len() >= self.max {
            self.evict()
        } else {
            Evicted::default()
        };
        let entry = Entry {
            t,
            pending,
            due: true,
            touched: self.clock,
        };
        self.entries.insert(entry.t.id.clone(), entry);
        evicted
    }

    /// Takes every episode of `other` (the set of the sink this one
    /// replaced), each due at once; returns what making room cost.
    pub fn adopt(&mut self, other: Episodes) -> Evicted {
        let mut older: Vec<Entry> = other.entries.into_values().collect();
        older.sort_by_key(|e| e.touched);
        let mut cost = Evicted::default();
        for e in older {
            let c = self.merge(e.t, e.pending);
            cost.forgotten += c.forgotten;
            cost.overflow += c.overflow;
        }
        cost
    }

    /// Removes the episode to make room for a new one.
    fn evict(&mut self) -> Evicted {
        let delivered = self
            .entries
            .values()
            .filter(|e| e.pending == 0)
            .min_by_key(|e| e.touched);
        let victim = delivered.or_else(|| self.entries.values().min_by_key(|e| e.touched));
        let Some(id) = victim.map(|e| e.t.id.clone()) else {
            return Evicted::default();
        };
        match self.entries.remove(&id) {
            Some(e) if e.pending == 0 => Evicted {
                forgotten: 1,
                overflow: 0,
            },
            Some(e) => Evicted {
                forgotten: 0,
                overflow: e.pending,
            },
            None => Evicted::default(),
        }
    }

    /// Marks every firing episode due (a re-send period has passed).
    pub fn resend(&mut self) {
        for e in self.entries.values_mut() {
            e.due |= e.t.state != State::Resolved;
        }
    }

    /// The next request: at most `max` due episodes, least recently
    /// changed first, sent at `now_ns` (wall clock, ns since the epoch);
    /// a firing one ends at `now_ns + valid_ns` unless sent again.
    pub fn batch(&self, max: usize, now_ns: u64, valid_ns: u64) -> Option<Batch> {
        let mut due: Vec<&Entry> = self.entries.values().filter(|e| e.due).collect();
        if due.is_empty() {
            return None;
        }
        due.sort_by_key(|e| e.touched);
        due.truncate(max.max(1));
        let alerts: Vec<Postable<'_>> = due
            .iter()
            .map(|e| {
                let ends = match e.t.state {
                    State::Resolved => e.t.time_ns,
                    State::Firing | State::Updated => now_ns.saturating_add(valid_ns),
                };
                Postable {
                    labels: &e.t.labels,
                    annotations: &e.t.annotations,
                    starts_ns: e.t.starts_ns,
                    // Alertmanager refuses an end before the start.
                    ends_ns: ends.max(e.t.starts_ns),
                }
            })
            .collect();
        Some(Batch {
            ids: due.iter().map(|e| e.t.id.clone()).collect(),
            body: serde_json::to_vec(&alerts).unwrap_or_default(),
        })
    }

    /// `batch` was accepted: returns the transitions it delivered; its
    /// resolved episodes are forgotten.
    pub fn delivered(&mut self, batch: &Batch) -> u64 {
        let mut sent = 0;
        for id in &batch.ids {
            let Some(e) = self.entries.get_mut(id) else {
                continue;
            };
            sent += std::mem::take(&mut e.pending);
            e.due = false;
            if e.t.state == State::Resolved {
                self.entries.remove(id);
            }
        }
        sent
    }

    /// `batch` was refused for good (Alertmanager found it invalid):
    /// returns the transitions it held; its episodes are forgotten, so no
    /// request is retried forever.
    pub fn rejected(&mut self, batch: &Batch) -> u64 {
        batch
            .ids
            .iter()
            .filter_map(|id| self.entries.remove(id))
            .map(|e| e.pending)
            .sum()
    }
}

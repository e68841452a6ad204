//! Joining the two legs of a request: Kong's client leg (what the client
//! sent and got) and its upstream leg (what Kong forwarded, naming the
//! authenticated consumer), so every request reaches the sinks and the
//! detectors once, enriched from both.
//!
//! The key is Kong's request id (`X-Kong-Request-Id`; Kong docs, "headers"
//! and "headers_upstream" in kong.conf, both on by default since 3.5): on
//! the upstream leg the header Kong sent, on the client leg the one Kong
//! returned (never the client's own; see [`Transaction::request_id`]).
//!
//! - Both legs seen: one record, the client leg's (client IP, status,
//!   path as the client sent it), with the upstream leg's consumer and
//!   principal, its credentials added, its server and status as
//!   [`Transaction::upstream`], and all three latencies.
//! - Only the client leg (Kong's own 401/403/429, a cache hit, the upstream
//!   not captured): the client leg, after [`JoinConfig::client_wait_ns`].
//!   It waits briefly: Kong sends a response's last byte after it received
//!   the upstream's, so the upstream leg, when there is one, ends first;
//!   and only while upstream legs arrive at all (one within
//!   [`JoinConfig::wait_ns`]), so a node capturing the client leg alone
//!   pays nothing for the join. Where the legs come from two sources (the
//!   TLS tap's ring buffer and tc's), the start counts as an upstream leg:
//!   the first one may be read a batch after its client leg
//!   ([`JoinConfig::two_sources`]).
//! - Only the upstream leg (the client leg is TLS the tap cannot read, or
//!   not captured: upstream-only mode): the upstream leg, its client the
//!   one Kong named, after [`JoinConfig::wait_ns`]. A request Kong made
//!   itself (no client named: an active health check) is written but not
//!   counted.
//! - A leg arriving after its partner was given up on (a download slower
//!   than the wait) is written, joined to nothing, and not counted again.
//!
//! Legs without a request id pass at once, counted (`client_without_id`,
//! `upstream_without_id`: with Kong's defaults there are none).

#[cfg(test)]
mod tests;

use std::{collections::VecDeque, hash::BuildHasher};

use hashbrown::{HashMap, HashTable};

use serde::Serialize;

use crate::{
    http::{RequestId, Transaction, UpstreamLeg},
    identity::{Leg, PrincipalSource, Topology},
};

/// The join's settings.
#[derive(Clone, Debug)]
pub struct JoinConfig {
    /// How long an upstream leg waits for its client leg, event time (ns):
    /// default 5 s (an API response's client leg ends milliseconds after
    /// its upstream leg; a slower download ends late and is not counted
    /// twice).
    pub wait_ns: u64,
    /// How long a client leg waits for an upstream leg that ended after it
    /// (capture order across interfaces), ns: default 500 ms.
    pub client_wait_ns: u64,
    /// Most legs waiting at once; past it the oldest goes on alone.
    pub max_waiting: usize,
    /// Where Kong is (whose upstream requests name no client).
    pub topology: Topology,
    /// The legs are read from two sources, neither ordered after the other
    /// (live: the client leg from the TLS tap's ring buffer, the upstream
    /// leg from tc's): client legs wait from the start, not only once an
    /// upstream leg was seen. Off in replay, whose legs come in capture
    /// order.
    pub two_sources: bool,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            wait_ns: 5_000_000_000,
            client_wait_ns: 500_000_000,
            max_waiting: 65_536,
            topology: Topology::default(),
            two_sources: false,
        }
    }
}

/// What the join did, for the summaries and metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JoinCounters {
    /// Requests whose two legs were joined.
    pub joined: u64,
    /// Client legs that found no upstream leg in time.
    pub client_only: u64,
    /// Upstream legs that found no client leg in time.
    pub upstream_only: u64,
    /// Legs whose partner had already been given up on: written, not
    /// counted again.
    pub late: u64,
    /// Client legs without Kong's request id in the response.
    pub client_without_id: u64,
    /// Upstream legs without a request id.
    pub upstream_without_id: u64,
    /// Upstream requests Kong made itself (no client named): not counted.
    pub kong_own: u64,
    /// Legs sent on alone because [`JoinConfig::max_waiting`] were waiting.
    pub overflow: u64,
    /// Joined requests whose client sent Kong's consumer headers itself:
    /// the upstream leg's consumer, consumer credential and consumer
    /// principal were not believed (a route without authentication passes
    /// the client's claim on; see [`crate::identity::Identity::claims_consumer`]).
    pub consumer_claimed: u64,
}

/// A request record and whether the detectors count it.
#[derive(Debug)]
pub struct Request {
    /// The record.
    pub tx: Box<Transaction>,
    /// Whether it is the first record of its request (the detectors count
    /// it); `false` for a late leg or one of Kong's own requests.
    pub counted: bool,
}

/// Legs waiting for their partner, by request id, in arrival order.
pub struct Joiner {
    config: JoinConfig,
    /// Waiting legs and their deadlines, by request id.
    waiting: HashMap<RequestId, Waiting>,
    /// (deadline, request id) of each leg's waiting ones (client, then
    /// upstream: each leg has one wait, so each queue is in deadline
    /// order), oldest first; stale entries are skipped.
    order: [VecDeque<(u64, RequestId)>; 2],
    /// Ids given up on after a wait (bounded like `waiting`).
    given_up: Recent,
    /// Ids of client legs sent on at once (no upstream leg arriving): a
    /// partner read late from another ring buffer is a batch away, so a
    /// few thousand suffice, and a set that small stays in cache.
    passed: Recent,
    /// Keys the two sets' 64-bit hashes under a per-process random key:
    /// no collision can be chosen by whoever picks a request id.
    id_hasher: foldhash::quality::RandomState,
    ready: Vec<Request>,
    counters: JoinCounters,
    /// Bytes the waiting legs hold (estimated), kept as they come and go:
    /// [`Joiner::memory`] runs per segment.
    bytes: usize,
    /// When the last upstream leg arrived, or the first leg of all from
    /// [`JoinConfig::two_sources`] (event time, ns): client legs wait while
    /// it is within the wait.
    upstream_expected_ns: Option<u64>,
}

impl Joiner {
    /// An empty join.
    pub fn new(config: JoinConfig) -> Self {
        let max_waiting = config.max_waiting;
        Self {
            config,
            waiting: HashMap::new(),
            order: [VecDeque::new(), VecDeque::new()],
            given_up: Recent::new(max_waiting),
            passed: Recent::new(PASSED),
            id_hasher: foldhash::quality::RandomState::default(),
            ready: Vec::new(),
            counters: JoinCounters::default(),
            bytes: 0,
            upstream_expected_ns: None,
        }
    }

    /// From now on the legs come from two sources ([`JoinConfig::two_sources`]).
    pub fn two_sources(&mut self) {
        self.config.two_sources = true;
    }

    /// Takes one leg's transaction at event time `now_ns`.
    pub fn push(&mut self, tx: Box<Transaction>, now_ns: u64) {
        if tx.leg == Leg::Upstream
            || (self.config.two_sources && self.upstream_expected_ns.is_none())
        {
            self.upstream_expected_ns = Some(now_ns);
        }
        let Some(id) = tx.request_id.clone() else {
            match tx.leg {
                Leg::Client => self.counters.client_without_id += 1,
                Leg::Upstream => self.counters.upstream_without_id += 1,
            }
            self.alone(tx);
            return;
        };
        let hash = self.id_hasher.hash_one(&id);
        if self.given_up.contains(hash) || self.passed.contains(hash) {
            self.counters.late += 1;
            self.ready.push(Request { tx, counted: false });
            return;
        }
        // Where only the client leg is captured nothing waits: no lookup.
        let other = if self.waiting.is_empty() {
            None
        } else {
            self.take(&id).map(|(_, other)| other)
        };
        match other {
            Some(other) if other.leg != tx.leg => {
                self.counters.joined += 1;
                let client = if tx.leg == Leg::Client { &tx } else { &other };
                self.counters.consumer_claimed += u64::from(client.claims_consumer);
                let tx = match tx.leg {
                    Leg::Client => joined(tx, other),
                    Leg::Upstream => joined(other, tx),
                };
                self.ready.push(Request { tx, counted: true });
            }
            Some(same) => {
                // The same id twice on one leg (a client replaying Kong's
                // id cannot: it is read from Kong's side only): keep both.
                self.alone(same);
                self.wait(id, tx, now_ns);
            }
            // A client leg waits only while upstream legs arrive (one seen
            // within the wait): where only the client leg is captured it
            // goes on at once, its id noted so a partner would be late,
            // after the client legs still waiting from the start.
            None if tx.leg == Leg::Client
                && self
                    .upstream_expected_ns
                    .is_none_or(|t| now_ns.saturating_sub(t) > self.config.wait_ns) =>
            {
                self.expire_queue(0, u64::MAX);
                self.counters.client_only += 1;
                self.passed.insert(hash);
                self.alone(tx);
            }
            None => self.wait(id, tx, now_ns),
        }
    }

    fn wait(&mut self, id: RequestId, tx: Box<Transaction>, now_ns: u64) {
        // Entries of joined ids are stale: skip them to the first waiting.
        while self.waiting.len() >= self.config.max_waiting.max(1) {
            let queue = usize::from(self.order[0].is_empty());
            let Some((_, oldest)) = self.order[queue].pop_front() else {
                break;
            };
            if let Some((_, tx)) = self.take(&oldest) {
                self.counters.overflow += 1;
                self.give_up(oldest, tx);
            }
        }
        let (queue, wait) = match tx.leg {
            Leg::Client => (0, self.config.client_wait_ns),
            Leg::Upstream => (1, self.config.wait_ns),
        };
        let deadline = now_ns.saturating_add(wait);
        self.compact(queue);
        self.order[queue].push_back((deadline, id.clone()));
        let bytes = cost(&id, &tx);
        self.bytes += bytes;
        self.waiting.insert(
            id,
            Waiting {
                deadline,
                bytes,
                tx,
            },
        );
    }

    /// Drops the stale entries of `order[queue]` (of legs taken since)
    /// once it holds [`STALE_SLACK`] entries more than twice the waiting
    /// legs (so at least half of it is stale). Left alone,
    /// a joined leg's entry stays until its deadline: every upstream leg
    /// for five seconds, 200,000 entries (9.6 MB) at 40,000 requests/s,
    /// so each push and pop missed the cache and the queue's growth took
    /// page faults. The test is [`Joiner::expire_queue`]'s, so what
    /// expires and when is unchanged; about one map lookup a leg, amortized.
    fn compact(&mut self, queue: usize) {
        let waiting = &self.waiting;
        if self.order[queue].len() >= 2 * waiting.len() + STALE_SLACK {
            self.order[queue]
                .retain(|(deadline, id)| waiting.get(id).is_some_and(|w| w.deadline == *deadline));
        }
    }

    /// Sends on every leg whose wait ended by `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        // Runs per segment: a queue whose first deadline is ahead is left
        // alone without a call.
        for queue in 0..self.order.len() {
            if self.order[queue]
                .front()
                .is_some_and(|(deadline, _)| *deadline <= now_ns)
            {
                self.expire_queue(queue, now_ns);
            }
        }
    }

    /// Sends on the legs of `order[queue]` whose wait ended by `now_ns`.
    fn expire_queue(&mut self, queue: usize, now_ns: u64) {
        while self.order[queue]
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now_ns)
        {
            let Some((deadline, id)) = self.order[queue].pop_front() else {
                break;
            };
            // An entry of an id joined (and seen again) since is stale.
            if self
                .waiting
                .get(&id)
                .is_some_and(|w| w.deadline == deadline)
                && let Some((_, tx)) = self.take(&id)
            {
                self.give_up(id, tx);
            }
        }
    }

    /// Sends on every waiting leg (end of input).
    pub fn finish(&mut self) {
        self.expire(u64::MAX);
    }

    /// Whether any record waits to be taken by [`Joiner::drain`].
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The records ready so far, in the order they became ready.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Request> {
        self.ready.drain(..)
    }

    /// The counters so far.
    pub fn counters(&self) -> JoinCounters {
        self.counters.clone()
    }

    /// The longest a leg waits for its partner (ns).
    pub fn wait_ns(&self) -> u64 {
        self.config.wait_ns.max(self.config.client_wait_ns)
    }

    /// Legs waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Bytes the waiting legs and the ids given up on hold (estimated; for
    /// the memory budget).
    pub fn memory(&self) -> u64 {
        let order = self.order[0].len() + self.order[1].len();
        let given_up = (self.given_up.len() + self.passed.len()) * Recent::ENTRY_BYTES;
        (self.bytes + order * 48 + given_up) as u64
    }

    /// Removes the leg waiting under `id`.
    fn take(&mut self, id: &RequestId) -> Option<(u64, Box<Transaction>)> {
        let w = self.waiting.remove(id)?;
        self.bytes = self.bytes.saturating_sub(w.bytes);
        Some((w.deadline, w.tx))
    }

    fn give_up(&mut self, id: RequestId, tx: Box<Transaction>) {
        match tx.leg {
            Leg::Client => self.counters.client_only += 1,
            Leg::Upstream => self.counters.upstream_only += 1,
        }
        self.given_up.insert(self.id_hasher.hash_one(&id));
        self.alone(tx);
    }

    /// A leg going on without a partner: counted unless it is a request
    /// Kong made itself.
    fn alone(&mut self, tx: Box<Transaction>) {
        let own = tx.leg == Leg::Upstream && self.config.topology.is_kong(tx.client_ip);
        self.counters.kong_own += u64::from(own);
        self.ready.push(Request { tx, counted: !own });
    }
}

/// Bytes a waiting leg holds: the record, its strings, its id twice (map
/// and order) and the map's overhead.
fn cost(id: &RequestId, tx: &Transaction) -> usize {
    std::mem::size_of::<Transaction>() + tx.heap_bytes() + 2 * id.heap_bytes() + 64
}

/// A leg waiting for its partner.
struct Waiting {
    /// When it goes on alone (event time, ns).
    deadline: u64,
    /// What it holds ([`cost`], taken when it began to wait).
    bytes: usize,
    tx: Box<Transaction>,
}

/// Client legs sent on at once whose ids are remembered.
const PASSED: usize = 4096;

/// Entries a wait queue may hold beyond twice the waiting legs before
/// [`Joiner::compact`] drops its stale ones: one compaction every few
/// thousand legs, on a queue small enough to stay in cache.
const STALE_SLACK: usize = 4096;

/// The last `capacity` ids (64-bit hashes) noted, oldest forgotten first.
/// The set is keyed by the hashes themselves: they are keyed hashes
/// already ([`Joiner`]'s `id_hasher`), so hashing them again is waste.
struct Recent {
    order: VecDeque<u64>,
    set: HashTable<u64>,
    capacity: usize,
}

impl Recent {
    /// Bytes an entry holds: 8 in the queue, 8 and a control byte in the
    /// set, at most 7/8 full.
    const ENTRY_BYTES: usize = 18;

    fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashTable::new(),
            capacity: capacity.max(1),
        }
    }

    fn insert(&mut self, hash: u64) {
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
            && let Ok(entry) = self.set.find_entry(old, |&h| h == old)
        {
            entry.remove();
        }
        if !self.contains(hash) {
            self.set.insert_unique(hash, hash, |&h| h);
            self.order.push_back(hash);
        }
    }

    fn contains(&self, hash: u64) -> bool {
        self.set.find(hash, |&h| h == hash).is_some()
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

/// The client leg `client` enriched from its upstream leg `upstream`.
/// When the client sent Kong's consumer headers itself, the upstream
/// leg's consumer identity (its consumer, its `X-Credential-Identifier`
/// and a principal taken from them) may be that claim passed on, and is
/// left out (DESIGN.md: a client-sent `X-Consumer-*` changes nothing).
fn joined(mut client: Box<Transaction>, mut upstream: Box<Transaction>) -> Box<Transaction> {
    if client.claims_consumer {
        let claimed = upstream.kong_credential.take();
        upstream.credentials.retain(|f| Some(*f) != claimed);
        upstream.consumer = None;
        upstream.consumer_id = None;
        upstream
            .principal
            .take_if(|p| p.source == PrincipalSource::KongConsumer);
    }
    if upstream.consumer.is_some() {
        client.consumer = upstream.consumer;
        client.consumer_id = upstream.consumer_id;
        client.principal = upstream.principal;
    } else if client.principal.is_none() {
        client.principal = upstream.principal;
    }
    client.kong_credential = client.kong_credential.or(upstream.kong_credential);
    for fp in upstream.credentials {
        if !client.credentials.contains(&fp) {
            client.credentials.push(fp);
        }
    }
    client.latencies.proxy = upstream.latencies.proxy;
    if let (Some(request), Some(proxy)) = (client.latencies.request, client.latencies.proxy) {
        client.latencies.kong = Some(((request - proxy).max(0.0) * 1000.0).round() / 1000.0);
    }
    client.confirmed |= upstream.confirmed;
    client.upstream = Some(UpstreamLeg {
        server_ip: upstream.server_ip,
        server_port: upstream.server_port,
        path: Some(upstream.path),
        status: upstream.status,
        latency_ms: upstream.latency_ms,
    });
    client
}

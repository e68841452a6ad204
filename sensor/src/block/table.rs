//! The blocks in force, the offence memory and the rate cap: pure state,
//! on the boot clock (ns), with no kernel in it.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use crate::detect::Detector;

/// One block in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Boot-clock ns when it ends.
    pub deadline_ns: u64,
    /// Wall-clock ns when it ends (for records).
    pub until_wall_ns: u64,
    /// The detector that made it (the latest extension's).
    pub detector: Detector,
    /// The alert episode's id.
    pub alert_id: String,
    /// Which block of the address this is.
    pub offence: u32,
    /// Its length as decided, whole seconds.
    pub ttl_s: u64,
}

/// Most addresses remembered as past offenders; past it the memory is
/// cleared of the oldest half (a flood of one-shot offenders cannot grow
/// the sensor).
const MAX_REMEMBERED: usize = 100_000;

/// What a decision did to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new block (not in force before).
    New(Entry),
    /// A block in force was kept or extended (the longest deadline wins).
    Extended(Entry),
    /// Over the rate cap.
    RateCapped,
    /// The table is full.
    Full,
}

/// Blocks in force, past offences and recent new blocks.
#[derive(Debug, Default)]
pub struct Table {
    active: HashMap<IpAddr, Entry>,
    /// Address -> (offences, boot ns of the last block).
    offences: HashMap<IpAddr, (u32, u64)>,
    /// Boot ns of the new blocks of the last 60 s.
    recent: VecDeque<u64>,
}

const MINUTE_NS: u64 = 60_000_000_000;

impl Table {
    /// Blocks in force.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether no block is in force.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The block of `ip`, if in force.
    pub fn get(&self, ip: &IpAddr) -> Option<&Entry> {
        self.active.get(ip)
    }

    /// Every block in force, soonest to end first.
    pub fn entries(&self) -> Vec<(IpAddr, Entry)> {
        let mut all: Vec<_> = self.active.iter().map(|(ip, e)| (*ip, e.clone())).collect();
        all.sort_by_key(|(ip, e)| (e.deadline_ns, *ip));
        all
    }

    /// The offence a new block of `ip` at `now_ns` would be (1 for a first
    /// offender, or one whose last block is older than `memory_ns`).
    pub fn next_offence(&self, ip: &IpAddr, now_ns: u64, memory_ns: u64) -> u32 {
        match self.offences.get(ip) {
            Some(&(n, last)) if now_ns.saturating_sub(last) < memory_ns => n.saturating_add(1),
            _ => 1,
        }
    }

    /// Decides a block of `ip` for `ttl_ns` at `now_ns` (boot clock),
    /// `wall_ns` being the same instant on the wall clock: a block in force
    /// keeps the later of its deadline and the new one; a new block counts
    /// against `max_per_minute` and `capacity`.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        ip: IpAddr,
        (now_ns, wall_ns): (u64, u64),
        ttl_ns: u64,
        offence: u32,
        (detector, alert_id): (Detector, &str),
        max_per_minute: u32,
        capacity: usize,
    ) -> Outcome {
        let deadline_ns = now_ns.saturating_add(ttl_ns);
        let entry = Entry {
            deadline_ns,
            until_wall_ns: wall_ns.saturating_add(ttl_ns),
            detector,
            alert_id: alert_id.to_owned(),
            offence,
            ttl_s: ttl_ns / 1_000_000_000,
        };
        if let Some(e) = self.active.get_mut(&ip) {
            if deadline_ns > e.deadline_ns {
                *e = Entry {
                    offence: e.offence,
                    ..entry
                };
            }
            return Outcome::Extended(e.clone());
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| now_ns.saturating_sub(t) >= MINUTE_NS)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= max_per_minute as usize {
            return Outcome::RateCapped;
        }
        if self.active.len() >= capacity {
            return Outcome::Full;
        }
        self.recent.push_back(now_ns);
        if self.offences.len() >= MAX_REMEMBERED {
            self.forget_oldest();
        }
        self.offences.insert(ip, (offence, now_ns));
        self.active.insert(ip, entry.clone());
        Outcome::New(entry)
    }

    /// Removes and returns the blocks whose deadline is at or before
    /// `now_ns`.
    pub fn expire(&mut self, now_ns: u64) -> Vec<(IpAddr, Entry)> {
        let mut gone: Vec<(IpAddr, Entry)> = Vec::new();
        self.active.retain(|ip, e| {
            if e.deadline_ns <= now_ns {
                gone.push((*ip, e.clone()));
                false
            } else {
                true
            }
        });
        gone.sort_by_key(|(ip, e)| (e.deadline_ns, *ip));
        gone
    }

    /// Removes the block of `ip` (by hand); its offence stays remembered.
    pub fn remove(&mut self, ip: &IpAddr) -> Option<Entry> {
        self.active.remove(ip)
    }

    /// Removes every block (stop, `blocks remove --all`).
    pub fn clear(&mut self) -> Vec<(IpAddr, Entry)> {
        let mut all: Vec<_> = self.active.drain().collect();
        all.sort_by_key(|(ip, e)| (e.deadline_ns, *ip));
        all
    }

    /// Drops the older half of the offence memory.
    fn forget_oldest(&mut self) {
        let mut times: Vec<u64> = self.offences.values().map(|&(_, t)| t).collect();
        times.sort_unstable();
        let cut = times[times.len() / 2];
        self.offences.retain(|_, &mut (_, t)| t > cut);
    }
}

//! A hash map with a hard size cap that evicts its least useful entry.
//!
//! Detector state is keyed by attacker-controlled values (client IPs,
//! credentials), so every table is bounded. When full, inserting samples a
//! few entries at random and evicts the one with the lowest weight (the
//! approximated-LFU eviction of Redis, `maxmemory-policy allkeys-lfu`):
//! heavy hitters survive a flood of one-shot keys, and eviction is O(1).

use std::hash::Hash;

use indexmap::IndexMap;

/// Entries sampled per eviction: Redis's default `maxmemory-samples` (5).
/// The victim is in the lightest fifth with probability 0.67 and in the
/// heaviest 1% with probability 1e-10.
const SAMPLE: usize = 5;

/// A value a [`BoundedMap`] can rank for eviction: the lightest of a
/// sample goes first.
pub trait Weighted {
    /// The value's weight now (higher survives longer).
    fn weight(&self) -> u64;
}

/// A map of at most `capacity` entries. Entries sit in a dense vector
/// (sampled by position) behind `indexmap`'s index of 8-byte slots, which
/// keeps each entry's hash: a table of 200,000 client IPs keeps a quarter
/// of the index a map of keys to positions would. Each entry's weight is
/// kept beside it in a vector of 8-byte weights, so sampling reads 8 bytes
/// an entry (1.6 MB for 200,000, mostly cached) instead of five entries of
/// a table of tens of MB, each a cache miss.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: IndexMap<K, V, foldhash::fast::RandomState>,
    /// The weight of each entry, by position, as of its last change.
    weights: Vec<u64>,
    /// The position last handed out to change; its weight is taken at the
    /// next call that needs `weights` right.
    changed: Option<usize>,
    /// The positions drawn for the next eviction, their entries already
    /// asked of memory (an eviction's victim is then in cache).
    candidates: [usize; SAMPLE],
    capacity: usize,
    evictions: u64,
    rng: fastrand::Rng,
}

impl<K: Hash + Eq + Copy, V: Weighted> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries. The
    /// sampling is seeded, so a replay evicts the same entries every run.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: IndexMap::default(),
            weights: Vec::new(),
            changed: None,
            candidates: [usize::MAX; SAMPLE],
            capacity: capacity.max(1),
            evictions: 0,
            rng: fastrand::Rng::with_seed(0x5e45_0a5e),
        }
    }

    /// The entry for `key`, created with `make` if absent; when the map is
    /// full, the newcomer replaces the lightest of a random sample.
    pub fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.settle();
        let at = match self.map.get_index_of(&key) {
            Some(at) => at,
            None if self.map.len() < self.capacity => {
                self.weights.push(0);
                self.map.insert_full(key, make()).0
            }
            None => {
                // The newcomer takes the victim's place: no entry moves, and
                // only the two keys' index slots change.
                let victim = self.victim();
                match self.map.replace_index(victim, key) {
                    Ok(_) => {
                        self.map[victim] = make();
                        self.evictions += 1;
                        victim
                    }
                    // Present after all (it was looked up just above).
                    Err((at, _)) => at,
                }
            }
        };
        self.changed = Some(at);
        &mut self.map[at]
    }

    /// The entry for `key`, if present.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry for `key`, if present, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.settle();
        let (at, _, value) = self.map.get_full_mut(key)?;
        self.changed = Some(at);
        Some(value)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Bytes the map holds, estimated: each entry's size (with its stored
    /// hash and its weight) and its index slot with the table's overhead,
    /// plus `heap_per_entry` bytes its value owns on the heap.
    pub fn memory(&self, heap_per_entry: usize) -> u64 {
        let entry = std::mem::size_of::<(K, V)>() + 8 + 8 + 16 + heap_per_entry;
        (self.len() * entry) as u64
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Removes every entry (the eviction count stays).
    pub fn clear(&mut self) {
        self.map.clear();
        self.weights.clear();
        self.changed = None;
    }

    /// Keeps only the entries for which `keep` is true. Each removal moves
    /// the last entry into the gap, so the entries stay dense.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.settle();
        let mut at = 0;
        while let Some((k, v)) = self.map.get_index(at) {
            if keep(k, v) {
                at += 1;
            } else {
                self.map.swap_remove_index(at);
                self.weights.swap_remove(at);
            }
        }
    }

    /// Records the weight of the entry last handed out to change.
    fn settle(&mut self) {
        if let Some(at) = self.changed.take()
            && let (Some((_, v)), Some(w)) = (self.map.get_index(at), self.weights.get_mut(at))
        {
            *w = v.weight();
        }
    }

    /// The position of the lightest of the [`SAMPLE`] entries drawn at
    /// random (at the previous eviction), and the next draw.
    fn victim(&mut self) -> usize {
        let n = self.weights.len();
        // The first eviction has no candidates yet (and a full table never
        // shrinks under those drawn at the previous one).
        if self.candidates.iter().any(|&at| at >= n) {
            self.draw(n);
        }
        let victim = self.candidates.iter().copied();
        let victim = victim.min_by_key(|&at| self.weights[at]).unwrap_or(0);
        self.draw(n);
        victim
    }

    /// Draws the next eviction's candidates among the first `n` entries
    /// and prefetches each: their loads overlap the work until then
    /// instead of stalling the eviction one cache miss after another.
    fn draw(&mut self, n: usize) {
        for at in &mut self.candidates {
            *at = self.rng.usize(..n.max(1));
            if let Some((k, v)) = self.map.get_index(*at) {
                prefetch(k);
                prefetch(v);
            }
        }
    }
}

/// Asks for the cache line holding `item` (x86-64 `prefetcht0`); a hint
/// that never faults.
fn prefetch<T>(item: &T) {
    // SAFETY: SSE is in every x86-64 CPU, and a prefetch reads nothing:
    // any address is allowed.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::from_ref(item).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weighted for u64 {
        fn weight(&self) -> u64 {
            *self
        }
    }

    #[test]
    fn heavy_entries_survive_a_flood_of_light_ones() {
        let mut map = BoundedMap::new(1000);
        for heavy in 0..10u32 {
            *map.entry(heavy, || 0u64) += 1000;
        }
        for light in 1000..1_000_000u32 {
            *map.entry(light, || 0u64) += 1;
        }
        assert_eq!(map.len(), 1000);
        assert!((0..10).all(|k| map.get(&k) == Some(&1000)));
        assert_eq!(
            map.evictions(),
            999_000 - 990,
            "every light key past the free slots"
        );
    }

    #[test]
    fn a_change_through_get_mut_weighs_in() {
        let mut map = BoundedMap::new(1000);
        for heavy in 0..10u32 {
            map.entry(heavy, || 0u64);
        }
        for heavy in 0..10u32 {
            *map.get_mut(&heavy).expect("just added") = 1000;
        }
        for light in 1000..100_000u32 {
            *map.entry(light, || 0u64) += 1;
        }
        assert!((0..10).all(|k| map.get(&k) == Some(&1000)));
    }

    #[test]
    fn retain_keeps_the_index_consistent() {
        let mut map = BoundedMap::new(10);
        for k in 0..10u32 {
            *map.entry(k, || 0) = u64::from(k);
        }
        map.retain(|k, _| k % 2 == 0);
        assert_eq!(map.len(), 5);
        assert!((0..10).all(|k| map.get(&k).is_some() == (k % 2 == 0)));
        assert_eq!(map.get(&8), Some(&8));
    }

    #[test]
    fn room_a_retain_frees_is_filled_before_anything_is_evicted() {
        let mut map = BoundedMap::new(10);
        for k in 0..20u32 {
            *map.entry(k, || 0) = u64::from(k);
        }
        map.retain(|k, _| *k >= 17);
        let kept = map.len() as u64;
        assert!((1..=3).contains(&kept), "key 19, just added, is kept");
        for k in 100..120u32 {
            *map.entry(k, || 0) = u64::from(k);
        }
        assert_eq!(map.len(), 10);
        assert_eq!(map.evictions(), 10 + 20 - (10 - kept));
        assert_eq!((0..200).filter(|k| map.get(k).is_some()).count(), 10);
    }
}

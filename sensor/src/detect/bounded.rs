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
/// heaviest 1% with probability 1e-10; each sample is a likely cache miss
/// in a full table, so a flood of new keys pays per sample.
const SAMPLE: usize = 5;

/// A map of at most `capacity` entries. Entries sit in a dense vector
/// (sampled by position) behind `indexmap`'s index of 8-byte slots, which
/// keeps each entry's hash: a table of 200,000 client IPs keeps a quarter
/// of the index a map of keys to positions would, and an eviction fixes
/// the moved entry's slot without hashing its key again.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: IndexMap<K, V, foldhash::fast::RandomState>,
    capacity: usize,
    evictions: u64,
    rng: fastrand::Rng,
}

impl<K: Hash + Eq + Copy, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries. The
    /// sampling is seeded, so a replay evicts the same entries every run.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: IndexMap::default(),
            capacity: capacity.max(1),
            evictions: 0,
            rng: fastrand::Rng::with_seed(0x5e45_0a5e),
        }
    }

    /// The entry for `key`, created with `make` if absent; when the map is
    /// full, the lightest of a random sample (by `weight`) is evicted first.
    pub fn entry(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
        weight: impl Fn(&V) -> u64,
    ) -> &mut V {
        let at = match self.map.get_index_of(&key) {
            Some(at) => at,
            None => {
                if self.map.len() >= self.capacity {
                    self.evict(&weight);
                }
                self.map.insert_full(key, make()).0
            }
        };
        &mut self.map[at]
    }

    /// The entry for `key`, if present.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry for `key`, if present, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Bytes the map holds, estimated: each entry's size (with its stored
    /// hash) and its index slot with the table's overhead, plus
    /// `heap_per_entry` bytes its value owns on the heap.
    pub fn memory(&self, heap_per_entry: usize) -> u64 {
        let entry = std::mem::size_of::<(K, V)>() + 8 + 16 + heap_per_entry;
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
    }

    /// Keeps only the entries for which `keep` is true. Each removal moves
    /// the last entry into the gap, as an eviction does, so the order of
    /// what is left (which sampling and ties see) matches an eviction's.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut at = 0;
        while let Some((k, v)) = self.map.get_index(at) {
            if keep(k, v) {
                at += 1;
            } else {
                self.map.swap_remove_index(at);
            }
        }
    }

    fn evict(&mut self, weight: &impl Fn(&V) -> u64) {
        let n = self.map.len();
        let victim = (0..SAMPLE.min(n))
            .map(|_| self.rng.usize(..n))
            .min_by_key(|&at| self.map.get_index(at).map_or(0, |(_, v)| weight(v)))
            .unwrap_or(0);
        self.map.swap_remove_index(victim);
        self.evictions += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_entries_survive_a_flood_of_light_ones() {
        let mut map = BoundedMap::new(1000);
        for heavy in 0..10u32 {
            *map.entry(heavy, || 0u64, |w| *w) += 1000;
        }
        for light in 1000..1_000_000u32 {
            *map.entry(light, || 0u64, |w| *w) += 1;
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
    fn retain_keeps_the_index_consistent() {
        let mut map = BoundedMap::new(10);
        for k in 0..10u32 {
            *map.entry(k, || 0, |w| *w) = u64::from(k);
        }
        map.retain(|k, _| k % 2 == 0);
        assert_eq!(map.len(), 5);
        assert!((0..10).all(|k| map.get(&k).is_some() == (k % 2 == 0)));
        assert_eq!(map.get(&8), Some(&8));
    }
}

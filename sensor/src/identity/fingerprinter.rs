//! Credential fingerprints with a cache of the recent ones.
//!
//! A credential is fingerprinted on every request that carries it, and on
//! both legs (Kong forwards the key upstream unless `hide_credentials` is
//! set), while most requests on a gateway come from a few consumers reusing
//! their keys. Keyed BLAKE3 costs about 650 instructions a credential here;
//! a remembered one costs a hash and a compare.
//!
//! The cache is direct-mapped: [`SLOTS`] slots, the slot picked by a hash
//! seeded at random per process, so a client cannot aim its keys at one
//! slot. A slot holds the exact bytes it was computed from and answers only
//! when they are equal, so a hash collision costs a recomputation, never a
//! wrong fingerprint. Keys built to miss cost one compare more than no
//! cache. The slots hold recent credentials in the clear, as the reassembly
//! buffers hold in-flight heads (and the process holds the key itself);
//! they are zeroed when the resolver is dropped.

use std::{cell::RefCell, hash::BuildHasher};

use foldhash::fast::RandomState;

use super::fingerprint::{Fingerprint, FingerprintKey, Scoped};

/// Slots in the cache: 1024 of 96 bytes, 96 KiB.
pub const SLOTS: usize = 1024;

/// One remembered credential: `scope ++ [0x00] ++ secret` and its
/// fingerprint; `None` while the slot is empty.
type Slot = Option<(Scoped, Fingerprint)>;

/// Fingerprints credentials with a [`FingerprintKey`] as
/// [`FingerprintKey::scoped`] does, remembering the last one in each slot.
/// Not `Sync`: each pipeline has its own.
pub struct Fingerprinter {
    key: FingerprintKey,
    slots: RefCell<Box<[Slot]>>,
    seed: RandomState,
}

impl Fingerprinter {
    /// A fingerprinter for `key`, its cache empty.
    pub fn new(key: FingerprintKey) -> Self {
        Self {
            key,
            slots: RefCell::new((0..SLOTS).map(|_| None).collect()),
            seed: RandomState::default(),
        }
    }

    /// `key.scoped(scope, secret)`: from the cache when the same bytes were
    /// the last to use their slot. Longer than one block: not cached.
    pub fn scoped(&self, scope: &[u8], secret: &[u8]) -> Fingerprint {
        let Some(block) = Scoped::new(scope, secret) else {
            return self.key.scoped(scope, secret);
        };
        let bytes = block.bytes();
        let at = self.seed.hash_one(bytes) as usize % SLOTS;
        let mut slots = self.slots.borrow_mut();
        if let Some((held, fingerprint)) = &slots[at]
            && held.bytes() == bytes
        {
            return *fingerprint;
        }
        let fingerprint = self.key.fingerprint(bytes);
        // The block is zero past the secret: nothing of the slot's last
        // one is left in it.
        slots[at] = Some((block, fingerprint));
        fingerprint
    }
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter(..)")
    }
}

impl Drop for Fingerprinter {
    fn drop(&mut self) {
        for (held, _) in self.slots.get_mut().iter_mut().flatten() {
            held.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fingerprinter, SLOTS};
    use crate::identity::FingerprintKey;

    /// Every answer equals the uncached fingerprint: first sights, repeats,
    /// keys that share slots, a secret that is a prefix of another, the
    /// empty secret, and one too long for a block.
    #[test]
    fn cached_fingerprints_equal_the_computed_ones() {
        let key = FingerprintKey::from_bytes([5; 32]);
        let cache = Fingerprinter::new(key.clone());
        let secrets: Vec<Vec<u8>> = (0..4 * SLOTS)
            .map(|i| format!("key-{}", i % (2 * SLOTS)).into_bytes())
            .chain([b"key-1".to_vec(), b"key-".to_vec(), vec![], vec![b'x'; 70]])
            .collect();
        for round in 0..2 {
            for secret in &secrets {
                for scope in [&b"apikey"[..], b"bearer"] {
                    let want = key.scoped(scope, secret);
                    assert_eq!(cache.scoped(scope, secret), want, "round {round}");
                }
            }
        }
    }
}

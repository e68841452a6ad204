//! Keyed credential fingerprints.
//!
//! The hash is BLAKE3 in keyed mode (`blake3::keyed_hash`), truncated
//! to 128 bits. Why BLAKE3 rather than HMAC-SHA256: keyed BLAKE3 is a PRF by
//! design (no inner/outer double hash), so a credential of up to 64 bytes
//! costs one compression instead of HMAC's two-plus, and the "precomputed
//! keyed state" is just the key itself (the key words are the chaining
//! value), so there is nothing to clone per call. 128 bits is plenty for
//! telling credentials apart (a collision among 2^40 credentials has
//! probability ~2^-49) and keeps a [`Fingerprint`] at 16 bytes and `Copy`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The per-installation secret that keys every [`Fingerprint`]: 32 bytes.
///
/// Two installations with different keys give unrelated fingerprints for the
/// same credential, so a fingerprint leaked from one sensor can't be matched
/// against guesses without the key. `Debug` never prints the bytes. Load it
/// with [`FingerprintKey::load_or_create`] (in `key_file.rs`).
#[derive(Clone)]
pub struct FingerprintKey {
    key: [u8; 32],
}

impl FingerprintKey {
    /// A key from its 32 raw bytes (tests, or a key held elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { key: bytes }
    }

    /// The fingerprint of `secret`, an arbitrary byte string: keyed BLAKE3
    /// of exactly these bytes, first 16 bytes of the output.
    ///
    /// [`Resolver`](super::Resolver) fingerprints a credential as
    /// `fingerprint(scope ++ [0x00] ++ secret)`, where `scope` names what the
    /// secret is (see [`scope`](super::scope)), so `Basic x` and
    /// `Bearer x` differ.
    pub fn fingerprint(&self, secret: &[u8]) -> Fingerprint {
        Fingerprint::prefix(blake3::keyed_hash(&self.key, secret))
    }

    /// `fingerprint(scope ++ [0x00] ++ secret)`. Scopes are ASCII labels
    /// without NUL, so the encoding is unambiguous.
    pub(super) fn scoped(&self, scope: &[u8], secret: &[u8]) -> Fingerprint {
        match Scoped::new(scope, secret) {
            Some(block) => self.fingerprint(block.bytes()),
            None => self.fingerprint_parts(&[scope, &[0], secret]),
        }
    }

    /// The fingerprint of `parts` concatenated.
    fn fingerprint_parts(&self, parts: &[&[u8]]) -> Fingerprint {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        for part in parts {
            hasher.update(part);
        }
        Fingerprint::prefix(hasher.finalize())
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// `scope ++ [0x00] ++ secret` in one BLAKE3 block (64 bytes) on the
/// stack: most credentials fit with their scope, and are hashed in one
/// call instead of three incremental updates.
pub(super) struct Scoped {
    block: [u8; 64],
    len: usize,
}

impl Scoped {
    /// The block, or `None` when scope and secret need more than 64 bytes.
    #[inline]
    pub(super) fn new(scope: &[u8], secret: &[u8]) -> Option<Self> {
        let len = scope.len() + 1 + secret.len();
        let mut block = [0u8; 64];
        block.get_mut(scope.len() + 1..len)?.copy_from_slice(secret);
        block[..scope.len()].copy_from_slice(scope);
        Some(Self { block, len })
    }

    /// The concatenated bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.block[..self.len]
    }

    /// Overwrites the block with zeros (a secret held past its request).
    pub(super) fn zeroize(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.block);
    }
}

/// A keyed hash of a credential: 128 bits, shown and serialized as 32
/// lowercase hex characters. Not a secret: it can go into events, alerts and
/// metric labels.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// A hash's first 16 bytes: BLAKE3's 32-byte output is its extendable
    /// output's prefix, and costs one compression without the output
    /// reader.
    fn prefix(hash: blake3::Hash) -> Self {
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash.as_bytes()[..16]);
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::text::hex16(self.0).as_str())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(crate::text::hex16(self.0).as_str())
    }
}

/// A string that is not a fingerprint's 32 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a credential fingerprint (32 hex digits)")]
pub struct BadFingerprint;

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Parses the 32 hex digits [`Fingerprint`]'s `Display` writes (either
    /// case): fingerprints read back from the fleet stream.
    fn from_str(s: &str) -> Result<Self, BadFingerprint> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return Err(BadFingerprint);
        }
        let digit = |b: u8| char::from(b).to_digit(16).ok_or(BadFingerprint);
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            out[i] =
                u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).map_err(|_| BadFingerprint)?;
        }
        Ok(Self(out))
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::text::parse_str(deserializer, str::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> FingerprintKey {
        FingerprintKey::from_bytes([b; 32])
    }

    #[test]
    fn is_the_first_16_bytes_of_keyed_blake3() {
        for secret in [&b""[..], b"k9Qf3vXa7LmT2pRw", &[7; 200]] {
            let whole = blake3::keyed_hash(&[3; 32], secret);
            let fp = key(3).fingerprint(secret);
            assert_eq!(fp.0[..], whole.as_bytes()[..16]);
            let xof = &mut [0; 16];
            blake3::Hasher::new_keyed(&[3; 32])
                .update(secret)
                .finalize_xof()
                .fill(xof);
            assert_eq!(&fp.0, xof);
        }
    }

    #[test]
    fn same_secret_same_key_same_fingerprint() {
        assert_eq!(key(1).fingerprint(b"s3cret"), key(1).fingerprint(b"s3cret"));
        assert_ne!(key(1).fingerprint(b"s3cret"), key(1).fingerprint(b"s3cres"));
    }

    #[test]
    fn different_key_different_fingerprint() {
        assert_ne!(key(1).fingerprint(b"s3cret"), key(2).fingerprint(b"s3cret"));
    }

    #[test]
    fn scoped_is_fingerprint_of_scope_nul_secret() {
        let k = key(7);
        assert_eq!(k.scoped(b"bearer", b"tok"), k.fingerprint(b"bearer\0tok"));
        assert_ne!(k.scoped(b"bearer", b"tok"), k.scoped(b"basic", b"tok"));
        // Either side of the one-block stack copy (64 bytes with the scope).
        for len in [56, 57, 58, 200] {
            let secret = vec![b'k'; len];
            let mut whole = b"bearer\0".to_vec();
            whole.extend_from_slice(&secret);
            assert_eq!(k.scoped(b"bearer", &secret), k.fingerprint(&whole), "{len}");
        }
    }

    #[test]
    fn display_is_32_lowercase_hex() {
        let fp = key(3).fingerprint(b"x");
        let s = fp.to_string();
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({s})"));
        assert_eq!(Fingerprint([0xab; 16]).to_string(), "ab".repeat(16));
    }

    #[test]
    fn serializes_as_hex_string() {
        let fp = Fingerprint([0x01; 16]);
        assert_eq!(
            serde_json::to_string(&fp).unwrap(),
            format!("\"{}\"", "01".repeat(16))
        );
    }

    #[test]
    fn parses_what_it_prints() {
        let fp = key(4).fingerprint(b"y");
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(
            fp.to_string()
                .to_uppercase()
                .parse::<Fingerprint>()
                .unwrap(),
            fp
        );
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        for bad in ["", "ab", &"g".repeat(32), &"a".repeat(33), &"é".repeat(16)] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ordering_and_hash_follow_bytes() {
        use std::collections::HashSet;
        let (a, b) = (Fingerprint([0; 16]), Fingerprint([1; 16]));
        assert!(a < b);
        let set: HashSet<_> = [a, b, a].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn key_debug_hides_bytes() {
        let k = FingerprintKey::from_bytes([0x5a; 32]);
        let dbg = format!("{k:?}");
        assert_eq!(dbg, "FingerprintKey(..)");
        assert!(!dbg.contains("90")); // 0x5a == 90
    }
}

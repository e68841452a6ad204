//! Kong's request id as a transaction keeps it, and as the join keys the
//! two legs by it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    swar::{HIGH, ONES, within},
    text::{Field, hex16, render},
};

/// A request id. Kong's own (`X-Kong-Request-Id`: nginx's `$request_id`,
/// 32 lowercase hex digits; Kong docs, "headers" in kong.conf) is kept as
/// the number it spells: no heap allocation, and cheap to hash, compare
/// and copy. Any other id is kept as its rendered text
/// ([`Field::RequestId`]: escaped, capped at 128 bytes).
///
/// Displays and serializes as the text either way (`Hex` as 32 lowercase
/// digits, zero padded), so the two forms never name the same id: equal
/// ids are equal values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// 32 lowercase hex digits, as the number they spell.
    Hex(u128),
    /// Any other id, rendered.
    Text(Box<str>),
}

/// The number eight lowercase hex digits spell, read as one word (the
/// first digit in its lowest byte), or `None` if any byte is not one.
/// Range tests on the seven-bit bytes, then each byte's value (`a`-`f`
/// have bit 6, digits do not) folded pairwise into the low 32 bits.
#[inline(always)]
fn hex8(word: u64) -> Option<u32> {
    let low = word & !HIGH;
    let digits = (within(low, b'0', b'9') | within(low, b'a', b'f')) & !word;
    if digits != HIGH {
        return None;
    }
    // The first digit is the most significant: bytes in reading order.
    let w = word.swap_bytes();
    let mut x = (w & (ONES * 0x0f)) + 9 * ((w >> 6) & ONES);
    x = (x | x >> 4) & 0x00ff_00ff_00ff_00ff;
    x = (x | x >> 8) & 0x0000_ffff_0000_ffff;
    x = (x | x >> 16) & 0xffff_ffff;
    Some(x as u32)
}

impl RequestId {
    /// The id a header `value` carries. Kong's form is read eight digits
    /// a word, without a branch per digit (random hex digits would
    /// mispredict half of them).
    pub fn new(value: &[u8]) -> Self {
        if value.len() == 32 {
            let (words, _) = value.as_chunks::<8>();
            let n = words.iter().try_fold(0u128, |n, word| {
                hex8(u64::from_le_bytes(*word)).map(|h| n << 32 | u128::from(h))
            });
            if let Some(n) = n {
                return Self::Hex(n);
            }
        }
        Self::Text(render(value, Field::RequestId).into_boxed_str())
    }

    /// Heap bytes it holds (for the memory budget).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Hex(_) => 0,
            Self::Text(t) => t.len(),
        }
    }
}

impl From<&str> for RequestId {
    fn from(id: &str) -> Self {
        Self::new(id.as_bytes())
    }
}

impl RequestId {
    /// Calls `f` with the id's text: `Hex` as 32 digits written on the
    /// stack, without the formatting machinery.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Self::Hex(n) => f(hex16(n.to_be_bytes()).as_str()),
            Self::Text(t) => f(t),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|t| f.write_str(t))
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_text(|t| s.serialize_str(t))
    }
}

/// An id read back from its text (a fleet event's), as [`RequestId::new`]
/// reads a header.
impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, |text| {
            Ok::<_, std::convert::Infallible>(Self::new(text.as_bytes()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn kong_request_ids_are_kept_as_the_number_they_spell() {
        let id = "0123456789abcdeffedcba9876543210";
        let kept = RequestId::from(id);
        assert_eq!(kept, RequestId::Hex(0x0123456789abcdeffedcba9876543210));
        assert_eq!(kept.to_string(), id);
        assert_eq!(serde_json::to_string(&kept).unwrap(), format!("\"{id}\""));
        let zeros = "00000000000000000000000000000001";
        assert_eq!(RequestId::from(zeros), RequestId::Hex(1));
        assert_eq!(RequestId::Hex(1).to_string(), zeros);
        // A bad digit in either half makes it text, kept as it came.
        for other in [
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "g123456789abcdef0123456789abcdef",
            "0123456789abcdef",
            "0123456789abcdef0123456789abcdef0",
            "r6",
        ] {
            let kept = RequestId::from(other);
            assert_eq!(kept, RequestId::Text(other.into()));
            assert_eq!(kept.to_string(), other);
        }
    }

    /// Every byte value at every position of a Kong id: `Hex` exactly when
    /// the id is 32 lowercase hex digits, spelling what `from_str_radix`
    /// reads.
    #[test]
    fn hex_is_read_as_the_standard_library_reads_it() {
        let id = *b"0123456789abcdeffedcba9876543210";
        for at in 0..id.len() {
            for b in 0..=255u8 {
                let mut edited = id;
                edited[at] = b;
                let lower_hex = edited
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
                let want = std::str::from_utf8(&edited)
                    .ok()
                    .filter(|_| lower_hex)
                    .and_then(|s| u128::from_str_radix(s, 16).ok());
                match RequestId::new(&edited) {
                    RequestId::Hex(n) => assert_eq!(Some(n), want),
                    RequestId::Text(_) => assert_eq!(want, None, "{}", edited.escape_ascii()),
                }
            }
        }
    }

    #[test]
    fn other_ids_are_rendered() {
        let kept = RequestId::new(b"a\r\nb");
        assert_eq!(kept.to_string(), "a\\x0D\\x0Ab");
        assert_eq!(kept.heap_bytes(), 10);
    }
}

//! Kong's request id as a transaction keeps it, and as the join keys the
//! two legs by it.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::text::{Field, render};

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

/// The value of each lowercase hex digit, 0xff for any other byte.
static HEX_DIGITS: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

impl RequestId {
    /// The id a header `value` carries. Without a branch per digit: random
    /// hex digits would mispredict half of them. Each half is built in a
    /// `u64`, whose shift is one instruction (a `u128`'s is three or four).
    pub fn new(value: &[u8]) -> Self {
        if value.len() == 32 {
            let (mut halves, mut bad) = ([0u64; 2], 0u8);
            for (half, digits) in halves.iter_mut().zip(value.chunks_exact(16)) {
                for &b in digits {
                    let d = HEX_DIGITS[usize::from(b)];
                    bad |= d;
                    *half = *half << 4 | u64::from(d & 0x0f);
                }
            }
            if bad & 0xf0 == 0 {
                return Self::Hex(u128::from(halves[0]) << 64 | u128::from(halves[1]));
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

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hex(n) => write!(f, "{n:032x}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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

    #[test]
    fn other_ids_are_rendered() {
        let kept = RequestId::new(b"a\r\nb");
        assert_eq!(kept.to_string(), "a\\x0D\\x0Ab");
        assert_eq!(kept.heap_bytes(), 10);
    }
}

//! Eight bytes at a time ("SIMD within a register"): the word tests the
//! per-request scanners share (field names, Kong request ids, the
//! printable-text check, the request target's spaces; the strict HTTP head
//! reads sixteen at a time, in `lanes`).
//!
//! A word is eight bytes read little-endian (the first byte lowest). Each
//! test sets bit 7 of every byte it selects, so a result is a mask of
//! [`HIGH`] bits: zero when no byte matched, and the first match is
//! `trailing_zeros() / 8`. The range tests run on the bytes cut to seven
//! bits, where adding up to 0x80 never carries into the next byte.

/// 0x01 in every byte of a word.
pub const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// Bit 7 of every byte of a word.
pub const HIGH: u64 = ONES * 0x80;

/// Bit 7 set in each byte of `word` from `lo` to `hi` (both below 0x80),
/// for a word whose bytes are all below 0x80 (`word & !HIGH`): adding
/// `0x80 - lo` sets bit 7 from `lo` up, adding `0x7f - hi` from past `hi`.
#[inline(always)]
pub fn within(low: u64, lo: u8, hi: u8) -> u64 {
    debug_assert!(low & HIGH == 0 && lo <= hi && hi < 0x80);
    (low + ONES * u64::from(0x80 - lo)) & !(low + ONES * u64::from(0x7f - hi)) & HIGH
}

/// Bit 7 set in each byte of `word` that is not printable ASCII (below
/// 0x20, DEL, or 0x80 and up). With `low` the bytes cut to seven bits,
/// adding 0x01 sets bit 7 only from DEL, adding 0x60 only from 0x20 up.
#[inline(always)]
pub fn unprintable(word: u64) -> u64 {
    let low = word & !HIGH;
    (word | (low + ONES) | !(low + ONES * 0x60)) & HIGH
}

/// Bit 7 set in each byte of `word` equal to `byte` (below 0x80).
#[inline(always)]
pub fn equal(word: u64, byte: u8) -> u64 {
    debug_assert!(byte < 0x80);
    let low = (word ^ (ONES * u64::from(byte))) & !HIGH;
    !(low + ONES * 0x7f) & !word & HIGH
}

/// The OR of `test` over the words of `bytes`, without an early exit: the
/// whole words, and one more ending at the last byte (overlapping the one
/// before it), so no byte is left over. `None` when `bytes` is shorter
/// than a word (the caller tests those bytes one by one).
#[inline(always)]
pub fn any_word(bytes: &[u8], test: impl Fn(u64) -> u64) -> Option<u64> {
    let last = u64::from_le_bytes(*bytes.last_chunk::<8>()?);
    let (words, _) = bytes.as_chunks::<8>();
    Some(
        words
            .iter()
            .fold(test(last), |odd, w| odd | test(u64::from_le_bytes(*w))),
    )
}

#[cfg(test)]
mod tests {
    use super::{any_word, equal, unprintable, within};

    /// A byte a test selects is found at every position of inputs from 8
    /// to 40 bytes (whole words and the overlapping last one); shorter
    /// inputs are the caller's.
    #[test]
    fn any_word_sees_every_byte() {
        for len in 0..=40 {
            let clean = vec![b'a'; len];
            let found = any_word(&clean, |w| equal(w, b' '));
            assert_eq!(found, (len >= 8).then_some(0), "{len}");
            for at in 0..len {
                let mut bytes = clean.clone();
                bytes[at] = b' ';
                let found = any_word(&bytes, |w| equal(w, b' '));
                assert_eq!(found.map(|m| m != 0), (len >= 8).then_some(true));
            }
        }
    }

    /// Each test against its byte-by-byte definition, for every byte value
    /// in every lane, beside bytes of every other value.
    #[test]
    fn word_tests_agree_with_their_definitions_on_every_byte() {
        for lane in 0..8 {
            for b in 0..=255u8 {
                for fill in [0x00, b' ', b'a', b'~', 0x7f, 0x80, 0xff] {
                    let mut bytes = [fill; 8];
                    bytes[lane] = b;
                    let word = u64::from_le_bytes(bytes);
                    let mask = |f: &dyn Fn(u8) -> bool| {
                        u64::from_le_bytes(bytes.map(|b| if f(b) { 0x80 } else { 0 }))
                    };
                    assert_eq!(unprintable(word), mask(&|b| !(b' '..=b'~').contains(&b)));
                    for byte in [b'\\', b':', b'\r', 0x00, 0x7f] {
                        assert_eq!(equal(word, byte), mask(&|b| b == byte), "{b:#x} {byte:#x}");
                    }
                    if bytes.iter().all(u8::is_ascii) {
                        for (lo, hi) in [(b'0', b'9'), (b'a', b'z'), (0x00, 0x7f), (b'-', b'-')] {
                            let want = mask(&|b| (lo..=hi).contains(&b));
                            assert_eq!(within(word, lo, hi), want, "{b:#x} {lo}-{hi}");
                        }
                    }
                }
            }
        }
    }
}

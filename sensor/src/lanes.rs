//! Sixteen bytes at a time: the byte-class tests of the strict HTTP head,
//! a few vector compares per class.
//!
//! A block is sixteen bytes as `wide::i8x16` (SSE2 on x86-64, NEON on
//! aarch64, plain lanes elsewhere; safe code either way). Each test returns
//! a mask with bit `i` set when byte `i` is in the class, so the first
//! match is `trailing_zeros()`. [`block`] pads a short tail with NULs, which
//! are unprintable and not name bytes: a scan for either class stops at
//! the end of its input without a separate tail loop.

use wide::i8x16;

/// The first sixteen bytes of `bytes`, or all of them followed by NULs.
#[inline(always)]
pub fn block(bytes: &[u8]) -> i8x16 {
    let out = match bytes.first_chunk::<16>() {
        Some(first) => *first,
        None => {
            let mut out = [0u8; 16];
            out[..bytes.len()].copy_from_slice(bytes);
            out
        }
    };
    i8x16::new(out.map(|b| b as i8))
}

/// The bytes of `v` that are not printable ASCII (below 0x20, DEL, or 0x80
/// and up). Read as signed, 0x80 and up are negative, so one compare takes
/// them with the controls.
#[inline(always)]
pub fn unprintable(v: i8x16) -> u32 {
    (v.simd_lt(i8x16::splat(0x20)) | v.simd_eq(i8x16::splat(0x7f))).to_bitmask()
}

/// The bytes of `v` that are not a letter, a digit or `-` (the tchars
/// nearly every field name is made of). Setting bit 5 folds `A`-`Z` onto
/// `a`-`z` and nothing else onto them; bytes from 0x80 are negative and
/// fall outside every range.
#[inline(always)]
pub fn not_name(v: i8x16) -> u32 {
    let folded = v | i8x16::splat(0x20);
    let letter = folded.simd_gt(i8x16::splat(0x60)) & folded.simd_lt(i8x16::splat(0x7b));
    let digit = v.simd_gt(i8x16::splat(0x2f)) & v.simd_lt(i8x16::splat(0x3a));
    let dash = v.simd_eq(i8x16::splat(0x2d));
    !(letter | digit | dash).to_bitmask() & 0xffff
}

#[cfg(test)]
mod tests {
    use super::{block, not_name, unprintable};
    use crate::field_name::is_tchar;

    /// Each test against its byte-by-byte definition, for every byte value
    /// in every lane, beside bytes of every other class, and with the block
    /// cut short there.
    #[test]
    fn lane_tests_agree_with_their_definitions_on_every_byte() {
        let mask = |bytes: &[u8; 16], f: &dyn Fn(u8) -> bool| {
            (0..16).filter(|&i| f(bytes[i])).fold(0, |m, i| m | 1 << i)
        };
        let name = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
        for lane in 0..16 {
            for b in 0..=255u8 {
                for fill in [0x00, b' ', b'a', b'Z', b'-', b'~', 0x7f, 0x80, 0xff] {
                    let mut bytes = [fill; 16];
                    bytes[lane] = b;
                    let v = block(&bytes);
                    assert_eq!(
                        unprintable(v),
                        mask(&bytes, &|b| !(b' '..=b'~').contains(&b))
                    );
                    assert_eq!(not_name(v), mask(&bytes, &|b| !name(b)), "{b:#x}");
                    let short = block(&bytes[..lane]);
                    assert_eq!(unprintable(short) >> lane, 0xffff >> lane);
                    assert_eq!(not_name(short) >> lane, 0xffff >> lane);
                }
            }
        }
        // A name byte by this test is a tchar (the slow path takes the rest).
        assert!((0..=255).filter(|&b| name(b)).all(is_tchar));
    }
}

//! The decoder held to `loona-hpack`'s (the reference it replaced) on
//! random sequences of header blocks using every representation, with and
//! without Huffman coding, and to RFC 7541's examples.

use proptest::prelude::*;

use super::{Hpack, huffman::tests::encode as huffman};

/// An integer with a `prefix`-bit prefix after `flags` (RFC 7541 5.1).
fn integer(out: &mut Vec<u8>, flags: u8, prefix: u8, mut value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    value -= mask;
    while value >= 128 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A string literal, Huffman-coded or not (RFC 7541 5.2).
fn string(out: &mut Vec<u8>, bytes: &[u8], coded: bool) {
    if coded {
        let c = huffman(bytes);
        integer(out, 0x80, 7, c.len());
        out.extend(c);
    } else {
        integer(out, 0, 7, bytes.len());
        out.extend(bytes);
    }
}

/// One field representation: (kind, index, name, value, Huffman name,
/// Huffman value). Kinds: 0 indexed; 1..=3 literal with incremental
/// indexing, without indexing, never indexed (index 0: a new name); 4 a
/// table size update (`index` is the size).
type Op = (u8, usize, Vec<u8>, Vec<u8>, bool, bool);

fn op() -> impl Strategy<Value = Op> {
    let text = proptest::collection::vec(prop_oneof![b'a'..=b'z', Just(b'-'), any::<u8>()], 0..24);
    (
        0u8..5,
        0usize..80,
        text.clone(),
        text,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(k, i, n, v, hn, hv)| (k, if k == 4 { i * 64 } else { i }, n, v, hn, hv))
}

fn block(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, index, name, value, hn, hv) in ops {
        let (flags, prefix) = match kind {
            0 => {
                integer(&mut out, 0x80, 7, *index);
                continue;
            }
            1 => (0x40, 6),
            2 => (0x00, 4),
            3 => (0x10, 4),
            _ => {
                integer(&mut out, 0x20, 5, *index);
                continue;
            }
        };
        integer(&mut out, flags, prefix, *index);
        if *index == 0 {
            string(&mut out, name, *hn);
        }
        string(&mut out, value, *hv);
    }
    out
}

proptest! {
    #[test]
    fn decodes_as_loona_hpack(blocks in proptest::collection::vec(proptest::collection::vec(op(), 0..12), 1..8)) {
        let (mut ours, mut reference) = (Hpack::default(), loona_hpack::Decoder::new());
        reference.set_max_allowed_table_size(4096);
        for ops in &blocks {
            let bytes = block(ops);
            let mut expected = Vec::new();
            let ok = reference
                .decode_with_cb(&bytes, |n, v| expected.push((n.into_owned(), v.into_owned())))
                .is_ok();
            let got = ours.decode(&bytes);
            prop_assert_eq!(got.is_some(), ok, "{:02x?}", bytes);
            match got {
                Some(h) => prop_assert_eq!(h.fields, expected),
                None => break,
            }
        }
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panic(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..4)) {
        let mut ours = Hpack::default();
        for b in &blocks {
            let _ = ours.decode(b);
        }
    }
}

/// RFC 7541 Appendix C.4: three requests on one connection, Huffman-coded,
/// the second and third reading the first's dynamic table entries.
#[test]
fn rfc_7541_c4_requests() {
    let blocks: [&[u8]; 3] = [
        &[
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ],
        &[
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ],
        &[
            0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
            0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
        ],
    ];
    let mut hpack = Hpack::default();
    let decoded: Vec<Vec<(String, String)>> = blocks
        .iter()
        .map(|b| {
            let h = hpack.decode(b).unwrap();
            h.fields
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect()
        })
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    let first = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    assert_eq!(decoded[0], pairs(&first));
    let mut second = first.to_vec();
    second.push(("cache-control", "no-cache"));
    assert_eq!(decoded[1], pairs(&second));
    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    assert_eq!(decoded[2], pairs(&third));
}

/// A block of 3,276 one-letter Huffman-coded fields (16 KiB): the decoding
/// that cost `loona-hpack` 111 ms; here it must stay a plain decode.
#[test]
fn a_block_of_huffman_literals_decodes() {
    let field = [0x00u8, 0x81, 0x1f, 0x81, 0x1f];
    let bytes: Vec<u8> = field.iter().copied().cycle().take(3276 * 5).collect();
    let h = Hpack::default().decode(&bytes).unwrap();
    assert_eq!(h.fields.len(), super::MAX_HEADERS);
    assert!(h.capped);
    assert_eq!(h.fields[0], (b"a".to_vec(), b"a".to_vec()));
}

//! Header walk used by the kernel programs: Ethernet (+ up to two 802.1Q / 802.1ad tags), IPv4 or IPv6
//! (with its common extension headers), TCP. Bytes are read through a
//! `load(offset, dst, len)` closure (`bpf_skb_load_bytes` / `bpf_xdp_load_bytes`),
//! so the same code serves tc and XDP and works on non-linear packets.

use crate::{SegmentHeader, checks, tcp_flags};

const ETH_HLEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
/// IPv6 extension headers walked (RFC 8200 section 4; AH: RFC 4302 section 2.2).
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
const MAX_VLAN_TAGS: usize = 2;
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// A parsed TCP segment: the record header (time, hook, direction and
/// ifindex still unset; the IP checks in `checks`) and where its TCP header
/// and payload are in the frame.
pub struct Parsed {
    /// The record header, with addresses, ports, seq/ack, flags and lengths.
    pub header: SegmentHeader,
    /// Offset of the TCP header from the start of the frame.
    pub tcp_offset: u32,
    /// Bytes of TCP header and payload (what the TCP checksum covers).
    pub tcp_len: u32,
    /// Offset of the first TCP payload byte from the start of the frame.
    pub payload_offset: u32,
}

/// Why a frame is not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a TCP segment worth recording (not TCP, a pure ACK without
    /// payload).
    Other,
    /// A header read failed: the headers are truncated, or beyond what
    /// `load` reaches.
    Unread,
    /// An IPv6 fragment of TCP (IPv4 ones come back as records with
    /// `checks::FRAGMENT`).
    Fragment,
}

/// Adds `bytes` to a ones' complement sum as little-endian 16-bit words,
/// the order the kernel's `csum_partial` (and so `bpf_csum_diff`) sums in;
/// the folded result is the same either way (RFC 1071 section 2(B)). An
/// odd last byte is padded with zero.
#[inline(always)]
pub fn sum16(acc: u64, bytes: &[u8]) -> u64 {
    let mut acc = acc;
    let mut i = 0;
    while i + 1 < bytes.len() {
        acc += u64::from(u16::from_le_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    if i < bytes.len() {
        acc += u64::from(bytes[i]);
    }
    acc
}

/// Folds a ones' complement sum to 16 bits (RFC 1071).
#[inline(always)]
pub fn fold(mut acc: u64) -> u16 {
    for _ in 0..4 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The ones' complement sum of the TCP pseudo-header (RFC 9293 section
/// 3.1) of a segment of `tcp_len` bytes between `header`'s addresses.
#[inline(always)]
pub fn pseudo_header_sum(header: &SegmentHeader, tcp_len: u32) -> u64 {
    let addrs = if header.family == 4 { 4 } else { 16 };
    let mut acc = sum16(0, &header.saddr[..addrs]);
    acc = sum16(acc, &header.daddr[..addrs]);
    let len = tcp_len.to_be_bytes();
    sum16(acc, &[len[0], len[1], len[2], len[3], 0, IPPROTO_TCP])
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// `N` bytes at frame offset `off`, or `None` when `load` fails. The
/// buffer starts uninitialised: zeroing it first costs a call to a
/// byte-at-a-time `memset` in BPF, and the helper writes every byte.
#[inline(always)]
fn read<const N: usize, L: Fn(u32, *mut u8, u32) -> bool>(load: &L, off: u32) -> Option<[u8; N]> {
    let mut buf = core::mem::MaybeUninit::<[u8; N]>::uninit();
    if !load(off, buf.as_mut_ptr().cast(), N as u32) {
        return None;
    }
    // SAFETY: `load` returned true, so it wrote all N bytes.
    Some(unsafe { buf.assume_init() })
}

/// Walks the headers of a frame of `frame_len` bytes. A TCP segment worth
/// recording comes back with `checks` bits for what the IP layer would drop
/// it for (a length beyond the frame, a wrong IPv4 header checksum); an
/// IPv4 fragment of TCP comes back as a `checks::FRAGMENT` record, with the
/// same IP checks; everything else is [`Skip`]ped.
#[inline(always)]
pub fn parse<L: Fn(u32, *mut u8, u32) -> bool>(load: &L, frame_len: u32) -> Result<Parsed, Skip> {
    let Some(eth) = read::<14, L>(load, 0) else {
        return Err(Skip::Unread);
    };
    let mut ether_type = be16(&eth, 12);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let Some(tag) = read::<4, L>(load, off) else {
            return Err(Skip::Unread);
        };
        ether_type = be16(&tag, 2);
        off += 4;
    }
    let mut header = SegmentHeader::default();
    // TCP header + payload length, from the IP header; 0 there means "see the
    // frame" (IPv4 BIG TCP / GSO, IPv6 jumbogram).
    let mut l4_len: u32;
    if ether_type == ETH_P_IP {
        let Some(ip) = read::<20, L>(load, off) else {
            return Err(Skip::Unread);
        };
        if ip[0] >> 4 != 4 || ip[9] != IPPROTO_TCP {
            return Err(Skip::Other);
        }
        let ihl = ((ip[0] & 0x0f) as u32) * 4;
        let total = be16(&ip, 2) as u32;
        if ihl < 20 || (total != 0 && total < ihl) {
            return Err(Skip::Other);
        }
        if total != 0 && off + total > frame_len {
            header.checks |= checks::BAD_IP_LENGTH;
        }
        // The header checksum, options included (read a word at a time).
        let mut acc = sum16(0, &ip);
        for i in 0..10 {
            let at = 20 + i * 4;
            if at >= ihl {
                break;
            }
            let Some(word) = read::<4, L>(load, off + at) else {
                return Err(Skip::Unread);
            };
            acc = sum16(acc, &word);
        }
        if fold(acc) != 0xffff {
            header.checks |= checks::BAD_IP_CHECKSUM;
        }
        // "More fragments" or an offset: recorded as a fragment, for
        // userspace to reassemble as the stack does.
        let frag = be16(&ip, 6);
        if frag & 0x3fff != 0 {
            if total == 0 {
                return Err(Skip::Other);
            }
            header.family = 4;
            header.saddr[..4].copy_from_slice(&ip[12..16]);
            header.daddr[..4].copy_from_slice(&ip[16..20]);
            header.seq = u32::from(be16(&ip, 4));
            header.ack = u32::from(frag & 0x1fff) * 8;
            if frag & 0x2000 != 0 {
                header.ack |= checks::MORE_FRAGMENTS;
            }
            header.checks |= checks::FRAGMENT;
            header.payload_len = total - ihl;
            return Ok(Parsed {
                header,
                tcp_offset: off + ihl,
                tcp_len: 0,
                payload_offset: off + ihl,
            });
        }

        l4_len = if total == 0 {
            frame_len.saturating_sub(off + ihl)
        } else {
            total - ihl
        };
        header.family = 4;
        header.saddr[..4].copy_from_slice(&ip[12..16]);
        header.daddr[..4].copy_from_slice(&ip[16..20]);
        off += ihl;
    } else if ether_type == ETH_P_IPV6 {
        let Some(ip) = read::<40, L>(load, off) else {
            return Err(Skip::Unread);
        };
        if ip[0] >> 4 != 6 {
            return Err(Skip::Other);
        }
        let payload = be16(&ip, 4) as u32;
        if payload != 0 && off + 40 + payload > frame_len {
            header.checks |= checks::BAD_IP_LENGTH;
        }
        l4_len = if payload == 0 {
            frame_len.saturating_sub(off + 40)
        } else {
            payload
        };
        header.family = 6;
        header.saddr.copy_from_slice(&ip[8..24]);
        header.daddr.copy_from_slice(&ip[24..40]);
        off += 40;
        let mut next = ip[6];
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            let ext_len = match next {
                IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS | IPV6_AH => {
                    let Some(ext) = read::<2, L>(load, off) else {
                        return Err(Skip::Unread);
                    };
                    next = ext[0];
                    if next == IPV6_AH {
                        (ext[1] as u32 + 2) * 4
                    } else {
                        (ext[1] as u32 + 1) * 8
                    }
                }
                IPV6_FRAGMENT => return Err(Skip::Fragment),
                _ => break,
            };
            if ext_len > l4_len {
                return Err(Skip::Other);
            }
            l4_len -= ext_len;
            off += ext_len;
        }
        if next != IPPROTO_TCP {
            return Err(Skip::Other);
        }
    } else {
        return Err(Skip::Other);
    }
    let Some(tcp) = read::<20, L>(load, off) else {
        return Err(Skip::Unread);
    };
    let data_offset = ((tcp[12] >> 4) as u32) * 4;
    if data_offset < 20 || data_offset > l4_len {
        return Err(Skip::Other);
    }
    header.sport = be16(&tcp, 0);
    header.dport = be16(&tcp, 2);
    header.seq = be32(&tcp, 4);
    header.ack = be32(&tcp, 8);
    header.tcp_flags = tcp[13];
    header.payload_len = l4_len - data_offset;
    let control = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST;
    if header.payload_len == 0 && header.tcp_flags & control == 0 {
        return Err(Skip::Other);
    }
    Ok(Parsed {
        header,
        tcp_offset: off,
        tcp_len: l4_len,
        payload_offset: off + data_offset,
    })
}

/// The header walk ([`parse`]) of a frame of `frame_len` bytes whose first
/// `linear` bytes `in_place` reads without a helper (a tc or XDP program's
/// direct packet access): by `in_place` first (the stack keeps a frame's
/// headers linear, its payload often in page fragments), again by `load`,
/// the helper, when a header was past the linear part. Whole walks, not a
/// fallback per read: the verifier then explores two walks, not every mix
/// of the two (that exceeded its limit).
#[inline(always)]
pub fn walk<D: Fn(u32, *mut u8, u32) -> bool, L: Fn(u32, *mut u8, u32) -> bool>(
    in_place: &D,
    load: &L,
    linear: usize,
    frame_len: u32,
) -> Result<Parsed, Skip> {
    match parse(in_place, frame_len) {
        Err(Skip::Unread) if linear < frame_len as usize => parse(load, frame_len),
        walked => walked,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const TCP_PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

    fn ethernet(tags: &[u16], ether_type: u16) -> Vec<u8> {
        let mut frame = std::vec![0u8; 12];
        for (i, tpid) in tags.iter().enumerate() {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&(100 + i as u16).to_be_bytes()); // VLAN id
        }
        frame.extend_from_slice(&ether_type.to_be_bytes());
        frame
    }

    fn tcp(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = std::vec![0u8; 20];
        t[0..2].copy_from_slice(&41000u16.to_be_bytes());
        t[2..4].copy_from_slice(&8000u16.to_be_bytes());
        t[4..8].copy_from_slice(&7u32.to_be_bytes());
        t[8..12].copy_from_slice(&9u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t.extend_from_slice(payload);
        t
    }

    fn ipv4(total_len: u16, fragment: u16, l4: &[u8]) -> Vec<u8> {
        let mut ip = std::vec![
            0x45,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            64,
            IPPROTO_TCP,
            0,
            0,
            10,
            0,
            0,
            2,
            10,
            0,
            0,
            1
        ];
        ip[2..4].copy_from_slice(&total_len.to_be_bytes());
        ip[6..8].copy_from_slice(&fragment.to_be_bytes());
        let sum = !fold(sum16(0, &ip));
        ip[10..12].copy_from_slice(&sum.to_le_bytes());
        ip.extend_from_slice(l4);
        ip
    }

    /// IPv6 header followed by `ext` (already chained) whose first header is `next`.
    fn ipv6(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut ip = std::vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[next, 64]);
        ip.extend_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(ext);
        ip.extend_from_slice(l4);
        ip
    }

    /// A `load` over `frame`'s bytes.
    fn loader(frame: &[u8]) -> impl Fn(u32, *mut u8, u32) -> bool + '_ {
        move |off, dst, len| {
            let start = off as usize;
            frame
                .get(start..start + len as usize)
                // SAFETY: `parse` passes a buffer of `len` bytes.
                .map(|src| unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) })
                .is_some()
        }
    }

    fn parse_result(frame: &[u8]) -> Result<Parsed, Skip> {
        parse(&loader(frame), frame.len() as u32)
    }

    fn parse_frame(frame: &[u8]) -> Option<Parsed> {
        parse_result(frame).ok()
    }

    fn v4_frame(tags: &[u16], flags: u8, payload: &[u8]) -> Vec<u8> {
        let l4 = tcp(flags, payload);
        let mut frame = ethernet(tags, ETH_P_IP);
        frame.extend(ipv4(20 + l4.len() as u16, 0, &l4));
        frame
    }

    #[test]
    fn ipv4_segment_fields_and_payload_offset() {
        let frame = v4_frame(&[], tcp_flags::PSH | tcp_flags::ACK, TCP_PAYLOAD);
        let p = parse_frame(&frame).unwrap();
        let h = p.header;
        assert_eq!(
            (h.family, &h.saddr[..4], &h.daddr[..4]),
            (4, &[10, 0, 0, 2][..], &[10, 0, 0, 1][..])
        );
        assert_eq!(
            (h.sport, h.dport, h.seq, h.ack, h.tcp_flags),
            (41000, 8000, 7, 9, 0x18)
        );
        assert_eq!(h.payload_len as usize, TCP_PAYLOAD.len());
        assert_eq!(&frame[p.payload_offset as usize..], TCP_PAYLOAD);
    }

    #[test]
    fn vlan_and_qinq_tags_are_skipped() {
        for tags in [&[ETH_P_8021Q][..], &[ETH_P_8021AD, ETH_P_8021Q][..]] {
            let frame = v4_frame(tags, tcp_flags::ACK, TCP_PAYLOAD);
            let p = parse_frame(&frame).unwrap();
            assert_eq!(
                p.payload_offset as usize,
                14 + 4 * tags.len() + 40,
                "{tags:?}"
            );
            assert_eq!(&frame[p.payload_offset as usize..], TCP_PAYLOAD);
        }
        // A third tag is beyond the walk: its tag looks like the EtherType.
        assert!(
            parse_frame(&v4_frame(
                &[ETH_P_8021AD, ETH_P_8021Q, ETH_P_8021Q],
                0x10,
                TCP_PAYLOAD
            ))
            .is_none()
        );
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let l4 = tcp(tcp_flags::ACK, TCP_PAYLOAD);
        // Hop-by-hop (8 bytes) -> destination options (8 bytes) -> TCP.
        let ext = [
            IPV6_DEST_OPTS,
            0,
            1,
            4,
            0,
            0,
            0,
            0,
            IPPROTO_TCP,
            0,
            1,
            4,
            0,
            0,
            0,
            0,
        ];
        let mut frame = ethernet(&[], ETH_P_IPV6);
        frame.extend(ipv6(IPV6_HOP_BY_HOP, &ext, &l4));
        let p = parse_frame(&frame).unwrap();
        assert_eq!(p.header.family, 6);
        assert_eq!(p.header.saddr[15], 2);
        assert_eq!(p.header.payload_len as usize, TCP_PAYLOAD.len());
        assert_eq!(&frame[p.payload_offset as usize..], TCP_PAYLOAD);
        // Fragments, first or not, are counted, not recorded.
        for frag in [
            [IPPROTO_TCP, 0, 0, 8, 0, 0, 0, 1],
            [IPPROTO_TCP, 0, 0, 1, 0, 0, 0, 1],
        ] {
            let mut frame = ethernet(&[], ETH_P_IPV6);
            frame.extend(ipv6(IPV6_FRAGMENT, &frag, &l4));
            assert_eq!(parse_result(&frame).err(), Some(Skip::Fragment));
        }
    }

    #[test]
    fn gso_length_comes_from_the_frame_when_the_ip_length_is_zero() {
        let l4 = tcp(tcp_flags::ACK, TCP_PAYLOAD);
        let mut frame = ethernet(&[], ETH_P_IP);
        frame.extend(ipv4(0, 0, &l4));
        assert_eq!(
            parse_frame(&frame).unwrap().header.payload_len as usize,
            TCP_PAYLOAD.len()
        );
    }

    #[test]
    fn what_is_not_recorded() {
        let l4 = tcp(tcp_flags::ACK, TCP_PAYLOAD);
        let mut fragment = ethernet(&[], ETH_P_IP);
        fragment.extend(ipv4(20 + l4.len() as u16, 185, &l4)); // offset 185 * 8
        let h = parse_frame(&fragment).unwrap().header;
        assert_eq!(
            (h.checks, h.ack, h.payload_len),
            (checks::FRAGMENT, 185 * 8, l4.len() as u32)
        );
        let mut first = ethernet(&[], ETH_P_IP);
        first.extend(ipv4(20 + l4.len() as u16, 0x2000, &l4)); // more fragments
        let h = parse_frame(&first).unwrap().header;
        assert_eq!(
            (h.checks, h.ack),
            (checks::FRAGMENT, checks::MORE_FRAGMENTS)
        );
        // Other: nothing to record; Unread: a header is past the bytes
        // `load` reaches (a tc program then walks again with the helper).
        let pure_ack = v4_frame(&[], tcp_flags::ACK, b"");
        assert_eq!(parse_result(&pure_ack).err(), Some(Skip::Other), "pure ACK");
        let arp = ethernet(&[], 0x0806);
        assert_eq!(parse_result(&arp).err(), Some(Skip::Other), "ARP");
        let whole = v4_frame(&[], tcp_flags::ACK, TCP_PAYLOAD);
        for cut in [10, 14 + 10, 14 + 20 + 10] {
            assert_eq!(
                parse_result(&whole[..cut]).err(),
                Some(Skip::Unread),
                "cut at {cut}"
            );
        }
        let mut udp = whole.clone();
        udp[14 + 9] = 17;
        assert_eq!(parse_result(&udp).err(), Some(Skip::Other), "UDP");
    }

    #[test]
    fn a_walk_reads_again_with_the_helper_only_past_the_linear_part() {
        let frame = v4_frame(&[], tcp_flags::PSH | tcp_flags::ACK, TCP_PAYLOAD);
        let whole = parse_frame(&frame).unwrap();
        let helper_runs = core::cell::Cell::new(0);
        let load = |off: u32, dst: *mut u8, len: u32| {
            helper_runs.set(helper_runs.get() + 1);
            loader(&frame)(off, dst, len)
        };
        // Linear through the headers, or not even through the IP header.
        for (linear, helper) in [(frame.len(), 0), (14 + 20 + 20, 0), (14 + 10, 3)] {
            helper_runs.set(0);
            let walked = walk(&loader(&frame[..linear]), &load, linear, frame.len() as u32);
            let p = walked.unwrap();
            assert_eq!(
                (p.header.seq, p.payload_offset, p.tcp_len),
                (whole.header.seq, whole.payload_offset, whole.tcp_len),
                "linear {linear}"
            );
            assert_eq!(helper_runs.get(), helper, "linear {linear}");
        }
        // A truncated frame is all linear: no second walk.
        let cut = &frame[..14 + 20 + 10];
        let no_helper = |_: u32, _: *mut u8, _: u32| -> bool { unreachable!() };
        let walked = walk(&loader(cut), &no_helper, cut.len(), cut.len() as u32);
        assert_eq!(walked.err(), Some(Skip::Unread));
    }

    #[test]
    fn control_segments_without_payload_are_recorded() {
        for flags in [
            tcp_flags::SYN,
            tcp_flags::FIN | tcp_flags::ACK,
            tcp_flags::RST,
        ] {
            let p = parse_frame(&v4_frame(&[], flags, b"")).unwrap();
            assert_eq!((p.header.tcp_flags, p.header.payload_len), (flags, 0));
        }
    }

    #[test]
    fn what_the_ip_layer_drops_is_flagged() {
        let good = v4_frame(&[], tcp_flags::ACK, TCP_PAYLOAD);
        assert_eq!(parse_frame(&good).unwrap().header.checks, 0);
        let mut bad_sum = good.clone();
        bad_sum[14 + 8] ^= 1; // the TTL changes, the checksum does not
        assert_eq!(
            parse_frame(&bad_sum).unwrap().header.checks,
            checks::BAD_IP_CHECKSUM
        );
        let l4 = tcp(tcp_flags::ACK, TCP_PAYLOAD);
        let mut long = ethernet(&[], ETH_P_IP);
        long.extend(ipv4(20 + l4.len() as u16 + 100, 0, &l4));
        assert_eq!(
            parse_frame(&long).unwrap().header.checks,
            checks::BAD_IP_LENGTH
        );
    }

    #[test]
    fn the_pseudo_header_sum_makes_a_known_checksum_verify() {
        // RFC 1071-style check on a segment built by hand: the stored
        // checksum makes the whole sum fold to 0xffff.
        let mut l4 = tcp(tcp_flags::ACK, b"abc");
        let frame = v4_frame(&[], tcp_flags::ACK, b"abc");
        let h = parse_frame(&frame).unwrap();
        let sum = !fold(sum16(pseudo_header_sum(&h.header, h.tcp_len), &l4));
        l4[16..18].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            fold(sum16(pseudo_header_sum(&h.header, h.tcp_len), &l4)),
            0xffff
        );
    }
}

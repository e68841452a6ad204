//! Header walk: Ethernet (+ up to two 802.1Q / 802.1ad tags), IPv4 or IPv6
//! (with its common extension headers), TCP. Bytes are read through a
//! `load(offset, buf)` closure (`bpf_skb_load_bytes` / `bpf_xdp_load_bytes`),
//! so the same code serves tc and XDP and works on non-linear packets.

use sensor_ebpf::{SegmentHeader, tcp_flags};

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
/// ifindex still unset) and where its payload starts in the frame.
pub struct Parsed {
    pub header: SegmentHeader,
    pub payload_offset: u32,
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Walks the headers of a frame of `frame_len` bytes. Returns `None` for
/// anything that is not a TCP segment worth recording (non-TCP, non-first
/// fragments, truncated headers, pure ACKs without payload).
#[inline(always)]
pub fn parse<L: Fn(u32, &mut [u8]) -> bool>(load: &L, frame_len: u32) -> Option<Parsed> {
    let mut eth = [0u8; 14];
    if !load(0, &mut eth) {
        return None;
    }
    let mut ether_type = be16(&eth, 12);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let mut tag = [0u8; 4];
        if !load(off, &mut tag) {
            return None;
        }
        ether_type = be16(&tag, 2);
        off += 4;
    }
    let mut header = SegmentHeader::default();
    // TCP header + payload length, from the IP header; 0 there means "see the
    // frame" (IPv4 BIG TCP / GSO, IPv6 jumbogram).
    let mut l4_len: u32;
    if ether_type == ETH_P_IP {
        let mut ip = [0u8; 20];
        if !load(off, &mut ip) || ip[0] >> 4 != 4 || ip[9] != IPPROTO_TCP {
            return None;
        }
        if be16(&ip, 6) & 0x1fff != 0 {
            return None; // non-first fragment: no TCP header here
        }
        let ihl = ((ip[0] & 0x0f) as u32) * 4;
        let total = be16(&ip, 2) as u32;
        if ihl < 20 || (total != 0 && total < ihl) {
            return None;
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
        let mut ip = [0u8; 40];
        if !load(off, &mut ip) || ip[0] >> 4 != 6 {
            return None;
        }
        let payload = be16(&ip, 4) as u32;
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
                    let mut ext = [0u8; 2];
                    if !load(off, &mut ext) {
                        return None;
                    }
                    next = ext[0];
                    if next == IPV6_AH {
                        (ext[1] as u32 + 2) * 4
                    } else {
                        (ext[1] as u32 + 1) * 8
                    }
                }
                IPV6_FRAGMENT => {
                    let mut frag = [0u8; 8];
                    if !load(off, &mut frag) || be16(&frag, 2) & 0xfff8 != 0 {
                        return None;
                    }
                    next = frag[0];
                    8
                }
                _ => break,
            };
            if ext_len > l4_len {
                return None;
            }
            l4_len -= ext_len;
            off += ext_len;
        }
        if next != IPPROTO_TCP {
            return None;
        }
    } else {
        return None;
    }
    let mut tcp = [0u8; 20];
    if !load(off, &mut tcp) {
        return None;
    }
    let data_offset = ((tcp[12] >> 4) as u32) * 4;
    if data_offset < 20 || data_offset > l4_len {
        return None;
    }
    header.sport = be16(&tcp, 0);
    header.dport = be16(&tcp, 2);
    header.seq = be32(&tcp, 4);
    header.ack = be32(&tcp, 8);
    header.tcp_flags = tcp[13];
    header.payload_len = l4_len - data_offset;
    let control = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST;
    if header.payload_len == 0 && header.tcp_flags & control == 0 {
        return None;
    }
    Some(Parsed {
        header,
        payload_offset: off + data_offset,
    })
}

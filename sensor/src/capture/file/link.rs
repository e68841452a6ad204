//! Link-layer decapsulation of one captured frame down to its TCP segment.
//!
//! [`decode`] strips the link header named by the file's link type, then lets
//! `etherparse` walk Ethernet II, 802.1Q/802.1ad VLAN tags, IPv4, IPv6 with its
//! extension headers, and TCP. The few headers `etherparse` lacks are read
//! here: Linux cooked captures v1 and v2, BSD NULL/loopback, raw IP and PPPoE
//! sessions. Link-type numbers are tcpdump.org's `LINKTYPE_` values
//! (<https://www.tcpdump.org/linktypes.html>).

use std::net::{IpAddr, SocketAddr};

use etherparse::{
    EtherType, Ethernet2Slice, IpNumber, LaxIpPayloadSlice, LaxIpSlice, LaxNetSlice,
    LaxSlicedPacket, TcpSlice, TransportSlice, checksum::Sum16BitWords,
};

use crate::capture::{Segment, Source, defrag::Fragment};

/// MPLS unicast and multicast ethertypes (RFC 5332).
const MPLS: [EtherType; 2] = [EtherType(0x8847), EtherType(0x8848)];
/// PPPoE session stage ethertype (RFC 2516 §4).
const PPPOE_SESSION: EtherType = EtherType(0x8864);
/// PPP protocol numbers of IPv4 and IPv6 (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// How a frame's link header is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II, possibly VLAN-tagged.
    Ethernet,
    /// `LINKTYPE_NULL` (0, host byte order) and `LINKTYPE_LOOP` (108, network
    /// byte order): a 4-byte BSD address family, 2 for IPv4 and 24, 28 or 30
    /// for IPv6.
    Null,
    /// Raw IP, the version nibble telling IPv4 from IPv6: `LINKTYPE_RAW`
    /// (101, also written as 12 or 14 by old libpcaps), `LINKTYPE_IPV4` (228)
    /// and `LINKTYPE_IPV6` (229).
    Raw,
    /// `LINKTYPE_LINUX_SLL` (113): 16-byte header, protocol at offset 14.
    Sll,
    /// `LINKTYPE_LINUX_SLL2` (276): 20-byte header, protocol at offset 0.
    Sll2,
}

impl Link {
    /// The layout for a link type, or the `unsupported` counter key
    /// (`"linktype:NAME"`, or `"linktype:NUMBER"` for less common ones).
    pub(crate) fn from_linktype(linktype: i32) -> Result<Link, String> {
        Ok(match linktype {
            1 => Link::Ethernet,
            0 | 108 => Link::Null,
            12 | 14 | 101 | 228 | 229 => Link::Raw,
            113 => Link::Sll,
            276 => Link::Sll2,
            9 => return Err("linktype:PPP".into()),
            104 => return Err("linktype:C_HDLC".into()),
            105 => return Err("linktype:IEEE802_11".into()),
            119 => return Err("linktype:IEEE802_11_PRISM".into()),
            127 => return Err("linktype:IEEE802_11_RADIOTAP".into()),
            163 => return Err("linktype:IEEE802_11_AVS".into()),
            192 => return Err("linktype:PPI".into()),
            239 => return Err("linktype:NFLOG".into()),
            other => return Err(format!("linktype:{other}")),
        })
    }
}

/// What the receiving host's IP and TCP would check of a segment, as far
/// as the capture shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checks {
    /// The IPv4 header checksum is right (or zero: a TSO/GSO super-packet
    /// captured on its sender, finished per wire segment); `None` for IPv6,
    /// which has none. Linux always verifies it (`ip_rcv_core`).
    pub ip_checksum: Option<bool>,
    /// The TCP checksum over the whole segment: `None` when the capture
    /// cut the segment, so it cannot be checked.
    pub tcp_checksum: Option<TcpChecksum>,
}

/// What a whole segment's TCP checksum field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpChecksum {
    /// The right checksum.
    Right,
    /// Only the pseudo-header's sum, as the sending host leaves it for the
    /// NIC to finish (`CHECKSUM_PARTIAL`: Linux's `__tcp_v4_send_check`,
    /// with the length, or without it for a TSO/GSO super-packet): a
    /// capture taken on the sender, whose wire copy was right.
    Offloaded,
    /// Anything else: the receiving host drops the segment.
    Wrong,
}

/// Why a frame yielded no segment; each maps to a `FileCounters` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// IP but not TCP, or not IP at all (ARP, LLDP, PPP control...).
    NotTcp,
    /// An IPv4 or IPv6 fragment.
    Fragment,
    /// A header that does not parse or is cut short.
    Malformed,
    /// The IP length claims more bytes than the frame carried on the wire:
    /// the receiving host drops it (`ip_rcv_core`), so it must never reach
    /// reassembly (an insertion trick).
    BadLength,
    /// An encapsulation this decoder does not open, as its counter key.
    Unsupported(&'static str),
}

/// Decodes one frame of `link` into a TCP segment borrowing `frame`.
///
/// `orig_len` is the frame's length on the wire (the capture may hold less);
/// it sizes the payload when the IP length field is 0, as in TSO/GSO frames
/// captured on the sending host.
pub(crate) fn decode(
    link: Link,
    frame: &[u8],
    orig_len: u32,
    time_ns: u64,
) -> Result<(Segment<'_>, Checks), Skip> {
    if let Some((net, tcp)) = ip_tcp(link, frame) {
        return segment(Some(&net), &tcp, frame, orig_len, time_ns);
    }
    let packet = slice(link, frame)?;
    classify(&packet, frame, orig_len, time_ns)
}

/// [`decode`] without its [`ip_tcp`] shortcut, for tests to compare.
#[cfg(test)]
pub(crate) fn decode_sliced(
    link: Link,
    frame: &[u8],
    orig_len: u32,
    time_ns: u64,
) -> Result<(Segment<'_>, Checks), Skip> {
    classify(&slice(link, frame)?, frame, orig_len, time_ns)
}

/// The common frame, an unfragmented TCP segment over IPv4 or IPv6 right
/// under the link header (Ethernet II, Linux cooked v1 or v2, BSD NULL or
/// raw IP), sliced layer by layer by the same etherparse calls [`slice`]
/// makes, without its whole-packet cursor (whose result, some hundreds of
/// bytes, is moved at every layer: a tenth of a replay); `None` for
/// anything else, which [`slice`] decodes.
pub(super) fn ip_tcp(link: Link, frame: &[u8]) -> Option<(LaxNetSlice<'_>, TcpSlice<'_>)> {
    let ip = match link {
        Link::Ethernet => {
            let ether = Ethernet2Slice::from_slice_without_fcs(frame)
                .ok()?
                .payload();
            ip_ether_type(ether.ether_type, ether.payload)?
        }
        Link::Raw => frame,
        Link::Sll => cooked_ip(frame, 14, 16)?,
        Link::Sll2 => cooked_ip(frame, 0, 20)?,
        Link::Null => frame.get(4..).filter(|_| null_is_ip(frame))?,
    };
    let (ip, None) = LaxIpSlice::from_slice(ip).ok()? else {
        return None;
    };
    let payload = ip.payload();
    if payload.fragmented || payload.ip_number != IpNumber::TCP {
        return None;
    }
    let tcp = TcpSlice::from_slice(payload.payload).ok()?;
    Some((ip.into(), tcp))
}

/// The frame sliced by etherparse below its link header.
fn slice(link: Link, frame: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    Ok(match link {
        Link::Ethernet => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
        Link::Raw => LaxSlicedPacket::from_ip(frame).map_err(|_| Skip::Malformed)?,
        Link::Null => {
            let ip = frame.get(4..).ok_or(Skip::Malformed)?;
            if !null_is_ip(frame) {
                return Err(Skip::NotTcp);
            }
            LaxSlicedPacket::from_ip(ip).map_err(|_| Skip::Malformed)?
        }
        // Hand-written: etherparse's SLL rejects ARPHRD types other than five
        // (loopback, tun, rmnet... are common), and it has no SLL2. Non-IP
        // protocol values (netlink families, 802.2 LLC) fall out as not TCP.
        Link::Sll => cooked(frame, 14, 16)?,
        Link::Sll2 => cooked(frame, 0, 20)?,
    })
}

/// The frame as an IPv4 fragment of a TCP segment whose header checksum
/// and length are right; `None` for anything else (IPv6 fragments
/// included: they are counted, not reassembled).
pub(crate) fn ipv4_fragment(link: Link, frame: &[u8]) -> Option<Fragment<'_>> {
    let packet = slice(link, frame).ok()?;
    let Some(LaxNetSlice::Ipv4(ip)) = &packet.net else {
        return None;
    };
    let h = ip.header();
    let payload = ip.payload();
    let valid = header_verifies(h.slice())
        && payload.len_source == etherparse::LenSource::Ipv4HeaderTotalLen
        && !payload.incomplete;
    (valid && payload.fragmented && payload.ip_number == IpNumber::TCP).then(|| Fragment {
        src: h.source_addr(),
        dst: h.destination_addr(),
        id: h.identification(),
        offset: h.fragments_offset().byte_offset(),
        more: h.more_fragments(),
        data: payload.payload,
    })
}

/// `payload` if `ether_type` says it is IPv4 or IPv6.
fn ip_ether_type(ether_type: EtherType, payload: &[u8]) -> Option<&[u8]> {
    matches!(ether_type, EtherType::IPV4 | EtherType::IPV6).then_some(payload)
}

/// Whether a BSD NULL/LOOP frame's 4-byte address family is IPv4 or IPv6.
/// The family is host-order for NULL and big-endian for LOOP; all values
/// fit a byte, so the zero half tells the byte order.
fn null_is_ip(frame: &[u8]) -> bool {
    matches!(frame.get(..4), Some([0, 0, 0, af] | [af, 0, 0, 0]) if matches!(af, 2 | 24 | 28 | 30))
}

/// A Linux cooked frame's protocol (at `proto_at`) and payload (after
/// `header_len` bytes); `None` when the frame is shorter than its header.
fn cooked_payload(frame: &[u8], proto_at: usize, header_len: usize) -> Option<(EtherType, &[u8])> {
    let payload = frame.get(header_len..)?;
    let proto = u16::from_be_bytes([frame[proto_at], frame[proto_at + 1]]);
    Some((EtherType(proto), payload))
}

/// A cooked frame's IP packet; `None` for any other protocol.
fn cooked_ip(frame: &[u8], proto_at: usize, header_len: usize) -> Option<&[u8]> {
    let (proto, payload) = cooked_payload(frame, proto_at, header_len)?;
    ip_ether_type(proto, payload)
}

/// Slices a Linux cooked capture whose protocol field sits at `proto_at`.
fn cooked(frame: &[u8], proto_at: usize, header_len: usize) -> Result<LaxSlicedPacket<'_>, Skip> {
    let (proto, payload) = cooked_payload(frame, proto_at, header_len).ok_or(Skip::Malformed)?;
    Ok(LaxSlicedPacket::from_ether_type(proto, payload))
}

/// Turns a sliced packet into a segment, or says why there is none.
fn classify<'a>(
    packet: &LaxSlicedPacket<'a>,
    frame: &'a [u8],
    orig_len: u32,
    time_ns: u64,
) -> Result<(Segment<'a>, Checks), Skip> {
    if let Some(TransportSlice::Tcp(tcp)) = &packet.transport {
        return segment(packet.net.as_ref(), tcp, frame, orig_len, time_ns);
    }
    if packet.stop_err.is_some() {
        return Err(Skip::Malformed);
    }
    match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => Err(not_tcp(ip.payload())),
        Some(LaxNetSlice::Ipv6(ip)) => Err(not_tcp(ip.payload())),
        Some(LaxNetSlice::Arp(_)) => Err(Skip::NotTcp),
        None => match packet.ether_payload() {
            Some(e) if e.ether_type == PPPOE_SESSION => pppoe(e.payload, frame, orig_len, time_ns),
            Some(e) if MPLS.contains(&e.ether_type) => Err(Skip::Unsupported("encapsulation:mpls")),
            // More tags than etherparse's three-deep VLAN stack.
            Some(e)
                if matches!(
                    e.ether_type,
                    EtherType::VLAN_TAGGED_FRAME
                        | EtherType::PROVIDER_BRIDGING
                        | EtherType::VLAN_DOUBLE_TAGGED_FRAME
                ) =>
            {
                Err(Skip::Unsupported("encapsulation:vlan_stack"))
            }
            _ => Err(Skip::NotTcp),
        },
    }
}

/// Classifies an IP payload that is not a parsed TCP segment.
fn not_tcp(payload: &LaxIpPayloadSlice<'_>) -> Skip {
    match payload.ip_number {
        _ if payload.fragmented => Skip::Fragment,
        IpNumber::IPV4 => Skip::Unsupported("encapsulation:ipip"),
        IpNumber::IPV6 => Skip::Unsupported("encapsulation:ip6_in_ip"),
        IpNumber::GRE => Skip::Unsupported("encapsulation:gre"),
        _ => Skip::NotTcp,
    }
}

/// Opens a PPPoE session frame (RFC 2516 §4: version/type 0x11, code 0,
/// session id, length) and its PPP protocol field, which is one byte instead
/// of two when Protocol-Field-Compression is on (RFC 1661 §6.5: an odd first
/// byte is a whole compressed protocol number).
fn pppoe<'a>(
    payload: &'a [u8],
    frame: &'a [u8],
    orig_len: u32,
    time_ns: u64,
) -> Result<(Segment<'a>, Checks), Skip> {
    let [0x11, 0, _, _, _, _, ppp @ ..] = payload else {
        return Err(Skip::Malformed);
    };
    let (protocol, ip) = match ppp {
        [p, ip @ ..] if p & 1 == 1 => (u16::from(*p), ip),
        [p0, p1, ip @ ..] => (u16::from_be_bytes([*p0, *p1]), ip),
        _ => return Err(Skip::Malformed),
    };
    match protocol {
        PPP_IPV4 | PPP_IPV6 => {
            let packet = LaxSlicedPacket::from_ip(ip).map_err(|_| Skip::Malformed)?;
            classify(&packet, frame, orig_len, time_ns)
        }
        _ => Err(Skip::NotTcp),
    }
}

/// Builds the segment and its checks; lengths are measured as offsets into
/// `frame`.
fn segment<'a>(
    net: Option<&LaxNetSlice<'a>>,
    tcp: &TcpSlice<'a>,
    frame: &'a [u8],
    orig_len: u32,
    time_ns: u64,
) -> Result<(Segment<'a>, Checks), Skip> {
    // Where the IP packet ends by its own length field; a zero field (TSO/GSO,
    // IPv6 jumbograms) leaves the frame's wire length as the only measure.
    let wire_end = (orig_len as usize).max(frame.len());
    let (src, dst, ip_end, ip_checksum) = match net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let total = usize::from(h.total_len());
            let end = if total < h.slice().len() {
                wire_end
            } else {
                offset(frame, h.slice()) + total
            };
            // A zero checksum is a TSO/GSO super-packet captured on its
            // sender: the header is finished per wire segment.
            let checksum = h.header_checksum() == 0 || header_verifies(h.slice());
            let (s, d) = (h.source_addr(), h.destination_addr());
            (IpAddr::V4(s), IpAddr::V4(d), end, Some(checksum))
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let end = match h.payload_length() {
                0 => wire_end,
                n => offset(frame, h.slice()) + h.slice().len() + usize::from(n),
            };
            let (s, d) = (h.source_addr(), h.destination_addr());
            (IpAddr::V6(s), IpAddr::V6(d), end, None)
        }
        _ => return Err(Skip::Malformed),
    };
    if ip_end > wire_end {
        return Err(Skip::BadLength);
    }
    let payload_len = ip_end.saturating_sub(offset(frame, tcp.payload()));
    let payload = tcp.payload();
    let header = tcp.header_slice();
    let whole = payload.len() == payload_len && tcp.slice().len() == header.len() + payload_len;
    let tcp_checksum = whole.then(|| tcp_checksum(tcp, src, dst));
    let checks = Checks {
        ip_checksum,
        tcp_checksum,
    };
    let segment = Segment {
        time_ns,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        // The flags byte is octet 13 of the TCP header (RFC 9293 §3.1).
        flags: header[13],
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        payload: &payload[..payload.len().min(payload_len)],
        source: Source::File,
    };
    Ok((segment, checks))
}

/// Whether a sum of 16-bit words, checksum field included, is all ones:
/// the receiver's test (RFC 1071; Linux's `ip_fast_csum`,
/// `__skb_checksum_complete`). It takes a field of 0xffff where the sender
/// computed 0 (the other zero of one's complement) and covers the bytes as
/// sent, the IPv4 reserved flag bit included: comparing the field with a
/// checksum computed from parsed fields drops what the host keeps, and
/// whoever picks the payload picks the sum.
fn sums_to_ones(sum: Sum16BitWords) -> bool {
    sum.ones_complement() == 0
}

/// Whether an IPv4 header verifies ([`sums_to_ones`]).
fn header_verifies(header: &[u8]) -> bool {
    sums_to_ones(Sum16BitWords::new().add_slice(header))
}

/// Judges a whole segment's TCP checksum (see [`TcpChecksum`]).
pub(crate) fn tcp_checksum(tcp: &TcpSlice<'_>, src: IpAddr, dst: IpAddr) -> TcpChecksum {
    let (addresses, max_len) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            Sum16BitWords::new()
                .add_slice(&s.octets())
                .add_slice(&d.octets()),
            u32::from(u16::MAX),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            Sum16BitWords::new()
                .add_slice(&s.octets())
                .add_slice(&d.octets()),
            u32::MAX,
        ),
        _ => return TcpChecksum::Wrong,
    };
    // The pseudo-header (RFC 9293 section 3.1; RFC 8200 section 8.1): the
    // addresses, the protocol and the segment's length.
    let pseudo = |len: u32| {
        addresses
            .clone()
            .add_slice(&[0, 6])
            .add_slice(&len.to_be_bytes())
    };
    let Ok(len) = u32::try_from(tcp.slice().len()) else {
        return TcpChecksum::Wrong;
    };
    if len <= max_len && sums_to_ones(pseudo(len).add_slice(tcp.slice())) {
        return TcpChecksum::Right;
    }
    // The pseudo-header's sum alone, with the length or without it: what a
    // sender's offload leaves for the NIC to finish.
    let partial = |len: u32| !pseudo(len).ones_complement().to_be();
    let field = tcp.checksum();
    if field == partial(len) || field == partial(0) {
        TcpChecksum::Offloaded
    } else {
        TcpChecksum::Wrong
    }
}

/// Byte offset of `inner` within `frame`, which it borrows from.
fn offset(frame: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - frame.as_ptr() as usize
}

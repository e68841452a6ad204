//! Crafted frames in crafted pcap and pcapng files.

use std::io::Write;

use etherparse::PacketBuilder;

use super::*;
use crate::capture::{OwnedSegment, Source};

mod real;

/// Reads `path`, collecting its segments.
pub(super) fn read(path: &Path) -> Result<(FileCounters, Vec<OwnedSegment>), FileError> {
    let mut got = Vec::new();
    let counters = read_file(path, false, Checksums::Auto, &mut |s| {
        assert_eq!(s.source, Source::File);
        assert!(s.payload.len() <= s.payload_len as usize);
        got.push(OwnedSegment::from(s));
    })?;
    assert_eq!(counters.tcp_segments, got.len() as u64);
    Ok((counters, got))
}

fn temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// Classic pcap magic numbers (little-endian as written).
const MICROS: u32 = 0xa1b2_c3d4;
const NANOS: u32 = 0xa1b2_3c4d;

/// A little-endian pcap; each record is `(frame, wire length)` at
/// 1_700_000_000 s plus its index in ticks.
fn pcap(magic: u32, linktype: u32, records: &[(&[u8], u32)]) -> Vec<u8> {
    // magic, version 2.4, thiszone, sigfigs, snaplen, link type
    let mut out = [magic, 0x0004_0002, 0, 0, 65535, linktype]
        .map(u32::to_le_bytes)
        .concat();
    for (i, (frame, wire)) in records.iter().enumerate() {
        for word in [1_700_000_000, i as u32, frame.len() as u32, *wire] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }
    out
}

/// A pcap of whole frames of one link type.
fn frames(linktype: u32, frames: &[Vec<u8>]) -> (FileCounters, Vec<OwnedSegment>) {
    let records: Vec<_> = frames.iter().map(|f| (&f[..], f.len() as u32)).collect();
    let file = temp(&pcap(MICROS, linktype, &records));
    read(file.path()).unwrap()
}

/// A pcapng block: type, length, body padded to 32 bits, length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().next_multiple_of(4);
    let len = (12 + padded) as u32;
    let mut out = [kind, len].map(u32::to_le_bytes).concat();
    out.extend_from_slice(body);
    out.resize(8 + padded, 0);
    out.extend_from_slice(&len.to_le_bytes());
    out
}

fn shb() -> Vec<u8> {
    let body = [&0x1a2b_3c4du32.to_le_bytes()[..], &[1, 0, 0, 0], &[0xff; 8]].concat();
    block(0x0a0d_0d0a, &body)
}

/// An interface description block, with an `if_tsresol` option if given.
fn idb(linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
    let mut body = [&linktype.to_le_bytes()[..], &[0, 0], &0u32.to_le_bytes()].concat();
    if let Some(r) = tsresol {
        body.extend_from_slice(&[9, 0, 1, 0, r, 0, 0, 0, 0, 0, 0, 0]);
    }
    block(1, &body)
}

fn epb(if_id: u32, ticks: u64, frame: &[u8]) -> Vec<u8> {
    let len = frame.len() as u32;
    let head = [if_id, (ticks >> 32) as u32, ticks as u32, len, len];
    block(
        6,
        &[&head.map(u32::to_le_bytes).concat()[..], frame].concat(),
    )
}

const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// IPv4/TCP 10.0.0.1:40000 -> 10.0.0.2:80, seq 1000, ack 2000, PSH|ACK.
fn tcp4(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 1024)
        .ack(2000)
        .psh()
        .write_to_vec(&mut out, payload)
        .unwrap();
    out
}

/// IPv6/TCP [fd00::1]:40000 -> [fd00::2]:443, SYN.
fn tcp6_syn() -> Vec<u8> {
    let a = |last| {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        a
    };
    let mut out = Vec::new();
    PacketBuilder::ipv6(a(1), a(2), 64)
        .tcp(40000, 443, 7, 1024)
        .syn()
        .write_to_vec(&mut out, &[])
        .unwrap();
    out
}

/// Ethernet II around `inner` of `ethertype`.
fn ether(ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(inner);
    out
}

/// An 802.1Q/802.1ad tag body: TCI then the inner ethertype.
fn tag(vid: u16, inner_type: u16, inner: &[u8]) -> Vec<u8> {
    [&vid.to_be_bytes()[..], &inner_type.to_be_bytes(), inner].concat()
}

fn assert_is_tcp4(got: &OwnedSegment) {
    assert_eq!(got.src, "10.0.0.1:40000".parse().unwrap());
    assert_eq!(got.dst, "10.0.0.2:80".parse().unwrap());
    assert_eq!((got.seq, got.ack, got.flags), (1000, 2000, 0x18));
    assert_eq!(got.payload, PAYLOAD);
    assert_eq!(got.payload_len, PAYLOAD.len() as u32);
}

#[test]
fn ethernet_with_time_and_all_fields() {
    let (c, got) = frames(1, &[ether(0x0800, &tcp4(PAYLOAD))]);
    assert_is_tcp4(&got[0]);
    assert_eq!(got[0].time_ns, 1_700_000_000_000_000_000);
    assert_eq!((c.packets, c.tcp_segments, c.snapped), (1, 1, 0));
    assert_eq!(c.bytes, 14 + 40 + PAYLOAD.len() as u64);
}

#[test]
fn vlan_and_qinq() {
    let ip = tcp4(PAYLOAD);
    let single = ether(0x8100, &tag(7, 0x0800, &ip));
    let qinq = ether(0x88a8, &tag(100, 0x8100, &tag(7, 0x0800, &ip)));
    let (c, got) = frames(1, &[single, qinq]);
    assert_eq!(c.tcp_segments, 2);
    got.iter().for_each(assert_is_tcp4);
}

#[test]
fn linux_cooked_v1_and_v2() {
    let ip = tcp4(PAYLOAD);
    // SLL: packet type, ARPHRD_LOOPBACK (772, which etherparse's SLL rejects), address length, address, protocol.
    let sll = [&[0, 0, 3, 4, 0, 6][..], &[0; 8], &[8, 0], &ip].concat();
    let (_, got) = frames(113, &[sll]);
    assert_is_tcp4(&got[0]);
    // SLL2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address.
    let sll2 = [&[8, 0, 0, 0, 0, 0, 0, 1, 3, 4, 0, 6][..], &[0; 8], &ip].concat();
    let (_, got) = frames(276, &[sll2]);
    assert_is_tcp4(&got[0]);
}

#[test]
fn null_loop_and_raw_ip() {
    let ip = tcp4(PAYLOAD);
    let v6 = tcp6_syn();
    let null_le = [&[2, 0, 0, 0][..], &ip].concat();
    let null_v6 = [&[30, 0, 0, 0][..], &v6].concat();
    let null_other = [&[7, 0, 0, 0][..], &ip].concat();
    let (c, got) = frames(0, &[null_le, null_v6, null_other]);
    assert_is_tcp4(&got[0]);
    assert_eq!(got[1].dst, "[fd00::2]:443".parse().unwrap());
    assert_eq!((c.tcp_segments, c.not_tcp), (2, 1));
    let (_, got) = frames(108, &[[&[0, 0, 0, 24][..], &v6].concat()]);
    assert_eq!(got.len(), 1);
    for linktype in [12, 14, 101, 228] {
        let (_, got) = frames(linktype, std::slice::from_ref(&ip));
        assert_is_tcp4(&got[0]);
    }
    let (_, got) = frames(229, &[v6]);
    assert_eq!(got[0].flags, 0x02);
}

#[test]
fn pppoe_session() {
    let ip = tcp4(PAYLOAD);
    let len = (ip.len() as u16 + 2).to_be_bytes();
    let session = [&[0x11, 0, 0, 1, len[0], len[1], 0, 0x21][..], &ip].concat();
    // Protocol-Field-Compression: the PPP protocol is the single byte 0x21.
    let compressed = [&[0x11, 0, 0, 1, len[0], len[1] - 1, 0x21][..], &ip].concat();
    let lcp = [&[0x11, 0, 0, 1, 0, 6, 0xc0, 0x21][..], &[1, 1, 0, 4]].concat();
    let (c, got) = frames(
        1,
        &[
            ether(0x8864, &session),
            ether(0x8864, &compressed),
            ether(0x8864, &lcp),
        ],
    );
    got.iter().for_each(assert_is_tcp4);
    assert_eq!((c.tcp_segments, c.not_tcp), (2, 1));
}

#[test]
fn ipv6_syn_without_payload_is_delivered() {
    let (_, got) = frames(1, &[ether(0x86dd, &tcp6_syn())]);
    assert_eq!(got[0].src, "[fd00::1]:40000".parse().unwrap());
    assert_eq!((got[0].seq, got[0].flags, got[0].payload_len), (7, 0x02, 0));
    assert!(got[0].payload.is_empty());
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut frame = ether(0x0800, &tcp4(&[]));
    frame.resize(60, 0xaa);
    let (_, got) = frames(1, &[frame]);
    assert_eq!((got[0].payload_len, got[0].payload.len()), (0, 0));
}

#[test]
fn snapped_payload_is_a_prefix() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let file = temp(&pcap(MICROS, 1, &[(&frame[..64], frame.len() as u32)]));
    let (c, got) = read(file.path()).unwrap();
    assert_eq!(got[0].payload, &PAYLOAD[..10]);
    assert_eq!(got[0].payload_len, PAYLOAD.len() as u32);
    assert_eq!(c.snapped, 1);
}

#[test]
fn ipv4_total_length_zero_uses_the_frame_length() {
    let mut ip = tcp4(PAYLOAD);
    ip[2..4].copy_from_slice(&[0, 0]);
    let (_, got) = frames(1, &[ether(0x0800, &ip)]);
    assert_is_tcp4(&got[0]);
    // Snapped as well: the wire length still sizes the payload.
    let frame = ether(0x0800, &ip);
    let file = temp(&pcap(MICROS, 1, &[(&frame[..60], frame.len() as u32)]));
    let (c, got) = read(file.path()).unwrap();
    assert_eq!(
        (got[0].payload.len(), got[0].payload_len),
        (6, PAYLOAD.len() as u32)
    );
    assert_eq!(c.snapped, 1);
}

#[test]
fn fragments_udp_arp_mpls_and_malformed_are_counted() {
    let mut more = tcp4(PAYLOAD);
    more[6] = 0x20; // MF
    let mut later = tcp4(PAYLOAD);
    later[7] = 0x10; // fragment offset 16 * 8 bytes
    // IPv6 with a fragment header (more fragments) before TCP.
    let mut v6 = tcp6_syn();
    let plen = u16::from_be_bytes([v6[4], v6[5]]) + 8;
    v6[4..6].copy_from_slice(&plen.to_be_bytes());
    v6[6] = 44;
    v6.splice(40..40, [6, 0, 0, 1, 0, 0, 0, 9]);
    let mut udp = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64)
        .udp(5353, 53)
        .write_to_vec(&mut udp, b"q")
        .unwrap();
    let mut bad_ihl = tcp4(PAYLOAD);
    bad_ihl[0] = 0x44;
    let mut bad_offset = tcp4(PAYLOAD);
    bad_offset[20 + 12] = 0x40;
    let (c, got) = frames(
        1,
        &[
            ether(0x0800, &more),
            ether(0x0800, &later),
            ether(0x86dd, &v6),
            ether(0x0800, &udp),
            ether(0x0806, &[&[0, 1, 8, 0, 6, 4, 0, 1][..], &[0; 20]].concat()),
            ether(0x8847, &[0, 0, 0x11, 64]),
            ether(0x0800, &bad_ihl),
            ether(0x0800, &bad_offset),
            ether(0x0800, &tcp4(PAYLOAD)[..30]),
            vec![],
            vec![0; 5],
        ],
    );
    assert!(got.is_empty());
    assert_eq!(
        (c.packets, c.ip_fragments, c.not_tcp, c.malformed),
        (11, 3, 2, 5)
    );
    assert_eq!(c.unsupported["encapsulation:mpls"], 1);
}

#[test]
fn unsupported_link_type_is_counted_not_an_error() {
    let (c, got) = frames(127, &[vec![0; 40], vec![0; 40]]);
    assert!(got.is_empty());
    assert_eq!(c.unsupported["linktype:IEEE802_11_RADIOTAP"], 2);
    let (c, _) = frames(4242, &[vec![0; 4]]);
    assert_eq!(c.unsupported["linktype:4242"], 1);
}

#[test]
fn truncated_file_delivers_what_precedes_the_cut() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let wire = frame.len() as u32;
    let mut bytes = pcap(MICROS, 1, &[(&frame, wire), (&frame, wire)]);
    bytes.truncate(bytes.len() - 5);
    let file = temp(&bytes);
    let (c, got) = read(file.path()).unwrap();
    assert_eq!(got.len(), 1);
    assert!(c.truncated_file && !c.corrupt);
}

#[test]
fn absurd_record_length_stops_without_panic() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let mut bytes = pcap(MICROS, 1, &[(&frame, frame.len() as u32)]);
    let absurd = [
        &[0u8; 8][..],
        &u32::MAX.to_le_bytes(),
        &u32::MAX.to_le_bytes(),
    ]
    .concat();
    bytes.extend_from_slice(&absurd);
    bytes.extend_from_slice(&[0; 64]);
    let file = temp(&bytes);
    let (c, got) = read(file.path()).unwrap();
    assert_eq!(got.len(), 1);
    // The record claims 4 GiB and the file ends first.
    assert!(c.truncated_file && !c.corrupt);
}

#[test]
fn records_larger_than_the_buffer_are_read() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let big = block(0x0bad, &vec![7; 3 * BUFFER]);
    let bytes = [shb(), idb(1, None), big, epb(0, 0, &frame)].concat();
    let file = temp(&bytes);
    let (c, got) = read(file.path()).unwrap();
    assert_eq!(got.len(), 1);
    assert!(!c.truncated_file && !c.corrupt);
}

#[test]
fn garbage_empty_and_missing_files_are_errors_naming_the_path() {
    for bytes in [&b"this is not a capture file, just some text\n"[..], b""] {
        let file = temp(bytes);
        let err = read(file.path()).unwrap_err();
        assert!(matches!(err, FileError::NotCapture { .. }), "{err}");
        assert!(err.to_string().contains(&*file.path().to_string_lossy()));
    }
    let dir = tempfile::tempdir().unwrap();
    let err = read(dir.path()).unwrap_err();
    assert!(matches!(err, FileError::Read { .. }), "{err}");
    assert!(err.to_string().contains("directory"), "{err}");
    let missing = Path::new("/nonexistent/capture.pcap");
    let err = read(missing).unwrap_err();
    assert!(matches!(err, FileError::Open { .. }));
    assert!(err.to_string().contains("/nonexistent/capture.pcap"));
}

#[test]
fn nanosecond_pcap_timestamps() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let mut bytes = pcap(NANOS, 1, &[(&frame, frame.len() as u32)]);
    // Record 0's fraction field: 123456789 ns.
    bytes[24 + 4..24 + 8].copy_from_slice(&123_456_789u32.to_le_bytes());
    let file = temp(&bytes);
    let (_, got) = read(file.path()).unwrap();
    assert_eq!(got[0].time_ns, 1_700_000_000_123_456_789);
}

#[test]
fn big_endian_pcap_reads_as_little_endian() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let le = pcap(MICROS, 1, &[(&frame, frame.len() as u32)]);
    // Swap the header's and the record header's 32-bit words (the version
    // is two 16-bit words, and the snap length field stays in range).
    let mut be = le.clone();
    for at in (0..24 + 16).step_by(4) {
        be[at..at + 4].reverse();
    }
    be[4..8].copy_from_slice(&[0, 2, 0, 4]);
    let (_, from_le) = read(temp(&le).path()).unwrap();
    let (c, from_be) = read(temp(&be).path()).unwrap();
    assert_eq!((c.packets, from_be.len()), (1, 1));
    assert_eq!(from_be, from_le);
}

#[test]
fn pcapng_resolutions_interfaces_and_sections() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let raw = tcp4(PAYLOAD);
    let bytes = [
        shb(),
        idb(1, None),      // if 0: microseconds by default
        idb(101, Some(9)), // if 1: nanoseconds, raw IP
        epb(0, 1_700_000_000_000_001, &frame),
        epb(1, 1_700_000_000_000_000_007, &raw),
        epb(2, 0, &frame), // no such interface
        block(0x0bad, b"an unknown block is skipped"),
        shb(),                   // a new section forgets the interfaces
        idb(1, Some(0x80 | 10)), // 1/1024 s ticks
        epb(0, 1024 * 3 + 512, &frame),
    ]
    .concat();
    let file = temp(&bytes);
    let (c, got) = read(file.path()).unwrap();
    let times: Vec<u64> = got.iter().map(|g| g.time_ns).collect();
    assert_eq!(
        times,
        [
            1_700_000_000_000_001_000,
            1_700_000_000_000_000_007,
            3_500_000_000
        ]
    );
    got.iter().for_each(assert_is_tcp4);
    assert_eq!((c.packets, c.malformed), (4, 1));
}

#[test]
fn pcapng_bad_block_length_marks_the_file_corrupt() {
    let frame = ether(0x0800, &tcp4(PAYLOAD));
    let mut bad = epb(0, 0, &frame);
    let n = bad.len();
    bad[n - 4] ^= 0x40; // trailing length differs from the leading one
    let bytes = [
        shb(),
        idb(1, None),
        epb(0, 0, &frame),
        bad,
        epb(0, 0, &frame),
    ]
    .concat();
    let file = temp(&bytes);
    let (c, got) = read(file.path()).unwrap();
    assert_eq!(got.len(), 1);
    assert!(c.corrupt && !c.truncated_file);
}

/// The shortcut for IP right under the link header (Ethernet, raw IP, Linux
/// cooked v1 and v2, BSD NULL) decodes exactly as the general path, on
/// frames mutated in any header byte (lengths, version, fragment bits,
/// protocol) and cut anywhere, under IP and non-IP link protocols.
#[test]
fn the_ip_tcp_shortcut_decodes_as_the_general_path() {
    let mut v4_options = tcp4(PAYLOAD);
    v4_options[0] = 0x46; // IHL 6: four bytes of options (NOPs) follow
    v4_options.splice(20..20, [1, 1, 1, 1]);
    let seeds = [tcp4(PAYLOAD), tcp6_syn(), v4_options, tcp4(&[])];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut tcp, mut shortcut) = (0, [0; 5]);
    for i in 0..20_000 {
        let mut ip = seeds[i % seeds.len()].clone();
        for _ in 0..next() % 4 {
            let at = (next() as usize) % ip.len().min(60);
            ip[at] = next() as u8;
        }
        ip.truncate(ip.len() - (next() as usize) % (ip.len() + 1) * usize::from(i % 3 == 0));
        let ethertype = [0x0800, 0x86dd, 0x0806][(next() % 3) as usize];
        let [hi, lo] = u16::to_be_bytes(ethertype);
        let family = [2, 30, 7][(next() % 3) as usize];
        let links = [
            (Link::Ethernet, ether(ethertype, &ip)),
            (Link::Raw, ip.clone()),
            (
                Link::Sll,
                [&[0, 0, 3, 4, 0, 6][..], &[0; 8], &[hi, lo], &ip].concat(),
            ),
            (
                Link::Sll2,
                [&[hi, lo, 0, 0, 0, 0, 0, 1, 3, 4, 0, 6][..], &[0; 8], &ip].concat(),
            ),
            (Link::Null, [&[family, 0, 0, 0][..], &ip].concat()),
        ];
        for (k, (link, frame)) in links.into_iter().enumerate() {
            shortcut[k] += usize::from(link::ip_tcp(link, &frame).is_some());
            let orig = frame.len() as u32 + (next() % 3) as u32;
            let fast = link::decode(link, &frame, orig, 7);
            assert_eq!(
                fast,
                link::decode_sliced(link, &frame, orig, 7),
                "{frame:02x?}"
            );
            tcp += usize::from(fast.is_ok());
        }
    }
    assert!(tcp > 10_000, "the mutations leave most frames TCP: {tcp}");
    // Under every link type the shortcut decodes the common frames.
    assert!(shortcut.iter().all(|&n| n > 1000), "{shortcut:?}");
}

#[test]
fn random_frames_never_panic() {
    let seeds = [
        ether(0x0800, &tcp4(PAYLOAD)),
        ether(0x86dd, &tcp6_syn()),
        ether(
            0x88a8,
            &tag(1, 0x8100, &tag(2, 0x8864, &[0x11, 0, 0, 1, 0, 0, 0, 0x21])),
        ),
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for linktype in [0, 1, 101, 113, 276] {
        let mut all = Vec::new();
        for i in 0..2000 {
            let mut f = seeds[i % seeds.len()].clone();
            for _ in 0..next() % 4 {
                let at = (next() as usize) % f.len();
                f[at] = next() as u8;
            }
            f.truncate((next() as usize) % (f.len() + 1));
            all.push(f);
        }
        let (c, _) = frames(linktype, &all);
        assert_eq!(c.packets, 2000);
    }
}

#[test]
fn counters_serialize_snake_case() {
    let json = serde_json::to_value(FileCounters::default()).unwrap();
    for key in [
        "tcp_segments",
        "ip_fragments",
        "truncated_file",
        "unsupported",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
}

#[test]
fn power_of_two_and_out_of_range_resolutions() {
    assert_eq!(ticks_per_sec(6), 1_000_000);
    assert_eq!(ticks_per_sec(0x80 | 20), 1 << 20);
    assert_eq!(ticks_per_sec(20), 1_000_000);
    assert_eq!(ticks_per_sec(0x80 | 64), 1_000_000);
}

/// `ip` (an IPv4 packet) cut into fragments of its payload at `cuts`
/// (multiples of 8), each with a correct header.
fn fragments(ip: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let (header, payload) = etherparse::Ipv4Header::from_slice(ip).unwrap();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| {
            let mut h = header.clone();
            h.more_fragments = w[1] < payload.len();
            h.fragment_offset = etherparse::IpFragOffset::try_new((w[0] / 8) as u16).unwrap();
            h.set_payload_len(w[1] - w[0]).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut out = h.to_bytes().to_vec();
            out.extend_from_slice(&payload[w[0]..w[1]]);
            out
        })
        .collect()
}

#[test]
fn ipv4_fragments_are_reassembled_in_any_order() {
    let ip = tcp4(PAYLOAD);
    let mut parts = fragments(&ip, &[16, 32]);
    parts.swap(0, 2);
    let (c, got) = frames(
        1,
        &parts.iter().map(|f| ether(0x0800, f)).collect::<Vec<_>>(),
    );
    assert_eq!((c.ip_fragments, c.reassembled, c.tcp_segments), (3, 1, 1));
    assert_is_tcp4(&got[0]);
    // Overlapping fragments drop the datagram, as Linux does.
    let mut overlapping = fragments(&ip, &[16]);
    let mut clash = fragments(&ip, &[8, 24]).remove(1);
    clash[20] ^= 0xff;
    overlapping.insert(1, clash);
    let (c, got) = frames(
        1,
        &overlapping
            .iter()
            .map(|f| ether(0x0800, f))
            .collect::<Vec<_>>(),
    );
    assert!(got.is_empty());
    assert_eq!(c.fragments_dropped, 1);
}

#[test]
fn an_ip_length_beyond_the_frame_is_dropped() {
    let mut ip = tcp4(PAYLOAD);
    let longer = (ip.len() as u16 + 40).to_be_bytes();
    ip[2..4].copy_from_slice(&longer);
    let (c, got) = frames(1, &[ether(0x0800, &ip)]);
    assert!(got.is_empty());
    assert_eq!(c.bad_ip_length, 1);
}

/// An Ethernet pcap of `frames` read with `checksums`: its counters and
/// how many segments it delivered.
fn read_checked(checksums: Checksums, frames: &[&[u8]]) -> (FileCounters, usize) {
    let records: Vec<_> = frames.iter().map(|f| (*f, f.len() as u32)).collect();
    let file = temp(&pcap(MICROS, 1, &records));
    let mut got = 0;
    let c = read_file(file.path(), false, checksums, &mut |_| got += 1).unwrap();
    (c, got)
}

/// A checksum field of 0xffff where the sender would compute 0 (the other
/// zero of one's complement) verifies on the receiving host (Linux sums the
/// field in: `ip_fast_csum`, `__skb_checksum_complete`), so replay must
/// keep the segment; an attacker chooses the payload, hence the sum.
#[test]
fn a_negative_zero_checksum_is_kept_as_the_host_keeps_it() {
    // IPv4 header at 14, TCP header at 34 (20 bytes), payload after.
    // An even length: the last two payload bytes are one 16-bit word.
    let mut frame = ether(0x0800, &tcp4(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\0"));
    let (ip, tcp, end) = (14, 34, frame.len());
    let tcp_sum = |f: &[u8]| {
        let addr = |at: usize| <[u8; 4]>::try_from(&f[ip + at..ip + at + 4]).unwrap();
        let segment = etherparse::TcpSlice::from_slice(&f[tcp..end]).unwrap();
        segment.calc_checksum_ipv4(addr(12), addr(16)).unwrap()
    };
    let ip_sum = |f: &[u8]| {
        let header = etherparse::Ipv4HeaderSlice::from_slice(&f[ip..ip + 20]).unwrap();
        header.to_header().calc_header_checksum()
    };
    // The last payload word makes the right TCP checksum 0 (the sum of the
    // rest plus its complement is all ones), then the field says 0xffff.
    frame[end - 2..end].copy_from_slice(&[0, 0]);
    let w = tcp_sum(&frame);
    frame[end - 2..end].copy_from_slice(&w.to_be_bytes());
    assert_eq!(tcp_sum(&frame), 0);
    frame[tcp + 16..tcp + 18].copy_from_slice(&[0xff, 0xff]);
    // The same for the IPv4 header, through its identification field.
    frame[ip + 4..ip + 6].copy_from_slice(&[0, 0]);
    let w = ip_sum(&frame);
    frame[ip + 4..ip + 6].copy_from_slice(&w.to_be_bytes());
    assert_eq!(ip_sum(&frame), 0);
    frame[ip + 10..ip + 12].copy_from_slice(&[0xff, 0xff]);
    let (c, got) = read_checked(Checksums::On, &[&frame]);
    assert_eq!((got, c.bad_checksum), (1, 0));
}

/// The IPv4 header's reserved flag bit is summed as sent: the host checks
/// the bytes, so a header with it set and its sum right is kept.
#[test]
fn an_ipv4_checksum_covers_the_reserved_bit_as_sent() {
    let mut frame = ether(0x0800, &tcp4(PAYLOAD));
    let ip = 14;
    frame[ip + 6] |= 0x80;
    frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_slice(&frame[ip..ip + 20])
        .ones_complement()
        .to_be();
    frame[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    let (c, got) = read_checked(Checksums::On, &[&frame]);
    assert_eq!((got, c.bad_checksum), (1, 0));
}

#[test]
fn wrong_checksums_are_dropped_unless_offloaded() {
    let good = ether(0x0800, &tcp4(PAYLOAD));
    let mut bad = good.clone();
    let at = bad.len() - 1;
    bad[at] ^= 1; // the payload's last byte: the TCP checksum no longer fits
    let (c, got) = read_checked(Checksums::On, &[&good, &bad]);
    assert_eq!((got, c.bad_checksum, c.checksums), (1, 1, "on"));
    let (c, got) = read_checked(Checksums::Off, &[&good, &bad]);
    assert_eq!((got, c.bad_checksum, c.checksums), (2, 0, "off"));
    // Auto: one bad segment in twenty is an attack, dropped...
    let mostly_good: Vec<&[u8]> = std::iter::repeat_n(&good[..], 19)
        .chain([&bad[..]])
        .collect();
    let (c, got) = read_checked(Checksums::Auto, &mostly_good);
    assert_eq!((got, c.bad_checksum, c.checksums), (19, 1, "on"));
    // ... while a file of wrong checksums was captured with offload.
    let offloaded: Vec<&[u8]> = std::iter::repeat_n(&bad[..], 20)
        .chain([&good[..]])
        .collect();
    let (c, got) = read_checked(Checksums::Auto, &offloaded);
    assert_eq!((got, c.bad_checksum, c.checksums), (21, 0, "offloaded"));
}

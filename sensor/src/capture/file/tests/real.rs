//! The real captures in the shared `pcaps` folder, checked against tshark.

use std::path::PathBuf;

use super::read;

/// `shared/pcaps` beside the project root; `None` (with a note) when absent.
fn pcaps() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

/// Every file, with its TCP segment count from `tshark -r FILE -Y tcp | wc -l`
/// (tshark 4.0). All agree except `80211http.pcap`: tshark decodes 802.11
/// radiotap frames, which this reader counts as an unsupported link type.
/// Beyond the counts, each segment's time, addresses, sequence and
/// acknowledgement numbers, flags, TCP length and first payload bytes were
/// compared with tshark's fields once, by hand, and all matched.
const TSHARK_TCP: &[(&str, u64)] = &[
    (
        "OISF/suricata-verify/tests/bug-4810/pppoe-session-http.pcap",
        30,
    ),
    ("OISF/suricata-verify/tests/bug-7390/input.pcap", 10),
    (
        "OISF/suricata-verify/tests/filestore-filecontainer-http/filecontainer-http.pcap",
        94,
    ),
    ("OISF/suricata-verify/tests/http-auth-bearer/input.pcap", 12),
    (
        "OISF/suricata-verify/tests/http-auth-unrecognized/input.pcap",
        12,
    ),
    ("OISF/suricata-verify/tests/http-post-file/input.pcap", 28),
    (
        "OISF/suricata-verify/tests/http-protocol-nodup/input.pcap",
        36,
    ),
    (
        "OISF/suricata-verify/tests/http-range-multiflows/input.pcap",
        614,
    ),
    ("arkime/arkime/tests/pcap/80211http.pcap", 26),
    ("arkime/arkime/tests/pcap/http-digestauth.pcap", 4),
    ("arkime/arkime/tests/pcap/http-wrapped-header.pcap", 12),
    ("arkime/arkime/tests/pcap/http-xff.pcap", 11),
    ("arkime/arkime/tests/pcap/ntlm_synthetic.pcap", 218),
    ("arkime/arkime/tests/pcap/twovlan.pcap", 6),
    ("lwerdna/filesamples/simple_http_sll2.pcap", 24),
    ("ntop/nDPI/tests/cfgs/default/pcap/1kxun.pcap", 1381),
    ("ntop/nDPI/tests/cfgs/default/pcap/WebattackRCE.pcap", 797),
    ("ntop/nDPI/tests/cfgs/default/pcap/http-proxy.pcapng", 11),
    ("ntop/nDPI/tests/cfgs/default/pcap/quickplay.pcap", 155),
    ("ntop/nDPI/tests/cfgs/default/pcap/webdav.pcap", 92),
    (
        "seladb/PcapPlusPlus/Tests/Pcap++Test/PcapExamples/example.pcap",
        4492,
    ),
    (
        "the-tcpdump-group/tcpdump/tests/ipv4_tcp_http_xml_tso.pcap",
        1,
    ),
];

#[test]
fn segment_counts_match_tshark() {
    let Some(dir) = pcaps() else { return };
    for &(file, tshark) in TSHARK_TCP {
        let (c, _) = read(&dir.join(file)).unwrap();
        let expected = if file.ends_with("80211http.pcap") {
            assert_eq!(c.unsupported["linktype:IEEE802_11_RADIOTAP"], tshark);
            0
        } else {
            tshark
        };
        assert_eq!(c.tcp_segments, expected, "{file}");
        assert_eq!(
            c.packets,
            c.tcp_segments + c.not_tcp + c.unsupported.values().sum::<u64>()
        );
        assert_eq!(
            (c.malformed, c.ip_fragments, c.snapped),
            (0, 0, 0),
            "{file}"
        );
        assert!(!c.truncated_file && !c.corrupt, "{file}");
    }
}

#[test]
fn link_types_yield_their_http_payloads() {
    let Some(dir) = pcaps() else { return };
    for (file, first) in [
        ("arkime/arkime/tests/pcap/twovlan.pcap", "GET "),
        (
            "OISF/suricata-verify/tests/bug-4810/pppoe-session-http.pcap",
            "GET ",
        ),
        ("lwerdna/filesamples/simple_http_sll2.pcap", "GET "),
        (
            "ntop/nDPI/tests/cfgs/default/pcap/quickplay.pcap",
            "GET /solr/",
        ),
        (
            "OISF/suricata-verify/tests/http-range-multiflows/input.pcap",
            "GET ",
        ),
        (
            "ntop/nDPI/tests/cfgs/default/pcap/http-proxy.pcapng",
            "GET http://",
        ),
        (
            "OISF/suricata-verify/tests/http-post-file/input.pcap",
            "POST ",
        ),
    ] {
        let (_, got) = read(&dir.join(file)).unwrap();
        let data = got.iter().find(|g| !g.payload.is_empty()).unwrap();
        assert!(data.payload.starts_with(first.as_bytes()), "{file}");
        assert!(
            got.iter().all(|g| g.time_ns > 1_400_000_000_000_000_000),
            "{file}"
        );
    }
}

#[test]
fn tso_frame_is_one_whole_segment() {
    let Some(dir) = pcaps() else { return };
    let file = "the-tcpdump-group/tcpdump/tests/ipv4_tcp_http_xml_tso.pcap";
    let (_, got) = read(&dir.join(file)).unwrap();
    // A 2030-byte frame: Ethernet 14, IPv4 20 (total length 2016), TCP 20.
    assert_eq!((got[0].payload_len, got[0].payload.len()), (1976, 1976));
    assert!(got[0].payload.starts_with(b"POST http://"));
    assert_eq!(got[0].dst.port(), 8080);
}

//! Every capture in `../shared/pcaps/` replayed through the pipeline:
//! transaction counts, status codes, client IPs and principals checked
//! against the packets.
//!
//! tshark 4.0's figures (`../shared/pcaps/MANIFEST.tsv`) are the cross-check.
//! Where ours differ, the comment on the case says which is right and why.
//! The usual reason: tshark counts a response only once its whole body has
//! been reassembled, so a response whose body the capture cut (or whose
//! segments arrived out of order) goes uncounted even though its status line
//! is in the packets; the sensor counts the status line.

mod support;

use std::collections::BTreeMap;

use sensor::{
    capture::file::{Checksums, read_file},
    collect::collect,
    detect::{Alert, Detector, State},
    http::Transaction,
    identity::{FingerprintKey, HeaderNames, IdentityConfig, Resolver},
    pipeline::PipelineCounters,
};
use support::pcaps;

struct Replay {
    txs: Vec<Transaction>,
    alerts: Vec<Alert>,
    counters: PipelineCounters,
}

impl Replay {
    /// Status histogram; `0` stands for "no response".
    fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut h = BTreeMap::new();
        for t in &self.txs {
            *h.entry(t.status.unwrap_or(0)).or_default() += 1;
        }
        h
    }

    fn clients(&self) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for t in &self.txs {
            *h.entry(t.client_ip.to_string()).or_default() += 1;
        }
        h
    }
}

fn replay_with(file: &str, config: IdentityConfig) -> Option<Replay> {
    let path = pcaps()?.join(file);
    let resolver = Resolver::new(config, FingerprintKey::from_bytes([1; 32]));
    let c = collect(resolver, |p| {
        read_file(&path, false, Checksums::Auto, &mut |seg| p.segment(seg)).unwrap();
    });
    Some(Replay {
        txs: c.transactions,
        alerts: c.alerts,
        counters: c.counters,
    })
}

fn replay(file: &str) -> Option<Replay> {
    replay_with(file, IdentityConfig::default())
}

fn h<const N: usize>(pairs: [(u16, usize); N]) -> BTreeMap<u16, usize> {
    pairs.into_iter().collect()
}

#[test]
fn pipelined_404s_from_one_client() {
    // tshark: 40 requests, 40 responses, all 404, 39 pipelined; 7 retransmitted
    // segments that must not add transactions.
    let Some(r) = replay("OISF/suricata-verify/tests/http-protocol-nodup/input.pcap") else {
        return;
    };
    assert_eq!(r.statuses(), h([(404, 40)]));
    assert_eq!(r.clients().keys().collect::<Vec<_>>(), ["223.72.39.14"]);
    assert!(r.counters.flows.retransmitted_bytes > 0);
}

#[test]
fn a_scanner_sending_requests_only() {
    // tshark: 797 requests, no responses (a one-sided capture). One request
    // line carries spaces in its target (`...netsonar;cat /etc/passwd|...`);
    // it is kept with the spaces escaped.
    let Some(r) = replay("ntop/nDPI/tests/cfgs/default/pcap/WebattackRCE.pcap") else {
        return;
    };
    assert_eq!(r.statuses(), h([(0, 797)]));
    assert_eq!(r.clients(), [("127.0.0.1".to_string(), 797)].into());
    assert!(
        r.txs
            .iter()
            .any(|t| t.path.contains("netsonar;cat%20/etc/passwd"))
    );
    assert_eq!(r.counters.http.errors, Default::default());
}

#[test]
fn a_browser_session() {
    // tshark: 338 requests, 336 responses. The packets hold 338 status
    // lines: on port 44152 and 44153 one response each sits behind the
    // retransmissions of frames 1357-1441 that tshark's HTTP dissector does
    // not reassemble (filter `tcp.payload[0:5]=="HTTP/"` finds 25 and 28).
    let Some(r) = replay("seladb/PcapPlusPlus/Tests/Pcap++Test/PcapExamples/example.pcap") else {
        return;
    };
    assert_eq!(r.statuses(), h([(200, 336), (301, 1), (302, 1)]));
    assert_eq!(
        r.clients(),
        [("10.0.0.4".to_string(), 3), ("10.0.0.6".to_string(), 335)].into()
    );
}

#[test]
fn mixed_lan_traffic() {
    // tshark: 276 requests, but 143 are SSDP over UDP, which is not this
    // sensor's business: 133 over TCP, as here. tshark's 118 responses
    // include 4 interim 100s; of the 121 final ones here, 7 (6 x 200, 1 x
    // 206) are responses whose body the capture cuts short (e.g. port
    // 46200, frame 1138), which tshark leaves unreassembled.
    let Some(r) = replay("ntop/nDPI/tests/cfgs/default/pcap/1kxun.pcap") else {
        return;
    };
    let expected = [
        (0, 12),
        (101, 3),
        (200, 102),
        (204, 5),
        (206, 1),
        (301, 2),
        (302, 3),
        (404, 1),
        (500, 2),
        (502, 2),
    ];
    assert_eq!(r.statuses(), h(expected));
    assert_eq!(r.clients()["192.168.2.126"], 109);
    assert_eq!(r.counters.http.interim_responses, 4);
    assert_eq!(r.counters.http.tunnels, 3);
}

#[test]
fn webdav_with_failing_ntlm_client() {
    let Some(r) = replay("ntop/nDPI/tests/cfgs/default/pcap/webdav.pcap") else {
        return;
    };
    assert_eq!(
        r.statuses(),
        h([(207, 1), (301, 1), (400, 5), (401, 7), (403, 1), (405, 1)])
    );
    assert_eq!(
        r.clients(),
        [
            ("10.24.8.189".to_string(), 2),
            ("192.168.16.173".to_string(), 14)
        ]
        .into()
    );
    // NTLM/Negotiate: fingerprinted, no principal.
    assert_eq!(
        r.txs.iter().filter(|t| !t.credentials.is_empty()).count(),
        14
    );
    assert!(r.txs.iter().all(|t| t.principal.is_none()));
}

#[test]
fn parallel_range_requests_over_null_linktype() {
    let Some(r) = replay("OISF/suricata-verify/tests/http-range-multiflows/input.pcap") else {
        return;
    };
    assert_eq!(r.statuses(), h([(206, 41)]));
    assert_eq!(r.counters.flows.flows, 41);
}

#[test]
fn login_then_bearer_over_ipv6() {
    let Some(r) = replay("OISF/suricata-verify/tests/http-post-file/input.pcap") else {
        return;
    };
    let got: Vec<_> = r
        .txs
        .iter()
        .map(|t| (t.method.as_str(), t.status, !t.credentials.is_empty()))
        .collect();
    assert_eq!(
        got,
        [
            ("POST", Some(200), false),
            ("POST", Some(201), true),
            ("POST", Some(200), true)
        ]
    );
    assert_eq!(r.txs[1].credentials, r.txs[2].credentials);
    assert_eq!(r.clients().keys().collect::<Vec<_>>(), ["::1"]);
}

#[test]
fn api_key_in_the_query_with_most_responses_missing() {
    // tshark: 82 requests, 11 responses (7 x 200, 4 x 204).
    let Some(r) = replay("ntop/nDPI/tests/cfgs/default/pcap/quickplay.pcap") else {
        return;
    };
    assert_eq!(r.statuses(), h([(0, 71), (200, 7), (204, 4)]));
    let keyed: Vec<_> = r
        .txs
        .iter()
        .filter(|t| t.path.contains("apiKey="))
        .collect();
    assert!(!keyed.is_empty());
    assert!(keyed.iter().all(|t| t.path.contains("apiKey=REDACTED")));
    // The default key name is Kong's `apikey`; this service calls it `apiKey`.
    assert!(keyed.iter().all(|t| t.credentials.is_empty()));
    let config = IdentityConfig {
        names: HeaderNames {
            key_names: vec!["apiKey".into()],
            ..HeaderNames::default()
        },
        ..IdentityConfig::default()
    };
    let Some(r) = replay_with("ntop/nDPI/tests/cfgs/default/pcap/quickplay.pcap", config) else {
        return;
    };
    let fps: std::collections::BTreeSet<_> = r
        .txs
        .iter()
        .filter(|t| t.path.contains("apiKey="))
        .map(|t| t.credentials.first().copied())
        .collect();
    assert_eq!(fps.len(), 1, "one key, one fingerprint");
    assert!(fps.iter().all(Option::is_some));
}

#[test]
fn authorization_schemes() {
    let cases = [
        // (file, status, principal, has credential)
        (
            "OISF/suricata-verify/tests/http-auth-bearer/input.pcap",
            Some(200),
            None,
            true,
        ),
        (
            "OISF/suricata-verify/tests/http-auth-unrecognized/input.pcap",
            Some(200),
            None,
            true,
        ),
        // A request whose response is not in the capture (tshark: 1 request, 0 responses).
        (
            "arkime/arkime/tests/pcap/http-digestauth.pcap",
            None,
            Some("user12345678@domain.xxxx"),
            true,
        ),
    ];
    for (file, status, principal, credential) in cases {
        let Some(r) = replay(file) else { return };
        assert_eq!(r.txs.len(), 1, "{file}");
        let t = &r.txs[0];
        assert_eq!(
            (
                t.status,
                t.principal.as_ref().map(|p| p.name.as_str()),
                !t.credentials.is_empty()
            ),
            (status, principal, credential),
            "{file}"
        );
    }
    let Some(r) = replay("arkime/arkime/tests/pcap/ntlm_synthetic.pcap") else {
        return;
    };
    // HTTP on port 80 only; the SMB, LDAP, SMTP, IMAP, POP3 and MSSQL flows
    // beside it are skipped, not taken for broken HTTP.
    assert_eq!(r.statuses(), h([(200, 2), (401, 2)]));
    assert_eq!(r.counters.http.errors, Default::default());
}

#[test]
fn forwarded_for_is_used_only_behind_a_trusted_proxy() {
    let file = "arkime/arkime/tests/pcap/http-xff.pcap";
    let Some(r) = replay(file) else { return };
    assert_eq!(r.clients().keys().collect::<Vec<_>>(), ["10.0.0.1"]);
    assert_eq!(r.statuses(), h([(403, 1)]));
    let config = IdentityConfig {
        trusted_proxies: vec!["10.0.0.1/32".parse().unwrap()],
        ..IdentityConfig::default()
    };
    let Some(r) = replay_with(file, config) else {
        return;
    };
    // The header is `X-Forwarded-For: 10.000.000.03`, read as nginx does.
    assert_eq!(r.clients().keys().collect::<Vec<_>>(), ["10.0.0.3"]);
}

#[test]
fn encapsulations_and_link_types() {
    let cases: &[(&str, &[(u16, usize)])] = &[
        // QinQ. tshark: 0 responses; the 200's status line is in frame 6, a
        // 4344-byte segment whose body continues past the capture's end.
        ("arkime/arkime/tests/pcap/twovlan.pcap", &[(200, 1)]),
        (
            "OISF/suricata-verify/tests/bug-4810/pppoe-session-http.pcap",
            &[(200, 1)],
        ),
        (
            "lwerdna/filesamples/simple_http_sll2.pcap",
            &[(200, 1), (404, 1)],
        ),
        (
            "ntop/nDPI/tests/cfgs/default/pcap/http-proxy.pcapng",
            &[(200, 1)],
        ),
        // One 2030-byte TSO frame holding a request; no response captured.
        (
            "the-tcpdump-group/tcpdump/tests/ipv4_tcp_http_xml_tso.pcap",
            &[(0, 1)],
        ),
        (
            "arkime/arkime/tests/pcap/http-wrapped-header.pcap",
            &[(200, 1)],
        ),
        (
            "OISF/suricata-verify/tests/bug-7390/input.pcap",
            &[(200, 1)],
        ),
        (
            "OISF/suricata-verify/tests/filestore-filecontainer-http/filecontainer-http.pcap",
            &[(200, 11)],
        ),
        // 802.11 radiotap is not supported: counted, no transactions.
        ("arkime/arkime/tests/pcap/80211http.pcap", &[]),
    ];
    for (file, expected) in cases {
        let Some(r) = replay(file) else { return };
        assert_eq!(r.statuses(), expected.iter().copied().collect(), "{file}");
    }
}

#[test]
fn the_forward_proxy_request_keeps_its_absolute_target() {
    let Some(r) = replay("ntop/nDPI/tests/cfgs/default/pcap/http-proxy.pcapng") else {
        return;
    };
    let t = &r.txs[0];
    assert!(t.path.starts_with("http://"), "{}", t.path);
    assert!(t.host.is_some());
}

/// The detectors with their defaults on the shared captures: the pipelined
/// 404s an error scan, the browsers nothing, and the one-sided scanner
/// capture nothing either: its requests were never answered nor
/// acknowledged, so they are unconfirmed (as a forged segment would be).
#[test]
fn detectors_on_the_shared_captures() {
    let alerts = |file: &str| -> Option<Vec<(Detector, String)>> {
        let r = replay(file)?;
        Some(
            r.alerts
                .iter()
                .filter(|a| a.state == State::Firing)
                .map(|a| (a.detector, a.client_ip.unwrap().to_string()))
                .collect(),
        )
    };
    let Some(rce) = alerts("ntop/nDPI/tests/cfgs/default/pcap/WebattackRCE.pcap") else {
        return;
    };
    assert_eq!(rce, []);
    let detect = replay("ntop/nDPI/tests/cfgs/default/pcap/WebattackRCE.pcap")
        .unwrap()
        .counters
        .detect;
    assert_eq!((detect.transactions, detect.unconfirmed), (797, 797));
    let nodup = alerts("OISF/suricata-verify/tests/http-protocol-nodup/input.pcap").unwrap();
    assert_eq!(nodup, [(Detector::ErrorRate, "223.72.39.14".to_string())]);
    for benign in [
        "seladb/PcapPlusPlus/Tests/Pcap++Test/PcapExamples/example.pcap",
        "OISF/suricata-verify/tests/http-range-multiflows/input.pcap",
        "ntop/nDPI/tests/cfgs/default/pcap/1kxun.pcap",
        "ntop/nDPI/tests/cfgs/default/pcap/webdav.pcap",
    ] {
        assert_eq!(alerts(benign).unwrap(), [], "{benign}");
    }
}

/// The thresholds are the command line's: the 40 pipelined 404s are an
/// error scan at the default floor of 20, not at 41; a bad decoy is refused.
#[test]
fn detector_flags_reach_the_detectors() {
    let Some(dir) = pcaps() else { return };
    let file = dir.join("OISF/suricata-verify/tests/http-protocol-nodup/input.pcap");
    let key = std::env::temp_dir().join(format!("siem-sensor-test-{}.key", std::process::id()));
    let replay = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_siem-sensor"))
            .arg("replay")
            .arg(&file)
            .arg("--json")
            .arg("--fingerprint-key")
            .arg(&key)
            .args(extra)
            .output()
            .unwrap()
    };
    let alerts = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"state\":\"firing\"") && l.contains("error_rate"))
            .count()
    };
    assert_eq!(alerts(&replay(&[])), 1);
    assert_eq!(alerts(&replay(&["--error-min", "41"])), 0);
    let bad = replay(&["--decoy", "/a/[z"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad decoy route `/a/[z`"));
    let _ = std::fs::remove_file(&key);
}

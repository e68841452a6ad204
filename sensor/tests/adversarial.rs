//! The adversarial suite: crafted captures of each attack on the sensor
//! itself, replayed through `siem-sensor replay` as a user would, each test
//! stating the attack it stops. The live counterparts (the same tricks on
//! the wire, against nginx's own access log) are in `live_differential.rs`;
//! memory exhaustion is in `memory_budget.rs`.

mod support;

use std::{fs::File, io::BufWriter, net::Ipv4Addr, path::Path, process::Command};

use base64::Engine as _;
use lab::captures::{CaptureWriter, Connection, tcp_packet};
use serde_json::Value;
use support::SENSOR;

/// The Kong node of these captures: its proxy listener and its address
/// towards upstreams.
const KONG: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// A client address of these captures.
fn client(i: u8) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(192, 0, 2, i), 40000 + u16::from(i))
}

/// What `replay` made of a capture: transactions, alert episodes (their
/// `firing` transitions; each is resolved at the end of the capture), the
/// summary.
struct Replayed {
    transactions: Vec<Value>,
    alerts: Vec<Value>,
    summary: Value,
}

/// Writes a capture with `write`, replays it with `args` (Kong's address
/// and a decoy on `/admin/**` always given) and collects what came out.
fn replay(args: &[&str], write: impl FnOnce(&mut CaptureWriter<BufWriter<File>>)) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("crafted.pcap");
    let mut w = CaptureWriter::new(BufWriter::new(File::create(&pcap).unwrap())).unwrap();
    write(&mut w);
    drop(w);
    let txs = dir.path().join("transactions.json");
    let out = Command::new(SENSOR)
        .args([
            "replay",
            "--json",
            "--kong-address",
            "10.200.0.1",
            "--decoy",
            "/admin/**",
        ])
        .arg(&pcap)
        .arg("--transactions")
        .arg(&txs)
        .arg("--fingerprint-key")
        .arg(dir.path().join("fp.key"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut stdout = lines(&String::from_utf8(out.stdout).unwrap());
    let summary = stdout.pop().unwrap();
    let (alerts, ends): (Vec<_>, Vec<_>) = stdout.into_iter().partition(|a| a["state"] == "firing");
    assert!(ends.iter().all(|a| a["state"] != "firing"));
    assert_eq!(
        ends.iter().filter(|a| a["state"] == "resolved").count(),
        alerts.len(),
        "every episode resolved at the end of the capture"
    );
    Replayed {
        transactions: lines(&std::fs::read_to_string(Path::new(&txs)).unwrap()),
        alerts,
        summary,
    }
}

/// `n` answered requests `request` on one connection from `from`.
fn answered(
    w: &mut CaptureWriter<BufWriter<File>>,
    from: (Ipv4Addr, u16),
    request: &[u8],
    n: usize,
) {
    let mut c = w.connect(from, (KONG, 8000)).unwrap();
    for _ in 0..n {
        w.request(&mut c, request).unwrap();
        w.response(&mut c, OK).unwrap();
    }
}

fn detectors(r: &Replayed) -> Vec<(String, String)> {
    r.alerts
        .iter()
        .map(|a| {
            let subject = a["client_ip"].as_str().or(a["principal"].as_str());
            (
                a["detector"].as_str().unwrap().into(),
                subject.unwrap_or("?").into(),
            )
        })
        .collect()
}

/// Attack: a client adds `X-Kong-Request-Id` and `X-Consumer-*` headers to
/// be taken for Kong's upstream leg (skipped by every detector) and to
/// pick its own request id and consumer.
#[test]
fn a_clients_kong_headers_blind_nothing() {
    let forged = b"GET /v1 HTTP/1.1\r\nHost: api\r\nX-Kong-Request-Id: 1\r\n\
                   X-Consumer-Username: admin\r\nX-Credential-Identifier: x\r\n\r\n";
    let r = replay(&[], |w| answered(w, client(10), forged, 601));
    assert_eq!(
        detectors(&r),
        [("request_flood".into(), "192.0.2.10".into())]
    );
    let t = &r.transactions[0];
    assert_eq!(
        (t["leg"].as_str(), t["request_id"].as_str()),
        (Some("client"), None)
    );
    assert!(t["consumer"].is_null() && t["principal"].is_null(), "{t}");
}

/// Attack: a flood of one-shot client IPs (a botnet's, or forged
/// `X-Forwarded-For` through a trusted proxy) fills the detectors' bounded
/// IP tables to push an offender's successes out before its failures come.
#[test]
fn a_flood_of_one_shot_ips_pushes_out_no_offender() {
    const REFUSED: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    let get = b"GET /v1 HTTP/1.1\r\nHost: api\r\n\r\n";
    let r = replay(&["--max-ips", "64"], |w| {
        let mut offender = w.connect(client(10), (KONG, 8000)).unwrap();
        for _ in 0..5 {
            w.request(&mut offender, get).unwrap();
            w.response(&mut offender, OK).unwrap();
        }
        for i in 1..=2000u16 {
            let [a, b] = i.to_be_bytes();
            answered(w, (Ipv4Addr::new(198, 18, a, b), 40000), get, 1);
        }
        for _ in 0..10 {
            w.request(&mut offender, get).unwrap();
            w.response(&mut offender, REFUSED).unwrap();
        }
    });
    let found = detectors(&r);
    let offender = ("success_then_failure".into(), "192.0.2.10".into());
    assert!(found.contains(&offender), "{found:?}");
    let evictions = r.summary["pipeline"]["detect"]["evictions"].as_u64();
    assert!(
        evictions > Some(2 * 1900),
        "both IP tables full: {evictions:?}"
    );
}

/// Attack: forged segments (no handshake, nobody answers) from a victim's
/// address ask for a decoy 601 times, to get the victim alerted or blocked.
#[test]
fn forged_segments_frame_nobody() {
    let r = replay(&[], |w| {
        for i in 0..601u32 {
            let from = (Ipv4Addr::new(198, 51, 100, 9), 30000 + i as u16);
            let get = b"GET /admin/login HTTP/1.1\r\nHost: api\r\n\r\n";
            w.segment(from, (KONG, 8000), 1, Some(1), false, get)
                .unwrap();
        }
    });
    assert!(r.alerts.is_empty(), "{:?}", r.alerts);
    assert_eq!(r.summary["pipeline"]["detect"]["unconfirmed"], 601);
    assert!(r.transactions.iter().all(|t| t["midstream"] == true));
}

/// Attack: a copy of the request with a bad TCP checksum goes first (the
/// gateway drops it, a naive sensor keeps it), so the request nginx serves
/// is trimmed away as a retransmission.
#[test]
fn a_bad_checksum_copy_hides_nothing() {
    let real = b"GET /admin/passwd HTTP/1.1\r\nHost: api\r\n\r\n";
    let fake = b"GET /hello/world/ HTTP/1.1\r\nHost: api\r\n\r\n";
    assert_eq!(real.len(), fake.len());
    let r = replay(&[], |w| {
        let mut c = w.connect(client(11), (KONG, 8000)).unwrap();
        let mut bad =
            tcp_packet(c.client, c.server, c.next[0], Some(c.next[1]), false, fake).unwrap();
        bad[36] ^= 0xff; // TCP checksum (IP header 20 + offset 16)
        w.packet(&bad).unwrap();
        w.request(&mut c, real).unwrap();
        w.response(&mut c, OK).unwrap();
    });
    assert_eq!(r.transactions[0]["path"], "/admin/passwd");
    assert_eq!(detectors(&r), [("honeypot".into(), "192.0.2.11".into())]);
    assert_eq!(r.summary["files"][0]["bad_checksum"], 1);
}

/// Attack: the first copy claims an IP total length beyond its frame (the
/// gateway's IP layer drops it) to shadow the real bytes.
#[test]
fn an_ip_length_beyond_the_frame_hides_nothing() {
    let real = b"GET /admin/passwd HTTP/1.1\r\nHost: api\r\n\r\n";
    let fake = b"GET /hello/world/ HTTP/1.1\r\nHost: api\r\n\r\n";
    let r = replay(&[], |w| {
        let mut c = w.connect(client(12), (KONG, 8000)).unwrap();
        let mut long =
            tcp_packet(c.client, c.server, c.next[0], Some(c.next[1]), false, fake).unwrap();
        let claimed = (long.len() as u16 + 200).to_be_bytes();
        long[2..4].copy_from_slice(&claimed);
        w.packet(&long).unwrap();
        w.request(&mut c, real).unwrap();
        w.response(&mut c, OK).unwrap();
    });
    assert_eq!(r.transactions[0]["path"], "/admin/passwd");
    assert_eq!(r.summary["files"][0]["bad_ip_length"], 1);
}

/// Attack: two valid copies of the same bytes that differ (Linux keeps the
/// first); a sensor keeping the second reports what nginx never served.
#[test]
fn a_differing_overlap_keeps_the_first_copy_and_is_counted() {
    let first = b"GET /hello/world/ HTTP/1.1\r\nHost: api\r\n\r\n";
    let second = b"GET /admin/passwd HTTP/1.1\r\nHost: api\r\n\r\n";
    let r = replay(&[], |w| {
        let mut c = w.connect(client(13), (KONG, 8000)).unwrap();
        let copy = c.next[0];
        w.request(&mut c, first).unwrap();
        w.segment(c.client, c.server, copy, Some(c.next[1]), false, second)
            .unwrap();
        w.response(&mut c, OK).unwrap();
    });
    assert_eq!(r.transactions[0]["path"], "/hello/world/");
    assert!(r.alerts.is_empty());
    assert_eq!(r.summary["pipeline"]["flows"]["overlap_different_data"], 1);
}

/// Attack: the request travels in IPv4 fragments, which the server
/// reassembles and a sensor reading segments would not see.
#[test]
fn a_request_in_fragments_is_read() {
    let get = b"GET /admin/console HTTP/1.1\r\nHost: api\r\n\r\n";
    let r = replay(&[], |w| {
        let mut c = w.connect(client(14), (KONG, 8000)).unwrap();
        let packet =
            tcp_packet(c.client, c.server, c.next[0], Some(c.next[1]), false, get).unwrap();
        c.next[0] += get.len() as u32;
        let (header, payload) = etherparse::Ipv4Header::from_slice(&packet).unwrap();
        for (i, part) in payload.chunks(16).enumerate() {
            let mut h = header.clone();
            h.more_fragments = (i + 1) * 16 < payload.len();
            h.fragment_offset = etherparse::IpFragOffset::try_new((i * 2) as u16).unwrap();
            h.set_payload_len(part.len()).unwrap();
            h.header_checksum = h.calc_header_checksum();
            w.packet(&[&h.to_bytes()[..], part].concat()).unwrap();
        }
        w.response(&mut c, OK).unwrap();
    });
    assert_eq!(r.transactions[0]["path"], "/admin/console");
    assert_eq!(detectors(&r), [("honeypot".into(), "192.0.2.14".into())]);
    assert_eq!(r.summary["files"][0]["reassembled"], 1);
}

/// Attack: the decoy path written so that it does not match the raw
/// target, though nginx routes it to the decoy.
#[test]
fn encoded_paths_reach_the_decoy() {
    let targets = [
        "/%61dmin/login",
        "//admin/login",
        "/x/../admin/login",
        "/admin/login?next=http://x/",
    ];
    let r = replay(&[], |w| {
        for (i, target) in targets.iter().enumerate() {
            let get = format!("GET {target} HTTP/1.1\r\nHost: api\r\n\r\n");
            answered(w, client(20 + i as u8), get.as_bytes(), 1);
        }
    });
    let hits: Vec<_> = detectors(&r)
        .into_iter()
        .filter(|(d, _)| d == "honeypot")
        .collect();
    assert_eq!(hits.len(), targets.len(), "{:?}", r.alerts);
    assert!(r.transactions.iter().all(|t| t["route"] == "/admin/login"));
}

/// Attack: a stolen key sent with a different junk `Authorization` each
/// time, so the request's one fingerprint changes and spread goes unseen.
#[test]
fn junk_authorization_hides_no_stolen_key() {
    let r = replay(&[], |w| {
        for i in 0..3u8 {
            let get = format!(
                "GET /v1 HTTP/1.1\r\nHost: api\r\napikey: stolen-key-1\r\nAuthorization: Bearer junk{i}\r\n\r\n"
            );
            answered(w, client(30 + i), get.as_bytes(), 1);
        }
    });
    let spread: Vec<_> = r
        .alerts
        .iter()
        .filter(|a| a["detector"] == "credential_spread")
        .collect();
    assert_eq!(spread.len(), 1, "{:?}", r.alerts);
    assert_eq!(spread[0]["ips"].as_array().unwrap().len(), 3);
    let text = serde_json::to_string(&r.transactions).unwrap();
    assert!(!text.contains("stolen-key-1"), "the key leaked");
}

/// Attack: a forged JWT `{"sub":"admin"}` (never verified) names `admin` as
/// the principal, over Kong's authenticated consumer.
#[test]
fn a_forged_jwt_names_only_an_unverified_principal() {
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwt = format!(
        "{}.{}.sig",
        enc(r#"{"alg":"none"}"#),
        enc(r#"{"sub":"admin"}"#)
    );
    let r = replay(&[], |w| {
        for i in 0..3u8 {
            let get =
                format!("GET /v1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {jwt}\r\n\r\n");
            answered(w, client(40 + i), get.as_bytes(), 1);
        }
        // Kong forwards one of them upstream, naming its real consumer.
        let mut c: Connection = w.connect((KONG, 50000), (UPSTREAM, 8080)).unwrap();
        let up = format!(
            "GET /v1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {jwt}\r\nX-Real-IP: 192.0.2.40\r\n\
             X-Consumer-Username: mallory\r\n\r\n"
        );
        w.request(&mut c, up.as_bytes()).unwrap();
        w.response(&mut c, OK).unwrap();
    });
    let client_leg = &r.transactions[0];
    assert_eq!(client_leg["principal"], "admin");
    assert_eq!(client_leg["principal_source"], "jwt_sub_unverified");
    let upstream = r
        .transactions
        .iter()
        .find(|t| t["leg"] == "upstream")
        .unwrap();
    assert_eq!(
        (&upstream["principal"], &upstream["principal_source"]),
        (&"mallory".into(), &"kong_consumer".into())
    );
    assert_eq!(upstream["client_ip"], "192.0.2.40");
}

/// Attack: a load balancer in front of Kong is trusted for the client
/// address, so headers through it would name any consumer.
#[test]
fn a_trusted_load_balancer_names_no_consumer() {
    let lb = (Ipv4Addr::new(192, 0, 2, 250), 45000);
    let r = replay(&["--trusted-proxy", "192.0.2.250"], |w| {
        let get = b"GET /v1 HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: 203.0.113.5\r\n\
                    X-Consumer-Username: admin\r\n\r\n";
        answered(w, lb, get, 1);
    });
    let t = &r.transactions[0];
    assert_eq!(t["client_ip"], "203.0.113.5", "the address is believed");
    assert!(
        t["consumer"].is_null() && t["principal"].is_null(),
        "the consumer is not: {t}"
    );
}

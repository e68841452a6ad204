//! A sender thread against an in-process HTTP server: re-sends, a
//! resolution once, an outage, a refusal.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::Ordering,
        mpsc::{SyncSender, sync_channel},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;
use ureq::tls::{RootCerts, TlsConfig};

use super::fixtures::*;
use crate::sink::alertmanager::{
    client::{Client, basic_auth},
    episodes::Episodes,
    sender::{Msg, Tally, Timing, run},
};

/// What the server got: (path, authorization header, body).
pub(super) type Got = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

/// Serves `POST`s on a new port of 127.0.0.1 (see [`serve`]).
pub(super) fn server(status: u16) -> (SocketAddr, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (listener.local_addr().unwrap(), serve(listener, status))
}

/// Serves `POST`s on `listener` answering `status`, one request per
/// connection, recording each.
fn serve(listener: TcpListener, status: u16) -> Got {
    let got: Got = Arc::default();
    let record = Arc::clone(&got);
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let mut r = BufReader::new(sock);
            let (mut line, mut path, mut auth, mut len) = (String::new(), String::new(), None, 0);
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                let l = line.trim_end().to_owned();
                if let Some(p) = l.strip_prefix("POST ") {
                    path = p.split(' ').next().unwrap_or_default().to_owned();
                }
                if let Some((k, v)) = l.split_once(": ") {
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.parse().unwrap_or(0),
                        "authorization" => auth = Some(v.to_owned()),
                        _ => {}
                    }
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            record.lock().unwrap().push((path, auth, value));
            let answer =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = r.get_mut().write_all(answer.as_bytes());
        }
    });
    got
}

/// A sender for `addr` (resend every 300 ms, drain 1 s) with `auth`.
fn sender(
    addr: SocketAddr,
    auth: Option<&str>,
) -> (SyncSender<Msg>, Arc<Tally>, JoinHandle<Episodes>) {
    let target = format!("http://{addr}").parse().unwrap();
    let auth = auth.map(|pw| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), format!("{pw}\n")).unwrap();
        basic_auth("alice", file.path()).unwrap()
    });
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::from(Vec::new()))
        .build();
    let client = Client::new(&target, tls, auth);
    let (tx, rx) = sync_channel(16);
    let tally = Arc::new(Tally::default());
    let timing = Timing {
        resend: Duration::from_millis(300),
        drain: Duration::from_secs(1),
    };
    let t = Arc::clone(&tally);
    let thread =
        thread::spawn(move || run(addr.to_string(), client, rx, t, timing, Episodes::new(10)));
    (tx, tally, thread)
}

fn send(tx: &SyncSender<Msg>, a: &Alert) {
    tx.send(Msg::Transition(Arc::new(transition(a)))).unwrap();
}

/// Waits up to 5 s until `got` holds `n` requests.
pub(super) fn wait(got: &Got, n: usize) -> Vec<(String, Option<String>, Value)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.lock().unwrap().len() < n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    got.lock().unwrap().clone()
}

fn counts(t: &Tally) -> [u64; 6] {
    [
        &t.sent,
        &t.overflow,
        &t.dropped,
        &t.refused,
        &t.undelivered,
        &t.forgotten,
    ]
    .map(|c| c.load(Ordering::Relaxed))
}

#[test]
fn firing_is_re_sent_each_period_and_a_resolution_once() {
    let (addr, got) = server(200);
    let (tx, tally, thread) = sender(addr, Some("s3cret"));
    send(&tx, &flood("a", State::Firing, T0));
    let first = wait(&got, 3); // the transition, then two re-sends
    send(&tx, &flood("a", State::Resolved, T0 + 300 * SECOND));
    thread::sleep(Duration::from_millis(800));
    drop(tx);
    assert!(thread.join().unwrap().is_empty());
    let all = got.lock().unwrap().clone();
    let resolved: Vec<_> = all
        .iter()
        .filter(|(_, _, b)| b[0]["endsAt"] == "2026-11-21T00:05:00.000000000Z")
        .collect();
    assert_eq!(resolved.len(), 1, "{all:#?}");
    assert_eq!(
        all.last().unwrap().2[0]["endsAt"],
        "2026-11-21T00:05:00.000000000Z",
        "nothing after it"
    );
    let ends: Vec<&str> = first
        .iter()
        .map(|(_, _, b)| b[0]["endsAt"].as_str().unwrap())
        .collect();
    assert!(
        ends.windows(2).all(|w| w[0] < w[1]),
        "each re-send moves the end on: {ends:?}"
    );
    for (path, auth, _) in &all {
        assert_eq!(path, "/api/v2/alerts");
        // base64("alice:s3cret")
        assert_eq!(auth.as_deref(), Some("Basic YWxpY2U6czNjcmV0"));
    }
    assert_eq!(counts(&tally), [2, 0, 0, 0, 0, 0]);
}

#[test]
fn what_waits_through_an_outage_is_delivered_when_alertmanager_is_back() {
    // A port with nothing listening, then a server on it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (tx, tally, thread) = sender(addr, None);
    send(&tx, &flood("a", State::Firing, T0));
    send(&tx, &flood("b", State::Firing, T0));
    send(&tx, &flood("b", State::Resolved, T0 + 300 * SECOND));
    thread::sleep(Duration::from_millis(700)); // two attempts refused
    let got = serve(TcpListener::bind(addr).unwrap(), 200);
    let first = wait(&got, 1);
    drop(tx);
    thread.join().unwrap();
    let ids: Vec<&str> = first[0]
        .2
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"], "firing and resolved, in one request");
    assert_eq!(counts(&tally), [3, 0, 0, 0, 0, 0]);
}

#[test]
fn a_refusal_keeps_alerts_waiting_and_counts_them_at_stop() {
    let (addr, got) = server(401);
    let (tx, tally, thread) = sender(addr, Some("wrong"));
    send(&tx, &flood("a", State::Firing, T0));
    wait(&got, 2);
    drop(tx);
    thread.join().unwrap();
    assert_eq!(counts(&tally), [0, 0, 0, 1, 0, 0]);
}

#[test]
fn an_invalid_request_is_dropped_and_counted() {
    let (addr, got) = server(400);
    let (tx, tally, thread) = sender(addr, None);
    send(&tx, &flood("a", State::Firing, T0));
    wait(&got, 1);
    thread::sleep(Duration::from_millis(700));
    drop(tx);
    thread.join().unwrap();
    assert_eq!(got.lock().unwrap().len(), 1, "never retried");
    assert_eq!(counts(&tally), [0, 0, 1, 0, 0, 0]);
}

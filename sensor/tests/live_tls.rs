//! The TLS source on the lab (root): requests over HTTPS to the gateway's
//! `8443 ssl http2` listener (HTTP/1.1 here; HTTP/2 in `live_http2.rs`) become transactions from the gateway's own OpenSSL
//! calls, the same as the gateway's access log; the clients' SSL calls on
//! the same kernel (curl, wrk) count for nothing; the TLS counters move
//! and balance; new workers (a reload) are covered; a connection older
//! than the sensor is bound by the socket tracepoints, attached only
//! while it waits; nothing stays loaded;
//! the labeled scenarios raise the same alerts over HTTPS, with HTTP/1.1
//! and with HTTP/2, as over HTTP.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::Stdio,
    time::{Duration, Instant},
};

use lab::{
    BOTH_LEGS, CLIENT_V4, CLIENT_V6, GATEWAY_V4, Lab, Listener, scenarios, sensor::SensorProcess,
};
use serde_json::Value;
use support::{
    SENSOR, as_nobody, metric, metrics, programs_left_after_exit, raw_tracepoint_links,
    require_root, start_sensor,
};

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// wrk over HTTPS from the client host; returns the requests it made.
fn wrk_https(lab: &Lab, args: &[&str], path: &str) -> u64 {
    let out = lab
        .command(&lab.client_ns(), "wrk")
        .args(args)
        .arg(Listener::Https.url(false, path))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    report
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no request count in:\n{report}"))
}

/// Transactions by request id.
fn by_request_id(transactions: &[Value]) -> BTreeMap<&str, Vec<&Value>> {
    transactions.iter().fold(BTreeMap::new(), |mut m, t| {
        if let Some(id) = t["request_id"].as_str() {
            m.entry(id).or_insert_with(Vec::new).push(t);
        }
        m
    })
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn https_requests_are_transactions_of_the_gateways_own_tls_calls() {
    require_root();
    let lab = Lab::up("ss-tls").unwrap();
    let before = lab.access_log().unwrap().len();
    let mut args = BOTH_LEGS.to_vec();
    // A TLS ring large enough for a second of flat-out HTTPS while a debug
    // build prints every segment.
    args.extend(["--tls", "on", "--transactions", "-", "--debug-segments-raw"]);
    args.extend(["--tls-ring-size-mib", "128"]);
    let sensor = start_sensor(&lab, &args);
    let https = |ipv6, path: &str| lab.curl(&Listener::Https.url(ipv6, path)).unwrap();
    assert_eq!(https(false, "/hello?via=tls").0, 200);
    assert_eq!(https(true, "/hello?via=tls6").0, 200);
    assert_eq!(https(false, "/missing?via=tls").0, 404);
    let (status, body) = https(false, "/big");
    assert_eq!(
        (status, body.len()),
        (200, 65536),
        "traffic passes unchanged"
    );
    // Three requests on one keep-alive connection; a POST with a body.
    Listener::Https
        .curl_from(&lab, CLIENT_V4, &[], "/hello?keepalive", 3)
        .unwrap();
    let post = ["-X", "POST", "--data-binary", "a=1&b=2"];
    Listener::Https
        .curl_from(&lab, CLIENT_V4, &post, "/orders", 1)
        .unwrap();
    // One connection for a second: enough requests to test the tap, few
    // enough that a debug build printing every segment keeps up with a
    // gateway the tap no longer slows down (its ring must not overflow:
    // every logged request is checked below).
    let requests = wrk_https(&lab, &["-t1", "-c1", "-d1s"], "/hello?via=wrk");
    let run = sensor.stop().unwrap();
    let tls = &run.summary["tls"]["kernel"];
    assert_eq!(tls["ring_full"], 0, "the TLS ring overflowed: {tls}");
    let logged = lab.access_log().unwrap().split_off(before);
    lab.teardown();

    // Every request the gateway logged is one transaction, with its fields.
    let by_wrk = logged
        .iter()
        .filter(|e| e.request.contains("via=wrk"))
        .count() as u64;
    assert_eq!(logged.len() as u64 - by_wrk, 8, "{logged:#?}");
    // wrk counts the requests answered before it stopped.
    assert!(
        (requests..=requests + 1).contains(&by_wrk),
        "{requests} {by_wrk}"
    );
    assert!(requests > 100, "{requests}");
    let ids = by_request_id(&run.transactions);
    let mut unanswered = 0;
    for entry in &logged {
        let txs = ids
            .get(entry.request_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        assert_eq!(txs.len(), 1, "{entry:?}: {txs:?}");
        let t = txs[0];
        let (method, rest) = entry.request.split_once(' ').unwrap();
        let target = rest.rsplit_once(' ').unwrap().0;
        // 499 before the answer: wrk closed the connection as it stopped,
        // before the gateway's SSL_write, so the client leg never saw Kong's
        // response or the request id in it. Its request is a transaction of
        // its own, without a status; the upstream leg goes alone.
        if entry.status == 499 && t["leg"] == "upstream" {
            assert_eq!(
                (&t["path"], &t["server_port"]),
                (&target.into(), &8080.into())
            );
            let client = run
                .transactions
                .iter()
                .filter(|c| c["leg"] == "client" && c["path"] == target && c["status"].is_null());
            assert_eq!(client.count(), 1, "{entry:?}: {t}");
            unanswered += 1;
            continue;
        }
        assert_eq!(t["method"], method, "{entry:?}");
        assert_eq!(t["path"], target, "{entry:?}");
        // 499: wrk closed the connection as it stopped, while nginx was
        // answering. nginx logs the abort, not the status line it may
        // already have written (which is what the wire, and the sensor,
        // carry), so only the line's presence is unknown.
        if entry.status != 499 {
            assert_eq!(t["status"], entry.status, "{entry:?}");
        }
        assert_eq!(t["client_ip"], entry.remote_addr.as_str(), "{entry:?}");
        assert_eq!(t["server_port"], 8443, "{t}");
        assert_eq!(t["confirmed"], true, "{t}");
        assert_eq!(t["midstream"], false, "{t}");
        // Joined to its upstream leg (plaintext, tc) by Kong's request id.
        assert_eq!(t["upstream"]["server_port"], 8080, "{t}");
    }
    assert_eq!(
        run.transactions.len(),
        logged.len() + unanswered,
        "nothing else"
    );
    let v6 = run
        .transactions
        .iter()
        .find(|t| t["path"] == "/hello?via=tls6")
        .unwrap();
    assert_eq!(v6["client_ip"], CLIENT_V6);

    // Port 8443 reaches the pipeline only as the TLS tap's plaintext.
    let on_8443: Vec<&Value> = run
        .segments
        .iter()
        .filter(|s| {
            [&s["src"], &s["dst"]]
                .iter()
                .any(|a| a.as_str().unwrap().ends_with(":8443"))
        })
        .collect();
    assert!(
        on_8443.iter().all(|s| s["hook"] == "tls"),
        "ciphertext in the pipeline"
    );
    assert!(on_8443.iter().any(|s| {
        s["payload"]
            .as_str()
            .unwrap()
            .starts_with("GET /hello?via=tls HTTP/1.1\r\n")
    }));
    // `SSL_free` (probed past its first instruction) ends each of the
    // curl connections with a FIN from each side.
    let fins = on_8443
        .iter()
        .filter(|s| s["flags"].as_str().unwrap().contains('F'))
        .count();
    assert!(fins >= 4, "{fins} FIN segments from the TLS tap");

    // The counters moved and balance; the clients' own calls never counted
    // (they would be bound to client sockets: `other_port`).
    let s = &run.summary;
    let (k, r) = (&s["tls"]["kernel"], &s["tls"]["reader"]);
    assert_eq!(s["balanced"], true, "{s}");
    assert!(n(&k["calls"]) >= 2 * (9 + requests), "{s}");
    assert_eq!(
        n(&k["calls"]),
        n(&k["submitted"]) + n(&k["ring_full"]),
        "{s}"
    );
    assert_eq!(n(&k["submitted"]), n(&r["calls"]), "{s}");
    assert_eq!(n(&k["events"]), n(&r["events"]), "{s}");
    assert_eq!(n(&r["delivered"]), n(&r["calls"]), "{s}");
    for lost in ["ring_full", "copy_error", "events_lost"] {
        assert_eq!(n(&k[lost]), 0, "{lost}: {s}");
    }
    for dropped in ["unbound", "other_port", "malformed"] {
        assert_eq!(n(&r[dropped]), 0, "{dropped}: {s}");
    }
    // Every connection began in the tap's sight, bound at `SSL_set_fd`:
    // the socket tracepoints were never needed.
    assert_eq!(n(&s["tls"]["socket_tracepoint_attaches"]), 0, "{s}");
    // /big's 64 KiB went in 16 KiB SSL_writes (nginx's ssl_buffer_size),
    // each but its first 512 bytes framed by length.
    assert!(n(&r["beyond_capture_bytes"]) >= 65536 - 5 * 512, "{s}");
    let libraries = s["tls"]["libraries"].as_array().unwrap();
    assert!(
        libraries
            .iter()
            .any(|l| l.as_str().unwrap().contains("libssl.so")),
        "{s}"
    );
    assert_eq!(
        programs_left_after_exit(),
        Vec::<String>::new(),
        "nothing stays loaded"
    );
}

/// An HTTPS client on one keep-alive connection: `GET /hello?old=0`, then
/// `ready`; at each line on stdin, the next request (`old=1`, ...). Prints
/// each response's status.
const KEEPALIVE_CLIENT: &str = r#"
import socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((host, port)))
def get(i):
    s.sendall(f"GET /hello?old={i} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().lower().split("\r\n")
    length = [int(l.split(":")[1]) for l in lines if l.startswith("content-length:")]
    if length:
        while len(body) < length[0]:
            body += s.recv(4096)
    else:
        while not body.endswith(b"0\r\n\r\n"):
            body += s.recv(4096)
    print(lines[0].split()[1], flush=True)
get(0)
print("ready", flush=True)
for i, _ in enumerate(sys.stdin, 1):
    get(i)
"#;

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn a_connection_older_than_the_sensor_is_bound_while_socket_tracepoints_wait_for_it() {
    require_root();
    let lab = Lab::up("ss-tlso").unwrap();
    let port = Listener::Https.port().to_string();
    let mut client = lab
        .command(&lab.client_ns(), "python3")
        .args(["-c", KEEPALIVE_CLIENT, GATEWAY_V4, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut line = || lines.next().unwrap().unwrap();
    assert_eq!((line(), line()), ("200".into(), "ready".into()));
    let sockets =
        || raw_tracepoint_links("sock_send_length") + raw_tracepoint_links("sock_recv_length");

    let mut args = BOTH_LEGS.to_vec();
    args.extend(["--tls", "on", "--transactions", "-"]);
    let sensor = start_sensor(&lab, &args);
    // A connection that starts now is bound at `SSL_set_fd`: the socket
    // tracepoints, which run on every send and receive, stay detached.
    let https = |path: &str| lab.curl(&Listener::Https.url(false, path)).unwrap().0;
    assert_eq!(https("/hello?new=1"), 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sockets(), 0, "attached for no reason");
    // The old connection's calls come without their socket: the
    // tracepoints attach, and a later call binds it.
    for _ in 1..=3 {
        writeln!(stdin, "next").unwrap();
        assert_eq!(line(), "200");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(sockets(), 2, "attached while the old connection waits");
    // Operators see it on `:9251` (published once a second).
    let attaches = "siem_sensor_tls_socket_tracepoint_attaches_total ";
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(metric(&metrics(&lab), attaches), 1.0);
    drop(stdin);
    assert!(client.wait().unwrap().success());
    // Detached once no record waited for its socket for 5 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    while sockets() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sockets(), 0, "still attached");
    let run = sensor.stop().unwrap();
    lab.teardown();

    // The old connection is mid-stream to the sensor, as on the wire; the
    // new one began in its sight. None is lost.
    let mut seen: Vec<(&str, &Value, &Value)> = run
        .transactions
        .iter()
        .map(|t| (t["path"].as_str().unwrap(), &t["status"], &t["midstream"]))
        .collect();
    seen.sort_by_key(|t| t.0);
    let (ok, old, new) = (Value::from(200), Value::from(true), Value::from(false));
    let expected = [
        ("/hello?new=1", &ok, &new),
        ("/hello?old=1", &ok, &old),
        ("/hello?old=2", &ok, &old),
        ("/hello?old=3", &ok, &old),
    ];
    assert_eq!(seen, expected, "{:#?}", run.transactions);
    let s = &run.summary;
    assert_eq!(s["balanced"], true, "{s}");
    assert_eq!(n(&s["tls"]["reader"]["unbound"]), 0, "{s}");
    assert_eq!(n(&s["tls"]["socket_tracepoint_attaches"]), 1, "{s}");
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn gateway_processes_started_after_the_sensor_are_covered() {
    require_root();
    let lab = Lab::up("ss-tlsr").unwrap();
    let mut args = BOTH_LEGS.to_vec();
    args.extend(["--tls", "on", "--transactions", "-"]);
    let before = lab.access_log().unwrap().len();
    let first = lab.gateway_pids().unwrap();
    let sensor = start_sensor(&lab, &args);
    let https = |path: &str| lab.curl(&Listener::Https.url(false, path)).unwrap().0;
    assert_eq!(https("/hello?at=start"), 200);
    // A reload: the master forks new workers, the old ones exit.
    lab.reload_gateway().unwrap();
    let reloaded = lab.gateway_pids().unwrap();
    assert_eq!(reloaded[0], first[0], "same master");
    assert!(
        reloaded[1..].iter().all(|p| !first.contains(p)),
        "new workers"
    );
    assert_eq!(https("/hello?after=reload"), 200);
    // A restart: a new master (as `kong restart`), forked from nothing the
    // sensor saw.
    lab.restart_gateway().unwrap();
    let restarted = lab.gateway_pids().unwrap();
    assert!(
        restarted.iter().all(|p| !reloaded.contains(p)),
        "new master"
    );
    assert_eq!(https("/hello?after=restart"), 200);
    let run = sensor.stop().unwrap();
    let logged = lab.access_log().unwrap().split_off(before);
    lab.teardown();
    // The lab's own readiness checks on the plain listener are logged too.
    let logged: Vec<_> = logged.iter().filter(|e| e.request.contains("?")).collect();
    assert_eq!(logged.len(), 3, "{logged:?}");
    let ids = by_request_id(&run.transactions);
    for entry in logged {
        let txs = ids
            .get(entry.request_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        assert_eq!(txs.len(), 1, "{entry:?}: {:?}", run.transactions);
        assert_eq!(txs[0]["server_port"], 8443);
    }
    assert_eq!(run.summary["balanced"], true, "{}", run.summary);
    // The gateway's processes the kernel recognised and that still run:
    // the new master and its worker (a master makes SSL calls only if it
    // handles connections: at least the worker).
    assert!(n(&run.summary["tls"]["processes"]) >= 1, "{}", run.summary);
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn as_the_unit_runs_it_unprivileged_with_cap_sys_admin_alone() {
    require_root();
    let lab = Lab::up("ss-tlsu").unwrap();
    // nobody must be able to create its fingerprint key there.
    std::os::unix::fs::chown(lab.workdir(), Some(65534), Some(65534)).unwrap();
    // The unit's user and capability: root's master cannot be read (its
    // worker runs as nobody here), the kernel tells the gateway's processes
    // by itself.
    let prefix = as_nobody("+sys_admin");
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let mut args = BOTH_LEGS.to_vec();
    args.extend(["--tls", "on", "--no-metrics", "--transactions", "-"]);
    let start = |prefix: &[&str], args: &[&str]| {
        SensorProcess::start_as(&lab, prefix, std::path::Path::new(SENSOR), args, None)
    };
    let sensor = start(&prefix, &args).unwrap();
    let url = Listener::Https.url(false, "/hello?as=nobody");
    assert_eq!(lab.curl(&url).unwrap().0, 200);
    let run = sensor.stop().unwrap();
    assert!(
        run.log
            .contains("capabilities dropped after attach; these remain capabilities={}"),
        "{}",
        run.log
    );
    let paths: Vec<_> = run
        .transactions
        .iter()
        .map(|t| {
            (
                t["path"].as_str(),
                t["server_port"].as_u64(),
                t["status"].as_u64(),
            )
        })
        .collect();
    assert_eq!(paths, [(Some("/hello?as=nobody"), Some(8443), Some(200))]);
    assert_eq!(run.summary["balanced"], true, "{}", run.summary);

    // The three narrower capabilities load the packet tap but cannot
    // create uprobes: `--tls on` says so before loading anything.
    let prefix = as_nobody("+bpf,+perfmon,+net_admin");
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let refused = start(&prefix, &args).err().expect("refused");
    lab.teardown();
    assert!(
        format!("{refused:#}").contains("creating uprobes needs CAP_SYS_ADMIN"),
        "{refused:#}"
    );
}

/// An alert as (detector, subject): the client IP, or the principal for
/// `credential_spread`.
fn alert_key(alert: &Value) -> (String, String) {
    let detector = alert["detector"].as_str().unwrap().to_string();
    let subject = alert["client_ip"].as_str().or(alert["principal"].as_str());
    (detector, subject.unwrap_or("?").to_string())
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn scenarios_over_https_raise_the_same_alerts_as_over_http() {
    require_root();
    let lab = Lab::up("ss-tlss").unwrap();
    let all = scenarios::all();
    let mut args = scenarios::live_args();
    args.extend(["--tls", "on"]);
    let mut raised = Vec::new();
    let mut summaries = Vec::new();
    let mut spread = Vec::new();
    for listener in [Listener::Http, Listener::Https, Listener::Https2] {
        let sensor = start_sensor(&lab, &args);
        for s in &all {
            s.play_over(&lab, listener)
                .unwrap_or_else(|e| panic!("{listener:?} {}: {e:#}", s.name));
        }
        let run = sensor.stop().unwrap();
        raised.push(run.alerts.iter().map(alert_key).collect::<BTreeSet<_>>());
        spread.push(
            run.alerts
                .iter()
                .filter(|a| a["detector"] == "credential_spread")
                .cloned()
                .collect::<Vec<_>>(),
        );
        summaries.push(run.summary);
    }
    lab.teardown();

    let expected: BTreeSet<_> = all
        .iter()
        .flat_map(|s| s.raises.iter().map(|(d, s)| (d.to_string(), s.clone())))
        .collect();
    assert_eq!(raised[0], expected, "over HTTP");
    assert_eq!(raised[1], raised[0], "over HTTPS");
    assert_eq!(
        raised[2], raised[0],
        "over HTTPS with HTTP/2: {spread:#?} {}",
        summaries[2]
    );
    let h2 = &summaries[2]["http"]["h2"];
    assert!(h2["streams"].as_u64().unwrap() > 2000, "{h2}");
    assert_eq!(h2["hpack_lost"], 0, "{h2}");
    // Over HTTPS the client legs came from the TLS tap, joined to the
    // upstream legs the tc tap saw.
    let https = &summaries[1];
    let tls = &https["tls"]["reader"];
    assert!(n(&tls["delivered"]) > 2000, "{https}");
    assert_eq!(n(&tls["other_port"]) + n(&tls["unbound"]), 0, "{https}");
    assert!(n(&https["join"]["joined"]) > 1000, "{https}");
    assert_eq!(https["balanced"], true);
    // Over HTTP the TLS tap had nothing to read.
    assert_eq!(
        n(&summaries[0]["tls"]["kernel"]["calls"]),
        0,
        "{}",
        summaries[0]
    );
}

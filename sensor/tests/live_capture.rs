//! Live capture on the lab (root): the sensor attached to the gateway sees
//! request and status lines with the right tuple and direction on both legs,
//! over IPv4 and IPv6, with tc (TCX and netlink) and XDP; its counters
//! balance under load; traffic passes unchanged; and failures leave nothing
//! attached.

mod support;

use std::process::Command;

use lab::{
    BOTH_LEGS, CLIENT_V4, CLIENT_V6, GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, GATEWAY_UPSTREAM_V4,
    GATEWAY_V4, GATEWAY_V6, Lab, UPSTREAM_V4, sensor::SensorProcess,
};
use support::{
    SENSOR, as_nobody, loaded_packet_programs, matching, programs_left_after_exit, require_root,
    sensor_output, start_sensor,
};

fn assert_nothing_attached() {
    let loaded = programs_left_after_exit();
    assert!(loaded.is_empty(), "still loaded: {loaded:?}");
}

/// Runs wrk with `args` from the client against the gateway's `/hello`;
/// returns its report.
/// The permitted capability set of process `pid` (`CapPrm` in
/// /proc/PID/status), as a bit mask.
fn permitted_caps(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

fn wrk(lab: &Lab, args: &[&str]) -> String {
    let out = lab
        .command(&lab.client_ns(), "wrk")
        .args(args)
        .arg(lab.proxy_url(false, "/hello"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    report
}

fn assert_balanced(summary: &serde_json::Value) {
    let k = &summary["kernel"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    assert_eq!(
        n(&k["seen"]),
        n(&k["submitted"]) + n(&k["ring_full"]) + n(&k["copy_error"]),
        "{summary}"
    );
    assert_eq!(
        n(&k["submitted"]),
        n(&summary["reader"]["received"]),
        "{summary}"
    );
    assert_eq!(summary["balanced"], true);
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn tc_sees_both_legs_over_ipv4_and_ipv6() {
    require_root();
    let lab = Lab::up("ss-tc").unwrap();
    let sensor = start_sensor(&lab, &[&BOTH_LEGS[..], &["--debug-segments"]].concat());
    assert_eq!(loaded_packet_programs(), ["tc_ingress", "tc_egress"]);
    // Started as root, attached with TCX links: no capability is left.
    assert_eq!(permitted_caps(sensor.pid()), 0);
    assert_eq!(
        lab.curl(&lab.proxy_url(false, "/hello?via=v4")).unwrap().0,
        200
    );
    assert_eq!(
        lab.curl(&lab.proxy_url(true, "/hello?via=v6")).unwrap().0,
        200
    );
    assert_eq!(lab.curl(&lab.proxy_url(false, "/missing")).unwrap().0, 404);
    let run = sensor.stop().unwrap();
    assert!(
        run.log.contains("(tcx)"),
        "auto mode should pick TCX on this kernel:\n{}",
        run.log
    );
    let gw = format!("{GATEWAY_V4}:8000");
    let gw6 = format!("[{GATEWAY_V6}]:8000");
    let client = format!("{CLIENT_V4}:*");
    let client6 = format!("[{CLIENT_V6}]:*");
    let s = &run.segments;

    // Client leg, IPv4: request in, response out, on the reversed tuple.
    let request = matching(
        s,
        &[
            ("iface", GATEWAY_CLIENT_IF),
            ("direction", "ingress"),
            ("src", &client),
            ("dst", &gw),
            ("payload", "GET /hello?via=v4 HTTP/1.1\r\n*"),
        ],
    );
    assert_eq!(request.len(), 1, "one request segment: {request:?}");
    let client_addr = request[0]["src"].as_str().unwrap();
    let response = matching(
        s,
        &[
            ("iface", GATEWAY_CLIENT_IF),
            ("direction", "egress"),
            ("src", &gw),
            ("dst", client_addr),
            ("payload", "HTTP/1.1 200 OK\r\n*"),
        ],
    );
    assert_eq!(response.len(), 1, "{response:?}");
    assert_eq!(request[0]["hook"], "tc");
    // Connection start and end are recorded without payload.
    let syn = matching(s, &[("src", client_addr), ("dst", &gw), ("flags", "S")]);
    assert_eq!(syn.len(), 1);
    assert_eq!(syn[0]["payload_len"], 0);
    assert!(
        !matching(s, &[("src", client_addr), ("flags", "F*")]).is_empty(),
        "client FIN"
    );

    // Client leg, IPv6.
    assert_eq!(
        matching(
            s,
            &[
                ("direction", "ingress"),
                ("src", &client6),
                ("dst", &gw6),
                ("payload", "GET /hello?via=v6 HTTP/1.1\r\n*")
            ]
        )
        .len(),
        1
    );
    assert_eq!(
        matching(
            s,
            &[
                ("direction", "egress"),
                ("src", &gw6),
                ("dst", &client6),
                ("payload", "HTTP/1.1 200 OK\r\n*")
            ]
        )
        .len(),
        1
    );
    assert_eq!(
        matching(
            s,
            &[
                ("direction", "egress"),
                ("src", &gw),
                ("payload", "HTTP/1.1 404 Not Found\r\n*")
            ]
        )
        .len(),
        1
    );

    // Upstream leg: Kong-like request out (with the client in X-Forwarded-For), response in.
    let upstream = format!("{UPSTREAM_V4}:8080");
    let proxied = matching(
        s,
        &[
            ("iface", GATEWAY_UPSTREAM_IF),
            ("direction", "egress"),
            ("src", &format!("{GATEWAY_UPSTREAM_V4}:*")),
            ("dst", &upstream),
            ("payload", "GET /hello?via=v4 HTTP/1.1\r\n*"),
        ],
    );
    assert_eq!(proxied.len(), 1);
    assert!(
        proxied[0]["payload"]
            .as_str()
            .unwrap()
            .contains(&format!("X-Forwarded-For: {CLIENT_V4}\r\n"))
    );
    assert_eq!(
        matching(
            s,
            &[
                ("iface", GATEWAY_UPSTREAM_IF),
                ("direction", "ingress"),
                ("src", &upstream),
                ("payload", "HTTP/1.1 404 Not Found\r\n*")
            ]
        )
        .len(),
        1
    );

    assert_balanced(&run.summary);
    assert_eq!(run.summary["segments"], run.summary["reader"]["received"]);
    assert_eq!(run.summary["segments"].as_u64().unwrap(), s.len() as u64);
    assert_nothing_attached();
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn tc_netlink_attach_captures_and_detaches() {
    require_root();
    let lab = Lab::up("ss-nl").unwrap();
    let sensor = start_sensor(
        &lab,
        &[
            "--iface",
            GATEWAY_CLIENT_IF,
            "--tc-attach",
            "netlink",
            "--debug-segments",
            "--capture-len",
            "1024",
        ],
    );
    // Only CAP_NET_ADMIN (bit 12) stays, to delete the filters at exit.
    assert_eq!(permitted_caps(sensor.pid()), 1 << 12);
    let (status, body) = lab.curl(&lab.proxy_url(false, "/big")).unwrap();
    assert_eq!(
        (status, body.len()),
        (200, 65536),
        "traffic passes unchanged"
    );
    assert_eq!(body, "0123456789abcdef".repeat(4096).as_bytes());
    let run = sensor.stop().unwrap();
    assert!(run.log.contains("(netlink clsact)"), "{}", run.log);
    let gw = format!("{GATEWAY_V4}:8000");
    assert_eq!(
        matching(
            &run.segments,
            &[
                ("direction", "ingress"),
                ("dst", &gw),
                ("payload", "GET /big HTTP/1.1\r\n*")
            ]
        )
        .len(),
        1
    );
    let body_segments = matching(&run.segments, &[("direction", "egress"), ("src", &gw)]);
    let sent: u64 = body_segments
        .iter()
        .map(|s| s["payload_len"].as_u64().unwrap())
        .sum();
    assert!(
        sent > 65536,
        "the whole response is accounted for by payload_len: {sent}"
    );
    assert!(
        body_segments
            .iter()
            .all(|s| s["captured_len"].as_u64().unwrap() <= 1024)
    );
    assert_balanced(&run.summary);
    let filters = lab
        .command(&lab.gateway_ns(), "tc")
        .args(["filter", "show", "dev", GATEWAY_CLIENT_IF, "ingress"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&filters.stdout).trim().is_empty(),
        "filter left behind"
    );
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn xdp_sees_ingress_only() {
    require_root();
    let lab = Lab::up("ss-xdp").unwrap();
    let sensor = start_sensor(
        &lab,
        &[
            "--iface",
            GATEWAY_CLIENT_IF,
            "--hook",
            "xdp",
            "--debug-segments",
        ],
    );
    assert_eq!(loaded_packet_programs(), ["xdp_ingress"]);
    assert_eq!(
        lab.curl(&lab.proxy_url(false, "/hello?via=xdp")).unwrap().0,
        200
    );
    assert_eq!(
        lab.curl(&lab.proxy_url(true, "/hello?via=xdp6")).unwrap().0,
        200
    );
    let run = sensor.stop().unwrap();
    let s = &run.segments;
    assert_eq!(
        matching(
            s,
            &[
                ("hook", "xdp"),
                ("direction", "ingress"),
                ("dst", &format!("{GATEWAY_V4}:8000")),
                ("payload", "GET /hello?via=xdp HTTP/1.1\r\n*")
            ]
        )
        .len(),
        1
    );
    assert_eq!(
        matching(
            s,
            &[
                ("hook", "xdp"),
                ("dst", &format!("[{GATEWAY_V6}]:8000")),
                ("payload", "GET /hello?via=xdp6 HTTP/1.1\r\n*")
            ]
        )
        .len(),
        1
    );
    assert!(
        matching(s, &[("direction", "egress")]).is_empty(),
        "XDP has no egress"
    );
    assert!(
        matching(s, &[("payload", "HTTP/1.1*")]).is_empty(),
        "responses leave, XDP sees none"
    );
    assert_balanced(&run.summary);
    assert_nothing_attached();
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn wrk_load_is_delivered_or_counted_and_passes_unchanged() {
    require_root();
    let lab = Lab::up("ss-load").unwrap();
    let sensor = start_sensor(&lab, &BOTH_LEGS);
    let report = wrk(&lab, &["-t2", "-c16", "-d4s"]);
    assert!(
        !report.contains("Socket errors") && !report.contains("Non-2xx"),
        "wrk saw errors:\n{report}"
    );
    let requests: u64 = report
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no request count in:\n{report}"));
    let run = sensor.stop().unwrap();
    assert_balanced(&run.summary);
    let k = &run.summary["kernel"];
    let received = run.summary["reader"]["received"].as_u64().unwrap();
    // Each request is at least 4 segments with payload: request and response
    // on both legs. Each was seen, and (balanced) received or counted: the
    // unoptimised test build of the daemon can fall behind at this rate.
    let seen = k["seen"].as_u64().unwrap();
    assert!(
        requests > 1000 && seen >= 4 * requests,
        "{requests} requests, {seen} segments seen, {received} records received: {k}"
    );
    eprintln!(
        "load: {requests} requests in 4 s ({} req/s), {received} records ({} /s), ring_full={} copy_error={}",
        requests / 4,
        received / 4,
        k["ring_full"],
        k["copy_error"]
    );
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn ring_full_drops_are_counted_when_the_reader_stalls() {
    require_root();
    let lab = Lab::up("ss-full").unwrap();
    let sensor = start_sensor(
        &lab,
        &["--iface", GATEWAY_CLIENT_IF, "--ring-size-mib", "1"],
    );
    let pid = sensor.pid().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP"); // the reader stalls; 1 MiB of rings holds a few thousand records
    wrk(&lab, &["-t1", "-c4", "-d2s"]);
    signal("-CONT");
    let run = sensor.stop().unwrap();
    assert_balanced(&run.summary);
    let k = &run.summary["kernel"];
    assert!(k["ring_full"].as_u64().unwrap() > 0, "{}", run.summary);
    assert!(
        run.summary["reader"]["received"].as_u64().unwrap() > 1000,
        "{}",
        run.summary
    );
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn unknown_interface_is_refused_before_anything_attaches() {
    require_root();
    let lab = Lab::up("ss-err").unwrap();
    let args = ["run", "--iface", GATEWAY_CLIENT_IF, "--iface", "nope0"];
    let out = sensor_output(&lab, &[], &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interface \"nope0\" does not exist"), "{err}");
    assert_nothing_attached();
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn failed_attach_detaches_what_was_attached() {
    require_root();
    let lab = Lab::up("ss-det").unwrap();
    // Native XDP works on veth (not on the client leg's bridge, nor on
    // loopback): the second attach fails after the first succeeded, and the
    // first must be undone.
    let out = sensor_output(
        &lab,
        &[],
        &[
            "run",
            "--hook",
            "xdp",
            "--xdp-mode",
            "driver",
            "--iface",
            GATEWAY_UPSTREAM_IF,
            "--iface",
            "lo",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("attaching xdp_ingress to lo"), "{err}");
    assert!(
        err.contains(&format!("attached xdp_ingress on {GATEWAY_UPSTREAM_IF}")),
        "the first attach happened: {err}"
    );
    assert_nothing_attached();
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn missing_capability_is_named() {
    require_root();
    let lab = Lab::up("ss-cap").unwrap();
    // Root without CAP_BPF and CAP_SYS_ADMIN (which also grants BPF) in its
    // bounding set, hence not in its effective set after exec.
    let drop_caps = ["setpriv", "--bounding-set", "-bpf,-sys_admin"];
    let out = sensor_output(&lab, &drop_caps, &["run", "--iface", GATEWAY_CLIENT_IF]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing capability CAP_BPF"), "{err}");
    assert_nothing_attached();
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn an_unprivileged_user_with_three_capabilities_captures() {
    require_root();
    let lab = Lab::up("ss-least").unwrap();
    // nobody must be able to create its fingerprint key there.
    std::os::unix::fs::chown(lab.workdir(), Some(65534), Some(65534)).unwrap();
    let prefix = as_nobody("+bpf,+perfmon,+net_admin");
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--no-metrics",
        "--transactions",
        "-",
    ];
    let sensor =
        SensorProcess::start_as(&lab, &prefix, std::path::Path::new(SENSOR), &args, None).unwrap();
    let (status, _) = lab.curl(&lab.proxy_url(false, "/hello")).unwrap();
    assert_eq!(status, 200);
    let run = sensor.stop().unwrap();
    assert_balanced(&run.summary);
    let paths: Vec<_> = run
        .transactions
        .iter()
        .map(|t| (t["path"].as_str(), t["status"].as_u64()))
        .collect();
    assert_eq!(paths, [(Some("/hello"), Some(200))]);

    let key = lab.workdir().join("fingerprint.key").display().to_string();
    for (caps, missing) in [
        ("+perfmon,+net_admin", "CAP_BPF"),
        ("+bpf,+net_admin", "CAP_PERFMON"),
        ("+bpf,+perfmon", "CAP_NET_ADMIN"),
    ] {
        let prefix = as_nobody(caps);
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let args = [
            "run",
            "--iface",
            GATEWAY_CLIENT_IF,
            "--no-metrics",
            "--fingerprint-key",
            &key,
        ];
        let out = sensor_output(&lab, &prefix, &args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("missing capability {missing}")),
            "{caps}: {err}"
        );
    }
    lab.teardown();
    assert_nothing_attached();
}

//! The kernel block of offenders (`--block`), live in the lab, configured
//! through the config file as an operator would: a decoy hit blocks that
//! client's packets to Kong's proxy port for the TTL while everyone else
//! is served; dry-run blocks nothing; a client a trusted proxy names, the
//! proxy itself and a Kong node address are never blocked; `siem-sensor
//! blocks` lists and lifts blocks; `kill -9` leaves nothing blocked in TCX
//! and netlink attach modes and a restarted sensor runs one set of
//! programs; spoofed segments aimed at a victim block nothing.

mod support;

use std::{
    fs,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use lab::{GATEWAY_CLIENT_IF, GATEWAY_V4, Lab, PROXY_PORT, REQUESTS_PY, run_quiet};
use serde_json::Value;
use support::{
    metric, metrics, programs_left_after_exit, require_root, sensor_output, start_sensor,
};

const ATTACKER: &str = "10.77.0.13";
const BYSTANDER: &str = "10.77.0.14";
const PROXY: &str = "10.77.0.10";

/// Writes the test's config file: decoys `/admin/**`, PROXY trusted, the
/// block policy `mode` with `ttl`, the control socket in the lab's
/// workdir, metrics on the gateway's loopback; `extra` appended to
/// `[capture]`.
fn config(lab: &Lab, mode: &str, ttl: &str, extra: &str) -> (PathBuf, PathBuf) {
    let socket = lab.workdir().join("control.sock");
    let path = lab.workdir().join("sensor.toml");
    let text = format!(
        r#"[capture]
interfaces = ["{GATEWAY_CLIENT_IF}", "lo"]
{extra}

[identity]
trusted_proxies = ["{PROXY}"]

[detectors]
decoys = ["/admin/**"]

[metrics]
listen = "127.0.0.1:9251"

[block]
mode = "{mode}"
ttl = "{ttl}"
control_socket = "{}"
"#,
        socket.display()
    );
    fs::write(&path, text).unwrap();
    (path, socket)
}

/// The HTTP status of one request for `path` from client host `source`
/// (`None`: no answer within a second: connect or read timed out).
fn get(lab: &Lab, source: &str, path: &str, extra: &[&str]) -> Option<u16> {
    let url = format!("http://{GATEWAY_V4}:{PROXY_PORT}{path}");
    let out = lab
        .command_from(source, "curl")
        .unwrap()
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "1",
        ])
        .args(["--interface", source])
        .args(extra)
        .arg(&url)
        .output()
        .unwrap();
    let code: u16 = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    (out.status.success() && code != 0).then_some(code)
}

fn served(lab: &Lab, source: &str) -> bool {
    get(lab, source, "/hello", &[]) == Some(200)
}

/// Polls until `source` is served again (each try waits 0.2 s for an
/// answer); when, or `None` after `limit`.
fn served_within(lab: &Lab, source: &str, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    let url = format!("http://{GATEWAY_V4}:{PROXY_PORT}/hello");
    while start.elapsed() < limit {
        let ok = lab
            .command_from(source, "curl")
            .unwrap()
            .args(["-s", "-f", "-o", "/dev/null", "--max-time", "0.2"])
            .args(["--interface", source, &url])
            .status()
            .unwrap()
            .success();
        if ok {
            return Some(Instant::now());
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `siem-sensor blocks ARGS --socket SOCKET --json` in the gateway.
fn blocks(lab: &Lab, socket: &std::path::Path, args: &[&str]) -> Value {
    let socket = socket.display().to_string();
    let mut all = vec!["blocks", "--socket", &socket, "--json"];
    all.extend_from_slice(args);
    let out = sensor_output(lab, &[], &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn blocked_ips(list: &Value) -> Vec<String> {
    list["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ip"].as_str().unwrap().to_string())
        .collect()
}

/// Gives the sensor time to read the last request and decide: the client
/// leg waits 0.5 s for an upstream leg to join (not captured here).
fn settle() {
    thread::sleep(Duration::from_millis(1200));
}

/// The response of the alert about `ip`.
fn response<'a>(alerts: &'a [Value], ip: &str) -> &'a Value {
    &alerts
        .iter()
        .find(|a| a["client_ip"] == ip && a["state"] == "firing")
        .unwrap_or_else(|| panic!("no alert about {ip}: {alerts:#?}"))["response"]
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn a_decoy_hit_blocks_that_client_for_the_ttl_and_never_the_proxy_or_kong() {
    require_root();
    let lab = Lab::up("ss-blk").unwrap();
    let (path, socket) = config(&lab, "on", "3s", "");
    let sensor = start_sensor(&lab, &["--config", path.to_str().unwrap(), "--alerts", "-"]);
    assert!(served(&lab, ATTACKER));
    let hit = Instant::now();
    assert!(get(&lab, ATTACKER, "/admin/login", &[]).is_some());
    settle();
    // Its next requests fail (to any API); everyone else is served.
    assert_eq!(get(&lab, ATTACKER, "/hello", &[]), None);
    assert_eq!(get(&lab, ATTACKER, "/api/orders", &[]), None);
    assert!(served(&lab, BYSTANDER));
    let list = blocks(&lab, &socket, &[]);
    assert_eq!(blocked_ips(&list), [ATTACKER], "{list}");
    assert_eq!(list["mode"], "on");
    let page = metrics(&lab);
    assert_eq!(metric(&page, "siem_sensor_blocks_active"), 1.0);
    assert_eq!(
        metric(&page, "siem_sensor_blocks_total{detector=\"honeypot\"}"),
        1.0
    );
    assert!(
        metric(
            &page,
            "siem_sensor_packets_dropped_total{reason=\"blocked_source\"}"
        ) >= 2.0
    );

    // After the TTL (from the decision, a little after the hit), served again.
    let back = served_within(&lab, ATTACKER, Duration::from_secs(6)).expect("never unblocked");
    let blocked_for = back - hit;
    assert!(
        blocked_for >= Duration::from_secs(3) && blocked_for < Duration::from_millis(4500),
        "blocked for {blocked_for:?}, the TTL is 3 s"
    );

    // Behind the trusted proxy: the client it names gets advice, the proxy
    // is never blocked; nor is the proxy's own hit, nor Kong's.
    let xff = ["-H", "X-Forwarded-For: 198.51.100.7"];
    assert!(get(&lab, PROXY, "/admin/xff", &xff).is_some());
    assert!(get(&lab, PROXY, "/admin/proxy", &[]).is_some());
    let kong = lab
        .command(&lab.gateway_ns(), "curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "2"])
        .arg(format!("http://{GATEWAY_V4}:{PROXY_PORT}/admin/kong"))
        .status()
        .unwrap();
    assert!(kong.success());
    settle();
    assert!(served(&lab, PROXY));
    assert!(blocked_ips(&blocks(&lab, &socket, &[])).is_empty());

    // A second offence lasts twice as long; lifted by hand at once.
    assert!(get(&lab, ATTACKER, "/admin/again", &[]).is_some());
    settle();
    assert_eq!(get(&lab, ATTACKER, "/hello", &[]), None);
    let list = blocks(&lab, &socket, &[]);
    assert_eq!(list["blocks"][0]["offence"], 2, "{list}");
    assert_eq!(list["blocks"][0]["ttl_s"], 6, "{list}");
    let removed = blocks(&lab, &socket, &["remove", ATTACKER]);
    assert_eq!(removed["removed"], 1, "{removed}");
    assert!(served(&lab, ATTACKER));

    let run = sensor.stop().unwrap();
    lab.teardown();
    let blocked = response(&run.alerts, ATTACKER);
    assert_eq!(blocked["action"], "blocked", "{blocked}");
    assert_eq!(blocked["ttl_s"], 3);
    assert_eq!(blocked["kong"][0]["action"], "ip-restriction deny");
    let advised = response(&run.alerts, "198.51.100.7");
    assert_eq!(advised["action"], "advised", "{advised}");
    assert_eq!(advised["kong"][0]["target"], "198.51.100.7");
    assert_eq!(response(&run.alerts, PROXY)["action"], "allow_listed");
    assert_eq!(response(&run.alerts, GATEWAY_V4)["action"], "allow_listed");
    let events: Vec<(&str, &str, Option<&str>)> = run
        .blocks
        .iter()
        .map(|b| {
            (
                b["event"].as_str().unwrap(),
                b["ip"].as_str().unwrap(),
                b["reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("block", ATTACKER, None),
            ("unblock", ATTACKER, Some("expired")),
            ("block", ATTACKER, None),
            ("unblock", ATTACKER, Some("removed")),
        ],
        "{:#?}",
        run.blocks
    );
    let b = &run.summary["block"];
    assert_eq!(b["decisions"]["blocked"], 2, "{b}");
    assert_eq!(b["decisions"]["advised"], 1, "{b}");
    assert_eq!(b["decisions"]["allow_listed"], 2, "{b}");
    assert!(programs_left_after_exit().is_empty());
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn dry_run_blocks_nothing_and_logs_the_decision() {
    require_root();
    let lab = Lab::up("ss-blkd").unwrap();
    let (path, socket) = config(&lab, "dry-run", "30s", "");
    let sensor = start_sensor(&lab, &["--config", path.to_str().unwrap(), "--alerts", "-"]);
    assert!(get(&lab, ATTACKER, "/admin/login", &[]).is_some());
    settle();
    assert!(served(&lab, ATTACKER));
    let list = blocks(&lab, &socket, &[]);
    assert_eq!(list["mode"], "dry-run");
    assert_eq!(list["blocks"][0]["enforced"], false, "{list}");
    let page = metrics(&lab);
    assert_eq!(
        metric(
            &page,
            "siem_sensor_packets_dropped_total{reason=\"blocked_source\"}"
        ),
        0.0
    );
    let run = sensor.stop().unwrap();
    lab.teardown();
    assert_eq!(response(&run.alerts, ATTACKER)["action"], "dry_run");
    assert_eq!(run.blocks[0]["event"], "block");
    assert_eq!(run.blocks[0]["enforced"], false);
    // A stop ends every block, and says so.
    assert_eq!(run.blocks[1]["reason"], "stopped", "{:#?}", run.blocks);
    assert!(run.log.contains("block decision"), "{}", run.log);
}

/// The `tc` filters named `name` on the gateway's client interface.
fn filters(lab: &Lab, direction: &str, name: &str) -> usize {
    let mut cmd = lab.command(&lab.gateway_ns(), "tc");
    let out = run_quiet(cmd.args(["filter", "show", "dev", GATEWAY_CLIENT_IF, direction])).unwrap();
    // One line per filter: `... handle 0x1 tc_ingress direct-action ... name tc_ingress ...`.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(name))
        .count()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn kill_9_leaves_nothing_blocked_and_a_restart_runs_one_set_of_programs() {
    require_root();
    let lab = Lab::up("ss-blkk").unwrap();
    for attach in ["tcx", "netlink"] {
        let extra = format!("tc_attach = \"{attach}\"");
        let (path, _) = config(&lab, "on", "10m", &extra);
        let sensor = start_sensor(&lab, &["--config", path.to_str().unwrap()]);
        assert!(get(&lab, ATTACKER, "/admin/login", &[]).is_some());
        settle();
        assert_eq!(get(&lab, ATTACKER, "/hello", &[]), None, "{attach}");
        sensor.kill().unwrap();
        let left = filters(&lab, "ingress", "tc_ingress");
        assert_eq!(left, usize::from(attach == "netlink"), "{attach}");
        // Served again once the heartbeat lapses (5 s), filters or not.
        let back = served_within(&lab, ATTACKER, Duration::from_secs(8));
        assert!(back.is_some(), "{attach}: still blocked after kill -9");
        assert!(served(&lab, BYSTANDER));
    }
    // The netlink leftovers are removed by the next sensor: one set runs.
    let (path, _) = config(&lab, "on", "10m", "tc_attach = \"netlink\"");
    let sensor = start_sensor(&lab, &["--config", path.to_str().unwrap()]);
    let running = (
        filters(&lab, "ingress", "tc_ingress"),
        filters(&lab, "egress", "tc_egress"),
    );
    assert!(served(&lab, ATTACKER));
    let run = sensor.stop().unwrap();
    assert_eq!(running, (1, 1), "{}", run.log);
    assert!(
        run.log.contains("removed a stale tc_ingress filter"),
        "{}",
        run.log
    );
    assert_eq!(filters(&lab, "ingress", "tc_ingress"), 0);
    lab.teardown();
    assert!(programs_left_after_exit().is_empty());
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn spoofed_segments_aimed_at_a_victim_block_nothing() {
    require_root();
    let lab = Lab::up("ss-blks").unwrap();
    let script = lab.workdir().join("requests.py");
    fs::write(&script, REQUESTS_PY).unwrap();
    let (crafter, victim) = (Lab::extra_client(1), Lab::extra_client(2));
    lab.drop_own_resets(&crafter).unwrap();
    let (path, socket) = config(&lab, "on", "10m", "");
    let sensor = start_sensor(&lab, &["--config", path.to_str().unwrap(), "--alerts", "-"]);
    let crafter_ns = lab.client_ns_of(&crafter).unwrap();
    let port = PROXY_PORT.to_string();
    run_quiet(
        lab.command(&crafter_ns, "/usr/bin/python3")
            .arg(&script)
            .args(["hostile", &crafter, GATEWAY_V4, &port, "eth0", &victim]),
    )
    .unwrap();
    settle();
    assert!(served(&lab, &victim));
    assert!(blocked_ips(&blocks(&lab, &socket, &[])).is_empty());
    let run = sensor.stop().unwrap();
    lab.teardown();
    assert!(run.alerts.is_empty(), "{:#?}", run.alerts);
    assert!(run.blocks.is_empty(), "{:#?}", run.blocks);
    assert!(run.summary["detect"]["unconfirmed"].as_u64().unwrap() >= 3);
}

//! Helpers for live tests on top of the `lab` crate's lab and sensor process. Live tests need root (namespaces, CAP_BPF,
//! CAP_NET_ADMIN); CI runs as root.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use lab::{Lab, sensor::SensorProcess};
use serde_json::Value;

/// The binary under test.
pub const SENSOR: &str = env!("CARGO_BIN_EXE_siem-sensor");

/// Panics with a clear message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "live tests need root: namespaces, CAP_BPF, CAP_NET_ADMIN"
    );
}

/// Starts `siem-sensor run ARGS` in the gateway namespace, ready to capture.
pub fn start_sensor(lab: &Lab, args: &[&str]) -> SensorProcess {
    SensorProcess::start(lab, Path::new(SENSOR), args, None).unwrap()
}

/// Runs `PREFIX... siem-sensor ARGS` in the gateway namespace to completion,
/// killed after 60 s if it does not exit by itself.
pub fn sensor_output(lab: &Lab, prefix: &[&str], args: &[&str]) -> Output {
    lab.command(&lab.gateway_ns(), "timeout")
        .arg("60")
        .args(prefix)
        .arg(SENSOR)
        .args(args)
        .output()
        .expect("running siem-sensor")
}

/// The packet tap's programs.
pub const PACKET_PROGRAMS: [&str; 3] = ["tc_ingress", "tc_egress", "xdp_ingress"];

/// The TLS tap's programs (names as the kernel keeps them, at most 15 bytes).
pub const TLS_PROGRAMS: [&str; 14] = [
    "ssl_read_in",
    "ssl_read_ret",
    "ssl_rdex_ret",
    "ssl_write_in",
    "ssl_write_ret",
    "ssl_wrex_ret",
    "ssl_free_in",
    "ssl_set_fd_in",
    "ssl_accept_in",
    "ssl_connect_in",
    "tls_sock_send",
    "tls_sock_recv",
    "tls_exec",
    "tls_exit",
];

/// The packet tap's programs loaded in the kernel (see [`loaded_programs`]).
pub fn loaded_packet_programs() -> Vec<String> {
    let mut loaded = loaded_programs();
    loaded.retain(|p| PACKET_PROGRAMS.contains(&p.as_str()));
    loaded
}

/// The sensor's programs loaded in the kernel, by name (`bpftool prog show`).
/// A program that is not loaded cannot be attached anywhere, so an empty list
/// after the sensor exits proves it left nothing behind. The check is
/// machine-wide: live tests run one at a time (`--test-threads=1`).
pub fn loaded_programs() -> Vec<String> {
    bpftool_show("prog")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|name| PACKET_PROGRAMS.contains(name) || TLS_PROGRAMS.contains(name))
        .map(str::to_string)
        .collect()
}

/// The gateway's metrics page, from the sensor's `:9251`.
pub fn metrics(lab: &Lab) -> String {
    let mut cmd = lab.command(&lab.gateway_ns(), "curl");
    let out = lab::run_quiet(cmd.args(["-s", "http://127.0.0.1:9251/metrics"])).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the metric line starting with `series`.
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
}

/// The kernel's raw tracepoint links to `tracepoint` (`bpftool link show`).
pub fn raw_tracepoint_links(tracepoint: &str) -> usize {
    let links = bpftool_show("link");
    links.iter().filter(|l| l["tp_name"] == tracepoint).count()
}

/// `bpftool -j OBJECT show`: every program or link of the machine.
fn bpftool_show(object: &str) -> Vec<Value> {
    let out = Command::new("bpftool")
        .args(["-j", object, "show"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sensor's programs still loaded once the sensor has exited, after
/// the kernel had up to 5 s to free them: raw tracepoint links (the TLS
/// tap's) put their program only after an RCU grace period, so a program
/// can outlive the process that closed it by some milliseconds.
pub fn programs_left_after_exit() -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let loaded = loaded_programs();
        if loaded.is_empty() || std::time::Instant::now() > deadline {
            return loaded;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `setpriv` to the unprivileged user `nobody` holding exactly `caps`
/// (e.g. `+bpf,+perfmon`) as ambient capabilities, as the systemd unit runs
/// the sensor.
pub fn as_nobody(caps: &str) -> Vec<String> {
    let set = format!("-all,{caps}");
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]
    .map(String::from)
    .into_iter()
    .chain([
        format!("--inh-caps={set}"),
        format!("--ambient-caps={set}"),
        format!("--bounding-set={set}"),
    ])
    .chain(["--".to_string()])
    .collect()
}

/// Segments matching every `(key, value)` pair, where a value ending in `*`
/// matches as a prefix.
pub fn matching<'a>(segments: &'a [Value], wanted: &[(&str, &str)]) -> Vec<&'a Value> {
    segments
        .iter()
        .filter(|s| {
            wanted.iter().all(|(k, v)| {
                let got = s[*k].as_str().unwrap_or_default();
                match v.strip_suffix('*') {
                    Some(prefix) => got.starts_with(prefix),
                    None => got == *v,
                }
            })
        })
        .collect()
}

/// The shared captures (`../shared/pcaps` beside the project), or `None`
/// with a message when they are absent.
pub fn pcaps() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

/// tcpdump on every interface of the gateway namespace (the proxy and
/// upstream ports), writing `path`; returns once it is capturing.
pub fn tcpdump(lab: &Lab, path: &str) -> Child {
    tcpdump_filter(lab, path, "tcp port 8000 or tcp port 8080")
}

/// tcpdump on every interface of the gateway namespace with `filter`
/// (pcap-filter(7)), writing `path`; returns once it is capturing.
pub fn tcpdump_filter(lab: &Lab, path: &str, filter: &str) -> Child {
    let mut child = lab
        .command(&lab.gateway_ns(), "tcpdump")
        .args(["-i", "any", "-U", "-B", "65536", "-w", path, filter])
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    child
}

/// Stops a tcpdump started by [`tcpdump`], flushing its file.
pub fn stop_tcpdump(mut child: Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

/// `siem-sensor replay PCAP --json ARGS`: its stdout's JSON lines that have
/// `key` (`method`: transactions, `detector`: alerts).
pub fn replay_json(pcap: &str, args: &[&str], key: &str) -> Vec<Value> {
    let out = Command::new(SENSOR)
        .args(["replay", pcap, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get(key).is_some())
        .collect()
}

/// Asserts `systemd-analyze verify` finds nothing to say about `unit`.
pub fn assert_unit_verifies(unit: &Path) {
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}

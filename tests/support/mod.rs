//! Harness for live tests: runs `siem-sensor` inside a lab namespace and
//! collects what it prints. Live tests need root (namespaces, CAP_BPF,
//! CAP_NET_ADMIN); CI runs as root.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use serde_json::Value;
use xtask::lab::Lab;

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

/// A sensor process running in the lab's gateway namespace.
pub struct Sensor {
    child: Child,
    stdout: thread::JoinHandle<Vec<String>>,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

/// What a stopped sensor printed.
pub struct Run {
    /// `event: segment` objects, in order.
    pub segments: Vec<Value>,
    /// The final `event: capture_summary` object.
    pub summary: Value,
    /// Everything it logged to stderr.
    pub log: String,
}

impl Sensor {
    /// Starts `siem-sensor run ARGS` in the gateway namespace and waits until
    /// it logs that capture started.
    ///
    /// # Panics
    /// If it exits or stays silent for 30 s, with its log.
    pub fn start(lab: &Lab, args: &[&str]) -> Self {
        let mut child = lab
            .command(&lab.gateway_ns(), SENSOR)
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning siem-sensor");
        let stdout = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect()
        });
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sensor = Self {
            child,
            stdout,
            stderr,
            log: Vec::new(),
        };
        loop {
            match sensor.stderr.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let started = line.contains("capture started");
                    sensor.log.push(line);
                    if started {
                        return sensor;
                    }
                }
                Err(_) => {
                    let status = sensor.child.wait().ok();
                    panic!(
                        "sensor did not start ({status:?}):\n{}",
                        sensor.log.join("\n")
                    );
                }
            }
        }
    }

    /// Sends SIGTERM, waits for exit (which must be clean) and parses stdout.
    pub fn stop(mut self) -> Run {
        thread::sleep(Duration::from_millis(300)); // let the last segments reach the ring
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        let lines = self.stdout.join().unwrap();
        self.log.extend(self.stderr.try_iter());
        let log = self.log.join("\n");
        assert!(status.success(), "sensor exited with {status}:\n{log}");
        let objects: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        let summary = objects
            .iter()
            .find(|o| o["event"] == "capture_summary")
            .cloned()
            .unwrap_or_else(|| panic!("no capture summary:\n{log}"));
        let segments = objects
            .into_iter()
            .filter(|o| o["event"] == "segment")
            .collect();
        Run {
            segments,
            summary,
            log,
        }
    }
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

/// `curl` from the client namespace; returns (HTTP status, body).
pub fn curl(lab: &Lab, url: &str) -> (u16, Vec<u8>) {
    let out = lab
        .command(&lab.client_ns(), "curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = out.stdout.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&out.stdout[split + 1..])
        .parse()
        .unwrap();
    (status, out.stdout[..split].to_vec())
}

/// The sensor's programs loaded in the kernel, by name (`bpftool prog show`).
/// A program that is not loaded cannot be attached anywhere, so an empty list
/// after the sensor exits proves it left nothing behind. The check is
/// machine-wide: live tests run one at a time (`--test-threads=1`).
pub fn loaded_programs() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let programs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    programs
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|name| ["tc_ingress", "tc_egress", "xdp_ingress"].contains(name))
        .map(str::to_string)
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

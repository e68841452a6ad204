//! `siem-sensor fleet` as a process in the NATS server's namespace
//! (`Lab::nats_ns`), its alerts in a JSON lines file; stopped cleanly
//! (SIGTERM: its `fleet_summary` line) or killed (`kill -9`).

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::Lab;

/// A running fleet analyser; killed when dropped.
pub struct Analyser {
    child: Option<Child>,
    stdout: Option<thread::JoinHandle<Vec<String>>>,
    log: Arc<Mutex<Vec<String>>>,
    alerts: PathBuf,
}

impl Analyser {
    /// Starts `BINARY fleet --alerts ALERTS ARGS` in the NATS namespace and
    /// waits until it logs that it started.
    ///
    /// # Errors
    /// It exits or does not start within 30 s; the error holds its log.
    pub fn start(lab: &Lab, binary: &Path, alerts: &Path, args: &[&str]) -> Result<Self> {
        let mut child = lab
            .command(&lab.nats_ns(), &binary.display().to_string())
            .arg("fleet")
            .arg("--alerts")
            .arg(alerts)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let out = child.stdout.take().context("fleet stdout")?;
        let stdout =
            thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).collect());
        let err = child.stderr.take().context("fleet stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut log) = sink.lock() {
                    log.push(line);
                }
            }
        });
        let mut analyser = Self {
            child: Some(child),
            stdout: Some(stdout),
            log,
            alerts: alerts.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !analyser.log().contains("fleet started") {
            let exited = analyser
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                analyser.kill();
                bail!("the fleet analyser did not start:\n{}", analyser.log());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(analyser)
    }

    /// Its process id (`ip netns exec` execs it), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// The alerts it wrote so far, in order.
    pub fn alerts(&self) -> Vec<Value> {
        read_alerts(&self.alerts)
    }

    /// Polls [`Analyser::alerts`] every 200 ms until `ok` holds or
    /// `timeout` passes; returns the last answer.
    pub fn wait_for(&self, timeout: Duration, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts();
            if ok(&alerts) || Instant::now() > deadline {
                return alerts;
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `kill -9`: no summary, no flush beyond what it wrote.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGTERM and returns its `fleet_summary`.
    ///
    /// # Errors
    /// A non-zero exit or no summary; the error holds its log.
    pub fn stop(mut self) -> Result<Value> {
        let mut child = self.child.take().context("already killed")?;
        crate::run(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
        let status = child.wait()?;
        let lines = self
            .stdout
            .take()
            .context("no stdout")?
            .join()
            .map_err(|_| anyhow::anyhow!("stdout reader panicked"))?;
        if !status.success() {
            bail!("the fleet analyser exited with {status}:\n{}", self.log());
        }
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "fleet_summary")
            .with_context(|| format!("no fleet_summary:\n{}", self.log()))
    }
}

impl Drop for Analyser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The alerts of a JSON lines file (none when it does not exist); a
/// line cut short by a kill is left out.
pub fn read_alerts(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

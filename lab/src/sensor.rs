//! Running `siem-sensor run` inside the lab's gateway namespace and
//! collecting what it prints; shared by `cargo xtask demo` and the live tests.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{Lab, Node};

/// A sensor process running in the gateway namespace.
pub struct SensorProcess {
    child: Child,
    stdout: thread::JoinHandle<Vec<String>>,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

/// What a stopped sensor printed.
pub struct Run {
    /// `event: segment` objects, in order.
    pub segments: Vec<Value>,
    /// Transactions (`--transactions -`), in order.
    pub transactions: Vec<Value>,
    /// Alerts (`--alerts -`), in order.
    pub alerts: Vec<Value>,
    /// Block and unblock records (`--alerts -` with `--block`), in order.
    pub blocks: Vec<Value>,
    /// The final `event: capture_summary` object.
    pub summary: Value,
    /// Everything it logged to stderr.
    pub log: String,
}

/// Called with each stdout line as it arrives.
pub type LineHook = Box<dyn FnMut(&str) + Send>;

impl SensorProcess {
    /// Starts `BINARY run ARGS` in the gateway namespace, with its
    /// fingerprint key in the lab's workdir, and waits until it logs that
    /// capture started.
    ///
    /// # Errors
    /// If it exits or stays silent for 30 s; the error holds its log.
    pub fn start(
        lab: &Lab,
        binary: &Path,
        args: &[&str],
        on_line: Option<LineHook>,
    ) -> Result<Self> {
        Self::start_as(lab, &[], binary, args, on_line)
    }

    /// As [`SensorProcess::start`], run through `prefix` (e.g. a `setpriv`
    /// command line that drops to an unprivileged user).
    ///
    /// # Errors
    /// As [`SensorProcess::start`].
    pub fn start_as(
        lab: &Lab,
        prefix: &[&str],
        binary: &Path,
        args: &[&str],
        on_line: Option<LineHook>,
    ) -> Result<Self> {
        Self::launch(lab, Node::A, prefix, binary, args, on_line)
    }

    /// As [`SensorProcess::start`], on gateway `node` of a fleet lab
    /// (`lab::add_node_b`); every node's sensor shares the lab's
    /// fingerprint key, as a fleet's sensors must.
    ///
    /// # Errors
    /// As [`SensorProcess::start`].
    pub fn start_on(
        lab: &Lab,
        node: Node,
        binary: &Path,
        args: &[&str],
        on_line: Option<LineHook>,
    ) -> Result<Self> {
        Self::launch(lab, node, &[], binary, args, on_line)
    }

    fn launch(
        lab: &Lab,
        node: Node,
        prefix: &[&str],
        binary: &Path,
        args: &[&str],
        mut on_line: Option<LineHook>,
    ) -> Result<Self> {
        let ns = node.ns(lab);
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = lab.command(&ns, first);
                c.args(rest).arg(binary);
                c
            }
            None => lab.command(&ns, &binary.display().to_string()),
        };
        let mut child = cmd
            .arg("run")
            .arg("--fingerprint-key")
            .arg(lab.workdir().join("fingerprint.key"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let out = child.stdout.take().context("sensor stdout")?;
        let stdout = thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(hook) = &mut on_line {
                    hook(&line);
                }
                lines.push(line);
            }
            lines
        });
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().context("sensor stderr")?;
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
            let Ok(line) = sensor.stderr.recv_timeout(Duration::from_secs(30)) else {
                let _ = sensor.child.kill();
                let status = sensor.child.wait()?;
                bail!(
                    "sensor did not start ({status}):\n{}",
                    sensor.log.join("\n")
                );
            };
            let started = line.contains("capture started");
            sensor.log.push(line);
            if started {
                return Ok(sensor);
            }
        }
    }

    /// The process id (for signals such as SIGSTOP in tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload the config, reopen output files) and gives the
    /// sensor half a second to apply it.
    ///
    /// # Errors
    /// `kill` failed.
    pub fn reload(&self) -> Result<()> {
        crate::run(Command::new("kill").args(["-HUP", &self.child.id().to_string()]))?;
        thread::sleep(Duration::from_millis(500));
        Ok(())
    }

    /// Sends SIGTERM, waits for the exit (which must be clean) and parses stdout.
    ///
    /// # Errors
    /// A non-zero exit, a stdout line that is not JSON, or no summary.
    pub fn stop(mut self) -> Result<Run> {
        thread::sleep(Duration::from_millis(300)); // let the last segments reach the ring
        crate::run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?;
        let status = self.child.wait()?;
        let lines = self
            .stdout
            .join()
            .map_err(|_| anyhow::anyhow!("stdout reader panicked"))?;
        self.log.extend(self.stderr.try_iter());
        let log = self.log.join("\n");
        if !status.success() {
            bail!("sensor exited with {status}:\n{log}");
        }
        let mut segments = Vec::new();
        let mut transactions = Vec::new();
        let mut alerts = Vec::new();
        let mut blocks = Vec::new();
        let mut summary = None;
        for line in &lines {
            let object: Value =
                serde_json::from_str(line).with_context(|| format!("bad JSON line {line:?}"))?;
            match object["event"].as_str() {
                Some("segment") => segments.push(object),
                Some("capture_summary") => summary = Some(object),
                Some("block" | "unblock") => blocks.push(object),
                None if object.get("method").is_some() => transactions.push(object),
                None if object.get("detector").is_some() => alerts.push(object),
                _ => bail!("unexpected line {line:?}"),
            }
        }
        let summary = summary.with_context(|| format!("no capture summary:\n{log}"))?;
        Ok(Run {
            segments,
            transactions,
            alerts,
            blocks,
            summary,
            log,
        })
    }

    /// Kills the sensor with SIGKILL (no cleanup of any kind), reaps it
    /// and returns what it logged.
    ///
    /// # Errors
    /// `kill` failed.
    pub fn kill(mut self) -> Result<String> {
        crate::run(Command::new("kill").args(["-KILL", &self.child.id().to_string()]))?;
        self.child.wait()?;
        self.log.extend(self.stderr.try_iter());
        Ok(self.log.join("\n"))
    }
}

//! A real Prometheus (Debian's `prometheus`) in the lab's gateway
//! namespace, scraping what its config names, queried over its HTTP API.

use std::{
    fs,
    path::Path,
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::Lab;

/// Where Prometheus listens (127.0.0.1 of the gateway namespace).
pub const LISTEN: &str = "127.0.0.1:9090";

/// A running Prometheus; killed when dropped.
pub struct Prometheus<'l> {
    lab: &'l Lab,
    child: Child,
}

impl<'l> Prometheus<'l> {
    /// Writes `config` (prometheus.yml text) under `dir` and starts
    /// Prometheus with its data there.
    ///
    /// # Errors
    /// The config cannot be written or Prometheus cannot start.
    pub fn start(lab: &'l Lab, dir: &Path, config: &str) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let file = dir.join("prometheus.yml");
        fs::write(&file, config)?;
        let child = lab
            .command(&lab.gateway_ns(), "prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .args([
                &format!("--web.listen-address={LISTEN}"),
                "--log.level=warn",
            ])
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus")?;
        Ok(Self { lab, child })
    }

    /// The result vector of instant query `q` (empty when Prometheus is
    /// not answering yet).
    pub fn query(&self, q: &str) -> Vec<Value> {
        let out = self
            .lab
            .command(&self.lab.gateway_ns(), "curl")
            .args(["-s", "--max-time", "5", "-G"])
            .arg(format!("http://{LISTEN}/api/v1/query"))
            .args(["--data-urlencode", &format!("query={q}")])
            .output();
        let body: Option<Value> = out
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok());
        body.and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The value of instant query `q` with one result, if there is one.
    pub fn value(&self, q: &str) -> Option<f64> {
        self.query(q).first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `ok` every half second for up to 60 s.
    ///
    /// # Panics
    /// When `ok` never holds: the message names `what`.
    pub fn wait(&self, what: &str, ok: &dyn Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

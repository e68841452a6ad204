//! A real Alertmanager (Debian's `prometheus-alertmanager`, 0.25) in the
//! lab's gateway namespace on [`LISTEN`], with its config and storage in
//! its own directory, no cluster, a route to a receiver that notifies
//! nobody; queried over its API (`GET /api/v2/alerts`, `GET /metrics`).
//! It keeps alerts in memory only, so [`Alertmanager::stop`] then
//! [`Alertmanager::resume`] starts it empty.
//!
//! [`Alertmanager::start_tls`] serves HTTPS with a certificate for
//! 127.0.0.1 signed by a CA made for the run ([`Alertmanager::ca`]) and
//! asks for basic auth (`--web.config.file`, the exporter-toolkit format).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use rcgen::{CertificateParams, KeyPair};
use serde_json::Value;

use crate::{Lab, rsyslog::write_ca};

/// Where Alertmanager listens (127.0.0.1 of the gateway namespace).
pub const LISTEN: &str = "127.0.0.1:9093";

const CONFIG: &str = "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n";

/// A running (or stopped) Alertmanager; killed when dropped.
pub struct Alertmanager {
    dir: PathBuf,
    ns: String,
    /// The basic-auth user and password, when served over TLS.
    login: Option<(String, String)>,
    child: Option<Child>,
}

impl Alertmanager {
    /// Writes its config under `dir` and starts it, serving plain HTTP;
    /// returns once it is ready.
    ///
    /// # Errors
    /// The config cannot be written; it does not start or is not ready
    /// within 15 s.
    pub fn start(lab: &Lab, dir: &Path) -> Result<Self> {
        Self::launch(lab, dir, None)
    }

    /// As [`Alertmanager::start`], serving HTTPS (a certificate for
    /// 127.0.0.1 from a new CA) to clients that log in as `user` with
    /// `password` (basic auth, bcrypt-hashed in its web config).
    ///
    /// # Errors
    /// As [`Alertmanager::start`].
    pub fn start_tls(lab: &Lab, dir: &Path, user: &str, password: &str) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let ca = write_ca(&dir.join("ca.pem"))?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &ca)?;
        fs::write(dir.join("cert.pem"), cert.pem())?;
        fs::write(dir.join("key.pem"), key.serialize_pem())?;
        // The lowest cost bcrypt takes: Alertmanager checks it on every request.
        let hash = bcrypt::hash(password, 4)?;
        let web = format!(
            "tls_server_config:\n  cert_file: {d}/cert.pem\n  key_file: {d}/key.pem\n\
             basic_auth_users:\n  {user}: {hash}\n",
            d = dir.display()
        );
        fs::write(dir.join("web.yml"), web)?;
        Self::launch(lab, dir, Some((user.to_owned(), password.to_owned())))
    }

    fn launch(lab: &Lab, dir: &Path, login: Option<(String, String)>) -> Result<Self> {
        fs::create_dir_all(dir)?;
        fs::write(dir.join("alertmanager.yml"), CONFIG)?;
        let mut am = Self {
            dir: dir.to_path_buf(),
            ns: lab.gateway_ns(),
            login,
            child: None,
        };
        am.resume()?;
        Ok(am)
    }

    /// The URL the sensor is given: `http://` or `https://` [`LISTEN`].
    pub fn url(&self) -> String {
        let scheme = if self.login.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{LISTEN}")
    }

    /// The PEM file of the CA that signed its certificate (TLS only).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Stops it (SIGTERM) and waits; the alerts it held are gone.
    ///
    /// # Errors
    /// It cannot be signalled.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            crate::run(Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it again with the same config and storage, empty of alerts;
    /// returns once it is ready.
    ///
    /// # Errors
    /// It does not start or is not ready within 15 s.
    pub fn resume(&mut self) -> Result<()> {
        let d = &self.dir;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "prometheus-alertmanager"])
            .arg(format!(
                "--config.file={}",
                d.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address={LISTEN}"))
            .args(["--cluster.listen-address=", "--log.level=warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.login.is_some() {
            cmd.arg(format!("--web.config.file={}", d.join("web.yml").display()));
        }
        self.child = Some(cmd.spawn().context("starting prometheus-alertmanager")?);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.get("/-/ready").is_none() {
            if Instant::now() > deadline {
                bail!("alertmanager is not ready after 15 s");
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The body of `GET path` if it answered 2xx.
    fn get(&self, path: &str) -> Option<String> {
        let mut curl = Command::new("ip");
        curl.args(["netns", "exec", &self.ns, "curl", "-sf", "--max-time", "5"]);
        if let Some((user, password)) = &self.login {
            curl.arg("--cacert")
                .arg(self.ca())
                .args(["-u", &format!("{user}:{password}")]);
        }
        let out = curl.arg(format!("{}{path}", self.url())).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Its active alerts (`GET /api/v2/alerts`: resolved ones are left
    /// out); empty when it does not answer.
    pub fn alerts(&self) -> Vec<Value> {
        self.get("/api/v2/alerts")
            .and_then(|body| serde_json::from_str::<Vec<Value>>(&body).ok())
            .unwrap_or_default()
    }

    /// Polls [`Alertmanager::alerts`] every 200 ms until `ok` holds or
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

    /// Alerts it has received since it started with `status` (`firing` or
    /// `resolved`), from its own `alertmanager_alerts_received_total`.
    pub fn received(&self, status: &str) -> u64 {
        let metrics = self.get("/metrics").unwrap_or_default();
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("alertmanager_alerts_received_total{")
                    && l.contains(&format!("status=\"{status}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

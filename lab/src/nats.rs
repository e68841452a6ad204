//! A real NATS server with JetStream (Debian's `nats-server`, 2.9) in a
//! namespace of its own, `{p}-nats`, a host on the gateways' client LAN at
//! [`NATS_V4`]: clients on [`NATS_PORT`], the monitoring endpoint
//! (`/healthz`, `/jsz`) on [`MONITOR_PORT`], its JetStream store in its
//! own folder, so [`Nats::stop`] then [`Nats::start_again`] brings back
//! every stream, consumer and key-value bucket as they were (NATS docs:
//! "Configuring JetStream", "Monitoring").

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{GATEWAY_CLIENT_IF, Lab, network::ip};

/// The server's address on the client LAN.
pub const NATS_V4: &str = "10.77.0.5";
/// Its client port (NATS's default).
pub const NATS_PORT: u16 = 4222;
/// Its monitoring port (NATS's default).
pub const MONITOR_PORT: u16 = 8222;

/// A running (or stopped) nats-server; killed when dropped.
pub struct Nats {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nats {
    /// Makes the server's host (a namespace on the client LAN), writes its
    /// config under the lab's workdir and starts it; returns once
    /// JetStream is ready.
    ///
    /// # Errors
    /// A failing `ip` command; it does not start or is not ready within 15 s.
    pub fn start(lab: &Lab) -> Result<Self> {
        let ns = lab.nats_ns();
        let gateway = lab.gateway_ns();
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", "nats-lan",
            "netns", &gateway,
        ])?;
        ip(&[
            "-n",
            &gateway,
            "link",
            "set",
            "nats-lan",
            "master",
            GATEWAY_CLIENT_IF,
            "up",
        ])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{NATS_V4}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        let dir = lab.workdir().join("nats");
        fs::create_dir_all(dir.join("store"))?;
        let d = dir.display();
        let config = format!(
            "server_name: lab-nats\nlisten: \"{NATS_V4}:{NATS_PORT}\"\n\
             http: \"{NATS_V4}:{MONITOR_PORT}\"\nlog_file: \"{d}/nats.log\"\n\
             jetstream {{ store_dir: \"{d}/store\" }}\n"
        );
        fs::write(dir.join("nats.conf"), config)?;
        let mut nats = Self {
            ns,
            dir,
            child: None,
        };
        nats.start_again()?;
        Ok(nats)
    }

    /// The URL sensors and analysers are given: `nats://10.77.0.5:4222`.
    pub fn url(&self) -> String {
        format!("nats://{NATS_V4}:{NATS_PORT}")
    }

    /// Stops it (SIGTERM) and waits: clients lose their connections;
    /// everything stored stays in its folder.
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

    /// Starts it with its config and store; returns once JetStream is ready.
    ///
    /// # Errors
    /// It does not start or is not ready within 15 s.
    pub fn start_again(&mut self) -> Result<()> {
        let conf = self.dir.join("nats.conf");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "nats-server", "-c"])
            .arg(conf);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.get("/healthz?js-enabled-only=true").is_none() {
            if Instant::now() > deadline {
                bail!("nats-server is not ready after 15 s:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    ///
    /// # Errors
    /// It is not running or cannot be signalled.
    pub fn freeze(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen server go on (SIGCONT): it reads what clients sent
    /// meanwhile.
    ///
    /// # Errors
    /// It is not running or cannot be signalled.
    pub fn thaw(&self) -> Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let child = self.child.as_ref().context("nats-server is stopped")?;
        crate::run(Command::new("kill").args([signal, &child.id().to_string()]))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default()
    }

    /// The body of `GET path` on the monitoring endpoint, if it answered 2xx.
    fn get(&self, path: &str) -> Option<String> {
        let url = format!("http://{NATS_V4}:{MONITOR_PORT}{path}");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-sf",
                "--max-time",
                "5",
                &url,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The state of stream `name` (`/jsz?streams=true`: `messages`,
    /// `bytes`, `first_seq`, `last_seq`, ...), if it exists.
    pub fn stream_state(&self, name: &str) -> Option<Value> {
        let jsz: Value = serde_json::from_str(&self.get("/jsz?streams=true")?).ok()?;
        let accounts = jsz["account_details"].as_array()?;
        accounts
            .iter()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .find(|s| s["name"] == name)
            .map(|s| s["state"].clone())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.thaw();
        let _ = self.stop();
    }
}

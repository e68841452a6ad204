//! A real rsyslog (Debian's `rsyslog`) in the lab's gateway namespace,
//! receiving on a unix socket, UDP and TCP (octet-counted framing is
//! auto-detected by imtcp) and writing each input's records, exactly as
//! received (`%rawmsg%`), one per line, to its own file.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::Lab;

/// The UDP port rsyslog listens on (127.0.0.1 of the gateway namespace).
pub const UDP_PORT: u16 = 10514;
/// The TCP port.
pub const TCP_PORT: u16 = 10601;

/// A running (or stopped) rsyslogd.
pub struct Rsyslog {
    dir: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Rsyslog {
    /// Writes the config under `dir` and starts rsyslogd in `lab`'s gateway
    /// namespace, ready to receive.
    ///
    /// # Errors
    /// rsyslogd cannot start or does not listen within 10 s.
    pub fn start(lab: &Lab, dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="unix") {{ action(type="omfile" file="{d}/unix.log" template="raw") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
input(type="imuxsock" Socket="{d}/log.sock" ruleset="unix")
input(type="imudp" address="127.0.0.1" port="{UDP_PORT}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{TCP_PORT}" ruleset="tcp")
"#
        );
        fs::write(dir.join("rsyslog.conf"), conf)?;
        let mut r = Self {
            dir: dir.to_path_buf(),
            ns: lab.gateway_ns(),
            child: None,
        };
        r.resume()?;
        Ok(r)
    }

    /// The unix socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("log.sock")
    }

    /// Stops rsyslogd (SIGTERM) and waits for it.
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

    /// Starts rsyslogd again with the same config and files.
    ///
    /// # Errors
    /// As [`Rsyslog::start`].
    pub fn resume(&mut self) -> Result<()> {
        let d = &self.dir;
        let _ = fs::remove_file(d.join("rsyslogd.pid"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "rsyslogd", "-n", "-f"])
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .spawn()
            .context("starting rsyslogd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let listening = || {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns, "ss", "-ltn"])
                .output();
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(":{TCP_PORT}")))
                && self.socket().exists()
        };
        while !listening() {
            if Instant::now() > deadline {
                bail!("rsyslogd is not listening after 10 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The records received on `input` (`unix`, `udp` or `tcp`) so far.
    pub fn records(&self, input: &str) -> Vec<String> {
        fs::read_to_string(self.dir.join(format!("{input}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits up to `timeout` until `input` holds at least `n` records.
    pub fn wait_for(&self, input: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.records(input);
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

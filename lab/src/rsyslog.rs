//! A real rsyslog (Debian's `rsyslog`, with `rsyslog-openssl` for TLS) in
//! the lab's gateway namespace, receiving on a unix socket, UDP, TCP and
//! TLS (RFC 5425; octet-counted framing is auto-detected by imtcp) and
//! writing each input's records, exactly as received (`%rawmsg%`), one per
//! line, to its own file (`unix.log`, `udp.log`, `tcp.log`, `tls.log`).
//!
//! The TLS input presents a certificate for the IP address 127.0.0.1
//! signed by a CA made for the run ([`Rsyslog::ca`]); it asks for no
//! client certificate (`StreamDriver.AuthMode="anon"`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::Lab;

/// The UDP port rsyslog listens on (127.0.0.1 of the gateway namespace).
pub const UDP_PORT: u16 = 10514;
/// The TCP port.
pub const TCP_PORT: u16 = 10601;
/// The TLS port.
pub const TLS_PORT: u16 = 10651;

/// A running (or stopped) rsyslogd.
pub struct Rsyslog {
    dir: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Rsyslog {
    /// Writes the config, a CA and the TLS input's certificate under `dir`
    /// and starts rsyslogd in `lab`'s gateway namespace, ready to receive.
    ///
    /// # Errors
    /// The files cannot be written; rsyslogd cannot start or does not
    /// listen within 10 s.
    pub fn start(lab: &Lab, dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let ca = write_ca(&dir.join("ca.pem"))?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &ca)?;
        fs::write(dir.join("cert.pem"), cert.pem())?;
        fs::write(dir.join("key.pem"), key.serialize_pem())?;
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}"
       DefaultNetstreamDriverCAFile="{d}/ca.pem"
       DefaultNetstreamDriverCertFile="{d}/cert.pem"
       DefaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="unix") {{ action(type="omfile" file="{d}/unix.log" template="raw") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
input(type="imuxsock" Socket="{d}/log.sock" ruleset="unix")
input(type="imudp" address="127.0.0.1" port="{UDP_PORT}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{TCP_PORT}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{TLS_PORT}" ruleset="tls"
      StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
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

    /// The PEM file of the CA that signed the TLS input's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
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
            out.is_ok_and(|o| {
                let ports = String::from_utf8_lossy(&o.stdout);
                [TCP_PORT, TLS_PORT]
                    .iter()
                    .all(|p| ports.contains(&format!(":{p} ")))
            }) && self.socket().exists()
        };
        while !listening() {
            if Instant::now() > deadline {
                bail!("rsyslogd is not listening after 10 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The records received on `input` (`unix`, `udp`, `tcp` or `tls`) so far.
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

/// Writes a new CA's certificate (PEM) to `path` and returns the CA, to
/// sign with. A CA written apart from [`Rsyslog::start`]'s signed nothing
/// rsyslog presents: a client trusting only it must refuse rsyslog.
///
/// # Errors
/// The file cannot be written.
pub fn write_ca(path: &Path) -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "siem-sensor lab CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    fs::write(path, ca.pem())?;
    Ok(ca)
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

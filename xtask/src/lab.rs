//! The gateway lab: three network namespaces joined by veth pairs, all
//! addresses private to them.
//!
//! ```text
//!  {p}-client                 {p}-gateway                      {p}-upstream
//!  client0 ---------------- gw-client   gw-upstream ---------- upstream0
//!  10.77.0.2  fd77::2       10.77.0.1   10.77.1.1              10.77.1.2  fd77:1::2
//!                           fd77::1     fd77:1::1
//!                           nginx :8000 (Kong's proxy port)    nginx :8080
//!                           -> upstream 10.77.1.2:8080
//! ```
//!
//! The gateway nginx behaves like Kong's proxy on the wire: HTTP/1.1 with
//! keep-alive to the upstream, `X-Forwarded-For`, `X-Real-IP` and
//! `X-Kong-Request-Id` on the upstream request. The sensor attaches to
//! `gw-client` (client leg) and `gw-upstream` (upstream leg).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::run_quiet;

/// Gateway address on the client side.
pub const GATEWAY_V4: &str = "10.77.0.1";
/// See [`GATEWAY_V4`].
pub const GATEWAY_V6: &str = "fd77::1";
/// The client's address.
pub const CLIENT_V4: &str = "10.77.0.2";
/// More client addresses on the same interface, `10.77.0.10` to
/// `10.77.0.10 + EXTRA_CLIENTS - 1`, for scenarios that need several
/// sources (`curl --interface`).
pub const EXTRA_CLIENTS: u8 = 8;
/// See [`CLIENT_V4`].
pub const CLIENT_V6: &str = "fd77::2";
/// Gateway address on the upstream side.
pub const GATEWAY_UPSTREAM_V4: &str = "10.77.1.1";
/// The upstream service's address.
pub const UPSTREAM_V4: &str = "10.77.1.2";
/// Kong's default proxy port.
pub const PROXY_PORT: u16 = 8000;
/// The upstream service's port.
pub const UPSTREAM_PORT: u16 = 8080;
/// Gateway interface towards the client.
pub const GATEWAY_CLIENT_IF: &str = "gw-client";
/// Gateway interface towards the upstream.
pub const GATEWAY_UPSTREAM_IF: &str = "gw-upstream";

/// A running lab. Dropping it tears it down.
pub struct Lab {
    prefix: String,
    workdir: PathBuf,
}

impl Lab {
    /// Brings up a lab whose namespaces are named `{prefix}-client`,
    /// `{prefix}-gateway` and `{prefix}-upstream`, first removing any
    /// leftover lab with the same prefix. Needs root.
    ///
    /// # Errors
    /// A failing `ip` command or an nginx that does not answer within 10 s.
    pub fn up(prefix: &str) -> Result<Self> {
        let lab = Self::named(prefix);
        lab.teardown();
        lab.build_network().context("building the lab network")?;
        lab.start_servers().context("starting nginx in the lab")?;
        Ok(lab)
    }

    /// A handle on the lab called `prefix`, whether it is up or not.
    pub fn named(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            workdir: std::env::temp_dir().join(format!("siem-sensor-lab-{prefix}")),
        }
    }

    /// Leaves the lab running after this handle is gone (`cargo xtask lab up`).
    pub fn leave_running(self) {
        std::mem::forget(self);
    }

    /// `{prefix}-client`.
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// `{prefix}-gateway`.
    pub fn gateway_ns(&self) -> String {
        format!("{}-gateway", self.prefix)
    }

    /// `{prefix}-upstream`.
    pub fn upstream_ns(&self) -> String {
        format!("{}-upstream", self.prefix)
    }

    /// The lab's scratch folder (nginx configs, logs, pid files).
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// The `i`-th extra client address (see [`EXTRA_CLIENTS`]).
    pub fn extra_client(i: u8) -> String {
        format!("10.77.0.{}", 10 + u16::from(i))
    }

    /// Proxy URL on the gateway for `path`, over IPv4 or IPv6.
    pub fn proxy_url(&self, ipv6: bool, path: &str) -> String {
        if ipv6 {
            format!("http://[{GATEWAY_V6}]:{PROXY_PORT}{path}")
        } else {
            format!("http://{GATEWAY_V4}:{PROXY_PORT}{path}")
        }
    }

    /// `n` requests for `path` on one keep-alive connection from the client
    /// address `source`, with curl's `extra` arguments.
    ///
    /// # Errors
    /// curl failed (no answer within 10 s, connection refused, ...).
    pub fn curl_from(&self, source: &str, extra: &[&str], path: &str, n: usize) -> Result<()> {
        let url = self.proxy_url(false, path);
        let mut cmd = self.command(&self.client_ns(), "curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--interface",
            source,
        ]);
        cmd.args(extra);
        for _ in 0..n {
            cmd.arg(&url);
        }
        run_quiet(&mut cmd).map(drop)
    }

    /// `curl` from the client namespace; returns the HTTP status and body.
    ///
    /// # Errors
    /// curl failed (no answer within 10 s, connection refused, ...).
    pub fn curl(&self, url: &str) -> Result<(u16, Vec<u8>)> {
        let out = run_quiet(self.command(&self.client_ns(), "curl").args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ]))?;
        let split = out
            .stdout
            .iter()
            .rposition(|&b| b == b'\n')
            .context("curl printed no status")?;
        let status = String::from_utf8_lossy(&out.stdout[split + 1..]).parse()?;
        Ok((status, out.stdout[..split].to_vec()))
    }

    fn build_network(&self) -> Result<()> {
        let (client, gateway, upstream) = (self.client_ns(), self.gateway_ns(), self.upstream_ns());
        for ns in [&client, &gateway, &upstream] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        veth_pair(
            [&client, "client0", "10.77.0.2/24", "fd77::2/64"],
            [&gateway, GATEWAY_CLIENT_IF, "10.77.0.1/24", "fd77::1/64"],
        )?;
        for i in 0..EXTRA_CLIENTS {
            let addr = format!("{}/24", Self::extra_client(i));
            ip(&["-n", &client, "addr", "add", &addr, "dev", "client0"])?;
        }
        veth_pair(
            [&upstream, "upstream0", "10.77.1.2/24", "fd77:1::2/64"],
            [
                &gateway,
                GATEWAY_UPSTREAM_IF,
                "10.77.1.1/24",
                "fd77:1::1/64",
            ],
        )
    }

    fn start_servers(&self) -> Result<()> {
        let www = self.workdir.join("www");
        fs::create_dir_all(&www)?;
        fs::write(www.join("big"), "0123456789abcdef".repeat(4096))?; // 64 KiB: many segments, GSO
        for (name, ns, server) in [
            ("upstream", self.upstream_ns(), UPSTREAM_SERVER),
            ("gateway", self.gateway_ns(), GATEWAY_SERVER),
        ] {
            let dir = self.workdir.join(name);
            fs::create_dir_all(dir.join("tmp"))?;
            set_mode(&dir.join("tmp"), 0o1777)?;
            let conf = NGINX_MAIN
                .replace("@DIR@", &dir.display().to_string())
                .replace("@SERVER@", server)
                .replace("@WWW@", &www.display().to_string());
            fs::write(dir.join("nginx.conf"), conf)?;
            let dir = dir.display().to_string();
            run_quiet(self.command(&ns, "nginx").args([
                "-p",
                &dir,
                "-c",
                "nginx.conf",
                "-e",
                "error.log",
            ]))?;
        }
        let url = self.proxy_url(false, "/");
        let deadline = Instant::now() + Duration::from_secs(10);
        while run_quiet(self.command(&self.client_ns(), "curl").args([
            "-sf",
            "-o",
            "/dev/null",
            "--max-time",
            "1",
            &url,
        ]))
        .is_err()
        {
            if Instant::now() > deadline {
                bail!("nginx did not answer {url} within 10 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Kills every process in the lab's namespaces, deletes them and the
    /// workdir. Safe to call on a lab that is half up or already down.
    pub fn teardown(&self) {
        for ns in [self.client_ns(), self.gateway_ns(), self.upstream_ns()] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
        let _ = fs::remove_dir_all(&self.workdir);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Joins two namespaces with a veth pair; each end is
/// `[namespace, interface, IPv4/prefix, IPv6/prefix]`.
fn veth_pair(a: [&str; 4], b: [&str; 4]) -> Result<()> {
    ip(&[
        "link", "add", a[1], "netns", a[0], "type", "veth", "peer", "name", b[1], "netns", b[0],
    ])?;
    for [ns, ifname, v4, v6] in [a, b] {
        ip(&["-n", ns, "addr", "add", v4, "dev", ifname])?;
        ip(&["-n", ns, "addr", "add", v6, "dev", ifname, "nodad"])?;
        ip(&["-n", ns, "link", "set", ifname, "up"])?;
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    run_quiet(Command::new("ip").args(args)).map(drop)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

const NGINX_MAIN: &str = r#"
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path @DIR@/tmp/body;
  proxy_temp_path @DIR@/tmp/proxy;
  fastcgi_temp_path @DIR@/tmp/fastcgi;
  uwsgi_temp_path @DIR@/tmp/uwsgi;
  scgi_temp_path @DIR@/tmp/scgi;
  keepalive_requests 100000;
  default_type text/plain;
  @SERVER@
}
"#;

/// Kong-like proxy on :8000 in front of the upstream.
const GATEWAY_SERVER: &str = r#"
  upstream service { server 10.77.1.2:8080; keepalive 32; }
  server {
    listen 10.77.0.1:8000;
    listen [fd77::1]:8000;
    location / {
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Kong-Request-Id $request_id;
      add_header X-Kong-Request-Id $request_id always;
    }
  }
"#;

/// The plaintext upstream service on :8080.
const UPSTREAM_SERVER: &str = r#"
  server {
    listen 10.77.1.2:8080;
    listen [fd77:1::2]:8080;
    root @WWW@;
    location = / { return 200 "hello from upstream\n"; }
    location = /hello { return 200 "hello from upstream\n"; }
    location /big { }
    location /missing { return 404 "not found\n"; }
  }
"#;

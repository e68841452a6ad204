//! The gateway lab: network namespaces joined by veth pairs, all addresses
//! private to them.
//!
//! ```text
//!  {p}-client  10.77.0.2 fd77::2 --+
//!  {p}-h0      10.77.0.10 --------+-- gw-client (bridge)       gw-upstream ---- {p}-upstream
//!  ...                            |   10.77.0.1 fd77::1        10.77.1.1        10.77.1.2 fd77:1::2
//!  {p}-h12     10.77.0.22 --------+   {p}-gateway: nginx :8000  fd77:1::1        nginx :8080
//! ```
//!
//! Every client host is a namespace of its own, its veth enslaved to the
//! gateway's bridge, as hosts on a LAN in front of Kong. The gateway nginx
//! behaves like Kong's proxy on the wire (see [`GATEWAY_SERVER`]). The
//! sensor attaches to `gw-client` (client leg) and `gw-upstream`
//! (upstream leg).

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
/// More client hosts, each a namespace with one address, `10.77.0.10` to
/// `10.77.0.10 + EXTRA_CLIENTS - 1`, for scenarios that need several sources.
pub const EXTRA_CLIENTS: u8 = 13;
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

    /// `{prefix}-client`, the host of [`CLIENT_V4`] and [`CLIENT_V6`].
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// The namespace of the client host with address `addr`: [`Self::client_ns`]
    /// or `{prefix}-h{i}` for [`Self::extra_client`]`(i)`.
    ///
    /// # Errors
    /// `addr` is not a client address of the lab.
    pub fn client_ns_of(&self, addr: &str) -> Result<String> {
        if addr == CLIENT_V4 || addr == CLIENT_V6 {
            return Ok(self.client_ns());
        }
        (0..EXTRA_CLIENTS)
            .find(|&i| Self::extra_client(i) == addr)
            .map(|i| self.host_ns(i))
            .with_context(|| format!("{addr} is not a client address of the lab"))
    }

    fn host_ns(&self, i: u8) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// Every client host: (namespace, IPv4 with prefix, IPv6 with prefix).
    fn hosts(&self) -> Vec<(String, String, Option<&'static str>)> {
        let mut hosts = vec![(
            self.client_ns(),
            format!("{CLIENT_V4}/24"),
            Some("fd77::2/64"),
        )];
        hosts.extend((0..EXTRA_CLIENTS).map(|i| {
            (
                self.host_ns(i),
                format!("{}/24", Self::extra_client(i)),
                None,
            )
        }));
        hosts
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

    /// A command that runs `program` on the client host with address `source`.
    ///
    /// # Errors
    /// `source` is not a client address of the lab.
    pub fn command_from(&self, source: &str, program: &str) -> Result<Command> {
        Ok(self.command(&self.client_ns_of(source)?, program))
    }

    /// `n` requests for `path` on one keep-alive connection from the client
    /// host with address `source`, with curl's `extra` arguments.
    ///
    /// # Errors
    /// Not a client address; curl failed (no answer within 10 s, connection
    /// refused, ...).
    pub fn curl_from(&self, source: &str, extra: &[&str], path: &str, n: usize) -> Result<()> {
        let url = self.proxy_url(false, path);
        let mut cmd = self.command_from(source, "curl")?;
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
        let (gateway, upstream) = (self.gateway_ns(), self.upstream_ns());
        let hosts = self.hosts();
        for ns in hosts.iter().map(|h| &h.0).chain([&gateway, &upstream]) {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let bridge = GATEWAY_CLIENT_IF;
        ip(&[
            "-n",
            &gateway,
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &gateway, "addr", "add", "10.77.0.1/24", "dev", bridge])?;
        ip(&[
            "-n",
            &gateway,
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            bridge,
            "nodad",
        ])?;
        ip(&["-n", &gateway, "link", "set", bridge, "up"])?;
        for (i, (ns, v4, v6)) in hosts.iter().enumerate() {
            let port = format!("gwc{i}");
            ip(&[
                "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &port, "netns",
                &gateway,
            ])?;
            ip(&["-n", &gateway, "link", "set", &port, "master", bridge, "up"])?;
            ip(&["-n", ns, "addr", "add", v4, "dev", "eth0"])?;
            if let Some(v6) = v6 {
                ip(&["-n", ns, "addr", "add", v6, "dev", "eth0", "nodad"])?;
            }
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
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
                .replace("@PROXY_HEADERS@", PROXY_HEADERS)
                .replace("@CONSUMER_MAPS@", &consumer_maps())
                .replace("@RATE@", &RATE_LIMIT_PER_S.to_string())
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
        let hosts = self.hosts().into_iter().map(|h| h.0);
        for ns in hosts.chain([self.gateway_ns(), self.upstream_ns()]) {
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

/// A Kong consumer with one key-auth credential.
pub struct Consumer {
    /// `X-Consumer-Username`.
    pub username: &'static str,
    /// `X-Consumer-ID`.
    pub id: &'static str,
    /// The API key (a secret: it must never leave the sensor).
    pub key: &'static str,
    /// `X-Credential-Identifier`: the key-auth credential's id.
    pub credential_id: &'static str,
}

/// The gateway's consumers.
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        username: "alice",
        id: "0b6e7c1a-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "k9Qf3vXa7LmT2pRw",
        credential_id: "a1c7e6b0-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "bob",
        id: "1c7f8d2b-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Zp4Hq8NcV1sYe6Gu",
        credential_id: "b2d8f7c1-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "carol",
        id: "2d809e3c-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Tn7Bk2WdR5xJm9Lc",
        credential_id: "c3e908d2-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "dave",
        id: "3e91af4d-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Hs3Vy8PqF6aNw1Ke",
        credential_id: "d4fa19e3-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "erin",
        id: "4fa2b05e-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Mc5Rt9ZgL2uDx7Qb",
        credential_id: "e50b2af4-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
    Consumer {
        username: "mallory",
        id: "50b3c16f-5c2d-4e8f-9a1b-7d3e6f0a2c4b",
        key: "Wf8Jn4EkS1vPy3Ta",
        credential_id: "f61c3b05-a4b1-4c7e-8f2d-1e9b3c5a7d60",
    },
];

impl Consumer {
    /// The consumer called `username`.
    ///
    /// # Panics
    /// No such consumer (a typo in a scenario).
    pub fn named(username: &str) -> &'static Self {
        CONSUMERS
            .iter()
            .find(|c| c.username == username)
            .unwrap_or_else(|| panic!("no consumer {username}"))
    }

    /// curl's argument for the `apikey` header.
    pub fn header(&self) -> String {
        format!("apikey: {}", self.key)
    }
}

/// Requests per second a consumer may make on `/api/` (Kong's
/// rate-limiting plugin, `second` limit), with as many again in a burst.
pub const RATE_LIMIT_PER_S: u32 = 30;

/// nginx `map`s from the key (header, else query parameter) to each
/// consumer's headers.
fn consumer_maps() -> String {
    let map = |var: &str, value: fn(&Consumer) -> String| {
        let entries: String = CONSUMERS
            .iter()
            .map(|c| format!(" \"{}\" \"{}\";", c.key, value(c)))
            .collect();
        format!("map $kong_key ${var} {{ default \"\";{entries} }}\n")
    };
    [
        "map $http_apikey $kong_key { \"\" $arg_apikey; default $http_apikey; }\n".to_string(),
        map("consumer_id", |c| c.id.to_string()),
        map("consumer_username", |c| c.username.to_string()),
        map("credential_id", |c| c.credential_id.to_string()),
    ]
    .concat()
}

/// A Kong-like proxy on :8000 in front of the upstream, as Kong 3.x puts it
/// on the wire (Kong docs: key-auth, rate-limiting, proxy reference):
/// - `/` is an open route; `/api/` a route with key-auth (the `apikey`
///   header or query parameter; 401 with `WWW-Authenticate: Key
///   realm="kong"` when missing or unknown) and a per-consumer rate limit
///   (429 with `Retry-After` and `RateLimit-*`), `strip_path` on;
/// - upstream requests carry `X-Forwarded-For` (incoming + peer),
///   `X-Real-IP`, `X-Forwarded-Proto/Host/Port/Path`, `X-Kong-Request-Id`
///   (also returned to the client) and, after key-auth, `X-Consumer-ID`,
///   `X-Consumer-Username`, `X-Credential-Identifier`; the key is forwarded
///   (`hide_credentials` off, Kong's default).
const GATEWAY_SERVER: &str = r#"
  upstream service { server 10.77.1.2:8080; keepalive 32; }
  @CONSUMER_MAPS@
  map $status $kong_www_authenticate { 401 'Key realm="kong"'; default ""; }
  limit_req_zone $consumer_id zone=consumer:1m rate=@RATE@r/s;
  limit_req_status 429;
  server {
    listen 10.77.0.1:8000;
    listen [fd77::1]:8000;
    server_tokens off;
    proxy_http_version 1.1;
    @PROXY_HEADERS@
    add_header X-Kong-Request-Id $request_id always;
    add_header Via "1.1 kong/3.9.1" always;
    add_header WWW-Authenticate $kong_www_authenticate always;
    location / {
      proxy_pass http://service;
    }
    location /api/ {
      default_type application/json;
      if ($kong_key = "") { return 401 '{"message":"No API key found in request"}\n'; }
      if ($consumer_id = "") { return 401 '{"message":"Unauthorized"}\n'; }
      limit_req zone=consumer burst=@RATE@ nodelay;
      error_page 429 = @rate_limited;
      @PROXY_HEADERS@
      proxy_set_header X-Consumer-ID $consumer_id;
      proxy_set_header X-Consumer-Username $consumer_username;
      proxy_set_header X-Credential-Identifier $credential_id;
      proxy_pass http://service/;
    }
    location @rate_limited {
      default_type application/json;
      add_header X-Kong-Request-Id $request_id always;
      add_header Via "1.1 kong/3.9.1" always;
      add_header Retry-After 1 always;
      add_header RateLimit-Limit @RATE@ always;
      add_header RateLimit-Remaining 0 always;
      add_header RateLimit-Reset 1 always;
      return 429 '{"message":"API rate limit exceeded"}\n';
    }
  }
"#;

/// The headers Kong adds to every upstream request; repeated in each
/// location that adds its own (nginx does not merge `proxy_set_header`).
const PROXY_HEADERS: &str = r#"proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header X-Forwarded-Path $uri;
    proxy_set_header X-Kong-Request-Id $request_id;"#;

/// The plaintext upstream service on :8080: `/hello`, `/big` (64 KiB),
/// `/missing` (404) and a small JSON API (`/orders`, `/users/...`, `/items`).
const UPSTREAM_SERVER: &str = r#"
  server {
    listen 10.77.1.2:8080;
    listen [fd77:1::2]:8080;
    root @WWW@;
    location = / { return 200 "hello from upstream\n"; }
    location = /hello { return 200 "hello from upstream\n"; }
    location /big { }
    location /missing { return 404 "not found\n"; }
    location ~ ^/(orders|users|items)(/|$) {
      default_type application/json;
      return 200 '{"items":[{"id":1,"name":"widget"}]}\n';
    }
  }
"#;

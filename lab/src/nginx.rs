//! The lab's nginx servers: a Kong-like gateway and a plaintext upstream.

use std::{
    fs,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    consumers::{CONSUMERS, Consumer, RATE_LIMIT_PER_S},
    h2::GATEWAY_H2_SERVERS,
    network::{GATEWAY_V4, GATEWAY_V6, Lab},
    run_quiet,
};

impl Lab {
    pub(crate) fn start_servers(&self) -> Result<()> {
        self.make_certificate()?;
        let www = self.workdir().join("www");
        fs::create_dir_all(&www)?;
        fs::write(www.join("big"), "0123456789abcdef".repeat(4096))?; // 64 KiB: many segments, GSO
        fs::write(www.join("large"), "0123456789abcdef".repeat(1 << 18))?; // 4 MiB: a download
        let gateway = [GATEWAY_SERVER, GATEWAY_H2_SERVERS].concat();
        for (name, ns, server) in [
            ("upstream", self.upstream_ns(), UPSTREAM_SERVER),
            ("gateway", self.gateway_ns(), gateway.as_str()),
        ] {
            self.write_nginx_conf(name, server)?;
            self.nginx(name, &ns, &[])?;
        }
        self.wait_for_gateway()
    }

    /// Writes the config of nginx server `name` (its folder in the
    /// workdir) serving `server` (`GATEWAY_SERVER`, ...).
    pub(crate) fn write_nginx_conf(&self, name: &str, server: &str) -> Result<()> {
        let dir = self.workdir().join(name);
        fs::create_dir_all(dir.join("tmp"))?;
        set_mode(&dir.join("tmp"), 0o1777)?;
        let www = self.workdir().join("www");
        let conf = NGINX_MAIN
            .replace("@DIR@", &dir.display().to_string())
            .replace("@SERVER@", server)
            .replace("@PROXY_HEADERS@", PROXY_HEADERS)
            .replace("@CONSUMER_MAPS@", &consumer_maps())
            .replace("@RATE@", &RATE_LIMIT_PER_S.to_string())
            .replace("@WWW@", &www.display().to_string());
        fs::write(dir.join("nginx.conf"), conf)?;
        Ok(())
    }

    /// Writes the gateway's certificate (self-signed, naming its addresses,
    /// so curl verifies it against [`Lab::ca_file`]) and key into its nginx
    /// folder (`cert.pem`, `key.pem`, which its config names relative to it).
    fn make_certificate(&self) -> Result<()> {
        let names = [GATEWAY_V4, GATEWAY_V6, "kong.lab"].map(String::from);
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .context("making the gateway's certificate")?;
        let dir = self.workdir().join("gateway");
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("cert.pem"), made.cert.pem())?;
        fs::write(dir.join("key.pem"), made.signing_key.serialize_pem())?;
        Ok(())
    }

    /// Runs the nginx of server `name` (`gateway`, `upstream`) in its
    /// namespace `ns` with `args` (none: start it).
    pub(crate) fn nginx(&self, name: &str, ns: &str, args: &[&str]) -> Result<()> {
        let dir = self.workdir().join(name).display().to_string();
        let mut cmd = self.command(ns, "nginx");
        cmd.args(["-p", &dir, "-c", "nginx.conf", "-e", "error.log"]);
        run_quiet(cmd.args(args)).map(drop)
    }

    /// Reloads the gateway (`nginx -s reload`, as `kong reload`): its
    /// master forks new workers and retires the old ones.
    ///
    /// # Errors
    /// nginx refused, or the gateway did not answer within 10 s.
    pub fn reload_gateway(&self) -> Result<()> {
        let old = self.gateway_pids()?;
        self.nginx("gateway", &self.gateway_ns(), &["-s", "reload"])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.gateway_pids()?.iter().any(|p| old[1..].contains(p)) {
            if Instant::now() > deadline {
                bail!("the gateway's old workers did not exit within 10 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.wait_for_gateway()
    }

    /// Stops the gateway and starts it again (as `kong restart`): a new
    /// master, not forked from the old one.
    ///
    /// # Errors
    /// nginx refused, or the gateway did not stop or answer within 10 s.
    pub fn restart_gateway(&self) -> Result<()> {
        let pid_file = self.workdir().join("gateway/nginx.pid");
        self.nginx("gateway", &self.gateway_ns(), &["-s", "quit"])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_file.exists() {
            if Instant::now() > deadline {
                bail!("the gateway did not stop within 10 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.nginx("gateway", &self.gateway_ns(), &[])?;
        self.wait_for_gateway()
    }

    /// The gateway's processes: its master first, then its workers.
    ///
    /// # Errors
    /// The pid file or `/proc` cannot be read.
    pub fn gateway_pids(&self) -> Result<Vec<u32>> {
        let pid_file = self.workdir().join("gateway/nginx.pid");
        let master: u32 = fs::read_to_string(pid_file)?.trim().parse()?;
        let mut pids = vec![master];
        for entry in fs::read_dir("/proc")? {
            let Some(pid) = entry?
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1));
            if ppid == Some(master.to_string().as_str()) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// Waits until the gateway answers on its plain listener.
    fn wait_for_gateway(&self) -> Result<()> {
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
}

const NGINX_MAIN: &str = r#"
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
worker_rlimit_nofile 16384;
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

/// A Kong-like proxy on :8000 and :8443 (HTTPS with HTTP/2 by ALPN, as
/// Kong's default `proxy_listen ... 8443 http2 ssl`) in front of the upstream, as Kong 3.x puts it on the
/// wire (Kong docs: key-auth, rate-limiting, proxy reference):
/// - `/` is an open route; `/api/` a route with key-auth (the `apikey`
///   header or query parameter; 401 with `WWW-Authenticate: Key
///   realm="kong"` when missing or unknown) and a per-consumer rate limit
///   (429 with `Retry-After` and `RateLimit-*`), `strip_path` on;
/// - upstream requests carry `X-Forwarded-For` (incoming + peer),
///   `X-Real-IP`, `X-Forwarded-Proto/Host/Port/Path`, `X-Kong-Request-Id`
///   (also returned to the client) and, after key-auth, `X-Consumer-ID`,
///   `X-Consumer-Username`, `X-Credential-Identifier`; the key is forwarded
///   (`hide_credentials` off, Kong's default).
pub(crate) const GATEWAY_SERVER: &str = r#"
  upstream service { server 10.77.1.2:8080; keepalive 32; }
  @CONSUMER_MAPS@
  map $status $kong_www_authenticate { 401 'Key realm="kong"'; default ""; }
  limit_req_zone $consumer_id zone=consumer:1m rate=@RATE@r/s;
  limit_req_status 429;
  log_format sensor '$request_id $remote_addr "$request" $status $msec $request_time "$consumer_username"';
  server {
    listen 10.77.0.1:8000;
    access_log access.log sensor;
    listen [fd77::1]:8000;
    listen 10.77.0.1:8443 ssl http2;
    listen [fd77::1]:8443 ssl http2;
    ssl_certificate cert.pem;
    ssl_certificate_key key.pem;
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
/// `/large` (4 MiB),
/// `/missing` (404) and a small JSON API (`/orders`, `/users/...`, `/items`).
const UPSTREAM_SERVER: &str = r#"
  server {
    listen 10.77.1.2:8080;
    listen [fd77:1::2]:8080;
    root @WWW@;
    location = / { return 200 "hello from upstream\n"; }
    location = /hello { return 200 "hello from upstream\n"; }
    location /big { }
    location /large { }
    location /missing { return 404 "not found\n"; }
    location ~ ^/(orders|users|items)(/|$) {
      default_type application/json;
      return 200 '{"items":[{"id":1,"name":"widget"}]}\n';
    }
  }
"#;

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// One line of the gateway's access log (`log_format sensor`):
/// `$request_id $remote_addr "$request" $status $msec $request_time
/// "$consumer_username"`.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessEntry {
    /// nginx's `$request_id`, returned to the client as `X-Kong-Request-Id`.
    pub request_id: String,
    /// The peer address.
    pub remote_addr: String,
    /// The request line as nginx logs it (bytes it escapes as `\xXX`).
    pub request: String,
    /// The status sent.
    pub status: u16,
    /// When the log line was written (the response's last byte sent), s
    /// since the epoch, ms resolution (`$msec`).
    pub msec: f64,
    /// From the request's first byte to the log line, s (`$request_time`,
    /// ms resolution): Kong's `latencies.request`.
    pub request_time: f64,
    /// The consumer the gateway authenticated, empty when none.
    pub consumer: String,
}

impl Lab {
    /// The gateway's access log so far, one entry per request nginx
    /// answered (or refused).
    ///
    /// # Errors
    /// The log cannot be read or a line does not parse.
    pub fn access_log(&self) -> Result<Vec<AccessEntry>> {
        self.access_log_of("gateway")
    }

    /// The access log of nginx server `name` (`gateway`, `gateway-b`).
    ///
    /// # Errors
    /// As [`Lab::access_log`].
    pub(crate) fn access_log_of(&self, name: &str) -> Result<Vec<AccessEntry>> {
        let text = fs::read_to_string(self.workdir().join(name).join("access.log"))?;
        text.lines()
            .map(|line| {
                let (request_id, rest) = line.split_once(' ').context("no request id")?;
                let (remote_addr, rest) = rest.split_once(" \"").context("no address")?;
                let (rest, consumer) = rest
                    .strip_suffix('"')
                    .and_then(|r| r.rsplit_once(" \""))
                    .context("no consumer")?;
                let (request, numbers) = rest.rsplit_once("\" ").context("no request")?;
                let mut numbers = numbers.split(' ');
                let mut next = || numbers.next().context("a number is missing");
                Ok(AccessEntry {
                    request_id: request_id.to_owned(),
                    remote_addr: remote_addr.to_owned(),
                    request: request.to_owned(),
                    status: next()?.parse()?,
                    msec: next()?.parse()?,
                    request_time: next()?.parse()?,
                    consumer: consumer.to_owned(),
                })
            })
            .collect()
    }
}

//! HTTP/2 in the lab: the gateway's h2c listeners and a gRPC service.
//!
//! - `:8002 http2`: the proxy over HTTP/2 with prior knowledge (Kong's
//!   `proxy_listen ... http2` without `ssl`), the same routes as `:8000`;
//! - `:9080 http2`: Kong's gRPC listener shape, `grpc_pass` to the gRPC
//!   service on the upstream (`lab/py/grpc_echo.py`, h2c), with a per-IP
//!   rate limit on `/lab.Echo/Limited` (nginx answers HTTP 429);
//! - on demand, an h2c-upgrade server on the upstream
//!   (`lab/py/h2c_upgrade.py`).

use std::{
    fs,
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{GATEWAY_V4, Lab, UPSTREAM_V4, run_quiet};

/// The h2c (prior knowledge) proxy port.
pub const H2C_PORT: u16 = 8002;
/// The gRPC listener port.
pub const GRPC_PORT: u16 = 9080;
/// The gRPC service's port on the upstream.
pub const GRPC_SERVICE_PORT: u16 = 50051;

/// The gRPC client and server script.
const GRPC_PY: &str = include_str!("../py/grpc_echo.py");
/// The h2c-upgrade server script.
const H2C_UPGRADE_PY: &str = include_str!("../py/h2c_upgrade.py");
/// The h2c-upgrade server's port on the upstream.
pub const H2C_UPGRADE_PORT: u16 = 8090;

/// The gateway's HTTP/2 server blocks (nginx), added to its config.
pub(crate) const GATEWAY_H2_SERVERS: &str = r#"
  limit_req_zone $binary_remote_addr zone=grpc:1m rate=5r/s;
  server {
    listen 10.77.0.1:8002 http2;
    access_log access.log sensor;
    server_tokens off;
    proxy_http_version 1.1;
    @PROXY_HEADERS@
    add_header X-Kong-Request-Id $request_id always;
    add_header Via "1.1 kong/3.9.1" always;
    location / {
      proxy_pass http://service;
    }
  }
  server {
    listen 10.77.0.1:9080 http2;
    access_log access.log sensor;
    server_tokens off;
    add_header X-Kong-Request-Id $request_id always;
    grpc_set_header X-Kong-Request-Id $request_id;
    grpc_set_header X-Real-IP $remote_addr;
    location /lab.Echo/Limited {
      limit_req zone=grpc burst=5 nodelay;
      grpc_pass grpc://10.77.1.2:50051;
    }
    location / {
      grpc_pass grpc://10.77.1.2:50051;
    }
  }
"#;

/// A lab server process; stopped when dropped.
pub struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lab {
    /// Starts the gRPC service on the upstream host, ready to answer.
    ///
    /// # Errors
    /// Python or grpcio is missing, or the service does not start.
    pub fn grpc_service(&self) -> Result<Server> {
        let script = self.script("grpc_echo.py", GRPC_PY)?;
        let addr = format!("{UPSTREAM_V4}:{GRPC_SERVICE_PORT}");
        self.serve(&[script.display().to_string(), "serve".into(), addr])
    }

    /// Starts the h2c-upgrade server (`lab/py/h2c_upgrade.py`, hyper-h2) on
    /// the upstream host at [`H2C_UPGRADE_PORT`], ready to answer.
    ///
    /// # Errors
    /// Python or hyper-h2 is missing, or the server does not start.
    pub fn h2c_upgrade_server(&self) -> Result<Server> {
        let script = self.script("h2c_upgrade.py", H2C_UPGRADE_PY)?;
        let port = H2C_UPGRADE_PORT.to_string();
        self.serve(&[script.display().to_string(), UPSTREAM_V4.into(), port])
    }

    /// Runs `python3 ARGS` on the upstream host until it prints `serving`.
    fn serve(&self, args: &[String]) -> Result<Server> {
        let mut child = self
            .command(&self.upstream_ns(), "/usr/bin/python3")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {args:?}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        if !line.starts_with("serving") {
            bail!("{args:?} did not start: {line:?}");
        }
        Ok(Server { child })
    }

    /// `n` unary calls of `/lab.Echo/METHOD` with bearer `token`, from the
    /// client host with address `source`, through the gateway's gRPC
    /// listener; returns the status codes counted, as the script prints
    /// them (`{'OK': 5, 'UNAUTHENTICATED': 30}`).
    ///
    /// # Errors
    /// Not a client address; the client failed.
    pub fn grpc_calls(&self, source: &str, method: &str, token: &str, n: usize) -> Result<String> {
        let script = self.script("grpc_echo.py", GRPC_PY)?;
        let target = format!("{GATEWAY_V4}:{GRPC_PORT}");
        let out = run_quiet(
            self.command_from(source, "/usr/bin/python3")?
                .arg(&script)
                .args(["call", &target, method, token, &n.to_string()]),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `text` written to the lab's `name` once.
    fn script(&self, name: &str, text: &str) -> Result<std::path::PathBuf> {
        let script = self.workdir().join(name);
        if !script.exists() {
            fs::write(&script, text)?;
        }
        Ok(script)
    }
}

//! How clients reach the gateway: its two proxy listeners, as Kong's
//! default `proxy_listen` has them (`8000`, and `8443 http2 ssl`, which
//! Kong's Helm chart maps 443 to; HTTP/1.1 or HTTP/2 by ALPN), URLs on
//! either, and curl from the client hosts (HTTPS verified against the
//! gateway's certificate, made at lab start by `nginx.rs`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::{
    network::{GATEWAY_V4, GATEWAY_V6, Lab, PROXY_PORT},
    run_quiet,
};

/// Kong's default HTTPS proxy port.
pub const PROXY_TLS_PORT: u16 = 8443;

/// Which of the gateway's proxy listeners a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Plain HTTP on [`PROXY_PORT`].
    Http,
    /// HTTPS with HTTP/1.1 (ALPN `http/1.1`) on [`PROXY_TLS_PORT`].
    Https,
    /// HTTPS with HTTP/2 (ALPN `h2`) on [`PROXY_TLS_PORT`].
    Https2,
}

impl Listener {
    /// Its port.
    pub fn port(self) -> u16 {
        match self {
            Self::Http => PROXY_PORT,
            Self::Https | Self::Https2 => PROXY_TLS_PORT,
        }
    }

    /// Whether clients speak HTTP/2 on it.
    pub fn http2(self) -> bool {
        self == Self::Https2
    }

    /// curl's flag for the protocol: `--http1.1` or `--http2`.
    fn curl_protocol(self) -> &'static str {
        if self.http2() { "--http2" } else { "--http1.1" }
    }

    /// URL of `path` on the gateway's listener, over IPv4 or IPv6.
    pub fn url(self, ipv6: bool, path: &str) -> String {
        let (scheme, port) = (self.scheme(), self.port());
        if ipv6 {
            format!("{scheme}://[{GATEWAY_V6}]:{port}{path}")
        } else {
            format!("{scheme}://{GATEWAY_V4}:{port}{path}")
        }
    }

    /// `n` requests for `path` on one keep-alive connection to this
    /// listener, in its protocol, from the client host with address
    /// `source` (see [`Lab::curl_from`]; HTTPS verified against
    /// [`Lab::ca_file`]).
    ///
    /// # Errors
    /// As [`Lab::curl_from`].
    pub fn curl_from(
        self,
        lab: &Lab,
        source: &str,
        extra: &[&str],
        path: &str,
        n: usize,
    ) -> Result<()> {
        let url = self.url(false, path);
        let mut cmd = lab.command_from(source, "curl")?;
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--interface",
            source,
        ]);
        cmd.arg("--cacert").arg(lab.ca_file());
        cmd.arg(self.curl_protocol());
        cmd.args(extra);
        for _ in 0..n {
            cmd.arg(&url);
        }
        run_quiet(&mut cmd).map(drop)
    }

    fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https | Self::Https2 => "https",
        }
    }
}

impl Lab {
    /// The gateway's certificate (self-signed, for its addresses): the CA
    /// file clients verify the HTTPS listener with (`curl --cacert`).
    pub fn ca_file(&self) -> PathBuf {
        self.workdir().join("gateway/cert.pem")
    }

    /// Proxy URL on the gateway's plain HTTP listener for `path`, over
    /// IPv4 or IPv6 (see [`Listener::url`] for either listener).
    pub fn proxy_url(&self, ipv6: bool, path: &str) -> String {
        Listener::Http.url(ipv6, path)
    }

    /// `n` requests for `path` on one keep-alive connection from the client
    /// host with address `source`, with curl's `extra` arguments.
    ///
    /// # Errors
    /// Not a client address; curl failed (no answer within 10 s, connection
    /// refused, ...).
    pub fn curl_from(&self, source: &str, extra: &[&str], path: &str, n: usize) -> Result<()> {
        Listener::Http.curl_from(self, source, extra, path, n)
    }

    /// `curl` with HTTP/1.1 from the client namespace (an HTTPS URL of the
    /// gateway is verified against [`Lab::ca_file`]); returns the HTTP
    /// status and body.
    ///
    /// # Errors
    /// curl failed (no answer within 10 s, connection refused, ...).
    pub fn curl(&self, url: &str) -> Result<(u16, Vec<u8>)> {
        let mut cmd = self.command(&self.client_ns(), "curl");
        cmd.arg("--cacert").arg(self.ca_file());
        cmd.args([
            "-s",
            "--http1.1",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ]);
        let out = run_quiet(&mut cmd)?;
        let split = out
            .stdout
            .iter()
            .rposition(|&b| b == b'\n')
            .context("curl printed no status")?;
        let status = String::from_utf8_lossy(&out.stdout[split + 1..]).parse()?;
        Ok((status, out.stdout[..split].to_vec()))
    }
}

//! The gateway's HTTPS listener, as Kong's default `proxy_listen` has one
//! (`8443 ssl`; Kong's Helm chart maps 443 to it): its certificate, made
//! at lab start (rcgen, naming the gateway's addresses, so curl verifies
//! it against the lab's own CA file), and URLs on either listener.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};

use crate::network::{GATEWAY_V4, GATEWAY_V6, Lab, PROXY_PORT};

/// Kong's default HTTPS proxy port.
pub const PROXY_TLS_PORT: u16 = 8443;

/// Which of the gateway's proxy listeners a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Plain HTTP on [`PROXY_PORT`].
    Http,
    /// HTTPS (HTTP/1.1 over TLS) on [`PROXY_TLS_PORT`].
    Https,
}

impl Listener {
    /// Its port.
    pub fn port(self) -> u16 {
        match self {
            Self::Http => PROXY_PORT,
            Self::Https => PROXY_TLS_PORT,
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

impl Lab {
    /// URL of `path` on the gateway's `listener`, over IPv4 or IPv6.
    pub fn url(&self, listener: Listener, ipv6: bool, path: &str) -> String {
        let (scheme, port) = (listener.scheme(), listener.port());
        if ipv6 {
            format!("{scheme}://[{GATEWAY_V6}]:{port}{path}")
        } else {
            format!("{scheme}://{GATEWAY_V4}:{port}{path}")
        }
    }

    /// The gateway's certificate (self-signed, for its addresses): the CA
    /// file clients verify the HTTPS listener with (`curl --cacert`).
    pub fn ca_file(&self) -> PathBuf {
        self.workdir().join("gateway/cert.pem")
    }

    /// Writes the gateway's certificate and key into its nginx folder
    /// (`cert.pem`, `key.pem`, which its config names relative to it).
    pub(crate) fn make_certificate(&self) -> Result<()> {
        let names = [GATEWAY_V4, GATEWAY_V6, "kong.lab"].map(String::from);
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .context("making the gateway's certificate")?;
        let dir = self.workdir().join("gateway");
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("cert.pem"), made.cert.pem())?;
        fs::write(dir.join("key.pem"), made.signing_key.serialize_pem())?;
        Ok(())
    }
}

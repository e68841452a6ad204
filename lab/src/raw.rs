//! Requests sent byte for byte, for what no HTTP client writes: control
//! bytes in header values, a target without Host, hostile encodings.

use std::fs;

use anyhow::Result;

use crate::{GATEWAY_V4, Lab, PROXY_PORT, REQUESTS_PY, run_quiet};

impl Lab {
    /// Sends each of `requests` as it is, on a connection of its own, from
    /// the client host with address `source` to the gateway's proxy port,
    /// and reads each answer until the gateway closes.
    ///
    /// # Errors
    /// Not a client address; the sender failed.
    pub fn send_raw(&self, source: &str, requests: &[Vec<u8>]) -> Result<()> {
        let dir = self.workdir().join(format!("raw-{source}"));
        fs::create_dir_all(&dir)?;
        let script = dir.join("requests.py");
        fs::write(&script, REQUESTS_PY)?;
        let mut cmd = self.command_from(source, "/usr/bin/python3")?;
        cmd.arg(&script)
            .args(["raw", source, GATEWAY_V4, &PROXY_PORT.to_string()]);
        for (i, request) in requests.iter().enumerate() {
            let file = dir.join(format!("{i}.http"));
            fs::write(&file, request)?;
            cmd.arg(file);
        }
        run_quiet(&mut cmd).map(drop)
    }
}

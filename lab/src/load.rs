//! Load clients: the same request pattern from wrk (with `lua/paths.lua`)
//! or ab over HTTP/1.1, and from h2load over HTTP/2, chosen by the
//! gateway's listener, so a scenario plays identically over either
//! protocol.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{Lab, Listener};

/// When a load client stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many seconds.
    Seconds(u32),
    /// After this many requests in all (one path).
    Requests(u32),
}

/// A request pattern: `paths` in turn on each of `connections` keep-alive
/// connections, with an optional `header` (`Name: value`), at `rate`
/// requests/s per connection (as fast as it goes when `None`), until
/// `stop`. (ab, for [`Stop::Requests`] over HTTP/1.1, opens a connection
/// per request as its default; h2load keeps them.)
#[derive(Clone, Copy, Debug)]
pub struct Load<'a> {
    /// Paths with their queries, taken in turn.
    pub paths: &'a [&'a str],
    /// One request header, if any.
    pub header: Option<&'a str>,
    /// Requests per second per connection, or as fast as it goes.
    pub rate: Option<u32>,
    /// Concurrent connections.
    pub connections: u32,
    /// When it stops.
    pub stop: Stop,
}

const PATHS_LUA: &str = include_str!("../lua/paths.lua");

impl Load<'_> {
    /// The client command, from the client host with address `source`,
    /// against the gateway's `listener` (not started).
    ///
    /// # Errors
    /// Not a client address; a script or URI file could not be written.
    pub fn command(&self, lab: &Lab, listener: Listener, source: &str) -> Result<Command> {
        if listener.http2() {
            return self.h2load(lab, listener, source);
        }
        let c = self.connections.to_string();
        match self.stop {
            Stop::Requests(n) => {
                let mut cmd = lab.command_from(source, "ab")?;
                cmd.args(["-q", "-n", &n.to_string(), "-c", &c]);
                if let Some(h) = self.header {
                    cmd.args(["-H", h]);
                }
                cmd.arg(listener.url(false, self.paths[0]));
                Ok(cmd)
            }
            Stop::Seconds(s) => {
                let mut cmd = lab.command_from(source, "wrk")?;
                cmd.args(["-t1", "-c", &c, "-d", &format!("{s}s")]);
                if self.paths.len() == 1 && self.header.is_none() && self.rate.is_none() {
                    cmd.arg(listener.url(false, self.paths[0]));
                    return Ok(cmd);
                }
                // One file per client host: clients started together must
                // not read a script another is rewriting (a truncated one
                // has no `delay`, and wrk then runs flat out).
                let script = lab.workdir().join(format!("paths-{source}.lua"));
                std::fs::write(&script, PATHS_LUA)
                    .with_context(|| format!("writing {}", script.display()))?;
                let delay_ms = self.rate.map_or(0, |r| 1000 / r.max(1));
                cmd.arg("-s").arg(script).arg(listener.url(false, "/"));
                cmd.args(["--", &delay_ms.to_string(), self.header.unwrap_or("")]);
                cmd.args(self.paths);
                Ok(cmd)
            }
        }
    }

    /// h2load (nghttp2) with the same pattern: one stream at a time per
    /// connection, the paths from a URI file.
    fn h2load(&self, lab: &Lab, listener: Listener, source: &str) -> Result<Command> {
        let mut cmd = lab.command_from(source, "h2load")?;
        cmd.args(["-c", &self.connections.to_string(), "-m", "1"]);
        match self.stop {
            Stop::Requests(n) => cmd.args(["-n", &n.to_string()]),
            Stop::Seconds(s) => cmd.args(["-D", &s.to_string()]),
        };
        if let Some(r) = self.rate {
            cmd.arg(format!("--rps={r}"));
        }
        if let Some(h) = self.header {
            cmd.args(["-H", h]);
        }
        let uris: String = self
            .paths
            .iter()
            .map(|p| listener.url(false, p) + "\n")
            .collect();
        let file = lab.workdir().join(format!("uris-{source}.txt"));
        std::fs::write(&file, uris).with_context(|| format!("writing {}", file.display()))?;
        cmd.arg("-i").arg(file);
        Ok(cmd)
    }
}

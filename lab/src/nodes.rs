//! A fleet of two Kong-like gateway nodes behind one load balancer, as a
//! Kong deployment with high availability runs them: node A is the lab's
//! gateway, node B a second namespace on the same client LAN with its own
//! nginx (the same routes, consumers and rate limit) and its own link to
//! the upstream.
//!
//! ```text
//!  clients --+-- gw-client (bridge, {p}-gateway)  node A 10.77.0.1 --- gw-upstream 10.77.1.1 --+
//!            |                                                                                  +-- {p}-upstream
//!            +-- gwb-lan ~ gw-client ({p}-gateway-b)  node B 10.77.0.3 --- gw-upstream 10.77.2.1 --+   10.77.1.2 (upstream1 10.77.2.2)
//! ```
//!
//! Node B's interfaces have node A's names, so a sensor takes the same
//! flags on either. Frames between a client and node B cross node A's
//! bridge without reaching node A's own stack or its bridge device's
//! hooks: each node's sensor sees only its node's traffic. The clients
//! spread their requests over the nodes themselves, as a layer-4 load
//! balancer that keeps the client's address would (`Node::url`).

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    AccessEntry, GATEWAY_V4, Lab, PROXY_PORT,
    network::{ip, veth_pair},
    nginx::GATEWAY_SERVER,
    run_quiet,
};

/// Node B's address on the client LAN.
pub const GATEWAY_B_V4: &str = "10.77.0.3";

/// One of the fleet's gateway nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// The lab's gateway (`{p}-gateway`, [`GATEWAY_V4`]).
    A,
    /// The second node (`{p}-gateway-b`, [`GATEWAY_B_V4`]), after
    /// [`add_node_b`].
    B,
}

impl Node {
    /// Both nodes.
    pub const ALL: [Node; 2] = [Node::A, Node::B];

    /// The node's name in events and fleet alerts (`--publish-node`).
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "gw-a",
            Self::B => "gw-b",
        }
    }

    /// Its proxy address on the client LAN.
    pub fn address(self) -> &'static str {
        match self {
            Self::A => GATEWAY_V4,
            Self::B => GATEWAY_B_V4,
        }
    }

    /// URL of `path` on its plain HTTP proxy listener.
    pub fn url(self, path: &str) -> String {
        format!("http://{}:{PROXY_PORT}{path}", self.address())
    }

    /// Its nginx's folder in the lab's workdir.
    fn dir(self) -> &'static str {
        match self {
            Self::A => "gateway",
            Self::B => "gateway-b",
        }
    }
}

impl Node {
    /// Its namespace.
    pub fn ns(self, lab: &Lab) -> String {
        match self {
            Node::A => lab.gateway_ns(),
            Node::B => lab.gateway_b_ns(),
        }
    }

    /// Its access log so far (see [`Lab::access_log`]).
    ///
    /// # Errors
    /// As [`Lab::access_log`].
    pub fn access_log(self, lab: &Lab) -> Result<Vec<AccessEntry>> {
        lab.access_log_of(self.dir())
    }

    /// `n` requests for `path` to this node on one keep-alive connection
    /// from the client host with address `source`, with curl's `extra`
    /// arguments.
    ///
    /// # Errors
    /// Not a client address; curl failed.
    pub fn curl(self, lab: &Lab, source: &str, extra: &[&str], path: &str, n: usize) -> Result<()> {
        let mut cmd = lab.command_from(source, "curl")?;
        cmd.args(["-s", "-o", "/dev/null", "--max-time", "10"]);
        cmd.args(["--interface", source]).args(extra);
        for _ in 0..n {
            cmd.arg(self.url(path));
        }
        run_quiet(&mut cmd).map(drop)
    }

    /// `ab -n N -c C` for `path` against this node from `source`
    /// (keep-alive off, a new connection per request, as ab's default).
    ///
    /// # Errors
    /// Not a client address; ab failed.
    pub fn ab(self, lab: &Lab, source: &str, n: u32, c: u32, path: &str) -> Result<()> {
        let mut cmd = lab.command_from(source, "ab")?;
        cmd.args(["-q", "-n", &n.to_string(), "-c", &c.to_string()]);
        run_quiet(cmd.arg(self.url(path))).map(drop)
    }
}

/// Brings up node B in `lab`: its namespace on the client LAN, its link
/// to the upstream, its nginx; returns once it answers.
///
/// # Errors
/// A failing `ip` command, or nginx not answering within 10 s.
pub fn add_node_b(lab: &Lab) -> Result<()> {
    let (ns, gateway, upstream) = (Node::B.ns(lab), lab.gateway_ns(), lab.upstream_ns());
    ip(&["netns", "add", &ns])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    ip(&[
        "link",
        "add",
        crate::GATEWAY_CLIENT_IF,
        "netns",
        &ns,
        "type",
        "veth",
        "peer",
        "name",
        "gwb-lan",
        "netns",
        &gateway,
    ])?;
    let bridge = crate::GATEWAY_CLIENT_IF;
    ip(&[
        "-n", &gateway, "link", "set", "gwb-lan", "master", bridge, "up",
    ])?;
    let address = format!("{GATEWAY_B_V4}/24");
    ip(&["-n", &ns, "addr", "add", &address, "dev", bridge])?;
    ip(&["-n", &ns, "link", "set", bridge, "up"])?;
    veth_pair(
        [&upstream, "upstream1", "10.77.2.2/24", "fd77:2::2/64"],
        [
            &ns,
            crate::GATEWAY_UPSTREAM_IF,
            "10.77.2.1/24",
            "fd77:2::1/64",
        ],
    )?;
    ip(&[
        "-n",
        &ns,
        "route",
        "add",
        "10.77.1.0/24",
        "via",
        "10.77.2.2",
    ])?;
    let server: String = GATEWAY_SERVER
        .replace("listen 10.77.0.1:", &format!("listen {GATEWAY_B_V4}:"))
        .lines()
        .filter(|l| !l.contains("listen [fd77::1]"))
        .map(|l| format!("{l}\n"))
        .collect();
    lab.write_nginx_conf(Node::B.dir(), &server)?;
    let dir = lab.workdir().join(Node::B.dir());
    for file in ["cert.pem", "key.pem"] {
        fs::copy(lab.workdir().join("gateway").join(file), dir.join(file))
            .with_context(|| format!("copying the gateway's {file}"))?;
    }
    lab.nginx(Node::B.dir(), &ns, &[])?;
    let url = Node::B.url("/");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut curl = lab.command(&lab.client_ns(), "curl");
    curl.args(["-sf", "-o", "/dev/null", "--max-time", "1", &url]);
    while run_quiet(&mut curl).is_err() {
        if Instant::now() > deadline {
            bail!("node B did not answer {url} within 10 s");
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

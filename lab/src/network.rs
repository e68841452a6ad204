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
//! behaves like Kong's proxy on the wire (see [`crate::nginx::GATEWAY_SERVER`]). The
//! sensor attaches to `gw-client` (client leg) and `gw-upstream`
//! (upstream leg).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

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
/// The gateway's (Kong node's) addresses: what `run` in its namespace finds
/// by itself, and what `replay` must be told.
pub const KONG_ADDRESSES: [&str; 4] = [GATEWAY_V4, GATEWAY_V6, GATEWAY_UPSTREAM_V4, "fd77:1::1"];

/// `--kong-address` for each of [`KONG_ADDRESSES`] (for `replay`).
pub fn kong_args() -> Vec<&'static str> {
    KONG_ADDRESSES
        .iter()
        .flat_map(|a| ["--kong-address", a])
        .collect()
}

/// The gateway bridge's MAC address (locally administered).
const BRIDGE_MAC: &str = "02:00:0a:4d:00:01";

/// Gateway interface towards the client.
pub const GATEWAY_CLIENT_IF: &str = "gw-client";
/// Gateway interface towards the upstream.
pub const GATEWAY_UPSTREAM_IF: &str = "gw-upstream";
/// The sensor's flags that capture both of the gateway's legs.
pub const BOTH_LEGS: [&str; 4] = ["--iface", GATEWAY_CLIENT_IF, "--iface", GATEWAY_UPSTREAM_IF];

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

    /// The name the lab's namespaces start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
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

    /// `{prefix}-gateway-b`, the fleet's second gateway node.
    pub fn gateway_b_ns(&self) -> String {
        format!("{}-gateway-b", self.prefix)
    }

    /// `{prefix}-nats`, the NATS server's host (`nats::Nats`).
    pub fn nats_ns(&self) -> String {
        format!("{}-nats", self.prefix)
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

    /// A command that runs `program` on the client host with address `source`.
    ///
    /// # Errors
    /// `source` is not a client address of the lab.
    pub fn command_from(&self, source: &str, program: &str) -> Result<Command> {
        Ok(self.command(&self.client_ns_of(source)?, program))
    }

    /// Makes the client host with address `source` drop the TCP resets its
    /// own kernel would send for connections scapy opens there, so a
    /// crafted conversation survives (nftables, in that namespace only).
    ///
    /// # Errors
    /// Not a client address; `nft` failed.
    pub fn drop_own_resets(&self, source: &str) -> Result<()> {
        let ns = self.client_ns_of(source)?;
        for rule in [
            "add table ip crafted",
            "add chain ip crafted out { type filter hook output priority 0 ; }",
            "add rule ip crafted out tcp flags rst drop",
        ] {
            run_quiet(self.command(&ns, "nft").args(rule.split(' ')))?;
        }
        Ok(())
    }

    fn build_network(&self) -> Result<()> {
        let (gateway, upstream) = (self.gateway_ns(), self.upstream_ns());
        let hosts = self.hosts();
        for ns in hosts.iter().map(|h| &h.0).chain([&gateway, &upstream]) {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let bridge = GATEWAY_CLIENT_IF;
        // A fixed address: a bridge otherwise takes the lowest of its
        // ports', and a port added later (a second gateway node, the NATS
        // host) can change it under the clients' ARP caches.
        ip(&[
            "-n",
            &gateway,
            "link",
            "add",
            bridge,
            "address",
            BRIDGE_MAC,
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

    /// Kills every process in the lab's namespaces, deletes them and the
    /// workdir. Safe to call on a lab that is half up or already down.
    pub fn teardown(&self) {
        let hosts = self.hosts().into_iter().map(|h| h.0);
        let fleet = [self.gateway_b_ns(), self.nats_ns()];
        for ns in hosts
            .chain(fleet)
            .chain([self.gateway_ns(), self.upstream_ns()])
        {
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
pub(crate) fn veth_pair(a: [&str; 4], b: [&str; 4]) -> Result<()> {
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

pub(crate) fn ip(args: &[&str]) -> Result<()> {
    run_quiet(Command::new("ip").args(args)).map(drop)
}

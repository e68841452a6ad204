//! siem-sensor's test lab, shared by `cargo xtask` (demo, bench, install)
//! and the live integration tests: network namespaces joined by veth pairs
//! ([`Lab`]), a Kong-like gateway and an upstream served by nginx
//! (`nginx.rs`), the gateway's consumers ([`consumers`]), labeled traffic
//! scenarios played by real clients ([`scenarios`], Lua scripts in `lua/`),
//! a real rsyslog receiver ([`rsyslog`]), a real Alertmanager
//! ([`alertmanager`]), a second gateway node ([`Node`]) and a NATS
//! JetStream server ([`nats`]) for fleet-wide detection, the fleet
//! analyser ([`analyser`]), the sensor as a process
//! ([`sensor`]), staging installs ([`install`]) and generated captures
//! ([`captures`]).

pub mod alertmanager;
pub mod analyser;
pub mod captures;
mod clients;
pub mod consumers;
pub mod fleet;
pub mod h2;
pub mod install;
pub mod load;
pub mod nats;
mod network;
mod nginx;
mod nodes;
pub mod prometheus;
mod raw;
pub mod rsyslog;
pub mod scenarios;
pub mod sensor;
mod sh;

pub use clients::{Listener, PROXY_TLS_PORT};
pub use network::{
    BOTH_LEGS, CLIENT_V4, CLIENT_V6, EXTRA_CLIENTS, GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF,
    GATEWAY_UPSTREAM_V4, GATEWAY_V4, GATEWAY_V6, KONG_ADDRESSES, Lab, PROXY_PORT, UPSTREAM_PORT,
    UPSTREAM_V4, kong_args,
};
pub use nginx::AccessEntry;
pub use nodes::{GATEWAY_B_V4, Node, add_node_b};

/// The request generator of the differential test (`py/requests.py`):
/// odd but valid requests with sockets, hostile segments with scapy.
pub const REQUESTS_PY: &str = include_str!("../py/requests.py");
pub use sh::{run, run_quiet};

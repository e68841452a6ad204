//! The opt-in kernel block of offenders (`--block off|dry-run|on`).
//!
//! An alert of a triggering detector (default: `honeypot` only) about a
//! client IP that was the **packet source** of a request on a handshaken,
//! confirmed flow blocks that address: the kernel programs drop its
//! packets to Kong's proxy ports on ingress until the block's deadline
//! (`sensor_ebpf::block`). Everything else gets advice, never a kernel
//! block: a client a trusted proxy named in `X-Forwarded-For` (blocking
//! the proxy would block everyone behind it), Kong's upstream leg, a
//! credential or a principal. The advice is the Kong containment an
//! operator would run (RUNBOOK.md), carried in the alert's `response`.
//!
//! The rules, the complaints of CrowdSec bouncer users turned around:
//! - **Never the load balancer**: the allow-list always holds Kong's node
//!   addresses, the `--trusted-proxy` ranges and loopback, plus
//!   `--block-allow`; an address on it is never blocked.
//! - **No framing**: only a transaction whose flow's three-way handshake
//!   was seen, and that the server answered or acknowledged, can block
//!   (`Transaction::handshake`, `Transaction::confirmed`): a spoofed or
//!   bad-checksum segment never becomes one.
//! - **TTL** (default 10 min); a repeat offender's grows: the n-th block
//!   of an address within the offence memory (24 h after its last block)
//!   lasts `ttl * 2^(n-1)`, capped at `--block-max-ttl` (default 24 h).
//! - **Overlaps keep the longest**: a new decision for a blocked address
//!   moves its deadline only later, never earlier, and is not a new
//!   offence.
//! - **Exact expiry**: the kernel compares the deadline with
//!   `bpf_ktime_get_boot_ns()` on every packet; the daemon removes expired
//!   entries within a second and records the `unblock`.
//! - **Rate cap**: at most `--block-max-per-minute` new blocks in any 60 s
//!   (a burst of alerts, a framing attempt that got through, cannot fill
//!   the map); extensions do not count.
//! - **Fail-open**: nothing is pinned; the kernel applies blocks only while
//!   the daemon's heartbeat (`ALIVE_UNTIL`, pushed 5 s ahead every second)
//!   is fresh, so a killed sensor's leftover programs (netlink tc filters
//!   outlive the process) block nothing after 5 s; a stopping sensor
//!   clears the maps first.

mod control;
mod engine;
mod policy;
mod table;
#[cfg(test)]
mod tests;

pub use control::{ControlRequest, ControlResponse, client_request, handle, listen, serve};
pub use engine::{BlockCounters, BlockInfo, Blocker, SharedBlocker};
pub use policy::{Clock, Enforcer, Mode, NoEnforcer, OFFENCE_MEMORY, Policy, SystemClock};
pub use table::Table;

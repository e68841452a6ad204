//! Fleet scenarios: attacks spread over the two gateway nodes ([`Node`])
//! so that each node's share stays under the per-node thresholds, which
//! only fleet-wide detection (`siem-sensor fleet`) sees whole. Every
//! scenario uses the sensor's default thresholds (a flood budget of 600
//! requests per 15 s window, a credential spread from 3 addresses).

use std::{
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, anyhow};

use crate::{CLIENT_V4, Lab, Node, consumers::Consumer, scenarios::Expected};

/// The host of the split flood.
pub const FLOOD_SOURCE: &str = CLIENT_V4;

/// Requests the split flood sends to each node: under the default budget
/// of 600 per window on either, 800 in all.
pub const FLOOD_PER_NODE: u32 = 400;

/// The detectors' default tumbling window.
const WINDOW: Duration = Duration::from_secs(15);

/// The consumer whose key the cross-node scenario shares.
pub const SHARED_KEY_OWNER: &str = "dave";

/// Sleeps, if need be, until at least `room` is left of the current
/// tumbling window of length `window` (windows start at multiples of it
/// since the epoch, as the detectors' do).
pub fn wait_for_room(window: Duration, room: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_nanos(u64::try_from(now.as_nanos() % window.as_nanos()).unwrap_or(0));
    if window - into < room {
        thread::sleep(window - into + Duration::from_millis(300));
    }
}

/// The split flood: [`FLOOD_PER_NODE`] requests from [`FLOOD_SOURCE`] to
/// each node at once (ab, 4 at a time each), inside one window.
///
/// # Errors
/// ab failed.
pub fn split_flood(lab: &Lab) -> Result<()> {
    wait_for_room(WINDOW, Duration::from_secs(6));
    thread::scope(|s| {
        let runs: Vec<_> = Node::ALL
            .map(|node| s.spawn(move || node.ab(lab, FLOOD_SOURCE, FLOOD_PER_NODE, 4, "/hello")))
            .into_iter()
            .collect();
        runs.into_iter()
            .try_for_each(|r| r.join().map_err(|_| anyhow!("ab panicked"))?)
    })
}

/// The hosts that use [`SHARED_KEY_OWNER`]'s key, and the node each
/// reaches: two on node A, two on node B.
pub fn shared_key_hosts() -> [(String, Node); 4] {
    [
        (Lab::extra_client(3), Node::A),
        (Lab::extra_client(4), Node::A),
        (Lab::extra_client(5), Node::B),
        (Lab::extra_client(6), Node::B),
    ]
}

/// One key from four addresses, two per node (curl, 2 requests each):
/// "2 addresses" on either node, 4 fleet-wide.
///
/// # Errors
/// curl failed.
pub fn shared_key(lab: &Lab) -> Result<()> {
    let header = Consumer::named(SHARED_KEY_OWNER).header();
    for (host, node) in shared_key_hosts() {
        node.curl(lab, &host, &["-H", &header], "/api/orders", 2)?;
    }
    Ok(())
}

/// A hit on a decoy route of node B only (`--decoy /admin/**`): a
/// single-node alert, which the fleet raises too, naming node B alone.
///
/// # Errors
/// curl failed.
pub fn decoy_on_b(lab: &Lab) -> Result<()> {
    Node::B.curl(lab, &Lab::extra_client(11), &[], "/admin/login", 1)
}

/// The fleet alerts [`split_flood`] and [`shared_key`] raise (and no
/// sensor raises alone).
pub fn cross_node_alerts() -> Vec<Expected> {
    vec![
        ("request_flood", FLOOD_SOURCE.to_owned()),
        ("credential_spread", SHARED_KEY_OWNER.to_owned()),
    ]
}

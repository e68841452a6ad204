use super::*;
use std::net::IpAddr;

use crate::identity::{Principal, PrincipalSource};

const MS: u64 = 1_000_000;
const T0: u64 = 1_795_219_200_000_000_000;

/// Kong's address in these tests.
const KONG: &str = "10.77.1.1";

fn joiner() -> Joiner {
    Joiner::new(JoinConfig {
        topology: Topology {
            kong_addresses: vec![format!("{KONG}/32").parse().unwrap()],
            ..Topology::default()
        },
        ..JoinConfig::default()
    })
}

/// The client leg of request `id` from `ip`: sent at T0, answered `status`,
/// ended 30 ms later.
fn client(id: &str, ip: &str, status: u16) -> Box<Transaction> {
    let mut t = Box::new(Transaction::sample(ip, T0, status));
    t.request_id = Some(id.into());
    t.end(T0 + 30 * MS);
    t
}

/// The upstream leg of request `id` for client `ip`, as Kong names the
/// consumer: sent at T0 + 5 ms, ended 20 ms later.
fn upstream(id: &str, ip: &str) -> Box<Transaction> {
    let mut t = Box::new(Transaction::sample(ip, T0 + 5 * MS, 200));
    t.leg = Leg::Upstream;
    t.server_port = 8080;
    t.request_id = Some(id.into());
    t.consumer = Some("dave".into());
    t.principal = Principal::new(b"dave", PrincipalSource::KongConsumer);
    t.end(T0 + 25 * MS);
    t
}

fn drain(j: &mut Joiner) -> Vec<Request> {
    j.drain().collect()
}

#[test]
fn both_legs_make_one_counted_record_enriched_from_both() {
    let mut j = joiner();
    j.push(upstream("r1", "192.0.2.7"), T0 + 25 * MS);
    assert!(drain(&mut j).is_empty(), "the upstream leg waits");
    let mut c = client("r1", "192.0.2.7", 200);
    c.principal = Principal::new(b"claimed", PrincipalSource::BasicUser);
    j.push(c, T0 + 30 * MS);
    let out = drain(&mut j);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert!(r.counted);
    assert_eq!(r.tx.leg, Leg::Client);
    assert_eq!(r.tx.consumer.as_deref(), Some("dave"));
    assert_eq!(
        r.tx.principal.as_ref().unwrap().source,
        PrincipalSource::KongConsumer
    );
    assert_eq!(r.tx.upstream.as_ref().unwrap().server_port, 8080);
    assert_eq!(
        (
            r.tx.latencies.request,
            r.tx.latencies.proxy,
            r.tx.latencies.kong
        ),
        (Some(30.0), Some(20.0), Some(10.0))
    );
    j.finish();
    assert!(drain(&mut j).is_empty());
    assert_eq!(j.counters().joined, 1);
}

/// A client that sends `X-Consumer-*` itself cannot name the consumer: on
/// a route without authentication Kong passes the claim on, so the
/// upstream leg's consumer, consumer credential and consumer principal
/// are left out and the request counted; the client's own credential and
/// principal stay. A client that claims nothing keeps Kong's consumer.
#[test]
fn a_consumer_the_client_claimed_itself_is_not_believed() {
    let key = |digit: &str| {
        digit
            .repeat(32)
            .parse::<crate::identity::Fingerprint>()
            .unwrap()
    };
    let mut j = joiner();
    for (id, claims) in [("r1", true), ("r2", false)] {
        let mut u = upstream(id, "192.0.2.7");
        u.kong_credential = Some(key("d"));
        u.credentials.push(key("d"));
        u.credentials.push(key("c"));
        j.push(u, T0 + 25 * MS);
        let mut c = client(id, "192.0.2.7", 200);
        c.claims_consumer = claims;
        c.principal = Principal::new(b"mallory", PrincipalSource::BasicUser);
        c.credentials.push(key("c"));
        j.push(c, T0 + 30 * MS);
    }
    let out = drain(&mut j);
    let claimed = &out[0].tx;
    assert_eq!(
        (claimed.consumer.as_deref(), claimed.consumer_id.as_deref()),
        (None, None)
    );
    assert_eq!(claimed.kong_credential, None);
    assert_eq!(claimed.credentials.as_slice(), [key("c")]);
    let principal = claimed.principal.as_ref().unwrap();
    assert_eq!(
        (principal.name.as_str(), principal.source),
        ("mallory", PrincipalSource::BasicUser)
    );
    assert!(out[0].counted, "the request itself still counts");
    let believed = &out[1].tx;
    assert_eq!(believed.consumer.as_deref(), Some("dave"));
    assert_eq!(believed.kong_credential, Some(key("d")));
    assert_eq!(believed.credentials.len(), 2);
    assert_eq!((j.counters().joined, j.counters().consumer_claimed), (2, 1));
}

#[test]
fn kongs_rejections_go_on_alone_after_the_wait() {
    let mut j = joiner();
    // Upstream legs arrive (another request's): client legs wait for theirs.
    j.push(upstream("r1", "192.0.2.7"), T0 + 25 * MS);
    j.push(client("r1", "192.0.2.7", 200), T0 + 30 * MS);
    assert_eq!(drain(&mut j).len(), 1);
    j.push(client("r2", "192.0.2.8", 401), T0 + 30 * MS);
    j.expire(T0 + 30 * MS + 400 * MS);
    assert!(drain(&mut j).is_empty());
    j.expire(T0 + 30 * MS + 500 * MS);
    let out = drain(&mut j);
    assert_eq!(
        (out.len(), out[0].counted, out[0].tx.status),
        (1, true, Some(401))
    );
    assert_eq!(out[0].tx.latencies.request, Some(30.0));
    assert_eq!(j.counters().client_only, 1);
}

#[test]
fn where_no_upstream_leg_arrives_client_legs_go_on_at_once() {
    let mut j = joiner();
    j.push(client("r6", "192.0.2.8", 200), T0 + 30 * MS);
    let out = drain(&mut j);
    assert_eq!((out.len(), out[0].counted), (1, true));
    assert_eq!(j.waiting(), 0);
    // Its upstream leg, should it come after all, does not count again.
    j.push(upstream("r6", "192.0.2.8"), T0 + 40 * MS);
    let out = drain(&mut j);
    assert_eq!((out.len(), out[0].counted), (1, false));
    assert_eq!((j.counters().client_only, j.counters().late), (1, 1));
}

/// Legs from two sources (the TLS tap's ring and tc's).
fn two_sources() -> Joiner {
    Joiner::new(JoinConfig {
        two_sources: true,
        ..JoinConfig::default()
    })
}

#[test]
fn from_two_sources_the_first_client_leg_waits_for_an_upstream_leg_read_after_it() {
    let mut j = two_sources();
    j.push(client("r7", "192.0.2.8", 200), T0 + 30 * MS);
    assert!(drain(&mut j).is_empty());
    j.push(upstream("r7", "192.0.2.8"), T0 + 31 * MS);
    let out = drain(&mut j);
    assert_eq!((out.len(), out[0].counted), (1, true));
    assert_eq!(out[0].tx.upstream.as_ref().unwrap().server_port, 8080);
    assert_eq!(j.counters().joined, 1);
}

#[test]
fn from_two_sources_client_legs_go_on_at_once_once_no_upstream_leg_came() {
    let mut j = two_sources();
    j.push(client("r5", "192.0.2.8", 200), T0 + 30 * MS);
    assert_eq!(j.waiting(), 1);
    // No upstream leg for longer than the wait: the next one goes on at
    // once, after the one still waiting from the start.
    j.push(client("r6", "192.0.2.8", 200), T0 + 6_030 * MS);
    let out = drain(&mut j);
    assert_eq!(
        out.iter()
            .map(|r| (r.tx.request_id.as_ref().unwrap().to_string(), r.counted))
            .collect::<Vec<_>>(),
        [("r5".to_owned(), true), ("r6".to_owned(), true)]
    );
    assert_eq!((j.waiting(), j.counters().client_only), (0, 2));
}

#[test]
fn upstream_only_legs_count_with_the_client_kong_named() {
    let mut j = joiner();
    j.push(upstream("r3", "192.0.2.9"), T0);
    j.finish();
    let out = drain(&mut j);
    assert_eq!(out.len(), 1);
    assert!(out[0].counted);
    assert_eq!(out[0].tx.client_ip.to_string(), "192.0.2.9");
    assert_eq!(out[0].tx.latencies.proxy, Some(20.0));
    // Kong's own request (no client named: its own address) is not counted.
    j.push(upstream("r4", KONG), T0);
    j.finish();
    let out = drain(&mut j);
    assert!(!out[0].counted);
    assert_eq!(j.counters().kong_own, 1);
}

#[test]
fn a_late_leg_is_written_but_not_counted_again() {
    let mut j = joiner();
    j.push(upstream("r5", "192.0.2.10"), T0);
    j.expire(T0 + 60_000 * MS);
    j.push(client("r5", "192.0.2.10", 200), T0 + 61_000 * MS);
    let out = drain(&mut j);
    assert_eq!(
        out.iter().map(|r| r.counted).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(j.counters().late, 1);
}

#[test]
fn legs_without_an_id_pass_at_once() {
    let mut j = joiner();
    let mut c = client("x", "192.0.2.11", 200);
    c.request_id = None;
    j.push(c, T0);
    assert_eq!(drain(&mut j).len(), 1);
    assert_eq!(j.counters().client_without_id, 1);
}

#[test]
fn waiting_is_bounded() {
    let mut j = Joiner::new(JoinConfig {
        max_waiting: 3,
        ..JoinConfig::default()
    });
    for i in 0..10 {
        j.push(upstream(&format!("r{i}"), "192.0.2.12"), T0 + i * MS);
        assert!(j.waiting() <= 3);
    }
    assert_eq!(j.counters().overflow, 7);
    assert_eq!(drain(&mut j).len(), 7);
}

#[test]
fn joined_legs_leave_the_wait_queue_and_waiting_ones_still_expire_in_order() {
    let mut j = joiner();
    // Two upstream legs that never meet their client leg, around 20,000
    // requests whose legs join at once.
    j.push(upstream("lone-a", "192.0.2.20"), T0);
    for i in 0..20_000u64 {
        let id = format!("r{i}");
        j.push(upstream(&id, "192.0.2.21"), T0 + MS + i);
        j.push(client(&id, "192.0.2.21", 200), T0 + MS + i);
        assert!(j.order[1].len() <= 2 * j.waiting() + STALE_SLACK + 1);
    }
    j.push(upstream("lone-b", "192.0.2.22"), T0 + 2 * MS);
    assert_eq!(j.counters().joined, 20_000);
    assert_eq!(drain(&mut j).len(), 20_000);
    assert_eq!(j.waiting(), 2);
    // Each goes on alone at its own deadline, before the end of input.
    let wait = JoinConfig::default().wait_ns;
    j.expire(T0 + wait);
    let first: Vec<_> = drain(&mut j).into_iter().map(|r| r.tx.client_ip).collect();
    assert_eq!(first, ["192.0.2.20".parse::<IpAddr>().unwrap()]);
    j.expire(T0 + 2 * MS + wait);
    let second: Vec<_> = drain(&mut j).into_iter().map(|r| r.tx.client_ip).collect();
    assert_eq!(second, ["192.0.2.22".parse::<IpAddr>().unwrap()]);
    assert_eq!(j.counters().upstream_only, 2);
    assert!(j.order.iter().all(VecDeque::is_empty));
}

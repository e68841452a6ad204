use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::*;
use crate::{
    detect::{
        Action, Alert, BlockEventKind, Detector, Evidence, Subject, UnblockReason, alert::Window,
    },
    http::Transaction,
    identity::Leg,
};

const S: u64 = 1_000_000_000;
/// Boot and wall clocks differ by this much in the tests.
const WALL_OFFSET: u64 = 1_700_000_000 * S;

#[derive(Clone, Default)]
struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> (u64, u64) {
        let boot = self.0.load(Ordering::SeqCst);
        (boot, boot + WALL_OFFSET)
    }
}

/// The kernel maps: address -> deadline, active count, liveness deadline.
type Maps = (BTreeMap<IpAddr, u64>, u64, u64);

/// The kernel maps as a table.
#[derive(Clone, Default)]
struct FakeMaps(Arc<Mutex<Maps>>);

impl Enforcer for FakeMaps {
    fn insert(&mut self, ip: IpAddr, deadline_ns: u64) -> std::io::Result<()> {
        self.0.lock().unwrap().0.insert(ip, deadline_ns);
        Ok(())
    }
    fn remove(&mut self, ip: IpAddr) -> std::io::Result<()> {
        self.0.lock().unwrap().0.remove(&ip);
        Ok(())
    }
    fn state(&mut self, active: u64, alive_until_ns: u64) -> std::io::Result<()> {
        let mut m = self.0.lock().unwrap();
        (m.1, m.2) = (active, alive_until_ns);
        Ok(())
    }
}

impl FakeMaps {
    /// Whether the kernel check would drop a packet from `ip` at `now`.
    fn drops(&self, ip: &str, now: u64) -> bool {
        let m = self.0.lock().unwrap();
        m.1 > 0 && now < m.2 && m.0.get(&ip.parse().unwrap()).is_some_and(|&d| now < d)
    }
}

fn policy(mode: Mode) -> Policy {
    let mut allow = Policy::loopback();
    allow.push("10.0.0.1/32".parse().unwrap()); // a Kong node
    allow.push("192.0.2.0/24".parse().unwrap()); // trusted proxies
    Policy {
        mode,
        detectors: vec![Detector::Honeypot],
        ttl: Duration::from_secs(3),
        max_ttl: Duration::from_secs(10),
        max_per_minute: 2,
        allow,
    }
}

fn setup(mode: Mode) -> (Blocker, FakeClock, FakeMaps) {
    let clock = FakeClock::default();
    clock.advance(Duration::from_secs(100));
    let maps = FakeMaps::default();
    let b = Blocker::new(
        policy(mode),
        Box::new(maps.clone()),
        Box::new(clock.clone()),
    );
    (b, clock, maps)
}

fn honeypot(ip: &str) -> Alert {
    let mut a = Alert::new(
        Detector::Honeypot,
        Subject::Ip(ip.parse().unwrap()),
        1,
        Window { start: 1, end: 1 },
        [("requests", 1)].into(),
        vec![Evidence::from(&Transaction::sample(ip, 1, 404))],
    );
    a.id = "0123456789abcdef".into();
    a
}

fn decide(b: &mut Blocker, tx: &Transaction, ip: &str) -> (Action, usize) {
    let (r, events) = b.decide(tx, &honeypot(ip));
    (r.unwrap().action, events.len())
}

#[test]
fn a_direct_handshaken_offender_is_blocked_for_the_ttl_then_unblocked() {
    let (mut b, clock, maps) = setup(Mode::On);
    let tx = Transaction::sample("203.0.113.7", 1, 404);
    let (r, events) = b.decide(&tx, &honeypot("203.0.113.7"));
    let r = r.unwrap();
    assert_eq!(r.action, Action::Blocked);
    assert_eq!((r.ttl_s, r.offence), (Some(3), Some(1)));
    assert_eq!(r.kong[0].to_string(), "ip-restriction deny 203.0.113.7");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, BlockEventKind::Block);
    let now = clock.now().0;
    assert!(maps.drops("203.0.113.7", now));
    assert!(!maps.drops("203.0.113.8", now));
    // Exact to the deadline: dropped just before, passed at it.
    assert!(maps.drops("203.0.113.7", now + 3 * S - 1));
    assert!(!maps.drops("203.0.113.7", now + 3 * S));
    clock.advance(Duration::from_secs(2));
    assert!(b.tick().is_empty());
    clock.advance(Duration::from_secs(1));
    let ended = b.tick();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].reason, Some(UnblockReason::Expired));
    assert!(maps.0.lock().unwrap().0.is_empty());
    assert_eq!(maps.0.lock().unwrap().1, 0);
    let c = b.counters();
    assert_eq!(c.blocks[&Detector::Honeypot], 1);
    assert_eq!(c.unblocks[&Detector::Honeypot][&UnblockReason::Expired], 1);
}

#[test]
fn a_client_named_by_a_trusted_proxy_is_advised_never_blocked() {
    let (mut b, clock, maps) = setup(Mode::On);
    let mut tx = Transaction::sample("198.51.100.9", 1, 404);
    tx.client_is_peer = false; // from X-Forwarded-For behind 192.0.2.10
    tx.consumer = Some("dave".into());
    let (r, events) = b.decide(&tx, &honeypot("198.51.100.9"));
    let r = r.unwrap();
    assert_eq!(r.action, Action::Advised);
    assert!(events.is_empty());
    let advice: Vec<String> = r.kong.iter().map(ToString::to_string).collect();
    assert_eq!(
        advice,
        ["ip-restriction deny 198.51.100.9", "acl deny group dave"]
    );
    assert!(!maps.drops("198.51.100.9", clock.now().0));
    // Kong's upstream leg names a client too: never a packet source.
    let mut upstream = Transaction::sample("198.51.100.10", 1, 404);
    upstream.leg = Leg::Upstream;
    assert_eq!(
        decide(&mut b, &upstream, "198.51.100.10"),
        (Action::Advised, 0)
    );
}

#[test]
fn allow_listed_and_unconfirmed_sources_are_never_blocked() {
    let (mut b, clock, maps) = setup(Mode::On);
    for ip in ["10.0.0.1", "192.0.2.77", "127.0.0.1", "::1"] {
        let tx = Transaction::sample(ip, 1, 404);
        assert_eq!(decide(&mut b, &tx, ip), (Action::AllowListed, 0), "{ip}");
    }
    let mut forged = Transaction::sample("203.0.113.9", 1, 404);
    forged.handshake = false;
    assert_eq!(
        decide(&mut b, &forged, "203.0.113.9"),
        (Action::Unconfirmed, 0)
    );
    let mut midstream = Transaction::sample("203.0.113.9", 1, 404);
    midstream.midstream = true;
    assert_eq!(
        decide(&mut b, &midstream, "203.0.113.9"),
        (Action::Unconfirmed, 0)
    );
    assert!(maps.0.lock().unwrap().0.is_empty());
    assert!(!maps.drops("203.0.113.9", clock.now().0));
}

#[test]
fn dry_run_decides_and_records_but_writes_nothing() {
    let (mut b, clock, maps) = setup(Mode::DryRun);
    let tx = Transaction::sample("203.0.113.7", 1, 404);
    let (r, events) = b.decide(&tx, &honeypot("203.0.113.7"));
    assert_eq!(r.unwrap().action, Action::DryRun);
    assert!(!events[0].enforced);
    assert!(maps.0.lock().unwrap().0.is_empty());
    assert_eq!(b.list().len(), 1);
    clock.advance(Duration::from_secs(3));
    assert_eq!(b.tick().len(), 1);
    assert!(b.list().is_empty());
}

#[test]
fn overlaps_keep_the_longest_and_repeat_offenders_double_up_to_the_cap() {
    let (mut b, clock, maps) = setup(Mode::On);
    let tx = Transaction::sample("203.0.113.7", 1, 404);
    decide(&mut b, &tx, "203.0.113.7");
    let first = maps.0.lock().unwrap().0[&"203.0.113.7".parse().unwrap()];
    // A second decision 1 s later: the later deadline wins, same offence.
    clock.advance(Duration::from_secs(1));
    let (r, _) = b.decide(&tx, &honeypot("203.0.113.7"));
    assert_eq!(r.unwrap().offence, Some(1));
    let second = maps.0.lock().unwrap().0[&"203.0.113.7".parse().unwrap()];
    assert_eq!(second, first + S);
    clock.advance(Duration::from_secs(3));
    b.tick();
    // Offences 2, 3, 4: 6 s, 10 s (capped), 10 s.
    for want in [6, 10, 10] {
        let (r, _) = b.decide(&tx, &honeypot("203.0.113.7"));
        assert_eq!(r.unwrap().ttl_s, Some(want));
        // Past the block, and past the rate cap's minute.
        clock.advance(Duration::from_secs(60));
        assert_eq!(b.tick().len(), 1);
    }
    assert_eq!(policy(Mode::On).ttl_of(40), Duration::from_secs(10));
}

#[test]
fn new_blocks_are_capped_per_minute_extensions_are_not() {
    let (mut b, clock, _maps) = setup(Mode::On);
    for ip in ["203.0.113.1", "203.0.113.2"] {
        let tx = Transaction::sample(ip, 1, 404);
        assert_eq!(decide(&mut b, &tx, ip).0, Action::Blocked);
    }
    let tx = Transaction::sample("203.0.113.3", 1, 404);
    assert_eq!(decide(&mut b, &tx, "203.0.113.3").0, Action::RateCapped);
    let again = Transaction::sample("203.0.113.1", 1, 404);
    assert_eq!(decide(&mut b, &again, "203.0.113.1").0, Action::Blocked);
    clock.advance(Duration::from_secs(60));
    assert_eq!(decide(&mut b, &tx, "203.0.113.3").0, Action::Blocked);
}

#[test]
fn stop_and_removal_leave_nothing_and_say_so() {
    let (mut b, clock, maps) = setup(Mode::On);
    for ip in ["203.0.113.1", "2001:db8::1"] {
        let tx = Transaction::sample(ip, 1, 404);
        decide(&mut b, &tx, ip);
    }
    assert_eq!(b.remove(Some("2001:db8::1".parse().unwrap())), 1);
    let removed = b.tick();
    assert_eq!(removed[0].reason, Some(UnblockReason::Removed));
    assert_eq!(maps.0.lock().unwrap().1, 1);
    let stopped = b.stop();
    assert_eq!(stopped[0].reason, Some(UnblockReason::Stopped));
    let m = maps.0.lock().unwrap();
    assert!(m.0.is_empty());
    assert_eq!((m.1, m.2), (0, 0));
    drop(m);
    assert!(!maps.drops("203.0.113.1", clock.now().0));
}

#[test]
fn a_dead_daemon_blocks_nothing_after_the_heartbeat_grace() {
    let (clock, maps) = (FakeClock::default(), FakeMaps::default());
    let long = Policy {
        ttl: Duration::from_secs(600),
        ..policy(Mode::On)
    };
    let mut b = Blocker::new(long, Box::new(maps.clone()), Box::new(clock.clone()));
    let tx = Transaction::sample("203.0.113.7", 1, 404);
    decide(&mut b, &tx, "203.0.113.7");
    let now = clock.now().0;
    assert!(maps.drops("203.0.113.7", now));
    // No tick for 5 s (killed): the kernel check passes everything.
    assert!(!maps.drops("203.0.113.7", now + sensor_ebpf::block::HEARTBEAT_GRACE_NS));
}

#[test]
fn off_and_other_detectors_get_no_response() {
    let (mut b, _, _) = setup(Mode::Off);
    let tx = Transaction::sample("203.0.113.7", 1, 404);
    assert_eq!(b.decide(&tx, &honeypot("203.0.113.7")).0, None);
    let (mut b, _, _) = setup(Mode::On);
    let mut flood = honeypot("203.0.113.7");
    flood.detector = Detector::RequestFlood;
    assert_eq!(b.decide(&tx, &flood).0, None);
}

//! Positive, negative and near-threshold cases for every detector, on
//! synthetic transactions.

use std::net::IpAddr;

use super::*;
use crate::identity::{FingerprintKey, Principal, PrincipalSource};

const S: u64 = 1_000_000_000;
/// A window start: 2026-11-21T00:00:00Z, a multiple of 15 s.
const T0: u64 = 1_795_219_200 * S;

fn tx(ip: &str, time_ns: u64, status: u16) -> Transaction {
    Transaction::sample(ip, time_ns, status)
}

fn run(
    config: DetectConfig,
    txs: impl IntoIterator<Item = Transaction>,
) -> (Vec<Alert>, DetectCounters) {
    let mut d = Detectors::new(config).unwrap();
    let mut alerts = Vec::new();
    for t in txs {
        alerts.extend(d.transaction(&t));
    }
    d.finish(false);
    (alerts, d.counters())
}

fn of(alerts: &[Alert], detector: Detector) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.detector == detector).collect()
}

/// `n` transactions from `ip` spread over the first 10 s of window `w`.
fn burst(ip: &str, w: u64, n: u64, status: u16) -> Vec<Transaction> {
    (0..n)
        .map(|i| tx(ip, T0 + w * 15 * S + i * (10 * S / n.max(1)), status))
        .collect()
}

#[test]
fn a_flood_is_one_ip_over_its_budget_in_a_window() {
    let (alerts, _) = run(DetectConfig::default(), burst("192.0.2.1", 0, 601, 200));
    let flood = of(&alerts, Detector::RequestFlood);
    assert_eq!(flood.len(), 1);
    assert_eq!(flood[0].client_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(
        (flood[0].counts["requests"], flood[0].counts["budget"]),
        (601, 600)
    );
    assert_eq!(
        (flood[0].window.start, flood[0].window.end),
        (T0, T0 + 15 * S)
    );
    assert_eq!(flood[0].evidence.len(), alert::MAX_EVIDENCE);
}

#[test]
fn exactly_the_budget_is_not_a_flood_and_windows_do_not_add_up() {
    let mut txs = burst("192.0.2.1", 0, 600, 200);
    txs.extend(burst("192.0.2.1", 1, 600, 200));
    let (alerts, _) = run(DetectConfig::default(), txs);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn a_long_flood_is_one_episode_updated_as_it_doubles_then_resolved() {
    let mut txs = Vec::new();
    for w in 0..22 {
        txs.extend(burst("192.0.2.1", w, 601, 200)); // a flood in every window for 5.5 min
    }
    // Then quiet: a request from elsewhere 10 min later moves the clock.
    txs.push(tx("192.0.2.99", T0 + 22 * 15 * S + 600 * S, 200));
    let mut d = Detectors::new(DetectConfig::default()).unwrap();
    let mut alerts = Vec::new();
    for t in txs {
        alerts.extend(d.transaction(&t));
        d.advance(t.time_ns);
        alerts.extend(d.transitions());
    }
    let flood = of(&alerts, Detector::RequestFlood);
    let states: Vec<_> = flood.iter().map(|a| (a.state, a.extent)).collect();
    // Raised in each of 22 windows with 601 requests: updates at 2, 4, 8
    // and 16 windows' worth, then resolved 5 min after the last raise.
    assert_eq!(
        states,
        [
            (State::Firing, 601),
            (State::Updated, 1202),
            (State::Updated, 2404),
            (State::Updated, 4808),
            (State::Updated, 9616),
            (State::Resolved, 9616),
        ]
    );
    assert!(
        flood
            .iter()
            .all(|a| a.id == flood[0].id && a.episode_start_ns == flood[0].time_ns)
    );
    let last_raise = flood[4].time_ns.max(T0 + 21 * 15 * S);
    assert!(flood[5].time_ns >= last_raise + 300 * S);
    assert_eq!(
        flood.iter().map(|a| a.suppressed).sum::<u64>(),
        22 - 5,
        "the other raises are folded in"
    );
    assert_eq!(flood[0].runbook_url, format!("{RUNBOOK_URL}#request_flood"));
    let c = d.counters();
    assert_eq!(c.suppressed, 17);
    assert_eq!(c.transitions[&State::Updated], 4);
}

#[test]
fn a_spreading_key_updates_with_each_new_address_and_stays_open_while_used() {
    let mut d = Detectors::new(DetectConfig::default()).unwrap();
    let mut alerts = Vec::new();
    let use_key = |d: &mut Detectors, alerts: &mut Vec<Alert>, ip: &str, t: u64| {
        let t = with_credential(tx(ip, t, 200), 7, "dave");
        alerts.extend(d.transaction(&t));
        d.advance(t.time_ns);
        alerts.extend(d.transitions());
    };
    for (i, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
        .iter()
        .enumerate()
    {
        use_key(&mut d, &mut alerts, ip, T0 + i as u64 * S);
    }
    // Still used from the first address for 10 min: no transition; open
    // while the others stay within the 5 min spread window.
    for m in 1..=10 {
        use_key(&mut d, &mut alerts, "192.0.2.1", T0 + m * 60 * S);
    }
    // Then quiet.
    use_key(&mut d, &mut alerts, "192.0.2.50", T0 + 20 * 60 * S);
    let spread = of(&alerts, Detector::CredentialSpread);
    let states: Vec<_> = spread.iter().map(|a| (a.state, a.extent)).collect();
    assert_eq!(
        states,
        [
            (State::Firing, 3),
            (State::Updated, 4),
            (State::Resolved, 4)
        ]
    );
    // The last use that still saw 3 addresses (at 5 min), plus 5 min.
    assert_eq!(spread[2].time_ns, T0 + 5 * 60 * S + 300 * S);
}

#[test]
fn new_decoy_paths_update_a_honeypot_episode_repeats_do_not() {
    let config = DetectConfig {
        decoys: vec!["/admin/**".into()],
        ..DetectConfig::default()
    };
    let hit = |path: &str, t: u64| {
        let mut t = tx("192.0.2.9", t, 404);
        t.path = path.into();
        t.route = path.split('?').next().unwrap().into();
        t
    };
    let txs = [
        hit("/admin/login", T0),
        hit("/admin/login?x=1", T0 + S),
        hit("/admin/users", T0 + 2 * S),
    ];
    let (alerts, c) = run(config, txs);
    let states: Vec<_> = alerts.iter().map(|a| (a.state, a.extent)).collect();
    assert_eq!(states, [(State::Firing, 1), (State::Updated, 2)]);
    assert_eq!(c.suppressed, 1);
}

#[test]
fn an_error_scan_is_unusual_at_the_floor_and_ratio() {
    let mut txs = burst("198.51.100.7", 0, 20, 404);
    txs.extend(burst("198.51.100.8", 0, 19, 401)); // one short
    let (alerts, _) = run(DetectConfig::default(), txs);
    let errors = of(&alerts, Detector::ErrorRate);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].client_ip, Some("198.51.100.7".parse().unwrap()));
    assert_eq!(
        (errors[0].counts["not_found"], errors[0].counts["errors"]),
        (20, 20)
    );
}

#[test]
fn one_scanner_does_not_raise_the_bar_for_the_next() {
    // A small population, where the 99th percentile is the maximum.
    let mut txs = burst("192.0.2.7", 0, 150, 404);
    txs.extend(burst("192.0.2.1", 0, 20, 200));
    txs.extend(burst("192.0.2.8", 1, 40, 404));
    txs.extend(burst("192.0.2.1", 1, 20, 200));
    txs.sort_by_key(|t| t.time_ns);
    let (alerts, _) = run(DetectConfig::default(), txs);
    let ips: Vec<_> = of(&alerts, Detector::ErrorRate)
        .iter()
        .map(|a| a.client_ip.unwrap().to_string())
        .collect();
    assert_eq!(ips, ["192.0.2.7", "192.0.2.8"]);
}

#[test]
fn errors_below_the_ratio_are_not_unusual() {
    let mut txs = burst("198.51.100.7", 0, 41, 200);
    txs.extend(burst("198.51.100.7", 0, 40, 500)); // 40 of 81: 0.49
    let (alerts, _) = run(DetectConfig::default(), txs);
    assert!(of(&alerts, Detector::ErrorRate).is_empty());
}

#[test]
fn a_noisy_population_raises_the_error_threshold() {
    let mut txs = Vec::new();
    for w in 0..4 {
        // Every window, 100 clients each get 15 errors: the baseline is 15,
        // so an IP needs 45 to stand out.
        for c in 0..100 {
            txs.extend(burst(&format!("10.1.0.{c}"), w, 15, 404));
        }
    }
    txs.extend(burst("203.0.113.5", 4, 44, 404));
    txs.extend(burst("203.0.113.6", 4, 45, 404));
    let (alerts, _) = run(DetectConfig::default(), txs);
    let errors = of(&alerts, Detector::ErrorRate);
    let ips: Vec<_> = errors
        .iter()
        .map(|a| a.client_ip.unwrap().to_string())
        .collect();
    assert_eq!(ips, ["203.0.113.6"]);
    assert_eq!(errors[0].counts["threshold"], 45);
}

fn with_credential(mut t: Transaction, fp: u8, principal: &str) -> Transaction {
    t.credentials = smallvec::smallvec![FingerprintKey::from_bytes([9; 32]).fingerprint(&[fp])];
    t.principal = Principal::new(principal.as_bytes(), PrincipalSource::BasicUser);
    t
}

/// The principal's name.
fn who(p: &Option<Principal>) -> Option<&str> {
    p.as_ref().map(|p| p.name.as_str())
}

#[test]
fn one_credential_from_three_ips_within_five_minutes() {
    let txs = [
        with_credential(tx("192.0.2.1", T0, 200), 1, "alice"),
        with_credential(tx("192.0.2.2", T0 + 60 * S, 200), 1, "alice"),
        with_credential(tx("192.0.2.2", T0 + 61 * S, 200), 1, "alice"),
        with_credential(tx("192.0.2.3", T0 + 299 * S, 200), 1, "alice"),
    ];
    let (alerts, _) = run(DetectConfig::default(), txs);
    let spread = of(&alerts, Detector::CredentialSpread);
    assert_eq!(spread.len(), 1);
    assert_eq!(who(&spread[0].principal), Some("alice"));
    let ips: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .map(|s| s.parse().unwrap())
        .into();
    assert_eq!(spread[0].ips, ips);
    let json = serde_json::to_value(spread[0]).unwrap();
    assert_eq!(json["credential"].as_str().unwrap().len(), 32);
}

#[test]
fn ips_spread_over_more_than_the_window_or_refused_do_not_count() {
    let txs = [
        with_credential(tx("192.0.2.1", T0, 200), 1, "alice"),
        with_credential(tx("192.0.2.2", T0 + 200 * S, 200), 1, "alice"),
        with_credential(tx("192.0.2.3", T0 + 301 * S, 200), 1, "alice"), // .1 has aged out
        with_credential(tx("192.0.2.4", T0 + 302 * S, 401), 1, "alice"), // refused
        with_credential(tx("192.0.2.5", T0 + 303 * S, 200), 2, "bob"),   // another credential
    ];
    let (alerts, _) = run(DetectConfig::default(), txs);
    assert!(
        of(&alerts, Detector::CredentialSpread).is_empty(),
        "{alerts:?}"
    );
}

#[test]
fn kongs_authenticated_credential_counts_once_for_the_key_presented() {
    // Joined requests: the key the client presented and the credential
    // Kong authenticated (X-Credential-Identifier) are one credential.
    let key = FingerprintKey::from_bytes([9; 32]);
    let joined = |ip: &str, t: u64| {
        let mut t = tx(ip, t, 200);
        let kong = key.fingerprint(b"kong-credential-id");
        t.credentials = smallvec::smallvec![key.fingerprint(b"the-key"), kong];
        t.kong_credential = Some(kong);
        t
    };
    let txs = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .iter()
        .enumerate()
        .map(|(i, ip)| joined(ip, T0 + i as u64 * S));
    let (alerts, _) = run(DetectConfig::default(), txs);
    assert_eq!(
        of(&alerts, Detector::CredentialSpread).len(),
        1,
        "{alerts:?}"
    );
}

#[test]
fn kongs_consumer_replaces_a_claimed_principal() {
    // Joined requests: the first claims a Basic user, later ones carry
    // Kong's consumer (their upstream leg was seen).
    let claimed = |ip: &str, time_ns: u64| with_credential(tx(ip, time_ns, 200), 3, "mallory");
    let named = |ip: &str, time_ns: u64| {
        let mut t = claimed(ip, time_ns);
        t.consumer = Some("dave".into());
        t.principal = Principal::new(b"dave", PrincipalSource::KongConsumer);
        t
    };
    let txs = [
        claimed("192.0.2.1", T0),
        named("192.0.2.2", T0 + S),
        claimed("192.0.2.3", T0 + 2 * S),
    ];
    let (alerts, _) = run(DetectConfig::default(), txs);
    let spread = of(&alerts, Detector::CredentialSpread);
    assert_eq!(spread.len(), 1, "{alerts:?}");
    assert_eq!(who(&spread[0].principal), Some("dave"));
    let json = serde_json::to_value(spread[0]).unwrap();
    assert_eq!(json["principal_source"], "kong_consumer");
    assert_eq!(spread[0].ips.len(), 3);
}

fn steady(ip: &str, from_s: u64, n: u64, status: u16) -> Vec<Transaction> {
    (0..n)
        .map(|i| tx(ip, T0 + (from_s + i) * S, status))
        .collect()
}

#[test]
fn successes_then_a_spike_of_failures() {
    let mut txs = steady("192.0.2.9", 0, 5, 200);
    txs.extend(steady("192.0.2.9", 20, 10, 403));
    let (alerts, _) = run(DetectConfig::default(), txs);
    let seq = of(&alerts, Detector::SuccessThenFailure);
    assert_eq!(seq.len(), 1);
    assert_eq!(
        (seq[0].counts["successes"], seq[0].counts["failures"]),
        (5, 10)
    );
    assert_eq!(seq[0].severity, Severity::High);
}

#[test]
fn a_rate_limited_client_is_not_a_sequence() {
    let mut txs = steady("192.0.2.9", 0, 5, 200);
    txs.extend(steady("192.0.2.9", 20, 30, 429));
    let (alerts, _) = run(DetectConfig::default(), txs.clone());
    assert!(of(&alerts, Detector::SuccessThenFailure).is_empty());
    // 429s between the failures neither dilute nor add to the spike.
    txs.extend(steady("192.0.2.9", 50, 10, 401));
    let (alerts, _) = run(DetectConfig::default(), txs);
    let seq = of(&alerts, Detector::SuccessThenFailure);
    assert_eq!(seq.len(), 1, "{alerts:?}");
    assert_eq!(seq[0].counts["requests"], 10);
}

#[test]
fn failures_without_enough_successes_or_ratio_are_not_a_sequence() {
    let mut few = steady("192.0.2.9", 0, 4, 200);
    few.extend(steady("192.0.2.9", 20, 10, 403));
    let mut mixed = steady("192.0.2.10", 0, 5, 200);
    mixed.extend(steady("192.0.2.10", 20, 10, 403));
    // Successes among the failures: 10 of 13 in 15 s is 0.77.
    mixed.extend([21, 23, 25].map(|s| tx("192.0.2.10", T0 + s * S + S / 2, 200)));
    mixed.sort_by_key(|t| t.time_ns);
    let (alerts, _) = run(DetectConfig::default(), few.into_iter().chain(mixed));
    assert!(
        of(&alerts, Detector::SuccessThenFailure).is_empty(),
        "{alerts:?}"
    );
}

#[test]
fn decoys_match_paths_prefixes_and_hosts() {
    let config = DetectConfig {
        decoys: vec![
            "/admin.php".into(),
            "/.git/**".into(),
            "internal.example/debug/*".into(),
        ],
        ..DetectConfig::default()
    };
    let hit = |path: &str, host: &str| {
        let mut t = tx("192.0.2.1", T0, 404);
        t.path = path.into();
        t.route = crate::http::route(path.as_bytes()).as_ref().into();
        t.host = Some(host.into());
        let (alerts, _) = run(config.clone(), [t]);
        !of(&alerts, Detector::Honeypot).is_empty()
    };
    assert!(hit("/admin.php?x=1", "api.example"));
    assert!(hit("/.git/config", "api.example"));
    // Evasions reach the route nginx serves, so they hit the decoy.
    assert!(hit("/%61dmin.php", "api.example"));
    assert!(hit("//.git/./config", "api.example"));
    assert!(hit("/x/../.git/config", "api.example"));
    assert!(hit("/debug/vars", "internal.example:8000"));
    assert!(!hit("/debug/vars", "api.example"));
    assert!(!hit("/admin.php5", "api.example"));
    assert!(!hit("/v1/items", "api.example"));
}

#[test]
fn a_million_spoofed_ips_do_not_hide_the_offender() {
    let config = DetectConfig {
        max_ips: 10_000,
        ..DetectConfig::default()
    };
    let mut d = Detectors::new(config).unwrap();
    let mut alerts = Vec::new();
    for i in 0..1_000_000u64 {
        let time = T0 + i * 10; // a million requests in 10 ms of one window
        let spoofed = IpAddr::from((0x0a00_0000u32 + i as u32).to_be_bytes());
        let mut t = tx("192.0.2.66", time, 200);
        t.client_ip = spoofed;
        alerts.extend(d.transaction(&t));
        if i % 1000 == 0 {
            alerts.extend(d.transaction(&tx("192.0.2.66", time, 200)));
        }
    }
    let flood = of(&alerts, Detector::RequestFlood);
    assert_eq!(flood.len(), 1, "{alerts:?}");
    assert_eq!(flood[0].client_ip, Some("192.0.2.66".parse().unwrap()));
    assert!(d.counters().evictions > 900_000);
}

#[test]
fn a_quick_sequence_counts_from_the_first_failure() {
    // Log in and look around, then probe at once: all within two seconds.
    let mut txs: Vec<_> = (0..6)
        .map(|i| tx("192.0.2.11", T0 + i * S / 10, 200))
        .collect();
    txs.extend((0..12).map(|i| tx("192.0.2.11", T0 + S + i * S / 10, 404)));
    let (alerts, _) = run(DetectConfig::default(), txs);
    let seq = of(&alerts, Detector::SuccessThenFailure);
    assert_eq!(seq.len(), 1, "{alerts:?}");
    assert_eq!(
        (seq[0].counts["successes"], seq[0].counts["failures"]),
        (5, 10)
    );
}

#[test]
fn the_gauges_show_the_last_closed_window() {
    let mut d = Detectors::new(DetectConfig::default()).unwrap();
    let mut txs = Vec::new();
    for i in 0..12u64 {
        txs.extend(burst(
            &format!("192.0.2.{i}"),
            0,
            20 - i,
            if i == 3 { 404 } else { 200 },
        ));
    }
    txs.push(with_credential(
        tx("192.0.2.1", T0 + 20 * S, 200),
        1,
        "alice",
    ));
    txs.push(with_credential(
        tx("192.0.2.2", T0 + 21 * S, 200),
        1,
        "alice",
    ));
    for t in &txs {
        d.transaction(t).for_each(drop);
    }
    let snap = d.snapshot();
    let w = snap.window.unwrap();
    assert_eq!((w.window.start, w.window.end), (T0, T0 + 15 * S));
    assert_eq!((w.requests, w.distinct_ips), ((9..=20).sum(), 12));
    assert_eq!(w.top_ips.len(), 10);
    assert_eq!(w.top_ips[0], ("192.0.2.0".parse().unwrap(), 20));
    assert_eq!(w.other_requests, 9 + 10);
    assert_eq!(w.top_error_ips, [("192.0.2.3".parse().unwrap(), 17)]);
    assert_eq!(snap.credentials.len(), 1);
    assert_eq!(
        (who(&snap.credentials[0].principal), snap.credentials[0].ips),
        (Some("alice"), 2)
    );
}

#[test]
fn an_idle_clock_closes_the_window() {
    let mut d = Detectors::new(DetectConfig::default()).unwrap();
    d.transaction(&tx("192.0.2.1", T0 + S, 200)).for_each(drop);
    d.advance(T0 + 19 * S);
    assert!(d.snapshot().window.is_none(), "open for 5 s of grace");
    d.advance(T0 + 20 * S);
    let w = d.snapshot().window.unwrap();
    assert_eq!((w.window.start, w.requests), (T0, 1));
}

#[test]
fn unconfirmed_requests_raise_nothing() {
    // 601 forged requests for a decoy from a victim's address: none answered.
    let config = DetectConfig {
        decoys: vec!["/admin/**".into()],
        ..DetectConfig::default()
    };
    let txs = burst("198.51.100.77", 0, 601, 200)
        .into_iter()
        .map(|mut t| {
            t.route = "/admin/login".into();
            t.status = None;
            t.confirmed = false;
            t
        });
    let (alerts, c) = run(config, txs);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!((c.transactions, c.unconfirmed), (601, 601));
}

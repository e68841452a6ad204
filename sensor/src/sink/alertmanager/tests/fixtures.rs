//! The alerts and transitions the tests share.

pub(super) use crate::sink::alertmanager::postable::Transition;
pub(super) use crate::{
    detect::{Alert, Detector, Evidence, State, Subject, alert::Window},
    identity::{FingerprintKey, Principal, PrincipalSource},
};

/// 2026-11-21T00:00:00Z, ns.
pub(super) const T0: u64 = 1_795_219_200_000_000_000;
pub(super) const SECOND: u64 = 1_000_000_000;

/// A `request_flood` transition of episode `id` from 192.0.2.7.
pub(super) fn flood(id: &str, state: State, time_ns: u64) -> Alert {
    let mut a = Alert::new(
        Detector::RequestFlood,
        Subject::Ip("192.0.2.7".parse().unwrap()),
        time_ns,
        Window {
            start: T0,
            end: T0 + 15 * SECOND,
        },
        [("budget", 600), ("requests", 601)].into(),
        vec![Evidence {
            method: "GET".into(),
            path: "/api/items?page=2".into(),
            status: Some(200),
            request_id: None,
        }],
    );
    a.id = id.into();
    a.state = state;
    a.episode_start_ns = T0;
    a.extent = 601;
    a.runbook_url = "file:///RUNBOOK.md#request_flood".into();
    if state == State::Resolved {
        a.evidence.clear();
    }
    a
}

/// A `credential_spread` alert of dave's key (Kong's consumer) from 3 IPs.
pub(super) fn spread() -> Alert {
    let fp = FingerprintKey::from_bytes([7; 32]).fingerprint(b"dave-key");
    let mut a = Alert::new(
        Detector::CredentialSpread,
        Subject::Credential(fp),
        T0 + 40 * SECOND,
        Window {
            start: T0,
            end: T0 + 300 * SECOND,
        },
        [("ip_count", 3)].into(),
        Vec::new(),
    );
    a.principal = Principal::new(b"dave", PrincipalSource::KongConsumer);
    a.ips = (1..=3).map(|i| [192, 0, 2, i].into()).collect();
    a.id = "00000000000000cc".into();
    a.episode_start_ns = T0 + 40 * SECOND;
    a
}

pub(super) fn transition(a: &Alert) -> Transition {
    Transition::new(a, "kong-1")
}

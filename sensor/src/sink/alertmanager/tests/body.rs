//! Labels, annotations and times of the request body.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::{
    identity::{Principal, PrincipalSource},
    sink::alertmanager::{
        client::{Fault, status_fault},
        episodes::Episodes,
        postable::PATH_CAP,
        target::Target,
    },
};

/// The body of one batch of `episodes` sent at `now_ns`, valid 240 s.
fn body(episodes: &Episodes, now_ns: u64) -> Value {
    let batch = episodes.batch(100, now_ns, 240 * SECOND).unwrap();
    serde_json::from_slice(&batch.body).unwrap()
}

#[test]
fn a_per_ip_alert_has_its_labels_annotations_and_times() {
    let mut episodes = Episodes::new(10);
    episodes.push(&transition(&flood("3f0c9a1e2b4d5c6f", State::Firing, T0)));
    let now = T0 + 5 * SECOND;
    assert_eq!(
        body(&episodes, now),
        json!([{
            "labels": {
                "alertname": "request_flood",
                "severity": "medium",
                "id": "3f0c9a1e2b4d5c6f",
                "node": "kong-1",
                "client_ip": "192.0.2.7",
            },
            "annotations": {
                "summary": "request_flood from 192.0.2.7: budget=600 requests=601",
                "description": "GET /api/items?page=2 -> 200\n\
                                window 2026-11-21T00:00:00.000000000Z to 2026-11-21T00:00:15.000000000Z; extent 601; suppressed 0",
                "runbook_url": "file:///RUNBOOK.md#request_flood",
            },
            "startsAt": "2026-11-21T00:00:00.000000000Z",
            "endsAt": "2026-11-21T00:04:05.000000000Z",
        }])
    );
}

#[test]
fn a_credential_alert_names_the_credential_principal_and_consumer() {
    let t = transition(&spread());
    let labels: Vec<(&str, &str)> = t.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let fp = spread().credential.unwrap().to_string();
    assert_eq!(
        labels,
        [
            ("alertname", "credential_spread"),
            ("consumer", "dave"),
            ("credential", fp.as_str()),
            ("id", "00000000000000cc"),
            ("node", "kong-1"),
            ("principal", "dave"),
            ("principal_source", "kong_consumer"),
            ("severity", "high"),
        ]
    );
    assert_eq!(
        t.annotations["summary"],
        format!("credential_spread of credential {fp} (principal dave): ip_count=3")
    );
    assert!(
        t.annotations["description"].ends_with("\nclient IPs 192.0.2.1, 192.0.2.2, 192.0.2.3"),
        "{}",
        t.annotations["description"]
    );
    assert!(!t.annotations.contains_key("runbook_url"), "none given");
}

#[test]
fn a_claimed_principal_of_an_ip_alert_is_described_not_a_label() {
    let mut a = flood("1", State::Firing, T0);
    a.principal = Principal::new(b"mallory", PrincipalSource::BasicUser);
    let t = Transition::new(&a, "");
    assert!(
        ["principal", "consumer", "node"]
            .iter()
            .all(|l| !t.labels.contains_key(l)),
        "{:?}",
        t.labels
    );
    assert!(t.annotations["description"].ends_with("\nprincipal mallory (basic_user)"));
}

#[test]
fn the_description_is_bounded() {
    let mut a = flood("1", State::Firing, T0);
    let long = format!("/{}", "a".repeat(9000));
    a.evidence = vec![a.evidence[0].clone(); 9];
    for e in &mut a.evidence {
        e.path = long.as_str().into();
        e.status = None;
    }
    a.ips = (0..40).map(|i| [198, 51, 100, i].into()).collect();
    let d = &transition(&a).annotations["description"];
    assert_eq!(d.matches(" -> no response\n").count(), 5, "{d}");
    assert!(d.lines().all(|l| l.len() <= PATH_CAP + 32), "{d}");
    assert!(d.ends_with(", 198.51.100.9 and 30 more"), "{d}");
    assert!(d.len() < 2000, "{}", d.len());
}

#[test]
fn a_resolution_ends_at_its_time_and_keeps_the_last_annotations() {
    let mut episodes = Episodes::new(10);
    let firing = transition(&flood("1", State::Firing, T0));
    episodes.push(&firing);
    episodes.push(&transition(&flood("1", State::Resolved, T0 + 300 * SECOND)));
    let sent = body(&episodes, T0 + 900 * SECOND);
    assert_eq!(sent[0]["endsAt"], "2026-11-21T00:05:00.000000000Z");
    assert_eq!(sent[0]["startsAt"], "2026-11-21T00:00:00.000000000Z");
    assert_eq!(
        sent[0]["annotations"]["description"],
        firing.annotations["description"].as_str(),
        "the evidence stays"
    );
}

#[test]
fn an_end_never_precedes_the_start() {
    // A replayed capture from the future, or a wall clock behind.
    let mut episodes = Episodes::new(10);
    episodes.push(&transition(&flood("1", State::Firing, T0)));
    let sent = body(&episodes, T0 - 3600 * SECOND);
    assert_eq!(sent[0]["endsAt"], sent[0]["startsAt"]);
}

#[test]
fn answers_are_sorted_into_faults() {
    for (status, fault) in [
        (500, Fault::Down),
        (503, Fault::Down),
        (429, Fault::Down),
        (408, Fault::Down),
        (401, Fault::Refused),
        (403, Fault::Refused),
        (404, Fault::Refused),
        (301, Fault::Refused),
        (400, Fault::Rejected),
        (413, Fault::Rejected),
        (415, Fault::Rejected),
    ] {
        assert_eq!(status_fault(status), fault, "{status}");
    }
}

#[test]
fn targets_parse_as_alertmanager_urls() {
    let url = |s: &str| {
        s.parse::<Target>()
            .map(|t| (t.to_string(), t.alerts_url(), t.is_tls()))
    };
    assert_eq!(
        url("http://127.0.0.1:9093"),
        Ok((
            "http://127.0.0.1:9093".into(),
            "http://127.0.0.1:9093/api/v2/alerts".into(),
            false
        ))
    );
    assert_eq!(
        url("https://am.example.net/alertmanager/"),
        Ok((
            "https://am.example.net/alertmanager".into(),
            "https://am.example.net/alertmanager/api/v2/alerts".into(),
            true
        ))
    );
    assert!(url("http://[::1]:9093").is_ok());
    for bad in [
        "127.0.0.1:9093",
        "ftp://127.0.0.1",
        "https://alice:secret@am.example.net",
        "http://am.example.net/?x=1",
        "http://am.example.net/#x",
        "http://",
    ] {
        let err = url(bad).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}

//! The re-send and resolve bookkeeping.

use super::fixtures::*;
use crate::sink::alertmanager::episodes::{Episodes, Evicted};

const VALID: u64 = 240 * SECOND;

/// Sends what is due at `now_ns` as one accepted request: the episode ids
/// it carried and the transitions it delivered.
fn deliver(e: &mut Episodes, now_ns: u64) -> (Vec<String>, u64) {
    match e.batch(100, now_ns, VALID) {
        Some(batch) => {
            let sent = e.delivered(&batch);
            (batch.ids, sent)
        }
        None => (Vec::new(), 0),
    }
}

fn push(e: &mut Episodes, id: &str, state: State) -> Evicted {
    e.push(&transition(&flood(id, state, T0)))
}

#[test]
fn a_firing_episode_is_sent_at_once_then_each_resend_until_resolved_once() {
    let mut e = Episodes::new(10);
    push(&mut e, "a", State::Firing);
    assert_eq!(deliver(&mut e, T0), (vec!["a".into()], 1));
    assert_eq!(deliver(&mut e, T0), (vec![], 0), "nothing due");
    e.resend();
    assert_eq!(
        deliver(&mut e, T0 + 60 * SECOND),
        (vec!["a".into()], 0),
        "a re-send delivers no transition"
    );
    push(&mut e, "a", State::Resolved);
    assert_eq!(deliver(&mut e, T0), (vec!["a".into()], 1));
    assert!(e.is_empty(), "a delivered resolution is forgotten");
    e.resend();
    assert_eq!(deliver(&mut e, T0), (vec![], 0));
}

#[test]
fn only_firing_episodes_are_re_sent_and_their_end_moves_on() {
    let mut e = Episodes::new(10);
    push(&mut e, "a", State::Firing);
    push(&mut e, "b", State::Firing);
    deliver(&mut e, T0);
    push(&mut e, "b", State::Resolved);
    let resolution = e.batch(100, T0, VALID).unwrap();
    assert_eq!(resolution.ids, ["b"]);
    // The resolution's request failed: at the re-send both are due.
    e.resend();
    let now = T0 + 60 * SECOND;
    let batch = e.batch(100, now, VALID).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
    let ends: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["endsAt"].as_str().unwrap())
        .collect();
    assert_eq!(batch.ids, ["a", "b"]);
    assert_eq!(
        ends,
        [
            "2026-11-21T00:05:00.000000000Z",
            "2026-11-21T00:00:00.000000000Z"
        ]
    );
}

#[test]
fn transitions_queued_through_an_outage_go_together_and_count_once_each() {
    let mut e = Episodes::new(10);
    push(&mut e, "a", State::Firing);
    let failed = e.batch(100, T0, VALID).unwrap();
    assert_eq!(failed.ids, ["a"]);
    push(&mut e, "a", State::Updated);
    push(&mut e, "b", State::Firing);
    push(&mut e, "b", State::Resolved);
    assert_eq!(e.pending(), 4);
    let (ids, sent) = deliver(&mut e, T0);
    assert_eq!((ids.len(), sent), (2, 4));
    assert_eq!((e.len(), e.pending()), (1, 0), "b resolved, a still firing");
}

#[test]
fn an_update_replaces_the_annotations_and_keeps_the_labels() {
    let mut e = Episodes::new(10);
    push(&mut e, "a", State::Firing);
    let mut updated = flood("a", State::Updated, T0 + 30 * SECOND);
    updated.counts.insert("requests", 1300);
    updated.client_ip = Some("192.0.2.99".parse().unwrap());
    e.push(&transition(&updated));
    let batch = e.batch(100, T0, VALID).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
    assert_eq!(body[0]["labels"]["client_ip"], "192.0.2.7");
    assert_eq!(
        body[0]["annotations"]["summary"],
        "request_flood from 192.0.2.99: budget=600 requests=1300"
    );
}

#[test]
fn a_full_set_forgets_the_least_recently_changed_delivered_episode_first() {
    let mut e = Episodes::new(2);
    push(&mut e, "a", State::Firing);
    push(&mut e, "b", State::Firing);
    deliver(&mut e, T0);
    push(&mut e, "a", State::Updated); // a changed last, undelivered
    assert_eq!(
        push(&mut e, "c", State::Firing),
        Evicted {
            forgotten: 1,
            overflow: 0
        }
    );
    let mut ids = deliver(&mut e, T0).0;
    ids.sort();
    assert_eq!(ids, ["a", "c"]);
    // Nothing delivered: the least recently changed goes, with its transitions.
    push(&mut e, "a", State::Updated);
    push(&mut e, "c", State::Updated);
    assert_eq!(
        push(&mut e, "d", State::Firing),
        Evicted {
            forgotten: 0,
            overflow: 1
        }
    );
    assert_eq!(e.len(), 2);
}

#[test]
fn a_rejected_request_is_dropped_not_retried() {
    let mut e = Episodes::new(10);
    push(&mut e, "a", State::Firing);
    push(&mut e, "a", State::Updated);
    let batch = e.batch(100, T0, VALID).unwrap();
    assert_eq!(e.rejected(&batch), 2);
    assert!(e.is_empty());
    e.resend();
    assert!(e.batch(100, T0, VALID).is_none());
}

#[test]
fn requests_carry_at_most_the_batch_size() {
    let mut e = Episodes::new(500);
    for i in 0..250 {
        push(&mut e, &i.to_string(), State::Firing);
    }
    let sizes: Vec<usize> = std::iter::from_fn(|| {
        let batch = e.batch(100, T0, VALID)?;
        e.delivered(&batch);
        Some(batch.ids.len())
    })
    .collect();
    assert_eq!(sizes, [100, 100, 50]);
}

#[test]
fn a_successor_adopts_the_episodes_with_their_undelivered_transitions() {
    let mut old = Episodes::new(10);
    push(&mut old, "a", State::Firing);
    deliver(&mut old, T0);
    push(&mut old, "b", State::Firing);
    let mut new = Episodes::new(1);
    assert_eq!(
        new.adopt(old),
        Evicted {
            forgotten: 1,
            overflow: 0
        }
    );
    let (ids, sent) = deliver(&mut new, T0);
    assert_eq!((ids, sent), (vec!["b".to_owned()], 1));
}

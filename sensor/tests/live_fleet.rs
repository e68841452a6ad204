//! Fleet-wide detection live: two Kong-like gateway nodes (`lab::Node`),
//! a sensor on each publishing to a real nats-server with JetStream
//! (`lab::nats`), and `siem-sensor fleet` analysers (`lab::analyser`), all
//! configured through the files a user would write. Attacks spread over
//! the nodes (`lab::fleet`) raise fleet alerts naming both nodes and no
//! sensor's own alert; a killed analyser, a broker outage and a split of
//! the partitions over two analysers change none of that.

mod support;

use std::{
    collections::BTreeMap,
    fs,
    path::PathBuf,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use lab::{
    Lab, Node,
    analyser::Analyser,
    fleet::{self, FLOOD_PER_NODE, FLOOD_SOURCE, SHARED_KEY_OWNER},
    nats::Nats,
    sensor::{LineHook, Run, SensorProcess},
};
use serde_json::Value;
use support::{SENSOR, require_root};

/// The detectors' settings on every sensor and analyser: the defaults,
/// but a 5 s resolve time (the default 5 min would keep the test
/// waiting) and the lab's decoy route.
const DETECTORS: &str = "[detectors]\nresolve_after = \"5s\"\ndecoys = [\"/admin/**\"]\n";

/// A lab with both gateway nodes and a NATS server.
struct Fleet {
    // Dropped last: tears the namespaces down after the processes are gone.
    nats: Nats,
    dir: PathBuf,
    lab: Lab,
}

impl Fleet {
    fn up(prefix: &str) -> Self {
        require_root();
        let lab = Lab::up(prefix).unwrap();
        lab::add_node_b(&lab).unwrap();
        let nats = Nats::start(&lab).unwrap();
        let dir = lab.workdir().join("fleet");
        fs::create_dir_all(&dir).unwrap();
        Self { nats, dir, lab }
    }

    /// `siem-sensor run --config FILE` on `node`, the file as an operator
    /// writes it: both legs, the detectors, `[publish]` (plus `publish`'s
    /// extra keys), alerts on stdout.
    fn sensor(&self, node: Node, publish: &str) -> SensorProcess {
        self.sensor_with(node, publish, None)
    }

    /// As [`Fleet::sensor`], calling `hook` with each line it prints.
    fn sensor_with(&self, node: Node, publish: &str, hook: Option<LineHook>) -> SensorProcess {
        let config = format!(
            "[capture]\ninterfaces = [\"gw-client\", \"gw-upstream\"]\n\n{DETECTORS}\n\
             [publish]\nservers = [\"{}\"]\nnode = \"{}\"\n{publish}\n\
             [outputs]\nalerts = \"-\"\n",
            self.nats.url(),
            node.name()
        );
        let path = self.dir.join(format!("sensor-{}.toml", node.name()));
        fs::write(&path, config).unwrap();
        let path = path.display().to_string();
        SensorProcess::start_on(&self.lab, node, SENSOR.as_ref(), &["--config", &path], hook)
            .unwrap()
    }

    /// `siem-sensor fleet --config FILE` as instance `name` of `group`
    /// owning `partitions`, metrics on 127.0.0.1:`port`; its alerts in
    /// `alerts-NAME.jsonl`.
    fn analyser(&self, name: &str, group: &str, partitions: &str, port: u16) -> Analyser {
        let config = format!(
            "[fleet]\nservers = [\"{}\"]\ngroup = \"{group}\"\npartitions = \"{partitions}\"\n\n\
             {DETECTORS}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            self.nats.url()
        );
        let path = self.dir.join(format!("fleet-{name}.toml"));
        fs::write(&path, config).unwrap();
        let alerts = self.dir.join(format!("alerts-{name}.jsonl"));
        let path = path.display().to_string();
        Analyser::start(&self.lab, SENSOR.as_ref(), &alerts, &["--config", &path]).unwrap()
    }

    /// The analyser's metrics page.
    fn metrics(&self, port: u16) -> String {
        let out = self
            .lab
            .command(&self.lab.nats_ns(), "curl")
            .args([
                "-sf",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}/metrics"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// An alert's subject: its client IP, or its principal.
fn subject(alert: &Value) -> String {
    let s = alert["client_ip"].as_str().or(alert["principal"].as_str());
    s.unwrap_or("?").to_owned()
}

/// Each episode's transitions in order, by (detector, subject).
fn transitions(alerts: &[Value]) -> BTreeMap<(String, String), Vec<String>> {
    let mut by: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for a in alerts {
        let detector = a["detector"].as_str().unwrap_or("?").to_owned();
        by.entry((detector, subject(a)))
            .or_default()
            .push(a["state"].as_str().unwrap_or("?").to_owned());
    }
    by
}

/// The transitions the cross-node scenarios raise, once each.
fn cross_node_transitions() -> BTreeMap<(String, String), Vec<String>> {
    let states = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    BTreeMap::from([
        (
            ("credential_spread".into(), SHARED_KEY_OWNER.into()),
            states(&["firing", "updated", "resolved"]),
        ),
        (
            ("request_flood".into(), FLOOD_SOURCE.into()),
            states(&["firing", "resolved"]),
        ),
    ])
}

/// Whether every cross-node episode has resolved in `alerts`.
fn all_resolved(alerts: &[Value]) -> bool {
    let resolved = alerts.iter().filter(|a| a["state"] == "resolved").count();
    resolved >= cross_node_transitions().len()
}

/// The nodes an alert names.
fn nodes(alert: &Value) -> Vec<&str> {
    alert["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A sensor's alerts about the cross-node subjects (there must be none).
fn local_cross_node(run: &Run) -> Vec<&Value> {
    let subjects = [FLOOD_SOURCE, SHARED_KEY_OWNER];
    run.alerts
        .iter()
        .filter(|a| subjects.contains(&subject(a).as_str()))
        .collect()
}

/// A sensor's publish delivery counts (`capture_summary`'s `sinks`).
fn publish_counts(run: &Run) -> Value {
    let sinks = run.summary["sinks"].as_array().cloned().unwrap_or_default();
    sinks
        .into_iter()
        .find(|s| s["sink"] == "publish")
        .unwrap_or_else(|| panic!("no publish sink in {}", run.summary))
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn attacks_split_over_two_nodes_raise_fleet_alerts_naming_both() {
    let f = Fleet::up("ss-fl1");
    let a = f.sensor(Node::A, "");
    let b = f.sensor(Node::B, "");
    let analyser = f.analyser("all", "fleet", "all", 9252);
    fleet::split_flood(&f.lab).unwrap();
    fleet::shared_key(&f.lab).unwrap();
    let alerts = analyser.wait_for(Duration::from_secs(60), all_resolved);
    let metrics = f.metrics(9252);
    let runs = [a.stop().unwrap(), b.stop().unwrap()];
    let summary = analyser.stop().unwrap();

    assert_eq!(
        transitions(&alerts),
        cross_node_transitions(),
        "{alerts:#?}"
    );
    for alert in &alerts {
        assert_eq!(nodes(alert), ["gw-a", "gw-b"], "{alert}");
    }
    let ips: Vec<usize> = alerts
        .iter()
        .filter(|a| a["detector"] == "credential_spread" && a["state"] != "resolved")
        .map(|a| a["ips"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(ips, [3, 4], "firing at 3 addresses, updated at the 4th");
    for (node, run) in Node::ALL.iter().zip(&runs) {
        assert!(
            local_cross_node(run).is_empty(),
            "{}'s sensor raised {:#?}",
            node.name(),
            local_cross_node(run)
        );
        // Each node saw its share, and published every request it counted.
        let counted = run.summary["detect"]["transactions"].as_u64().unwrap();
        let logged = node.access_log(&f.lab).unwrap().len() as u64;
        let share = u64::from(FLOOD_PER_NODE) + 4;
        assert!(
            counted <= logged && counted + 2 >= share,
            "{}: counted {counted}, logged {logged}",
            node.name()
        );
        let publish = publish_counts(run);
        assert_eq!(publish["sent"].as_u64(), Some(counted), "{publish}");
        for lost in ["overflow", "dropped", "undelivered"] {
            assert_eq!(publish[lost].as_u64(), Some(0), "{publish}");
        }
        let seen = &summary["analysis"]["nodes"][node.name()];
        assert_eq!(seen["requests"].as_u64(), Some(counted), "{summary}");
        assert!(seen["heartbeats"].as_u64().unwrap() > 0, "{summary}");
    }
    assert_eq!(summary["claims"]["claimed"].as_u64(), Some(5), "{summary}");
    assert_eq!(summary["analysis"]["malformed"].as_u64(), Some(0));
    assert!(
        metrics.contains("siem_sensor_fleet_events_total{"),
        "no fleet metrics on :9252:\n{metrics}"
    );
    // Never a key in anything the sensors or the analyser wrote.
    let key = lab::consumers::Consumer::named(SHARED_KEY_OWNER).key;
    let everything = format!("{alerts:?}{summary}{}{}", runs[0].log, runs[1].log);
    assert!(!everything.contains(key), "the shared key leaked");
}

/// Both analysers' alerts, in order.
fn union(first: &[Value], second: &[Value]) -> Vec<Value> {
    first.iter().chain(second).cloned().collect()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn a_killed_analyser_restarts_and_raises_each_alert_once() {
    let f = Fleet::up("ss-fl2");
    let a = f.sensor(Node::A, "");
    let b = f.sensor(Node::B, "");
    let mut first = f.analyser("first", "fleet", "all", 9252);
    fleet::split_flood(&f.lab).unwrap();
    let raised = first.wait_for(Duration::from_secs(30), |alerts| !alerts.is_empty());
    assert_eq!(
        transitions(&raised).len(),
        1,
        "{raised:#?}\n{}",
        first.log()
    );
    // Mid-episode: the flood has fired, not resolved; the key is yet to come.
    first.kill();
    let before = first.alerts();
    fleet::shared_key(&f.lab).unwrap();
    let second = f.analyser("second", "fleet", "all", 9252);
    let after = second.wait_for(Duration::from_secs(60), |after| {
        all_resolved(&union(&before, after))
    });
    let runs = [a.stop().unwrap(), b.stop().unwrap()];
    let summary = second.stop().unwrap();

    let all = union(&before, &after);
    assert_eq!(transitions(&all), cross_node_transitions(), "{all:#?}");
    for alert in &all {
        assert_eq!(nodes(alert), ["gw-a", "gw-b"], "{alert}");
    }
    // The restart rebuilt the flood's episode from the stream: it raised
    // its firing again, found it claimed, and went on to resolve it.
    assert!(
        summary["replayed"].as_u64().unwrap() >= u64::from(FLOOD_PER_NODE),
        "{summary}"
    );
    assert!(
        summary["claims"]["already_raised"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert_eq!(summary["claims"]["unclaimed"].as_u64(), Some(0));
    for run in &runs {
        assert!(local_cross_node(run).is_empty(), "{:#?}", run.alerts);
    }
}

/// `key=N` from the sensor's `publish: stopped` log line.
fn publish_stat(run: &Run, key: &str) -> u64 {
    let line = run
        .log
        .lines()
        .find(|l| l.contains("publish: stopped"))
        .unwrap_or_else(|| panic!("no publish line:\n{}", run.log));
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("{line}"));
    let value = &line[at + key.len() + 2..];
    let end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    value[..end].parse().unwrap()
}

/// The `Nats-Msg-Id` of every request event stored on the client-IP
/// partitions (each request has exactly one), read through an ordered
/// consumer from a thread inside the NATS server's namespace.
fn stored_request_ids(lab: &Lab, url: &str) -> Vec<String> {
    use futures_util::StreamExt as _;
    use std::os::fd::AsRawFd as _;

    let (ns, url) = (lab.nats_ns(), url.to_owned());
    thread::spawn(move || {
        let netns = fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // SAFETY: a valid namespace fd; setns moves this thread only.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
            let stream = js.get_stream("SIEM_EVENTS").await.unwrap();
            let config = async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: "siem.ip.*".into(),
                ..Default::default()
            };
            let consumer = stream.create_consumer(config).await.unwrap();
            let mut messages = consumer.messages().await.unwrap();
            let mut ids = Vec::new();
            let wait = Duration::from_secs(5);
            while let Ok(Some(Ok(m))) = tokio::time::timeout(wait, messages.next()).await {
                let event: Value = serde_json::from_slice(&m.payload).unwrap();
                if event["type"] == "request" {
                    let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id"));
                    ids.push(id.map(|v| v.as_str().to_owned()).unwrap_or_default());
                }
                if m.info().unwrap().pending == 0 {
                    break;
                }
            }
            ids
        })
    })
    .join()
    .unwrap()
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn a_broker_outage_leaves_local_alerts_alone_and_fleet_alerts_late() {
    let mut f = Fleet::up("ss-fl3");
    let local_flood = Lab::extra_client(0);
    let quiet = Lab::extra_client(1);
    // When node A's sensor printed its own flood alert.
    let seen: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (watch, host) = (Arc::clone(&seen), local_flood.clone());
    let hook: LineHook = Box::new(move |line| {
        if line.contains("request_flood") && line.contains(&format!("\"{host}\"")) {
            watch.lock().unwrap().get_or_insert_with(Instant::now);
        }
    });
    let a = f.sensor_with(Node::A, "", Some(hook));
    // Node B queues at most 200 events while the broker is away.
    let b = f.sensor(Node::B, "queue = 200\n");
    let analyser = f.analyser("all", "fleet", "all", 9252);

    // The outage: every sensor and the analyser lose the broker for 10 s.
    let down = Instant::now();
    f.nats.stop().unwrap();
    fleet::shared_key(&f.lab).unwrap();
    fleet::wait_for_room(Duration::from_secs(15), Duration::from_secs(5));
    Node::A.ab(&f.lab, &local_flood, 700, 4, "/hello").unwrap();
    // A well-behaved burst on node B: more than its queue holds.
    Node::B.ab(&f.lab, &quiet, 400, 4, "/hello").unwrap();
    thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    let up = Instant::now();
    f.nats.start_again().unwrap();
    let expected = BTreeMap::from([
        (
            ("credential_spread".to_owned(), SHARED_KEY_OWNER.to_owned()),
            vec!["firing", "updated", "resolved"],
        ),
        (
            ("request_flood".to_owned(), local_flood.clone()),
            vec!["firing", "resolved"],
        ),
    ]);
    let done = |alerts: &[Value]| alerts.iter().filter(|a| a["state"] == "resolved").count() >= 2;
    let alerts = analyser.wait_for(Duration::from_secs(60), done);

    // The broker frozen for 7 s (longer than a publish waits for its
    // acknowledgement) while requests come in: their publishes are sent
    // again with the same ids, and stored once when it goes on.
    f.nats.freeze().unwrap();
    Node::A
        .curl(&f.lab, &Lab::extra_client(2), &[], "/hello", 10)
        .unwrap();
    thread::sleep(Duration::from_secs(7));
    f.nats.thaw().unwrap();
    thread::sleep(Duration::from_secs(3));
    let runs = [a.stop().unwrap(), b.stop().unwrap()];
    let summary = analyser.stop().unwrap();

    let got: BTreeMap<_, Vec<&str>> = transitions(&alerts)
        .into_iter()
        .map(|(k, v)| (k, v.iter().map(|s| leak(s)).collect()))
        .collect();
    assert_eq!(got, expected, "{alerts:#?}");
    for alert in &alerts {
        let want: &[&str] = match alert["detector"].as_str() {
            Some("request_flood") => &["gw-a"],
            _ => &["gw-a", "gw-b"],
        };
        assert_eq!(nodes(alert), want, "{alert}");
    }
    // Node A raised its own flood alert while the broker was down.
    let raised = seen.lock().unwrap().expect("node A raised no flood alert");
    assert!(raised < up, "node A's alert waited for the broker");
    let local: Vec<_> = runs[0].alerts.iter().map(subject).collect();
    assert!(local.contains(&local_flood), "{local:?}");
    // Every request counted is accounted for: sent, or dropped and counted.
    let mut sent = 0;
    for (node, run) in Node::ALL.iter().zip(&runs) {
        let counted = run.summary["detect"]["transactions"].as_u64().unwrap();
        let p = publish_counts(run);
        let n = |k: &str| p[k].as_u64().unwrap();
        assert_eq!(
            n("sent") + n("overflow") + n("dropped") + n("undelivered"),
            counted,
            "{}: {p}",
            node.name()
        );
        sent += n("sent");
        if *node == Node::B {
            assert!(n("overflow") >= 150, "node B's queue overflowed: {p}");
        } else {
            assert_eq!(n("overflow"), 0, "{p}");
        }
    }
    assert!(publish_stat(&runs[0], "retries") > 0, "{}", runs[0].log);
    let duplicates: u64 = runs.iter().map(|r| publish_stat(r, "duplicates")).sum();
    assert!(duplicates > 0, "no publish was retried across the freeze");
    // Stored once: one message per request sent, no id twice.
    let mut ids = stored_request_ids(&f.lab, &f.nats.url());
    assert_eq!(ids.len() as u64, sent, "stored vs sent");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, sent, "an id stored twice");
    assert_eq!(summary["analysis"]["malformed"].as_u64(), Some(0));
}

/// A state name as a `&'static str` (the test's expectations are literals).
fn leak(s: &str) -> &'static str {
    ["firing", "updated", "resolved"]
        .into_iter()
        .find(|k| *k == s)
        .unwrap_or("?")
}

/// An alert as the instances must agree on it: id, detector, subject,
/// state, extent and nodes.
fn essence(alert: &Value) -> String {
    format!(
        "{} {} {} {} extent={} nodes={:?}",
        alert["id"].as_str().unwrap_or("?"),
        alert["detector"].as_str().unwrap_or("?"),
        subject(alert),
        alert["state"].as_str().unwrap_or("?"),
        alert["extent"],
        nodes(alert)
    )
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn two_analysers_with_half_the_partitions_each_raise_what_one_raises() {
    let f = Fleet::up("ss-fl4");
    let a = f.sensor(Node::A, "");
    let b = f.sensor(Node::B, "");
    // One fleet with one analyser, another (its own consumers and claims)
    // with two, on the same stream at once.
    let solo = f.analyser("solo", "solo", "all", 9252);
    let low = f.analyser("low", "split", "0-7", 9253);
    let high = f.analyser("high", "split", "8-15", 9254);
    fleet::split_flood(&f.lab).unwrap();
    fleet::shared_key(&f.lab).unwrap();
    fleet::decoy_on_b(&f.lab).unwrap();
    let done = |alerts: &[Value]| alerts.iter().filter(|a| a["state"] == "resolved").count() >= 3;
    let one = solo.wait_for(Duration::from_secs(60), done);
    let two = low.wait_for(Duration::from_secs(30), |l| done(&union(l, &high.alerts())));
    let two = union(&two, &high.alerts());
    let runs = [a.stop().unwrap(), b.stop().unwrap()];
    let summaries = [
        solo.stop().unwrap(),
        low.stop().unwrap(),
        high.stop().unwrap(),
    ];

    let mut expected = cross_node_transitions();
    expected.insert(
        ("honeypot".into(), Lab::extra_client(11)),
        vec!["firing".into(), "resolved".into()],
    );
    assert_eq!(transitions(&one), expected, "{one:#?}");
    let mut one: Vec<String> = one.iter().map(essence).collect();
    let mut two: Vec<String> = two.iter().map(essence).collect();
    one.sort();
    two.sort();
    assert_eq!(one, two);
    assert!(
        one.iter()
            .any(|a| a.contains("honeypot") && a.ends_with("[\"gw-b\"]"))
    );
    // Each analyser of the pair took its half: together, every message once.
    let count = |s: &Value, node: &str, family: &str| {
        s["analysis"]["nodes"][node][family].as_u64().unwrap_or(0)
    };
    for node in Node::ALL.map(Node::name) {
        for family in ["requests", "credential_requests"] {
            let halves = count(&summaries[1], node, family) + count(&summaries[2], node, family);
            assert_eq!(
                halves,
                count(&summaries[0], node, family),
                "{node} {family}"
            );
        }
        assert!(count(&summaries[1], node, "requests") > 0);
        assert!(count(&summaries[2], node, "requests") > 0);
    }
    for run in &runs {
        assert!(local_cross_node(run).is_empty(), "{:#?}", run.alerts);
    }
}

//! Fleet-wide detection live: two Kong-like gateway nodes (`lab::Node`),
//! a sensor on each publishing to a real nats-server with JetStream
//! (`lab::nats`), and `siem-sensor fleet` analysers (`lab::analyser`), all
//! configured through the files a user would write. Attacks spread over
//! the nodes (`lab::fleet`) raise fleet alerts naming both nodes and no
//! sensor's own alert; a killed analyser, a broker outage and a split of
//! the partitions over two analysers change none of that.

mod support;

use std::{collections::BTreeMap, fs, path::PathBuf, thread, time::Duration};

use lab::{
    Lab, Node,
    analyser::Analyser,
    fleet::{self, FLOOD_PER_NODE, FLOOD_SOURCE, SHARED_KEY_OWNER},
    nats::Nats,
    sensor::{Run, SensorProcess},
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
        lab.add_node_b().unwrap();
        let nats = Nats::start(&lab).unwrap();
        let dir = lab.workdir().join("fleet");
        fs::create_dir_all(&dir).unwrap();
        Self { nats, dir, lab }
    }

    /// `siem-sensor run --config FILE` on `node`, the file as an operator
    /// writes it: both legs, the detectors, `[publish]` (plus `publish`'s
    /// extra keys), alerts on stdout.
    fn sensor(&self, node: Node, publish: &str) -> SensorProcess {
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
        SensorProcess::start_on(&self.lab, node, SENSOR.as_ref(), &["--config", &path], None)
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
        let logged = f.lab.node_access_log(*node).unwrap().len() as u64;
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
    drop(f);
    thread::sleep(Duration::from_millis(10));
}

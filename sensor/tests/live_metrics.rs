//! A real Prometheus (Debian's `prometheus`) scrapes the live sensor during
//! lab traffic; its HTTP API shows the detectors' gauges and the health
//! counters with the right values. The shipped alerting rules pass
//! `promtool check rules` and their unit tests, and every metric the rules
//! and the Grafana dashboard use is one the sensor serves; the detection
//! rule fires on the sensor's open alert episodes.

mod support;

use std::{collections::BTreeSet, fs, path::Path, process::Command};

use lab::{
    BOTH_LEGS, CLIENT_V4, Lab, Listener, prometheus::Prometheus, run_quiet, scenarios::FLOOD,
};
use support::{require_root, start_sensor};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

/// `curl URL` in the gateway namespace.
fn fetch(lab: &Lab, url: &str) -> String {
    let out = lab
        .command(&lab.gateway_ns(), "curl")
        .args(["-s", "--max-time", "5", url])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Metric names (`aps_siem_*`, `siem_sensor_*`) mentioned in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["aps_siem_", "siem_sensor_"] {
        for (at, _) in text.match_indices(prefix) {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn prometheus_scrapes_the_gauges_and_health_counters() {
    require_root();
    let rules = Path::new(DEPLOY).join("prometheus");
    for args in [
        ["check", "rules", "siem-sensor.rules.yml"],
        ["test", "rules", "siem-sensor.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&rules)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let lab = Lab::up("ss-prom").unwrap();
    let dir = lab.workdir().to_path_buf();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         rule_files: [{}]\n\
         scrape_configs:\n  - job_name: siem-sensor\n    static_configs: [{{targets: ['127.0.0.1:9251']}}]\n",
        rules.join("siem-sensor.rules.yml").display()
    );
    let sensor = start_sensor(
        &lab,
        &[
            &BOTH_LEGS[..],
            &["--listen", "0.0.0.0:9251", "--metrics-allow", "127.0.0.1"],
        ]
        .concat(),
    );
    let prometheus = Prometheus::start(&lab, &dir.join("prometheus"), &config).unwrap();
    prometheus.wait("the scrape target to be up", &|p| {
        p.value(r#"up{job="siem-sensor"}"#) == Some(1.0)
    });

    // Alice's key from three addresses (on a missing path, so the window
    // also has errors), then a flood from the client's own address.
    for i in 0..3 {
        let source = Lab::extra_client(i);
        lab.curl_from(&source, &["-u", "alice:wonderland"], "/missing", 1)
            .unwrap();
    }
    run_quiet(&mut FLOOD.command(&lab, Listener::Http, CLIENT_V4).unwrap()).unwrap();
    // The flood window's gauges appear about 11 s after it ends (the
    // per-IP grace, the join's wait, one publication).
    let flooder = format!(r#"aps_siem_ip_topn{{client_ip="{CLIENT_V4}"}}"#);
    prometheus.wait("the flood window's gauge", &|p| {
        p.value(&flooder).is_some_and(|v| v > 600.0)
    });

    let one = |q: &str| {
        prometheus
            .value(q)
            .unwrap_or_else(|| panic!("no value for {q}"))
    };
    assert!(one(r#"siem_sensor_alerts_total{detector="request_flood"}"#) >= 1.0);
    assert!(one(r#"siem_sensor_alerts_total{detector="credential_spread"}"#) >= 1.0);
    // The episodes stay open (5 min of quiet to resolve): the shipped rule
    // fires for each detector, paged by the sensor's severity.
    for (detector, severity) in [
        ("request_flood", "warning"),
        ("credential_spread", "critical"),
    ] {
        assert!(
            one(&format!(
                r#"siem_sensor_alerts_active{{detector="{detector}"}}"#
            )) >= 1.0
        );
        let alert = format!(
            r#"ALERTS{{alertname="SiemSensorDetection",alertstate="firing",detector="{detector}",severity="{severity}"}}"#
        );
        prometheus.wait(&alert, &|p| p.value(&alert) == Some(1.0));
    }
    assert_eq!(one(r#"aps_siem_credential_ips{principal="alice"}"#), 3.0);
    assert_eq!(
        one(r#"siem_sensor_kernel_segments_total{result="ring_full"}"#),
        0.0
    );
    assert_eq!(one(r#"siem_sensor_build_info"#), 1.0);
    assert!(one(r#"siem_sensor_transactions_total{class="2xx"}"#) > 1000.0);
    let seen = one(r#"siem_sensor_kernel_segments_total{result="seen"}"#);
    let received = one(r#"siem_sensor_records_total{result="received"}"#);
    assert!(seen > 0.0 && received <= seen, "{received} of {seen}");

    let served = fetch(&lab, "http://127.0.0.1:9251/metrics");
    let used: BTreeSet<String> = [
        "prometheus/siem-sensor.rules.yml",
        "grafana/siem-sensor.json",
    ]
    .iter()
    .flat_map(|f| names(&fs::read_to_string(Path::new(DEPLOY).join(f)).unwrap()))
    .map(|n| n.trim_end_matches("_bucket").to_string())
    .collect();
    let have = names(&served);
    let missing: Vec<_> = used.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "rules or dashboard use metrics the sensor does not serve: {missing:?}"
    );
    assert!(!served.contains("wonderland"));
    // The allow-list: the same page asked from the gateway's own lab address
    // (not 127.0.0.1) is refused.
    let refused = lab
        .command(&lab.gateway_ns(), "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            "10.77.0.1",
        ])
        .arg("http://10.77.0.1:9251/metrics")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "403");
    sensor.stop().unwrap();
    drop(prometheus);
    lab.teardown();
}

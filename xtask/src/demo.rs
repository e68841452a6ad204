//! `cargo xtask demo`: the README's first command. Sets up what is missing,
//! builds the sensor, brings up the lab, runs the sensor live on the
//! gateway, plays the labeled scenarios, prints each alert as it fires and
//! a summary of the gauges on `:9251`, and tears everything down.

use std::{
    collections::BTreeSet,
    process::Command,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use lab::{
    EXTRA_CLIENTS, GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab, run, run_quiet, scenarios,
    sensor::SensorProcess,
};
use serde_json::Value;

use crate::setup;

/// The per-IP window and the grace after it before it closes (the
/// sensor's defaults).
const WINDOW: Duration = Duration::from_secs(15);
const GRACE: Duration = Duration::from_secs(5);
/// How long the join holds a leg for its partner (the sensor's default):
/// the detectors' clock lags the wall clock by it.
const JOIN_WAIT: Duration = Duration::from_secs(5);
/// How often the sensor updates its gauges (`PUBLISH_INTERVAL` in its
/// daemon loop).
const PUBLISH: Duration = Duration::from_secs(1);

pub fn demo(prefix: &str) -> Result<()> {
    setup::setup()?;
    run(Command::new("cargo").args(["build", "--release", "--package", "sensor"]))?;
    let binary = std::env::current_dir()?.join("target/release/siem-sensor");
    let lab = Lab::up(prefix)?;
    println!(
        "lab up: {} client hosts -> Kong-like gateway {} (:8000) -> upstream; \
         sensor on {GATEWAY_CLIENT_IF} and {GATEWAY_UPSTREAM_IF}\n",
        EXTRA_CLIENTS + 1,
        lab.gateway_ns()
    );
    let args = scenarios::live_args();
    let fired = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = Arc::clone(&fired);
    let start = Instant::now();
    let sensor = SensorProcess::start(
        &lab,
        &binary,
        &args,
        Some(Box::new(move |line| {
            let Ok(alert) = serde_json::from_str::<Value>(line) else {
                return;
            };
            if alert.get("detector").is_some() {
                println!(
                    "  {:5.1}s ALERT {}",
                    start.elapsed().as_secs_f64(),
                    describe(&alert)
                );
                seen.lock().unwrap().insert(subject(&alert));
            }
        })),
    )?;
    let all = scenarios::all();
    let list = |alerts: &[scenarios::Expected]| {
        let names: Vec<_> = alerts.iter().map(|(d, who)| format!("{d} {who}")).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    for s in &all {
        println!("> {}\n  must raise: {}", s.name, list(&s.raises));
        s.play(&lab)?;
    }
    let wait = until_window_closes()?;
    println!(
        "\nwaiting {:.0} s for the current 15 s window to close...",
        wait.as_secs_f64()
    );
    thread::sleep(wait);
    let metrics = run_quiet(lab.command(&lab.gateway_ns(), "curl").args([
        "-s",
        "--max-time",
        "5",
        "http://127.0.0.1:9251/metrics",
    ]))?;
    let metrics = String::from_utf8(metrics.stdout)?;
    println!(
        "\ngauges on :9251 (that window) and counters:\n{}",
        gauges(&metrics)
    );
    let run = sensor.stop()?;
    println!(
        "capture: {} transactions, {} ring drops",
        run.summary["http"]["transactions"], run.summary["kernel"]["ring_full"]
    );
    drop(lab);
    println!("lab torn down");
    let fired = fired.lock().unwrap();
    let missing: Vec<_> = all
        .iter()
        .flat_map(|s| &s.raises)
        .filter(|e| !fired.contains(&owned(e)))
        .collect();
    let false_alerts: Vec<_> = all
        .iter()
        .flat_map(|s| &s.quiet)
        .filter(|e| fired.contains(&owned(e)))
        .collect();
    if !missing.is_empty() || !false_alerts.is_empty() {
        bail!("alerts missing: {missing:?}; near misses that alerted: {false_alerts:?}");
    }
    let quiet: usize = all.iter().map(|s| s.quiet.len()).sum();
    println!(
        "every expected alert fired ({}); none of the {quiet} near misses did",
        fired.len()
    );
    Ok(())
}

fn owned((detector, who): &scenarios::Expected) -> (String, String) {
    (detector.to_string(), who.clone())
}

/// Time until the window holding now has closed on the detectors' clock
/// and its gauges are published, with a second to spare (windows start at
/// multiples of their length since the epoch, as the sensor's do). Any
/// sooner, the scrape shows the window before.
fn until_window_closes() -> Result<Duration> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let into = Duration::from_nanos((now.as_nanos() % WINDOW.as_nanos()) as u64);
    Ok(WINDOW - into + GRACE + JOIN_WAIT + PUBLISH + Duration::from_secs(1))
}

/// (detector, subject) as the scenarios name alerts.
fn subject(alert: &Value) -> (String, String) {
    let text = |k: &str| alert[k].as_str().unwrap_or("?").to_string();
    let who = alert["client_ip"].as_str().or(alert["principal"].as_str());
    (text("detector"), who.unwrap_or("?").to_string())
}

/// One line: severity, detector, subject, counts.
fn describe(alert: &Value) -> String {
    let (detector, who) = subject(alert);
    let counts = alert["counts"]
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(_, v)| v.as_u64() != Some(0))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let ips = alert["ips"].as_array().filter(|a| !a.is_empty());
    let ips = ips
        .map(|a| format!(" ips={}", Value::from(a.clone())))
        .unwrap_or_default();
    format!(
        "[{}] {detector} {who} {counts}{ips}",
        alert["severity"].as_str().unwrap_or("?")
    )
}

/// The detector gauges and alert counters, a line each, largest first.
fn gauges(metrics: &str) -> String {
    let mut lines: Vec<(&str, &str, f64)> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            Some((name, series, value.parse().ok()?))
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(b.0).then(b.2.total_cmp(&a.2)));
    let mut out = String::new();
    for (name, shown) in [
        ("aps_siem_requests", 1),
        ("aps_siem_ip", 1),
        ("aps_siem_ip_topn", 5),
        ("aps_siem_error_ip_topn", 5),
        ("aps_siem_credential_ips", 3),
        ("siem_sensor_alerts_total", 5),
        ("siem_sensor_kernel_segments_total", 4),
    ] {
        for (_, series, value) in lines.iter().filter(|l| l.0 == name).take(shown) {
            out += &format!("  {series} {value}\n");
        }
    }
    out
}

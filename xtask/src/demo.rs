//! `cargo xtask demo`: the README's first command. Sets up what is missing,
//! builds the sensor, brings up the lab, runs the sensor on the gateway while
//! curl plays a few requests over IPv4 and IPv6, prints each segment as it
//! is captured, and tears everything down.

use std::process::Command;

use anyhow::Result;
use xtask::{
    lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab},
    run,
    sensor::SensorProcess,
    setup,
};

pub fn demo(prefix: &str) -> Result<()> {
    setup::setup()?;
    run(Command::new("cargo").args(["build", "--release", "--package", "sensor"]))?;
    let binary = std::env::current_dir()?.join("target/release/siem-sensor");
    let lab = Lab::up(prefix)?;
    eprintln!("demo: lab up; starting the sensor on {GATEWAY_CLIENT_IF} and {GATEWAY_UPSTREAM_IF}");
    let args = [
        "--iface",
        GATEWAY_CLIENT_IF,
        "--iface",
        GATEWAY_UPSTREAM_IF,
        "--debug-segments",
    ];
    let sensor = SensorProcess::start(
        &lab,
        &binary,
        &args,
        Some(Box::new(|line| {
            summarize(line).into_iter().for_each(|s| println!("{s}"))
        })),
    )?;
    for (ipv6, path) in [
        (false, "/hello"),
        (true, "/hello"),
        (false, "/missing"),
        (false, "/big"),
    ] {
        let url = lab.proxy_url(ipv6, path);
        let (status, body) = lab.curl(&url)?;
        eprintln!("demo: curl {url} -> {status}, {} bytes", body.len());
    }
    let run = sensor.stop()?;
    eprintln!("demo: capture summary {}", run.summary);
    drop(lab);
    eprintln!("demo: lab torn down");
    Ok(())
}

/// One readable line per segment: hook, direction, interface, tuple, flags,
/// payload length and the start of the payload's first line.
/// Lines other than segments (the summary) are left to the caller.
fn summarize(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["event"] != "segment" {
        return None;
    }
    let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
    let first_line: String = text("payload")
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect();
    Some(format!(
        "{:3} {:7} {:11} {} -> {} [{}] {} B | {first_line}",
        text("hook"),
        text("direction"),
        text("iface"),
        text("src"),
        text("dst"),
        text("flags"),
        v["payload_len"],
    ))
}

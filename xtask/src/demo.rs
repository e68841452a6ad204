//! `cargo xtask demo`: the README's first command. Sets up what is missing,
//! builds the sensor, brings up the lab, runs the sensor on the gateway while
//! curl plays a few requests over IPv4 and IPv6, prints each HTTP
//! transaction (both legs) as the sensor emits it, and tears everything down.

use std::process::Command;

use anyhow::Result;
use xtask::{
    lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, GATEWAY_UPSTREAM_V4, Lab},
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
        "--transactions",
        "-",
        "--trusted-proxy",
        GATEWAY_UPSTREAM_V4,
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
        (false, "/hello?apikey=demo-key"),
    ] {
        let url = lab.proxy_url(ipv6, path);
        let (status, body) = lab.curl(&url)?;
        eprintln!("demo: curl {url} -> {status}, {} bytes", body.len());
    }
    let basic = lab
        .proxy_url(false, "/hello")
        .replacen("http://", "http://alice:s3cret@", 1);
    let (status, _) = lab.curl(&basic)?;
    eprintln!("demo: curl with Basic credentials for alice -> {status}");
    let run = sensor.stop()?;
    eprintln!("demo: capture summary {}", run.summary);
    drop(lab);
    eprintln!("demo: lab torn down");
    Ok(())
}

/// One readable line per transaction: client, server, method, path, status,
/// latency, bytes, principal and credential fingerprint.
/// Other lines (the summary) are left to the caller.
fn summarize(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("method")?;
    let text = |key: &str| v[key].as_str().unwrap_or("-").to_string();
    Some(format!(
        "{} -> {}:{} {} {} {} {} ms {}/{} B principal={} credential={}",
        text("client_ip"),
        text("server_ip"),
        v["server_port"],
        text("method"),
        text("path"),
        v["status"],
        v["latency_ms"],
        v["request_bytes"],
        v["response_bytes"],
        text("principal"),
        text("credential"),
    ))
}

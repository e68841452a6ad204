//! `cargo xtask demo`: the README's first command. Sets up what is missing,
//! builds the sensor, brings up the lab, runs the sensor on the gateway while
//! curl plays a few requests over IPv4 and IPv6, prints what it captured,
//! and tears everything down.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};
use xtask::{
    lab::{GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab},
    run, setup,
};

pub fn demo(prefix: &str) -> Result<()> {
    setup::setup()?;
    run(Command::new("cargo").args(["build", "--release", "--package", "sensor"]))?;
    let sensor = std::env::current_dir()?.join("target/release/siem-sensor");
    let lab = Lab::up(prefix)?;
    eprintln!("demo: lab up; starting the sensor on {GATEWAY_CLIENT_IF} and {GATEWAY_UPSTREAM_IF}");
    let mut child = lab
        .command(&lab.gateway_ns(), &sensor.display().to_string())
        .args([
            "run",
            "--iface",
            GATEWAY_CLIENT_IF,
            "--iface",
            GATEWAY_UPSTREAM_IF,
            "--debug-segments",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting siem-sensor")?;
    let stdout = child.stdout.take().context("sensor stdout")?;
    let printer = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{}", summarize(&line));
        }
    });
    thread::sleep(Duration::from_secs(2)); // load + attach
    for (ipv6, path) in [
        (false, "/hello"),
        (true, "/hello"),
        (false, "/missing"),
        (false, "/big"),
    ] {
        let url = lab.proxy_url(ipv6, path);
        eprintln!("demo: curl {url}");
        let _ = lab
            .command(&lab.client_ns(), "curl")
            .args(["-s", "-o", "/dev/null", &url])
            .status();
    }
    thread::sleep(Duration::from_millis(500));
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
    child.wait()?;
    let _ = printer.join();
    drop(lab);
    eprintln!("demo: lab torn down");
    Ok(())
}

/// One readable line per segment: hook, direction, tuple, flags, length and
/// the first line of the payload.
fn summarize(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    if v["event"] != "segment" {
        return format!("summary: {v}");
    }
    let first_line: String = v["payload"]
        .as_str()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    format!(
        "{:3} {:7} {:11} {} -> {} [{}] {} B | {}",
        v["hook"].as_str().unwrap_or(""),
        v["direction"].as_str().unwrap_or(""),
        v["iface"].as_str().unwrap_or(""),
        v["src"].as_str().unwrap_or(""),
        v["dst"].as_str().unwrap_or(""),
        v["flags"].as_str().unwrap_or(""),
        v["payload_len"],
        first_line
    )
}

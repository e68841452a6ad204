//! Labeled traffic scenarios: real curl and wrk clients, from several
//! source addresses, through the lab's gateway. Each states the alerts it
//! must raise and the near misses that must stay quiet. The live tests play
//! them against the sensor; nothing here is a stored capture.

use anyhow::Result;

use crate::{
    lab::{CLIENT_V4, Lab},
    run_quiet,
};

/// The sensor flags the scenarios assume (the decoy route).
pub const SENSOR_ARGS: &[&str] = &["--decoy", "/admin/**"];

/// An alert: detector name and subject (client IP, or principal for
/// `credential_spread`).
pub type Expected = (&'static str, String);

/// One scenario.
pub struct Scenario {
    /// What it plays.
    pub name: &'static str,
    /// Alerts it must raise.
    pub raises: Vec<Expected>,
    /// Alerts it must not raise (near misses).
    pub quiet: Vec<Expected>,
    play: fn(&Lab) -> Result<()>,
}

impl Scenario {
    /// Plays the traffic.
    ///
    /// # Errors
    /// A client failed to run.
    pub fn play(&self, lab: &Lab) -> Result<()> {
        (self.play)(lab)
    }
}

/// Every scenario, in the order they are played.
pub fn all() -> Vec<Scenario> {
    let extra = Lab::extra_client;
    vec![
        Scenario {
            name: "one API credential used from three addresses; another from two",
            raises: vec![("credential_spread", "alice".into())],
            quiet: vec![("credential_spread", "bob".into())],
            play: |lab| {
                for i in 0..3 {
                    lab.curl_from(
                        &Lab::extra_client(i),
                        &["-u", "alice:wonderland"],
                        "/hello",
                        2,
                    )?;
                }
                for i in 3..5 {
                    lab.curl_from(&Lab::extra_client(i), &["-u", "bob:builder"], "/hello", 2)?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "recon then probing: successes, then a burst of 404s; a near miss with too few successes",
            raises: vec![("success_then_failure", extra(5))],
            quiet: vec![("success_then_failure", extra(6)), ("error_rate", extra(6))],
            play: |lab| {
                lab.curl_from(&Lab::extra_client(5), &[], "/hello", 6)?;
                lab.curl_from(&Lab::extra_client(5), &[], "/missing", 12)?;
                lab.curl_from(&Lab::extra_client(6), &[], "/hello", 3)?;
                lab.curl_from(&Lab::extra_client(6), &[], "/missing", 12)
            },
        },
        Scenario {
            name: "an error scan: 30 requests for missing paths",
            raises: vec![("error_rate", extra(7))],
            quiet: vec![("request_flood", extra(7))],
            play: |lab| lab.curl_from(&Lab::extra_client(7), &[], "/missing", 30),
        },
        Scenario {
            name: "a hit on the decoy route",
            raises: vec![("honeypot", extra(4))],
            quiet: vec![("honeypot", extra(0))],
            play: |lab| lab.curl_from(&Lab::extra_client(4), &[], "/admin/login", 1),
        },
        Scenario {
            name: "a flood from one address (wrk, 2 s)",
            raises: vec![("request_flood", CLIENT_V4.into())],
            quiet: vec![("error_rate", CLIENT_V4.into())],
            play: |lab| {
                let url = lab.proxy_url(false, "/hello");
                run_quiet(
                    lab.command(&lab.client_ns(), "wrk")
                        .args(["-t1", "-c2", "-d2s", &url]),
                )
                .map(drop)
            },
        },
    ]
}

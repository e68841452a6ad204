//! Labeled traffic scenarios: real clients (curl; wrk and ab, or h2load
//! over HTTP/2: [`crate::load`]) on the lab's client hosts, through the
//! Kong-like gateway. Each states the
//! alerts it must raise and the near misses that must stay quiet. The live
//! tests and `cargo xtask demo` play them against the sensor; nothing here
//! is a stored capture.
//!
//! Client hosts (`Lab::extra_client(i)`, `hN` below) have one role each, so
//! the scenarios do not add up in the per-IP detectors.

use std::process::Stdio;

use anyhow::{Result, bail};

use crate::{
    CLIENT_V4, GATEWAY_CLIENT_IF, GATEWAY_UPSTREAM_IF, Lab, Listener,
    consumers::Consumer,
    load::{Load, Stop},
    run_quiet,
};

/// The sensor flags the scenarios assume, for `run` and `replay` alike:
/// the decoy route. (`replay` also needs the Kong node's addresses,
/// [`crate::kong_args`]; `run` in the gateway finds them itself.)
pub const SENSOR_ARGS: &[&str] = &["--decoy", "/admin/**"];

/// `replay`'s flags for a capture of the scenarios: [`SENSOR_ARGS`] and
/// the Kong node's addresses.
pub fn replay_args() -> Vec<&'static str> {
    let mut args = crate::kong_args();
    args.extend(SENSOR_ARGS);
    args
}

/// `run` on both of the gateway's legs, alerts on stdout, with [`SENSOR_ARGS`].
pub fn live_args() -> Vec<&'static str> {
    let mut args = vec![
        "--iface",
        GATEWAY_CLIENT_IF,
        "--iface",
        GATEWAY_UPSTREAM_IF,
        "--alerts",
        "-",
    ];
    args.extend(SENSOR_ARGS);
    args
}

/// A flood from one address: `GET /hello` 2,400 times, 4 at a time (ab;
/// h2load over HTTP/2), four times the `request_flood` budget (600 in a
/// 15 s window), so at least 1,200 land in one window wherever its edges
/// fall. A count, not a time: a test of detection, not of capacity
/// (`cargo xtask bench` measures that). Flat out for 2 s, how much came
/// through depended on the machine, and an unoptimized sensor fell behind
/// and dropped (counted) what replay then saw; paced, a busy machine
/// stretched the pauses to barely 600. Its records fit in the ring buffer
/// even unread.
pub const FLOOD: Load<'static> = Load {
    paths: &["/hello"],
    header: None,
    rate: None,
    connections: 4,
    stop: Stop::Requests(2400),
};

/// An alert: detector name and subject (client IP, or principal for
/// `credential_spread`).
pub type Expected = (&'static str, String);

/// One scenario.
pub struct Scenario {
    /// What it plays, with which clients.
    pub name: &'static str,
    /// Alerts it must raise.
    pub raises: Vec<Expected>,
    /// Alerts it must not raise (near misses).
    pub quiet: Vec<Expected>,
    play: fn(&Lab, Listener) -> Result<()>,
}

impl Scenario {
    /// Plays the traffic through the gateway's plain HTTP listener.
    ///
    /// # Errors
    /// A client failed to run.
    pub fn play(&self, lab: &Lab) -> Result<()> {
        self.play_over(lab, Listener::Http)
    }

    /// Plays the traffic through the gateway's `listener`: the same
    /// clients, requests and expected alerts over HTTPS as over HTTP.
    ///
    /// # Errors
    /// A client failed to run.
    pub fn play_over(&self, lab: &Lab, listener: Listener) -> Result<()> {
        (self.play)(lab, listener)
    }
}

fn h(i: u8) -> String {
    Lab::extra_client(i)
}

/// The scenarios' alerts that only Kong's own answers (401 to guessed
/// keys, 429 over a rate limit) raise: those requests never reach the
/// upstream, so a sensor seeing only the upstream leg cannot raise them.
pub fn kong_rejections() -> Vec<Expected> {
    vec![("success_then_failure", h(8)), ("error_rate", h(12))]
}

/// Every per-IP detector, for the quiet list of a well-behaved host.
const PER_IP: [&str; 3] = ["request_flood", "error_rate", "success_then_failure"];

/// Every scenario, in the order they are played.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "normal API use: alice, bob (key in the header) and carol (key in the query), \
                   3 s at about 20 requests/s each (wrk, h2load)",
            raises: vec![],
            quiet: (0..3)
                .flat_map(|i| PER_IP.map(|d| (d, h(i))))
                .chain(["alice", "bob", "carol"].map(|c| ("credential_spread", c.into())))
                .collect(),
            play: |lab, via| {
                let clients = [("alice", false), ("bob", false), ("carol", true)]
                    .into_iter()
                    .zip(0..)
                    .map(|((name, in_query), i)| {
                        let consumer = Consumer::named(name);
                        let header = consumer.header();
                        let paths: Vec<String> = CONSUMER_PATHS
                            .iter()
                            .map(|p| match (in_query, p.contains('?')) {
                                (false, _) => p.to_string(),
                                (true, q) => {
                                    let sep = if q { '&' } else { '?' };
                                    format!("{p}{sep}apikey={}", consumer.key)
                                }
                            })
                            .collect();
                        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
                        let load = Load {
                            paths: &paths,
                            header: (!in_query).then_some(header.as_str()),
                            rate: Some(20),
                            connections: 1,
                            stop: Stop::Seconds(3),
                        };
                        let mut cmd = load.command(lab, via, &h(i))?;
                        Ok(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                for child in clients {
                    let out = child.wait_with_output()?;
                    if !out.status.success() {
                        bail!("load client: {}", String::from_utf8_lossy(&out.stderr));
                    }
                }
                Ok(())
            },
        },
        Scenario {
            name: "a flood from one address: 2,400 requests, 4 at a time (ab, h2load)",
            raises: vec![("request_flood", CLIENT_V4.into())],
            quiet: vec![("error_rate", CLIENT_V4.into())],
            play: |lab, via| run_quiet(&mut FLOOD.command(lab, via, CLIENT_V4)?).map(drop),
        },
        Scenario {
            name: "an error scan: well-known sensitive paths, 2 s at about 100 requests/s (wrk, h2load)",
            raises: vec![("error_rate", h(10))],
            quiet: vec![
                ("request_flood", h(10)),
                ("success_then_failure", h(10)),
                ("honeypot", h(10)),
            ],
            play: |lab, via| {
                let load = Load {
                    paths: SCAN_PATHS,
                    header: None,
                    rate: Some(100),
                    connections: 1,
                    stop: Stop::Seconds(2),
                };
                run_quiet(&mut load.command(lab, via, &h(10))?).map(drop)
            },
        },
        Scenario {
            name: "one API key (dave's) used from three addresses, then a fourth (the alert \
                   is updated); erin's from two (curl)",
            raises: vec![("credential_spread", "dave".into())],
            quiet: vec![("credential_spread", "erin".into())],
            play: |lab, via| {
                let (dave, erin) = (Consumer::named("dave"), Consumer::named("erin"));
                via.curl_from(lab, &h(3), &["-H", &dave.header()], "/api/orders", 2)?;
                let query = format!("/api/users/7?apikey={}", dave.key);
                via.curl_from(lab, &h(4), &[], &query, 2)?;
                via.curl_from(lab, &h(5), &["-H", &dave.header()], "/api/items", 2)?;
                // A fourth address (a normal-use host: two more requests
                // change nothing of its own).
                via.curl_from(lab, &h(2), &["-H", &dave.header()], "/api/items", 1)?;
                for i in [6, 7] {
                    via.curl_from(lab, &h(i), &["-H", &erin.header()], "/api/orders", 2)?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "reconnaissance then attack: 6 public pages, then 15 guessed API keys \
                   (curl, then ab or h2load); a near miss with 3 pages first",
            raises: vec![("success_then_failure", h(8))],
            quiet: vec![
                ("error_rate", h(8)),
                ("success_then_failure", h(9)),
                ("error_rate", h(9)),
            ],
            play: |lab, via| {
                for (host, pages) in [(h(8), 6), (h(9), 3)] {
                    via.curl_from(lab, &host, &[], "/hello", pages)?;
                    ab(lab, via, &host, 15, 1, "apikey: guess-0000", "/api/orders")?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "a hit on a decoy route (curl)",
            raises: vec![("honeypot", h(11))],
            quiet: vec![("honeypot", CLIENT_V4.into())],
            play: |lab, via| via.curl_from(lab, &h(11), &[], "/admin/login", 1),
        },
        Scenario {
            name: "a consumer over its rate limit: mallory, 300 requests 4 at a time (ab, h2load)",
            raises: vec![("error_rate", h(12))],
            quiet: vec![("request_flood", h(12)), ("success_then_failure", h(12))],
            play: |lab, via| {
                let header = Consumer::named("mallory").header();
                ab(lab, via, &h(12), 300, 4, &header, "/api/orders")
            },
        },
    ]
}

/// The lab's API routes in turn, one in twenty a 404 (a consumer's normal use).
const CONSUMER_PATHS: &[&str] = &[
    "/api/orders",
    "/api/users/7",
    "/api/items",
    "/api/orders?page=2",
    "/api/users/7/orders",
    "/api/items?sort=name",
    "/api/orders/42",
    "/api/users/11",
    "/api/items/3",
    "/api/orders?status=open",
    "/api/users/7",
    "/api/items",
    "/api/orders",
    "/api/users/12",
    "/api/items?page=3",
    "/api/orders/43",
    "/api/users/7",
    "/api/items/9",
    "/api/orders?page=3",
    "/api/missing",
];

/// A content-discovery scan: well-known sensitive paths, nearly all 404.
const SCAN_PATHS: &[&str] = &[
    "/.env",
    "/.git/config",
    "/wp-login.php",
    "/phpmyadmin/",
    "/server-status",
    "/backup.zip",
    "/config.json",
    "/.aws/credentials",
    "/api/v1/debug",
    "/actuator/env",
    "/console",
    "/.DS_Store",
    "/web.config",
    "/db.sql",
    "/xmlrpc.php",
    "/.htpasswd",
    "/cgi-bin/test.cgi",
    "/solr/admin",
    "/hello",
];

/// `N` requests for `path`, `C` at a time, with `header`, from `source`
/// (ab over HTTP/1.1, a connection per request; h2load over HTTP/2).
fn ab(
    lab: &Lab,
    via: Listener,
    source: &str,
    n: u32,
    c: u32,
    header: &str,
    path: &str,
) -> Result<()> {
    let load = Load {
        paths: &[path],
        header: Some(header),
        rate: None,
        connections: c,
        stop: Stop::Requests(n),
    };
    run_quiet(&mut load.command(lab, via, source)?).map(drop)
}

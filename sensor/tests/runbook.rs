//! RUNBOOK.md has a section for every detector, under the anchor the
//! alerts link to (`--runbook-url` + `#` + the detector's name), and the
//! link an alert carries leads to a heading that exists: a crafted capture
//! raising every detector is replayed through the CLI and each transition's
//! `runbook_url` is checked against the headings of RUNBOOK.md, with
//! GitHub's anchor rule. The default link is the file the Debian package
//! installs.

mod support;

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::BufWriter,
    net::Ipv4Addr,
    path::Path,
    process::Command,
};

use lab::captures::CaptureWriter;
use sensor::detect::{Detector, RUNBOOK_URL};
use serde_json::Value;
use support::SENSOR;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The Kong node of the capture (proxy listener :8000) and its upstream.
const KONG: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);

fn runbook() -> String {
    fs::read_to_string(Path::new(ROOT).join("RUNBOOK.md")).unwrap()
}

/// GitHub's anchor for a heading's text (github-slugger): lowercased,
/// every character that is not a letter, a digit, a space, `-` or `_`
/// dropped, each space made a `-`.
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The ATX headings of a Markdown text outside fenced code blocks, as
/// (level, anchor); a repeated anchor gets `-1`, `-2`, ... as on GitHub.
fn headings(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = line.trim_start_matches(' ');
        if indent <= 3 {
            let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
            match (fence, marker) {
                (None, Some(m)) => {
                    fence = Some(m);
                    continue;
                }
                (Some(open), Some(m)) if open == m && trimmed.trim_end() == m => {
                    fence = None;
                    continue;
                }
                _ => {}
            }
        }
        if fence.is_some() || indent > 3 {
            continue;
        }
        let level = trimmed.bytes().take_while(|&b| b == b'#').count();
        let rest = &trimmed[level..];
        if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        // An optional closing sequence of `#`s goes (CommonMark 4.2).
        let mut text = rest.trim();
        let closed = text.trim_end_matches('#');
        if closed.is_empty() || closed.ends_with([' ', '\t']) {
            text = closed.trim_end();
        }
        let base = slug(text);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.push((level, anchor));
    }
    out
}

#[test]
fn anchors_follow_githubs_rule() {
    let md = "# Runbook\n\
              ## request_flood\n\
              ## Triage: PromQL & jq (per IP)!\n\
              ```sh\n# not a heading\n```\n\
              ### Triage\n### Triage ###\n\
              #hashtag\n    ## indented code\n\
              ## `error_rate`\n";
    let got: Vec<_> = headings(md).into_iter().map(|(_, a)| a).collect();
    assert_eq!(
        got,
        [
            "runbook",
            "request_flood",
            "triage-promql--jq-per-ip",
            "triage",
            "triage-1",
            "error_rate",
        ]
    );
}

#[test]
fn every_detector_has_a_section() {
    let sections: Vec<String> = headings(&runbook())
        .into_iter()
        .filter(|(level, _)| *level == 2)
        .map(|(_, anchor)| anchor)
        .collect();
    for d in Detector::ALL {
        assert!(
            sections.iter().any(|s| s == d.as_str()),
            "RUNBOOK.md has no `## {}` section (its sections: {sections:?})",
            d.as_str()
        );
    }
}

#[test]
fn the_runbooks_own_links_lead_to_headings() {
    let text = runbook();
    let anchors: BTreeSet<String> = headings(&text).into_iter().map(|(_, a)| a).collect();
    let links: Vec<&str> = text
        .match_indices("](#")
        .map(|(at, _)| {
            let rest = &text[at + 3..];
            &rest[..rest.find(')').unwrap()]
        })
        .collect();
    assert!(links.len() > 10, "{links:?}");
    for link in links {
        assert!(anchors.contains(link), "[..](#{link}) leads to no heading");
    }
}

/// Request number `id` from `client`, on a connection of its own, answered
/// with `status`; Kong's request id in the response. With `consumer`,
/// Kong's upstream leg of it too, naming the consumer and its credential.
fn exchange(
    w: &mut CaptureWriter<BufWriter<File>>,
    client: Ipv4Addr,
    request: &str,
    status: &str,
    id: u16,
    consumer: Option<&str>,
) {
    let rid = format!("{id:032x}");
    let mut c = w.connect((client, 10000 + id), (KONG, 8000)).unwrap();
    w.request(&mut c, request.as_bytes()).unwrap();
    if let Some(name) = consumer {
        let head = request.trim_end_matches("\r\n");
        let up = format!(
            "{head}\r\nX-Real-IP: {}\r\nX-Kong-Request-Id: {rid}\r\nX-Consumer-ID: 4f1c-{name}\r\n\
             X-Consumer-Username: {name}\r\nX-Credential-Identifier: 9d2e-{name}-key\r\n\r\n",
            client
        );
        let mut u = w.connect((KONG, 40000 + id), (UPSTREAM, 8080)).unwrap();
        w.request(&mut u, up.as_bytes()).unwrap();
        w.response(&mut u, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    }
    let response =
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nX-Kong-Request-Id: {rid}\r\n\r\n");
    w.response(&mut c, response.as_bytes()).unwrap();
}

/// A capture in which every detector raises one alert (defaults, plus the
/// decoy `/admin/**`): a flood, an error scan, recon then failures, a key
/// used from three addresses, a decoy hit. Each from its own address.
fn every_detector(w: &mut CaptureWriter<BufWriter<File>>) {
    let ip = |i: u8| Ipv4Addr::new(192, 0, 2, i);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };
    // request_flood: 601 requests in one 15 s window.
    let flood = get("/hello");
    for _ in 0..601 {
        exchange(w, ip(10), &flood, "200 OK", next(), None);
    }
    // error_rate: 20 errors, all of its requests.
    for i in 0..20 {
        let path = format!("/.env{i}");
        exchange(w, ip(20), &get(&path), "404 Not Found", next(), None);
    }
    // success_then_failure: 5 pages, then 10 refused guesses.
    for _ in 0..5 {
        exchange(w, ip(30), &get("/"), "200 OK", next(), None);
    }
    for _ in 0..10 {
        exchange(
            w,
            ip(30),
            &get("/api/orders"),
            "401 Unauthorized",
            next(),
            None,
        );
    }
    // credential_spread: dave's key from three addresses.
    let keyed =
        "GET /api/orders HTTP/1.1\r\nHost: api.example.com\r\napikey: dave-key-0001\r\n\r\n";
    for i in 0..3 {
        exchange(w, ip(40 + i), keyed, "200 OK", next(), Some("dave"));
    }
    // honeypot: a decoy route.
    exchange(
        w,
        ip(50),
        &get("/admin/login"),
        "404 Not Found",
        next(),
        None,
    );
}

/// `siem-sensor replay --json` of the capture `write` makes, with `args`:
/// every alert transition it printed.
fn replay(args: &[&str], write: impl FnOnce(&mut CaptureWriter<BufWriter<File>>)) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("every-detector.pcap");
    let mut w = CaptureWriter::new(BufWriter::new(File::create(&pcap).unwrap())).unwrap();
    write(&mut w);
    drop(w);
    let out = Command::new(SENSOR)
        .args(["replay", "--json", "--kong-address", "10.200.0.1"])
        .args(["--decoy", "/admin/**"])
        .arg("--fingerprint-key")
        .arg(dir.path().join("fp.key"))
        .args(args)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().unwrap();
    assert!(summary.get("pipeline").is_some(), "{summary}");
    lines
}

#[test]
fn every_alert_links_a_runbook_heading() {
    let base = "https://wiki.example.net/siem-sensor/RUNBOOK.md";
    let alerts = replay(&["--runbook-url", base], every_detector);
    let anchors: BTreeSet<String> = headings(&runbook()).into_iter().map(|(_, a)| a).collect();

    let fired: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["detector"].as_str().unwrap())
        .collect();
    let all: BTreeSet<&str> = Detector::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(fired, all, "the capture raises every detector: {alerts:#?}");
    assert!(alerts.iter().any(|a| a["state"] == "resolved"));

    for a in &alerts {
        let url = a["runbook_url"].as_str().unwrap();
        let (page, fragment) = url.split_once('#').unwrap_or_else(|| panic!("{a}"));
        assert_eq!(page, base, "{a}");
        assert_eq!(fragment, a["detector"].as_str().unwrap(), "{a}");
        assert!(
            anchors.contains(fragment),
            "{url} ({} {}) leads to no heading of RUNBOOK.md",
            a["detector"],
            a["state"]
        );
    }
}

#[test]
fn the_default_link_is_the_installed_runbook() {
    let alerts = replay(&[], |w| {
        let hit = "GET /admin/login HTTP/1.1\r\nHost: api\r\n\r\n";
        exchange(w, Ipv4Addr::new(192, 0, 2, 60), hit, "200 OK", 1, None);
    });
    assert!(!alerts.is_empty());
    for a in &alerts {
        assert_eq!(a["runbook_url"], format!("{RUNBOOK_URL}#honeypot"), "{a}");
    }

    // The Debian package puts RUNBOOK.md where that URL points.
    let path = RUNBOOK_URL.strip_prefix("file://").unwrap();
    let (dir, name) = path.rsplit_once('/').unwrap();
    let manifest: toml::Table = fs::read_to_string(Path::new(ROOT).join("sensor/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let runbook = assets
        .iter()
        .filter_map(|a| a.as_array())
        .find(|a| a[0].as_str() == Some("../RUNBOOK.md"))
        .expect("the package installs RUNBOOK.md");
    let target = runbook[1].as_str().unwrap();
    let installed = match target.strip_suffix('/') {
        Some(d) => format!("/{d}/{name}"),
        None => format!("/{target}"),
    };
    assert_eq!(installed, path, "{dir}");
    assert_eq!(runbook[2].as_str(), Some("644"));
}

/// The Prometheus rules' `runbook_url` annotations lead to headings too:
/// `{{ $labels.detector }}` to every detector's section.
#[test]
fn the_prometheus_rules_link_runbook_headings() {
    let rules = fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/siem-sensor.rules.yml"))
        .unwrap();
    let anchors: BTreeSet<String> = headings(&runbook()).into_iter().map(|(_, a)| a).collect();
    let mut links = 0;
    for line in rules.lines() {
        let Some(value) = line.trim().strip_prefix("runbook_url:") else {
            continue;
        };
        links += 1;
        let url = value.trim().trim_matches('"');
        let (page, fragment) = url.split_once('#').unwrap_or_else(|| panic!("{url}"));
        assert_eq!(page, RUNBOOK_URL, "{line}");
        let fragments: Vec<String> = if fragment == "{{ $labels.detector }}" {
            Detector::ALL
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect()
        } else {
            vec![fragment.to_owned()]
        };
        for f in fragments {
            assert!(
                anchors.contains(&f),
                "{url}: no heading `{f}` in RUNBOOK.md"
            );
        }
    }
    assert!(links >= 2, "the rules link the runbook");
}

//! The output streams and files through the command line and the config
//! file: JSON lines on stdout are never mixed with text, files are created
//! readable by owner and group only (or per `--file-mode`), and the record
//! cap's bounds are enforced.

mod support;

use std::{
    fs::{self, File},
    io::BufWriter,
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Command,
};

use lab::captures::CaptureWriter;
use serde_json::Value;
use support::SENSOR;

/// A capture of one answered decoy hit and one plain request.
fn capture(dir: &Path) -> String {
    let pcap = dir.join("decoy.pcap");
    let mut w = CaptureWriter::new(BufWriter::new(File::create(&pcap).unwrap())).unwrap();
    let server = (Ipv4Addr::new(10, 77, 0, 1), 8000);
    let mut c = w
        .connect((Ipv4Addr::new(198, 51, 100, 3), 40000), server)
        .unwrap();
    for path in ["/admin/login", "/hello"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n");
        w.request(&mut c, request.as_bytes()).unwrap();
        w.response(
            &mut c,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
    }
    drop(w);
    pcap.display().to_string()
}

fn replay(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let pcap = capture(dir);
    let key = dir.join("fp.key").display().to_string();
    let out = Command::new(SENSOR)
        .args([
            "replay",
            &pcap,
            "--fingerprint-key",
            &key,
            "--decoy",
            "/admin/**",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn stdout_carrying_json_gets_no_text_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = replay(dir.path(), &["--transactions", "-"]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "two transactions and the summary: {out}");
    assert_eq!(lines[2]["event"], "replay_summary");
    assert!(err.contains("alert: ") && err.contains("honeypot"), "{err}");
    // Without JSON on stdout, text alerts stay there.
    let (ok, out, _) = replay(dir.path(), &[]);
    assert!(
        ok && out.contains("alert: ") && out.contains("honeypot"),
        "{out}"
    );
}

#[test]
fn output_files_are_created_owner_and_group_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (tx, alerts) = (d.join("tx.jsonl"), d.join("alerts.jsonl"));
    let (ok, _, err) = replay(
        d,
        &[
            "--transactions",
            tx.to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!((mode(&tx), mode(&alerts)), (0o640, 0o640));
    // The decoy's episode: firing, then resolved at the end of the input.
    let states: Vec<String> = fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["state"].to_string())
        .collect();
    assert_eq!(states, [r#""firing""#, r#""resolved""#]);

    // From the config file, and a flag's bad mode is refused.
    let config = d.join("sensor.toml");
    let private = d.join("private.jsonl");
    let text = format!(
        "[outputs]\ntransactions = \"{}\"\nfile_mode = \"0600\"\n",
        private.display()
    );
    fs::write(&config, text).unwrap();
    let (ok, _, err) = replay(d, &["--config", config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(mode(&private), 0o600);
    let (ok, _, err) = replay(d, &["--file-mode", "0755"]);
    assert!(!ok && err.contains("at most 0666"), "{err}");
}

#[test]
fn the_record_cap_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for (cap, accepted) in [
        ("479", false),
        ("480", true),
        ("65000", true),
        ("65001", false),
    ] {
        let (ok, _, err) = replay(
            dir.path(),
            &["--syslog", "udp:127.0.0.1:9", "--syslog-max-record", cap],
        );
        assert_eq!(ok, accepted, "{cap}: {err}");
    }
}

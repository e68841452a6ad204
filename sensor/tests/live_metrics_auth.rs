//! The metrics endpoint protected by a web config file (the Prometheus
//! exporter-toolkit format): a real Prometheus (Debian's `prometheus`)
//! scrapes the live sensor over TLS with basic auth; curl with a wrong
//! password gets 401, plain HTTP gets nothing, an address outside
//! `--metrics-allow` gets 403; client certificates and a password change
//! without restart, set through the sensor's config file; a bad web config
//! is refused by `check-config` at its line.

mod support;

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use lab::{BOTH_LEGS, GATEWAY_CLIENT_IF, GATEWAY_V4, Lab, prometheus::Prometheus};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use support::{SENSOR, require_root, start_sensor};

/// The server certificate's name; the lab has no DNS, so curl and
/// Prometheus connect to an address and check this name.
const NAME: &str = "sensor.test";

/// Writes to `dir` a CA (`ca.pem`), a server certificate for [`NAME`]
/// (`server.pem`, `server.key`), and a client certificate (`client.pem`,
/// `client.key`), all signed by the CA.
fn pki(dir: &Path) {
    // Distinct subject names: OpenSSL (curl) takes a certificate whose
    // subject is its issuer's for self-signed.
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "siem-sensor test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![NAME.to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name}.{NAME}"));
        let cert = params.signed_by(&key, &ca).unwrap();
        fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// The bcrypt hash `htpasswd -nbB` makes of `password`.
fn bcrypt(password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "10", "prometheus", password])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim().split_once(':').unwrap().1.to_string()
}

/// `curl ARGS` in the gateway namespace: the status code (`000` when no
/// HTTP answer came), the response headers and the body.
fn curl(lab: &Lab, args: &[&str]) -> (String, String, String) {
    let dir = lab.workdir();
    let headers = dir.join("curl.headers");
    let body = dir.join("curl.body");
    for stale in [&headers, &body] {
        let _ = fs::remove_file(stale);
    }
    let out = lab
        .command(&lab.gateway_ns(), "curl")
        .args(["-sS", "--max-time", "5", "-w", "%{http_code}", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(args)
        .output()
        .unwrap();
    // Shown when the test fails: why curl got no answer.
    eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        read(&headers),
        read(&body),
    )
}

/// curl's arguments for `https://NAME:9251/metrics` at `address`, trusting
/// the test CA, plus `extra`.
fn https(lab: &Lab, address: &str, extra: &[&str]) -> Vec<String> {
    let ca = lab.workdir().join("ca.pem");
    let mut args = vec![
        "--cacert".to_string(),
        ca.display().to_string(),
        "--resolve".to_string(),
        format!("{NAME}:9251:{address}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_string()));
    args.push(format!("https://{NAME}:9251/metrics"));
    args
}

fn curl_https(lab: &Lab, address: &str, extra: &[&str]) -> (String, String, String) {
    let args = https(lab, address, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(lab, &args)
}

#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    require_root();
    let lab = Lab::up("ss-promtls").unwrap();
    let dir = lab.workdir().to_path_buf();
    pki(&dir);
    let web = dir.join("web.yml");
    fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: '{}'\n",
            bcrypt("s3cret pass")
        ),
    )
    .unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s}}\n\
         scrape_configs:\n  - job_name: siem-sensor\n    scheme: https\n    \
         tls_config: {{ca_file: {}, server_name: {NAME}}}\n    \
         basic_auth: {{username: prometheus, password: 's3cret pass'}}\n    \
         static_configs: [{{targets: ['127.0.0.1:9251']}}]\n",
        dir.join("ca.pem").display()
    );
    let started = Instant::now();
    let sensor = start_sensor(
        &lab,
        &[
            &BOTH_LEGS[..],
            &[
                "--listen",
                "0.0.0.0:9251",
                "--metrics-allow",
                "127.0.0.1",
                "--web.config.file",
                web.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    let prometheus = Prometheus::start(&lab, &dir.join("prometheus"), &config).unwrap();
    let query = |q: &str| prometheus.value(q);
    prometheus.wait("the TLS scrape target to be up", &|p| {
        p.value(r#"up{job="siem-sensor"}"#) == Some(1.0)
    });
    // Before any 15 s window could close, the window gauges are there, as 0,
    // in every scrape.
    prometheus.wait("a few scrapes", &|p| {
        p.value("count_over_time(up[1m])").is_some_and(|n| n >= 3.0)
    });
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "too slow to see the first window"
    );
    for gauge in [
        "aps_siem_requests",
        "aps_siem_ip",
        "aps_siem_ip_buffer",
        "aps_siem_counter",
    ] {
        assert_eq!(query(gauge), Some(0.0), "{gauge}");
        assert_eq!(
            query(&format!("count_over_time({gauge}[1m])")),
            query("count_over_time(up[1m])"),
            "{gauge} missing from a scrape"
        );
    }
    assert_eq!(query("siem_sensor_build_info"), Some(1.0));

    // curl: the right password, a wrong one, none, plain HTTP, and the right
    // password from an address not allowed.
    let (code, _, body) = curl_https(&lab, "127.0.0.1", &["-u", "prometheus:s3cret pass"]);
    assert_eq!(code, "200");
    assert!(body.contains("siem_sensor_kernel_segments_total"), "{body}");
    for auth in [&["-u", "prometheus:wrong"][..], &[]] {
        let (code, headers, _) = curl_https(&lab, "127.0.0.1", auth);
        assert_eq!(code, "401", "{auth:?}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{headers}"
        );
    }
    let (code, _, _) = curl(
        &lab,
        &[
            "-u",
            "prometheus:s3cret pass",
            "http://127.0.0.1:9251/metrics",
        ],
    );
    assert_eq!(code, "000", "plain HTTP answered");
    let (code, _, _) = curl_https(
        &lab,
        GATEWAY_V4,
        &["--interface", GATEWAY_V4, "-u", "prometheus:s3cret pass"],
    );
    assert_eq!(code, "403");
    for reason in ["bad_credentials", "no_credentials", "tls", "address"] {
        let q = format!(r#"siem_sensor_metrics_auth_failures_total{{reason="{reason}"}}"#);
        prometheus.wait(&q, &|p| p.value(&q).is_some_and(|n| n >= 1.0));
    }
    assert_eq!(
        query(r#"up{job="siem-sensor"}"#),
        Some(1.0),
        "Prometheus still scrapes"
    );
    sensor.stop().unwrap();
    drop(prometheus);
    lab.teardown();
}

/// Through the config file: `[metrics] web_config_file` asking for client
/// certificates and basic auth. A new password in the web config applies to
/// the next request, without a restart or SIGHUP.
#[test]
#[ignore = "live: needs root and the lab (cargo xtask test runs it)"]
fn the_config_file_sets_client_certificates_and_the_password_is_reread() {
    require_root();
    let lab = Lab::up("ss-mtls").unwrap();
    let dir = lab.workdir().to_path_buf();
    pki(&dir);
    let web = dir.join("web.yml");
    let write_web = |password: &str| {
        let text = format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n\
             basic_auth_users:\n  prometheus: '{}'\n",
            bcrypt(password)
        );
        fs::write(&web, text).unwrap();
    };
    write_web("first");
    let toml = dir.join("sensor.toml");
    fs::write(
        &toml,
        format!(
            "[capture]\ninterfaces = [\"{GATEWAY_CLIENT_IF}\"]\n\
             [metrics]\nlisten = \"127.0.0.1:9251\"\nallow = [\"127.0.0.0/8\"]\n\
             web_config_file = \"{}\"\n",
            web.display()
        ),
    )
    .unwrap();
    let checked = Command::new(SENSOR)
        .args(["check-config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let sensor = start_sensor(&lab, &["--config", toml.to_str().unwrap()]);
    let cert = dir.join("client.pem").display().to_string();
    let key = dir.join("client.key").display().to_string();
    let with_cert = |password: &str| {
        let user = format!("prometheus:{password}");
        curl_https(
            &lab,
            "127.0.0.1",
            &["--cert", &cert, "--key", &key, "-u", &user],
        )
        .0
    };
    assert_eq!(with_cert("first"), "200");
    let (code, _, _) = curl_https(&lab, "127.0.0.1", &["-u", "prometheus:first"]);
    assert_eq!(code, "000", "served without a client certificate");

    write_web("second");
    assert_eq!(with_cert("first"), "401", "the old password still works");
    assert_eq!(with_cert("second"), "200");
    let (_, _, body) = curl_https(
        &lab,
        "127.0.0.1",
        &["--cert", &cert, "--key", &key, "-u", "prometheus:second"],
    );
    let refused: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix(r#"siem_sensor_metrics_auth_failures_total{reason="tls"} "#))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no TLS refusals counted:\n{body}"));
    assert!(refused >= 1.0, "{refused}");
    sensor.stop().unwrap();
    lab.teardown();
}

/// `check-config` refuses a bad web config at the config file's line, naming
/// the web config's bad key.
#[test]
fn check_config_names_a_bad_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    fs::write(&web, "basic_auth_users:\n  p: secret\nrate_limt: {}\n").unwrap();
    let toml = dir.path().join("sensor.toml");
    fs::write(
        &toml,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\n[metrics]\nweb_config_file = \"{}\"\n",
            web.display()
        ),
    )
    .unwrap();
    let out = Command::new(SENSOR)
        .args(["check-config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.starts_with(&format!(
            "siem-sensor: error: {}:4: web config {}: unknown field `rate_limt`",
            toml.display(),
            web.display()
        )),
        "{err}"
    );
    fs::write(&web, "basic_auth_users:\n  p: secret\n").unwrap();
    let out = Command::new(SENSOR)
        .args(["check-config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`p`: not a bcrypt hash"), "{err}");
}

//! Web config files as an operator writes them: good ones load and build a
//! TLS server; every bad one is refused with the key or file named.

use std::fs;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use super::*;

/// `htpasswd -nbB prometheus secret`.
const HASH: &str = "$2y$05$3FdNvLoB8V2Wjucsld2gq.7V5X2E8vxfDy9jqPShJ2E4So7nSAD3e";

/// A test CA, and a server certificate and key it signed, in `dir` as
/// `ca.pem`, `server.pem` and `server.key`.
fn certificates(dir: &Path) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["sensor.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// Loads `text` as `web.yml` in a directory holding [`certificates`].
fn load(text: &str) -> (tempfile::TempDir, Result<WebConfig, WebConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let path = dir.path().join("web.yml");
    fs::write(&path, text).unwrap();
    let config = WebConfig::load(&path);
    (dir, config)
}

fn error(text: &str) -> String {
    let (dir, config) = load(text);
    let e = config.and_then(|c| c.tls().map(drop)).unwrap_err();
    e.to_string()
        .replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn a_good_file_loads_with_relative_paths_and_builds_tls() {
    let (_dir, config) = load(&format!(
        "# comment\n\
         tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
         min_version: TLS13\n\
         basic_auth_users:\n  prometheus: {HASH}\n"
    ));
    let config = config.unwrap();
    assert!(config.has_tls());
    assert_eq!(config.users().get("prometheus").unwrap(), HASH);
    let tls = config.tls().unwrap().unwrap();
    assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);
    assert!(!format!("{config:?}").contains(HASH), "Debug shows a hash");
}

#[test]
fn an_empty_file_or_users_only_ask_for_no_tls() {
    for text in [
        "",
        "\n# nothing\n",
        &format!("basic_auth_users:\n  p: '{HASH}'\n"),
    ] {
        let (_dir, config) = load(text);
        let config = config.unwrap();
        assert!(!config.has_tls());
        assert!(config.tls().unwrap().is_none());
    }
}

#[test]
fn an_unknown_key_is_named() {
    let e = error(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  kye_file: x\n",
    );
    assert!(e.starts_with("web config DIR/web.yml: "), "{e}");
    assert!(e.contains("kye_file"), "{e}");
    let e = error("basic_auth_user:\n  p: x\n");
    assert!(e.contains("basic_auth_user"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn an_unimplemented_key_of_the_format_is_named() {
    let e = error(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         cipher_suites: [TLS_AES_128_GCM_SHA256]\nrate_limit: {interval: 1s, burst: 5}\n",
    );
    assert!(
        e.contains("not implemented by siem-sensor: rate_limit, cipher_suites"),
        "{e}"
    );
}

#[test]
fn a_password_that_is_not_a_bcrypt_hash_is_refused() {
    for hash in [
        "secret",
        "$2y$05$short",
        "$2y$99$3FdNvLoB8V2Wjucsld2gq.7V5X2E8vxfDy9jqPShJ2E4So7nSAD3e",
    ] {
        let e = error(&format!("basic_auth_users:\n  alice: '{hash}'\n"));
        assert!(
            e.starts_with("web config DIR/web.yml: basic_auth_users: `alice`: not a bcrypt hash"),
            "{e}"
        );
    }
}

#[test]
fn a_missing_certificate_file_is_named() {
    let e = error("tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n");
    assert!(e.contains("DIR/missing.pem"), "{e}");
    let e = error("tls_server_config:\n  cert_file: server.pem\n  key_file: ca.pem\n");
    assert!(e.contains("DIR/ca.pem: no PEM item"), "{e}");
    let e = error("tls_server_config:\n  key_file: server.key\n");
    assert!(e.contains("`cert_file` is required"), "{e}");
}

#[test]
fn contradictory_tls_settings_are_refused() {
    let base = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    for (extra, expected) in [
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "needs `client_ca_file`",
        ),
        (
            "  client_ca_file: ca.pem\n",
            "`client_ca_file` is set but client_auth_type is NoClientCert",
        ),
        (
            "  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert",
        ),
        ("  min_version: TLS10\n", "TLS10"),
        (
            "  min_version: TLS13\n  max_version: TLS12\n",
            "min_version TLS13 is above max_version TLS12",
        ),
    ] {
        let e = error(&format!("{base}{extra}"));
        assert!(e.contains(expected), "{extra}: {e}");
    }
}

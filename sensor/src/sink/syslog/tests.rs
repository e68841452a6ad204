//! TLS delivery (RFC 5425) against an in-process rustls receiver with a
//! certificate from a test CA.

use std::{
    io::Read,
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::{
    ServerConfig, ServerConnection, StreamOwned,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
};

use super::*;
use crate::detect::{Detector, Subject, alert::Window};

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn alert(i: u8) -> Alert {
    Alert::new(
        Detector::Honeypot,
        Subject::Ip(std::net::IpAddr::from([192, 0, 2, i])),
        1_795_219_215_000_000_000,
        Window { start: 0, end: 0 },
        [("requests", 1)].into(),
        Vec::new(),
    )
}

/// Serves one TLS connection with a certificate for 127.0.0.1 signed by
/// `signer`; returns its address and a handle yielding every byte received.
fn receiver(
    signer: &CertifiedIssuer<'static, KeyPair>,
) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, signer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut tls = StreamOwned::new(ServerConnection::new(Arc::new(config)).unwrap(), sock);
        let mut got = Vec::new();
        let _ = tls.read_to_end(&mut got);
        got
    });
    (addr, handle)
}

fn config(addr: SocketAddr, ca_pem: &str, dir: &tempfile::TempDir) -> SyslogConfig {
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    SyslogConfig {
        targets: vec![format!("tls:{addr}").parse().unwrap()],
        header: Header::Rfc5424,
        body: Body::Kv,
        facility: Facility::AUTH,
        queue: 16,
        drain: Duration::from_millis(200),
        ca: Some(ca),
        max_record: DEFAULT_MAX_RECORD,
    }
}

/// Splits `LEN SP RECORD ...` (RFC 5425 section 4.3).
fn frames(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(sp) = bytes.iter().position(|&b| b == b' ') {
        let len: usize = std::str::from_utf8(&bytes[..sp]).unwrap().parse().unwrap();
        out.push(String::from_utf8(bytes[sp + 1..sp + 1 + len].to_vec()).unwrap());
        bytes = &bytes[sp + 1 + len..];
    }
    out
}

#[test]
fn tls_receivers_get_octet_counted_records() {
    let (ca, dir) = (ca(), tempfile::tempdir().unwrap());
    let (addr, server) = receiver(&ca);
    let syslog = Syslog::start(&config(addr, &ca.pem(), &dir)).unwrap();
    syslog.send(&alert(1));
    // Meanwhile the receiver sends TLS 1.3 session tickets: data on the
    // socket that is not a close.
    std::thread::sleep(Duration::from_millis(300));
    for i in 2..=3 {
        syslog.send(&alert(i));
    }
    let counts = Box::new(syslog).stop();
    let records = frames(&server.join().unwrap());
    assert_eq!(records.len(), 3, "{records:#?}");
    for (i, r) in records.iter().enumerate() {
        assert!(r.starts_with("<34>1 "), "{r}");
        assert!(
            r.contains(&format!("client_ip=\"192.0.2.{}\"", i + 1)),
            "{r}"
        );
    }
    assert_eq!((counts[0].sent, counts[0].undelivered), (3, 0));
}

#[test]
fn a_receiver_with_an_untrusted_certificate_gets_nothing() {
    let (trusted, impostor, dir) = (ca(), ca(), tempfile::tempdir().unwrap());
    let (addr, server) = receiver(&impostor);
    let syslog = Syslog::start(&config(addr, &trusted.pem(), &dir)).unwrap();
    syslog.send(&alert(1));
    let counts = Box::new(syslog).stop();
    assert!(server.join().unwrap().is_empty());
    let c = &counts[0];
    assert_eq!((c.sent, c.refused, c.undelivered), (0, 1, 0), "{c:?}");
}

//! Targets as the flag reads them, what each failure means, and records no
//! transport can carry dropped without delaying the next, against real
//! local sockets.

use std::{
    io::{self, Read},
    net::{TcpListener, UdpSocket},
    os::unix::net::UnixDatagram,
    sync::mpsc::sync_channel,
    thread,
    time::{Duration, Instant},
};

use super::*;

#[test]
fn tls_targets_parse_with_and_without_a_name() {
    let parse = |s: &str| s.parse::<Target>();
    let name = |s: &str| rustls::pki_types::ServerName::try_from(s.to_owned()).unwrap();
    assert_eq!(
        parse("tls:127.0.0.1:6514"),
        Ok(Target::Tls(
            ([127, 0, 0, 1], 6514).into(),
            name("127.0.0.1")
        ))
    );
    assert_eq!(
        parse("tls:192.0.2.7:6514/syslog.example.com"),
        Ok(Target::Tls(
            ([192, 0, 2, 7], 6514).into(),
            name("syslog.example.com")
        ))
    );
    assert_eq!(
        parse("tls:[::1]:6514"),
        Ok(Target::Tls("[::1]:6514".parse().unwrap(), name("::1")))
    );
    for s in [
        "tls:127.0.0.1:6514",
        "tls:127.0.0.1:6514/syslog.example.com",
        "tls:127.0.0.1:6514/192.0.2.1",
        "tls:[::1]:6514",
        "udp:127.0.0.1:514",
        "tcp:[::1]:601",
        "unix:/dev/log",
    ] {
        assert_eq!(parse(s).unwrap().to_string(), s, "printed as given");
    }
    for bad in [
        "tls:127.0.0.1",
        "tls:syslog.example.com:6514",
        "tls:127.0.0.1:6514/",
        "tls:127.0.0.1:6514/bad name",
        "ftp:127.0.0.1:21",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_failed_handshake_is_a_refusal_and_a_failed_connect_is_a_receiver_down() {
    let tls = io::Error::new(
        io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
    );
    assert_eq!(conn::connect_fault(&tls), Fault::Refused);
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = Conn::open(&Target::Tcp(closed_port), None).err().unwrap();
    assert_eq!(down.fault, Fault::Down, "{:?}", down.error);
}

#[test]
fn only_a_datagram_over_the_socket_limit_is_the_record_s_fault() {
    let os = io::Error::from_raw_os_error;
    let udp = Conn::Udp(UdpSocket::bind("127.0.0.1:0").unwrap());
    let unix = Conn::Unix(UnixDatagram::unbound().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = Conn::Tcp(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
    assert_eq!(udp.write_fault(&os(libc::EMSGSIZE)), Fault::Record);
    assert_eq!(unix.write_fault(&os(libc::EMSGSIZE)), Fault::Record);
    assert_eq!(unix.write_fault(&os(libc::ENOBUFS)), Fault::Record);
    // A full UDP device queue passes; a stream's errors are the connection's.
    assert_eq!(udp.write_fault(&os(libc::ENOBUFS)), Fault::Broken);
    for e in [
        libc::EPIPE,
        libc::ECONNRESET,
        libc::ECONNREFUSED,
        libc::EAGAIN,
    ] {
        assert_eq!(tcp.write_fault(&os(e)), Fault::Broken, "{e}");
        assert_eq!(udp.write_fault(&os(e)), Fault::Broken, "{e}");
    }
}

/// Runs a sender for `target` over `records` (then closes its queue) and
/// returns its counts and how long it took.
fn deliver(target: Target, records: Vec<Vec<u8>>) -> (Arc<Tally>, Duration) {
    let (tx, rx) = sync_channel(records.len());
    for r in records {
        tx.send(r).unwrap();
    }
    drop(tx);
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    run(target, None, rx, Arc::clone(&tally), Duration::ZERO);
    (tally, start.elapsed())
}

fn counts(t: &Tally) -> [u64; 4] {
    [&t.sent, &t.dropped, &t.refused, &t.undelivered].map(|c| c.load(Ordering::Relaxed))
}

#[test]
fn a_huge_udp_record_is_dropped_and_the_next_goes_at_once() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let target = Target::Udp(receiver.local_addr().unwrap());
    let (tally, took) = deliver(target, vec![vec![b'x'; 150_000], b"<34>1 small".to_vec()]);
    let mut buf = [0u8; 2048];
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"<34>1 small");
    assert_eq!(counts(&tally), [1, 1, 0, 0]);
    assert!(took < RETRY / 2, "no retry wait: {took:?}");
}

#[test]
fn a_datagram_too_large_for_a_unix_socket_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    let (tally, took) = deliver(
        Target::Unix(path),
        vec![vec![b'x'; 4 << 20], b"<34>1 small".to_vec()],
    );
    let mut buf = [0u8; 2048];
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"<34>1 small");
    assert_eq!(counts(&tally), [1, 1, 0, 0]);
    assert!(took < RETRY / 2, "no retry wait: {took:?}");
}

/// A TCP receiver that resets every connection whose frame is over 1 MB
/// (closing with unread data sends RST) and returns, with the number of
/// resets, once it has read a smaller frame.
fn resetting_receiver() -> (std::net::SocketAddr, thread::JoinHandle<(u32, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut resets = 0;
        loop {
            let (mut sock, _) = listener.accept().unwrap();
            let mut len = String::new();
            let mut byte = [0u8; 1];
            while sock.read_exact(&mut byte).is_ok() && byte[0] != b' ' {
                len.push(char::from(byte[0]));
            }
            let len: usize = len.parse().unwrap();
            if len > 1_000_000 {
                resets += 1;
                continue;
            }
            let mut record = vec![0u8; len];
            sock.read_exact(&mut record).unwrap();
            return (resets, String::from_utf8(record).unwrap());
        }
    });
    (addr, handle)
}

#[test]
fn a_record_that_breaks_every_fresh_connection_is_dropped_after_three() {
    let (addr, receiver) = resetting_receiver();
    let (tally, _) = deliver(
        Target::Tcp(addr),
        vec![vec![b'x'; 32 << 20], b"<34>1 small".to_vec()],
    );
    assert_eq!(receiver.join().unwrap(), (MAX_TRIES, "<34>1 small".into()));
    assert_eq!(counts(&tally), [1, 1, 0, 0]);
}

//! Delivery of syslog records: a local socket, UDP, TCP with
//! octet-counting framing (RFC 6587 section 3.4.1), or the same over TLS
//! (RFC 5425, rustls).
//!
//! Each target has a sender thread and a bounded queue, so a receiver that
//! is down never blocks capture: records wait in the queue, the thread
//! reconnects every second and delivers them in order; what does not fit in
//! the queue is counted as overflow. A TCP connection the receiver closed
//! is noticed before writing (a FIN makes the socket readable with no
//! data), so a record is not written into a dead connection and lost. UDP
//! has no delivery guarantee: records sent while the receiver is down are
//! lost, as with any UDP syslog.

use rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::ServerName};
use std::{
    fmt,
    io::{self, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::unix::net::UnixDatagram,
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A local datagram socket, e.g. `/dev/log`.
    Unix(PathBuf),
    /// UDP (RFC 5426).
    Udp(SocketAddr),
    /// TCP with octet counting (RFC 6587).
    Tcp(SocketAddr),
    /// TLS (RFC 5425): the address and the name the certificate must carry.
    Tls(SocketAddr, String),
}

impl FromStr for Target {
    type Err = String;

    /// `unix:/dev/log`, `udp:ADDR:PORT`, `tcp:ADDR:PORT`,
    /// `tls:ADDR:PORT[/NAME]` (IPv6 as `[addr]:port`; NAME is the server
    /// name to verify, the address by default).
    fn from_str(s: &str) -> Result<Self, String> {
        let addr = |a: &str| {
            a.parse::<SocketAddr>()
                .map_err(|e| format!("`{a}` is not an address:port ({e})"))
        };
        match s.split_once(':') {
            Some(("unix", path)) if !path.is_empty() => Ok(Self::Unix(path.into())),
            Some(("udp", a)) => addr(a).map(Self::Udp),
            Some(("tcp", a)) => addr(a).map(Self::Tcp),
            _ => Err(format!(
                "`{s}`: expected unix:PATH, udp:ADDR:PORT or tcp:ADDR:PORT"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Udp(a) => write!(f, "udp:{a}"),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
            Self::Tls(a, name) => write!(f, "tls:{a}/{name}"),
        }
    }
}

/// Delivery counters of one target, shared with its thread.
#[derive(Debug, Default)]
pub struct Tally {
    /// Records written to the socket.
    pub sent: AtomicU64,
    /// Records dropped because the queue was full.
    pub overflow: AtomicU64,
    /// Records dropped as too large for a record or for the transport.
    pub dropped: AtomicU64,
    /// Records still queued when the sensor stopped.
    pub undelivered: AtomicU64,
    /// Set when the sensor stops: the thread then gives up on a receiver
    /// that stays down.
    pub stopping: AtomicBool,
}

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

const TIMEOUT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(1);

fn connect(target: &Target, tls: Option<&Arc<ClientConfig>>) -> io::Result<Conn> {
    Ok(match target {
        Target::Unix(path) => {
            let s = UnixDatagram::unbound()?;
            s.connect(path)?;
            Conn::Unix(s)
        }
        Target::Udp(addr) => {
            let any: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let s = UdpSocket::bind(any)?;
            s.connect(addr)?;
            Conn::Udp(s)
        }
        Target::Tcp(addr) => Conn::Tcp(tcp(addr)?),
        Target::Tls(addr, name) => {
            let config = tls.ok_or_else(|| io::Error::other("no TLS configuration"))?;
            let name = ServerName::try_from(name.clone()).map_err(io::Error::other)?;
            let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
            let mut stream = StreamOwned::new(conn, tcp(addr)?);
            stream.sock.set_read_timeout(Some(TIMEOUT))?;
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock)?;
            }
            Conn::Tls(Box::new(stream))
        }
    })
}

fn tcp(addr: &SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, TIMEOUT)?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

impl Conn {
    fn send(&mut self, record: &[u8]) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.send(record).map(drop),
            Self::Udp(s) => s.send(record).map(drop),
            Self::Tcp(s) => {
                if peer_closed(s)? {
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                s.write_all(&framed(record))
            }
            Self::Tls(s) => {
                if tls_peer_closed(s)? {
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                s.write_all(&framed(record))?;
                s.flush()
            }
        }
    }
}

/// `LEN SP RECORD` (RFC 6587 section 3.4.1; RFC 5425 section 4.3).
fn framed(record: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", record.len()).into_bytes();
    out.extend_from_slice(record);
    out
}

/// True when a TLS receiver closed the connection (close_notify or FIN).
/// What it sent meanwhile (TLS 1.3 session tickets) is processed, not taken
/// for a close.
fn tls_peer_closed(s: &mut StreamOwned<ClientConnection, TcpStream>) -> io::Result<bool> {
    s.sock.set_nonblocking(true)?;
    let closed = loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => break true,
            Ok(_) => {
                let state = s.conn.process_new_packets().map_err(io::Error::other)?;
                if state.peer_has_closed() {
                    break true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(e) => return Err(e),
        }
    };
    s.sock.set_nonblocking(false)?;
    Ok(closed)
}

/// True when the receiver closed the connection (readable, zero bytes:
/// FIN); a syslog receiver sends no data otherwise.
fn peer_closed(s: &TcpStream) -> io::Result<bool> {
    s.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let closed = match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => return Err(e),
    };
    s.set_nonblocking(false)?;
    Ok(closed)
}

/// The sender thread: delivers `queue` to `target` until the queue's sender
/// is dropped, then for at most `drain` more while the target is down.
pub fn run(
    target: Target,
    tls: Option<Arc<ClientConfig>>,
    queue: Receiver<Vec<u8>>,
    delivery: Arc<Tally>,
    drain: Duration,
) {
    let mut conn: Option<Conn> = None;
    let mut pending: Option<Vec<u8>> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        let record = match pending.take() {
            Some(r) => r,
            None => match queue.recv_timeout(RETRY) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        if conn.is_none() {
            conn = match connect(&target, tls.as_ref()) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!(%target, error = %e, "syslog connect failed");
                    None
                }
            };
        }
        match conn.as_mut().map(|c| c.send(&record)) {
            Some(Ok(())) => {
                delivery.sent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Some(Err(e)) => {
                tracing::debug!(%target, error = %e, "syslog send failed; reconnecting")
            }
            None => {}
        }
        conn = None;
        pending = Some(record);
        // Stopping: give a down receiver `drain` to come back, then count the rest.
        if delivery.stopping.load(Ordering::Relaxed) {
            let end = *deadline.get_or_insert_with(|| Instant::now() + drain);
            if Instant::now() >= end {
                let left = 1 + queue.try_iter().count() as u64;
                delivery.undelivered.fetch_add(left, Ordering::Relaxed);
                return;
            }
        }
        std::thread::sleep(RETRY);
    }
}

//! One connection to a target, and what a failure to use it means
//! ([`Fault`]): the receiver is down, refused us, closed or broke the
//! connection, or the record itself cannot be carried.

use std::{
    io::{self, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::unix::net::UnixDatagram,
    sync::Arc,
    time::Duration,
};

use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::target::Target;

/// What a failed delivery attempt says, and so what happens to the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No connection: the receiver is down or unreachable. The record waits.
    Down,
    /// The TLS handshake failed: the receiver's certificate does not chain
    /// to the CAs, does not name the target or has expired, or the receiver
    /// rejected ours. The record waits (a fixed certificate gets it).
    Refused,
    /// The receiver had closed the connection; nothing was written. The
    /// record waits.
    Closed,
    /// Writing failed (reset, broken pipe, timeout). The record waits, but
    /// a record that breaks every fresh connection is given up.
    Broken,
    /// The transport can never carry this record (a datagram larger than
    /// the socket allows: `EMSGSIZE`, or `ENOBUFS` on a unix socket). The
    /// record is dropped.
    Record,
}

/// A failed attempt: its meaning and the error behind it.
#[derive(Debug)]
pub struct Failure {
    /// What it means for the record.
    pub fault: Fault,
    /// The error, for the log.
    pub error: io::Error,
}

/// The fault of a failed connect or TLS handshake: refused when TLS itself
/// failed (a `rustls::Error` inside), down otherwise.
pub fn connect_fault(e: &io::Error) -> Fault {
    let tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if tls { Fault::Refused } else { Fault::Down }
}

/// An open connection.
pub enum Conn {
    /// A connected unix datagram socket.
    Unix(UnixDatagram),
    /// A connected UDP socket.
    Udp(UdpSocket),
    /// A TCP stream.
    Tcp(TcpStream),
    /// A TLS stream, handshake done.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// How long a TCP connect, a handshake read or a stream write may take.
const TIMEOUT: Duration = Duration::from_secs(2);

impl Conn {
    /// Connects to `target` (and completes the TLS handshake, with `tls`).
    ///
    /// # Errors
    /// [`Fault::Down`] or [`Fault::Refused`].
    pub fn open(target: &Target, tls: Option<&Arc<ClientConfig>>) -> Result<Self, Failure> {
        Self::connect(target, tls).map_err(|error| Failure {
            fault: connect_fault(&error),
            error,
        })
    }

    fn connect(target: &Target, tls: Option<&Arc<ClientConfig>>) -> io::Result<Self> {
        Ok(match target {
            Target::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                Self::Unix(s)
            }
            Target::Udp(addr) => {
                let any: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(any)?;
                s.connect(addr)?;
                Self::Udp(s)
            }
            Target::Tcp(addr) => Self::Tcp(tcp(addr)?),
            Target::Tls(addr, name) => {
                let config = tls.ok_or_else(|| io::Error::other("no TLS configuration"))?;
                let conn = ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(io::Error::other)?;
                let mut stream = StreamOwned::new(conn, tcp(addr)?);
                stream.sock.set_read_timeout(Some(TIMEOUT))?;
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock)?;
                }
                Self::Tls(Box::new(stream))
            }
        })
    }

    /// Sends one record, framed on streams.
    ///
    /// # Errors
    /// [`Fault::Closed`], [`Fault::Broken`] or [`Fault::Record`].
    pub fn send(&mut self, record: &[u8]) -> Result<(), Failure> {
        let closed = match self {
            Self::Tcp(s) => peer_closed(s),
            Self::Tls(s) => tls_peer_closed(s),
            Self::Unix(_) | Self::Udp(_) => Ok(false),
        };
        match closed {
            Ok(true) => {
                return Err(Failure {
                    fault: Fault::Closed,
                    error: io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the receiver closed the connection",
                    ),
                });
            }
            Ok(false) => {}
            Err(error) => {
                return Err(Failure {
                    fault: Fault::Closed,
                    error,
                });
            }
        }
        self.write(record).map_err(|error| Failure {
            fault: self.write_fault(&error),
            error,
        })
    }

    /// The fault of a failed write on this connection: the record's own
    /// for a datagram larger than the socket takes, the connection's
    /// otherwise.
    pub fn write_fault(&self, e: &io::Error) -> Fault {
        match (self, e.raw_os_error()) {
            (Self::Unix(_) | Self::Udp(_), Some(libc::EMSGSIZE))
            | (Self::Unix(_), Some(libc::ENOBUFS)) => Fault::Record,
            _ => Fault::Broken,
        }
    }

    /// Ends a TLS connection with close_notify (RFC 5425 section 4.4), so
    /// the receiver can tell the end from a truncation; waits at most
    /// [`TIMEOUT`] for a receiver that does not read.
    pub fn close(self) {
        if let Self::Tls(mut s) = self {
            s.conn.send_close_notify();
            while s.conn.wants_write() {
                if s.conn.write_tls(&mut s.sock).is_err() {
                    break;
                }
            }
        }
    }

    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.send(record).map(drop),
            Self::Udp(s) => s.send(record).map(drop),
            Self::Tcp(s) => s.write_all(&framed(record)),
            Self::Tls(s) => {
                s.write_all(&framed(record))?;
                s.flush()
            }
        }
    }
}

fn tcp(addr: &SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, TIMEOUT)?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
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

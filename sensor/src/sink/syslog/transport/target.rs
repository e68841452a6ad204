//! Where records go: [`Target`], parsed from the `--syslog` flag (and so
//! from the config file's `[syslog] targets`, which become that flag).

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use rustls::pki_types::ServerName;

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A local datagram socket, e.g. `/dev/log`.
    Unix(PathBuf),
    /// UDP (RFC 5426).
    Udp(SocketAddr),
    /// TCP with octet counting (RFC 6587 section 3.4.1).
    Tcp(SocketAddr),
    /// TLS (RFC 5425) with octet counting: the address and the name the
    /// receiver's certificate must carry (a DNS name, or an IP address
    /// matched against the certificate's IP subject alternative names).
    Tls(SocketAddr, ServerName<'static>),
}

impl FromStr for Target {
    type Err = String;

    /// `unix:PATH`, `udp:ADDR:PORT`, `tcp:ADDR:PORT` or
    /// `tls:ADDR:PORT[/NAME]`; IPv6 as `[addr]:port`. NAME is the server
    /// name to verify (`syslog.example.com`, or an IP address); without it,
    /// the address itself as an IP server name.
    ///
    /// # Errors
    /// An unknown scheme, an address that is not `IP:PORT`, or a NAME that
    /// is neither a DNS name nor an IP address.
    fn from_str(s: &str) -> Result<Self, String> {
        let addr = |a: &str| {
            a.parse::<SocketAddr>()
                .map_err(|e| format!("`{a}` is not an address:port ({e})"))
        };
        match s.split_once(':') {
            Some(("unix", path)) if !path.is_empty() => Ok(Self::Unix(path.into())),
            Some(("udp", a)) => addr(a).map(Self::Udp),
            Some(("tcp", a)) => addr(a).map(Self::Tcp),
            Some(("tls", rest)) => match rest.split_once('/') {
                Some((a, name)) => {
                    let name = ServerName::try_from(name.to_owned()).map_err(|e| {
                        format!("`{name}` is not a server name (a DNS name or an IP address): {e}")
                    })?;
                    Ok(Self::Tls(addr(a)?, name))
                }
                None => addr(rest).map(|a| Self::Tls(a, a.ip().into())),
            },
            _ => Err(format!(
                "`{s}`: expected unix:PATH, udp:ADDR:PORT, tcp:ADDR:PORT or tls:ADDR:PORT[/NAME]"
            )),
        }
    }
}

impl fmt::Display for Target {
    /// The form [`Target::from_str`] reads; a TLS target's name only when it
    /// is not the address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Udp(a) => write!(f, "udp:{a}"),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
            Self::Tls(a, ServerName::IpAddress(ip)) if std::net::IpAddr::from(*ip) == a.ip() => {
                write!(f, "tls:{a}")
            }
            Self::Tls(a, name) => write!(f, "tls:{a}/{}", name.to_str()),
        }
    }
}

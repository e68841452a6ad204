//! Which leg a flow is, decided by topology alone: where Kong's nodes are
//! and which ports its proxy listens on. A header a client sends never
//! changes it (a client-sent `X-Kong-Request-Id` or `X-Consumer-*` is just
//! a header).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Serialize;

/// Which leg of Kong's traffic a transaction travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// A client's connection to Kong's proxy listener, or to any other HTTP
    /// server the sensor watches that Kong did not open: the requests the
    /// detectors count.
    Client,
    /// A connection a Kong node opened to an upstream: Kong's
    /// `X-Consumer-*` and `X-Real-IP` headers on it are believed.
    Upstream,
}

/// Where Kong is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Kong node addresses (`run`: the node's own addresses by default;
    /// `replay`: none unless given).
    pub kong_addresses: Vec<IpNet>,
    /// Kong's proxy listener ports (Kong's defaults `8000` and `8443`,
    /// `proxy_listen` in kong.conf).
    pub proxy_ports: Vec<u16>,
}

impl Default for Topology {
    /// No Kong address known; Kong's default proxy ports 8000 and 8443.
    fn default() -> Self {
        Self {
            kong_addresses: Vec::new(),
            proxy_ports: vec![8000, 8443],
        }
    }
}

impl Topology {
    /// Whether `ip` is a Kong node's address.
    pub fn is_kong(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.kong_addresses.iter().any(|net| net.contains(&ip))
    }

    /// The leg of the flow from `client` to `server`: the upstream leg when
    /// a Kong node is the client and the server is not a Kong proxy
    /// listener; the client leg otherwise.
    pub fn leg(&self, client: SocketAddr, server: SocketAddr) -> Leg {
        let listener = self.proxy_ports.contains(&server.port())
            && (self.kong_addresses.is_empty() || self.is_kong(server.ip()));
        if self.is_kong(client.ip()) && !listener {
            Leg::Upstream
        } else {
            Leg::Client
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_opened_flows_are_the_upstream_leg() {
        let t = Topology {
            kong_addresses: vec![
                "10.77.0.1/32".parse().unwrap(),
                "10.77.1.1/32".parse().unwrap(),
            ],
            ..Topology::default()
        };
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            t.leg(at("10.77.0.2:4000"), at("10.77.0.1:8000")),
            Leg::Client
        );
        assert_eq!(
            t.leg(at("10.77.1.1:4000"), at("10.77.1.2:8080")),
            Leg::Upstream
        );
        // The node calling its own proxy (a health check) is a client.
        assert_eq!(
            t.leg(at("10.77.0.1:4000"), at("10.77.0.1:8443")),
            Leg::Client
        );
        // Traffic to other servers that Kong did not open stays client-facing.
        assert_eq!(
            t.leg(at("10.9.9.9:4000"), at("10.77.1.2:8080")),
            Leg::Client
        );
        // With no Kong address known, nothing is the upstream leg.
        let none = Topology::default();
        assert_eq!(
            none.leg(at("10.77.1.1:4000"), at("10.77.1.2:8080")),
            Leg::Client
        );
    }
}

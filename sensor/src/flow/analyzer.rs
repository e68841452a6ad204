//! What a flow tells its protocol analyzer: which endpoint sent a chunk,
//! which way it travels once the client is known, and the [`Analyzer`]
//! trait itself.

use std::net::SocketAddr;

use super::reassembly::Chunk;

/// One of a flow's two endpoints, in the order of the flow's key (the
/// lower socket address first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `endpoints[0]`.
    First,
    /// `endpoints[1]`.
    Second,
}

impl Endpoint {
    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
        }
    }

    /// 0 or 1, to index per-endpoint arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which way bytes travel, once the client is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: requests.
    ToServer,
    /// Server to client: responses.
    ToClient,
}

impl Direction {
    /// The other way.
    pub fn reverse(self) -> Self {
        match self {
            Self::ToServer => Self::ToClient,
            Self::ToClient => Self::ToServer,
        }
    }

    /// 0 (to server) or 1 (to client), to index per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a flow knows about its endpoints.
#[derive(Clone, Copy, Debug)]
pub struct FlowInfo {
    /// The two endpoints, in key order.
    pub endpoints: [SocketAddr; 2],
    /// Which endpoint is the client, once known.
    pub client: Option<Endpoint>,
}

impl FlowInfo {
    /// The direction of bytes sent by `from`, once the client is known.
    pub fn direction(&self, from: Endpoint) -> Option<Direction> {
        self.client.map(|c| {
            if c == from {
                Direction::ToServer
            } else {
                Direction::ToClient
            }
        })
    }

    /// The client's and the server's addresses, once the client is known.
    pub fn client_server(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.client
            .map(|c| (self.endpoints[c.index()], self.endpoints[c.peer().index()]))
    }
}

/// The protocol analyzer of one flow (HTTP, here): takes each direction's
/// reassembled chunks, in order.
pub trait Analyzer: Default {
    /// State shared by all flows: configuration, counters, output.
    type Context;
    /// Takes the next chunk sent by `from`. May set `flow.client`.
    fn chunk(
        &mut self,
        ctx: &mut Self::Context,
        flow: &mut FlowInfo,
        from: Endpoint,
        chunk: Chunk<'_>,
    );
    /// The flow ended; no more chunks follow.
    fn close(&mut self, ctx: &mut Self::Context, flow: &FlowInfo);
}

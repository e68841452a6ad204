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
    /// The flow was first seen mid-connection (a data segment, no SYN): it
    /// was open before the capture started, or the segment is forged.
    pub midstream: bool,
    /// The three-way handshake was seen: a SYN from each side, and each
    /// SYN acknowledged. A forger who cannot see the server's replies
    /// cannot complete one.
    pub handshake: bool,
    /// Bytes each endpoint sent that the other acknowledged, by
    /// [`Endpoint::index`]; counted only once the handshake was seen.
    pub acked: [u64; 2],
    /// Bytes of each endpoint's stream delivered to the analyzer so far
    /// (captured and unknown), by [`Endpoint::index`].
    pub delivered: [u64; 2],
    /// Time of the latest segment, ns since the epoch.
    pub last_ns: u64,
}

impl FlowInfo {
    /// A flow between `endpoints` (key order) first seen at `time_ns`, its
    /// client unknown yet.
    pub fn new(endpoints: [SocketAddr; 2], midstream: bool, time_ns: u64) -> Self {
        Self {
            endpoints,
            client: None,
            midstream,
            handshake: false,
            acked: [0; 2],
            delivered: [0; 2],
            last_ns: time_ns,
        }
    }

    /// Whether the peer acknowledged the first `bytes` bytes `from` sent,
    /// on a flow whose handshake was seen: the receiver's TCP took them.
    pub fn acknowledged(&self, from: Endpoint, bytes: u64) -> bool {
        self.handshake && self.acked[from.index()] >= bytes
    }

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
    /// Bytes `from` will send next that the analyzer will not read (the
    /// rest of a body of known length): the live tap may leave them out
    /// ([`crate::capture::Trim`]). 0 (the default): it reads everything.
    fn opaque_ahead(&self, _flow: &FlowInfo, _from: Endpoint) -> u64 {
        0
    }
    /// The flow ended; no more chunks follow.
    fn close(&mut self, ctx: &mut Self::Context, flow: &FlowInfo);
    /// Heap bytes the analyzer holds beyond its own size (buffered heads,
    /// requests waiting for responses), for the memory budget.
    fn memory(&self) -> usize;
    /// Drops what it buffers (the memory budget is exhausted and this flow
    /// is among the least recently seen): the message in progress is lost,
    /// requests waiting for responses are emitted without one. Counted by
    /// the analyzer.
    fn shed(&mut self, ctx: &mut Self::Context, flow: &FlowInfo);
}

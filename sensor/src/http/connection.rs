//! HTTP/1.1 on one flow: request/response pairing.
//!
//! [`Http1`] frames each direction with a [`Framer`] and pairs what they
//! find into exchanges, in request order: a response answers the oldest
//! request still waiting for one (HTTP/1.1 has no other pairing key; RFC
//! 9112 section 9.3.2 on pipelining). Finished exchanges leave as
//! [`Transaction`]s through the shared [`HttpContext`].

use std::{collections::VecDeque, net::SocketAddr};

use super::{
    context::HttpContext,
    headers::{RequestHeaders, ResponseHeaders, upgrades_to_h2c},
    message::{Body, Framer, FramingError, MessageHandler, MessageKind},
    transaction::{Transaction, Tunnel},
};
use crate::flow::{Chunk, Direction, FlowInfo};
use crate::identity::Leg;

/// The HTTP/1.1 state of one flow.
#[derive(Debug, Default)]
pub(super) struct Http1 {
    /// Framing of each direction, by [`Direction::index`].
    framers: [Framer; 2],
    /// Requests and the state of their responses.
    pairing: Pairing,
    /// The exchange that switched protocols (101, CONNECT), held while its
    /// tunnel is followed.
    upgraded: Option<Box<Upgraded>>,
}

/// A tunnel after 101 or CONNECT: its request, and the bytes and time it
/// has carried, reported when it ends.
#[derive(Debug)]
struct Upgraded {
    tx: Box<Transaction>,
    /// The server switched to HTTP/2 (`Upgrade: h2c`).
    h2c: bool,
    bytes: [u64; 2],
    since_ns: u64,
}

/// Requests in order, each waiting for its response or its emission, and
/// what the response stream is in the middle of.
#[derive(Debug, Default)]
struct Pairing {
    exchanges: VecDeque<Exchange>,
    /// The response stream lost its framing since the last response.
    response_resynced: bool,
    /// The connection switched protocols; nothing more is parsed.
    tunnel: bool,
    /// ... to HTTP/2: the 101 said `Upgrade: h2c`.
    h2c: bool,
    /// The response in progress is interim (1xx).
    interim: bool,
    /// The response in progress answers no known request.
    orphan: bool,
    /// The leg of the flow's requests, decided by topology at the first
    /// one, with the client and server it was decided for.
    leg: Option<(SocketAddr, SocketAddr, Leg)>,
}

/// Where an exchange's response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Response {
    Waiting,
    Receiving,
    Done,
    /// Its response fell in a gap; a later response answered a later request.
    Lost,
}

/// One request and the state of its response.
#[derive(Debug)]
struct Exchange {
    /// Boxed: a record of several hundred bytes moves through the queue,
    /// the context, the join and the sinks as a pointer.
    tx: Box<Transaction>,
    /// `tx.heap_bytes()` when the request was parsed and when the response
    /// head was (the two times it grows), so `memory` does not walk it per
    /// chunk.
    heap: usize,
    request_done: bool,
    /// Bytes of the client's stream up to the end of the chunk the request
    /// ended in: the server acknowledging them confirms the request.
    request_end: u64,
    response: Response,
}

impl Exchange {
    fn done(&self) -> bool {
        self.request_done && matches!(self.response, Response::Done | Response::Lost)
    }
}

/// Requests travel to the server, responses to the client.
fn kind(direction: Direction) -> MessageKind {
    match direction {
        Direction::ToServer => MessageKind::Request,
        Direction::ToClient => MessageKind::Response,
    }
}

impl Http1 {
    /// Takes the next chunk of `direction`. Returns how many of its last
    /// known bytes follow a head that switched protocols (0 otherwise):
    /// after `Upgrade: h2c` they are HTTP/2's ([`Http1::take_h2c`]).
    pub(super) fn chunk(
        &mut self,
        ctx: &mut HttpContext,
        flow: &FlowInfo,
        direction: Direction,
        chunk: Chunk<'_>,
    ) -> usize {
        if let Some(u) = &mut self.upgraded {
            u.bytes[direction.index()] += chunk.data.len() as u64 + chunk.unknown;
            return 0;
        }
        let Some(mut events) = Events::new(&mut self.pairing, ctx, flow, direction, chunk.time_ns)
        else {
            return 0;
        };
        let limits = events.ctx.limits.head;
        let rest = self.framers[direction.index()].chunk(events.kind, chunk, limits, &mut events);
        self.emit_finished(ctx, flow);
        if let Some(u) = &mut self.upgraded {
            u.bytes[direction.index()] += rest as u64 + chunk.unknown;
        }
        rest
    }

    /// Bytes of `direction` that follow and will not be read: the rest of
    /// a body of known length (0 in a tunnel: its end must be seen).
    pub(super) fn opaque_ahead(&self, direction: Direction) -> u64 {
        if self.upgraded.is_some() {
            return 0;
        }
        self.framers[direction.index()].opaque_ahead()
    }

    /// The flow ended: emits every exchange left.
    pub(super) fn close(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        for direction in [Direction::ToServer, Direction::ToClient] {
            if let Some(mut events) =
                Events::new(&mut self.pairing, ctx, flow, direction, flow.last_ns)
            {
                let limits = events.ctx.limits.head;
                self.framers[direction.index()].close(events.kind, limits, &mut events);
            }
        }
        while let Some(e) = self.pairing.exchanges.pop_front() {
            emit(ctx, flow, e);
        }
        self.end_tunnel(ctx, flow);
    }

    /// Heap bytes held (buffered heads, waiting exchanges).
    pub(super) fn memory(&self) -> usize {
        let framers: usize = self.framers.iter().map(Framer::memory).sum();
        let exchanges: usize = self
            .pairing
            .exchanges
            .iter()
            .map(|e| std::mem::size_of::<Exchange>() + e.heap)
            .sum();
        framers + exchanges + self.pairing.exchanges.capacity() * std::mem::size_of::<Exchange>()
    }

    /// Drops what it buffers, emitting waiting exchanges.
    pub(super) fn shed(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        for framer in &mut self.framers {
            ctx.counters.shed_messages += u64::from(framer.shed());
        }
        while let Some(e) = self.pairing.exchanges.pop_front() {
            emit(ctx, flow, e);
        }
        self.pairing = Pairing::default();
        self.end_tunnel(ctx, flow);
    }

    /// The request whose 101 switched the flow to HTTP/2 (`Upgrade: h2c`),
    /// taken: the flow is HTTP/2's from here.
    pub(super) fn take_h2c(&mut self) -> Option<Transaction> {
        self.upgraded.take_if(|u| u.h2c).map(|u| *u.tx)
    }

    /// Emits the tunnel's exchange with what it carried.
    fn end_tunnel(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        if let Some(u) = self.upgraded.take() {
            let mut tx = u.tx;
            tx.tunnel = Some(Box::new(Tunnel {
                bytes_to_server: u.bytes[0],
                bytes_to_client: u.bytes[1],
                duration_ms: flow.last_ns.saturating_sub(u.since_ns) as f64 / 1e6,
            }));
            ctx.emit(tx);
        }
    }
}

impl Http1 {
    /// Emits finished exchanges in request order and bounds the queue.
    fn emit_finished(&mut self, ctx: &mut HttpContext, flow: &FlowInfo) {
        if self.pairing.tunnel {
            for framer in &mut self.framers {
                framer.tunnel();
            }
        }
        let exchanges = &mut self.pairing.exchanges;
        while exchanges.front().is_some_and(Exchange::done)
            || exchanges.len() > ctx.limits.max_pending_requests
        {
            let Some(e) = exchanges.pop_front() else {
                break;
            };
            let opens = e.tx.status == Some(101) || e.tx.method == "CONNECT";
            if self.pairing.tunnel && opens && self.upgraded.is_none() {
                let mut tx = e.tx;
                tx.confirmed = true;
                let since_ns = tx.response_end_ns.unwrap_or(flow.last_ns);
                self.upgraded = Some(Box::new(Upgraded {
                    tx,
                    h2c: std::mem::take(&mut self.pairing.h2c),
                    bytes: [0; 2],
                    since_ns,
                }));
            } else {
                emit(ctx, flow, e);
            }
        }
    }
}

/// Emits an exchange's transaction, confirmed if the server answered it or
/// its TCP acknowledged it on a flow whose handshake was seen (see
/// [`Transaction::confirmed`]).
fn emit(ctx: &mut HttpContext, flow: &FlowInfo, mut e: Exchange) {
    let acked = flow
        .client
        .is_some_and(|c| flow.acknowledged(c, e.request_end));
    e.tx.confirmed = e.tx.status.is_some() || acked;
    e.tx.handshake = flow.handshake;
    ctx.emit(e.tx);
}

/// The [`MessageHandler`] of one direction of one flow: turns heads and
/// message ends into exchanges.
struct Events<'a> {
    pairing: &'a mut Pairing,
    ctx: &'a mut HttpContext,
    client: SocketAddr,
    server: SocketAddr,
    kind: MessageKind,
    /// The flow was joined mid-connection.
    midstream: bool,
    /// Bytes of this direction delivered up to the end of the current chunk.
    delivered: u64,
    /// The current chunk's time, ns since the epoch.
    time_ns: u64,
}

impl<'a> Events<'a> {
    /// The handler of `direction` of `flow`, once its client is known.
    fn new(
        pairing: &'a mut Pairing,
        ctx: &'a mut HttpContext,
        flow: &FlowInfo,
        direction: Direction,
        time_ns: u64,
    ) -> Option<Self> {
        let client = flow.client?;
        let (client_addr, server) = flow.client_server()?;
        let from = match direction {
            Direction::ToServer => client,
            Direction::ToClient => client.peer(),
        };
        Some(Self {
            pairing,
            ctx,
            client: client_addr,
            server,
            kind: kind(direction),
            midstream: flow.midstream,
            delivered: flow.delivered[from.index()],
            time_ns,
        })
    }
}

impl Events<'_> {
    /// The exchange whose response is in state `state`, oldest first.
    fn answering(&mut self, state: Response) -> Option<&mut Exchange> {
        self.pairing
            .exchanges
            .iter_mut()
            .find(|e| e.response == state)
    }

    /// After the response stream lost framing, responses may have been lost
    /// with it: a response that starts after a later request was sent
    /// answers that later request (keep-alive clients rarely pipeline), so
    /// the earlier ones are marked as having lost their responses.
    fn skip_lost(&mut self, time_ns: u64) {
        let exchanges = &mut self.pairing.exchanges;
        let waiting: Vec<usize> = (0..exchanges.len())
            .filter(|&i| exchanges[i].response == Response::Waiting)
            .collect();
        for pair in waiting.windows(2) {
            if exchanges[pair[1]].tx.time_ns > time_ns {
                break;
            }
            exchanges[pair[0]].response = Response::Lost;
        }
    }
}

impl MessageHandler for Events<'_> {
    fn request(&mut self, head: &httparse::Request<'_, '_>, time_ns: u64, truncated: bool) -> Body {
        let c = &mut self.ctx.counters;
        c.requests += 1;
        c.truncated_heads += u64::from(truncated);
        let method = head.method.unwrap_or_default();
        let target = head.path.unwrap_or_default();
        let resolver = &self.ctx.resolver;
        let leg = match self.pairing.leg {
            Some((client, server, leg)) if (client, server) == (self.client, self.server) => leg,
            _ => {
                let leg = resolver.topology().leg(self.client, self.server);
                self.pairing.leg = Some((self.client, self.server, leg));
                leg
            }
        };
        let headers = RequestHeaders::scan(head.headers, resolver.header_names());
        let (identity, path) = resolver.resolve(self.client.ip(), leg, target, &headers.identity);
        let endpoints = (self.client, self.server);
        let mut tx = Box::new(Transaction::request(
            time_ns, endpoints, leg, method, target, path, &headers, identity,
        ));
        tx.midstream = self.midstream;
        self.pairing.exchanges.push_back(Exchange {
            heap: tx.heap_bytes(),
            tx,
            request_done: false,
            request_end: u64::MAX,
            response: Response::Waiting,
        });
        if method == "CONNECT" {
            return Body::None;
        }
        let (body, bad) = headers.framing.request_body();
        self.ctx.counters.errors.bad_content_length += u64::from(bad.is_some());
        body
    }

    fn response(
        &mut self,
        head: &httparse::Response<'_, '_>,
        time_ns: u64,
        truncated: bool,
    ) -> Body {
        let status = head.code.unwrap_or_default();
        let headers = ResponseHeaders::scan(head.headers);
        let c = &mut self.ctx.counters;
        c.truncated_heads += u64::from(truncated);
        if (100..200).contains(&status) && status != 101 {
            c.interim_responses += 1;
            self.pairing.interim = true;
            return Body::None;
        }
        c.responses += 1;
        if std::mem::take(&mut self.pairing.response_resynced) {
            self.skip_lost(time_ns);
        }
        let method = match self.answering(Response::Waiting) {
            Some(e) => {
                e.response = Response::Receiving;
                e.heap += e.tx.respond(status, time_ns, headers.request_id);
                debug_assert_eq!(e.heap, e.tx.heap_bytes());
                // Only HEAD and CONNECT change a response's framing.
                match e.tx.method.as_str() {
                    "HEAD" => "HEAD",
                    "CONNECT" => "CONNECT",
                    _ => "",
                }
            }
            None => {
                self.ctx.counters.responses_without_request += 1;
                self.pairing.orphan = true;
                ""
            }
        };
        let (body, bad) = headers.framing.response_body(status, method);
        self.ctx.counters.errors.bad_content_length += u64::from(bad.is_some());
        if body == Body::Tunnel && !self.pairing.orphan {
            self.ctx.counters.tunnels += 1;
            self.pairing.tunnel = true;
            self.pairing.h2c = status == 101 && upgrades_to_h2c(head.headers);
        }
        body
    }

    fn end(&mut self, bytes: u64, _framed: bool) {
        let p = &mut *self.pairing;
        match self.kind {
            MessageKind::Request => {
                if let Some(e) = p.exchanges.iter_mut().rev().find(|e| !e.request_done) {
                    e.tx.request_bytes = bytes;
                    e.request_done = true;
                    e.request_end = self.delivered;
                }
            }
            MessageKind::Response if std::mem::take(&mut p.interim) => {
                if let Some(e) = self.answering(Response::Waiting) {
                    e.tx.response_bytes += bytes;
                }
            }
            MessageKind::Response if std::mem::take(&mut p.orphan) => {}
            MessageKind::Response => {
                let time_ns = self.time_ns;
                if let Some(e) = self.answering(Response::Receiving) {
                    e.tx.response_bytes += bytes;
                    e.tx.end(time_ns);
                    e.response = Response::Done;
                }
            }
        }
    }

    fn error(&mut self, error: FramingError) {
        let e = &mut self.ctx.counters.errors;
        match (error, self.kind) {
            (FramingError::Head(_), MessageKind::Request) => e.bad_request_head += 1,
            (FramingError::Head(_), MessageKind::Response) => e.bad_response_head += 1,
            (FramingError::HeadTooLarge, _) => e.head_too_large += 1,
            (FramingError::HeadTruncated, _) => e.head_truncated += 1,
            (FramingError::Chunk, _) => e.bad_chunk += 1,
        }
        let p = &mut *self.pairing;
        match self.kind {
            MessageKind::Request => {
                for e in p.exchanges.iter_mut().filter(|e| !e.request_done) {
                    e.request_done = true;
                    e.request_end = self.delivered;
                }
            }
            MessageKind::Response => {
                p.response_resynced = true;
                p.interim = false;
                p.orphan = false;
                if let Some(e) = self.answering(Response::Receiving) {
                    e.response = Response::Done;
                }
            }
        }
    }

    fn skipped(&mut self, bytes: u64) {
        self.ctx.counters.skipped_bytes += bytes;
        if self.kind == MessageKind::Response {
            self.pairing.response_resynced = true;
        }
    }
}

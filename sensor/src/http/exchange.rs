//! Pairing: turns the heads and message ends of both directions into
//! request/response exchanges, and those into transactions.

use std::net::SocketAddr;

use super::{Body, Conn, FramingError, HttpCounters, HttpLimits, Kind, Transaction};
use crate::{flow::FlowInfo, http::message::Messages, identity::Resolver};

/// What every flow's HTTP analyzer shares: identity resolution, limits,
/// counters, and the transactions emitted so far (drained by the pipeline).
pub struct HttpContext {
    /// Client IP and credential resolution.
    pub resolver: Resolver,
    /// Limits.
    pub limits: HttpLimits,
    /// Counters.
    pub counters: HttpCounters,
    /// Transactions emitted, oldest first.
    pub out: Vec<Transaction>,
}

impl HttpContext {
    /// A context with no transactions yet.
    pub fn new(resolver: Resolver, limits: HttpLimits) -> Self {
        Self {
            resolver,
            limits,
            counters: HttpCounters::default(),
            out: Vec::new(),
        }
    }

    pub(super) fn emit(&mut self, e: Exchange) {
        self.counters.transactions += 1;
        if e.tx.status.is_none() {
            self.counters.without_response += 1;
        }
        self.out.push(e.tx);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Response {
    Waiting,
    Receiving,
    Done,
    /// Its response fell in a gap; a later response answered a later request.
    Lost,
}

/// One request and the state of its response.
#[derive(Debug)]
pub(super) struct Exchange {
    tx: Transaction,
    request_done: bool,
    response: Response,
}

impl Exchange {
    pub(super) fn done(&self) -> bool {
        self.request_done && matches!(self.response, Response::Done | Response::Lost)
    }
}

/// The [`Messages`] handler for one direction of one flow.
pub(super) struct Side<'a> {
    conn: &'a mut Conn,
    ctx: &'a mut HttpContext,
    client: SocketAddr,
    server: SocketAddr,
    kind: Kind,
}

impl<'a> Side<'a> {
    pub(super) fn new(
        conn: &'a mut Conn,
        ctx: &'a mut HttpContext,
        flow: &FlowInfo,
        kind: Kind,
    ) -> Self {
        let client = flow.client.unwrap_or(0);
        Self {
            conn,
            ctx,
            client: flow.endpoints[client],
            server: flow.endpoints[1 - client],
            kind,
        }
    }

    /// The exchange the current response answers.
    fn answering(&mut self, state: Response) -> Option<&mut Exchange> {
        self.conn.exchanges.iter_mut().find(|e| e.response == state)
    }
}

impl Messages for Side<'_> {
    fn request(&mut self, head: &httparse::Request<'_, '_>, time_ns: u64, truncated: bool) -> Body {
        let c = &mut self.ctx.counters;
        c.requests += 1;
        c.truncated_heads += u64::from(truncated);
        let method = head.method.unwrap_or_default();
        let target = head.path.unwrap_or_default();
        let fields = Fields::scan(head.headers);
        let (identity, path) = self
            .ctx
            .resolver
            .resolve(self.client.ip(), target, head.headers);
        let tx = Transaction {
            time_ns,
            client_ip: identity.client_ip,
            client_port: self.client.port(),
            server_ip: self.server.ip(),
            server_port: self.server.port(),
            method: method.to_owned(),
            host: fields.host.map(lossy).or_else(|| authority(target)),
            path: path.into_owned(),
            status: None,
            latency_ms: None,
            request_bytes: 0,
            response_bytes: 0,
            user_agent: fields.user_agent.map(lossy),
            principal: identity.principal,
            credential: identity.credential,
            consumer: identity.consumer,
            request_id: fields.request_id.map(lossy),
            upstream_leg: fields.from_kong,
        };
        self.conn.exchanges.push_back(Exchange {
            tx,
            request_done: false,
            response: Response::Waiting,
        });
        if method == "CONNECT" {
            return Body::None;
        }
        fields.body(&mut self.ctx.counters, Body::None)
    }

    fn response(
        &mut self,
        head: &httparse::Response<'_, '_>,
        time_ns: u64,
        truncated: bool,
    ) -> Body {
        let status = head.code.unwrap_or_default();
        let fields = Fields::scan(head.headers);
        let c = &mut self.ctx.counters;
        c.truncated_heads += u64::from(truncated);
        if (100..200).contains(&status) && status != 101 {
            c.interim_responses += 1;
            self.conn.interim = true;
            return Body::None;
        }
        c.responses += 1;
        if std::mem::take(&mut self.conn.response_resynced) {
            self.skip_lost(time_ns);
        }
        let Some(e) = self.answering(Response::Waiting) else {
            self.ctx.counters.responses_without_request += 1;
            self.conn.orphan = true;
            return fields.response_body(status, "", &mut self.ctx.counters);
        };
        e.response = Response::Receiving;
        e.tx.status = Some(status);
        let latency_us = time_ns.saturating_sub(e.tx.time_ns) / 1000;
        e.tx.latency_ms = Some(latency_us as f64 / 1000.0);
        if e.tx.request_id.is_none() {
            e.tx.request_id = fields.request_id.map(lossy);
        }
        // Only HEAD and CONNECT change a response's framing.
        let method = match e.tx.method.as_str() {
            "HEAD" => "HEAD",
            "CONNECT" => "CONNECT",
            _ => "",
        };
        let body = fields.response_body(status, method, &mut self.ctx.counters);
        if body == Body::Tunnel {
            self.ctx.counters.tunnels += 1;
            self.conn.tunnel = true;
        }
        body
    }

    fn end(&mut self, bytes: u64, _framed: bool) {
        match self.kind {
            Kind::Request => {
                if let Some(e) = self
                    .conn
                    .exchanges
                    .iter_mut()
                    .rev()
                    .find(|e| !e.request_done)
                {
                    e.tx.request_bytes = bytes;
                    e.request_done = true;
                }
            }
            Kind::Response if std::mem::take(&mut self.conn.interim) => {
                if let Some(e) = self.answering(Response::Waiting) {
                    e.tx.response_bytes += bytes;
                }
            }
            Kind::Response if std::mem::take(&mut self.conn.orphan) => {}
            Kind::Response => {
                if let Some(e) = self.answering(Response::Receiving) {
                    e.tx.response_bytes += bytes;
                    e.response = Response::Done;
                }
            }
        }
    }

    fn error(&mut self, error: FramingError) {
        let e = &mut self.ctx.counters.errors;
        match (error, self.kind) {
            (FramingError::Head(_), Kind::Request) => e.bad_request_head += 1,
            (FramingError::Head(_), Kind::Response) => e.bad_response_head += 1,
            (FramingError::HeadTooLarge, _) => e.head_too_large += 1,
            (FramingError::HeadTruncated, _) => e.head_truncated += 1,
            (FramingError::Chunk, _) => e.bad_chunk += 1,
        }
        match self.kind {
            Kind::Request => {
                for e in self.conn.exchanges.iter_mut().filter(|e| !e.request_done) {
                    e.request_done = true;
                }
            }
            Kind::Response => {
                self.conn.response_resynced = true;
                self.conn.interim = false;
                self.conn.orphan = false;
                if let Some(e) = self.answering(Response::Receiving) {
                    e.response = Response::Done;
                }
            }
        }
    }

    fn skipped(&mut self, bytes: u64) {
        self.ctx.counters.skipped_bytes += bytes;
        if self.kind == Kind::Response {
            self.conn.response_resynced = true;
        }
    }
}

impl Side<'_> {
    /// After the response stream lost framing, responses may have been lost
    /// with it: a response that starts after a later request was sent
    /// answers that later request (keep-alive clients rarely pipeline), so
    /// the earlier ones are marked as having lost their responses.
    fn skip_lost(&mut self, time_ns: u64) {
        let waiting: Vec<usize> = (0..self.conn.exchanges.len())
            .filter(|&i| self.conn.exchanges[i].response == Response::Waiting)
            .collect();
        for pair in waiting.windows(2) {
            if self.conn.exchanges[pair[1]].tx.time_ns > time_ns {
                break;
            }
            self.conn.exchanges[pair[0]].response = Response::Lost;
        }
    }
}

/// The headers the analyzer reads, found in one pass.
#[derive(Default)]
struct Fields<'h> {
    host: Option<&'h [u8]>,
    user_agent: Option<&'h [u8]>,
    request_id: Option<&'h [u8]>,
    /// Last `Transfer-Encoding` value.
    transfer_encoding: Option<&'h [u8]>,
    /// `Content-Length`; `Err` when invalid or conflicting.
    content_length: Option<Result<u64, ()>>,
    /// Kong marks: `X-Kong-Request-Id` or an `X-Consumer-*` header.
    from_kong: bool,
}

impl<'h> Fields<'h> {
    fn scan(headers: &[httparse::Header<'h>]) -> Self {
        let mut f = Fields::default();
        let mut kong_id = false;
        for h in headers {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"host") {
                f.host.get_or_insert(h.value);
            } else if name.eq_ignore_ascii_case(b"user-agent") {
                f.user_agent.get_or_insert(h.value);
            } else if name.eq_ignore_ascii_case(b"x-kong-request-id") {
                f.request_id = Some(h.value);
                kong_id = true;
                f.from_kong = true;
            } else if name.len() > 11 && name[..11].eq_ignore_ascii_case(b"x-consumer-") {
                f.from_kong = true;
            } else if name.eq_ignore_ascii_case(b"x-request-id") && !kong_id {
                f.request_id = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                f.transfer_encoding = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let value = parse_length(h.value);
                f.content_length = Some(match f.content_length {
                    None => value,
                    Some(prev) if prev == value => value,
                    Some(_) => Err(()),
                });
            }
        }
        f
    }

    /// Body framing from the headers (RFC 9112 section 6.3 rules 3-6);
    /// `otherwise` when neither header is present.
    fn body(&self, counters: &mut HttpCounters, otherwise: Body) -> Body {
        if let Some(te) = self.transfer_encoding {
            let last = te.rsplit(|&b| b == b',').next().unwrap_or_default();
            return if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Body::Chunked
            } else {
                Body::UntilClose
            };
        }
        match self.content_length {
            Some(Ok(n)) => Body::Length(n),
            Some(Err(())) => {
                counters.errors.bad_content_length += 1;
                Body::UntilClose
            }
            None => otherwise,
        }
    }

    /// Response body framing, given the request method (RFC 9112 section
    /// 6.3 rules 1-2: HEAD, 204 and 304 have none; 2xx to CONNECT and 101
    /// leave HTTP).
    fn response_body(&self, status: u16, method: &str, counters: &mut HttpCounters) -> Body {
        if status == 101 || (method == "CONNECT" && (200..300).contains(&status)) {
            Body::Tunnel
        } else if method == "HEAD" || status == 204 || status == 304 {
            Body::None
        } else {
            self.body(counters, Body::UntilClose)
        }
    }
}

/// A Content-Length value: one or more digits (RFC 9110 section 8.6), at
/// most 18 so it fits a u64.
fn parse_length(value: &[u8]) -> Result<u64, ()> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    Ok(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// The authority of an absolute-form target (`http://host:port/path`).
fn authority(target: &str) -> Option<String> {
    let rest = target.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_owned())
}

//! From TLS records to segments: each connection's plaintext becomes
//! synthetic TCP segments on its real 4-tuple, so the flow table, the
//! HTTP framing and everything after take it unchanged.
//!
//! - A chunk's place in its direction's stream is the kernel's byte
//!   offset (advanced for every call, even one whose record was lost), so
//!   `seq = ISN + 1 + offset` and a lost record is a hole the reassembler
//!   skips as it skips a lost segment.
//! - A record arrives before its connection's socket is known when
//!   OpenSSL served the call from its read-ahead buffer; it waits (at most
//!   [`UNBOUND_WAIT_NS`], [`MAX_PENDING_CHUNKS`] per connection) for the
//!   socket, then goes out in call order.
//! - A connection whose start was seen (`SSL_set_accept_state` or
//!   `SSL_set_connect_state`) opens with a synthetic three-way handshake
//!   from its client: the gateway's TLS took every byte it read, and each
//!   segment acknowledges the other direction up to what was read or
//!   written, so a request the gateway read counts as taken even when
//!   unanswered. `SSL_free` ends it with a FIN from each side. Without its
//!   start (open before the tap) it is a mid-stream flow, as on the wire.
//! - Only the gateway's proxy traffic counts, decided by topology as the
//!   identity layer does: a connection the gateway accepted on a proxy
//!   port (client leg) or one it opened (an upstream over TLS). Others (an
//!   admin or status listener) are counted and dropped. HTTP/2 (ALPN `h2`)
//!   goes on like HTTP/1.1: the HTTP layer knows it by its preface.

use std::collections::VecDeque;

use hashbrown::HashMap;
use sensor_ebpf::tcp_flags::{ACK, FIN, PSH, SYN};

use super::record::{Chunk, ConnId, Event, Op, Role, TlsRecord, Tuple};
use crate::capture::{Direction, Segment, Source};

/// Most connections tracked; past it the least recently seen eighth goes.
pub const MAX_CONNECTIONS: usize = 65_536;
/// Most chunks of one connection waiting for its socket.
pub const MAX_PENDING_CHUNKS: usize = 32;
/// Most captured bytes waiting for sockets, all connections together.
pub const MAX_PENDING_BYTES: usize = 8 << 20;
/// How long chunks wait for their socket (event time).
pub const UNBOUND_WAIT_NS: u64 = 5_000_000_000;
/// A connection silent this long is forgotten (its `SSL_free` was lost);
/// the flow table has long expired its flow (120 s).
pub const IDLE_NS: u64 = 600_000_000_000;

/// The initial sequence number of both synthetic streams.
const ISN: u32 = 0;

/// What became of the chunks (userspace side of the TLS tap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChunkCounters {
    /// Chunks that entered the pipeline as segments.
    pub delivered: u64,
    /// Chunks never tied to a socket (no socket call in any of the
    /// connection's calls before `SSL_free`, within the wait, or the queue
    /// was full): dropped.
    pub unbound: u64,
    /// Chunks of connections that are not proxy traffic (accepted on a
    /// port not in `--proxy-ports`): dropped.
    pub other_port: u64,
    /// Bytes of calls beyond the capture length (framed by length, never read).
    pub beyond_capture_bytes: u64,
    /// Connections forgotten to stay within [`MAX_CONNECTIONS`].
    pub evicted: u64,
}

/// The connections of the TLS source.
pub struct Connections {
    conns: HashMap<ConnId, Conn>,
    /// Kong's proxy listener ports: connections accepted on them count.
    proxy_ports: Vec<u16>,
    pending_bytes: usize,
    counters: ChunkCounters,
    next_sweep_ns: u64,
    /// Time of the last call record that came without its socket.
    unbound_ns: Option<u64>,
}

/// What a connection's chunks become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Not known until the socket is.
    Unbound,
    /// Proxy traffic on `tuple`, with which side is the client.
    Keep {
        /// The socket.
        tuple: Tuple,
        /// The peer is the client (the gateway serves the connection).
        peer_is_client: bool,
    },
    /// Not proxy traffic.
    OtherPort,
}

struct Conn {
    tuple: Option<Tuple>,
    role: Option<Role>,
    verdict: Verdict,
    /// Chunks waiting for the socket, in call order.
    pending: VecDeque<Waiting>,
    /// Per [`Op::index`]: the end of what was delivered of each direction.
    next: [u64; 2],
    /// Whether anything (a handshake, a chunk) went into the pipeline.
    opened: bool,
    /// The kernel's call counter saw a call: a later 0 means its state
    /// restarted (the `SSL*` was reused after a lost `SSL_free`).
    called: bool,
    last_ns: u64,
    /// The gateway process.
    pid: u32,
}

/// A chunk waiting for its socket.
struct Waiting {
    time_ns: u64,
    op: Op,
    offset: u64,
    len: u32,
    bytes: Vec<u8>,
}

impl Connections {
    /// No connections; those accepted on `proxy_ports` count.
    pub fn new(proxy_ports: Vec<u16>) -> Self {
        Self {
            conns: HashMap::new(),
            proxy_ports,
            pending_bytes: 0,
            counters: ChunkCounters::default(),
            next_sweep_ns: 0,
            unbound_ns: None,
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> ChunkCounters {
        self.counters
    }

    /// Time of the last call record that came without its socket (a
    /// connection whose start the tap missed): the socket tracepoints are
    /// wanted (the TLS source's `binding`).
    pub fn unbound_ns(&self) -> Option<u64> {
        self.unbound_ns
    }

    /// Takes one record, handing the segments it makes to `emit`.
    pub fn record(&mut self, r: &TlsRecord<'_>, emit: &mut dyn FnMut(&Segment<'_>)) {
        self.sweep(r.time_ns, emit);
        if let Event::Close = r.event {
            if let Some(conn) = self.conns.remove(&r.conn) {
                self.end(conn, r.time_ns, emit);
            }
            return;
        }
        let restarted = self.conns.get(&r.conn).is_some_and(|c| {
            let reused = matches!(r.event, Event::Data(d) if d.seq == 0) && c.called;
            let moved = c.tuple.is_some() && r.tuple.is_some() && c.tuple != r.tuple;
            reused || moved
        });
        if restarted && let Some(old) = self.conns.remove(&r.conn) {
            self.end(old, r.time_ns, emit);
        }
        if !self.conns.contains_key(&r.conn) {
            self.make_room(r.time_ns, emit);
            self.conns.insert(r.conn, Conn::new(r.time_ns, r.conn.tgid));
        }
        let Some(conn) = self.conns.get_mut(&r.conn) else {
            return;
        };
        conn.last_ns = r.time_ns;
        conn.role = conn.role.or(r.role);
        let mut out = Out {
            counters: &mut self.counters,
            pending_bytes: &mut self.pending_bytes,
            emit,
        };
        if let (None, Some(tuple)) = (conn.tuple, r.tuple) {
            conn.bind(tuple, &self.proxy_ports, &mut out);
        }
        if let Event::Data(chunk) = r.event {
            if conn.tuple.is_none() {
                self.unbound_ns = Some(r.time_ns);
            }
            conn.called = true;
            out.counters.beyond_capture_bytes += u64::from(chunk.len) - chunk.bytes.len() as u64;
            conn.data(&chunk, r.time_ns, &mut out);
        }
    }

    /// Moves event time on without a record (traffic is idle).
    pub fn tick(&mut self, now_ns: u64, emit: &mut dyn FnMut(&Segment<'_>)) {
        self.sweep(now_ns, emit);
    }

    /// End of capture: chunks still waiting for a socket are counted as
    /// unbound. Flows in the pipeline end with it.
    pub fn finish(&mut self) {
        for (_, conn) in self.conns.drain() {
            self.counters.unbound += conn.pending.len() as u64;
        }
        self.pending_bytes = 0;
    }

    /// Once a second: drops chunks that waited too long for their socket
    /// and forgets silent connections.
    fn sweep(&mut self, now_ns: u64, emit: &mut dyn FnMut(&Segment<'_>)) {
        if now_ns < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = now_ns.saturating_add(1_000_000_000);
        let waited = now_ns.saturating_sub(UNBOUND_WAIT_NS);
        for conn in self.conns.values_mut() {
            if conn.pending.front().is_some_and(|w| w.time_ns < waited) {
                for w in conn.pending.drain(..) {
                    self.counters.unbound += 1;
                    self.pending_bytes -= w.bytes.len();
                }
            }
        }
        let idle = now_ns.saturating_sub(IDLE_NS);
        let silent: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last_ns < idle)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            if let Some(conn) = self.conns.remove(&id) {
                self.end(conn, now_ns, emit);
            }
        }
    }

    /// Past [`MAX_CONNECTIONS`], ends the least recently seen eighth.
    fn make_room(&mut self, now_ns: u64, emit: &mut dyn FnMut(&Segment<'_>)) {
        if self.conns.len() < MAX_CONNECTIONS {
            return;
        }
        let mut oldest: Vec<(u64, ConnId)> =
            self.conns.iter().map(|(id, c)| (c.last_ns, *id)).collect();
        oldest.sort_unstable();
        for (_, id) in oldest.into_iter().take(MAX_CONNECTIONS / 8) {
            if let Some(conn) = self.conns.remove(&id) {
                self.counters.evicted += 1;
                self.end(conn, now_ns, emit);
            }
        }
    }

    /// A connection's end: what still waits is unbound; a kept one that
    /// went into the pipeline closes with a FIN from each side.
    fn end(&mut self, conn: Conn, time_ns: u64, emit: &mut dyn FnMut(&Segment<'_>)) {
        self.counters.unbound += conn.pending.len() as u64;
        self.pending_bytes -= conn.pending.iter().map(|w| w.bytes.len()).sum::<usize>();
        if let (Verdict::Keep { tuple, .. }, true) = (conn.verdict, conn.opened) {
            for op in [Op::Write, Op::Read] {
                let mut fin = conn.segment(tuple, op, time_ns, FIN | ACK, &[], 0);
                // The second FIN acknowledges the first.
                if op == Op::Read {
                    fin.ack = fin.ack.wrapping_add(1);
                }
                emit(&fin);
            }
        }
    }
}

/// Where a connection's output goes.
struct Out<'a, 'e> {
    counters: &'a mut ChunkCounters,
    pending_bytes: &'a mut usize,
    emit: &'a mut (dyn FnMut(&Segment<'_>) + 'e),
}

impl Conn {
    fn new(time_ns: u64, pid: u32) -> Self {
        Self {
            pid,
            tuple: None,
            role: None,
            verdict: Verdict::Unbound,
            pending: VecDeque::new(),
            next: [0; 2],
            opened: false,
            called: false,
            last_ns: time_ns,
        }
    }

    /// The socket is known: decide what the connection is, then deliver
    /// what waited for it, in order.
    fn bind(&mut self, tuple: Tuple, proxy_ports: &[u16], out: &mut Out<'_, '_>) {
        self.tuple = Some(tuple);
        let on_proxy_port = proxy_ports.contains(&tuple.local.port());
        self.verdict = match self.role {
            Some(Role::Client) => Verdict::Keep {
                tuple,
                peer_is_client: false,
            },
            _ if on_proxy_port => Verdict::Keep {
                tuple,
                peer_is_client: true,
            },
            _ => Verdict::OtherPort,
        };
        while let Some(w) = self.pending.pop_front() {
            *out.pending_bytes -= w.bytes.len();
            let chunk = Chunk {
                op: w.op,
                seq: 0,
                offset: w.offset,
                len: w.len,
                bytes: &w.bytes,
            };
            self.deliver(&chunk, w.time_ns, out);
        }
    }

    /// One call's plaintext: delivered, or kept until the socket is known.
    fn data(&mut self, chunk: &Chunk<'_>, time_ns: u64, out: &mut Out<'_, '_>) {
        if self.tuple.is_some() {
            return self.deliver(chunk, time_ns, out);
        }
        let room = *out.pending_bytes + chunk.bytes.len() <= MAX_PENDING_BYTES;
        if self.pending.len() >= MAX_PENDING_CHUNKS || !room {
            out.counters.unbound += 1;
            return;
        }
        *out.pending_bytes += chunk.bytes.len();
        self.pending.push_back(Waiting {
            time_ns,
            op: chunk.op,
            offset: chunk.offset,
            len: chunk.len,
            bytes: chunk.bytes.to_vec(),
        });
    }

    fn deliver(&mut self, chunk: &Chunk<'_>, time_ns: u64, out: &mut Out<'_, '_>) {
        let (tuple, peer_is_client) = match self.verdict {
            Verdict::Keep {
                tuple,
                peer_is_client,
            } => (tuple, peer_is_client),
            Verdict::OtherPort => return out.counters.other_port += 1,
            // Delivery follows the bind, which decides.
            Verdict::Unbound => return out.counters.unbound += 1,
        };
        if !self.opened && self.role.is_some() {
            self.handshake(tuple, peer_is_client, time_ns, out.emit);
        }
        self.opened = true;
        let seg = self.segment(tuple, chunk.op, time_ns, ACK | PSH, chunk.bytes, chunk.len);
        let seg = Segment {
            seq: ISN.wrapping_add(1).wrapping_add(chunk.offset as u32),
            ..seg
        };
        let end = &mut self.next[chunk.op.index()];
        *end = (*end).max(chunk.offset + u64::from(chunk.len));
        out.counters.delivered += 1;
        (out.emit)(&seg);
    }

    /// SYN from the client, SYN-ACK from the server, ACK from the client.
    fn handshake(
        &self,
        tuple: Tuple,
        peer_is_client: bool,
        time_ns: u64,
        emit: &mut dyn FnMut(&Segment<'_>),
    ) {
        // The peer's stream is what the gateway reads.
        let (client, server) = if peer_is_client {
            (Op::Read, Op::Write)
        } else {
            (Op::Write, Op::Read)
        };
        let syn = Segment {
            seq: ISN,
            ack: 0,
            ..self.segment(tuple, client, time_ns, SYN, &[], 0)
        };
        let syn_ack = Segment {
            seq: ISN,
            ..self.segment(tuple, server, time_ns, SYN | ACK, &[], 0)
        };
        emit(&syn);
        emit(&syn_ack);
        emit(&self.segment(tuple, client, time_ns, ACK, &[], 0));
    }

    /// A segment of direction `op` on `tuple` at the end of what was
    /// delivered of it, acknowledging the other direction's delivered bytes.
    fn segment<'p>(
        &self,
        tuple: Tuple,
        op: Op,
        time_ns: u64,
        flags: u8,
        payload: &'p [u8],
        payload_len: u32,
    ) -> Segment<'p> {
        let (src, dst, direction) = match op {
            Op::Read => (tuple.peer, tuple.local, Direction::Ingress),
            Op::Write => (tuple.local, tuple.peer, Direction::Egress),
        };
        let stream = |op: Op| {
            ISN.wrapping_add(1)
                .wrapping_add(self.next[op.index()] as u32)
        };
        Segment {
            time_ns,
            src,
            dst,
            seq: stream(op),
            ack: stream(op.reverse()),
            flags,
            payload_len,
            payload,
            source: Source::Tls {
                direction,
                pid: self.pid,
            },
        }
    }
}

#[cfg(test)]
mod tests;

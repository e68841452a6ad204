//! Generated captures for what the lab cannot play live: tens of thousands
//! of flows holding unfinished request heads (the memory budget's worst
//! case), with a real offender among them; and keep-alive load over up to
//! 100,000 concurrent connections and a million client IPs (the scale
//! benchmark). Packets are built with `etherparse` (checksums right) and
//! written as pcap with `pcap-file`.

use std::{io::Write, net::Ipv4Addr, time::Duration};

use anyhow::Result;
use etherparse::PacketBuilder;
use pcap_file::{
    DataLink,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

/// The server every generated flow talks to (a Kong proxy listener).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// Its port.
pub const SERVER_PORT: u16 = 8000;
/// The offender of [`unfinished_heads`]: a flood of answered requests.
pub const OFFENDER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// Payload bytes per generated segment.
const MSS: usize = 1448;

/// A TCP connection in a generated capture: each side's next sequence
/// number.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    /// The client's address and port.
    pub client: (Ipv4Addr, u16),
    /// The server's address and port.
    pub server: (Ipv4Addr, u16),
    /// Next sequence number of the client and of the server.
    pub next: [u32; 2],
}

/// Writes a pcap (raw IPv4 link type) of crafted packets with increasing
/// timestamps, a microsecond apart.
pub struct CaptureWriter<W: Write> {
    pcap: PcapWriter<W>,
    time: Duration,
}

impl<W: Write> CaptureWriter<W> {
    /// A capture written to `out`.
    ///
    /// # Errors
    /// Writing the pcap header failed.
    pub fn new(out: W) -> Result<Self> {
        let header = PcapHeader {
            datalink: DataLink::IPV4,
            ..PcapHeader::default()
        };
        Ok(Self {
            pcap: PcapWriter::with_header(out, header)?,
            time: Duration::from_secs(1_800_000_000),
        })
    }

    /// Moves the clock on by `d`.
    pub fn wait(&mut self, d: Duration) {
        self.time += d;
    }

    /// One raw IPv4 packet, as is (for crafted headers).
    ///
    /// # Errors
    /// Writing failed.
    pub fn packet(&mut self, ip: &[u8]) -> Result<()> {
        self.time += Duration::from_micros(1);
        let len = ip.len() as u32;
        self.pcap
            .write_packet(&PcapPacket::new(self.time, len, ip))?;
        Ok(())
    }

    /// One TCP segment from `src` to `dst` (ACK set when `ack` is given),
    /// checksums right.
    ///
    /// # Errors
    /// Writing failed.
    pub fn segment(
        &mut self,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        payload: &[u8],
    ) -> Result<()> {
        self.packet(&tcp_packet(src, dst, seq, ack, syn, payload)?)
    }

    /// A handshake from `client` to `server`.
    ///
    /// # Errors
    /// Writing failed.
    pub fn connect(
        &mut self,
        client: (Ipv4Addr, u16),
        server: (Ipv4Addr, u16),
    ) -> Result<Connection> {
        self.segment(client, server, 1000, None, true, b"")?;
        self.segment(server, client, 5000, Some(1001), true, b"")?;
        self.segment(client, server, 1001, Some(5001), false, b"")?;
        Ok(Connection {
            client,
            server,
            next: [1001, 5001],
        })
    }

    /// The client sends `bytes` on `c`.
    ///
    /// # Errors
    /// Writing failed.
    pub fn request(&mut self, c: &mut Connection, bytes: &[u8]) -> Result<()> {
        self.segment(c.client, c.server, c.next[0], Some(c.next[1]), false, bytes)?;
        c.next[0] += bytes.len() as u32;
        Ok(())
    }

    /// The server sends `bytes` on `c`.
    ///
    /// # Errors
    /// Writing failed.
    pub fn response(&mut self, c: &mut Connection, bytes: &[u8]) -> Result<()> {
        self.segment(c.server, c.client, c.next[1], Some(c.next[0]), false, bytes)?;
        c.next[1] += bytes.len() as u32;
        Ok(())
    }

    /// Closes `c`: the client's FIN, the server's FIN, the client's ACK.
    ///
    /// # Errors
    /// Writing failed.
    pub fn close(&mut self, c: &mut Connection) -> Result<()> {
        let [client, server] = c.next;
        let (c2s, s2c) = ((c.client, c.server), (c.server, c.client));
        self.packet(&build(c2s, client, Some(server), Control::Fin, b"")?)?;
        self.packet(&build(s2c, server, Some(client + 1), Control::Fin, b"")?)?;
        self.segment(c.client, c.server, client + 1, Some(server + 1), false, b"")?;
        c.next = [client + 1, server + 1];
        Ok(())
    }
}

/// An IPv4/TCP packet, checksums right.
///
/// # Errors
/// The payload is too large.
pub fn tcp_packet(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    payload: &[u8],
) -> Result<Vec<u8>> {
    let control = if syn { Control::Syn } else { Control::None };
    build((src, dst), seq, ack, control, payload)
}

/// The control bit [`build`] sets besides ACK.
#[derive(Clone, Copy)]
enum Control {
    None,
    Syn,
    Fin,
}

/// An IPv4/TCP packet from `src` to `dst`, checksums right.
fn build(
    (src, dst): ((Ipv4Addr, u16), (Ipv4Addr, u16)),
    seq: u32,
    ack: Option<u32>,
    control: Control,
    payload: &[u8],
) -> Result<Vec<u8>> {
    let mut tcp =
        PacketBuilder::ipv4(src.0.octets(), dst.0.octets(), 64).tcp(src.1, dst.1, seq, 65535);
    match control {
        Control::None => {}
        Control::Syn => tcp = tcp.syn(),
        Control::Fin => tcp = tcp.fin(),
    }
    if let Some(ack) = ack {
        tcp = tcp.ack(ack);
    }
    let mut packet = Vec::with_capacity(60 + payload.len());
    tcp.write(&mut packet, payload)?;
    Ok(packet)
}

/// `flows` connections from distinct clients, each sending a request head
/// of `head_bytes` that never ends (no blank line), then [`OFFENDER`]
/// sending `flood` answered requests on one connection, all within one
/// 15 s window.
///
/// # Errors
/// Writing to `out` failed.
pub fn unfinished_heads(out: impl Write, flows: u32, head_bytes: usize, flood: u32) -> Result<()> {
    let mut w = CaptureWriter::new(out)?;
    let mut head = b"GET /slow HTTP/1.1\r\nHost: api\r\nX-Pad: ".to_vec();
    head.resize(head_bytes, b'a');
    for i in 0..flows {
        let client = (Ipv4Addr::from(0x0a00_0001 + i), 40000 + (i % 20000) as u16);
        let mut c = w.connect(client, (SERVER, SERVER_PORT))?;
        for chunk in head.chunks(MSS) {
            w.request(&mut c, chunk)?;
        }
    }
    let mut c = w.connect((OFFENDER, 55555), (SERVER, SERVER_PORT))?;
    for _ in 0..flood {
        w.request(&mut c, b"GET /flood HTTP/1.1\r\nHost: api\r\n\r\n")?;
        w.response(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
    }
    Ok(())
}

/// Shape of [`keep_alive_load`].
#[derive(Clone, Copy, Debug)]
pub struct KeepAlive {
    /// Concurrent connections, all from the proxies of [`KEEP_ALIVE_PROXIES`].
    pub flows: u32,
    /// Distinct client IPs named in `X-Forwarded-For`, from 100.64.0.0.
    pub client_ips: u32,
    /// Transactions in all.
    pub transactions: u32,
    /// Capture time between transactions.
    pub gap: Duration,
}

/// The proxies [`keep_alive_load`]'s connections come from (a trusted
/// proxy CIDR): 10.100.0.1, 10.100.0.2, ... 40,000 connections each.
pub const KEEP_ALIVE_PROXIES: &str = "10.100.0.0/24";

/// [`keep_alive_load`]'s answer: a 200 with a 19-byte JSON body.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
    Content-Length: 19\r\n\r\n{\"id\":42,\"ok\":true}";

/// Keep-alive load: `flows` handshakes first (all open at once), then
/// `transactions` small GETs, round-robin over the connections, each
/// answered by a 200 with a short JSON body, `gap` of capture time apart;
/// then every connection closed. Transaction `t` names client IP
/// `100.64.0.0 + t % client_ips` in `X-Forwarded-For`, with that client's
/// own `apikey` (so no key spreads over clients).
///
/// # Errors
/// Writing to `out` failed.
pub fn keep_alive_load(out: impl Write, shape: KeepAlive) -> Result<()> {
    let mut w = CaptureWriter::new(out)?;
    let mut conns = (0..shape.flows)
        .map(|i| {
            let proxy = Ipv4Addr::new(10, 100, 0, 1 + (i / 40_000) as u8);
            w.connect((proxy, 20_000 + (i % 40_000) as u16), (SERVER, SERVER_PORT))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut request = Vec::with_capacity(160);
    for t in 0..shape.transactions {
        let n = t % shape.client_ips;
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + n);
        request.clear();
        write!(
            request,
            "GET /api/items/{} HTTP/1.1\r\nHost: api.example\r\napikey: key-{n}\r\n\
             X-Forwarded-For: {ip}\r\n\r\n",
            t % 100
        )?;
        let c = &mut conns[(t % shape.flows) as usize];
        w.wait(shape.gap);
        w.request(c, &request)?;
        w.response(c, RESPONSE)?;
    }
    for c in &mut conns {
        w.close(c)?;
    }
    Ok(())
}

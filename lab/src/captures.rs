//! Generated captures for what the lab cannot play live: tens of thousands
//! of flows holding unfinished request heads (the memory budget's worst
//! case), with a real offender among them. Packets are built with
//! `etherparse` (checksums right) and written as pcap with `pcap-file`.

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

/// Writes packets with increasing timestamps, a microsecond apart.
struct Writer<W: Write> {
    pcap: PcapWriter<W>,
    time: Duration,
}

impl<W: Write> Writer<W> {
    fn new(out: W) -> Result<Self> {
        let header = PcapHeader {
            datalink: DataLink::IPV4,
            ..PcapHeader::default()
        };
        Ok(Self {
            pcap: PcapWriter::with_header(out, header)?,
            time: Duration::from_secs(1_800_000_000),
        })
    }

    /// One TCP segment from `(src, sport)` to `(dst, dport)`.
    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        payload: &[u8],
    ) -> Result<()> {
        let mut tcp =
            PacketBuilder::ipv4(src.0.octets(), dst.0.octets(), 64).tcp(src.1, dst.1, seq, 65535);
        if syn {
            tcp = tcp.syn();
        }
        if let Some(ack) = ack {
            tcp = tcp.ack(ack);
        }
        let mut packet = Vec::with_capacity(60 + payload.len());
        tcp.write(&mut packet, payload)?;
        self.time += Duration::from_micros(1);
        let len = packet.len() as u32;
        self.pcap
            .write_packet(&PcapPacket::new(self.time, len, &packet))?;
        Ok(())
    }

    /// A handshake from `client`; returns the client's and server's next
    /// sequence numbers.
    fn handshake(&mut self, client: (Ipv4Addr, u16)) -> Result<(u32, u32)> {
        let server = (SERVER, SERVER_PORT);
        self.segment(client, server, 1000, None, true, b"")?;
        self.segment(server, client, 5000, Some(1001), true, b"")?;
        self.segment(client, server, 1001, Some(5001), false, b"")?;
        Ok((1001, 5001))
    }
}

/// `flows` connections from distinct clients, each sending a request head
/// of `head_bytes` that never ends (no blank line), then [`OFFENDER`]
/// sending `flood` answered requests on one connection, all within one
/// 15 s window.
///
/// # Errors
/// Writing to `out` failed.
pub fn unfinished_heads(out: impl Write, flows: u32, head_bytes: usize, flood: u32) -> Result<()> {
    let mut w = Writer::new(out)?;
    let mut head = b"GET /slow HTTP/1.1\r\nHost: api\r\nX-Pad: ".to_vec();
    head.resize(head_bytes, b'a');
    for i in 0..flows {
        let client = (Ipv4Addr::from(0x0a00_0001 + i), 40000 + (i % 20000) as u16);
        let (mut seq, ack) = w.handshake(client)?;
        for chunk in head.chunks(MSS) {
            w.segment(client, (SERVER, SERVER_PORT), seq, Some(ack), false, chunk)?;
            seq += chunk.len() as u32;
        }
    }
    let client = (OFFENDER, 55555);
    let server = (SERVER, SERVER_PORT);
    let (mut seq, mut ack) = w.handshake(client)?;
    let request = b"GET /flood HTTP/1.1\r\nHost: api\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for _ in 0..flood {
        w.segment(client, server, seq, Some(ack), false, request)?;
        seq += request.len() as u32;
        w.segment(server, client, ack, Some(seq), false, response)?;
        ack += response.len() as u32;
    }
    Ok(())
}

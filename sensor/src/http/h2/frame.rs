//! HTTP/2 frames (RFC 9113 section 4) read from one direction's bytes,
//! which may arrive cut anywhere and with uncaptured stretches.

/// The client connection preface (RFC 9113 section 3.4), which every HTTP/2
/// connection starts with, TLS or not.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 section 6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 0x5;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, PUSH_PROMISE, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS, PUSH_PROMISE).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// Most payload bytes kept of a frame whose content is read (headers,
/// settings): larger ones are taken as lost.
pub const MAX_KEPT: u32 = 64 * 1024;

/// One frame. DATA, frames whose content is not read and read ones over
/// [`MAX_KEPT`] come at their header, without payload; the others once
/// their payload is complete.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream id (0: the connection).
    pub stream: u32,
    /// Payload length, bytes.
    pub len: u32,
    /// The payload of a frame whose content is read; `None` for the others
    /// and when part of it was not captured.
    pub payload: Option<&'a [u8]>,
}

/// The frame in progress.
#[derive(Clone, Copy, Debug)]
struct Current {
    kind: u8,
    flags: u8,
    stream: u32,
    len: u32,
    remaining: u32,
    keep: bool,
}

/// Splits one direction's bytes into frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    head: [u8; 9],
    head_len: usize,
    current: Option<Current>,
    payload: Vec<u8>,
    /// Part of the kept payload in progress was not captured.
    lost: bool,
}

impl FrameReader {
    /// Reads `data`, then `unknown` uncaptured bytes, calling `on` for every
    /// frame. Returns false when framing is lost: uncaptured bytes where a
    /// frame header was (nothing after can be placed).
    pub fn feed(&mut self, data: &[u8], unknown: u64, on: &mut impl FnMut(Frame<'_>)) -> bool {
        let mut i = 0;
        while i < data.len() {
            match self.current {
                None => {
                    let n = (9 - self.head_len).min(data.len() - i);
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&data[i..i + n]);
                    self.head_len += n;
                    i += n;
                    if self.head_len == 9 {
                        self.start(on);
                    }
                }
                Some(ref mut c) => {
                    let n = (c.remaining as usize).min(data.len() - i);
                    if c.keep {
                        self.payload.extend_from_slice(&data[i..i + n]);
                    }
                    c.remaining -= n as u32;
                    i += n;
                    if c.remaining == 0 {
                        self.finish(on);
                    }
                }
            }
        }
        let mut unknown = unknown;
        while unknown > 0 {
            let Some(ref mut c) = self.current else {
                return false;
            };
            let n = u64::from(c.remaining).min(unknown);
            self.lost |= c.keep;
            c.remaining -= n as u32;
            unknown -= n;
            if c.remaining == 0 {
                self.finish(on);
            }
        }
        true
    }

    /// Bytes held (a kept payload in progress).
    pub fn memory(&self) -> usize {
        self.payload.capacity()
    }

    /// A complete header: the frame starts.
    fn start(&mut self, on: &mut impl FnMut(Frame<'_>)) {
        let h = self.head;
        self.head_len = 0;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let read = matches!(
            kind,
            kind::HEADERS
                | kind::CONTINUATION
                | kind::PUSH_PROMISE
                | kind::SETTINGS
                | kind::RST_STREAM
        );
        let keep = read && len <= MAX_KEPT;
        if !keep {
            on(Frame {
                kind,
                flags,
                stream,
                len,
                payload: None,
            });
        }
        self.payload.clear();
        self.lost = false;
        self.current = Some(Current {
            kind,
            flags,
            stream,
            len,
            remaining: len,
            keep,
        });
        if len == 0 {
            self.finish(on);
        }
    }

    /// The frame's payload is complete.
    fn finish(&mut self, on: &mut impl FnMut(Frame<'_>)) {
        let Some(c) = self.current.take() else { return };
        if c.keep {
            let payload = std::mem::take(&mut self.payload);
            on(Frame {
                kind: c.kind,
                flags: c.flags,
                stream: c.stream,
                len: c.len,
                payload: (!self.lost).then_some(&payload[..]),
            });
            self.payload = payload;
            self.payload.clear();
            if self.payload.capacity() > 16 * 1024 {
                self.payload = Vec::new();
            }
        }
        self.lost = false;
    }
}

/// The content of a HEADERS or PUSH_PROMISE payload: padding and the
/// priority fields (HEADERS) or promised stream id (PUSH_PROMISE) removed.
/// `None` when the padding does not fit (a malformed frame).
pub fn fragment(kind: u8, flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & flag::PADDED != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    let skip = match kind {
        kind::HEADERS if flags & flag::PRIORITY != 0 => 5,
        kind::PUSH_PROMISE => 4,
        _ => 0,
    };
    let end = p.len().checked_sub(pad)?;
    p.get(skip..end)
}

/// The (identifier, value) pairs of a SETTINGS payload (RFC 9113 section
/// 6.5.1: six bytes each).
pub fn settings(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload.chunks_exact(6).map(|s| {
        (
            u16::from_be_bytes([s[0], s[1]]),
            u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
        )
    })
}

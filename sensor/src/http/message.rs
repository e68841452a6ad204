//! HTTP/1.1 message framing for one direction of a connection (RFC 9112).
//!
//! [`Framer`] walks a reassembled byte stream message by message: it buffers a
//! head until it is complete, hands it to a [`MessageHandler`] (which says
//! how the body is delimited, usually with [`FramingHeaders`]), then skips
//! the body by length, by chunk framing or until the connection closes. Body bytes are counted, never
//! kept, and bytes of unknown content (not captured, or lost) advance the
//! framing by arithmetic. Whatever cannot be framed sends the framer back to
//! looking for the next message start.

use std::mem::MaybeUninit;

use super::strict_head;
use crate::{field_name::Known, flow::Chunk};

/// How a message body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body: the message ends with its head.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked` (RFC 9112 section 7.1).
    Chunked,
    /// Until the connection closes (a response with neither length nor
    /// chunking).
    UntilClose,
    /// Not HTTP any more after this head (101 Switching Protocols, a
    /// successful CONNECT): the rest of the connection is ignored.
    Tunnel,
}

/// The two headers that delimit a message body (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, Default)]
pub struct FramingHeaders<'h> {
    /// The last `Transfer-Encoding` value.
    pub transfer_encoding: Option<&'h [u8]>,
    /// `Content-Length`; `Err` when invalid or when several disagree.
    pub content_length: Option<Result<u64, ()>>,
}

/// A `Content-Length` that is not a number, or several that disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLength;

impl<'h> FramingHeaders<'h> {
    /// Takes one header, whose name is `known` (see
    /// [`crate::field_name::known`]), if it is a framing header; true if
    /// it was.
    pub fn note(&mut self, known: Option<Known>, value: &'h [u8]) -> bool {
        match known {
            Some(Known::TransferEncoding) => self.transfer_encoding = Some(value),
            Some(Known::ContentLength) => {
                let n = parse_length(value);
                self.content_length = Some(match self.content_length {
                    None => n,
                    Some(prev) if prev == n => n,
                    Some(_) => Err(()),
                });
            }
            _ => return false,
        }
        true
    }

    /// A request's body framing (RFC 9112 section 6.3 rules 3-6): chunked
    /// when chunked is the last transfer coding, read to the close for any
    /// other coding, else `Content-Length`, else none. A bad length is
    /// reported and read to the close.
    pub fn request_body(&self) -> (Body, Option<BadLength>) {
        self.body(Body::None)
    }

    /// A response's body framing, given its status and the request's
    /// method (rules 1-2: HEAD, 204 and 304 have none; 101, and 2xx to
    /// CONNECT, leave HTTP; then as a request, but read to the close when
    /// neither header is present).
    pub fn response_body(&self, status: u16, method: &str) -> (Body, Option<BadLength>) {
        if status == 101 || (method == "CONNECT" && (200..300).contains(&status)) {
            (Body::Tunnel, None)
        } else if method == "HEAD" || status == 204 || status == 304 || status < 200 {
            (Body::None, None)
        } else {
            self.body(Body::UntilClose)
        }
    }

    fn body(&self, otherwise: Body) -> (Body, Option<BadLength>) {
        if let Some(te) = self.transfer_encoding {
            let last = te.rsplit(|&b| b == b',').next().unwrap_or_default();
            let body = if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Body::Chunked
            } else {
                Body::UntilClose
            };
            return (body, None);
        }
        match self.content_length {
            Some(Ok(n)) => (Body::Length(n), None),
            Some(Err(())) => (Body::UntilClose, Some(BadLength)),
            None => (otherwise, None),
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

/// Why a framer lost the message framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// httparse rejected the head.
    Head(httparse::Error),
    /// The head grew past the size limit before it ended.
    HeadTooLarge,
    /// The head was cut by bytes of unknown content and could not be salvaged.
    HeadTruncated,
    /// A bad chunk-size line or chunk terminator.
    Chunk,
}

/// Receives what a [`Framer`] finds.
pub trait MessageHandler {
    /// A complete request head starting at `time_ns`; `truncated` when only
    /// its first lines were captured. Returns the body framing.
    fn request(&mut self, head: &httparse::Request<'_, '_>, time_ns: u64, truncated: bool) -> Body;
    /// A complete response head; as [`MessageHandler::request`].
    fn response(
        &mut self,
        head: &httparse::Response<'_, '_>,
        time_ns: u64,
        truncated: bool,
    ) -> Body;
    /// The current message ended after `bytes` bytes (head and body);
    /// `framed` is false when its end is a guess (framing lost, connection
    /// closed mid-body).
    fn end(&mut self, bytes: u64, framed: bool);
    /// The framing was lost; the framer now looks for the next message start.
    fn error(&mut self, error: FramingError);
    /// Bytes skipped while looking for a message start.
    fn skipped(&mut self, bytes: u64);
}

/// Which kind of message a framer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Looking for a message start at the beginning of a chunk.
    #[default]
    Seek,
    /// In a head (possibly buffered in `buf`).
    Head,
    /// In a body with this many bytes left.
    Length(u64),
    /// In a chunked body.
    Chunked(ChunkState),
    /// In a body that ends with the connection.
    UntilClose,
    /// Not HTTP any more.
    Tunnel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// In chunk data with this many bytes left.
    Data(u64),
    /// Reading the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines until an empty one.
    Trailer,
}

/// Limits on what a framer buffers.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Longest head accepted, in bytes (nginx's default
    /// `large_client_header_buffers` is 4 x 8 KiB).
    pub max_head_bytes: usize,
}

/// Longest chunk-size or trailer line buffered, in bytes.
const MAX_LINE: usize = 4096;

/// Header slots parsed into on the stack; a head with more (nginx limits
/// header bytes, not their number) is parsed again into a heap array sized
/// by its line count.
const MAX_HEADERS: usize = 96;

/// Bytes buffered while a few bytes may still start a message.
const MAX_SNIFF: usize = 1024;

/// The framing state of one direction's byte stream.
#[derive(Debug, Default)]
pub struct Framer {
    state: State,
    /// A partial head, or a partial chunk/trailer line.
    buf: Vec<u8>,
    /// Start time of the buffered head.
    head_time_ns: u64,
    /// Bytes of the current message so far.
    bytes: u64,
    /// The buffered head may still turn out not to be a message start
    /// (only a few bytes of it arrived: `GE`, `GET`, `GET http:/`).
    sniffing: bool,
}

impl Framer {
    /// Heap bytes buffered (a partial head or chunk line).
    pub fn memory(&self) -> usize {
        self.buf.capacity()
    }

    /// Body bytes that follow and are only counted, never read: the rest
    /// of a `Content-Length` body or of a chunk's data (RFC 9112 sections
    /// 6.3 and 7.1); 0 anywhere else.
    pub fn opaque_ahead(&self) -> u64 {
        match self.state {
            State::Length(left) | State::Chunked(ChunkState::Data(left)) => left,
            _ => 0,
        }
    }

    /// Drops what is buffered and looks for the next message start (the
    /// memory budget is exhausted); true if a message in progress was lost.
    pub fn shed(&mut self) -> bool {
        let lost = !matches!(self.state, State::Seek | State::Tunnel);
        if self.state != State::Tunnel {
            self.reset();
        }
        self.buf = Vec::new();
        lost
    }

    /// Stops parsing: the connection is no longer HTTP.
    pub fn tunnel(&mut self) {
        self.state = State::Tunnel;
        self.buf = Vec::new();
    }

    /// Takes the next chunk of the stream. Returns how many of its last
    /// known bytes were not read: those after a head that switched the
    /// connection to another protocol (0 otherwise).
    pub fn chunk(
        &mut self,
        kind: MessageKind,
        chunk: Chunk<'_>,
        limits: HeadLimits,
        m: &mut impl MessageHandler,
    ) -> usize {
        let mut data = chunk.data;
        let mut at_start = true;
        while !data.is_empty() {
            let used = match self.state {
                State::Seek if at_start && sniff(kind, data) != Start::No => {
                    self.sniffing = sniff(kind, data) == Start::Maybe;
                    self.state = State::Head;
                    0
                }
                State::Seek => {
                    m.skipped(data.len() as u64);
                    data.len()
                }
                State::Head => self.head(kind, data, chunk.time_ns, limits, m),
                State::Length(left) => {
                    let n = left.min(data.len() as u64);
                    self.body_bytes(left, n, m);
                    n as usize
                }
                State::Chunked(c) => self.chunked(c, data, m),
                State::UntilClose => {
                    self.bytes += data.len() as u64;
                    data.len()
                }
                State::Tunnel => break,
            };
            data = &data[used..];
            at_start = false;
        }
        if chunk.unknown > 0 {
            self.unknown(kind, chunk.unknown, limits, m);
        }
        data.len()
    }

    /// The connection ended: a body delimited by the close ends here; any
    /// other message in progress ends unframed.
    pub fn close(&mut self, kind: MessageKind, limits: HeadLimits, m: &mut impl MessageHandler) {
        match self.state {
            State::UntilClose => m.end(self.bytes, true),
            State::Length(_) | State::Chunked(_) => m.end(self.bytes, false),
            State::Head if !self.buf.is_empty() => self.salvage(kind, limits, m),
            State::Seek | State::Head | State::Tunnel => {}
        }
        self.state = State::Seek;
        self.buf = Vec::new();
        self.sniffing = false;
    }

    fn head(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        time_ns: u64,
        limits: HeadLimits,
        m: &mut impl MessageHandler,
    ) -> usize {
        if self.buf.is_empty() {
            self.head_time_ns = time_ns;
            match parse_head(kind, data, time_ns, false, m) {
                Ok(Some((n, body))) => {
                    self.begin_body(n as u64, body, m);
                    return n;
                }
                Ok(None) if data.len() <= limits.max_head_bytes => {
                    self.buf.extend_from_slice(data);
                    return data.len();
                }
                Ok(None) => return self.lose(FramingError::HeadTooLarge, data.len(), m),
                Err(e) => return self.lose(FramingError::Head(e), data.len(), m),
            }
        }
        let before = self.buf.len();
        let take = data
            .len()
            .min(limits.max_head_bytes + 1 - before.min(limits.max_head_bytes));
        self.buf.extend_from_slice(&data[..take]);
        if self.sniffing {
            match sniff(kind, &self.buf) {
                Start::Yes => self.sniffing = false,
                Start::Maybe if self.buf.len() <= MAX_SNIFF => return take,
                Start::Maybe | Start::No => {
                    m.skipped(self.buf.len() as u64);
                    self.reset();
                    return take;
                }
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let parsed = parse_head(kind, &buf, self.head_time_ns, false, m);
        self.buf = buf;
        match parsed {
            Ok(Some((n, body))) => {
                self.buf.clear();
                self.begin_body(n as u64, body, m);
                n.saturating_sub(before)
            }
            Ok(None) if self.buf.len() <= limits.max_head_bytes => take,
            Ok(None) => self.lose(FramingError::HeadTooLarge, take, m),
            Err(e) => self.lose(FramingError::Head(e), take, m),
        }
    }

    /// A head of `n` bytes was handed over; set up its body.
    fn begin_body(&mut self, n: u64, body: Body, m: &mut impl MessageHandler) {
        self.bytes = n;
        self.state = match body {
            Body::None | Body::Length(0) => {
                m.end(self.bytes, true);
                State::Head
            }
            Body::Length(len) => State::Length(len),
            Body::Chunked => State::Chunked(ChunkState::Size),
            Body::UntilClose => State::UntilClose,
            Body::Tunnel => {
                m.end(self.bytes, true);
                self.buf = Vec::new();
                State::Tunnel
            }
        };
    }

    fn body_bytes(&mut self, left: u64, n: u64, m: &mut impl MessageHandler) {
        self.bytes += n;
        if n == left {
            m.end(self.bytes, true);
            self.state = State::Head;
        } else {
            self.state = State::Length(left - n);
        }
    }

    fn chunked(&mut self, c: ChunkState, data: &[u8], m: &mut impl MessageHandler) -> usize {
        if let ChunkState::Data(left) = c {
            let n = left.min(data.len() as u64);
            self.bytes += n;
            self.state = State::Chunked(if n == left {
                ChunkState::DataEnd
            } else {
                ChunkState::Data(left - n)
            });
            return n as usize;
        }
        let (used, line) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (data.len(), false),
        };
        self.bytes += used as u64;
        if self.buf.len() + used > MAX_LINE {
            return self.lose(FramingError::Chunk, used, m);
        }
        self.buf.extend_from_slice(&data[..used]);
        if !line {
            return used;
        }
        let mut text = std::mem::take(&mut self.buf);
        while matches!(text.last(), Some(b'\n' | b'\r')) {
            text.pop();
        }
        let next = match c {
            ChunkState::Size => {
                text.extend_from_slice(b"\r\n");
                match httparse::parse_chunk_size(&text) {
                    Ok(httparse::Status::Complete((_, 0))) => Some(ChunkState::Trailer),
                    Ok(httparse::Status::Complete((_, size))) => Some(ChunkState::Data(size)),
                    _ => None,
                }
            }
            ChunkState::DataEnd if text.is_empty() => Some(ChunkState::Size),
            ChunkState::Trailer if text.is_empty() => {
                m.end(self.bytes, true);
                self.state = State::Head;
                text.clear();
                self.buf = text;
                return used;
            }
            ChunkState::Trailer => Some(ChunkState::Trailer),
            ChunkState::DataEnd | ChunkState::Data(_) => None,
        };
        text.clear();
        self.buf = text;
        match next {
            Some(s) => {
                self.state = State::Chunked(s);
                used
            }
            None => self.lose(FramingError::Chunk, used, m),
        }
    }

    /// `n` bytes of unknown content follow.
    fn unknown(
        &mut self,
        kind: MessageKind,
        n: u64,
        limits: HeadLimits,
        m: &mut impl MessageHandler,
    ) {
        match self.state {
            State::Length(left) if n <= left => self.body_bytes(left, n, m),
            State::Length(left) => {
                self.body_bytes(left, left, m);
                self.state = State::Seek;
            }
            State::Chunked(ChunkState::Data(left)) if n <= left => {
                self.bytes += n;
                self.state = State::Chunked(if n == left {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left - n)
                });
            }
            State::Chunked(_) => {
                m.end(self.bytes + n, false);
                self.state = State::Seek;
                self.buf.clear();
            }
            State::UntilClose => self.bytes += n,
            State::Head if !self.buf.is_empty() => self.salvage(kind, limits, m),
            State::Head | State::Seek => {
                m.skipped(n);
                self.state = State::Seek;
            }
            State::Tunnel => {}
        }
    }

    /// A head cut short: parse the complete lines buffered so far, so the
    /// request line, status and early headers are not lost. The body framing
    /// is unknown afterwards.
    fn salvage(&mut self, kind: MessageKind, limits: HeadLimits, m: &mut impl MessageHandler) {
        let mut buf = std::mem::take(&mut self.buf);
        let cut = buf.iter().rposition(|&b| b == b'\n');
        self.state = State::Seek;
        let Some(cut) = cut else {
            m.error(FramingError::HeadTruncated);
            return;
        };
        buf.truncate(cut + 1);
        buf.extend_from_slice(b"\r\n");
        match parse_head(kind, &buf, self.head_time_ns, true, m) {
            Ok(Some((n, _))) => m.end(n.min(limits.max_head_bytes) as u64, false),
            _ => m.error(FramingError::HeadTruncated),
        }
        buf.clear();
        self.buf = buf;
    }

    /// Framing is lost after consuming `used` bytes.
    fn lose(&mut self, error: FramingError, used: usize, m: &mut impl MessageHandler) -> usize {
        m.error(error);
        self.reset();
        used
    }

    /// Back to looking for a message start.
    fn reset(&mut self) {
        self.state = State::Seek;
        self.buf.clear();
        self.sniffing = false;
    }
}

/// Parses a head; `Ok(Some((len, body)))` when complete, `Ok(None)` when more
/// bytes are needed.
fn parse_head(
    kind: MessageKind,
    buf: &[u8],
    time_ns: u64,
    truncated: bool,
    m: &mut impl MessageHandler,
) -> Result<Option<(usize, Body)>, httparse::Error> {
    if let Some(parsed) = parse_strict(kind, buf, time_ns, truncated, m) {
        return Ok(Some(parsed));
    }
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    match parse_head_into(kind, buf, time_ns, truncated, m, &mut slots) {
        Err(httparse::Error::TooManyHeaders) => {
            parse_head_into(kind, buf, time_ns, truncated, m, &mut header_slots(buf))
        }
        other => other,
    }
}

/// [`parse_head`] by the strict fast path (see [`strict_head`]); `None`
/// when it steps aside for httparse.
fn parse_strict(
    kind: MessageKind,
    buf: &[u8],
    time_ns: u64,
    truncated: bool,
    m: &mut impl MessageHandler,
) -> Option<(usize, Body)> {
    let mut fields = strict_head::Fields::new();
    match kind {
        MessageKind::Request => {
            let (n, (method, path, version)) = strict_head::request(buf, &mut fields)?;
            let head = httparse::Request {
                method: Some(method),
                path: Some(path),
                version: Some(version),
                headers: &mut fields,
            };
            Some((n, m.request(&head, time_ns, truncated)))
        }
        MessageKind::Response => {
            let (n, (version, code, reason)) = strict_head::response(buf, &mut fields)?;
            let head = httparse::Response {
                version: Some(version),
                code: Some(code),
                reason: Some(reason),
                headers: &mut fields,
            };
            Some((n, m.response(&head, time_ns, truncated)))
        }
    }
}

/// Header slots for every line of `buf` (the rare head with more headers
/// than the stack holds).
fn header_slots<'b>(buf: &[u8]) -> Vec<MaybeUninit<httparse::Header<'b>>> {
    let lines = buf.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut slots = Vec::with_capacity(lines);
    slots.resize_with(lines, MaybeUninit::uninit);
    slots
}

/// [`parse_head`] into `headers` slots (uninitialised: zeroing 96 of them
/// per head cost more than parsing the head, measured in the replay
/// benchmark).
fn parse_head_into<'b>(
    kind: MessageKind,
    buf: &'b [u8],
    time_ns: u64,
    truncated: bool,
    m: &mut impl MessageHandler,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(usize, Body)>, httparse::Error> {
    let config = parser_config();
    match kind {
        MessageKind::Request => {
            let mut req = httparse::Request::new(&mut []);
            let error = match config.parse_request_with_uninit_headers(&mut req, buf, headers) {
                Ok(httparse::Status::Complete(n)) => {
                    return Ok(Some((n, m.request(&req, time_ns, truncated))));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => e,
            };
            let Some((repaired, added)) = escape_target(buf) else {
                return Err(error);
            };
            let mut headers = header_slots(&repaired);
            let mut req = httparse::Request::new(&mut []);
            match config.parse_request_with_uninit_headers(&mut req, &repaired, &mut headers)? {
                httparse::Status::Complete(n) => {
                    Ok(Some((n - added, m.request(&req, time_ns, truncated))))
                }
                httparse::Status::Partial => Ok(None),
            }
        }
        MessageKind::Response => {
            let mut resp = httparse::Response::new(&mut []);
            match config.parse_response_with_uninit_headers(&mut resp, buf, headers)? {
                httparse::Status::Complete(n) => {
                    Ok(Some((n, m.response(&resp, time_ns, truncated))))
                }
                httparse::Status::Partial => Ok(None),
            }
        }
    }
}

/// httparse as the sensor runs it: lenient where servers are (several
/// spaces between the parts of the first line, obsolete line folding in
/// responses), and a field line it cannot read is skipped, not the whole
/// head.
pub(super) fn parser_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    config
}

/// A request line whose target holds bytes httparse refuses: spaces and
/// control bytes (`GET /a;cat /etc/passwd HTTP/1.1`, typical of injection
/// attempts; invalid per RFC 9112 section 3.2, though servers vary), or
/// bytes >= 0x80 that are not UTF-8 (`/?\xff`, which nginx serves). The
/// attempt must not go unseen: returns the head with those bytes as `%XX`,
/// and the bytes added; `None` when the first line is not `METHOD SP ...
/// SP HTTP/x` or needs no change.
fn escape_target(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let eol = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..eol].strip_suffix(b"\r").unwrap_or(&buf[..eol]);
    let first = line.iter().position(|&b| b == b' ')?;
    let last = line.iter().rposition(|&b| b == b' ')?;
    let target = line.get(first + 1..last)?;
    let odd = |b: u8| b <= b' ' || b >= 0x7f;
    if !line[last + 1..].starts_with(b"HTTP/") || !target.iter().any(|&b| odd(b)) {
        return None;
    }
    let mut out = Vec::with_capacity(buf.len() + 16);
    out.extend_from_slice(&line[..=first]);
    for &b in target {
        if odd(b) {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&buf[last..]);
    let added = out.len() - buf.len();
    Some((out, added))
}

/// Whether bytes can start a message: yes, no, or not yet known (too few
/// bytes arrived).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Yes,
    No,
    Maybe,
}

/// [`starts_message`], also saying when `data` is a prefix of a message
/// start that needs more bytes to decide.
fn sniff(kind: MessageKind, data: &[u8]) -> Start {
    const STATUS: &[u8] = b"HTTP/1.";
    match kind {
        MessageKind::Response if data.starts_with(STATUS) => Start::Yes,
        MessageKind::Response if STATUS.starts_with(data) => Start::Maybe,
        MessageKind::Response => Start::No,
        MessageKind::Request => {
            let method = data
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_')
                .count();
            if method == data.len() && method < 24 {
                return Start::Maybe;
            }
            if !(3..=24).contains(&method) || data.get(method) != Some(&b' ') {
                return Start::No;
            }
            let target = &data[method + 1..];
            let line = target.split(|&b| b == b'\n').next().unwrap_or_default();
            let forms: [&[u8]; 4] = [b"/", b"*", b"http://", b"https://"];
            if forms.iter().any(|p| target.starts_with(p))
                || line.windows(8).any(|w| w == b" HTTP/1.")
            {
                Start::Yes
            } else if forms.iter().any(|p| p.starts_with(target)) || line.len() == target.len() {
                // A scheme still arriving, or an authority-form line not
                // ended yet.
                Start::Maybe
            } else {
                Start::No
            }
        }
    }
}

/// Whether `data` plausibly starts a message of `kind`: a status line
/// `HTTP/1.x`, or a request line: an upper-case method token (RFC 9110
/// section 9; extension methods included), SP, and an origin-, asterisk- or
/// absolute-form target (RFC 9112 section 3.2) or a first line ending in
/// `HTTP/1.x` (authority form). Text protocols such as SMTP (`EHLO host`)
/// do not match.
pub fn starts_message(kind: MessageKind, data: &[u8]) -> bool {
    sniff(kind, data) == Start::Yes
}

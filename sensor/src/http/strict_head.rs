//! The strict fast path for an HTTP/1.1 head, tried before httparse.
//!
//! Nearly every head on a Kong node is printable ASCII with CRLF line ends,
//! one space between the parts of its first line, and `name: value` fields.
//! For such a head, [`request`] and [`response`] give what httparse gives
//! with this project's parser configuration (`message.rs`): the same
//! method, target, version, status, reason and fields, values trimmed the
//! same way (RFC 9112 sections 3, 4 and 5). It reads sixteen bytes at a
//! time: a value, target or reason is checked and its line end found in
//! one pass, and a name goes byte by byte only from a byte that is not a
//! letter, a digit or `-`.
//!
//! Anything else returns `None` and the caller parses the head with
//! httparse, which decides: a tab, a byte outside printable ASCII, a bare
//! LF or CR, obsolete line folding, an invalid or empty field name, extra
//! spaces in the first line, a status line without a reason, an incomplete
//! head, or more than [`MAX_FIELDS`] fields. So the fast path either agrees
//! with httparse or steps aside; `strict_head_tests.rs` checks that on
//! generated and mutated heads.

use arrayvec::ArrayVec;
use httparse::Header;

use crate::{field_name::is_tchar, lanes, swar};

/// Most fields a head may have to take the fast path.
pub const MAX_FIELDS: usize = 32;

/// The fields of a head, in order, without a heap allocation: a head with
/// more steps aside when the list is full.
pub type Fields<'b> = ArrayVec<Header<'b>, MAX_FIELDS>;

/// A request line: method, target, minor version (`1` for `HTTP/1.1`).
pub type RequestLine<'b> = (&'b str, &'b str, u8);

/// A status line: minor version, status code, reason phrase.
pub type StatusLine<'b> = (u8, u16, &'b str);

/// A strict request head at the start of `buf`: its length in bytes
/// (through the empty line), its request line, and its fields appended to
/// `fields`. `None` when the head is not strict or not complete.
pub fn request<'b>(buf: &'b [u8], fields: &mut Fields<'b>) -> Option<(usize, RequestLine<'b>)> {
    let eol = line_end(buf)?;
    let line = &buf[..eol];
    let space = line.iter().position(|&b| b == b' ')?;
    let (method, rest) = (&line[..space], &line[space + 1..]);
    let (target, version) = rest.split_at_checked(rest.len().checked_sub(VERSION_LEN + 1)?)?;
    let minor = match version {
        b" HTTP/1.1" => 1,
        b" HTTP/1.0" => 0,
        _ => return None,
    };
    // The line is printable ASCII, so a target without a space is all
    // visible characters, as httparse wants.
    if method.is_empty()
        || !method.iter().all(|&b| is_tchar(b))
        || target.is_empty()
        || swar::any_word(target, |w| swar::equal(w, b' '))
            .map_or_else(|| target.contains(&b' '), |spaces| spaces != 0)
    {
        return None;
    }
    let len = field_lines(buf, eol + 2, fields)?;
    Some((len, (ascii(method), ascii(target), minor)))
}

/// A strict response head at the start of `buf`, as [`request`]: its
/// length and its status line, its fields appended to `fields`.
pub fn response<'b>(buf: &'b [u8], fields: &mut Fields<'b>) -> Option<(usize, StatusLine<'b>)> {
    let eol = line_end(buf)?;
    let line = &buf[..eol];
    let minor = match line.get(..VERSION_LEN)? {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return None,
    };
    let [b' ', a, b, c, b' ', reason @ ..] = &line[VERSION_LEN..] else {
        return None;
    };
    if ![a, b, c].iter().all(|d| d.is_ascii_digit()) || reason.first() == Some(&b' ') {
        return None;
    }
    let code = [a, b, c]
        .iter()
        .fold(0, |n, &&d| n * 10 + u16::from(d - b'0'));
    let len = field_lines(buf, eol + 2, fields)?;
    Some((len, (minor, code, ascii(reason))))
}

/// `HTTP/1.x`.
const VERSION_LEN: usize = 8;

/// Reads the field lines of `buf` from `at` up to the empty line, into
/// `fields`; returns where the head ends. `None` when a line does not
/// start with a field name and a colon (httparse skips or folds such
/// lines), when its value is not printable ASCII up to a CRLF, when the
/// empty line is missing, or when there are too many fields.
fn field_lines<'b>(buf: &'b [u8], at: usize, fields: &mut Fields<'b>) -> Option<usize> {
    let mut rest = buf.get(at..)?;
    loop {
        if let Some(after) = rest.strip_prefix(b"\r\n") {
            return Some(buf.len() - after.len());
        }
        let name = name_len(rest);
        // A name is followed by its colon (the byte `name_len` stopped at).
        if name == 0 || rest.get(name) != Some(&b':') {
            return None;
        }
        let line = &rest[name + 1..];
        let eol = line_end(line)?;
        fields
            .try_push(Header {
                name: ascii(&rest[..name]),
                value: trim(&line[..eol]),
            })
            .ok()?;
        // `line_end` saw the CRLF, so the next line starts in bounds.
        rest = &line[eol + 2..];
    }
}

/// `value` without the spaces around it (`trim_ascii`: a printable value
/// has no other whitespace), with a shortcut for the usual one space
/// before it and none after.
#[inline(always)]
fn trim(value: &[u8]) -> &[u8] {
    match value {
        [b' ', first, .., last] if *first != b' ' && *last != b' ' => &value[1..],
        _ => value.trim_ascii(),
    }
}

/// Where the line that `line` starts ends: the index of its CR, when
/// every byte before it is printable ASCII and an LF follows it.
#[inline(always)]
fn line_end(line: &[u8]) -> Option<usize> {
    let cr = first_unprintable(line)?;
    (line.get(cr..cr + 2) == Some(b"\r\n")).then_some(cr)
}

/// The index of the first byte of `bytes` that is not printable ASCII
/// (below 0x20, DEL, or 0x80 and up), sixteen bytes at a time.
#[inline(always)]
pub(super) fn first_unprintable(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        // A block past the end is padded with NULs, which are unprintable.
        let odd = lanes::unprintable(lanes::block(&bytes[at..]));
        if odd != 0 {
            let i = at + odd.trailing_zeros() as usize;
            return (i < bytes.len()).then_some(i);
        }
        at += 16;
    }
}

/// The length of the run of tchars that starts `bytes` (a field name):
/// letters, digits and `-` sixteen at a time, then byte by byte from the
/// first other byte.
#[inline(always)]
pub(super) fn name_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        // NUL padding past the end is not a name byte, so this stops there.
        let other = lanes::not_name(lanes::block(&bytes[at..]));
        if other != 0 {
            at += other.trailing_zeros() as usize;
            break;
        }
        at += 16;
    }
    // Nearly always the colon; else the rare tchars past the block test.
    match bytes.get(at) {
        Some(b':') | None => at,
        Some(_) => {
            let tail = bytes[at..].iter().position(|&b| !is_tchar(b));
            at + tail.unwrap_or(bytes.len() - at)
        }
    }
}

/// Bytes checked to be ASCII (tokens, or printable by
/// [`first_unprintable`]), as text.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: every caller passes bytes it checked are ASCII, and ASCII is
    // UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

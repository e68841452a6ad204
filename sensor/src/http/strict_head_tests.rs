//! The strict fast path against httparse as the sensor configures it:
//! wherever the fast path answers, httparse gives the same answer.

use httparse::Status;
use proptest::prelude::*;

use super::{message::parser_config, strict_head};

/// A field, owned: name and value.
type Field = (String, Vec<u8>);
/// What a parser made of a head: its length, its first line and fields.
type Parsed<L> = (usize, L, Vec<Field>);

fn owned(headers: &[httparse::Header<'_>]) -> Vec<Field> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

fn fast_request(buf: &[u8]) -> Option<Parsed<(String, String, u8)>> {
    let mut fields = strict_head::Fields::new();
    let (n, (method, target, minor)) = strict_head::request(buf, &mut fields)?;
    Some((n, (method.into(), target.into(), minor), owned(&fields)))
}

fn httparse_request(buf: &[u8]) -> Option<Parsed<(String, String, u8)>> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(Status::Complete(n)) = parser_config().parse_request(&mut req, buf) else {
        return None;
    };
    let line = (req.method?.into(), req.path?.into(), req.version?);
    Some((n, line, owned(req.headers)))
}

fn fast_response(buf: &[u8]) -> Option<Parsed<(u8, u16, String)>> {
    let mut fields = strict_head::Fields::new();
    let (n, (minor, code, reason)) = strict_head::response(buf, &mut fields)?;
    Some((n, (minor, code, reason.into()), owned(&fields)))
}

fn httparse_response(buf: &[u8]) -> Option<Parsed<(u8, u16, String)>> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(Status::Complete(n)) = parser_config().parse_response(&mut resp, buf) else {
        return None;
    };
    let line = (resp.version?, resp.code?, resp.reason?.into());
    Some((n, line, owned(resp.headers)))
}

/// The fast path steps aside or agrees with httparse, on both kinds.
fn agrees(buf: &[u8]) -> Result<(), TestCaseError> {
    if let Some(fast) = fast_request(buf) {
        prop_assert_eq!(Some(fast), httparse_request(buf));
    }
    if let Some(fast) = fast_response(buf) {
        prop_assert_eq!(Some(fast), httparse_response(buf));
    }
    Ok(())
}

/// A regex class of `tchar`s (RFC 9110 section 5.6.2).
macro_rules! token {
    () => {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]"
    };
}

/// Field lines in strict form, spaces around values included; now and
/// then a name or a value longer than the fast path's 128-byte window.
fn fields() -> impl Strategy<Value = (String, usize)> {
    let field = (
        concat!(token!(), "{1,20}|[a-z-]{100,200}"),
        " {0,3}",
        "[ -~]{0,40}|[ -~]{120,300}",
        " {0,2}",
    );
    prop::collection::vec(field, 0..40).prop_map(|fields| {
        let lines: String = fields
            .iter()
            .map(|(name, lead, value, trail)| format!("{name}:{lead}{value}{trail}\r\n"))
            .collect();
        (lines, fields.len())
    })
}

/// A strict head: `first_line`, strict field lines, a body after it; and
/// its number of fields.
fn head_from(first_line: impl Strategy<Value = String>) -> impl Strategy<Value = (Vec<u8>, usize)> {
    let body = prop::collection::vec(any::<u8>(), 0..20);
    (first_line, fields(), body).prop_map(|(line, (lines, n), body)| {
        let head = format!("{line}\r\n{lines}\r\n");
        ([head.as_bytes(), &body].concat(), n)
    })
}

fn strict_request() -> impl Strategy<Value = (Vec<u8>, usize)> {
    let line = (concat!(token!(), "{1,10}"), "/[!-~]{0,40}", "HTTP/1\\.[01]");
    head_from(line.prop_map(|(method, target, version)| format!("{method} {target} {version}")))
}

fn strict_response() -> impl Strategy<Value = (Vec<u8>, usize)> {
    let line = ("HTTP/1\\.[01]", "[0-9]{3}", "([!-~][ -~]{0,20})?");
    head_from(line.prop_map(|(version, code, reason)| format!("{version} {code} {reason}")))
}

/// Bytes that make a head non-strict or end it early.
const NASTY: &[u8] = b"\t\r\n :\0\x7f\x80\xff\"@/";

/// Up to four edits: a byte replaced or inserted (a nasty one or any), a
/// byte removed, or the buffer cut.
fn mutated(strategy: impl Strategy<Value = (Vec<u8>, usize)>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        0..4u8,
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    );
    (strategy, prop::collection::vec(edit, 1..4)).prop_map(|((mut buf, _), edits)| {
        for (kind, at, byte, nasty) in edits {
            let byte = if nasty {
                NASTY[usize::from(byte) % NASTY.len()]
            } else {
                byte
            };
            let at = at.index(buf.len() + 1);
            match kind {
                0 if at < buf.len() => buf[at] = byte,
                1 => buf.insert(at, byte),
                2 if at < buf.len() => {
                    buf.remove(at);
                }
                _ => buf.truncate(at),
            }
        }
        buf
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A strict head takes the fast path (up to its field limit) and reads
    /// as httparse reads it.
    #[test]
    fn strict_requests_read_as_httparse_reads_them((buf, n) in strict_request()) {
        prop_assert_eq!(fast_request(&buf).is_some(), n <= strict_head::MAX_FIELDS);
        agrees(&buf)?;
    }

    #[test]
    fn strict_responses_read_as_httparse_reads_them((buf, n) in strict_response()) {
        prop_assert_eq!(fast_response(&buf).is_some(), n <= strict_head::MAX_FIELDS);
        agrees(&buf)?;
    }

    /// Whatever an edit does to a head, the fast path steps aside or
    /// agrees.
    #[test]
    fn edited_requests_never_read_otherwise(buf in mutated(strict_request())) {
        agrees(&buf)?;
    }

    #[test]
    fn edited_responses_never_read_otherwise(buf in mutated(strict_response())) {
        agrees(&buf)?;
    }

    #[test]
    fn unprintable_bytes_are_found_among_any(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let slow = bytes.iter().position(|b| !(b' '..=b'~').contains(b));
        prop_assert_eq!(strict_head::first_unprintable(&bytes), slow);
    }

    #[test]
    fn names_end_where_the_tchars_do(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let slow = bytes.iter().position(|&b| !crate::field_name::is_tchar(b)).unwrap_or(bytes.len());
        prop_assert_eq!(strict_head::name_len(&bytes), slow);
    }

    #[test]
    fn any_bytes_never_read_otherwise(buf in prop::collection::vec(any::<u8>(), 0..200)) {
        agrees(&buf)?;
    }
}

#[test]
fn heads_on_a_kong_node_take_the_fast_path() {
    let request =
        b"GET /items?page=1 HTTP/1.1\r\nHost: 10.77.0.1\r\nX-Forwarded-For: 10.77.0.2\r\n\
        X-Kong-Request-Id: 1aae42b17a855b3e25aae33885ace972\r\napikey: Zp4Hq8NcV1sYe6Gu\r\n\r\n";
    let (n, line, fields) = fast_request(request).unwrap();
    assert_eq!(n, request.len());
    assert_eq!(line, ("GET".into(), "/items?page=1".into(), 1));
    assert_eq!(fields[3], ("apikey".into(), b"Zp4Hq8NcV1sYe6Gu".to_vec()));
    let response =
        b"HTTP/1.1 200 OK\r\nContent-Length: 37\r\nConnection: keep-alive\r\n\r\n{\"items\"";
    let (n, line, fields) = fast_response(response).unwrap();
    assert_eq!(n, response.len() - 8);
    assert_eq!(line, (1, 200, "OK".into()));
    assert_eq!(fields.len(), 2);
}

#[test]
fn unusual_heads_are_left_to_httparse() {
    let requests: &[&[u8]] = &[
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost:\ta\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"\r\nGET / HTTP/1.1\r\n\r\n",
    ];
    for buf in requests {
        assert_eq!(fast_request(buf), None, "{}", buf.escape_ascii());
    }
    let responses: &[&[u8]] = &[
        b"HTTP/1.1 200\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        b"HTTP/1.1 200 D\xc3\xa9j\xc3\xa0\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
    ];
    for buf in responses {
        assert_eq!(fast_response(buf), None, "{}", buf.escape_ascii());
    }
    let many: String = (0..=strict_head::MAX_FIELDS)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    assert_eq!(
        fast_request(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
        None
    );
}

#[test]
fn unprintable_bytes_and_name_ends_are_found_at_every_position() {
    let unprintable = |bytes: &[u8]| bytes.iter().position(|b| !(b' '..=b'~').contains(b));
    let name_end = |bytes: &[u8]| {
        let end = bytes.iter().position(|&b| !crate::field_name::is_tchar(b));
        end.unwrap_or(bytes.len())
    };
    // Up to two blocks of sixteen and a short third.
    for len in 1..40 {
        for at in 0..len {
            for byte in 0..=255 {
                let mut bytes = vec![b'a'; len];
                bytes[at] = byte;
                assert_eq!(strict_head::first_unprintable(&bytes), unprintable(&bytes));
                assert_eq!(strict_head::name_len(&bytes), name_end(&bytes));
            }
        }
    }
}

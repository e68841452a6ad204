//! Attacker-chosen text made safe to show: the one rule every value taken
//! from traffic (method, host, path, route, user agent, request id,
//! principal, consumer) passes through once, when the transaction or
//! principal is built, so every sink and format gets the same string.
//!
//! The rule, after nginx's access-log escaping (`ngx_escape_html`'s
//! sibling `ngx_http_log_escape`: `\xHH`):
//! - printable characters of valid UTF-8 pass unchanged;
//! - `\` and every byte of a control character (C0, DEL, C1), a Unicode
//!   line or paragraph separator (U+2028, U+2029), a bidirectional or
//!   invisible formatting character (U+200B-U+200F, U+202A-U+202E,
//!   U+2060-U+2064, U+2066-U+2069, U+FEFF), or an invalid UTF-8 sequence
//!   become `\xHH` (uppercase hex), so no CR, LF, NUL or ESC reaches a log,
//!   a terminal or a line-splitting receiver, the text reads the same in
//!   every viewer, and the bytes can be recovered exactly;
//! - the result is cut to the field's cap ([`Field::cap`], bytes), never
//!   inside a character or an escape, ending in [`CUT`] when cut.
//!
//! Each output format then applies its own quoting on top (JSON string
//! escaping, RFC 5424 section 6.3.3 for structured data, CEF's escaping,
//! [`quote_kv`] for key=value text).

use std::borrow::Cow;

use compact_str::CompactString;

use crate::swar;

/// What a value is; sets its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The request method: 32 bytes (the longest registered method,
    /// `VERSION-CONTROL`, has 15).
    Method,
    /// The `Host` or absolute-form authority: 256 bytes (a DNS name has at
    /// most 253, RFC 1035 section 2.3.4, plus a port).
    Host,
    /// The redacted request target or its normalized route: 8192 bytes
    /// (nginx's default `large_client_header_buffers 4 8k` answers a longer
    /// request line with 414, so nothing Kong served is cut unless escapes
    /// lengthened it).
    Path,
    /// `User-Agent`: 512 bytes.
    UserAgent,
    /// A principal or Kong consumer name: 256 bytes.
    Principal,
    /// A request id (`X-Kong-Request-Id` is 32 or 36 characters): 128 bytes.
    RequestId,
}

impl Field {
    /// The most bytes a rendered value of this field holds, [`CUT`]
    /// included.
    pub const fn cap(self) -> usize {
        match self {
            Self::Method => 32,
            Self::Host | Self::Principal => 256,
            Self::Path => 8192,
            Self::UserAgent => 512,
            Self::RequestId => 128,
        }
    }
}

/// 32 lowercase hex digits, made only by [`hex16`], so always text.
#[derive(Clone, Copy)]
pub struct HexDigits([u8; 32]);

impl HexDigits {
    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // SAFETY: only `hex16` builds one, and it writes ASCII hex digits,
        // which are UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

/// Sixteen bytes as 32 lowercase hex digits, most significant first,
/// without allocating: a fingerprint, or Kong's request id.
pub fn hex16(bytes: [u8; 16]) -> HexDigits {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    HexDigits(out)
}

/// What a cut value ends with.
pub const CUT: &str = "...";

/// `bytes` rendered by the module's rule and cut to `field`'s cap.
pub fn render(bytes: &[u8], field: Field) -> String {
    match plain(bytes, field) {
        Some(s) => s.to_owned(),
        None => escaped(bytes, field),
    }
}

/// [`render`] into a string that holds up to 24 bytes without a heap
/// allocation (a method, most hosts, routes and user agents).
pub fn render_compact(bytes: &[u8], field: Field) -> CompactString {
    match plain(bytes, field) {
        Some(s) => CompactString::from(s),
        None => escaped(bytes, field).into(),
    }
}

/// `bytes` as they are, when the rule leaves them so (printable ASCII but
/// `\\`, within the cap).
fn plain(bytes: &[u8], field: Field) -> Option<&str> {
    if bytes.len() > field.cap() {
        return None;
    }
    // A value that fails is rare and escaped at greater cost anyway: no
    // early exit.
    let odd = swar::any_word(bytes, |w| swar::unprintable(w) | swar::equal(w, b'\\'));
    let plain = match odd {
        Some(odd) => odd == 0,
        None => bytes
            .iter()
            .all(|&b| (b' '..=b'~').contains(&b) && b != b'\\'),
    };
    if plain {
        // SAFETY: printable ASCII only, which is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        None
    }
}

/// `bytes` escaped and cut by the rule.
fn escaped(bytes: &[u8], field: Field) -> String {
    let cap = field.cap();
    let mut out = String::with_capacity(bytes.len().min(cap));
    // Where `out` can be cut so that CUT still fits, and whether it was.
    let mut fits = 0;
    let mut cut = false;
    let mut push = |out: &mut String, piece: &str| {
        if cut {
            return;
        }
        if out.len() + piece.len() + CUT.len() <= cap {
            fits = out.len() + piece.len();
        }
        if out.len() + piece.len() > cap {
            out.truncate(fits);
            out.push_str(CUT);
            cut = true;
            return;
        }
        out.push_str(piece);
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown(c) {
                push(&mut out, c.encode_utf8(&mut [0; 4]));
            } else {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    push(&mut out, &escape(b));
                }
            }
        }
        for &b in chunk.invalid() {
            push(&mut out, &escape(b));
        }
    }
    out
}

/// A rendered value cut to at most `cap` bytes (at least [`CUT`]'s),
/// ending in [`CUT`]; never inside a character or a `\xHH` escape.
/// Unchanged when it fits.
pub fn cut(rendered: &str, cap: usize) -> String {
    if rendered.len() <= cap {
        return rendered.to_owned();
    }
    let mut end = cap.saturating_sub(CUT.len());
    while !rendered.is_char_boundary(end)
        || rendered.as_bytes()[end.saturating_sub(3)..end].contains(&b'\\')
    {
        end -= 1;
    }
    format!("{}{CUT}", &rendered[..end])
}

/// Whether `c` is shown as itself.
fn shown(c: char) -> bool {
    !(c == '\\'
        || c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'))
}

fn escape(b: u8) -> String {
    format!("\\x{b:02X}")
}

/// A rendered value as a key=value token: bare when it is non-empty and
/// has no space, `"`, `=` or `\`; else in double quotes with `"` and `\`
/// backslash-escaped (the logfmt convention; rendered values hold no
/// control characters, so nothing else needs escaping).
pub fn quote_kv(value: &str) -> Cow<'_, str> {
    if !value.is_empty() && !value.contains([' ', '"', '=', '\\']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// Reads a string field and hands it to `parse`, without the copy that
/// deserializing a `String` or a `Cow<str>` makes (serde's `Cow` is always
/// owned): for a decoded fleet event's request id and fingerprints, in
/// the analyser's per-message path. A `parse` error becomes the
/// deserializer's error.
///
/// # Errors
/// The field is not a string, or `parse` rejects it.
pub fn parse_str<'de, D, T, E>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: std::fmt::Display,
{
    struct Text<F>(F);
    impl<'de, T, E: std::fmt::Display, F: FnOnce(&str) -> Result<T, E>> serde::de::Visitor<'de>
        for Text<F>
    {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<X: serde::de::Error>(self, v: &str) -> Result<T, X> {
            (self.0)(v).map_err(X::custom)
        }
    }
    d.deserialize_str(Text(parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_passes_unchanged() {
        assert_eq!(render(b"/api/v1?q=a b", Field::Path), "/api/v1?q=a b");
        assert_eq!(
            render("naïve-日本".as_bytes(), Field::Principal),
            "naïve-日本"
        );
        assert_eq!(render(b"", Field::Host), "");
    }

    /// A byte the rule escapes is found at every position of values
    /// from 1 to 40 bytes long (whole words, the overlapping last word,
    /// and values shorter than a word).
    #[test]
    fn an_escaped_byte_is_found_anywhere() {
        for len in 1..=40 {
            for at in 0..len {
                for bad in [0x00, 0x1f, b'\\', 0x7f, 0x80, 0xff] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = bad;
                    assert!(plain(&bytes, Field::Path).is_none(), "{len} {at} {bad}");
                }
            }
            assert!(plain(&vec![b'~'; len], Field::Path).is_some());
        }
    }

    #[test]
    fn controls_backslashes_and_bad_utf8_become_hex_escapes() {
        assert_eq!(
            render(b"bob\r\nsshd[99]: Accepted\0\x1b[31m\\", Field::Principal),
            "bob\\x0D\\x0Asshd[99]: Accepted\\x00\\x1B[31m\\x5C"
        );
        assert_eq!(render(b"a\xffb\xc3", Field::Path), "a\\xFFb\\xC3");
        // C1 control, line separator, right-to-left override, BOM.
        assert_eq!(
            render(
                "x\u{85}\u{2028}\u{202E}\u{FEFF}".as_bytes(),
                Field::UserAgent
            ),
            "x\\xC2\\x85\\xE2\\x80\\xA8\\xE2\\x80\\xAE\\xEF\\xBB\\xBF"
        );
    }

    #[test]
    fn long_values_are_cut_at_the_cap_on_a_boundary() {
        let long = "a".repeat(9000);
        let r = render(long.as_bytes(), Field::Path);
        assert_eq!(r.len(), 8192);
        assert!(r.ends_with("aaa..."));
        // Never inside an escape or a character.
        let escapes = "\n".repeat(100);
        let r = render(escapes.as_bytes(), Field::Method);
        assert_eq!(r, format!("{}...", "\\x0A".repeat(7)));
        let wide = "日".repeat(100);
        let r = render(wide.as_bytes(), Field::Method);
        assert_eq!(r, format!("{}...", "日".repeat(9)));
        // Exactly at the cap: not cut.
        let exact = "b".repeat(32);
        assert_eq!(render(exact.as_bytes(), Field::Method), exact);
    }

    #[test]
    fn every_output_is_bounded_and_control_free() {
        for len in [0usize, 1, 31, 32, 33, 300, 3000, 9000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            for field in [Field::Method, Field::Path, Field::UserAgent] {
                let r = render(&bytes, field);
                assert!(r.len() <= field.cap(), "{field:?} {len}");
                assert!(!r.chars().any(char::is_control), "{r:?}");
            }
        }
    }

    #[test]
    fn cutting_rendered_values() {
        let r = render(b"ab\ncdef", Field::Path);
        assert_eq!(r, "ab\\x0Acdef");
        assert_eq!(cut(&r, 10), r);
        assert_eq!(cut(&r, 7), "ab...");
        assert_eq!(cut(&r, 9), "ab\\x0A...");
        assert_eq!(cut("日本語", 7), "日...");
    }

    #[test]
    fn kv_quoting() {
        assert_eq!(quote_kv("plain"), "plain");
        assert_eq!(quote_kv(""), "\"\"");
        assert_eq!(quote_kv("a b=\"c\"\\"), "\"a b=\\\"c\\\"\\\\\"");
    }

    /// `parse_str` reads a string whether the input lends it (no escape)
    /// or only a decoded copy (escapes), and fails as a string field
    /// should.
    #[test]
    fn parse_str_reads_plain_and_escaped_strings_and_rejects_the_rest() {
        fn len(json: &str) -> Result<usize, serde_json::Error> {
            let mut d = serde_json::Deserializer::from_str(json);
            super::parse_str(&mut d, |s| {
                (s != "bad").then_some(s.len()).ok_or("rejected")
            })
        }
        assert_eq!(len(r#""abc""#).unwrap(), 3);
        assert_eq!(len(r#""a\u0062c\n""#).unwrap(), 4);
        assert!(len("12").unwrap_err().to_string().contains("a string"));
        assert!(
            len(r#""bad""#)
                .unwrap_err()
                .to_string()
                .contains("rejected")
        );
    }
}

//! The route of a request: the path nginx (and Kong, which runs on it)
//! routes a request-target to, so decoys match what the server served, not
//! the bytes the attacker chose. `/%61dmin/login`, `//admin/login`,
//! `/x/../admin/login` and `/admin/login?next=http://x/` are all
//! `/admin/login`.
//!
//! The rule, as nginx computes `$uri` (`ngx_http_parse_complex_uri`, with
//! `merge_slashes on`, its default):
//! 1. origin-form: the target up to `?` or `#`; absolute-form
//!    (`http://host/p?q`): its path (`/` when empty); asterisk-form and
//!    authority-form (CONNECT) stay as they are;
//! 2. every `%XX` decoded once (a `%` without two hex digits stays);
//! 3. dot-segments removed (RFC 3986 section 5.2.4; `..` never climbs
//!    above the root, where nginx would answer 400);
//! 4. runs of `/` merged into one.
//!
//! Bytes outside printable ASCII, and `%` itself, are escaped again as
//! `%XX`, so a route is ASCII and reads back unambiguously.

use std::borrow::Cow;

/// The route of `target`; see the module docs. Borrowed when the path is
/// already its own route (the common case: nothing to decode, merge or
/// remove, nothing to escape).
pub fn route(target: &[u8]) -> Cow<'_, str> {
    let path = path_of(target);
    if path.first() != Some(&b'/') {
        return Cow::Owned(escape(path));
    }
    // One pass without early exit (it vectorises): most paths are clean.
    let dirty = path
        .iter()
        .fold(false, |d, &b| d | !(0x21..=0x7e).contains(&b) | (b == b'%'))
        || path.windows(2).fold(false, |d, w| {
            d | ((w[0] == b'/') & ((w[1] == b'/') | (w[1] == b'.')))
        });
    if dirty {
        return Cow::Owned(normalise(path));
    }
    debug_assert!(path.is_ascii());
    // SAFETY: a clean path is printable ASCII (the fold above), and ASCII
    // is UTF-8.
    Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(path) })
}

/// Steps 2 to 4 and the escape, for a path starting with `/`.
fn normalise(path: &[u8]) -> String {
    let decoded = decode(path);
    let mut segments: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = decoded.split(|&b| b == b'/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            b"" => trailing_slash = i == last,
            b"." => trailing_slash = i == last,
            b".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if segments.is_empty() || trailing_slash {
        out.push(b'/');
    }
    escape(&out)
}

/// The path part of a request-target (step 1).
fn path_of(target: &[u8]) -> &[u8] {
    let mut path = target;
    if let Some(rest) = scheme_rest(target) {
        let start = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#'));
        path = match start {
            Some(i) if rest[i] == b'/' => &rest[i..],
            _ => b"/",
        };
    }
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    &path[..end]
}

/// What follows `scheme://` in an absolute-form target.
fn scheme_rest(target: &[u8]) -> Option<&[u8]> {
    // A scheme starts with a letter: an origin-form target (`/...`, nearly
    // every request) is not searched for `://`.
    if !target.first()?.is_ascii_alphabetic() {
        return None;
    }
    let colon = target.windows(3).position(|w| w == b"://")?;
    let valid = target[..colon]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then(|| &target[colon + 3..])
}

/// Every `%XX` decoded once.
fn decode(path: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        let pair = (
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        );
        match (b, pair) {
            (b'%', (Some(hi), Some(lo))) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Printable ASCII but `%` as itself; every other byte as `%XX`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evasions_of_a_decoy_route_all_reach_it() {
        for target in [
            "/admin/login",
            "/%61dmin/login",
            "/%61%64%6D%69%6E/login",
            "//admin/login",
            "/admin//login",
            "/x/../admin/login",
            "/./admin/./login",
            "/admin/login?next=http://x/",
            "/admin/login#frag",
            "/x/%2e%2e/admin/login",
            "/admin%2Flogin",
            "/../../admin/login",
            "http://evil.example/admin/login?a=b",
            "HTTP://h:8000//admin/./login",
        ] {
            assert_eq!(route(target.as_bytes()), "/admin/login", "{target}");
        }
    }

    #[test]
    fn roots_trailing_slashes_and_odd_forms() {
        assert_eq!(route(b"/"), "/");
        assert_eq!(route(b""), "");
        assert_eq!(route(b"/a/"), "/a/");
        assert_eq!(route(b"/a/."), "/a/");
        assert_eq!(route(b"/a/b/.."), "/a/");
        assert_eq!(route(b"/.."), "/");
        assert_eq!(route(b"http://h"), "/");
        assert_eq!(route(b"http://h?x=1"), "/");
        assert_eq!(route(b"*"), "*");
        assert_eq!(route(b"example.com:443"), "example.com:443");
    }

    proptest::proptest! {
        /// The borrowed shortcut is the full rule where it applies.
        #[test]
        fn the_shortcut_agrees_with_the_rule(path in "/[a/.%2e~ ]{0,12}") {
            proptest::prop_assert_eq!(route(path.as_bytes()), normalise(path.as_bytes()));
        }
    }

    #[test]
    fn non_ascii_and_percent_come_out_escaped() {
        assert_eq!(route(b"/caf\xc3\xa9"), "/caf%C3%A9");
        assert_eq!(route(b"/a%25b"), "/a%25b");
        assert_eq!(route(b"/a%zz"), "/a%25zz");
        assert_eq!(route(b"/a%00b c"), "/a%00b%20c");
    }
}

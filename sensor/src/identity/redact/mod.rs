//! Removing secrets from a request-target before it is kept anywhere.
//!
//! What is replaced by [`REDACTED`], everything else staying byte-identical:
//!
//! | where | what | example |
//! |---|---|---|
//! | anywhere a URL appears (the absolute-form target, a URL in the path, query or fragment, plain or percent-encoded) | its userinfo | `?next=http://joe:pw@in/` -> `?next=http://REDACTED@in/` |
//! | query and fragment parameters (`&`-separated) | the value when the name is a key name or looks secret ([`is_secret_name`]) | `?pw=x` -> `?pw=REDACTED`, `?ACCESSTOKEN=x` -> `?ACCESSTOKEN=REDACTED` |
//! | query and fragment parameters | a value that is a JWT or JWE (compact form, RFC 7515/7516) whatever its name | `?state=eyJ...` |
//! | path segments | a segment that is a JWT or JWE | `/reset/eyJ...` -> `/reset/REDACTED` |
//! | matrix parameters (`;name=value` in a path segment) | the value when the name looks secret | `/a;jsessionid=1` -> `/a;jsessionid=REDACTED` |
//!
//! Names are compared percent-decoded (`+` as space). The fragment is where
//! OAuth's implicit flow puts `access_token` (clients should never send
//! one, but some do). Query parameters are separated by `&` only, as in
//! nginx's `$arg_*`, Kong's `kong.request.get_query()` and WHATWG
//! `URLSearchParams`; `;` in a query is part of a value. Parameters without
//! `=` or with an empty value are left alone. Nothing is allocated unless
//! something is redacted.

mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use smallvec::SmallVec;

/// The text that replaces a secret value.
pub const REDACTED: &str = "REDACTED";

/// Parameter names whose values are treated as secrets, compared
/// ASCII-case-insensitively with the whole percent-decoded name and with its
/// last word: the part after the last `-`, `_`, `.` or space, or from the
/// last lower-to-upper camelCase step (`X-Amz-Signature`, `oauth_token`,
/// `accessToken`, `client.secret` all match). A name that runs words
/// together without a case change or separator (`accesstoken`,
/// `CLIENTSECRET`) matches when it ends with one of [`SECRET_SUFFIXES`].
/// This errs towards redacting: `sort_key` or `zip_code` lose their values
/// too; a secret in a log costs more than a lost sort key.
pub const SECRET_PARAM_NAMES: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "passwd",
    "pass",
    "pwd",
    "pw",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "hmac",
    "auth",
    "authorization",
    "session",
    "sessionid",
    "sid",
    "phpsessid",
    "jsessionid",
    "jwt",
    "code",
    "otp",
    "totp",
    "ticket",
    "assertion",
    "samlresponse",
    "credential",
    "credentials",
];

/// The listed names a name may end with, ASCII-case-insensitively, with
/// anything before them (`accesstoken`, `oauthtoken`, `CLIENTSECRET`,
/// `userpassword`): words long enough that no common non-secret name ends
/// with one.
pub const SECRET_SUFFIXES: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "credentials",
    "apikey",
    "sessionid",
    "authorization",
];

/// Whether a (decoded) parameter name looks secret; see
/// [`SECRET_PARAM_NAMES`].
pub fn is_secret_name(name: &[u8]) -> bool {
    // A listed name or suffix ends the name (it is the whole name, its
    // last word or its end): most names are answered by one table read.
    let [.., a, b] = name else {
        return false;
    };
    if SECRET_ENDINGS[usize::from(a & 31)] & 1 << (b & 31) == 0 {
        return false;
    }
    is_secret_word(name)
        || {
            let word = last_word(name);
            word.len() < name.len() && is_secret_word(word)
        }
        || SECRET_SUFFIXES.iter().any(|suffix| {
            name.len() > suffix.len()
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        })
}

/// The last two bytes of every one of [`SECRET_PARAM_NAMES`] and
/// [`SECRET_SUFFIXES`], each folded to its low five bits: row by the
/// first, bit by the second. A letter's two cases fold together, as the
/// tests compare them; another byte may fold onto a letter and only goes
/// on to the full test.
const SECRET_ENDINGS: [u32; 32] = {
    let mut rows = [0; 32];
    let mut i = 0;
    while i < SECRET_PARAM_NAMES.len() + SECRET_SUFFIXES.len() {
        let name = if i < SECRET_PARAM_NAMES.len() {
            SECRET_PARAM_NAMES[i].as_bytes()
        } else {
            SECRET_SUFFIXES[i - SECRET_PARAM_NAMES.len()].as_bytes()
        };
        assert!(name.len() >= 2);
        rows[(name[name.len() - 2] & 31) as usize] |= 1 << (name[name.len() - 1] & 31);
        i += 1;
    }
    rows
};

/// The longest of [`SECRET_PARAM_NAMES`].
const LONGEST_SECRET_NAME: usize = {
    let (mut i, mut longest) = (0, 0);
    while i < SECRET_PARAM_NAMES.len() {
        if SECRET_PARAM_NAMES[i].len() > longest {
            longest = SECRET_PARAM_NAMES[i].len();
        }
        i += 1;
    }
    longest
};

/// The most [`SECRET_PARAM_NAMES`] of one length.
const MOST_OF_A_LENGTH: usize = {
    let mut counts = [0; LONGEST_SECRET_NAME + 1];
    let (mut i, mut most) = (0, 0);
    while i < SECRET_PARAM_NAMES.len() {
        let len = SECRET_PARAM_NAMES[i].len();
        counts[len] += 1;
        if counts[len] > most {
            most = counts[len];
        }
        i += 1;
    }
    most
};

/// [`SECRET_PARAM_NAMES`] [`pack`]ed, by length, the rest of each row
/// `u128::MAX` (no packed word is: its last bytes are zero padding). A
/// word is compared with the few names of its length, an integer compare
/// each, instead of a `memcmp` with every name.
const SECRET_NAMES_BY_LENGTH: [[u128; MOST_OF_A_LENGTH]; LONGEST_SECRET_NAME + 1] = {
    assert!(LONGEST_SECRET_NAME < 16);
    let mut rows = [[u128::MAX; MOST_OF_A_LENGTH]; LONGEST_SECRET_NAME + 1];
    let mut filled = [0; LONGEST_SECRET_NAME + 1];
    let mut i = 0;
    while i < SECRET_PARAM_NAMES.len() {
        let name = SECRET_PARAM_NAMES[i].as_bytes();
        let mut bytes = [0u8; 16];
        let mut j = 0;
        while j < name.len() {
            bytes[j] = name[j];
            j += 1;
        }
        rows[name.len()][filled[name.len()]] = u128::from_le_bytes(bytes);
        filled[name.len()] += 1;
        i += 1;
    }
    rows
};

/// Up to 16 bytes, ASCII-lowercased, as a little-endian integer, zero
/// padded.
fn pack(word: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    for (l, b) in bytes.iter_mut().zip(word) {
        *l = b.to_ascii_lowercase();
    }
    u128::from_le_bytes(bytes)
}

/// Whether `word` is one of [`SECRET_PARAM_NAMES`], ASCII-case-insensitively:
/// [`pack`]ed once and compared with the names of its length (runs on
/// every query parameter of every request).
fn is_secret_word(word: &[u8]) -> bool {
    SECRET_NAMES_BY_LENGTH
        .get(word.len())
        .is_some_and(|names| names.contains(&pack(word)))
}

fn last_word(name: &[u8]) -> &[u8] {
    let mut start = 0;
    for i in 1..name.len() {
        let (prev, cur) = (name[i - 1], name[i]);
        if matches!(prev, b'-' | b'_' | b'.' | b' ')
            || (cur.is_ascii_uppercase() && (prev.is_ascii_lowercase() || prev.is_ascii_digit()))
        {
            start = i;
        }
    }
    &name[start..]
}

/// The redacted target and the raw (still percent-encoded) values of the
/// non-empty query parameters named in `key_names`, in order.
pub(super) struct Redacted<'t> {
    pub target: Cow<'t, str>,
    pub api_keys: SmallVec<[&'t str; 1]>,
}

/// Redacts `target`; see the module docs.
pub(super) fn redact_target<'t>(target: &'t str, key_names: &[String]) -> Redacted<'t> {
    // Each scanner needs a byte to find anything: a userinfo follows `://`
    // (or `%3a%2f%2f`); a path's JWT or JWE has dots (or `%2e`), a matrix
    // parameter a `;`; parameters follow `?` or `#`. Most API paths have
    // none, and most queries are all the scanning a target needs. One pass
    // finds where the path and the fragment start and which of those bytes
    // each part holds.
    let bytes = target.as_bytes();
    let (mut path_end, mut fragment) = (None, None);
    let (mut seen, mut in_path) = (0, 0);
    for (i, &b) in bytes.iter().enumerate() {
        let class = CLASS[usize::from(b)];
        if class & (QUERY | FRAGMENT) != 0 {
            if path_end.is_none() {
                path_end = Some(i);
                in_path = seen;
            }
            if class & FRAGMENT != 0 && fragment.is_none() {
                fragment = Some(i);
            }
        }
        seen |= class;
    }
    let parts = Parts {
        path_end: path_end.unwrap_or(bytes.len()),
        fragment,
        userinfo: seen & USERINFO != 0,
        path: (if path_end.is_some() { in_path } else { seen }) & PATH != 0,
    };
    if !parts.userinfo && !parts.path && path_end.is_none() {
        return Redacted {
            target: Cow::Borrowed(target),
            api_keys: SmallVec::new(),
        };
    }
    scan(target, key_names, parts)
}

/// Byte classes for [`redact_target`]'s pass: what can start a userinfo's
/// scheme end (`:`, `%`), a path's JWT or matrix parameter (`.`, `;`,
/// `%`), the query (`?`) and the fragment (`#`).
const USERINFO: u8 = 1;
const PATH: u8 = 2;
const QUERY: u8 = 4;
const FRAGMENT: u8 = 8;
static CLASS: [u8; 256] = {
    let mut class = [0; 256];
    class[b':' as usize] = USERINFO;
    class[b'%' as usize] = USERINFO | PATH;
    class[b'.' as usize] = PATH;
    class[b';' as usize] = PATH;
    class[b'?' as usize] = QUERY;
    class[b'#' as usize] = FRAGMENT;
    class
};

/// Where `target`'s path ends: at its first `?` or `#`, else its length.
#[cfg(test)]
fn path_end(target: &str) -> usize {
    target
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(target.len())
}

/// Where the path ends, where the fragment starts, and which of the
/// scanners that read more than the parameters to run.
struct Parts {
    /// Where the path ends: at its first `?` or `#`, else the target's
    /// length.
    path_end: usize,
    /// The first `#` (not before `path_end`).
    fragment: Option<usize>,
    /// URLs' userinfos, anywhere in the target.
    userinfo: bool,
    /// The path's JWT segments and matrix parameters.
    path: bool,
}

/// [`redact_target`] by scanning every part of `target` (for tests to
/// compare).
#[cfg(test)]
fn scan_target<'t>(target: &'t str, key_names: &[String]) -> Redacted<'t> {
    let path_end = path_end(target);
    let all = Parts {
        path_end,
        fragment: target.as_bytes()[path_end..]
            .iter()
            .position(|&b| b == b'#')
            .map(|at| path_end + at),
        userinfo: true,
        path: true,
    };
    scan(target, key_names, all)
}

/// Scans the parameters of `target` and the `parts` asked for.
fn scan<'t>(target: &'t str, key_names: &[String], parts: Parts) -> Redacted<'t> {
    let mut ranges = Ranges::new();
    if parts.userinfo {
        scan::userinfos(target, &mut ranges);
    }
    let (path_end, fragment) = (parts.path_end, parts.fragment);
    if parts.path {
        scan::path(target, path_end, &mut ranges);
    }
    let mut api_keys = SmallVec::new();
    if target[path_end..].starts_with('?') {
        let end = fragment.unwrap_or(target.len());
        let query = scan::Params {
            start: path_end + 1,
            end,
            key_names,
        };
        query.scan(target, &mut ranges, Some(&mut api_keys));
    }
    if let Some(f) = fragment {
        let params = scan::Params {
            start: f + 1,
            end: target.len(),
            key_names,
        };
        params.scan(target, &mut ranges, None);
    }
    Redacted {
        target: ranges.apply(target),
        api_keys,
    }
}

/// Byte ranges of a target to replace, in any order, possibly overlapping.
pub(super) struct Ranges(SmallVec<[(usize, usize); 4]>);

impl Ranges {
    fn new() -> Self {
        Self(SmallVec::new())
    }

    /// Marks `target[start..end]` secret (nothing when empty).
    pub(super) fn add(&mut self, start: usize, end: usize) {
        if start < end {
            self.0.push((start, end));
        }
    }

    /// `target` with every marked range (overlaps merged) replaced by
    /// [`REDACTED`]; borrowed when nothing is marked.
    fn apply(mut self, target: &str) -> Cow<'_, str> {
        if self.0.is_empty() {
            return Cow::Borrowed(target);
        }
        self.0.sort_unstable();
        let mut out = String::with_capacity(target.len() + REDACTED.len());
        let mut copied = 0;
        for &(start, end) in &self.0 {
            if start >= copied {
                out.push_str(&target[copied..start]);
                out.push_str(REDACTED);
            }
            copied = copied.max(end);
        }
        out.push_str(&target[copied..]);
        Cow::Owned(out)
    }
}

/// Calls `f` with `component` percent-decoded (`+` as space), decoding
/// into a stack buffer when the name is short (it always is in practice).
fn with_decoded<R>(component: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    let raw = component.as_bytes();
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return f(raw);
    }
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if raw.len() <= stack.len() {
        &mut stack[..raw.len()]
    } else {
        heap.resize(raw.len(), 0);
        &mut heap
    };
    let n = decode_into(raw, buf);
    f(&buf[..n])
}

/// `component` percent-decoded, `+` as space (as Kong/ngx_lua decode query
/// arguments); borrowed when there is nothing to decode.
pub(super) fn decode_component(component: &str) -> Cow<'_, [u8]> {
    let raw = component.as_bytes();
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let mut buf = vec![0; raw.len()];
    let n = decode_into(raw, &mut buf);
    buf.truncate(n);
    Cow::Owned(buf)
}

/// Decodes `raw` into `out` (at least `raw.len()` long); returns the length.
/// A `%` not followed by two hex digits is kept as is.
fn decode_into(raw: &[u8], out: &mut [u8]) -> usize {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let (mut i, mut n) = (0, 0);
    while i < raw.len() {
        let byte = match raw[i] {
            b'+' => b' ',
            b'%' => match (
                raw.get(i + 1).and_then(|&b| hex(b)),
                raw.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    i += 2;
                    (hi << 4) | lo
                }
                _ => b'%',
            },
            b => b,
        };
        out[n] = byte;
        n += 1;
        i += 1;
    }
    n
}

//! Removing secrets from a request-target before it is kept anywhere.
//!
//! What is replaced by [`REDACTED`], everything else staying byte-identical:
//! - the value of every `name=value` parameter in the query (after the first
//!   `?`, up to `#`) and in a fragment (after `#`, where OAuth's implicit
//!   flow puts `access_token`; clients should never send one, but some do)
//!   whose name, percent-decoded (`+` as space), is one of the configured
//!   key names (exact) or looks secret ([`is_secret_name`]);
//! - the userinfo of an absolute-form target (`http://user:pw@host/`
//!   becomes `http://REDACTED@host/`): tokens are often sent as the user.
//!
//! Parameters are separated by `&` only, as in nginx's `$arg_*`, Kong's
//! `kong.request.get_query()` and WHATWG `URLSearchParams`; `;` is part of a
//! value. Parameters without `=` or with an empty value are left alone.
//! Nothing is allocated unless something is redacted.

use std::borrow::Cow;

use smallvec::SmallVec;

/// The text that replaces a secret value.
pub const REDACTED: &str = "REDACTED";

/// Query parameter names whose values are treated as secrets, compared
/// ASCII-case-insensitively with the whole percent-decoded name and with its
/// last word: the part after the last `-`, `_`, `.` or space, or from the
/// last lower-to-upper camelCase step (`X-Amz-Signature`, `oauth_token`,
/// `accessToken`, `client.secret` all match). This errs towards redacting:
/// `sort_key` or `zip_code` lose their values too; a secret in a log costs
/// more than a lost sort key.
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
    "pwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "auth",
    "authorization",
    "session",
    "sessionid",
    "jwt",
    "code",
    "credential",
    "credentials",
];

/// Whether a (decoded) parameter name looks secret; see
/// [`SECRET_PARAM_NAMES`].
pub fn is_secret_name(name: &[u8]) -> bool {
    let word = last_word(name);
    SECRET_PARAM_NAMES.iter().any(|s| {
        let s = s.as_bytes();
        name.eq_ignore_ascii_case(s) || word.eq_ignore_ascii_case(s)
    })
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
    let mut out = Rewriter {
        target,
        out: None,
        copied: 0,
    };
    if let Some((start, end)) = userinfo(target) {
        out.replace(start, end);
    }
    let mut api_keys = SmallVec::new();
    let len = target.len();
    let query = target
        .find('?')
        .filter(|&q| target[..q].find('#').is_none());
    let fragment_start = target.find('#').map(|f| f + 1);
    if let Some(q) = query {
        let end = fragment_start.map_or(len, |f| f - 1);
        scan(&mut out, q + 1, end, key_names, Some(&mut api_keys));
    }
    if let Some(f) = fragment_start {
        scan(&mut out, f, len, key_names, None);
    }
    Redacted {
        target: out.finish(),
        api_keys,
    }
}

/// Redacts the parameters in `target[start..end]`; records the key names'
/// values in `api_keys` if given.
fn scan<'t>(
    out: &mut Rewriter<'t>,
    start: usize,
    end: usize,
    key_names: &[String],
    mut api_keys: Option<&mut SmallVec<[&'t str; 1]>>,
) {
    let target = out.target;
    let mut pos = start;
    for param in target[start..end].split('&') {
        let param_start = pos;
        pos += param.len() + 1;
        let Some(eq) = param.find('=') else { continue };
        let (name, value) = (&param[..eq], &param[eq + 1..]);
        if value.is_empty() {
            continue;
        }
        let (is_key, is_secret) = with_decoded(name, |n| {
            let is_key = key_names.iter().any(|k| k.as_bytes() == n);
            (is_key, is_key || is_secret_name(n))
        });
        if is_key && let Some(keys) = api_keys.as_deref_mut() {
            keys.push(value);
        }
        if is_secret {
            let value_start = param_start + eq + 1;
            out.replace(value_start, value_start + value.len());
        }
    }
}

/// The byte range of the userinfo in an absolute-form target
/// (`scheme://userinfo@host...`), if there is a non-empty one.
fn userinfo(target: &str) -> Option<(usize, usize)> {
    let colon = target.find("://")?;
    let scheme = &target.as_bytes()[..colon];
    let scheme_ok = scheme.first()?.is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return None;
    }
    let start = colon + 3;
    let authority_len = target[start..]
        .find(['/', '?', '#'])
        .unwrap_or(target.len() - start);
    let at = target[start..start + authority_len].rfind('@')?;
    (at > 0).then_some((start, start + at))
}

/// Copies `target` into a new string only once something is replaced.
struct Rewriter<'t> {
    target: &'t str,
    out: Option<String>,
    /// Bytes of `target` already accounted for in `out`.
    copied: usize,
}

impl<'t> Rewriter<'t> {
    /// Replaces `target[start..end]` (at or after `copied`) with REDACTED.
    fn replace(&mut self, start: usize, end: usize) {
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.target.len() + REDACTED.len()));
        out.push_str(&self.target[self.copied..start]);
        out.push_str(REDACTED);
        self.copied = end;
    }

    fn finish(self) -> Cow<'t, str> {
        match self.out {
            Some(mut out) => {
                out.push_str(&self.target[self.copied..]);
                Cow::Owned(out)
            }
            None => Cow::Borrowed(self.target),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(target: &str) -> Cow<'_, str> {
        redact_target(target, &["apikey".to_owned()]).target
    }

    #[test]
    fn several_params_keep_names_and_everything_else() {
        assert_eq!(
            redact("/v1/x?a=1&token=abc&b=2&password=p%40ss&apikey=k1&c"),
            "/v1/x?a=1&token=REDACTED&b=2&password=REDACTED&apikey=REDACTED&c"
        );
        assert_eq!(
            redact("/?Access_Token=x&SIG=y&id=3"),
            "/?Access_Token=REDACTED&SIG=REDACTED&id=3"
        );
    }

    #[test]
    fn percent_encoded_and_plus_names_are_decoded_for_matching() {
        assert_eq!(redact("/p?api%5Fkey=s&x=1"), "/p?api%5Fkey=REDACTED&x=1");
        assert_eq!(redact("/p?%61pikey=s"), "/p?%61pikey=REDACTED");
        assert_eq!(redact("/p?client+secret=s"), "/p?client+secret=REDACTED");
        // Invalid escapes are literal, no panic.
        assert_eq!(
            redact("/p?%zz=1&%=2&%4=3&tok%=4"),
            "/p?%zz=1&%=2&%4=3&tok%=4"
        );
        // A long encoded name goes through the heap path.
        let long = format!("/p?{}%5Ftoken=s", "a".repeat(300));
        assert_eq!(
            redact(&long),
            format!("/p?{}%5Ftoken=REDACTED", "a".repeat(300))
        );
    }

    #[test]
    fn word_suffixes_match() {
        assert_eq!(
            redact("/o?X-Amz-Signature=ab&X-Amz-Security-Token=cd&X-Amz-Date=1"),
            "/o?X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Date=1"
        );
        assert_eq!(
            redact("/o?accessToken=t&oauth_token=u"),
            "/o?accessToken=REDACTED&oauth_token=REDACTED"
        );
        // No word boundary: not a secret name.
        assert_eq!(
            redact("/o?monkey=1&keyword=2&tokens=3"),
            Cow::Borrowed("/o?monkey=1&keyword=2&tokens=3")
        );
    }

    #[test]
    fn fragments_empty_values_and_no_query() {
        assert_eq!(redact("/p?token=abc#frag"), "/p?token=REDACTED#frag");
        assert_eq!(
            redact("/cb#access_token=xyz&state=1"),
            "/cb#access_token=REDACTED&state=1"
        );
        assert_eq!(redact("/cb#a?token=x"), "/cb#a?token=x");
        assert_eq!(redact("/cb?q=1#x&token=y"), "/cb?q=1#x&token=REDACTED");
        assert!(matches!(
            redact("/p?token=&key"),
            Cow::Borrowed("/p?token=&key")
        ));
        assert!(matches!(redact("/p"), Cow::Borrowed("/p")));
        assert!(matches!(redact("/p?"), Cow::Borrowed("/p?")));
        assert!(matches!(redact("/p?a=1&b=2"), Cow::Borrowed(_)));
        assert!(matches!(redact("*"), Cow::Borrowed("*")));
        assert!(matches!(redact("example.com:443"), Cow::Borrowed(_)));
        // `;` is not a separator: the whole rest is the token's value.
        assert_eq!(redact("/p?token=a;b=c&d=e"), "/p?token=REDACTED&d=e");
        // Values with '=' are redacted whole.
        assert_eq!(redact("/p?sig=a==&z=1"), "/p?sig=REDACTED&z=1");
    }

    #[test]
    fn absolute_form_userinfo_and_query() {
        assert_eq!(
            redact("http://user:pw@api.example/p?key=1&q=2"),
            "http://REDACTED@api.example/p?key=REDACTED&q=2"
        );
        assert_eq!(redact("https://ghp_tok@h/"), "https://REDACTED@h/");
        assert!(matches!(redact("http://h/p?q=a@b"), Cow::Borrowed(_)));
        assert!(matches!(redact("/p?u=http://x@y"), Cow::Borrowed(_)));
    }

    #[test]
    fn key_names_are_exact_and_every_value_is_reported() {
        let names = ["Partner".to_owned()];
        let r = redact_target("/p?partner=lower&Partner=&Partner=k1&Partner=k2", &names);
        assert_eq!(
            r.target,
            "/p?partner=lower&Partner=&Partner=REDACTED&Partner=REDACTED"
        );
        assert_eq!(r.api_keys.as_slice(), ["k1", "k2"]);
        // Fragments never carry Kong keys.
        assert!(redact_target("/p#Partner=f", &names).api_keys.is_empty());
        assert_eq!(
            redact_target("/p?P%61rtner=a%2Bb+c", &names)
                .api_keys
                .as_slice(),
            ["a%2Bb+c"]
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_component("a%2Bb+c%zz%4"), &b"a+b c%zz%4"[..]);
        assert!(matches!(decode_component("plain"), Cow::Borrowed(b"plain")));
        assert_eq!(decode_component("%ff%00"), &b"\xff\x00"[..]);
    }

    #[test]
    fn secret_names() {
        for n in [
            "token",
            "TOKEN",
            "api-key",
            "client_secret",
            "sessionId",
            "X-Goog-Signature",
            "auth_code",
        ] {
            assert!(is_secret_name(n.as_bytes()), "{n}");
        }
        for n in [
            "",
            "q",
            "page",
            "tokenizer",
            "keys",
            "AccessKeyId",
            "Expires",
        ] {
            assert!(!is_secret_name(n.as_bytes()), "{n}");
        }
    }
}

//! The scanners behind [`super::redact_target`]: each marks the secret
//! byte ranges of one part of a target.

use smallvec::SmallVec;

use super::{Ranges, is_secret_name, with_decoded};
use crate::identity::credential::is_jose;

/// What starts an authority: `://`, plain or percent-encoded.
const SCHEME_ENDS: [&[u8]; 2] = [b"://", b"%3a%2f%2f"];
/// What ends an authority inside a target or a parameter value.
const AUTHORITY_ENDS: [&[u8]; 9] = [b"/", b"?", b"#", b"&", b" ", b"%2f", b"%3f", b"%23", b"%26"];
/// What ends a userinfo.
const USERINFO_ENDS: [&[u8]; 2] = [b"@", b"%40"];

/// The pattern of `patterns` that `s` starts with, ASCII-case-insensitively.
fn starts(s: &[u8], patterns: &[&'static [u8]]) -> Option<&'static [u8]> {
    patterns
        .iter()
        .find(|p| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p))
        .copied()
}

/// Marks the userinfo of every URL in `target`: after each `://` (or its
/// percent-encoding), up to the last `@` (or `%40`) before the authority
/// ends.
pub(super) fn userinfos(target: &str, ranges: &mut Ranges) {
    let b = target.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let sep = match b[i] {
            b':' | b'%' => starts(&b[i..], &SCHEME_ENDS),
            _ => None,
        };
        let Some(sep) = sep else {
            i += 1;
            continue;
        };
        let start = i + sep.len();
        let (mut end, mut at) = (start, None);
        while end < b.len() && starts(&b[end..], &AUTHORITY_ENDS).is_none() {
            match starts(&b[end..], &USERINFO_ENDS) {
                Some(p) => {
                    at = Some(end);
                    end += p.len();
                }
                None => end += 1,
            }
        }
        if let Some(at) = at {
            ranges.add(start, at);
        }
        i = end;
    }
}

/// Marks, in `target[..end]` (the path), segments that are a JWT or JWE
/// and the values of secret-named matrix parameters (`;name=value`).
pub(super) fn path(target: &str, end: usize, ranges: &mut Ranges) {
    let mut pos = 0;
    for segment in target[..end].split('/') {
        let start = pos;
        pos += segment.len() + 1;
        if segment.len() > 2 && with_decoded(segment, is_jose) {
            ranges.add(start, start + segment.len());
            continue;
        }
        let mut at = start;
        for (i, param) in segment.split(';').enumerate() {
            let param_start = at;
            at += param.len() + 1;
            if i == 0 {
                continue;
            }
            if let Some((name, value)) = param.split_once('=')
                && with_decoded(name, is_secret_name)
            {
                let value_start = param_start + name.len() + 1;
                ranges.add(value_start, value_start + value.len());
            }
        }
    }
}

/// The `&`-separated parameters of `target[start..end]` (a query or a
/// fragment).
pub(super) struct Params<'k> {
    pub start: usize,
    pub end: usize,
    /// Kong key-auth key names (exact, case-sensitive).
    pub key_names: &'k [String],
}

impl Params<'_> {
    /// Marks secret values: of key names, of secret-looking names, and
    /// values that are a JWT or JWE. Records the key names' raw values in
    /// `api_keys` if given.
    pub fn scan<'t>(
        &self,
        target: &'t str,
        ranges: &mut Ranges,
        mut api_keys: Option<&mut SmallVec<[&'t str; 1]>>,
    ) {
        // Byte splits, not `str::split`: a query is short, and the memchr
        // behind a `char` pattern costs more to set up than it saves there.
        let mut pos = self.start;
        for param in target.as_bytes()[self.start..self.end].split(|&b| b == b'&') {
            let param_start = pos;
            pos += param.len() + 1;
            let Some(eq) = param.iter().position(|&b| b == b'=') else {
                continue;
            };
            // `&` and `=` are ASCII: every cut is a char boundary.
            let name = &target[param_start..param_start + eq];
            let value = &target[param_start + eq + 1..param_start + param.len()];
            if value.is_empty() {
                continue;
            }
            let (is_key, is_secret) = with_decoded(name, |n| {
                let is_key = self.key_names.iter().any(|k| k.as_bytes() == n);
                (is_key, is_key || is_secret_name(n))
            });
            if is_key && let Some(keys) = api_keys.as_deref_mut() {
                keys.push(value);
            }
            if is_secret || with_decoded(value, is_jose) {
                let value_start = param_start + name.len() + 1;
                ranges.add(value_start, value_start + value.len());
            }
        }
    }
}

//! Secrets out of the segment log (`--debug-segments` without
//! `--debug-segments-raw`): in each segment's payload, the values of
//! credential headers and the secrets of a request line's target are
//! replaced by [`REDACTED`], the rest kept byte for byte.
//!
//! Credential headers: `Authorization`, `Proxy-Authorization`, `Cookie`,
//! `Set-Cookie`, Kong's key names, and any name that looks secret
//! ([`is_secret_name`]: `X-Api-Key`, `X-Auth-Token`, ...). Headers that
//! carry a URL or path (`Referer`, `Location`, Kong's `X-Forwarded-Path`
//! and `X-Forwarded-Prefix`, ...) are redacted as targets. A line split
//! across segments is judged whole: the start of each flow direction's last
//! unterminated line is carried to its next segment (in capture order; a
//! reordered continuation is judged alone).

use std::{borrow::Cow, collections::HashMap, net::SocketAddr};

use crate::identity::{REDACTED, is_secret_name, redact};

/// Most bytes of an unterminated line carried to the next segment.
const CARRY: usize = 256;
/// Most flow directions with a carried line; past it all are forgotten.
const MAX_CARRIED: usize = 4096;

/// Header names always redacted, besides secret-looking ones.
const CREDENTIAL_HEADERS: [&[u8]; 4] = [
    b"authorization",
    b"proxy-authorization",
    b"cookie",
    b"set-cookie",
];

/// Headers whose value is a URL or a path, redacted as a target.
const URL_HEADERS: [&[u8]; 8] = [
    b"referer",
    b"location",
    b"content-location",
    b"x-forwarded-path",
    b"x-forwarded-prefix",
    b"x-original-uri",
    b"x-original-url",
    b"x-rewrite-url",
];

/// Redacts payloads; keeps the carried line starts.
pub struct PayloadRedactor {
    key_names: Vec<String>,
    carry: HashMap<(SocketAddr, SocketAddr), Vec<u8>>,
}

impl PayloadRedactor {
    /// A redactor that also treats `key_names` (Kong key-auth) as secret.
    pub fn new(key_names: Vec<String>) -> Self {
        Self {
            key_names,
            carry: HashMap::new(),
        }
    }

    /// `payload` of the flow direction `flow` with its secrets replaced.
    pub fn redact<'p>(
        &mut self,
        flow: (SocketAddr, SocketAddr),
        payload: &'p [u8],
    ) -> Cow<'p, [u8]> {
        let carry = self.carry.remove(&flow).unwrap_or_default();
        let mut out = Vec::with_capacity(payload.len());
        let mut changed = false;
        let mut pos = 0;
        while pos < payload.len() {
            let end = payload[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(payload.len(), |i| pos + i);
            let line = &payload[pos..end];
            let whole: Cow<'_, [u8]> = if pos == 0 && !carry.is_empty() {
                Cow::Owned([&carry[..], line].concat())
            } else {
                Cow::Borrowed(line)
            };
            let here = whole.len() - line.len();
            match self.redact_line(&whole, here) {
                Some(replaced) => {
                    out.extend_from_slice(&replaced);
                    changed = true;
                }
                None => out.extend_from_slice(line),
            }
            if end == payload.len() {
                self.keep(flow, &whole);
            } else {
                out.push(b'\n');
            }
            pos = end + 1;
        }
        if changed {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(payload)
        }
    }

    /// The replacement for `whole[here..]` (this segment's part of the
    /// line), if the line holds a secret.
    fn redact_line(&self, whole: &[u8], here: usize) -> Option<Vec<u8>> {
        let cr = usize::from(whole.ends_with(b"\r"));
        if let Some(value) = self.secret_value(whole) {
            let from = value.max(here);
            let mut out = whole[here..from].to_vec();
            if from < whole.len() - cr {
                out.extend_from_slice(REDACTED.as_bytes());
            }
            out.extend_from_slice(&whole[whole.len() - cr..]);
            return Some(out);
        }
        let text = std::str::from_utf8(whole).ok()?;
        if let Some((name, value)) = text.split_once(':')
            && URL_HEADERS
                .iter()
                .any(|h| name.as_bytes().eq_ignore_ascii_case(h))
        {
            let redacted = redact(value.trim(), &self.key_names);
            if matches!(redacted, Cow::Borrowed(_)) {
                return None;
            }
            if here > 0 {
                return Some(REDACTED.as_bytes().to_vec());
            }
            return Some(format!("{name}: {redacted}{}", &text[text.len() - cr..]).into_bytes());
        }
        let (method, rest) = text.split_once(' ')?;
        let (target, version) = rest.rsplit_once(' ')?;
        if method.is_empty() || !version.starts_with("HTTP/") {
            return None;
        }
        let redacted = redact(target, &self.key_names);
        if matches!(redacted, Cow::Borrowed(_)) {
            return None;
        }
        if here > 0 {
            return Some(REDACTED.as_bytes().to_vec());
        }
        Some(format!("{method} {redacted} {version}").into_bytes())
    }

    /// Where a credential header line's value starts.
    fn secret_value(&self, line: &[u8]) -> Option<usize> {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return None;
        }
        let secret = CREDENTIAL_HEADERS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            || self
                .key_names
                .iter()
                .any(|k| name.eq_ignore_ascii_case(k.as_bytes()))
            || is_secret_name(name);
        secret.then_some(colon + 1)
    }

    /// Carries the start of the unterminated `line` to the flow's next
    /// segment: enough to judge it (the name and colon of a header).
    fn keep(&mut self, flow: (SocketAddr, SocketAddr), line: &[u8]) {
        let keep = match line.iter().position(|&b| b == b':') {
            Some(colon) if colon < CARRY => &line[..=colon],
            Some(_) => return,
            None if line.len() <= CARRY => line,
            None => return,
        };
        if self.carry.len() >= MAX_CARRIED {
            self.carry.clear();
        }
        self.carry.insert(flow, keep.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: (SocketAddr, SocketAddr) = (
        SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
            5000,
        ),
        SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
            8000,
        ),
    );

    fn redactor() -> PayloadRedactor {
        PayloadRedactor::new(vec!["apikey".into()])
    }

    #[test]
    fn credential_headers_and_target_secrets_are_replaced() {
        let head = b"GET /p?token=t1&q=2 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YTpi\r\n\
                     cookie: s=1\r\nX-Api-Key: k\r\napikey: k2\r\nAccept: */*\r\n\
                     X-Forwarded-Path: /a;jsessionid=s2\r\nReferer: http://u:p@h/\r\n\r\n";
        let out = redactor().redact(FLOW, head);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /p?token=REDACTED&q=2 HTTP/1.1\r\nHost: h\r\nAuthorization:REDACTED\r\n\
             cookie:REDACTED\r\nX-Api-Key:REDACTED\r\napikey:REDACTED\r\nAccept: */*\r\n\
             X-Forwarded-Path: /a;jsessionid=REDACTED\r\nReferer: http://REDACTED@h/\r\n\r\n"
        );
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(redactor().redact(FLOW, plain), Cow::Borrowed(_)));
    }

    #[test]
    fn lines_split_across_segments_are_judged_whole() {
        let mut r = redactor();
        let one = r.redact(FLOW, b"GET / HTTP/1.1\r\nAuthoriz").into_owned();
        let two = r.redact(FLOW, b"ation: Bearer sec").into_owned();
        let three = r.redact(FLOW, b"ret-token\r\nHost: h\r\n\r\n").into_owned();
        let all = [one, two, three].concat();
        assert_eq!(
            String::from_utf8_lossy(&all),
            "GET / HTTP/1.1\r\nAuthorization:REDACTEDREDACTED\r\nHost: h\r\n\r\n"
        );
        // Another flow direction is not affected by this one's carry.
        let other = (FLOW.1, FLOW.0);
        r.redact(FLOW, b"Cookie: a");
        assert!(matches!(r.redact(other, b"=1\r\n"), Cow::Borrowed(_)));
    }
}

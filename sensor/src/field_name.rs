//! HTTP field names (RFC 9110 section 5.1): what one may be made of, and
//! names compared as the RFC says (ASCII case-insensitively) against the
//! lowercase names the sensor reads.
//!
//! Every header of every request and response is classified ([`known`]:
//! its length picks one or two candidate names) and compared with the
//! configured names, so the compare is eight bytes at a time: a byte of
//! `name` matches a lowercase letter of the wanted name when equal to it
//! once bit 0x20 is set (that bit is all that separates `A`-`Z` from
//! `a`-`z`), and any other byte only when equal. With the wanted name a
//! constant, the mask of its letters folds away at compile time.

/// Whether `name` is `lower` ignoring ASCII case; `lower` must be
/// lowercase ASCII (a debug assertion checks it). The same answer as
/// `name.eq_ignore_ascii_case(lower)`. Always inlined, so that a constant
/// `lower`'s mask is computed at compile time.
#[inline(always)]
pub fn is(name: &[u8], lower: &[u8]) -> bool {
    debug_assert!(
        lower
            .iter()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    );
    let n = lower.len();
    if name.len() != n {
        return false;
    }
    if n < 8 {
        return name
            .iter()
            .zip(lower)
            .all(|(a, b)| a.to_ascii_lowercase() == *b);
    }
    // Words at 0, 8, 16, ... and one ending at the last byte (overlapping
    // the one before when the length is not a multiple of eight).
    let word = |s: &[u8], at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut at = 0;
    loop {
        let at_word = at.min(n - 8);
        let want = word(lower, at_word);
        if word(name, at_word) | letters(want) != want {
            return false;
        }
        if at_word == n - 8 {
            return true;
        }
        at += 8;
    }
}

/// `X-Forwarded-For`, lower case: a [`Known`] name, and the default
/// real-IP header.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The header names the sensor reads (the HTTP analyzer's and identity's
/// fixed ones), each found by [`known`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// `Host`.
    Host,
    /// `User-Agent`.
    UserAgent,
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `X-Kong-Request-Id`.
    KongRequestId,
    /// `X-Request-Id`.
    RequestId,
    /// `Authorization`.
    Authorization,
    /// `X-Forwarded-For`.
    ForwardedFor,
    /// `X-Real-IP`.
    RealIp,
    /// `X-Consumer-Username`.
    ConsumerUsername,
    /// `X-Consumer-ID`.
    ConsumerId,
    /// `X-Credential-Identifier`.
    CredentialIdentifier,
    /// `X-Anonymous-Consumer`.
    AnonymousConsumer,
}

/// Which of the [`Known`] names `name` is, ASCII case-insensitively. The
/// length picks the candidates (no two names share one but
/// `authorization` and `x-consumer-id`, `transfer-encoding` and
/// `x-kong-request-id`), so a field costs one or two compares, not one
/// per name; each compare is with a constant, whose letter mask folds away.
#[inline(always)]
pub fn known(name: &[u8]) -> Option<Known> {
    use Known::*;
    let is = |lower: &[u8], k: Known| is(name, lower).then_some(k);
    match name.len() {
        4 => is(b"host", Host),
        9 => is(b"x-real-ip", RealIp),
        10 => is(b"user-agent", UserAgent),
        12 => is(b"x-request-id", RequestId),
        13 => is(b"authorization", Authorization).or_else(|| is(b"x-consumer-id", ConsumerId)),
        14 => is(b"content-length", ContentLength),
        15 => is(FORWARDED_FOR.as_bytes(), ForwardedFor),
        17 => is(b"transfer-encoding", TransferEncoding)
            .or_else(|| is(b"x-kong-request-id", KongRequestId)),
        19 => is(b"x-consumer-username", ConsumerUsername),
        20 => is(b"x-anonymous-consumer", AnonymousConsumer),
        23 => is(b"x-credential-identifier", CredentialIdentifier),
        _ => None,
    }
}

/// 0x20 in each byte of `word` (lowercase ASCII) that is `a`-`z`.
#[inline(always)]
fn letters(word: u64) -> u64 {
    crate::swar::within(word, b'a', b'z') >> 2
}

/// Whether `b` is a `tchar` (RFC 9110 section 5.6.2): what field names
/// and methods are made of.
#[inline(always)]
pub fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Whether `name` is a field name: one or more tchars (RFC 9110 section
/// 5.1).
pub fn is_valid(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

/// [`is_tchar`] for every byte value: letters, digits and
/// ``!#$%&'*+-.^_`|~``.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
            | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::{Known, is, is_valid, known};

    #[test]
    fn field_names_are_tchars() {
        assert!(is_valid(b"X-Kong-Request-Id"));
        assert!(is_valid(b"x_0~z!#$%&'*+.^`|"));
        for bad in [
            &b""[..],
            b"api key",
            b"a:b",
            b"a\"b",
            b"caf\xc3\xa9",
            b"a\tb",
            b"(a)",
        ] {
            assert!(!is_valid(bad), "{}", bad.escape_ascii());
        }
    }

    const NAMES: &[&str] = &[
        "host",
        "apikey",
        "x-real-ip",
        "user-agent",
        "x-request-id",
        "authorization",
        "content-length",
        "x-forwarded-for",
        "transfer-encoding",
        "x-kong-request-id",
        "x-credential-identifier",
        "x-0_9~z",
        "",
    ];

    #[test]
    fn agrees_with_the_standard_library_on_every_byte() {
        for lower in NAMES {
            let lower = lower.as_bytes();
            assert!(is(lower, lower));
            assert!(is(&lower.to_ascii_uppercase(), lower));
            for at in 0..lower.len() {
                for b in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[at] = b;
                    assert_eq!(
                        is(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{:?} at {at} = {b:#x}",
                        String::from_utf8_lossy(lower)
                    );
                }
            }
        }
    }

    /// Every [`Known`] name and its variant: the definition `known` must
    /// agree with.
    const KNOWN: &[(&str, Known)] = &[
        ("host", Known::Host),
        ("user-agent", Known::UserAgent),
        ("content-length", Known::ContentLength),
        ("transfer-encoding", Known::TransferEncoding),
        ("x-kong-request-id", Known::KongRequestId),
        ("x-request-id", Known::RequestId),
        ("authorization", Known::Authorization),
        ("x-forwarded-for", Known::ForwardedFor),
        ("x-real-ip", Known::RealIp),
        ("x-consumer-username", Known::ConsumerUsername),
        ("x-consumer-id", Known::ConsumerId),
        ("x-credential-identifier", Known::CredentialIdentifier),
        ("x-anonymous-consumer", Known::AnonymousConsumer),
    ];

    fn known_by_definition(name: &[u8]) -> Option<Known> {
        KNOWN
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|&(_, k)| k)
    }

    #[test]
    fn known_names_are_found_by_one_rule() {
        let mut names: Vec<Vec<u8>> = vec![b"".to_vec(), b"apikey".to_vec()];
        for (name, _) in KNOWN {
            let name = name.as_bytes();
            names.push(name.to_ascii_uppercase());
            names.push(name[1..].to_vec());
            names.push([name, b"s"].concat());
            for at in 0..name.len() {
                for b in 0..=255u8 {
                    let mut edited = name.to_vec();
                    edited[at] = b;
                    names.push(edited);
                }
            }
        }
        for name in &names {
            assert_eq!(
                known(name),
                known_by_definition(name),
                "{}",
                name.escape_ascii()
            );
        }
        for &(name, k) in KNOWN {
            assert_eq!(known(name.as_bytes()), Some(k));
        }
    }

    #[test]
    fn a_longer_or_shorter_name_never_matches() {
        assert!(!is(b"hostx", b"host"));
        assert!(!is(b"x-forwarded-fo", b"x-forwarded-for"));
        assert!(!is(b"x-forwarded-forr", b"x-forwarded-for"));
    }
}

//! Credentials in request headers: what to fingerprint, and the non-secret
//! principal when there is one.
//!
//! Sources: RFC 7617 (Basic), RFC 6750 (Bearer), RFC 7519 (JWT), RFC 7616
//! (Digest), RFC 9110 §11 (auth-scheme is case-insensitive, OWS), Kong's
//! key-auth plugin (`key_names`).

use std::borrow::Cow;

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde::Deserialize;

use super::{
    fingerprint::Fingerprint,
    fingerprinter::Fingerprinter,
    principal::{Principal, PrincipalSource},
};

/// Fingerprint scopes: the label hashed before a secret (see
/// [`FingerprintKey::fingerprint`](super::FingerprintKey::fingerprint)),
/// naming what kind of secret it is.
pub mod scope {
    /// `Authorization: Basic`, decoded `user:password` bytes.
    pub const BASIC: &[u8] = b"basic";
    /// `Authorization: Basic` whose token is not valid base64: the raw token.
    pub const BASIC_RAW: &[u8] = b"basic-raw";
    /// `Authorization: Bearer` token, or a bare JWT as the whole value.
    pub const BEARER: &[u8] = b"bearer";
    /// Any other `Authorization` value (Digest, NTLM, Negotiate, unknown
    /// schemes, bare non-JWT tokens): the whole trimmed value.
    pub const AUTHORIZATION: &[u8] = b"authorization";
    /// Kong key-auth key, from a header or (percent-decoded) query
    /// parameter: the same key gives the same fingerprint either way.
    pub const API_KEY: &[u8] = b"apikey";
    /// Kong's `X-Credential-Identifier` on the upstream leg.
    pub const KONG_CREDENTIAL: &[u8] = b"kong-credential";
}

/// A credential found in the request: its fingerprint and, if the scheme
/// carries one, the non-secret principal.
pub(super) struct Found {
    pub fingerprint: Fingerprint,
    pub principal: Option<Principal>,
}

/// Standard base64 (RFC 4648 §4) with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// base64url (RFC 4648 §5), the JWT encoding; padding tolerated.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An `Authorization` header value. `None` when it holds no credential
/// (empty, or `Basic` / `Bearer` with no token).
///
/// - `Basic b64`: fingerprint of the decoded `user:password`; principal =
///   the user-id (before the first `:`) when it is non-empty and the
///   password is not a placeholder ([`PLACEHOLDER_PASSWORDS`]: with an
///   empty or filler password the user-id field *is* the secret, as in
///   `curl -u sk_live_...:` or Freshdesk's `KEY:X`; with no `:` the value
///   is malformed and may be a bare secret). Undecodable: fingerprint of the raw token, no
///   principal.
/// - `Bearer tok`: fingerprint of `tok`; principal = the JWT `sub` claim
///   when `tok` is a JWT.
/// - A bare JWT (no scheme): as `Bearer` (same token, same fingerprint).
/// - Digest: whole value fingerprinted; principal = the `username`
///   parameter. Note the value changes with every nonce, so the fingerprint
///   does too.
/// - NTLM, Negotiate, anything else: whole value fingerprinted, no
///   principal.
pub(super) fn authorization(fingerprinter: &Fingerprinter, value: &[u8]) -> Option<Found> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    let (scheme, rest) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&value[..i], value[i..].trim_ascii_start()),
        None => (value, &b""[..]),
    };
    if scheme.eq_ignore_ascii_case(b"basic") {
        return (!rest.is_empty()).then(|| basic(fingerprinter, rest));
    }
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return (!rest.is_empty()).then(|| Found {
            fingerprint: fingerprinter.scoped(scope::BEARER, rest),
            principal: jwt_sub(rest).flatten().and_then(jwt_principal),
        });
    }
    if rest.is_empty()
        && let Some(sub) = jwt_sub(value)
    {
        return Some(Found {
            fingerprint: fingerprinter.scoped(scope::BEARER, value),
            principal: sub.and_then(jwt_principal),
        });
    }
    let principal = if scheme.eq_ignore_ascii_case(b"digest") {
        auth_param(rest, b"username").and_then(|u| Principal::new(&u, PrincipalSource::DigestUser))
    } else {
        None
    };
    Some(Found {
        fingerprint: fingerprinter.scoped(scope::AUTHORIZATION, value),
        principal,
    })
}

/// A JWT's `sub` as an unverified principal.
fn jwt_principal(sub: String) -> Option<Principal> {
    Principal::new(sub.as_bytes(), PrincipalSource::JwtSubUnverified)
}

fn basic(fingerprinter: &Fingerprinter, token: &[u8]) -> Found {
    let Ok(decoded) = BASE64.decode(token) else {
        return Found {
            fingerprint: fingerprinter.scoped(scope::BASIC_RAW, token),
            principal: None,
        };
    };
    let principal = decoded
        .iter()
        .position(|&b| b == b':')
        .filter(|&i| i > 0 && !is_placeholder(&decoded[i + 1..]))
        .and_then(|i| Principal::new(&decoded[..i], PrincipalSource::BasicUser));
    Found {
        fingerprint: fingerprinter.scoped(scope::BASIC, &decoded),
        principal,
    }
}

/// Passwords that mark the Basic user-id as the secret: APIs that take an
/// API key as the user-id want a fixed filler as the password (Freshdesk
/// `KEY:X`, Toggl `KEY:api_token`, Stripe and others an empty one);
/// compared ASCII-case-insensitively.
pub const PLACEHOLDER_PASSWORDS: &[&str] = &[
    "",
    "x",
    "-",
    "_",
    "*",
    "0",
    "api_token",
    "api_key",
    "apikey",
    "token",
    "none",
    "null",
    "unused",
    "dummy",
];

/// Whether a Basic password is a placeholder ([`PLACEHOLDER_PASSWORDS`]).
fn is_placeholder(password: &[u8]) -> bool {
    PLACEHOLDER_PASSWORDS
        .iter()
        .any(|p| password.eq_ignore_ascii_case(p.as_bytes()))
}

/// `None`: not a JWT. `Some(sub)`: a JWT (JWS compact serialization, RFC
/// 7515 §7.1: three base64url segments, header and payload JSON objects),
/// with its `sub` claim if that is a non-empty string. Nothing is verified.
fn jwt_sub(token: &[u8]) -> Option<Option<String>> {
    #[derive(Deserialize)]
    struct Claims<'a> {
        #[serde(borrow, default)]
        sub: Option<Cow<'a, str>>,
    }
    let mut parts = token.split(|&b| b == b'.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() || payload.is_empty() {
        return None;
    }
    let b64url = |s: &[u8]| {
        s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
    };
    if !(b64url(header) && b64url(payload) && b64url(signature)) {
        return None;
    }
    let header = BASE64URL.decode(header).ok()?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&header).ok()?;
    if header.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let payload = BASE64URL.decode(payload).ok()?;
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let claims: Claims<'_> = serde_json::from_slice(&payload).ok()?;
    Some(claims.sub.filter(|s| !s.is_empty()).map(Cow::into_owned))
}

/// Whether `token` is a JOSE compact serialization: a JWS (RFC 7515
/// section 7.1: three base64url parts, the payload possibly empty) or a JWE
/// (RFC 7516 section 7.1: five), whose protected header is a JSON object
/// with an `alg`. Nothing is verified. Used to redact tokens wherever they
/// appear in a target.
pub(super) fn is_jose(token: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Header<'a> {
        #[serde(borrow, rename = "alg")]
        _alg: Cow<'a, str>,
    }
    // Base64url of `{"` or `{ `, which every JSON header starts with.
    if !token.starts_with(b"ey") {
        return false;
    }
    let b64url = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.');
    let parts = token.iter().filter(|&&b| b == b'.').count() + 1;
    if !matches!(parts, 3 | 5) || !token.iter().all(b64url) {
        return false;
    }
    let header = token.split(|&b| b == b'.').next().unwrap_or_default();
    BASE64URL
        .decode(header)
        .is_ok_and(|h| serde_json::from_slice::<Header<'_>>(&h).is_ok())
}

/// The value of auth-param `name` (case-insensitive) in a
/// `#auth-param` list (RFC 9110 §11.2): token or quoted-string, the latter
/// unescaped. `None` if absent or malformed before it.
fn auth_param<'a>(params: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    let mut s = params;
    loop {
        s = s.trim_ascii_start();
        while let [b',', rest @ ..] = s {
            s = rest.trim_ascii_start();
        }
        if s.is_empty() {
            return None;
        }
        let name_end = s
            .iter()
            .position(|&b| b == b'=' || b == b',' || b.is_ascii_whitespace());
        let (this, rest) = s.split_at(name_end.unwrap_or(s.len()));
        let rest = rest.trim_ascii_start();
        let [b'=', rest @ ..] = rest else {
            // A bare token (e.g. token68): skip it.
            s = rest;
            continue;
        };
        let rest = rest.trim_ascii_start();
        let (value, rest) = if let [b'"', quoted @ ..] = rest {
            quoted_string(quoted)?
        } else {
            let end = rest
                .iter()
                .position(|&b| b == b',' || b.is_ascii_whitespace());
            let (v, r) = rest.split_at(end.unwrap_or(rest.len()));
            (Cow::Borrowed(v), r)
        };
        if this.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        s = rest;
    }
}

/// The content of a quoted-string whose opening quote was consumed, and
/// what follows the closing quote. `None` if unterminated.
fn quoted_string(s: &[u8]) -> Option<(Cow<'_, [u8]>, &[u8])> {
    let end = s.iter().position(|&b| b == b'"' || b == b'\\')?;
    if s[end] == b'"' {
        return Some((Cow::Borrowed(&s[..end]), &s[end + 1..]));
    }
    let mut out = s[..end].to_vec();
    let mut i = end;
    while i < s.len() {
        match s[i] {
            b'"' => return Some((Cow::Owned(out), &s[i + 1..])),
            b'\\' if i + 1 < s.len() => {
                out.push(s[i + 1]);
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

/// A Kong key-auth key (header value or decoded query value). Empty: none.
pub(super) fn api_key(fingerprinter: &Fingerprinter, value: &[u8]) -> Option<Fingerprint> {
    let value = value.trim_ascii();
    (!value.is_empty()).then(|| fingerprinter.scoped(scope::API_KEY, value))
}

/// Kong's `X-Credential-Identifier`. Empty: none.
pub(super) fn kong_credential(fingerprinter: &Fingerprinter, value: &[u8]) -> Option<Fingerprint> {
    let value = value.trim_ascii();
    (!value.is_empty()).then(|| fingerprinter.scoped(scope::KONG_CREDENTIAL, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprinter() -> Fingerprinter {
        Fingerprinter::new(crate::identity::FingerprintKey::from_bytes([9; 32]))
    }

    fn b64url(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            b64url(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64url(payload)
        )
    }

    #[test]
    fn jwt_detection() {
        assert_eq!(
            jwt_sub(jwt(r#"{"sub":"alice"}"#).as_bytes()),
            Some(Some("alice".into()))
        );
        assert_eq!(jwt_sub(jwt(r#"{"iss":"x"}"#).as_bytes()), Some(None));
        assert_eq!(jwt_sub(jwt(r#"{"sub":""}"#).as_bytes()), Some(None));
        // Escaped sub is unescaped.
        assert_eq!(
            jwt_sub(jwt(r#"{"sub":"a\"b"}"#).as_bytes()),
            Some(Some("a\"b".into()))
        );
        // Empty signature (alg none) is still a JWT.
        let unsigned = jwt(r#"{"sub":"bob"}"#).replace(".c2ln", ".");
        assert_eq!(jwt_sub(unsigned.as_bytes()), Some(Some("bob".into())));
        // Not JWTs.
        for t in ["abc", "a.b", "a.b.c", "a.b.c.d", "..", "x.y.z"] {
            assert_eq!(jwt_sub(t.as_bytes()), None, "{t}");
        }
        let not_object = format!("{}.{}.x", b64url("{}"), b64url("[1]"));
        assert_eq!(jwt_sub(not_object.as_bytes()), None);
        let bad_header = format!("{}.{}.x", b64url("nope"), b64url(r#"{"sub":"a"}"#));
        assert_eq!(jwt_sub(bad_header.as_bytes()), None);
        // A non-string sub makes the claim set invalid (RFC 7519 §4.1.2).
        assert_eq!(jwt_sub(jwt(r#"{"sub":42}"#).as_bytes()), None);
    }

    #[test]
    fn digest_username_param() {
        let p = br#"realm="api", username="Mufasa", nonce="abc""#;
        assert_eq!(auth_param(p, b"username").as_deref(), Some(&b"Mufasa"[..]));
        let p = br#"realm = "a,b" , USERNAME = "m\"x\\y", uri="/""#;
        assert_eq!(auth_param(p, b"username").as_deref(), Some(&b"m\"x\\y"[..]));
        assert_eq!(
            auth_param(b"username=tok, realm=x", b"username").as_deref(),
            Some(&b"tok"[..])
        );
        assert_eq!(auth_param(b"username*=UTF-8''J%C3%A4s", b"username"), None);
        assert_eq!(auth_param(br#"username="unterminated"#, b"username"), None);
        assert_eq!(auth_param(b"", b"username"), None);
        assert_eq!(auth_param(b",,, ,", b"username"), None);
    }

    #[test]
    fn scheme_only_or_empty_is_no_credential() {
        for v in ["", "   ", "Basic", "Bearer  ", "bearer"] {
            assert!(
                authorization(&fingerprinter(), v.as_bytes()).is_none(),
                "{v:?}"
            );
        }
        assert!(api_key(&fingerprinter(), b" ").is_none());
        assert!(kong_credential(&fingerprinter(), b"").is_none());
    }
}

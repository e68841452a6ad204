//! Resolver-level tests: every rule through `Resolver::resolve`.

use std::{borrow::Cow, net::IpAddr};

use base64::Engine as _;
use httparse::Header;

use super::*;

const KEY: [u8; 32] = [0x42; 32];
/// A client on the internet.
const PEER: &str = "203.0.113.10";
/// A load balancer in front of Kong (`--trusted-proxy 10.0.0.0/24`).
const PROXY: &str = "10.0.0.2";
/// A Kong node (`--kong-address`): flows it opens are the upstream leg.
const KONG: &str = "10.0.1.2";
/// The server the tests' flows go to (an upstream port, not a proxy port).
const SERVER: &str = "10.0.1.9:8080";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn resolver_with(config: IdentityConfig) -> Resolver {
    Resolver::new(config, FingerprintKey::from_bytes(KEY))
}

fn resolver() -> Resolver {
    resolver_with(IdentityConfig {
        trusted_proxies: vec!["10.0.0.0/24".parse().unwrap()],
        topology: Topology {
            kong_addresses: vec![format!("{KONG}/32").parse().unwrap()],
            ..Topology::default()
        },
        ..IdentityConfig::default()
    })
}

/// What the tests read off an identity.
impl Identity {
    /// The first credential.
    fn cred(&self) -> Option<Fingerprint> {
        self.credentials.first().copied()
    }

    /// The principal's name.
    fn who(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.name.as_str())
    }

    /// The principal's provenance.
    fn source(&self) -> Option<PrincipalSource> {
        self.principal.as_ref().map(|p| p.source)
    }
}

fn fp(scope: &[u8], secret: &[u8]) -> Fingerprint {
    let mut input = scope.to_vec();
    input.push(0);
    input.extend_from_slice(secret);
    FingerprintKey::from_bytes(KEY).fingerprint(&input)
}

/// [`Resolver::resolve`] on a plain header list, scanned as the HTTP
/// analyzer does.
trait ResolveList {
    fn resolve_list<'t>(
        &self,
        peer: IpAddr,
        target: &'t str,
        headers: &[Header<'_>],
    ) -> (Identity, Cow<'t, str>);
}

impl ResolveList for Resolver {
    fn resolve_list<'t>(
        &self,
        peer: IpAddr,
        target: &'t str,
        headers: &[Header<'_>],
    ) -> (Identity, Cow<'t, str>) {
        let mut seen = IdentityHeaders::default();
        for at in 0..headers.len() {
            let known = crate::field_name::known(headers[at].name.as_bytes());
            seen.note(headers, at, known, self.header_names());
        }
        let client = std::net::SocketAddr::new(peer, 40000);
        let leg = self.topology().leg(client, SERVER.parse().unwrap());
        self.resolve(peer, leg, target, &seen)
    }
}

fn headers<'a>(list: &'a [(&'a str, &'a [u8])]) -> Vec<Header<'a>> {
    list.iter()
        .map(|&(name, value)| Header { name, value })
        .collect()
}

fn resolve(peer: &str, target: &str, list: &[(&str, &[u8])]) -> Identity {
    resolver().resolve_list(ip(peer), target, &headers(list)).0
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn jwt(payload: &str) -> String {
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        enc(r#"{"alg":"RS256"}"#),
        enc(payload)
    )
}

#[test]
fn default_config_is_kong_default() {
    let c = IdentityConfig::default();
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.names.key_names, ["apikey"]);
    assert_eq!(c.names.real_ip_header, "x-forwarded-for");
    assert_eq!(c.topology.proxy_ports, [8000, 8443]);
    assert!(c.topology.kong_addresses.is_empty());
}

#[test]
fn no_credentials_nothing_allocated() {
    let (id, target) = resolver().resolve_list(
        ip(PEER),
        "/v1/items?page=2",
        &headers(&[("Host", b"api"), ("User-Agent", b"curl")]),
    );
    assert_eq!(
        id,
        Identity {
            client_ip: ip(PEER),
            client_is_peer: true,
            principal: None,
            credentials: Credentials::new(),
            consumer: None,
            consumer_id: None,
            kong_credential: None,
            claims_consumer: false,
        }
    );
    assert!(matches!(target, Cow::Borrowed("/v1/items?page=2")));
}

#[test]
fn client_ip_from_headers_only_behind_trusted_peer() {
    let h: &[(&str, &[u8])] = &[
        ("X-Forwarded-For", b"198.51.100.1, 198.51.100.2"),
        ("x-forwarded-for", b"10.0.0.7"),
        ("X-Real-IP", b"198.51.100.9"),
    ];
    assert_eq!(resolve(PEER, "/", h).client_ip, ip(PEER));
    assert_eq!(resolve(PROXY, "/", h).client_ip, ip("198.51.100.2"));
    // A load balancer's X-Real-IP is read only when configured as the header.
    let h: &[(&str, &[u8])] = &[("x-real-ip", b"198.51.100.9")];
    assert_eq!(resolve(PROXY, "/", h).client_ip, ip(PROXY));
    let real_ip = resolver_with(IdentityConfig {
        trusted_proxies: vec!["10.0.0.0/24".parse().unwrap()],
        names: HeaderNames {
            real_ip_header: "x-real-ip".into(),
            ..HeaderNames::default()
        },
        ..IdentityConfig::default()
    });
    let got = real_ip
        .resolve_list(ip(PROXY), "/", &headers(h))
        .0
        .client_ip;
    assert_eq!(got, ip("198.51.100.9"));
    // IPv6 peer, trusted via an IPv6 CIDR.
    let r = resolver_with(IdentityConfig {
        trusted_proxies: vec!["fd00::/8".parse().unwrap()],
        ..IdentityConfig::default()
    });
    let h = headers(&[("X-Forwarded-For", b"2001:db8::5, fd00::3")]);
    assert_eq!(
        r.resolve_list(ip("fd00::1"), "/", &h).0.client_ip,
        ip("2001:db8::5")
    );
}

#[test]
fn arkime_xff_through_resolver() {
    // tests/pcap/http-xff.pcap: peer 10.0.0.1, `X-Forwarded-For: 10.000.000.03`.
    let h: &[(&str, &[u8])] = &[("X-Forwarded-For", b"10.000.000.03")];
    assert_eq!(resolve("10.0.0.1", "/", h).client_ip, ip("10.0.0.3"));
    let untrusted = resolver_with(IdentityConfig::default());
    assert_eq!(
        untrusted
            .resolve_list(ip("10.0.0.1"), "/", &headers(h))
            .0
            .client_ip,
        ip("10.0.0.1")
    );
}

#[test]
fn basic_with_user_and_password() {
    let v = format!("Basic {}", b64(b"alice:s3cr:et"));
    let id = resolve(PEER, "/", &[("Authorization", v.as_bytes())]);
    assert_eq!(id.who(), Some("alice"));
    assert_eq!(id.source(), Some(PrincipalSource::BasicUser));
    assert_eq!(id.cred(), Some(fp(scope::BASIC, b"alice:s3cr:et")));
    // Scheme is case-insensitive, extra spaces and missing padding tolerated.
    let v = format!("bAsIc   {}  ", b64(b"alice:s3cr:et").trim_end_matches('='));
    assert_eq!(resolve(PEER, "/", &[("authorization", v.as_bytes())]), id);
}

#[test]
fn basic_without_colon_or_with_empty_or_placeholder_parts_has_no_principal() {
    for user_pass in [
        &b"justatoken"[..],
        b"sk_live_123:",
        b":password",
        b"APIKEY123:X",
        b"APIKEY123:x",
        b"tok_1:api_token",
        b"key:-",
    ] {
        let v = format!("Basic {}", b64(user_pass));
        let id = resolve(PEER, "/", &[("Authorization", v.as_bytes())]);
        assert_eq!(id.principal, None, "{user_pass:?}");
        assert_eq!(id.cred(), Some(fp(scope::BASIC, user_pass)));
    }
}

#[test]
fn basic_bad_base64_fingerprints_raw_token() {
    let id = resolve(PEER, "/", &[("Authorization", b"Basic not*base64!")]);
    assert_eq!(id.principal, None);
    assert_eq!(id.cred(), Some(fp(scope::BASIC_RAW, b"not*base64!")));
}

#[test]
fn bearer_jwt_gives_sub() {
    let token = jwt(r#"{"sub":"user-42","iss":"https://idp","exp":1}"#);
    let v = format!("Bearer {token}");
    let id = resolve(PEER, "/", &[("Authorization", v.as_bytes())]);
    assert_eq!(id.who(), Some("user-42"));
    assert_eq!(id.source(), Some(PrincipalSource::JwtSubUnverified));
    assert_eq!(id.cred(), Some(fp(scope::BEARER, token.as_bytes())));
}

#[test]
fn bearer_non_jwt() {
    let id = resolve(PEER, "/", &[("Authorization", b"Bearer opaque-token.123")]);
    assert_eq!(id.principal, None);
    assert_eq!(id.cred(), Some(fp(scope::BEARER, b"opaque-token.123")));
}

#[test]
fn bare_jwt_is_a_bearer_token() {
    let token = jwt(r#"{"sub":"svc"}"#);
    let bare = resolve(PEER, "/", &[("Authorization", token.as_bytes())]);
    let v = format!("Bearer {token}");
    let bearer = resolve(PEER, "/", &[("Authorization", v.as_bytes())]);
    assert_eq!(bare.who(), Some("svc"));
    assert_eq!(bare, bearer);
    // A bare value that is not a JWT: the whole value, no principal.
    let id = resolve(PEER, "/", &[("Authorization", b"a.b.c")]);
    assert_eq!(id.cred(), Some(fp(scope::AUTHORIZATION, b"a.b.c")));
    assert_eq!(id.principal, None);
}

#[test]
fn digest_username_is_principal() {
    let v: &[u8] = br#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", nonce="7ypf", response="8ca5""#;
    let id = resolve(PEER, "/", &[("Authorization", v)]);
    assert_eq!(id.who(), Some("Mufasa"));
    assert_eq!(id.source(), Some(PrincipalSource::DigestUser));
    assert_eq!(id.cred(), Some(fp(scope::AUTHORIZATION, v)));
}

#[test]
fn ntlm_negotiate_and_unknown_schemes_fingerprint_whole_value() {
    for v in [
        &b"NTLM TlRMTVNTUAADAAAAGAAYAEgAAAA="[..],
        b"Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag",
        b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, Signature=5d67",
        b"Token token=abc",
    ] {
        let id = resolve(PEER, "/", &[("Authorization", v)]);
        assert_eq!(id.principal, None);
        assert_eq!(id.cred(), Some(fp(scope::AUTHORIZATION, v)));
    }
}

#[test]
fn scheme_is_part_of_the_fingerprint() {
    let basic = resolve(PEER, "/", &[("Authorization", b"Basic YTpi")]);
    let bearer = resolve(PEER, "/", &[("Authorization", b"Bearer YTpi")]);
    let other = resolve(PEER, "/", &[("Authorization", b"Custom YTpi")]);
    let apikey = resolve(PEER, "/", &[("apikey", b"YTpi")]);
    let fps = [basic, bearer, other, apikey].map(|i| i.cred().unwrap());
    for i in 0..fps.len() {
        for j in i + 1..fps.len() {
            assert_ne!(fps[i], fps[j]);
        }
    }
}

#[test]
fn apikey_header_case_insensitive_and_query() {
    let expect = Some(fp(scope::API_KEY, b"k-123"));
    assert_eq!(resolve(PEER, "/", &[("ApiKey", b" k-123 ")]).cred(), expect);
    assert_eq!(resolve(PEER, "/", &[("APIKEY", b"k-123")]).cred(), expect);
    let (id, target) = resolver().resolve_list(ip(PEER), "/x?apikey=k%2D123&a=1", &[]);
    assert_eq!(id.cred(), expect);
    assert_eq!(id.principal, None);
    assert_eq!(target, "/x?apikey=REDACTED&a=1");
    // The query parameter name is exact.
    let (id, target) = resolver().resolve_list(ip(PEER), "/x?ApiKey=k-123", &[]);
    assert_eq!(id.cred(), None);
    assert_eq!(target, "/x?ApiKey=REDACTED"); // still a secret-looking name
}

#[test]
fn custom_key_names() {
    let r = resolver_with(IdentityConfig {
        names: HeaderNames {
            key_names: vec!["X-Partner-Token".to_owned(), "pk".to_owned()],
            ..HeaderNames::default()
        },
        ..IdentityConfig::default()
    });
    let h = headers(&[("x-partner-token", b"t1")]);
    assert_eq!(
        r.resolve_list(ip(PEER), "/", &h).0.cred(),
        Some(fp(scope::API_KEY, b"t1"))
    );
    let (id, target) = r.resolve_list(ip(PEER), "/p?pk=t2&apikey=t3", &[]);
    assert_eq!(id.cred(), Some(fp(scope::API_KEY, b"t2")));
    assert_eq!(target, "/p?pk=REDACTED&apikey=REDACTED");
    // The default name is not a key name any more: a header called apikey is ignored.
    let h = headers(&[("apikey", b"t3")]);
    assert_eq!(r.resolve_list(ip(PEER), "/", &h).0.cred(), None);
}

#[test]
fn every_credential_is_fingerprinted_in_order() {
    // Junk in Authorization cannot hide the key that Kong accepts.
    let h: &[(&str, &[u8])] = &[("apikey", b"hdr"), ("Authorization", b"Bearer junk")];
    assert_eq!(
        resolve(PEER, "/?apikey=q", h).credentials.as_slice(),
        [
            fp(scope::BEARER, b"junk"),
            fp(scope::API_KEY, b"hdr"),
            fp(scope::API_KEY, b"q")
        ]
    );
    // The same key twice is one credential.
    let h: &[(&str, &[u8])] = &[("apikey", b"k")];
    assert_eq!(
        resolve(PEER, "/?apikey=k", h).credentials.as_slice(),
        [fp(scope::API_KEY, b"k")]
    );
    // An Authorization header without a credential adds nothing.
    let h: &[(&str, &[u8])] = &[("Authorization", b"Bearer "), ("apikey", b"")];
    assert_eq!(
        resolve(PEER, "/?apikey=q", h).cred(),
        Some(fp(scope::API_KEY, b"q"))
    );
    // First header of a kind wins.
    let h: &[(&str, &[u8])] = &[
        ("Authorization", b"Bearer one"),
        ("Authorization", b"Bearer two"),
    ];
    assert_eq!(
        resolve(PEER, "/", h).cred(),
        Some(fp(scope::BEARER, b"one"))
    );
}

#[test]
fn kong_upstream_headers() {
    let h: &[(&str, &[u8])] = &[
        ("X-Consumer-ID", b"8a3f-uuid"),
        ("X-Consumer-Username", b"partner-acme"),
        ("X-Credential-Identifier", b"cred-uuid-1"),
        ("X-Forwarded-For", b"198.51.100.4"),
    ];
    let id = resolve(KONG, "/", h);
    assert_eq!(id.client_ip, ip("198.51.100.4"));
    assert_eq!(id.consumer.as_deref(), Some("partner-acme"));
    assert_eq!(id.who(), Some("partner-acme"));
    assert_eq!(id.source(), Some(PrincipalSource::KongConsumer));
    assert_eq!(id.cred(), Some(fp(scope::KONG_CREDENTIAL, b"cred-uuid-1")));
    assert_eq!(id.kong_credential, id.cred());
    // Kong's X-Real-IP (its $remote_addr) names the client first.
    let with_real_ip = [h, &[("X-Real-IP", &b"198.51.100.5"[..])]].concat();
    assert_eq!(
        resolve(KONG, "/", &with_real_ip).client_ip,
        ip("198.51.100.5")
    );

    // Only the consumer id.
    let id = resolve(KONG, "/", &[("x-consumer-id", b"8a3f-uuid")]);
    assert_eq!(id.consumer.as_deref(), Some("8a3f-uuid"));
    assert_eq!(id.who(), Some("8a3f-uuid"));

    // Kong's consumer wins over the name the client claimed; every
    // credential is kept.
    let v = format!("Basic {}", b64(b"bob:pw"));
    let h: &[(&str, &[u8])] = &[
        ("Authorization", v.as_bytes()),
        ("X-Consumer-Username", b"bob-consumer"),
        ("X-Credential-Identifier", b"bob"),
    ];
    let id = resolve(KONG, "/", h);
    assert_eq!(id.who(), Some("bob-consumer"));
    assert_eq!(id.source(), Some(PrincipalSource::KongConsumer));
    assert_eq!(id.consumer.as_deref(), Some("bob-consumer"));
    assert_eq!(
        id.credentials.as_slice(),
        [
            fp(scope::BASIC, b"bob:pw"),
            fp(scope::KONG_CREDENTIAL, b"bob")
        ]
    );
}

#[test]
fn kong_anonymous_consumer() {
    let h: &[(&str, &[u8])] = &[
        ("X-Consumer-ID", b"anon-uuid"),
        ("X-Consumer-Username", b"anonymous"),
        ("X-Anonymous-Consumer", b"true"),
    ];
    let id = resolve(KONG, "/", h);
    assert_eq!(id.consumer, None);
    assert_eq!(id.principal, None);
    assert_eq!(id.cred(), None);
    // Anything but "true" is not anonymous.
    let h: &[(&str, &[u8])] = &[
        ("X-Consumer-Username", b"c"),
        ("X-Anonymous-Consumer", b"false"),
    ];
    assert_eq!(resolve(KONG, "/", h).consumer.as_deref(), Some("c"));
}

#[test]
fn kong_headers_off_the_upstream_leg_are_ignored() {
    let h: &[(&str, &[u8])] = &[
        ("X-Consumer-Username", b"admin"),
        ("X-Credential-Identifier", b"forged"),
    ];
    // Neither a client nor a trusted load balancer can name a consumer,
    // and the claim is marked, for the join (the upstream leg's copy of it
    // is not believed either).
    for peer in [PEER, PROXY] {
        let id = resolve(peer, "/", h);
        assert_eq!((id.consumer, id.principal), (None, None), "{peer}");
        assert!(id.credentials.is_empty(), "{peer}");
        assert!(id.claims_consumer, "{peer}");
    }
    for name in [
        "X-Consumer-ID",
        "X-Consumer-Username",
        "X-Credential-Identifier",
    ] {
        assert!(
            resolve(PEER, "/", &[(name, b"x")]).claims_consumer,
            "{name}"
        );
    }
    let anonymous: &[(&str, &[u8])] = &[("X-Anonymous-Consumer", b"true")];
    assert!(resolve(PEER, "/", anonymous).claims_consumer);
    assert!(!resolve(PEER, "/", &[("Host", b"api")]).claims_consumer);
    // Kong's own headers on the upstream leg are no claim.
    assert!(!resolve(KONG, "/", h).claims_consumer);
}

#[test]
fn non_utf8_header_values_do_not_panic() {
    let h: &[(&str, &[u8])] = &[
        ("Authorization", b"Basic \xff\xfe"),
        ("X-Consumer-Username", b"caf\xe9"),
        ("X-Forwarded-For", b"\xff, 198.51.100.1"),
        ("X-Real-IP", b"\xc0"),
    ];
    let id = resolve(KONG, "/", h);
    assert_eq!(id.consumer.as_deref(), Some("caf\\xE9"));
    assert_eq!(id.client_ip, ip("198.51.100.1"));
    assert_eq!(id.cred(), Some(fp(scope::BASIC_RAW, b"\xff\xfe")));
    // Non-UTF-8 inside a decoded Basic user name.
    let v = format!("Basic {}", b64(b"\xffuser:pw"));
    let id = resolve(PEER, "/", &[("Authorization", v.as_bytes())]);
    assert_eq!(id.who(), Some("\\xFFuser"));
}

#[test]
fn secrets_never_in_debug_output() {
    let token = jwt(r#"{"sub":"carol"}"#);
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {}", b64(b"dave:hunter2-password"));
    for (name, value, secret) in [
        ("Authorization", bearer.as_str(), token.as_str()),
        ("Authorization", basic.as_str(), "hunter2-password"),
        ("apikey", "my-api-key-987", "my-api-key-987"),
        (
            "X-Credential-Identifier",
            "cred-secret-uuid",
            "cred-secret-uuid",
        ),
    ] {
        let list = [(name, value.as_bytes())];
        let h = headers(&list);
        let r = resolver();
        let (id, target) = r.resolve_list(ip(KONG), "/p?token=qs-secret-1", &h);
        let dbg = format!("{id:?} {target} {r:?}");
        assert!(!id.credentials.is_empty());
        for s in [secret, value, "qs-secret-1"] {
            assert!(!dbg.contains(s), "{s} leaked in {dbg}");
        }
        // The key bytes (0x42) don't appear either, in any common rendering.
        assert!(!dbg.contains("66, 66"), "{dbg}");
        assert!(!dbg.contains("4242"), "{dbg}");
    }
}

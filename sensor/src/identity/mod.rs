//! Who made a request: the client address, the credential (as a keyed
//! [`Fingerprint`], never the secret), the non-secret principal, and Kong's
//! consumer.
//!
//! [`Resolver::resolve`] runs once per HTTP request. It looks at each header
//! once, allocates nothing for a request without credentials, consumer
//! headers or secrets in its target, and hashes with a key loaded once
//! ([`FingerprintKey::load_or_create`]).
//!
//! Where the rules come from:
//! - client address: nginx's realip module, see `client_ip.rs` for the
//!   exact rule (X-Forwarded-For is a de-facto standard; RFC 7239
//!   `Forwarded` is not read: neither nginx's realip nor Kong uses it);
//! - `Authorization`: RFC 7617 (Basic), RFC 6750 (Bearer), RFC 7519 (JWT),
//!   RFC 7616 (Digest), see `credential.rs`;
//! - Kong: the key-auth plugin's `key_names`
//!   (<https://developer.konghq.com/plugins/key-auth/>) and the headers Kong
//!   adds upstream after authentication (`X-Consumer-ID`,
//!   `X-Consumer-Username`, `X-Credential-Identifier`,
//!   `X-Anonymous-Consumer`; same page and the other auth plugins' docs).

mod client_ip;
mod credential;
mod fingerprint;
mod headers;
mod key_file;
mod redact;
#[cfg(test)]
mod tests;

use std::{borrow::Cow, net::IpAddr};

use ipnet::IpNet;

pub use credential::scope;
pub use fingerprint::{Fingerprint, FingerprintKey};
pub use headers::IdentityHeaders;
pub use key_file::KeyError;
pub use redact::{REDACTED, SECRET_PARAM_NAMES, is_secret_name};

/// How to read identities off requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// CIDRs whose requests carry a trustworthy X-Real-IP / X-Forwarded-For
    /// (nginx `set_real_ip_from`, Kong `trusted_ips`). Requests from these
    /// peers are also the only ones whose Kong consumer headers
    /// (`X-Consumer-*`, `X-Credential-Identifier`, `X-Anonymous-Consumer`)
    /// are believed: list the Kong nodes here to read Kong's upstream leg.
    /// Default: empty (the TCP peer is the client; consumer headers ignored).
    pub trusted_proxies: Vec<IpNet>,
    /// Kong key-auth key names (the plugin's `key_names`, default
    /// `["apikey"]`): matched against header names ASCII-case-insensitively
    /// and against percent-decoded query parameter names exactly.
    pub key_names: Vec<String>,
}

impl Default for IdentityConfig {
    /// No trusted proxies; key names `["apikey"]` (Kong's default).
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            key_names: vec!["apikey".to_owned()],
        }
    }
}

/// Who made one request. Holds no secret: credentials only as fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The client address (IPv4-mapped IPv6 shown as IPv4). As nginx's
    /// realip with `real_ip_recursive on`: an untrusted peer is the client;
    /// behind a trusted peer, the right-most X-Forwarded-For entry that is
    /// not trusted; if there is none (no XFF, all trusted, or the walk
    /// stopped at an unparseable entry), a parseable X-Real-IP; else the
    /// last address the walk accepted (the peer if none). Full rule and
    /// accepted address forms: `client_ip.rs`.
    pub client_ip: IpAddr,
    /// A non-secret name for who authenticated, in order of preference:
    /// the Basic user-id, the JWT `sub` (Bearer or bare JWT), the Digest
    /// `username`, else the Kong [`consumer`](Self::consumer). Lossy UTF-8;
    /// may contain any characters, so sinks must escape it.
    pub principal: Option<String>,
    /// Fingerprint of the credential, in order of precedence: the
    /// `Authorization` header, a key-auth header, a key-auth query
    /// parameter, Kong's `X-Credential-Identifier` (trusted peers only).
    /// See [`scope`] for exactly what is hashed.
    pub credential: Option<Fingerprint>,
    /// The Kong consumer (trusted peers only): `X-Consumer-Username`, else
    /// `X-Consumer-ID`; `None` with `X-Anonymous-Consumer: true`.
    pub consumer: Option<String>,
}

/// Reads [`Identity`]s off requests; cheap to share (`&self`).
#[derive(Debug)]
pub struct Resolver {
    trusted_proxies: Vec<IpNet>,
    key_names: Vec<String>,
    key: FingerprintKey,
}

impl Resolver {
    /// Kong key-auth key names (header names the HTTP scan hands over).
    pub fn key_names(&self) -> &[String] {
        &self.key_names
    }

    /// A resolver for `config`, fingerprinting with `key`.
    pub fn new(config: IdentityConfig, key: FingerprintKey) -> Self {
        Self {
            trusted_proxies: config.trusted_proxies,
            key_names: config.key_names,
            key,
        }
    }

    /// Who made one request, and its target with secrets redacted.
    ///
    /// `peer`: the TCP peer address. `target`: the request-target as
    /// received (origin-form `/p?q`, or absolute-form `http://h/p?q`).
    /// `headers`: the request's headers, scanned once by the HTTP analyzer
    /// (values are bytes; non-UTF-8 is tolerated).
    ///
    /// Returns the [`Identity`] and `target` with secret-looking query
    /// values (and absolute-form userinfo) replaced by [`REDACTED`];
    /// `Cow::Borrowed` when nothing changed. See `redact.rs` for the rule.
    pub fn resolve<'t>(
        &self,
        peer: IpAddr,
        target: &'t str,
        seen: &IdentityHeaders<'_>,
    ) -> (Identity, Cow<'t, str>) {
        let peer_trusted = self
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.to_canonical()));

        let client_ip = client_ip::client_ip(
            peer,
            &self.trusted_proxies,
            seen.forwarded_for(),
            seen.real_ip,
        );

        let redacted = redact::redact_target(target, &self.key_names);

        let mut principal = None;
        let mut credential = None;
        if let Some(found) = seen
            .authorization
            .and_then(|v| credential::authorization(&self.key, v))
        {
            principal = found.principal;
            credential = Some(found.fingerprint);
        }
        if credential.is_none() {
            credential = seen.api_key.and_then(|v| credential::api_key(&self.key, v));
        }
        if credential.is_none() {
            credential = redacted
                .api_key
                .and_then(|v| credential::api_key(&self.key, &redact::decode_component(v)));
        }

        let mut consumer = None;
        if peer_trusted {
            if !seen.anonymous {
                consumer = [seen.consumer_username, seen.consumer_id]
                    .into_iter()
                    .flatten()
                    .map(<[u8]>::trim_ascii)
                    .find(|v| !v.is_empty())
                    .map(|v| String::from_utf8_lossy(v).into_owned());
            }
            if credential.is_none() {
                credential = seen
                    .credential_identifier
                    .and_then(|v| credential::kong_credential(&self.key, v));
            }
        }
        if principal.is_none() {
            principal.clone_from(&consumer);
        }

        let identity = Identity {
            client_ip,
            principal,
            credential,
            consumer,
        };
        (identity, redacted.target)
    }
}

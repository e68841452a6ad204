//! Who made a request: the client address, every credential it carried (as
//! keyed [`Fingerprint`]s, never the secret), the non-secret principal with
//! where it came from, and Kong's consumer; and which leg the request
//! travelled ([`Topology`]).
//!
//! Trust is decided by topology, never by what a client says: a flow a
//! Kong node opened (the upstream leg) is the only place Kong's consumer
//! headers and its `X-Real-IP` are believed; `--trusted-proxy` peers (load
//! balancers in front of Kong) are believed only about the client address,
//! in the real-IP header.
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
mod fingerprinter;
mod headers;
mod key_file;
mod principal;
mod redact;
#[cfg(test)]
mod tests;
mod topology;

use std::{borrow::Cow, net::IpAddr};

use ipnet::IpNet;
use smallvec::SmallVec;

use fingerprinter::Fingerprinter;

pub use credential::{PLACEHOLDER_PASSWORDS, scope};
pub use fingerprint::{BadFingerprint, Fingerprint, FingerprintKey};
pub use headers::{FORWARDED_FOR, HeaderNames, IdentityHeaders};
pub use key_file::KeyError;
pub use principal::{Principal, PrincipalSource};
pub use redact::{REDACTED, SECRET_PARAM_NAMES, SECRET_SUFFIXES, is_secret_name};

/// `target` with its secrets replaced by [`REDACTED`] (the table in
/// `redact/mod.rs`: userinfo of any URL, secret-named and key-named
/// parameters, JWTs, matrix parameters); `Cow::Borrowed` when nothing
/// changed. `key_names`: Kong key-auth key names.
pub fn redact<'t>(target: &'t str, key_names: &[String]) -> Cow<'t, str> {
    redact::redact_target(target, key_names).target
}
pub use topology::{Leg, Topology};

/// How to read identities off requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityConfig {
    /// CIDRs whose real-IP header names the client (nginx
    /// `set_real_ip_from`): load balancers and CDNs in front of Kong.
    /// Believed for the client address only, never for consumer headers.
    /// Default: none (the TCP peer is the client).
    pub trusted_proxies: Vec<IpNet>,
    /// The header names read: key-auth's key names and the real-IP header.
    pub names: HeaderNames,
    /// Where Kong is (the leg decision and whose consumer headers count).
    pub topology: Topology,
}

/// The credentials on one request, as fingerprints, in the order found.
pub type Credentials = SmallVec<[Fingerprint; 2]>;

/// Who made one request. Holds no secret: credentials only as fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The client address (IPv4-mapped IPv6 shown as IPv4): on the client
    /// leg the TCP peer, or behind a trusted proxy the address its real-IP
    /// header names (nginx's realip); on the upstream leg the address Kong
    /// names. Full rules: `client_ip.rs`.
    pub client_ip: IpAddr,
    /// The client address is the TCP peer's: a client-leg flow whose peer
    /// is not a trusted proxy, so no header was believed. Only such an
    /// address is a packet source the kernel block may drop.
    pub client_is_peer: bool,
    /// Who the request says or Kong says made it: Kong's consumer (upstream
    /// leg) wins over anything claimed; else the Basic user-id, the JWT
    /// `sub` (unverified), the Digest `username`.
    pub principal: Option<Principal>,
    /// Every credential the request carried, each fingerprinted: the
    /// `Authorization` header, every key-auth header, every key-auth query
    /// parameter, and on the upstream leg Kong's `X-Credential-Identifier`.
    /// Duplicates removed. See [`scope`] for exactly what is hashed.
    pub credentials: Credentials,
    /// The Kong consumer (upstream leg only): `X-Consumer-Username`, else
    /// `X-Consumer-ID`; `None` with `X-Anonymous-Consumer: true`.
    pub consumer: Option<String>,
    /// Kong's `X-Consumer-ID` (upstream leg only; not for an anonymous
    /// consumer).
    pub consumer_id: Option<String>,
    /// The credential Kong authenticated the request with (upstream leg
    /// only: `X-Credential-Identifier`, fingerprinted), also in
    /// `credentials`.
    pub kong_credential: Option<Fingerprint>,
    /// On the client leg: the client sent Kong's consumer headers
    /// (`X-Consumer-ID`, `X-Consumer-Username`, `X-Credential-Identifier`,
    /// `X-Anonymous-Consumer`) itself. Kong's authentication plugins
    /// overwrite or clear them, but a route without one passes them on, so
    /// the upstream leg's copy may be the client's claim (see the join).
    pub claims_consumer: bool,
}

/// Reads [`Identity`]s off requests (`&self`). One per pipeline: its
/// fingerprint cache makes it `Send` but not `Sync`.
#[derive(Debug)]
pub struct Resolver {
    trusted_proxies: Vec<IpNet>,
    /// The names as configured: key names match query parameters exactly.
    names: HeaderNames,
    /// The same names lowercased, for header names.
    header_names: HeaderNames,
    topology: Topology,
    fingerprinter: Fingerprinter,
}

impl Resolver {
    /// A resolver for `config`, fingerprinting with `key`.
    pub fn new(config: IdentityConfig, key: FingerprintKey) -> Self {
        Self {
            trusted_proxies: config.trusted_proxies,
            header_names: config.names.lowercased(),
            names: config.names,
            topology: config.topology,
            fingerprinter: Fingerprinter::new(key),
        }
    }

    /// The header names the HTTP scan hands over, lowercased (as
    /// [`IdentityHeaders::note`] wants them).
    pub fn header_names(&self) -> &HeaderNames {
        &self.header_names
    }

    /// Where Kong is.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Who made one request, and its target with secrets redacted.
    ///
    /// `peer`: the TCP peer address. `leg`: which leg the flow is (from
    /// [`Topology::leg`]). `target`: the request-target as received
    /// (origin-form `/p?q`, or absolute-form `http://h/p?q`). `seen`: the
    /// request's identity headers, scanned once by the HTTP analyzer (values
    /// are bytes; non-UTF-8 is tolerated).
    ///
    /// Returns the [`Identity`] and `target` redacted by [`redact`].
    pub fn resolve<'t>(
        &self,
        peer: IpAddr,
        leg: Leg,
        target: &'t str,
        seen: &IdentityHeaders<'_>,
    ) -> (Identity, Cow<'t, str>) {
        let trusted = |a: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(a));
        let client_ip = match leg {
            Leg::Client => client_ip::client_ip(
                peer,
                &self.trusted_proxies,
                seen.real_ip_header(&self.header_names),
            ),
            Leg::Upstream => {
                client_ip::kong_client_ip(peer, seen.real_ip, seen.forwarded_for(), |a| {
                    trusted(a) || self.topology.is_kong(*a)
                })
            }
        };

        let redacted = redact::redact_target(target, &self.names.key_names);
        let mut credentials = Credentials::new();
        let mut principal = None;
        if let Some(found) = seen
            .authorization
            .and_then(|v| credential::authorization(&self.fingerprinter, v))
        {
            principal = found.principal;
            credentials.push(found.fingerprint);
        }
        // Pushes, not `extend`: SmallVec's extend costs more than the
        // usual nothing it adds.
        for v in &seen.api_keys {
            if let Some(f) = credential::api_key(&self.fingerprinter, v) {
                credentials.push(f);
            }
        }
        for v in &redacted.api_keys {
            if let Some(f) = credential::api_key(&self.fingerprinter, &redact::decode_component(v))
            {
                credentials.push(f);
            }
        }

        let mut consumer = None;
        let mut consumer_id = None;
        let mut kong_credential = None;
        if leg == Leg::Upstream {
            if !seen.anonymous {
                consumer_id = seen
                    .consumer_id
                    .map(|v| crate::text::render(v.trim_ascii(), crate::text::Field::Principal));
                consumer = [seen.consumer_username, seen.consumer_id]
                    .into_iter()
                    .flatten()
                    .find_map(|v| Principal::new(v, PrincipalSource::KongConsumer));
            }
            kong_credential = seen
                .credential_identifier
                .and_then(|v| credential::kong_credential(&self.fingerprinter, v));
            if let Some(f) = kong_credential {
                credentials.push(f);
            }
        }
        dedup(&mut credentials);
        if consumer.is_some() {
            principal.clone_from(&consumer);
        }

        let identity = Identity {
            client_ip,
            client_is_peer: leg == Leg::Client && !trusted(&peer.to_canonical()),
            principal,
            credentials,
            consumer: consumer.map(|c| c.name),
            consumer_id,
            kong_credential,
            claims_consumer: leg == Leg::Client && seen.claims_consumer(),
        };
        (identity, redacted.target)
    }
}

/// Removes repeated fingerprints, keeping the first of each.
fn dedup(credentials: &mut Credentials) {
    let mut i = 0;
    while i < credentials.len() {
        if credentials[..i].contains(&credentials[i]) {
            credentials.remove(i);
        } else {
            i += 1;
        }
    }
}

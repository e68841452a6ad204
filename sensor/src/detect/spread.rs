//! `credential_spread`: one credential used from several client IPs within a
//! sliding window (5 min by default; the reference SIEM slid a 5 min window
//! by 15 s, this one slides with every transaction).
//!
//! Only uses the server did not refuse count (status other than 401/403, or
//! no response seen): a stolen key that works is the threat, and refused
//! guesses are `error_rate`'s business. Client IPs count on the client leg
//! only (on Kong's upstream leg the peer is Kong itself); the upstream leg
//! names the credential's principal, since Kong adds `X-Consumer-Username`
//! there while key-auth's `apikey` is forwarded (`hide_credentials` is off
//! by default, Kong key-auth plugin docs).

use std::net::IpAddr;

use serde::Serialize;
use smallvec::SmallVec;

use super::{
    alert::{Alert, Detector, Evidence, Subject, Window},
    bounded::{BoundedMap, Weighted},
};
use crate::{
    http::Transaction,
    identity::{Fingerprint, Principal, PrincipalSource},
};

/// `credential_spread` settings.
#[derive(Clone, Debug)]
pub struct SpreadConfig {
    /// Distinct client IPs that make an alert.
    pub min_ips: usize,
    /// Sliding window, ns.
    pub window_ns: u64,
}

/// Client IPs remembered per credential; enough to name them in an alert.
const MAX_IPS: usize = 32;

#[derive(Debug, Default)]
struct Credential {
    principal: Option<Principal>,
    /// Client IPs and when each last used the credential (inline for two:
    /// a new credential from one client costs no allocation).
    ips: SmallVec<[(IpAddr, u64); 2]>,
    last_ns: u64,
}

/// Credentials used from fewer IPs go first, then the idlest.
impl Weighted for Credential {
    fn weight(&self) -> u64 {
        (self.ips.len() as u64) << 48 | self.last_ns >> 16
    }
}

/// One credential's spread (the reference's top-50 credentials gauge).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CredentialGauge {
    /// The fingerprint.
    pub credential: Fingerprint,
    /// Its principal and where it came from, when known.
    pub principal: Option<Principal>,
    /// Distinct client IPs within the window, as of its latest use.
    pub ips: u64,
}

/// Credentials in the gauge.
const TOP_CREDENTIALS: usize = 50;

/// The detector.
#[derive(Debug)]
pub struct Spread {
    config: SpreadConfig,
    credentials: BoundedMap<Fingerprint, Credential>,
}

impl Spread {
    /// Empty state for at most `max_credentials` credentials.
    pub fn new(config: SpreadConfig, max_credentials: usize) -> Self {
        Self {
            config,
            credentials: BoundedMap::new(max_credentials),
        }
    }

    /// The credentials used from most IPs, most first (at most 50).
    pub fn top(&self) -> Vec<CredentialGauge> {
        let mut all: Vec<_> = self
            .credentials
            .iter()
            .map(|(fp, c)| CredentialGauge {
                credential: *fp,
                principal: c.principal.clone(),
                ips: c.ips.len() as u64,
            })
            .collect();
        all.sort_by(|a, b| b.ips.cmp(&a.ips).then(a.credential.cmp(&b.credential)));
        all.truncate(TOP_CREDENTIALS);
        all
    }

    /// Credentials tracked now.
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// New thresholds, from the next transaction on; state is kept.
    pub fn set(&mut self, config: SpreadConfig) {
        self.config = config;
    }

    /// Bytes the table holds (a principal and a few IPs each, typically).
    pub fn memory(&self) -> u64 {
        self.credentials.memory(4 * 24 + 32)
    }

    /// Credentials evicted so far.
    pub fn evictions(&self) -> u64 {
        self.credentials.evictions()
    }

    /// Counts the credential of `tx`, if the server accepted the request;
    /// pushes an alert when a new IP brings a credential to `min_ips` or
    /// more IPs. When Kong named the credential it authenticated (upstream
    /// leg), that one counts; otherwise every credential the request
    /// carried counts on its own, so junk in one header cannot hide a
    /// stolen key in another.
    /// A credential already used from `min_ips` IPs that is used again from
    /// one of them goes to `touched`: its alert's episode stays open.
    pub fn transaction(
        &mut self,
        tx: &Transaction,
        out: &mut Vec<Alert>,
        touched: &mut Vec<(Detector, Subject, u64)>,
    ) {
        if matches!(tx.outcome_status(), Some(401 | 403)) {
            return;
        }
        match tx.kong_credential {
            Some(fp) => self.credential(fp, tx, out, touched),
            None => {
                for &fp in &tx.credentials {
                    self.credential(fp, tx, out, touched);
                }
            }
        }
    }

    fn credential(
        &mut self,
        fp: Fingerprint,
        tx: &Transaction,
        out: &mut Vec<Alert>,
        touched: &mut Vec<(Detector, Subject, u64)>,
    ) {
        let cred = self.credentials.entry(fp, Credential::default);
        // Kong's authenticated consumer replaces any claimed name.
        let better = match (&cred.principal, &tx.principal) {
            (None, Some(_)) => true,
            (Some(have), Some(new)) => {
                new.source == PrincipalSource::KongConsumer && have.source != new.source
            }
            _ => false,
        };
        if better {
            cred.principal.clone_from(&tx.principal);
        }
        cred.last_ns = cred.last_ns.max(tx.time_ns);
        let horizon = cred.last_ns.saturating_sub(self.config.window_ns);
        cred.ips.retain(|&mut (_, t)| t >= horizon);
        let full = cred.ips.len() >= MAX_IPS;
        let added = match cred.ips.iter_mut().find(|(ip, _)| *ip == tx.client_ip) {
            Some((_, t)) => {
                *t = (*t).max(tx.time_ns);
                false
            }
            None if !full => {
                cred.ips.push((tx.client_ip, tx.time_ns));
                true
            }
            None => false,
        };
        if cred.ips.len() < self.config.min_ips {
            return;
        }
        if !added {
            touched.push((
                Detector::CredentialSpread,
                Subject::Credential(fp),
                tx.time_ns,
            ));
            return;
        }
        let mut ips: Vec<IpAddr> = cred.ips.iter().map(|(ip, _)| *ip).collect();
        ips.sort();
        let window = Window {
            start: horizon,
            end: cred.last_ns,
        };
        let counts = [("ip_count", ips.len() as u64)].into();
        let evidence = vec![Evidence::from(tx)];
        let subject = Subject::Credential(fp);
        out.push(Alert {
            principal: cred.principal.clone(),
            ips,
            ..Alert::new(
                Detector::CredentialSpread,
                subject,
                tx.time_ns,
                window,
                counts,
                evidence,
            )
        });
    }
}

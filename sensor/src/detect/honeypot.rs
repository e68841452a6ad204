//! `honeypot`: decoy routes no legitimate client calls; any request for one
//! is an alert of high severity.
//!
//! A decoy is a glob over the request's route (`Transaction::route`: the
//! path nginx routes it to, so `/%61dmin`, `//admin` or `/x/../admin` hit
//! an `/admin/**` decoy as they reach the admin route), in `globset`
//! syntax: `/admin.php` (exact), `/.git/**` (a prefix), `/wp-*.php`;
//! prefixed by a host to apply to one virtual host only:
//! `api.example.com/internal/**`.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::alert::{Alert, Detector, Evidence, Subject, Window};
use crate::http::Transaction;

/// A decoy that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("bad decoy route `{route}`")]
pub struct DecoyError {
    route: String,
    source: globset::Error,
}

/// The decoy routes.
#[derive(Debug)]
pub struct Honeypot {
    paths: GlobSet,
    /// Per glob, the host it is limited to.
    hosts: Vec<Option<String>>,
}

impl Honeypot {
    /// Compiles `routes` (see the module docs).
    ///
    /// # Errors
    /// A route that is not a valid glob.
    pub fn new(routes: &[String]) -> Result<Self, DecoyError> {
        let mut builder = GlobSetBuilder::new();
        let mut hosts = Vec::new();
        for route in routes {
            let (host, path) = match route.find('/') {
                Some(0) | None => (None, route.as_str()),
                Some(at) => (Some(route[..at].to_ascii_lowercase()), &route[at..]),
            };
            let glob = Glob::new(path).map_err(|source| DecoyError {
                route: route.clone(),
                source,
            })?;
            builder.add(glob);
            hosts.push(host);
        }
        let paths = builder.build().map_err(|source| DecoyError {
            route: routes.join(", "),
            source,
        })?;
        Ok(Self { paths, hosts })
    }

    /// Pushes an alert if `tx` asks for a decoy.
    pub fn transaction(&self, tx: &Transaction, out: &mut Vec<Alert>) {
        if self.hosts.is_empty() {
            return;
        }
        let path = tx.route.as_str();
        let host = tx.host.as_deref().map(|h| h.split(':').next().unwrap_or(h));
        let hit = self
            .paths
            .matches(path)
            .into_iter()
            .any(|i| match &self.hosts[i] {
                None => true,
                Some(want) => host.is_some_and(|h| h.eq_ignore_ascii_case(want)),
            });
        if hit {
            let window = Window {
                start: tx.time_ns,
                end: tx.time_ns,
            };
            let evidence = vec![Evidence::from(tx)];
            let subject = Subject::Ip(tx.client_ip);
            let counts = [("requests", 1)].into();
            out.push(Alert {
                principal: tx.principal.clone(),
                ..Alert::new(
                    Detector::Honeypot,
                    subject,
                    tx.time_ns,
                    window,
                    counts,
                    evidence,
                )
            });
        }
    }
}

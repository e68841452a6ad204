//! Where alerts go: [`Target`], an Alertmanager's base URL, parsed from the
//! `--alertmanager` flag (and so from the config file's `[alertmanager]
//! urls`, which become that flag).

use std::{fmt, str::FromStr};

use ureq::http::Uri;

/// An Alertmanager: `http://` or `https://`, host, optional port and path
/// prefix (its `--web.route-prefix`); alerts go to `PREFIX/api/v2/alerts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as given, without a trailing `/`.
    base: String,
    /// Whether it is `https://`.
    tls: bool,
}

impl Target {
    /// The URL alerts are posted to.
    pub fn alerts_url(&self) -> String {
        format!("{}/api/v2/alerts", self.base)
    }

    /// Whether the target is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl FromStr for Target {
    type Err = String;

    /// `http://HOST[:PORT][/PREFIX]` or `https://...`; HOST a DNS name, an
    /// IPv4 address or `[IPv6]`.
    ///
    /// # Errors
    /// Not a URL, another scheme, credentials in the URL (they belong in
    /// `--alertmanager-user` and a password file, never on a command line),
    /// a query or a fragment.
    fn from_str(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "`{s}`: expected http://HOST[:PORT][/PREFIX] or https://..."
                ));
            }
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if authority.contains('@') {
            // Not echoed: it may hold a password.
            return Err(
                "no credentials in the URL; use --alertmanager-user and --alertmanager-password-file"
                    .into(),
            );
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("`{s}` names no host"));
        }
        if uri.query().is_some() || s.contains('#') {
            return Err(format!("`{s}`: no query or fragment"));
        }
        Ok(Self {
            base: s.trim_end_matches('/').to_owned(),
            tls,
        })
    }
}

impl fmt::Display for Target {
    /// The URL as given, without a trailing `/` (the `target` of counts
    /// and metrics).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

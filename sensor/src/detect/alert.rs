//! Alerts, their evidence, and suppression of repeats.

use std::{collections::BTreeMap, net::IpAddr};

use serde::Serialize;

use crate::{
    http::{RequestId, Transaction},
    identity::{Fingerprint, Principal},
    text::quote_kv,
};

/// Which detector raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// One client IP over its request budget in a window.
    RequestFlood,
    /// One client IP with an unusual number of errors.
    ErrorRate,
    /// One credential from several client IPs.
    CredentialSpread,
    /// Successes, then a spike of failures, from one IP.
    SuccessThenFailure,
    /// A request for a decoy route.
    Honeypot,
}

impl Detector {
    /// Every detector, in table order.
    pub const ALL: [Detector; 5] = [
        Self::RequestFlood,
        Self::ErrorRate,
        Self::CredentialSpread,
        Self::SuccessThenFailure,
        Self::Honeypot,
    ];

    /// The name in outputs and metrics labels: `request_flood`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestFlood => "request_flood",
            Self::ErrorRate => "error_rate",
            Self::CredentialSpread => "credential_spread",
            Self::SuccessThenFailure => "success_then_failure",
            Self::Honeypot => "honeypot",
        }
    }

    /// How urgent its alerts are: a flood or an error burst is likely
    /// abuse (medium); a shared credential, recon then attack, or a decoy
    /// hit is almost certainly hostile (high).
    pub fn severity(self) -> Severity {
        match self {
            Self::RequestFlood | Self::ErrorRate => Severity::Medium,
            Self::CredentialSpread | Self::SuccessThenFailure | Self::Honeypot => Severity::High,
        }
    }
}

/// How urgent an alert is; mapped to syslog severities by the exporters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Likely abuse.
    Medium,
    /// Almost certainly hostile (decoys, credential theft).
    High,
}

impl Severity {
    /// The name in outputs: `low`, `medium`, `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// What an alert is about: one client IP or one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A client IP.
    Ip(IpAddr),
    /// A credential fingerprint.
    Credential(Fingerprint),
}

/// One request behind an alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    /// Request method.
    pub method: compact_str::CompactString,
    /// Request target, redacted.
    pub path: compact_str::CompactString,
    /// Final status, if a response was seen.
    pub status: Option<u16>,
    /// Kong's request id, when present.
    pub request_id: Option<RequestId>,
}

impl From<&Transaction> for Evidence {
    fn from(tx: &Transaction) -> Self {
        Self {
            method: tx.method.clone(),
            path: tx.path.clone(),
            status: tx.status,
            request_id: tx.request_id.clone(),
        }
    }
}

impl Evidence {
    /// Overwrites this entry with `tx`, reusing its buffers (per-IP evidence
    /// is a ring updated on every request of a busy IP).
    pub fn assign(&mut self, tx: &Transaction) {
        self.method.clone_from(&tx.method);
        self.path.clone_from(&tx.path);
        self.status = tx.status;
        self.request_id.clone_from(&tx.request_id);
    }
}

/// Most evidence entries an alert carries.
pub const MAX_EVIDENCE: usize = 5;

/// The event-time window an alert was raised in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start, RFC 3339.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub start: u64,
    /// End (exclusive), RFC 3339.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub end: u64,
}

/// One alert: a transition of an episode (see [`super::lifecycle`]).
/// Serializes to one JSON object: `time`, `id`, `state`, `episode_start`,
/// `detector`, `severity`, the key (`client_ip`, or `credential` +
/// `principal` + `ips`), `window`, `counts`, `extent`, `evidence`,
/// `suppressed`, `runbook_url` and, from the fleet analyser, `nodes`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Event time of the transition (for `resolved`: the last raise plus
    /// the resolve time), ns since the epoch.
    #[serde(rename = "time", serialize_with = "crate::time::rfc3339")]
    pub time_ns: u64,
    /// The episode's id: 16 hex digits, the same on every transition.
    pub id: String,
    /// Which transition this is.
    pub state: State,
    /// When the episode started (its `firing` time).
    #[serde(rename = "episode_start", serialize_with = "crate::time::rfc3339")]
    pub episode_start_ns: u64,
    /// The detector.
    pub detector: Detector,
    /// Its severity.
    pub severity: Severity,
    /// The client IP, for per-IP detectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// The credential fingerprint, for `credential_spread`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<Fingerprint>,
    /// The non-secret principal and where it came from, when known;
    /// serialized as `principal` and `principal_source`.
    #[serde(flatten)]
    pub principal: Option<Principal>,
    /// The client IPs that used the credential.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// The window the counts cover.
    pub window: Window,
    /// The counts that crossed the threshold, by name.
    pub counts: BTreeMap<&'static str, u64>,
    /// The episode's extent so far (see the lifecycle's table).
    pub extent: u64,
    /// Up to [`MAX_EVIDENCE`] requests behind the alert (none on `resolved`).
    pub evidence: Vec<Evidence>,
    /// Raises folded into the episode since its last transition.
    pub suppressed: u64,
    /// The runbook section for this detector (`--runbook-url` + `#` +
    /// detector).
    pub runbook_url: String,
    /// The sensors (`--publish-node` names) whose requests about the
    /// subject made the alert, sorted: set by the fleet analyser, empty
    /// (and left out) on a sensor's own alerts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// What the sensor did or advises about the subject (`--block`): set
    /// on `firing` and `updated` transitions of the detectors that trigger
    /// a block; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<super::response::Response>,
}

impl std::fmt::Display for Alert {
    /// One line: `DETECTOR SEVERITY STATE id=ID SUBJECT name=count ...
    /// [suppressed=N]`, e.g. `request_flood medium firing id=3f0c9a1e2b4d5c6f
    /// client_ip=10.0.0.1 budget=600 requests=601`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} id={}",
            self.detector.as_str(),
            self.severity.as_str(),
            self.state.as_str(),
            self.id
        )?;
        if let Some(ip) = self.client_ip {
            write!(f, " client_ip={ip}")?;
        }
        if let Some(fp) = self.credential {
            write!(f, " credential={fp}")?;
        }
        if let Some(p) = &self.principal {
            write!(
                f,
                " principal={} principal_source={}",
                quote_kv(&p.name),
                p.source.as_str()
            )?;
        }
        if !self.ips.is_empty() {
            let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
            write!(f, " ips={}", ips.join(","))?;
        }
        for (name, n) in &self.counts {
            write!(f, " {name}={n}")?;
        }
        if self.suppressed > 0 {
            write!(f, " suppressed={}", self.suppressed)?;
        }
        if !self.nodes.is_empty() {
            write!(f, " nodes={}", self.nodes.join(","))?;
        }
        if let Some(r) = &self.response {
            write!(f, " response={}", r.action.as_str())?;
        }
        Ok(())
    }
}

impl Alert {
    /// An alert of `detector` about `subject`, raised at `time_ns` with the
    /// `counts` over `window` that crossed its threshold and the requests
    /// behind it; severity from [`Detector::severity`]. A credential
    /// alert's principal and IPs, or a decoy hit's principal, are set by
    /// the caller.
    pub fn new(
        detector: Detector,
        subject: Subject,
        time_ns: u64,
        window: Window,
        counts: BTreeMap<&'static str, u64>,
        evidence: Vec<Evidence>,
    ) -> Self {
        let (client_ip, credential) = match subject {
            Subject::Ip(ip) => (Some(ip), None),
            Subject::Credential(fp) => (None, Some(fp)),
        };
        Self {
            time_ns,
            id: String::new(),
            state: State::Firing,
            episode_start_ns: time_ns,
            detector,
            severity: detector.severity(),
            client_ip,
            credential,
            principal: None,
            ips: Vec::new(),
            window,
            counts,
            extent: 0,
            evidence,
            suppressed: 0,
            runbook_url: String::new(),
            nodes: Vec::new(),
            response: None,
        }
    }

    /// The alert's subject.
    pub fn subject(&self) -> Option<Subject> {
        match (self.client_ip, self.credential) {
            (_, Some(fp)) => Some(Subject::Credential(fp)),
            (Some(ip), None) => Some(Subject::Ip(ip)),
            (None, None) => None,
        }
    }
}

/// Where an alert is in its episode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The episode's first alert.
    #[default]
    Firing,
    /// The episode grew materially.
    Updated,
    /// The subject has been quiet for the resolve time.
    Resolved,
}

impl State {
    /// The name in outputs: `firing`, `updated`, `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Updated => "updated",
            Self::Resolved => "resolved",
        }
    }
}

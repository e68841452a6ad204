//! Event time: nanoseconds since the Unix epoch, shown as RFC 3339.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serializer;

/// A time in ns since the epoch as a `SystemTime`.
fn from_ns(time_ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(time_ns)
}

/// A time in ns since the epoch, displayed as RFC 3339 with nanoseconds,
/// UTC: `2026-11-21T20:58:01.123456789Z`. The one way every output writes
/// a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339(pub u64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_nanos(from_ns(self.0)).fmt(f)
    }
}

/// Serializes a time in ns since the epoch as [`Rfc3339`]; for
/// `#[serde(serialize_with)]`.
///
/// # Errors
/// Those of the serializer.
pub fn rfc3339<S: Serializer>(time_ns: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(*time_ns))
}

/// [`rfc3339`] for an optional time (`None` serializes as null).
///
/// # Errors
/// Those of the serializer.
pub fn rfc3339_opt<S: Serializer>(time_ns: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match time_ns {
        Some(t) => s.collect_str(&Rfc3339(*t)),
        None => s.serialize_none(),
    }
}

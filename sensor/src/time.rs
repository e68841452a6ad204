//! Event time: nanoseconds since the Unix epoch, shown as RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serializer;

/// A time in ns since the epoch as a `SystemTime`.
pub fn from_ns(time_ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(time_ns)
}

/// Serializes a time in ns since the epoch as RFC 3339 with nanoseconds, UTC
/// (`2026-11-21T20:58:01.123456789Z`); for `#[serde(serialize_with)]`.
///
/// # Errors
/// Those of the serializer.
pub fn rfc3339<S: Serializer>(time_ns: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_nanos(from_ns(*time_ns)))
}

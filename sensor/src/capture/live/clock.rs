//! Kernel time to wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Converts `bpf_ktime_get_ns()` values (CLOCK_MONOTONIC, ns) to nanoseconds
/// since the Unix epoch, using the offset between the two clocks taken when
/// the clock was created. A later wall-clock step (NTP) is not followed, so
/// timestamps stay monotonic within one run.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i128,
}

impl Clock {
    /// Reads both clocks now.
    pub fn now() -> Self {
        let monotonic = monotonic_ns();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            offset_ns: wall - monotonic as i128,
        }
    }

    /// A clock with a fixed offset, in nanoseconds (for tests).
    pub fn with_offset(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// Wall-clock nanoseconds since the Unix epoch, now, on this clock.
    pub fn now_ns(&self) -> u64 {
        self.wall_ns(monotonic_ns())
    }

    /// Wall-clock nanoseconds since the Unix epoch for a CLOCK_MONOTONIC value.
    pub fn wall_ns(&self, monotonic_ns: u64) -> u64 {
        (monotonic_ns as i128 + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `bpf_ktime_get_ns()`.
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_applied_and_clamped() {
        let clock = Clock::with_offset(1_000);
        assert_eq!(clock.wall_ns(5), 1_005);
        assert_eq!(Clock::with_offset(-10).wall_ns(5), 0);
    }

    #[test]
    fn now_tracks_the_wall_clock() {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mapped = Clock::now().wall_ns(monotonic_ns());
        assert!(mapped.abs_diff(wall) < 1_000_000_000, "{mapped} vs {wall}");
    }
}

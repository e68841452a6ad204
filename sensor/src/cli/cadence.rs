//! How often the daemon polls the packet tap's rings, which wake no one.

use std::time::Duration;

/// The poll interval, adapted to the rate records arrive at: as long as
/// [`SLOWEST`] while each poll reads fewer than [`BATCH`] records, halved
/// when a poll reads more, down to [`FASTEST`]. Each wakeup costs the
/// daemon a context switch whatever it reads, so a lightly loaded gateway
/// is polled rarely; a busy one often, in short bursts of the daemon's
/// work between the gateway's.
///
/// The steps are powers of two and a poll keeps its interval while it
/// reads from half a batch to a batch, so at a steady rate the interval
/// settles instead of swinging.
#[derive(Debug)]
pub struct Cadence {
    interval: Duration,
}

/// The shortest interval. Measured in the lab at its peak (about 230
/// records a millisecond; 6 alternated rounds of wrk -c32), the gateway
/// kept 0.98 of its capture-off throughput polling every 1 ms, 0.96 every
/// 2 ms and 0.87 every 5 ms; sleeping 250 or 500 us between polls was no
/// better than 1 ms.
pub const FASTEST: Duration = Duration::from_millis(1);

/// The longest interval: an idle sensor wakes 100 times a second, and
/// traffic that starts waits at most this long (plus the rings' 2 ms
/// holdback) to be read.
pub const SLOWEST: Duration = Duration::from_millis(10);

/// Records a poll should read at most: sized so the lab's peak is polled
/// at [`FASTEST`] (about 80 us of the daemon's CPU a poll).
pub const BATCH: usize = 256;

impl Default for Cadence {
    fn default() -> Self {
        Self { interval: SLOWEST }
    }
}

impl Cadence {
    /// The interval until the next poll, given the records the last one
    /// read.
    pub fn next(&mut self, read: usize) -> Duration {
        if read >= BATCH {
            self.interval = (self.interval / 2).max(FASTEST);
        } else if read < BATCH / 2 {
            self.interval = (self.interval * 2).min(SLOWEST);
        }
        self.interval
    }

    /// The interval now.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::{BATCH, Cadence, FASTEST, SLOWEST};
    use std::time::Duration;

    /// Polls `cadence` `n` times as if records arrived at `per_ms` a
    /// millisecond; returns the intervals, in microseconds.
    fn run(cadence: &mut Cadence, per_ms: f64, n: usize) -> Vec<u128> {
        (0..n)
            .map(|_| {
                let read = (per_ms * cadence.interval().as_secs_f64() * 1e3) as usize;
                cadence.next(read).as_micros()
            })
            .collect()
    }

    #[test]
    fn a_steady_rate_settles_on_the_longest_interval_that_keeps_a_poll_under_a_batch() {
        for (per_ms, settled) in [
            (0.0, SLOWEST),
            (5.0, SLOWEST),
            (40.0, Duration::from_micros(5000)),
            (100.0, Duration::from_micros(2500)),
            (230.0, FASTEST),
            (2000.0, FASTEST),
        ] {
            let mut cadence = Cadence::default();
            let intervals = run(&mut cadence, per_ms, 20);
            // Settled within a few polls, and stays.
            assert!(
                intervals[5..].iter().all(|&i| i == settled.as_micros()),
                "{per_ms}: {intervals:?}"
            );
            let read = (per_ms * settled.as_secs_f64() * 1e3) as usize;
            // Under a batch a poll, unless polled fastest; at least half a
            // batch, unless polled slowest.
            assert!(settled == FASTEST || read < BATCH, "{per_ms}");
            assert!(settled == SLOWEST || read >= BATCH / 2, "{per_ms}");
        }
    }

    #[test]
    fn a_flood_after_idle_is_polled_fastest_within_four_polls_and_idle_slows_again() {
        let mut cadence = Cadence::default();
        assert_eq!(run(&mut cadence, 0.0, 3), [10_000; 3]);
        assert_eq!(run(&mut cadence, 1000.0, 5), [5000, 2500, 1250, 1000, 1000]);
        assert_eq!(
            run(&mut cadence, 0.0, 5),
            [2000, 4000, 8000, 10_000, 10_000]
        );
    }
}

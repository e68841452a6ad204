//! The alert log: one text line per alert, to the daemon's log (`run`) or
//! to a stream (`replay` without `--json`).

use std::io::Write;

use tracing::warn;

use super::interface::Sink;
use crate::{
    detect::{Alert, BlockEvent},
    time::Rfc3339,
};

/// Writes every alert as one line of text: `alert: TIME DETECTOR SEVERITY
/// SUBJECT name=count ...` (see the `Display` of [`Alert`]).
pub enum AlertLog {
    /// A `warn` record of the `tracing` log.
    Tracing,
    /// A line on this stream; a write error turns the sink off.
    Stream(Option<Box<dyn Write>>),
}

impl Sink for AlertLog {
    fn alert(&mut self, alert: &Alert) {
        match self {
            Self::Tracing => warn!("alert: {alert}"),
            Self::Stream(out) => {
                if let Some(w) = out
                    && writeln!(w, "alert: {} {alert}", Rfc3339(alert.time_ns)).is_err()
                {
                    *out = None;
                }
            }
        }
    }

    fn block_event(&mut self, event: &BlockEvent) {
        match self {
            Self::Tracing => warn!("{event}"),
            Self::Stream(out) => {
                if let Some(w) = out
                    && writeln!(w, "{} {event}", Rfc3339(event.time_ns)).is_err()
                {
                    *out = None;
                }
            }
        }
    }

    fn flush(&mut self) {
        if let Self::Stream(Some(w)) = self {
            let _ = w.flush();
        }
    }
}

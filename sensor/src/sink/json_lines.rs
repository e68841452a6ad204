//! JSON lines: one serialized object per line, for files, pipes and stdout
//! (`--transactions`, `--alerts`, and the segment log's writer).

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::Serialize;
use tracing::warn;

use super::{interface::Sink, kong_log};
use crate::{
    detect::{Alert, BlockEvent},
    http::Transaction,
};

/// Which of the pipeline's outputs a [`JsonLines`] sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    /// Every transaction.
    Transactions,
    /// Every transaction, in Kong's log format (see [`super::kong_log`]).
    KongTransactions,
    /// Every alert.
    Alerts,
    /// Whatever its owner writes (the segment log).
    Other,
}

/// How `--transactions` writes a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionFormat {
    /// The sensor's own record ([`Transaction`]'s fields).
    Sensor,
    /// Kong's log serializer's shape ([`super::kong_log`]).
    Kong,
}

impl TransactionFormat {
    /// The records a transactions sink of this format writes.
    pub fn records(self) -> Records {
        match self {
            Self::Sensor => Records::Transactions,
            Self::Kong => Records::KongTransactions,
        }
    }
}

impl crate::choice::Choice for TransactionFormat {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("sensor", Self::Sensor), ("kong", Self::Kong)];
}

/// Bytes a file output buffers between writes. The daemon flushes its
/// sinks after every poll of the rings (every 1 to 10 ms), so this only
/// caps the write calls within a poll: at the lab's peak a poll's lines
/// (about 36 KB) go in one call, not in five of `BufWriter`'s default
/// 8 KiB. Each call costs the kernel a fixed part beside the copy: at the
/// peak, 5,268 write calls a second became 1,487, and the daemon's
/// system time a request fell from 0.68 to 0.49 us.
const WRITE_BUFFER: usize = 64 * 1024;

/// Opens `path` for appending, creating it with `mode` (before the umask;
/// an existing file keeps its mode).
fn open(path: &Path, mode: u32) -> io::Result<BufWriter<File>> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)?;
    Ok(BufWriter::with_capacity(WRITE_BUFFER, file))
}

/// Writes one JSON object per line. A write error is logged once and turns
/// the writer off; it never stops the pipeline.
pub struct JsonLines {
    records: Records,
    name: &'static str,
    out: Option<Box<dyn Write + Send>>,
    /// The file and the mode it is created with, when writing to one
    /// (reopened by [`JsonLines::reopen_file`]).
    file: Option<(PathBuf, u32)>,
    /// The line being written, kept between lines for its capacity: the
    /// serializer's many small writes go to memory, and the writer gets
    /// one whole line (through a `dyn Write` each small write cost a call
    /// and a buffer check, more than the rest of the line's encoding).
    line: Vec<u8>,
}

impl JsonLines {
    /// A writer of `records` named `name` (in its error message) writing
    /// to `out`.
    pub fn new(records: Records, name: &'static str, out: Box<dyn Write + Send>) -> Self {
        Self {
            records,
            name,
            out: Some(out),
            file: None,
            line: Vec::new(),
        }
    }

    /// A buffered writer appending to `path`, created with `mode` (e.g.
    /// `0o640`: transactions and alerts name clients and principals), or
    /// to stdout when `path` is `-` (line buffered, so other writers to
    /// stdout never split a line).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn create(
        records: Records,
        name: &'static str,
        path: &Path,
        mode: u32,
    ) -> io::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::new(records, name, Box::new(io::stdout())));
        }
        let mut lines = Self::new(records, name, Box::new(open(path, mode)?));
        lines.file = Some((path.to_path_buf(), mode));
        Ok(lines)
    }

    /// Flushes and reopens the file at its path (after log rotation moved
    /// it away, on SIGHUP). A failure is logged and turns the writer off.
    pub fn reopen_file(&mut self) {
        self.flush_lines();
        let Some((path, mode)) = &self.file else {
            return;
        };
        match open(path, *mode) {
            Ok(file) => self.out = Some(Box::new(file)),
            Err(e) => {
                warn!(error = %e, sink = self.name, path = %path.display(), "reopen failed; sink disabled");
                self.out = None;
            }
        }
    }

    /// Writes `value` and a newline in one write: a value that fails to
    /// encode leaves nothing, and a line is never split between calls.
    pub fn write(&mut self, value: &impl Serialize) {
        let Some(out) = &mut self.out else { return };
        self.line.clear();
        let result = serde_json::to_writer(&mut self.line, value)
            .map_err(io::Error::from)
            .and_then(|()| {
                self.line.push(b'\n');
                out.write_all(&self.line)
            });
        if let Err(e) = result {
            warn!(error = %e, sink = self.name, "write failed; sink disabled");
            self.out = None;
        }
    }

    /// Flushes buffered lines.
    pub fn flush_lines(&mut self) {
        if let Some(out) = &mut self.out
            && let Err(e) = out.flush()
        {
            warn!(error = %e, sink = self.name, "flush failed; sink disabled");
            self.out = None;
        }
    }
}

impl Sink for JsonLines {
    fn transaction(&mut self, tx: &Transaction) {
        match self.records {
            Records::Transactions => self.write(tx),
            Records::KongTransactions => self.write(&kong_log::record(tx)),
            _ => {}
        }
    }

    fn alert(&mut self, alert: &Alert) {
        if self.records == Records::Alerts {
            self.write(alert);
        }
    }

    /// On the alert file: `{"event":"block"|"unblock",...}` lines.
    fn block_event(&mut self, event: &BlockEvent) {
        if self.records == Records::Alerts {
            self.write(event);
        }
    }

    fn flush(&mut self) {
        self.flush_lines();
    }

    fn reopen(&mut self) {
        self.reopen_file();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        io::{self, Write},
        sync::{Arc, Mutex},
    };

    use super::{JsonLines, Records};

    /// A writer that keeps each buffer it is handed, whole.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_line_reaches_the_writer_in_one_write() {
        let calls = Calls::default();
        let mut lines = JsonLines::new(Records::Other, "test", Box::new(calls.clone()));
        lines.write(&serde_json::json!({"a": "x\"y", "b": [1, 2.5, null]}));
        lines.write(&serde_json::json!({"c": true}));
        let calls = calls.0.lock().unwrap();
        assert_eq!(
            *calls,
            [
                b"{\"a\":\"x\\\"y\",\"b\":[1,2.5,null]}\n".to_vec(),
                b"{\"c\":true}\n".to_vec()
            ]
        );
    }

    #[test]
    fn a_value_that_fails_to_encode_leaves_no_half_line() {
        let calls = Calls::default();
        let mut lines = JsonLines::new(Records::Other, "test", Box::new(calls.clone()));
        lines.write(&serde_json::json!({"ok": 1}));
        // JSON object keys must be strings: this fails after `{`.
        lines.write(&BTreeMap::from([((1, 2), 3)]));
        lines.write(&serde_json::json!({"after": 1}));
        let calls = calls.0.lock().unwrap();
        // The failure turned the sink off; nothing of the failed value
        // was written.
        assert_eq!(*calls, [b"{\"ok\":1}\n".to_vec()]);
    }
}

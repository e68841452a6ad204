//! JSON lines: one serialized object per line, for files, pipes and stdout.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use serde::Serialize;
use tracing::warn;

/// Writes one JSON object per line. A write error is logged once and turns
/// the writer off; it never stops the pipeline.
pub struct JsonLines {
    name: &'static str,
    out: Option<Box<dyn Write + Send>>,
}

impl JsonLines {
    /// A writer named `name` (in its error message) writing to `out`.
    pub fn new(name: &'static str, out: Box<dyn Write + Send>) -> Self {
        Self {
            name,
            out: Some(out),
        }
    }

    /// A buffered writer to `path`, or to stdout when `path` is `-` (line
    /// buffered, so other writers to stdout never split a line).
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(name: &'static str, path: &Path) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(io::stdout())
        } else {
            Box::new(BufWriter::new(File::create(path)?))
        };
        Ok(Self::new(name, out))
    }

    /// Writes `value` and a newline.
    pub fn write(&mut self, value: &impl Serialize) {
        let Some(out) = &mut self.out else { return };
        let result = serde_json::to_writer(&mut *out, value)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        if let Err(e) = result {
            warn!(error = %e, sink = self.name, "write failed; sink disabled");
            self.out = None;
        }
    }

    /// Flushes buffered lines.
    pub fn flush(&mut self) {
        if let Some(out) = &mut self.out
            && let Err(e) = out.flush()
        {
            warn!(error = %e, sink = self.name, "flush failed; sink disabled");
            self.out = None;
        }
    }
}

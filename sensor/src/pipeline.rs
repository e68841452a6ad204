//! The pipeline every source feeds: segments in, sink output out.
//!
//! Today it forwards segments to the optional segment log; TCP reassembly,
//! HTTP transactions and the detectors hang off [`Pipeline::segment`].

use crate::{capture::Segment, sink::SegmentLog};

/// Consumes segments from any source.
pub struct Pipeline {
    segments: u64,
    segment_log: Option<SegmentLog>,
}

impl Pipeline {
    /// A pipeline that writes every segment to `segment_log`, if given.
    pub fn new(segment_log: Option<SegmentLog>) -> Self {
        Self {
            segments: 0,
            segment_log,
        }
    }

    /// Takes one segment.
    pub fn segment(&mut self, segment: &Segment<'_>) {
        self.segments += 1;
        if let Some(log) = &mut self.segment_log {
            log.write(segment);
        }
    }

    /// Segments consumed so far.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Flushes buffered sink output.
    pub fn flush(&mut self) {
        if let Some(log) = &mut self.segment_log {
            log.flush();
        }
    }
}

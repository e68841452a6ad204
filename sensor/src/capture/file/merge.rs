//! Several captures read as one, in timestamp order, as Wireshark's
//! `mergecap` merges them (its default chronological merge): a client-leg
//! capture and an upstream-leg capture of the same period replay like the
//! live tap that saw both.
//!
//! Each file is read on its own thread ([`read_file`]) into a bounded
//! channel of segment batches; the earliest segment at the head of any
//! file goes next (ties: the file named first). Memory stays bounded by the
//! channels, whatever the files' sizes.

use std::{
    collections::VecDeque,
    io,
    path::{Path, PathBuf},
    sync::mpsc::{Receiver, sync_channel},
    thread,
};

use super::{Checksums, FileCounters, FileError, read_file};
use crate::capture::{OwnedSegment, Segment};

/// Segments per batch sent from a reader thread.
const BATCH: usize = 256;
/// Batches buffered per file.
const QUEUE: usize = 16;

/// One file being merged: its channel and its current batch.
struct Head {
    batches: Receiver<Vec<OwnedSegment>>,
    batch: VecDeque<OwnedSegment>,
}

impl Head {
    /// The next segment's time, fetching a batch when the current one is
    /// used up; `None` once the file has ended.
    fn peek_time(&mut self) -> Option<u64> {
        while self.batch.is_empty() {
            self.batch = self.batches.recv().ok()?.into();
        }
        self.batch.front().map(|s| s.time_ns)
    }
}

/// Reads `paths` merged by timestamp, handing every segment to
/// `on_segment`; returns each file's counters, in `paths` order.
///
/// # Errors
/// The first file (in `paths` order) that could not be read; the others
/// are still read to their end.
pub fn read_merged(
    paths: &[PathBuf],
    checksums: Checksums,
    on_segment: &mut dyn FnMut(&Segment<'_>),
) -> Result<Vec<FileCounters>, FileError> {
    let mut heads = Vec::new();
    let mut readers = Vec::new();
    for path in paths {
        let (tx, rx) = sync_channel::<Vec<OwnedSegment>>(QUEUE);
        let path: PathBuf = path.clone();
        readers.push(thread::spawn(move || read_into(&path, checksums, &tx)));
        heads.push(Head {
            batches: rx,
            batch: VecDeque::new(),
        });
    }
    loop {
        let mut next: Option<(u64, usize)> = None;
        for (i, head) in heads.iter_mut().enumerate() {
            if let Some(t) = head.peek_time()
                && next.is_none_or(|(best, _)| t < best)
            {
                next = Some((t, i));
            }
        }
        let Some((_, i)) = next else { break };
        if let Some(segment) = heads[i].batch.pop_front() {
            on_segment(&segment.as_segment());
        }
    }
    readers
        .into_iter()
        .zip(paths)
        .map(|(r, path)| {
            r.join().unwrap_or_else(|_| {
                Err(FileError::Read {
                    path: path.clone(),
                    source: io::Error::other("its reader thread panicked"),
                })
            })
        })
        .collect()
}

/// One reader thread: `path`'s segments to `tx` in batches.
fn read_into(
    path: &Path,
    checksums: Checksums,
    tx: &std::sync::mpsc::SyncSender<Vec<OwnedSegment>>,
) -> Result<FileCounters, FileError> {
    let mut batch = Vec::with_capacity(BATCH);
    let counters = read_file(path, false, checksums, &mut |s| {
        batch.push(OwnedSegment::from(s));
        if batch.len() == BATCH {
            // A closed channel means the merge stopped: nothing to do.
            let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
        }
    })?;
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    Ok(counters)
}

//! A connection's open streams, with what they hold and how many the
//! client reset kept as running totals: the memory budget asks for the
//! first on every chunk and the reset check for the second, and a client
//! holding [`super::MAX_STREAMS`] streams open must not make every chunk
//! walk them.

use std::collections::BTreeMap;

use super::super::transaction::Transaction;

/// One open stream.
#[derive(Debug)]
pub(super) struct Stream {
    pub tx: Transaction,
    /// Client bytes delivered when the request ended (confirmation).
    pub request_end: u64,
    pub final_status: bool,
    /// The client reset it (RST_STREAM): it goes out once the server's TCP
    /// took the request, so a reset flood (CVE-2023-44487) still counts.
    reset: bool,
    /// `tx.heap_bytes()` as last counted in [`Streams::held`].
    heap: usize,
}

impl Stream {
    /// A stream for `tx` whose request is still arriving at `request_end`.
    pub fn new(tx: Transaction, request_end: u64) -> Self {
        Self {
            tx,
            request_end,
            final_status: false,
            reset: false,
            heap: 0,
        }
    }
}

/// Open streams by id, oldest (lowest id) first.
#[derive(Debug, Default)]
pub(super) struct Streams {
    open: BTreeMap<u32, Stream>,
    /// Bytes the open streams' records hold (size and heap).
    held: usize,
    /// Open streams the client reset.
    resets: usize,
}

impl Streams {
    /// Opens stream `id`.
    pub fn insert(&mut self, id: u32, mut s: Stream) {
        s.heap = s.tx.heap_bytes();
        self.held += std::mem::size_of::<Stream>() + s.heap;
        self.resets += usize::from(s.reset);
        if let Some(old) = self.open.insert(id, s) {
            self.forget(&old);
        }
    }

    /// Closes stream `id`.
    pub fn remove(&mut self, id: u32) -> Option<Stream> {
        let s = self.open.remove(&id)?;
        self.forget(&s);
        Some(s)
    }

    /// Closes the oldest stream.
    pub fn pop_first(&mut self) -> Option<Stream> {
        let (_, s) = self.open.pop_first()?;
        self.forget(&s);
        Some(s)
    }

    /// Closes every stream, oldest first.
    pub fn take_all(&mut self) -> Vec<Stream> {
        let all = std::mem::take(&mut self.open);
        (self.held, self.resets) = (0, 0);
        all.into_values().collect()
    }

    /// Stream `id`, to change fields other than its record's strings and
    /// its reset mark.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.open.get_mut(&id)
    }

    /// Changes stream `id` with `change`, which may grow its record.
    pub fn update(&mut self, id: u32, change: impl FnOnce(&mut Stream)) -> bool {
        let Some(s) = self.open.get_mut(&id) else {
            return false;
        };
        change(s);
        let heap = s.tx.heap_bytes();
        self.held = self.held + heap - s.heap;
        s.heap = heap;
        true
    }

    /// Marks stream `id` reset by the client.
    pub fn set_reset(&mut self, id: u32) -> Option<&mut Stream> {
        let s = self.open.get_mut(&id)?;
        self.resets += usize::from(!s.reset);
        s.reset = true;
        Some(s)
    }

    /// Ids of the reset streams `taken` says go out now (none walked when
    /// no stream is reset).
    pub fn reset_ids(&self, taken: impl Fn(&Stream) -> bool) -> Vec<u32> {
        if self.resets == 0 {
            return Vec::new();
        }
        self.open
            .iter()
            .filter(|(_, s)| s.reset && taken(s))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Whether stream `id` is open.
    pub fn contains(&self, id: u32) -> bool {
        self.open.contains_key(&id)
    }

    /// Open streams.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Bytes the open streams hold.
    pub fn held(&self) -> usize {
        self.held
    }

    fn forget(&mut self, s: &Stream) {
        self.held -= std::mem::size_of::<Stream>() + s.heap;
        self.resets -= usize::from(s.reset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a walk of the open streams would count.
    fn walked(s: &Streams) -> (usize, usize) {
        let held = s
            .open
            .values()
            .map(|s| std::mem::size_of::<Stream>() + s.tx.heap_bytes())
            .sum();
        (held, s.open.values().filter(|s| s.reset).count())
    }

    #[test]
    fn running_totals_match_a_walk_after_every_change() {
        let mut s = Streams::default();
        for id in [1, 3, 5] {
            s.insert(id, Stream::new(Transaction::sample("192.0.2.1", 0, 200), 0));
        }
        assert!(s.update(3, |st| st.tx.request_id =
            Some("a".repeat(64).as_str().into())));
        assert!(!s.update(7, |_| {}));
        s.set_reset(5);
        s.set_reset(5);
        assert_eq!((s.held(), s.resets), walked(&s));
        assert_eq!(s.reset_ids(|_| true), [5]);
        s.remove(5);
        s.pop_first();
        assert_eq!((s.held(), s.resets), walked(&s));
        assert_eq!(s.reset_ids(|_| true), Vec::<u32>::new());
        s.take_all();
        assert_eq!((s.held(), s.resets, s.len()), (0, 0, 0));
    }
}

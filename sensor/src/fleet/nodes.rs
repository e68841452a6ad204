//! The nodes behind each subject: which sensors sent the requests of a
//! client IP or a credential, and when last, so a fleet alert names them.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::detect::{
    Alert, Subject,
    bounded::{BoundedMap, Weighted},
};

/// Most distinct node names the analyser accepts (a stream written by a
/// rogue client must not grow the table without end); events of further
/// nodes are refused and counted.
pub const MAX_NODES: usize = 1024;

/// A subject's (node, last request time in ns) pairs: the subjects heard
/// from least recently go first.
impl Weighted for SmallVec<[(u32, u64); 2]> {
    fn weight(&self) -> u64 {
        self.iter().map(|&(_, t)| t).max().unwrap_or(0)
    }
}

/// Node names, and per subject the nodes that sent its requests.
#[derive(Debug)]
pub struct Nodes {
    names: Vec<String>,
    index: HashMap<String, u32>,
    /// Per subject: (node, last request time in ns).
    seen: BoundedMap<Subject, SmallVec<[(u32, u64); 2]>>,
}

impl Nodes {
    /// An empty table remembering at most `subjects` subjects.
    pub fn new(subjects: usize) -> Self {
        Self {
            names: Vec::new(),
            index: HashMap::new(),
            seen: BoundedMap::new(subjects),
        }
    }

    /// The index of node `name`, added if new; `None` past [`MAX_NODES`].
    pub fn intern(&mut self, name: &str) -> Option<u32> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if self.names.len() >= MAX_NODES {
            return None;
        }
        let i = u32::try_from(self.names.len()).ok()?;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        Some(i)
    }

    /// The name of node `i`.
    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", String::as_str)
    }

    /// Node `node` sent a request about `subject` at `time_ns`.
    pub fn saw(&mut self, subject: Subject, node: u32, time_ns: u64) {
        let nodes = self.seen.entry(subject, SmallVec::new);
        match nodes.iter_mut().find(|(n, _)| *n == node) {
            Some((_, t)) => *t = (*t).max(time_ns),
            None => nodes.push((node, time_ns)),
        }
    }

    /// Names on `alert` the nodes that sent requests about its subject
    /// since its window began, sorted.
    pub fn name_on(&self, alert: &mut Alert) {
        let Some(nodes) = alert.subject().and_then(|s| self.seen.get(&s)) else {
            return;
        };
        let since = alert.window.start.min(alert.episode_start_ns);
        let mut names: Vec<String> = nodes
            .iter()
            .filter(|&&(_, t)| t >= since)
            .map(|&(n, _)| self.name(n).to_owned())
            .collect();
        names.sort();
        alert.nodes = names;
    }

    /// Bytes the table holds, estimated.
    pub fn memory(&self) -> u64 {
        self.seen.memory(0)
    }
}

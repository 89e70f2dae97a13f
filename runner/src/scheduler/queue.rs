//! The per-pool run queue, ordered by (priority, job order, task order).

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Where a task stands in its pool's queue: higher priority first, then older job, then
/// older task. A requeued task keeps its key, so it goes back to where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    priority: Reverse<i32>,
    job_seq: u64,
    task_seq: u64,
}

impl QueueKey {
    /// The key of a task of a job with `priority`, created `job_seq`-th, the task `task_seq`-th.
    pub fn new(priority: i32, job_seq: u64, task_seq: u64) -> QueueKey {
        QueueKey { priority: Reverse(priority), job_seq, task_seq }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub task: super::TaskKey,
    pub slots: u32,
    /// Its need per node (a number in the scheduler's shapes), when it has one.
    pub need: Option<u32>,
    /// Nodes it needs at once (multi-instance), or None for one node.
    pub gang: Option<u32>,
}

#[derive(Debug, Default)]
pub(super) struct Queue {
    entries: BTreeMap<QueueKey, Entry>,
}

impl Queue {
    pub fn push(&mut self, key: QueueKey, task: super::TaskKey, slots: u32, need: Option<u32>, gang: Option<u32>) {
        self.entries.insert(key, Entry { task, slots, need, gang });
    }

    pub fn remove(&mut self, key: QueueKey) {
        self.entries.remove(&key);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&QueueKey, &Entry)> {
        self.entries.iter()
    }

    /// The first entry after `cursor` (or the first of all).
    pub fn next_after(&self, cursor: Option<QueueKey>) -> Option<(QueueKey, Entry)> {
        let lower = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries.range((lower, Bound::Unbounded)).next().map(|(k, e)| (*k, *e))
    }
}

//! The per-pool run queue, batched by shape: tasks that ask for the same thing (slots, need,
//! gang size) wait in one ordered list, and the shapes are ordered by their first task. A
//! scheduling pass walks shapes, not tasks, so its cost grows with the number of distinct
//! shapes waiting, never with the number of tasks.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Where a task stands in its pool's queue: higher job priority first, then higher
/// multifactor priority (the scheduler's, see `fair`), then the earlier job deadline (with
/// the deadline order; else 0), then older job, then older task. A requeued task keeps its
/// place (its multifactor priority and deadline are its job's, as now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    priority: Reverse<i32>,
    factor: Reverse<i64>,
    deadline: u64,
    job_seq: u64,
    task_seq: u64,
}

impl QueueKey {
    /// The key of a task of a job with `priority`, created `job_seq`-th, the task `task_seq`-th.
    pub fn new(priority: i32, job_seq: u64, task_seq: u64) -> QueueKey {
        QueueKey { priority: Reverse(priority), factor: Reverse(0), deadline: 0, job_seq, task_seq }
    }

    /// The same place with multifactor priority `factor`.
    pub(super) fn with_factor(self, factor: i64) -> QueueKey {
        QueueKey { factor: Reverse(factor), ..self }
    }

    /// The same place with job deadline `deadline`.
    pub(super) fn with_deadline(self, deadline: u64) -> QueueKey {
        QueueKey { deadline, ..self }
    }

    /// Its multifactor priority.
    pub(super) fn factor(&self) -> i64 {
        self.factor.0
    }

    /// Its job's creation order (the job's number in the scheduler).
    pub fn job(&self) -> u64 {
        self.job_seq
    }
}

/// What a task asks for: its slots, its need per node (a number in the scheduler's needs), its
/// gang size and its time limit. Tasks of one shape place (or fail to place) alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Shape {
    pub slots: u32,
    pub need: Option<u32>,
    /// Nodes it needs at once (multi-instance), or None for one node.
    pub gang: Option<u32>,
    /// Its time limit, if it has one.
    pub limit: Option<super::Time>,
    /// Its owner, when limits on running work are set (a limited owner's tasks wait apart).
    pub owner: Option<super::fair::Owner>,
    /// The nodes barred to it, as a digest (0: none): tasks barred from different nodes do
    /// not place alike.
    pub barred: u64,
}

/// The tasks of one shape.
#[derive(Debug)]
pub(super) struct ShapeQueue {
    pub shape: Shape,
    tasks: BTreeMap<QueueKey, super::TaskKey>,
    /// Fits no node since the pool's capacity gain number `blocked` (see `PoolState::freed`).
    pub blocked: Option<u64>,
}

/// A shape's place in the queue (stable while it has tasks).
pub(super) type Slot = usize;

#[derive(Debug, Default)]
pub(super) struct Queue {
    slots: super::keys::KeyMap<Shape, Slot>,
    shapes: Vec<Option<ShapeQueue>>,
    unused: Vec<Slot>,
    /// Shapes by their first task's key, with that task (so a pass reads no shape's list).
    heads: BTreeMap<QueueKey, (Slot, super::TaskKey)>,
    len: usize,
}

impl Queue {
    pub fn push(&mut self, key: QueueKey, task: super::TaskKey, shape: Shape) {
        let slot = match self.slots.get(&shape) {
            Some(s) => *s,
            None => {
                let q = ShapeQueue { shape, tasks: BTreeMap::new(), blocked: None };
                let s = match self.unused.pop() {
                    Some(s) => {
                        self.shapes[s] = Some(q);
                        s
                    }
                    None => {
                        self.shapes.push(Some(q));
                        self.shapes.len() - 1
                    }
                };
                self.slots.insert(shape, s);
                s
            }
        };
        let q = self.shapes[slot].as_mut().expect("a slot in use");
        let old_head = q.tasks.keys().next().copied();
        if q.tasks.insert(key, task).is_none() {
            self.len += 1;
        }
        if old_head.is_none_or(|h| key < h) {
            if let Some(h) = old_head {
                self.heads.remove(&h);
            }
            self.heads.insert(key, (slot, task));
        }
    }

    /// Removes the task at `key` of `shape`; returns it if it was there.
    pub fn remove(&mut self, key: QueueKey, shape: Shape) -> Option<super::TaskKey> {
        let slot = *self.slots.get(&shape)?;
        let q = self.shapes[slot].as_mut().expect("a slot in use");
        let task = q.tasks.remove(&key)?;
        self.len -= 1;
        if self.heads.get(&key).is_some_and(|(s, _)| *s == slot) {
            self.heads.remove(&key);
            if let Some((next, t)) = q.tasks.iter().next() {
                self.heads.insert(*next, (slot, *t));
            }
        }
        if q.tasks.is_empty() {
            self.shapes[slot] = None;
            self.slots.remove(&shape);
            self.unused.push(slot);
        }
        Some(task)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every queued task.
    pub fn tasks(&self) -> impl Iterator<Item = super::TaskKey> + '_ {
        self.shapes.iter().flatten().flat_map(|q| q.tasks.values().copied())
    }

    /// Shapes whose first task comes after `cursor` (or all), in queue order, with that task.
    pub fn heads_after(
        &self,
        cursor: Option<QueueKey>,
    ) -> impl Iterator<Item = (QueueKey, Slot, &ShapeQueue, super::TaskKey)> + '_ {
        let lower = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        self.heads.range((lower, Bound::Unbounded)).map(|(key, &(slot, task))| {
            let q = self.shapes[slot].as_ref().expect("a head's slot is in use");
            (*key, slot, q, task)
        })
    }

    /// The capacity gain since which `shape` has fit no node, if it is blocked.
    pub fn blocked(&self, shape: Shape) -> Option<u64> {
        let slot = *self.slots.get(&shape)?;
        self.shapes[slot].as_ref()?.blocked
    }

    /// Marks the shape at `slot` as fitting no node since capacity gain `pos` (or not).
    pub fn set_blocked(&mut self, slot: Slot, pos: Option<u64>) {
        if let Some(q) = self.shapes.get_mut(slot).and_then(Option::as_mut) {
            q.blocked = pos;
        }
    }
}

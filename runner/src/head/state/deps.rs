//! The dependency engine: one mechanism under Azure's `dependsOn` and Slurm's `--dependency`.
//!
//! A *waiter* is a task that may not be queued until its conditions hold. A condition (a
//! *group*) watches a set of parent tasks through one *edge* each and keeps counts of how far
//! its parents have got (started, ended satisfying, ended blocking), so its verdict is O(1)
//! from the counts. A waiter combines its groups with "all" (Azure, Slurm `,`) or "any"
//! (Slurm `?`). When a parent moves, only the edges on it are updated: satisfying a parent
//! costs O(its dependents), never a scan of the job or the queue.
//!
//! Edges are reversible (an edge remembers the progress it last counted), so a parent that
//! runs again (a Slurm requeue, an Azure reactivation) takes back what it gave. A parent
//! named before it exists (Azure lets a task depend on a task added later) waits under its
//! name until a task of that name is added.
//!
//! The engine knows tasks only by key and holds nothing durable: the head rebuilds it from
//! the tasks on restart and turns its verdicts into queueing, blocking or failing.

use std::collections::{HashMap, HashSet};

use crate::scheduler::TaskKey;

/// How far a parent has got, as its dependents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Not started, or not added yet.
    Waiting,
    /// Running since this instant (ms).
    Started(u64),
    /// Ended; `ok` when it lets its dependents run; `started` when it started (ms; 0: never).
    Ended { ok: bool, started: u64 },
}

/// What a condition asks of its parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// All end satisfying (Azure `dependsOn`, Slurm `afterok`, `aftercorr`).
    Ok,
    /// All end, one at least blocking (Slurm `afternotok`).
    NotOk,
    /// All end, however (Slurm `afterany`, `singleton`).
    Any,
    /// All start (or end unstarted), and `delay_ms` passes after the last start (Slurm `after`).
    Started { delay_ms: u64 },
}

/// Where a waiter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Waiting,
    Satisfied,
    /// It can no longer be satisfied (unless a parent runs again).
    Never,
}

/// A parent named before it exists: in the job numbered `job`, by id or by number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Name {
    Id(u64, String),
    Number(u64, u64),
}

/// An edge's parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parent {
    Task(TaskKey, Progress),
    /// Named before it exists.
    Missing(Name),
    /// No longer known: counted as ended (`ok` as given), watched by no edge.
    Gone {
        ok: bool,
    },
}

/// One condition as registered.
pub(crate) struct Condition {
    pub kind: Kind,
    pub parents: Vec<Parent>,
}

struct Edge {
    group: u32,
    /// The parent: its key once it exists, its name until then.
    parent: Result<TaskKey, Name>,
    progress: Progress,
}

#[derive(Clone)]
struct Group {
    kind: Kind,
    n: u32,
    started: u32,
    ok: u32,
    failed: u32,
    latest_start: u64,
    verdict: Verdict,
}

struct Waiter {
    generation: u32,
    any: bool,
    groups: Vec<Group>,
    edges: Vec<Edge>,
    satisfied: u32,
    never: u32,
    verdict: Verdict,
}

/// What a parent's move changed for one waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Its verdict is now this.
    Verdict(TaskKey, Verdict),
    /// It waits only for an `after` delay, which runs out then (ms).
    Wake(TaskKey, u64),
}

/// An edge seen from its parent: (waiter, its generation, edge index).
type Link = (TaskKey, u32, u32);

/// The engine's state.
#[derive(Default)]
pub(crate) struct Deps {
    waiters: HashMap<TaskKey, Waiter>,
    on_parent: HashMap<TaskKey, Vec<Link>>,
    missing: HashMap<Name, Vec<Link>>,
    /// Integer-named tasks of jobs that use dependencies: (job number, id as a number) → key.
    numbered: HashMap<(u64, u64), TaskKey>,
    next_generation: u32,
}

impl Group {
    fn count(&mut self, p: Progress, sign: i32) {
        let add = |v: &mut u32| *v = v.wrapping_add_signed(sign);
        match p {
            Progress::Waiting => {}
            Progress::Started(at) => {
                add(&mut self.started);
                self.latest_start = self.latest_start.max(at);
            }
            Progress::Ended { ok, started } => {
                add(&mut self.started);
                add(if ok { &mut self.ok } else { &mut self.failed });
                self.latest_start = self.latest_start.max(started);
            }
        }
    }

    fn judge(&self, now: u64) -> Verdict {
        let ended = self.ok + self.failed;
        match self.kind {
            Kind::Ok if self.failed > 0 => Verdict::Never,
            Kind::Ok if self.ok == self.n => Verdict::Satisfied,
            Kind::NotOk if ended == self.n && self.failed > 0 => Verdict::Satisfied,
            Kind::NotOk if ended == self.n => Verdict::Never,
            Kind::Any if ended == self.n => Verdict::Satisfied,
            Kind::Started { delay_ms } if self.started == self.n && self.latest_start + delay_ms <= now => {
                Verdict::Satisfied
            }
            _ => Verdict::Waiting,
        }
    }
}

impl Waiter {
    fn tally(&mut self, v: Verdict, sign: i32) {
        match v {
            Verdict::Satisfied => self.satisfied = self.satisfied.wrapping_add_signed(sign),
            Verdict::Never => self.never = self.never.wrapping_add_signed(sign),
            Verdict::Waiting => {}
        }
    }

    /// Re-judges group `g`; returns whether the waiter's verdict changed.
    fn rejudge(&mut self, g: usize, now: u64) -> bool {
        let v = self.groups[g].judge(now);
        let old = self.groups[g].verdict;
        if v != old {
            self.tally(old, -1);
            self.tally(v, 1);
            self.groups[g].verdict = v;
        }
        let n = self.groups.len() as u32;
        let verdict = match self.any {
            false if self.never > 0 => Verdict::Never,
            false if self.satisfied == n => Verdict::Satisfied,
            true if self.satisfied > 0 => Verdict::Satisfied,
            true if self.never == n => Verdict::Never,
            _ => Verdict::Waiting,
        };
        let changed = verdict != self.verdict;
        self.verdict = verdict;
        changed
    }
}

impl Deps {
    /// Registers `task`'s conditions (combined with any/all) and judges them now. A
    /// satisfied task is not kept: only waiting and never-satisfied ones are.
    pub fn register(&mut self, task: TaskKey, any: bool, conditions: Vec<Condition>, now: u64) -> Verdict {
        self.remove(task);
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let mut w = Waiter {
            generation,
            any,
            groups: Vec::with_capacity(conditions.len()),
            edges: Vec::new(),
            satisfied: 0,
            never: 0,
            verdict: Verdict::Waiting,
        };
        let mut links = Vec::new();
        for (g, c) in conditions.into_iter().enumerate() {
            let mut group = Group {
                kind: c.kind,
                n: c.parents.len() as u32,
                started: 0,
                ok: 0,
                failed: 0,
                latest_start: 0,
                verdict: Verdict::Waiting,
            };
            for p in c.parents {
                let e = w.edges.len() as u32;
                let (parent, progress) = match p {
                    Parent::Task(key, progress) => (Ok(key), progress),
                    Parent::Missing(name) => (Err(name), Progress::Waiting),
                    Parent::Gone { ok } => {
                        group.count(Progress::Ended { ok, started: 0 }, 1);
                        continue;
                    }
                };
                links.push((parent.clone(), e));
                group.count(progress, 1);
                w.edges.push(Edge { group: g as u32, parent, progress });
            }
            w.groups.push(group);
        }
        let mut verdict = if w.groups.is_empty() { Verdict::Satisfied } else { Verdict::Waiting };
        for g in 0..w.groups.len() {
            w.rejudge(g, now);
            verdict = w.verdict;
        }
        if verdict == Verdict::Satisfied {
            return verdict;
        }
        for (parent, e) in links {
            let link = (task, generation, e);
            match parent {
                Ok(k) => self.on_parent.entry(k).or_default().push(link),
                Err(n) => self.missing.entry(n).or_default().push(link),
            }
        }
        self.waiters.insert(task, w);
        verdict
    }

    /// Where a registered task stands; None when it waits for nothing (never registered,
    /// satisfied, or removed).
    pub fn verdict(&self, task: TaskKey) -> Option<Verdict> {
        self.waiters.get(&task).map(|w| w.verdict)
    }

    /// Where each of a registered task's conditions stands, in the order they were given.
    pub fn condition_verdicts(&self, task: TaskKey) -> Option<Vec<Verdict>> {
        self.waiters.get(&task).map(|w| w.groups.iter().map(|g| g.verdict).collect())
    }

    /// Forgets a waiter (satisfied and queued, completed, deleted). Its edges are dropped
    /// from its parents' lists lazily, the next time those parents move.
    pub fn remove(&mut self, task: TaskKey) {
        self.waiters.remove(&task);
    }

    /// Whether a waiter names `id` (or its number) of job number `job` before it exists.
    pub fn is_named(&self, job: u64, id: &str) -> bool {
        self.missing.contains_key(&Name::Id(job, id.to_owned()))
            || id_number(id).is_some_and(|n| self.missing.contains_key(&Name::Number(job, n)))
    }

    /// Whether anything waits on `parent`.
    pub fn has_dependents(&self, parent: TaskKey) -> bool {
        self.on_parent.contains_key(&parent)
    }

    /// Parent `key` moved to `p`: updates its edges and pushes the waiters whose verdict
    /// changed, with their new verdict, onto `out`, and those now waiting only for an
    /// `after` delay, with when it runs out, onto `wakes`.
    pub fn moved(&mut self, key: TaskKey, p: Progress, now: u64, out: &mut Vec<Change>) {
        let Some(mut links) = self.on_parent.remove(&key) else { return };
        links.retain(|&(task, generation, e)| {
            let Some(w) = self.waiters.get_mut(&task).filter(|w| w.generation == generation) else { return false };
            let edge = &mut w.edges[e as usize];
            if edge.progress != p {
                let g = edge.group as usize;
                let old = std::mem::replace(&mut edge.progress, p);
                w.groups[g].count(old, -1);
                w.groups[g].count(p, 1);
                if w.rejudge(g, now) {
                    out.push(Change::Verdict(task, w.verdict));
                } else if let (Kind::Started { delay_ms }, Verdict::Waiting) = (w.groups[g].kind, w.verdict) {
                    if w.groups[g].started == w.groups[g].n {
                        out.push(Change::Wake(task, w.groups[g].latest_start + delay_ms));
                    }
                }
            }
            true
        });
        if !links.is_empty() {
            self.on_parent.insert(key, links);
        }
    }

    /// Task `key`, just added to job number `job` as `id`, is the parent some waiters named
    /// before it existed: their edges now follow it. Call [`Deps::moved`] next if it is not
    /// waiting. `numbered` says whether to index it by number (its job uses dependencies).
    pub fn added(&mut self, job: u64, id: &str, key: TaskKey, numbered: bool) {
        let number = numbered.then(|| id_number(id)).flatten();
        if let Some(n) = number {
            self.numbered.entry((job, n)).or_insert(key);
        }
        let by_id = self.missing.remove(&Name::Id(job, id.to_owned()));
        let by_number = number.and_then(|n| self.missing.remove(&Name::Number(job, n)));
        for link in by_id.into_iter().flatten().chain(by_number.into_iter().flatten()) {
            let (task, generation, e) = link;
            let Some(w) = self.waiters.get_mut(&task).filter(|w| w.generation == generation) else { continue };
            w.edges[e as usize].parent = Ok(key);
            self.on_parent.entry(key).or_default().push(link);
        }
    }

    /// The task of job number `job` whose id is the integer `n` (leading zeros ignored).
    pub fn numbered(&self, job: u64, n: u64) -> Option<TaskKey> {
        self.numbered.get(&(job, n)).copied()
    }

    /// Forgets the numbering of a deleted job's task.
    pub fn forget_number(&mut self, job: u64, id: &str) {
        if let Some(n) = id_number(id) {
            self.numbered.remove(&(job, n));
        }
    }

    /// Whether adding a task named `id` (or numbered as it) to job number `job` with the
    /// existing parents `parents` would close a cycle: whether a parent already waits, through
    /// any chain, for that name.
    pub fn would_cycle(&self, job: u64, id: &str, parents: &HashSet<TaskKey>) -> bool {
        let mut stack: Vec<TaskKey> = Vec::new();
        let names = [Some(Name::Id(job, id.to_owned())), id_number(id).map(|n| Name::Number(job, n))];
        for name in names.iter().flatten() {
            stack.extend(self.live(self.missing.get(name)));
        }
        let mut seen = HashSet::new();
        while let Some(t) = stack.pop() {
            if parents.contains(&t) {
                return true;
            }
            if seen.insert(t) {
                stack.extend(self.live(self.on_parent.get(&t)));
            }
        }
        false
    }

    fn live<'a>(&'a self, links: Option<&'a Vec<Link>>) -> impl Iterator<Item = TaskKey> + 'a {
        links
            .into_iter()
            .flatten()
            .filter_map(|&(t, generation, _)| self.waiters.get(&t).filter(|w| w.generation == generation).map(|_| t))
    }

    /// Re-judges a waiter at `now` (a delay may have run out); returns its verdict when it
    /// changed.
    pub fn recheck(&mut self, task: TaskKey, now: u64) -> Option<Verdict> {
        let w = self.waiters.get_mut(&task)?;
        let mut changed = false;
        for g in 0..w.groups.len() {
            changed |= w.rejudge(g, now);
        }
        changed.then_some(w.verdict)
    }

    /// When a waiting task's `after` delay runs out, if it waits for one that has begun.
    pub fn wake_at(&self, task: TaskKey, now: u64) -> Option<u64> {
        let w = self.waiters.get(&task)?;
        w.groups
            .iter()
            .filter_map(|g| match g.kind {
                Kind::Started { delay_ms } if g.started == g.n => Some(g.latest_start + delay_ms),
                _ => None,
            })
            .filter(|at| *at > now)
            .min()
    }

    /// The parent that keeps a waiter from running: for a never-satisfied one, a parent that
    /// ended blocking; else one that has not ended (`Err` with its name when it does not
    /// exist yet). None when there is no such edge.
    pub fn culprit(&self, task: TaskKey) -> Option<Result<TaskKey, Name>> {
        let w = self.waiters.get(&task)?;
        let blocking = |e: &&Edge| matches!(e.progress, Progress::Ended { ok: false, .. });
        let pending = |e: &&Edge| !matches!(e.progress, Progress::Ended { .. });
        let edge = match w.verdict {
            Verdict::Never => w.edges.iter().find(blocking),
            _ => w.edges.iter().find(pending),
        }?;
        Some(edge.parent.clone())
    }

    /// How many of a waiter's parents have not ended, and how many it has.
    pub fn open_parents(&self, task: TaskKey) -> Option<(usize, usize)> {
        let w = self.waiters.get(&task)?;
        let open = w.edges.iter().filter(|e| !matches!(e.progress, Progress::Ended { .. })).count();
        Some((open, w.edges.len()))
    }
}

/// A task id as an integer (Azure's ranges ignore leading zeros), when it is all digits.
pub(crate) fn id_number(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDED_OK: Progress = Progress::Ended { ok: true, started: 1 };
    const ENDED_BAD: Progress = Progress::Ended { ok: false, started: 1 };

    fn on(kind: Kind, parents: &[TaskKey]) -> Condition {
        Condition { kind, parents: parents.iter().map(|p| Parent::Task(*p, Progress::Waiting)).collect() }
    }

    fn moved(d: &mut Deps, key: TaskKey, p: Progress) -> Vec<(TaskKey, Verdict)> {
        let mut out = Vec::new();
        d.moved(key, p, 1_000, &mut out);
        out.into_iter()
            .map(|c| match c {
                Change::Verdict(t, v) => (t, v),
                Change::Wake(..) => panic!("unexpected {c:?}"),
            })
            .collect()
    }

    #[test]
    fn all_parents_must_satisfy_and_one_block_is_never() {
        let mut d = Deps::default();
        assert_eq!(d.register(10, false, vec![on(Kind::Ok, &[1, 2])], 0), Verdict::Waiting);
        assert!(moved(&mut d, 1, ENDED_OK).is_empty());
        assert_eq!(d.open_parents(10), Some((1, 2)));
        assert_eq!(moved(&mut d, 2, ENDED_OK), vec![(10, Verdict::Satisfied)]);
        d.remove(10);
        assert_eq!(d.register(11, false, vec![on(Kind::Ok, &[3, 4])], 0), Verdict::Waiting);
        assert_eq!(moved(&mut d, 3, ENDED_BAD), vec![(11, Verdict::Never)]);
        assert_eq!(d.culprit(11), Some(Ok(3)));
        // The parent runs again and succeeds: the block is taken back.
        assert_eq!(moved(&mut d, 3, Progress::Waiting), vec![(11, Verdict::Waiting)]);
        assert!(moved(&mut d, 3, ENDED_OK).is_empty());
        assert_eq!(moved(&mut d, 4, ENDED_OK), vec![(11, Verdict::Satisfied)]);
    }

    #[test]
    fn slurm_kinds_and_any() {
        let mut d = Deps::default();
        d.register(20, false, vec![on(Kind::NotOk, &[1])], 0);
        d.register(21, false, vec![on(Kind::Any, &[1])], 0);
        d.register(22, true, vec![on(Kind::Ok, &[1]), on(Kind::Ok, &[2])], 0);
        d.register(23, false, vec![on(Kind::NotOk, &[2])], 0);
        let mut out = moved(&mut d, 1, ENDED_BAD);
        out.sort_unstable_by_key(|x| x.0);
        assert_eq!(out, vec![(20, Verdict::Satisfied), (21, Verdict::Satisfied)]);
        assert_eq!(d.verdict(22), Some(Verdict::Waiting), "one of two alternatives failed");
        let mut out = moved(&mut d, 2, ENDED_OK);
        out.sort_unstable_by_key(|x| x.0);
        assert_eq!(out, vec![(22, Verdict::Satisfied), (23, Verdict::Never)]);
    }

    #[test]
    fn after_waits_for_starts_and_the_delay() {
        let mut d = Deps::default();
        d.register(30, false, vec![on(Kind::Started { delay_ms: 500 }, &[1, 2])], 0);
        let mut out = Vec::new();
        d.moved(1, Progress::Started(100), 100, &mut out);
        assert!(out.is_empty());
        d.moved(2, Progress::Ended { ok: false, started: 0 }, 200, &mut out);
        assert_eq!(out, vec![Change::Wake(30, 600)]);
        assert_eq!(d.wake_at(30, 200), Some(600));
        assert_eq!(d.recheck(30, 599), None);
        assert_eq!(d.recheck(30, 600), Some(Verdict::Satisfied));
    }

    #[test]
    fn parents_named_before_they_exist() {
        let mut d = Deps::default();
        let c = Condition {
            kind: Kind::Ok,
            parents: vec![Parent::Missing(Name::Id(7, "a".into())), Parent::Missing(Name::Number(7, 5))],
        };
        assert_eq!(d.register(40, false, vec![c], 0), Verdict::Waiting);
        assert_eq!(d.culprit(40), Some(Err(Name::Id(7, "a".into()))));
        // Task 40 waits for "a": adding "a" as a dependent of 40 would be a cycle.
        assert!(d.would_cycle(7, "a", &HashSet::from([40])));
        assert!(!d.would_cycle(7, "b", &HashSet::from([40])));
        assert!(!d.would_cycle(8, "a", &HashSet::from([40])), "other jobs' names are apart");
        d.added(7, "a", 1, true);
        d.added(7, "005", 2, true);
        assert_eq!(d.numbered(7, 5), Some(2));
        assert!(moved(&mut d, 1, ENDED_OK).is_empty());
        assert_eq!(moved(&mut d, 2, ENDED_OK), vec![(40, Verdict::Satisfied)]);
    }

    #[test]
    fn a_re_registered_waiter_ignores_its_old_edges() {
        let mut d = Deps::default();
        d.register(50, false, vec![on(Kind::Ok, &[1])], 0);
        d.register(50, false, vec![on(Kind::Ok, &[2])], 0);
        assert!(moved(&mut d, 1, ENDED_BAD).is_empty(), "the old edge is gone");
        assert_eq!(moved(&mut d, 2, ENDED_OK), vec![(50, Verdict::Satisfied)]);
        assert!(!d.has_dependents(1), "dead links are dropped when their parent moves");
    }

    #[test]
    fn no_conditions_and_satisfied_parents_are_satisfied_at_once() {
        let mut d = Deps::default();
        assert_eq!(d.register(60, false, Vec::new(), 0), Verdict::Satisfied);
        let c = Condition { kind: Kind::Ok, parents: vec![Parent::Task(1, ENDED_OK)] };
        assert_eq!(d.register(61, false, vec![c], 0), Verdict::Satisfied);
        assert_eq!(d.verdict(61), None, "nothing is kept for it");
        assert!(!d.has_dependents(1));
    }

    #[test]
    fn ids_as_numbers() {
        assert_eq!(id_number("007"), Some(7));
        assert_eq!(id_number("0"), Some(0));
        for s in ["", "7a", "-7", "+7", " 7"] {
            assert_eq!(id_number(s), None, "{s:?}");
        }
    }
}

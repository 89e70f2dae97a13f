//! The scheduler core: a sans-I/O state machine, events in, decisions out.
//!
//! It knows pools (slots per node, fill type), nodes (free slots, and what of their cores,
//! memory and GPUs is in no live allocation), the queue of runnable tasks, and what every
//! running task holds on each node; it never touches sockets, files or clocks. The head feeds it
//! events and carries out the [`Decision`]s; tests and the benchmark drive it directly.
//!
//! Resources: a task asks for slots (Azure's `taskSlotsPerNode` count) and, optionally, a
//! [`Need`] per node (CPUs, memory, GPUs, or the whole node). The scheduler picks the concrete
//! cores, memory and GPUs ([`gangway_topology::alloc::pick`]) and keeps them in the node's
//! holdings until the task releases that node: no core or GPU is in two live allocations and
//! memory is never over-committed. A multi-instance task without a need takes whole idle nodes.
//!
//! Policy: within a pool, tasks run in order of job priority (higher first), then job
//! creation order, then task submission order. Tasks of the same shape (slots, need, gang
//! size) are one queue entry, and a shape that fits no node right now does not hold up other
//! shapes behind it; the look-past is bounded ([`MAX_LOOKAHEAD`] shapes), and so is the
//! number of nodes a need is tried on ([`MAX_PROBES`]). A shape that found no node is not
//! searched again until a node gains capacity, and then only on that node, so a pass costs
//! O(decisions × (log nodes + node size) + shapes looked past), never a scan of the queue.
//!
//! Time: the clock is data ([`Scheduler::advance`]). A queued task may carry a time limit and
//! what a running task holds carries its expected end; with EASY (or conservative)
//! backfilling, the first task (or first N) that cannot start gets a reservation
//! ([`reserve`]) that later tasks may not delay.

mod fabric;
pub mod fair;
mod keys;
mod place;
mod queue;
mod reserve;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use fair::{Factors, Fair, JobFacts, LimitReason, Owner};
use gangway_topology::alloc::{Grant, Need, NodeFree, NodeInventory};
use keys::KeyMap;
use place::{Found, Room};
pub use queue::QueueKey;
use queue::{Queue, Shape};
use reserve::Reservation;

/// A pool, as the scheduler numbers it.
pub type PoolKey = u32;
/// A node, as the scheduler numbers it.
pub type NodeKey = u32;
/// A task, as the scheduler numbers it (unique for the head's lifetime).
pub type TaskKey = u64;
/// An instant, in milliseconds (on whatever epoch the caller keeps: Unix time live, the
/// trace's in the simulator). Time limits are durations in the same unit.
pub type Time = u64;

/// How a pool orders its queue against what fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfill {
    /// Strict order: the first task that cannot start stops the pass.
    Fcfs,
    /// Later tasks start whenever they fit, with no reservation (they may starve a large one).
    FirstFit,
    /// EASY: the first task that cannot start gets a reservation; later tasks start only if
    /// they cannot delay it.
    Easy,
    /// Conservative: the first N tasks that cannot start (at most [`MAX_RESERVATIONS`]) each
    /// get a reservation; later tasks start only if they delay none of them.
    Conservative(u32),
}

/// The most reservations a conservative pool keeps.
pub const MAX_RESERVATIONS: u32 = 64;
/// The reservations of a conservative pool that names no number.
pub const DEFAULT_RESERVATIONS: u32 = 8;

impl Backfill {
    /// How many tasks that cannot start get a reservation.
    pub fn reservations(self) -> usize {
        match self {
            Backfill::Fcfs | Backfill::FirstFit => 0,
            Backfill::Easy => 1,
            Backfill::Conservative(n) => n.clamp(1, MAX_RESERVATIONS) as usize,
        }
    }
}

/// A pool's scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// What later tasks may do when one cannot start.
    pub backfill: Backfill,
    /// How many shapes a pass looks at past the first that cannot start (Slurm's
    /// `bf_max_job_test`).
    pub max_examined: usize,
    /// How jobs of equal priority are ordered.
    pub order: Order,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { backfill: Backfill::Easy, max_examined: MAX_LOOKAHEAD, order: Order::Deadline(Deadline::DEFAULT) }
    }
}

impl Policy {
    /// `backfill` over jobs in submission order, looking at every shape: the classic
    /// algorithms (the simulator's reference policies).
    pub fn classic(backfill: Backfill) -> Policy {
        Policy { backfill, max_examined: usize::MAX, order: Order::Submit }
    }
}

/// How a pool orders jobs of equal job and multifactor priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Submission order.
    Submit,
    /// Earliest deadline first: a job's deadline is when it became eligible plus
    /// `min(stretch × its time limit × its CPUs^size_exponent, max_delay)`, so short and
    /// narrow jobs go first while no job is passed by any job that became eligible more than
    /// `max_delay` after it (a job without a limit is allowed `max_delay`).
    Deadline(Deadline),
}

/// The deadline order's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub stretch: u32,
    /// The exponent of a job's CPUs, in thousandths.
    pub size_exponent_milli: u32,
    pub max_delay: Time,
}

impl Deadline {
    /// The measured default (`gangway sim`, see ARCHITECTURE.md): stretch 16, CPUs^0.5,
    /// at most 400,000 s (about 4.6 days) of delay.
    pub const DEFAULT: Deadline = Deadline { stretch: 16, size_exponent_milli: 500, max_delay: 400_000_000 };

    /// The deadline of a job that became eligible at `eligible`, limited to `limit`, on `cpus`.
    fn of(&self, eligible: Time, limit: Option<Time>, cpus: u32) -> u64 {
        let delay = match limit {
            Some(l) => {
                let size = f64::from(cpus.max(1)).powf(f64::from(self.size_exponent_milli) / 1000.0);
                (f64::from(self.stretch) * l as f64 * size).min(self.max_delay as f64) as Time
            }
            None => self.max_delay,
        };
        eligible.saturating_add(delay)
    }
}

/// Where and when a waiting task is planned to start (its reservation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The instant.
    pub start: Time,
    /// Its nodes.
    pub nodes: Vec<NodeKey>,
}

/// How a pool places tasks on nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The node with the most free slots (or, for a need, the most free cores).
    Spread,
    /// The node with the fewest free slots (or cores) that still fits.
    Pack,
}

/// What a task still holds on a node when it comes back: its slots and its grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The task.
    pub task: TaskKey,
    /// Its slots there.
    pub slots: u32,
    /// Its cores, memory and GPUs there.
    pub grant: Grant,
    /// When its time limit ends it (None: no limit).
    pub end: Option<Time>,
    /// Whose it is (its usage is charged there, and counts against the owner's limits).
    pub owner: Owner,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A pool exists.
    PoolAdded { pool: PoolKey, slots_per_node: u32, fill: Fill, policy: Policy },
    /// A pool is gone (it has no nodes).
    PoolRemoved { pool: PoolKey },
    /// A node joined (or came back) with what it has and what the tasks it still runs hold;
    /// `place` is where the fabric (if any) has it.
    NodeUp {
        node: NodeKey,
        pool: PoolKey,
        inventory: Arc<NodeInventory>,
        held: Vec<Held>,
        schedulable: bool,
        place: Option<u32>,
    },
    /// A node went away; its tasks are the head's business (and what they held is forgotten).
    NodeDown { node: NodeKey },
    /// A node's scheduling state changed.
    NodeSchedulable { node: NodeKey, schedulable: bool },
    /// A task of a job with `job`'s facts became runnable: `slots` and `need` on one node, or
    /// (with `gang`) on that many nodes at once (whole idle nodes when it has no need), for at
    /// most `limit` once started.
    TaskQueued {
        task: TaskKey,
        pool: PoolKey,
        order: QueueKey,
        slots: u32,
        need: Option<Need>,
        gang: Option<u32>,
        limit: Option<Time>,
        job: JobFacts,
    },
    /// A queued task will not run after all (terminated, job deleted).
    TaskWithdrawn { task: TaskKey },
    /// Queued `task` may not be placed on `node` (its job's preparation failed there), for
    /// as long as it stays queued: send it again with each `TaskQueued`.
    TaskBarred { task: TaskKey, node: NodeKey },
    /// A running task gave back what it held on `node` (a second release is a no-op).
    TaskReleased { task: TaskKey, node: NodeKey },
}

/// What the head must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start `task` on `node` (its slots and `grant` are now taken).
    Start { task: TaskKey, node: NodeKey, grant: Grant },
    /// Start one instance of `task` on each of `nodes`, in instance order (each node's slots
    /// and grant are taken).
    StartGang { task: TaskKey, nodes: Vec<(NodeKey, Grant)> },
}

impl Event {
    /// Node `node` of `pool` joins, schedulable, running nothing; `place` is where the fabric
    /// has it.
    pub fn idle_node(node: NodeKey, pool: PoolKey, inventory: Arc<NodeInventory>, place: Option<u32>) -> Event {
        Event::NodeUp { node, pool, inventory, held: Vec::new(), schedulable: true, place }
    }
}

impl Decision {
    /// The task and the nodes it starts on (in instance order), grants left out.
    pub fn placement(self) -> (TaskKey, Vec<NodeKey>) {
        match self {
            Decision::Start { task, node, .. } => (task, vec![node]),
            Decision::StartGang { task, nodes } => (task, nodes.into_iter().map(|(k, _)| k).collect()),
        }
    }
}

/// How far past an unplaceable task a pass looks for smaller ones.
pub const MAX_LOOKAHEAD: usize = 64;

/// How many nodes a task with a need is tried on before it counts as not fitting now.
pub const MAX_PROBES: usize = 64;

/// Waiting `task` (its entry `q`) left the queue of pool `p` (it starts, is withdrawn, or its
/// pool is gone): it is no longer overdue-to-be, nor one of its job's waiting tasks.
fn forget_waiting(
    waiting: &mut KeyMap<u64, WaitingJob>,
    overdue: &mut BTreeSet<(Time, TaskKey)>,
    p: Option<&PoolState>,
    task: TaskKey,
    q: &Waiting,
) {
    if let Some(by) = p.and_then(|p| overdue_at(p, q.eligible)) {
        overdue.remove(&(by, task));
    }
    let job = q.order.job();
    if let Some(w) = waiting.get_mut(&job) {
        w.tasks -= 1;
        if w.tasks == 0 {
            waiting.remove(&job);
        }
    }
}

/// Moves waiting `task` (its entry `q`) to `order` in its pool's queue; the pool is due a pass.
fn move_in_queue(
    pools: &mut KeyMap<PoolKey, PoolState>,
    dirty: &mut Vec<PoolKey>,
    task: TaskKey,
    q: &mut Waiting,
    order: QueueKey,
) {
    let Some(p) = pools.get_mut(&q.pool) else { return };
    p.queue.remove(q.order, q.shape);
    q.order = order;
    p.queue.push(order, task, q.shape);
    if !dirty.contains(&q.pool) {
        dirty.push(q.pool);
    }
}

/// When a task of pool `p` that became eligible at `eligible` is overdue, if `p` orders by
/// deadline.
fn overdue_at(p: &PoolState, eligible: Time) -> Option<Time> {
    match p.policy.order {
        Order::Deadline(d) => Some(eligible.saturating_add(d.max_delay)),
        Order::Submit => None,
    }
}

/// The multifactor priority of an overdue task: above any that weights can give.
const OVERDUE: i64 = i64::MAX / 2;

/// How many capacity gains a pool remembers (see `PoolState::freed`).
const FREED_LOG: usize = 64;

/// How many freed nodes a blocked shape is tried on before a full search is cheaper.
const FRESH_TRIES: u64 = 16;

#[derive(Debug)]
struct PoolState {
    slots_per_node: u32,
    fill: Fill,
    policy: Policy,
    /// The expected ends of what tasks hold on its nodes, for those with a limit.
    ends: BTreeSet<(Time, TaskKey, NodeKey)>,
    queue: Queue,
    /// (free slots, node) for schedulable nodes with at least one free slot.
    free: BTreeSet<(u32, NodeKey)>,
    /// The same nodes by free GPUs, then free cores: `by_gpus[g]` holds (free cores, node)
    /// of those with exactly `g` GPUs free, so a need of `c` cores and `g` GPUs looks only at
    /// nodes that have both (a few buckets, each a range), and an impossible one is ruled
    /// out by the buckets' largest entries.
    by_gpus: Vec<BTreeSet<(u32, NodeKey)>>,
    /// The most threads per core of its nodes (a need's fewest possible cores).
    max_threads: u32,
    /// The most CPUs and GPUs of its nodes (what a whole node counts as in limits and size).
    max_cpus: u32,
    max_gpus: u32,
    /// Its nodes' free resources on the fabric, for gangs.
    fabric: fabric::PoolFabric,
    /// Its nodes the fabric does not name (gangs then go by node order).
    unplaced: u32,
    /// Nodes that gained capacity (a release, a node up or enabled), the oldest first;
    /// `freed[i]` is gain number `freed_base + i`. A shape that fits no node is marked with
    /// the gain it was tried at: until a node gains capacity nothing can change that, and
    /// after, only the nodes freed since need trying (for tasks on one node).
    freed: std::collections::VecDeque<NodeKey>,
    freed_base: u64,
}

/// Where a node stands in its pool's indexes: (free slots, free cores, free GPUs), or None
/// when it is in none (not schedulable, or no slot free).
type IndexKey = Option<(u32, u32, u32)>;

impl PoolState {
    /// `node` gained capacity.
    fn note_freed(&mut self, node: NodeKey) {
        self.freed.push_back(node);
        if self.freed.len() > FREED_LOG {
            self.freed.pop_front();
            self.freed_base += 1;
        }
    }

    fn freed_end(&self) -> u64 {
        self.freed_base + self.freed.len() as u64
    }

    /// The nodes freed since gain `pos` (a node may come twice), if the log still has them all.
    fn freed_since(&self, pos: u64) -> Option<impl Iterator<Item = NodeKey> + '_> {
        let from = pos.checked_sub(self.freed_base)? as usize;
        Some(self.freed.range(from.min(self.freed.len())..).copied())
    }

    /// Moves `node` in the indexes from `before` to `after`, touching only the sets whose
    /// entry changes (a slots-only task moves it in one set, not three).
    fn reindex(&mut self, node: NodeKey, before: IndexKey, after: IndexKey) {
        let slots = |k: IndexKey| k.map(|(s, _, _)| s);
        if slots(before) != slots(after) {
            if let Some(s) = slots(before) {
                self.free.remove(&(s, node));
            }
            if let Some(s) = slots(after) {
                self.free.insert((s, node));
            }
        }
        let shape = |k: IndexKey| k.map(|(_, c, g)| (c, g));
        if shape(before) != shape(after) {
            if let Some((c, g)) = shape(before) {
                self.by_gpus[g as usize].remove(&(c, node));
            }
            if let Some((c, g)) = shape(after) {
                if self.by_gpus.len() <= g as usize {
                    self.by_gpus.resize_with(g as usize + 1, BTreeSet::new);
                }
                self.by_gpus[g as usize].insert((c, node));
            }
        }
    }
}

impl NodeState {
    /// Whether `task` may not be placed here: it still holds something here, or the node is
    /// barred to it (its job's preparation failed here).
    fn excludes(&self, task: TaskKey) -> bool {
        self.held.contains_key(&task) || self.barred.contains(&task)
    }

    fn index_key(&self) -> IndexKey {
        (self.schedulable && self.free > 0).then(|| (self.free, self.avail.free_cores(), self.avail.free_gpus()))
    }
}

#[derive(Debug)]
struct NodeState {
    pool: PoolKey,
    free: u32,
    schedulable: bool,
    /// Its node id in the fabric.
    place: Option<u32>,
    inventory: Arc<NodeInventory>,
    avail: NodeFree,
    /// What each task running here holds.
    held: KeyMap<TaskKey, Holding>,
    /// Queued tasks that may not be placed here (usually none).
    barred: Vec<TaskKey>,
}

/// What a running task holds on a node.
#[derive(Debug, Clone)]
struct Holding {
    slots: u32,
    grant: Grant,
    end: Option<Time>,
}

/// A job with waiting tasks (kept while priorities weigh anything, or its pool orders by
/// deadline): what its place is made of, and how many of its tasks wait.
#[derive(Debug)]
struct WaitingJob {
    facts: JobFacts,
    /// CPUs its (first) task asks for, on all its nodes: its size.
    cpus: u32,
    factors: Factors,
    /// Its deadline (0 in a pool that orders by submission).
    deadline: u64,
    tasks: u32,
}

/// A task in a queue.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    pool: PoolKey,
    order: QueueKey,
    shape: Shape,
    owner: Owner,
    eligible: Time,
}

/// The scheduler core.
#[derive(Debug, Default)]
pub struct Scheduler {
    pools: KeyMap<PoolKey, PoolState>,
    nodes: KeyMap<NodeKey, NodeState>,
    queued: KeyMap<TaskKey, Waiting>,
    /// Nodes each queued task may not be placed on (see [`Event::TaskBarred`]).
    barred: KeyMap<TaskKey, Vec<NodeKey>>,
    /// Jobs with waiting tasks, by their number (`QueueKey::job`), while priorities weigh
    /// anything.
    waiting: KeyMap<u64, WaitingJob>,
    /// Usage, fair share and limits.
    fair: Fair,
    /// CPUs of every node known.
    cluster_cpus: u32,
    /// Waiting tasks of pools ordered by deadline, by when they may wait no longer (eligible
    /// plus the order's `max_delay`), not yet moved to the front.
    overdue: BTreeSet<(Time, TaskKey)>,
    /// Needs by shape: a queue entry names its need by number, so it stays small and `Copy`.
    needs: Vec<Need>,
    need_ids: HashMap<Need, u32>,
    /// The switch tree gangs are placed on (fewest switches between their nodes).
    fabric: Option<Arc<gangway_topology::fabric::Fabric>>,
    /// The clock, as last given.
    now: Time,
    /// Pools whose state changed since their last pass.
    dirty: Vec<PoolKey>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Places gangs on `fabric`: nodes under the lowest common switch, on the fewest leaves.
    pub fn with_fabric(fabric: Arc<gangway_topology::fabric::Fabric>) -> Scheduler {
        Scheduler { fabric: Some(fabric), ..Scheduler::default() }
    }

    /// The clock is now `now` (it never goes back).
    pub fn advance(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    /// Sets how priorities are weighed and what limits running work (before tasks come).
    pub fn set_fairness(&mut self, weights: fair::Weights, limits: fair::Limits) {
        self.fair.weights = weights;
        self.fair.limits = limits;
    }

    /// How priorities are weighed.
    pub fn weights(&self) -> &fair::Weights {
        &self.fair.weights
    }

    /// Charges running work, decays usage and recomputes the fair-share factors and every
    /// waiting job's priority at `now`; a job whose priority changed moves in its queue (its
    /// pool gets a pass).
    pub fn reprioritize(&mut self, now: Time) {
        self.advance(now);
        self.fair.refresh(self.now);
        if !self.fair.weighs() {
            return;
        }
        let mut changed = false;
        for w in self.waiting.values_mut() {
            let f = self.fair.priority(&w.facts, w.cpus, self.cluster_cpus, self.now);
            changed |= f.priority != w.factors.priority;
            w.factors = f;
        }
        if changed {
            self.rekey(None);
        }
    }

    /// Moves the tasks that waited past their order's `max_delay` above every multifactor
    /// priority (the job's own priority still first; among them, the deadline order): the
    /// deadline order bounds what passes a job among jobs of equal priority, and this bounds
    /// it across them (fair share would otherwise hold a heavy user's jobs back without
    /// limit). Each task moves once (O(log) a task).
    fn promote_overdue(&mut self) {
        while let Some(&(by, task)) = self.overdue.first() {
            if by > self.now {
                break;
            }
            self.overdue.pop_first();
            let Some(q) = self.queued.get_mut(&task) else { continue };
            let order = q.order.with_factor(OVERDUE);
            move_in_queue(&mut self.pools, &mut self.dirty, task, q, order);
        }
    }

    /// Moves every waiting task (of job `only`, or of any job) whose job's priority is not the
    /// one its queue key has to its new place; their pools get a pass.
    fn rekey(&mut self, only: Option<u64>) {
        for (task, q) in self.queued.iter_mut() {
            if only.is_some_and(|j| j != q.order.job()) {
                continue;
            }
            let Some(w) = self.waiting.get(&q.order.job()) else { continue };
            if q.order.factor() == OVERDUE {
                // Overdue: it stays at the front.
                continue;
            }
            let order = q.order.with_factor(w.factors.priority).with_deadline(w.deadline);
            if order != q.order {
                move_in_queue(&mut self.pools, &mut self.dirty, *task, q, order);
            }
        }
    }

    /// Every association's decayed usage, and the instant it was decayed to.
    pub fn usage(&self) -> (Time, Vec<(Owner, f64)>) {
        self.fair.usage()
    }

    /// Takes back usage stored by an earlier head (before anything runs).
    pub fn restore_usage(&mut self, at: Time, rows: impl IntoIterator<Item = (Owner, f64)>) {
        self.fair.restore_usage(at, rows);
    }

    /// The priority of waiting `task` and its factors, as last computed (sprio's).
    pub fn priority(&self, task: TaskKey) -> Option<Factors> {
        let q = self.queued.get(&task)?;
        self.waiting.get(&q.order.job()).map(|w| w.factors)
    }

    /// The share tree: every account, then its users (sshare's).
    pub fn shares(&self) -> Vec<fair::ShareRow> {
        self.fair.shares()
    }

    /// The limit waiting `task` is held by now, if one is.
    pub fn held_by_limit(&self, task: TaskKey) -> Option<LimitReason> {
        let q = self.queued.get(&task)?;
        let owner = q.shape.owner?;
        let p = self.pools.get(&q.pool)?;
        let (cpus, gpus) = self.demand(p, &q.shape);
        self.fair.allows(owner, cpus, gpus).err()
    }

    /// What `user` runs now (jobs, CPUs, GPUs).
    pub fn running_of(&self, user: fair::UserKey) -> fair::Running {
        self.fair.running_of(user)
    }

    fn demand(&self, p: &PoolState, shape: &Shape) -> (u32, u32) {
        demand(p, shape.need.map(|i| &self.needs[i as usize]), shape)
    }

    /// Applies `ev` and appends the decisions it makes possible to `out`.
    pub fn on_event(&mut self, ev: Event, out: &mut Vec<Decision>) {
        self.apply(ev);
        self.schedule(out);
    }

    /// Runs one pass over every pool whose state changed since its last pass.
    pub fn schedule(&mut self, out: &mut Vec<Decision>) {
        self.schedule_within(out, &mut Unbounded);
    }

    /// Runs passes as [`Scheduler::schedule`] does until `budget` is spent (checked between
    /// decisions, after the first: a pass always makes progress); returns whether a pass was
    /// cut short, so the caller runs `schedule` again later (a fresh pass over what is left).
    pub fn schedule_within(&mut self, out: &mut Vec<Decision>, budget: &mut dyn Budget) -> bool {
        self.promote_overdue();
        while let Some(pool) = self.dirty.pop() {
            if !self.schedule_pool(pool, out, budget) {
                // Behind the other pools that are due, so one slow pool cannot starve them.
                self.dirty.insert(0, pool);
                return true;
            }
        }
        false
    }

    /// Whether a pass is due (an event changed a pool since its last pass, or one was cut short).
    pub fn pass_due(&self) -> bool {
        !self.dirty.is_empty()
    }

    fn touch(&mut self, pool: PoolKey) {
        if !self.dirty.contains(&pool) {
            self.dirty.push(pool);
        }
    }

    /// Applies `ev` without a pass (see [`Scheduler::schedule`]): every event of one instant
    /// is applied before the queue is looked at, as a scheduler that is woken once would.
    pub fn apply(&mut self, ev: Event) {
        match ev {
            Event::PoolAdded { pool, slots_per_node, fill, policy } => {
                let p = PoolState {
                    slots_per_node,
                    fill,
                    policy,
                    ends: BTreeSet::new(),
                    queue: Queue::default(),
                    free: BTreeSet::new(),
                    by_gpus: Vec::new(),
                    max_threads: 1,
                    max_cpus: 0,
                    max_gpus: 0,
                    fabric: fabric::PoolFabric::default(),
                    unplaced: 0,
                    freed: Default::default(),
                    freed_base: 0,
                };
                self.pools.insert(pool, p);
            }
            Event::PoolRemoved { pool } => {
                if let Some(p) = self.pools.remove(&pool) {
                    for task in p.queue.tasks() {
                        if let Some(q) = self.queued.remove(&task) {
                            forget_waiting(&mut self.waiting, &mut self.overdue, Some(&p), task, &q);
                        }
                    }
                }
            }
            Event::NodeUp { node, pool, inventory, held, schedulable, place } => {
                self.remove_node(node);
                let Some(p) = self.pools.get_mut(&pool) else { return };
                let mut avail = inventory.all_free();
                let mut holdings = KeyMap::with_capacity_and_hasher(held.len(), Default::default());
                let mut used = 0u32;
                for h in held {
                    // A grant that overlaps another cannot come from this scheduler; keep
                    // the first and let the second hold its slots only.
                    let grant = if avail.take(&inventory, &h.grant) { h.grant } else { Grant::default() };
                    used = used.saturating_add(h.slots);
                    if let Some(end) = h.end {
                        p.ends.insert((end, h.task, node));
                    }
                    let (cpus, gpus) = billed(&inventory, &grant, h.slots);
                    self.fair.start(h.task, h.owner, cpus, gpus, self.now);
                    holdings.insert(h.task, Holding { slots: h.slots, grant, end: h.end });
                }
                p.max_threads = p.max_threads.max(inventory.threads_per_core());
                p.max_cpus = p.max_cpus.max(inventory.cpu_count());
                p.max_gpus = p.max_gpus.max(inventory.gpus_of_type(None));
                self.cluster_cpus += inventory.cpu_count();
                let free = p.slots_per_node.saturating_sub(used);
                // Tasks barred from it while it was away stay so.
                let barred = self.barred.iter().filter(|(_, nodes)| nodes.contains(&node)).map(|(t, _)| *t).collect();
                let n = NodeState { pool, free, schedulable, place, inventory, avail, held: holdings, barred };
                p.reindex(node, None, n.index_key());
                p.fabric.invalidate();
                p.unplaced += u32::from(n.place.is_none());
                p.note_freed(node);
                self.nodes.insert(node, n);
                self.touch(pool);
            }
            Event::NodeDown { node } => self.remove_node(node),
            Event::NodeSchedulable { node, schedulable } => {
                let Some(n) = self.nodes.get_mut(&node) else { return };
                let pool = n.pool;
                let p = self.pools.get_mut(&pool).expect("a node's pool exists");
                let before = n.index_key();
                n.schedulable = schedulable;
                p.reindex(node, before, n.index_key());
                p.fabric.update(n.place, n);
                if schedulable {
                    p.note_freed(node);
                }
                self.touch(pool);
            }
            Event::TaskQueued { task, pool, order, slots, need, gang, limit, job } => {
                if !self.pools.contains_key(&pool) {
                    return;
                }
                let need = need.map(|n| {
                    let next = self.needs.len() as u32;
                    *self.need_ids.entry(n).or_insert_with_key(|n| {
                        self.needs.push(n.clone());
                        next
                    })
                });
                let owner = self.fair.limits.any().then_some(job.owner);
                let barred = self.barred.get(&task).map_or(0, |nodes| {
                    let mut nodes = nodes.clone();
                    nodes.sort_unstable();
                    nodes
                        .iter()
                        .fold(0xcbf2_9ce4_8422_2325_u64, |h, n| (h ^ u64::from(*n)).wrapping_mul(0x100_0000_01b3))
                        | 1
                });
                let shape = Shape { slots, need, gang, limit, owner, barred };
                let order = self.join_job(order, pool, &shape, job);
                let p = self.pools.get_mut(&pool).expect("checked above");
                p.queue.push(order, task, shape);
                self.queued.insert(task, Waiting { pool, order, shape, owner: job.owner, eligible: job.eligible });
                if let Some(by) = overdue_at(p, job.eligible) {
                    self.overdue.insert((by, task));
                }
                // One more task of a shape that fits nowhere, with nothing freed since it was
                // tried, can start nothing: no pass.
                if p.queue.blocked(shape) == Some(p.freed_end()) {
                    return;
                }
                self.touch(pool);
            }
            Event::TaskBarred { task, node } => {
                // Kept for a node not up now too: it applies when the node comes.
                self.barred.entry(task).or_default().push(node);
                if let Some(n) = self.nodes.get_mut(&node) {
                    n.barred.push(task);
                }
            }
            Event::TaskWithdrawn { task } => {
                self.unbar(task);
                if let Some(q) = self.queued.remove(&task) {
                    let p = self.pools.get_mut(&q.pool);
                    let p = p.map(|p| {
                        p.queue.remove(q.order, q.shape);
                        &*p
                    });
                    forget_waiting(&mut self.waiting, &mut self.overdue, p, task, &q);
                    // A shape gone from ahead of others may let the look-past reach one that fits.
                    self.touch(q.pool);
                }
            }
            Event::TaskReleased { task, node } => {
                let Some(n) = self.nodes.get_mut(&node) else { return };
                let Some(h) = n.held.remove(&task) else { return };
                let pool = n.pool;
                let p = self.pools.get_mut(&pool).expect("a node's pool exists");
                if let Some(end) = h.end {
                    p.ends.remove(&(end, task, node));
                }
                let before = n.index_key();
                n.free = (n.free + h.slots).min(p.slots_per_node);
                n.avail.give_back(&n.inventory, &h.grant);
                p.reindex(node, before, n.index_key());
                p.fabric.update(n.place, n);
                p.note_freed(node);
                let (cpus, gpus) = billed(&n.inventory, &h.grant, h.slots);
                // Less running under a limit may let its owner's work wait in other pools.
                if self.fair.release(task, cpus, gpus, self.now) {
                    let pools: Vec<PoolKey> = self.pools.keys().copied().collect();
                    for pool in pools {
                        self.touch(pool);
                    }
                }
                self.touch(pool);
            }
        }
    }

    /// Files a queued task under its job, which computes the job's priority and deadline when
    /// it is new (a later task brings the job's facts up to date); returns the task's queue
    /// key. Without weights every priority is the same, and in a pool ordered by submission
    /// there is no deadline: with neither nothing is kept.
    fn join_job(&mut self, order: QueueKey, pool: PoolKey, shape: &Shape, job: JobFacts) -> QueueKey {
        let p = self.pools.get(&pool).expect("a queued task's pool exists");
        let by_deadline = match p.policy.order {
            Order::Deadline(d) => Some(d),
            Order::Submit => None,
        };
        if !self.fair.weighs() && by_deadline.is_none() {
            return order.with_factor(-i64::from(job.nice));
        }
        let current = self.waiting.get(&order.job()).filter(|w| w.facts == job);
        let (factor, deadline) = match current {
            Some(w) => (w.factors.priority, w.deadline),
            None => {
                self.fair.know(job.owner);
                let cpus = self.waiting.get(&order.job()).map_or_else(|| self.demand(p, shape).0, |w| w.cpus);
                let factors = self.fair.priority(&job, cpus, self.cluster_cpus, self.now);
                let deadline = by_deadline.map_or(0, |d| d.of(job.eligible, shape.limit, cpus));
                let w = self.waiting.entry(order.job()).or_insert(WaitingJob {
                    facts: job,
                    cpus,
                    factors,
                    deadline,
                    tasks: 0,
                });
                let moved = (w.factors.priority, w.deadline) != (factors.priority, deadline);
                w.facts = job;
                w.factors = factors;
                w.deadline = deadline;
                if moved {
                    // Its facts changed (an update): its other waiting tasks move as well.
                    self.rekey(Some(order.job()));
                }
                (factors.priority, deadline)
            }
        };
        if let Some(w) = self.waiting.get_mut(&order.job()) {
            w.tasks += 1;
        }
        order.with_factor(factor).with_deadline(deadline)
    }

    /// Where and when the waiting task `task` is planned to start: the reservation its pool
    /// keeps for it when it is among the first waiting shapes' tasks that get one (the first
    /// under EASY, the first N under conservative backfilling), computed as a pass would.
    /// None for any other task, or when what it waits for has no time limit.
    pub fn planned(&self, task: TaskKey) -> Option<Planned> {
        let p = self.pools.get(&self.queued.get(&task)?.pool)?;
        let depth = p.policy.backfill.reservations();
        // A task held by a limit gets no reservation.
        let heads = || {
            p.queue.heads_after(None).filter(|(_, _, q, _)| {
                let (cpus, gpus) = self.demand(p, &q.shape);
                q.shape.owner.is_none_or(|o| self.fair.allows(o, cpus, gpus).is_ok())
            })
        };
        // Most waiting tasks have none: that is known without computing any.
        if !heads().take(depth).any(|(_, _, _, first)| first == task) {
            return None;
        }
        let mut reservations: Vec<Reservation> = Vec::new();
        for (_, _, q, first) in heads().take(depth) {
            let need = q.shape.need.map(|i| &self.needs[i as usize]);
            let r = reserve::reserve(p, &self.nodes, first, &q.shape, need, self.now, &reservations, true);
            if first == task {
                return r.map(|r| Planned { start: r.start, nodes: r.claims });
            }
            reservations.extend(r);
        }
        None
    }

    /// Tasks waiting in the queue of `pool`.
    pub fn queued_len(&self, pool: PoolKey) -> usize {
        self.pools.get(&pool).map_or(0, |p| p.queue.len())
    }

    /// Free slots on `node`.
    pub fn free_slots(&self, node: NodeKey) -> Option<u32> {
        self.nodes.get(&node).map(|n| n.free)
    }

    /// What of `node`'s cores, memory and GPUs is in no live allocation.
    pub fn free_resources(&self, node: NodeKey) -> Option<&NodeFree> {
        self.nodes.get(&node).map(|n| &n.avail)
    }

    /// Whether `slots` could ever fit a node of `pool`.
    pub fn fits_pool(&self, pool: PoolKey, slots: u32) -> bool {
        self.pools.get(&pool).is_some_and(|p| slots <= p.slots_per_node)
    }

    fn remove_node(&mut self, node: NodeKey) {
        if let Some(n) = self.nodes.remove(&node) {
            self.cluster_cpus = self.cluster_cpus.saturating_sub(n.inventory.cpu_count());
            for (task, h) in &n.held {
                let (cpus, gpus) = billed(&n.inventory, &h.grant, h.slots);
                self.fair.release(*task, cpus, gpus, self.now);
            }
            if let Some(p) = self.pools.get_mut(&n.pool) {
                for (task, h) in &n.held {
                    if let Some(end) = h.end {
                        p.ends.remove(&(end, *task, node));
                    }
                }
                p.reindex(node, n.index_key(), None);
                p.fabric.invalidate();
                p.unplaced -= u32::from(n.place.is_none());
            }
        }
    }

    /// One pass over `pool`'s queue, shape by shape in queue order, until nothing is free or
    /// the policy's `max_examined` shapes found no place. A shape blocked since the last
    /// capacity gain is passed at once; one blocked a few gains ago is tried on those nodes
    /// only (nothing else can hold it); the rest get a full search. The first shape that
    /// cannot start stops the pass (FCFS) or, with EASY (conservative: the first N), gets a
    /// reservation the shapes after it must leave room for (computed when one of them could
    /// pass it).
    fn schedule_pool(&mut self, pool: PoolKey, out: &mut Vec<Decision>, budget: &mut dyn Budget) -> bool {
        let Some(p) = self.pools.get_mut(&pool) else { return true };
        let policy = p.policy;
        let now = self.now;
        let mut cursor = None;
        let mut skipped = 0;
        let mut newly_blocked: Vec<queue::Slot> = Vec::new();
        // The first shapes that cannot start (their first tasks), as many as get reservations,
        // and the reservations of the first `reserved` of them, computed once a later shape
        // could pass them.
        let depth = policy.backfill.reservations();
        // With each, whether it may fit now (false: a search over free resources found no node).
        let mut blockers: Vec<(TaskKey, Shape, bool)> = Vec::new();
        let mut reserved = 0;
        let mut reservations: Vec<Reservation> = Vec::new();
        let mut first = true;
        'pass: while let Some(&(max_free, _)) = p.free.last() {
            if !std::mem::take(&mut first) && budget.spent() {
                return false;
            }
            let end = p.freed_end();
            // Freed nodes, looked up on first use and then once for every blocked shape.
            let mut freed_nodes: Vec<(NodeKey, Option<&NodeState>)> = Vec::new();
            let nodes = &self.nodes;
            let mut node_of = |k: NodeKey| match freed_nodes.iter().find(|(f, _)| *f == k) {
                Some((_, n)) => *n,
                None => {
                    let n = nodes.get(&k);
                    freed_nodes.push((k, n));
                    n
                }
            };
            // Scan without changing anything for the first shape worth a full search or that
            // fits a freed node; what turned out blocked is marked after.
            let mut next = None;
            let mut stop = false;
            let all = p.slots_per_node;
            for (key, slot, q, task) in p.queue.heads_after(cursor) {
                let need = q.shape.need.map(|i| &self.needs[i as usize]);
                // Its owner is at a limit: it waits without a reservation, not blocked.
                let limited = |o: Owner| {
                    let (cpus, gpus) = demand(p, need, &q.shape);
                    self.fair.allows(o, cpus, gpus).is_err()
                };
                let look = if q.shape.owner.is_some_and(limited) {
                    Look::Limited
                } else {
                    match q.blocked {
                        // Nothing was freed since it found no place.
                        Some(pos) if pos == end => Look::Pass,
                        // Only the nodes freed since can hold it.
                        Some(pos) if q.shape.gang.is_none() && end - pos <= FRESH_TRIES => match p.freed_since(pos) {
                            Some(mut freed) => {
                                let on = |k| {
                                    Self::place_on(pool, k, node_of(k)?, task, &q.shape, need, all, &Room::FREE)
                                        .map(|g| (k, g))
                                };
                                match freed.find_map(on) {
                                    Some(found) => Look::Place(found),
                                    None => Look::StillBlocked,
                                }
                            }
                            None => Look::Search,
                        },
                        _ => Look::Search,
                    }
                };
                match look {
                    Look::Limited => {}
                    Look::Pass | Look::StillBlocked => {
                        if let Look::StillBlocked = look {
                            newly_blocked.push(slot);
                        }
                        if blockers.len() < depth {
                            blockers.push((task, q.shape, false));
                        }
                        if policy.backfill == Backfill::Fcfs {
                            stop = true;
                            break;
                        }
                    }
                    Look::Search => {
                        next = Some((key, slot, q.shape, task, None));
                        break;
                    }
                    Look::Place(found) => {
                        next = Some((key, slot, q.shape, task, Some(found)));
                        break;
                    }
                }
                // A shape held by its owner's limit costs one lookup: it does not count
                // against the bound (or users at their limits would stall everyone behind).
                skipped += usize::from(!matches!(look, Look::Limited));
                cursor = Some(key);
                if skipped >= policy.max_examined {
                    break;
                }
            }
            for slot in newly_blocked.drain(..) {
                p.queue.set_blocked(slot, Some(end));
            }
            if stop {
                break;
            }
            let Some((key, slot, shape, task, placed)) = next else { break };
            // With shapes waiting ahead, each gets its reservation before anything passes it.
            while reserved < blockers.len().min(depth) {
                let (first, first_shape, may_fit_now) = blockers[reserved];
                let need = first_shape.need.map(|i| &self.needs[i as usize]);
                if let Some(r) =
                    reserve::reserve(p, &self.nodes, first, &first_shape, need, now, &reservations, may_fit_now)
                {
                    reservations.push(r);
                }
                reserved += 1;
            }
            let ends_at = shape.limit.map(|l| now.saturating_add(l));
            let room = Room::new(&reservations, ends_at);
            // Under a reservation, where it goes depends on the claims: search again.
            let placed = placed.filter(|_| room.is_free());
            let need = shape.need.map(|i| &self.needs[i as usize]);
            let found = match (placed, shape.gang) {
                (Some((node, grant)), _) => Found::Placed(Decision::Start { task, node, grant }),
                (None, Some(n)) => {
                    Self::place_gang(p, pool, task, n, shape.slots, need, &self.nodes, self.fabric.as_deref(), &room)
                        .map(|nodes| Decision::StartGang { task, nodes })
                }
                (None, None) => Self::place_one(p, task, shape.slots, need, max_free, &self.nodes, &room)
                    .map(|(node, grant)| Decision::Start { task, node, grant }),
            };
            // A search that gave up at its bound may have missed where a task that would get a
            // reservation fits now: its reservation finds that, and it starts there.
            let found = match found {
                Found::GaveUp if blockers.len() < depth => {
                    match reserve::reserve(p, &self.nodes, task, &shape, need, now, &reservations, true) {
                        Some(r) if r.start <= now => {
                            Self::place_on_claims(p, pool, task, &shape, need, &r.claims, &self.nodes, &room)
                                .map_or(Found::GaveUp, Found::Placed)
                        }
                        _ => Found::GaveUp,
                    }
                }
                found => found,
            };
            let decision = match found {
                Found::Placed(d) => d,
                missed => {
                    p.queue.set_blocked(slot, matches!(missed, Found::NoFit).then_some(end));
                    // The first shapes that do not start get the reservations, whatever kept them
                    // out (no fit, the search's bound, claims), as `planned` reports them.
                    if blockers.len() < depth {
                        let may_fit_now = !(matches!(missed, Found::NoFit) && room.is_free());
                        blockers.push((task, shape, may_fit_now));
                    }
                    if policy.backfill == Backfill::Fcfs {
                        break 'pass;
                    }
                    skipped += 1;
                    cursor = Some(key);
                    if skipped >= policy.max_examined {
                        break;
                    }
                    continue;
                }
            };
            p.queue.set_blocked(slot, None);
            p.queue.remove(key, shape);
            if !self.barred.is_empty() {
                Self::unbar_in(&mut self.barred, &mut self.nodes, task);
            }
            let owner = match self.queued.remove(&task) {
                Some(q) => {
                    forget_waiting(&mut self.waiting, &mut self.overdue, Some(p), task, &q);
                    q.owner
                }
                None => Owner::default(),
            };
            // A whole-node share takes every slot as well.
            let whole = shape.need.is_none_or(|i| self.needs[i as usize].whole);
            let all = p.slots_per_node;
            let slots = |gang: bool| if whole && (gang || shape.need.is_some()) { all } else { shape.slots };
            let fair = &mut self.fair;
            let mut held = |node: NodeKey, grant: &Grant, slots: u32| {
                let n = Self::hold(p, &mut self.nodes, node, task, slots, grant, ends_at);
                let (cpus, gpus) = billed(&n.inventory, grant, slots);
                fair.start(task, owner, cpus, gpus, now);
                // What outlasts a reservation's start comes out of what it leaves spare.
                for r in reservations.iter_mut().filter(|r| ends_at.is_none_or(|e| e > r.start)) {
                    r.took(node, slots, grant);
                }
            };
            match &decision {
                Decision::Start { node, grant, .. } => held(*node, grant, slots(false)),
                Decision::StartGang { nodes, .. } => {
                    for (node, grant) in nodes {
                        held(*node, grant, slots(true));
                    }
                }
            }
            out.push(decision);
        }
        true
    }

    /// Lifts the bars on a task that leaves the queue.
    fn unbar(&mut self, task: TaskKey) {
        Self::unbar_in(&mut self.barred, &mut self.nodes, task);
    }

    fn unbar_in(barred: &mut KeyMap<TaskKey, Vec<NodeKey>>, nodes: &mut KeyMap<NodeKey, NodeState>, task: TaskKey) {
        for node in barred.remove(&task).unwrap_or_default() {
            if let Some(n) = nodes.get_mut(&node) {
                n.barred.retain(|t| *t != task);
            }
        }
    }

    /// Takes `slots` and `grant` on `node` for `task`, until `end`; returns the node.
    fn hold<'n>(
        p: &mut PoolState,
        nodes: &'n mut KeyMap<NodeKey, NodeState>,
        node: NodeKey,
        task: TaskKey,
        slots: u32,
        grant: &Grant,
        end: Option<Time>,
    ) -> &'n NodeState {
        let n = nodes.get_mut(&node).expect("placed on a known node");
        debug_assert!(!n.held.contains_key(&task), "a task is never placed where it still holds something");
        let before = n.index_key();
        n.free -= slots.min(n.free);
        let taken = n.avail.take(&n.inventory, grant);
        debug_assert!(taken, "a placement only picks what is free");
        n.held.insert(task, Holding { slots, grant: grant.clone(), end });
        if let Some(end) = end {
            p.ends.insert((end, task, node));
        }
        p.reindex(node, before, n.index_key());
        p.fabric.update(n.place, n);
        n
    }

    /// Nodes of `pool` that could ever hold a gang instance (every node, busy or not).
    pub fn pool_node_count(&self, pool: PoolKey) -> usize {
        self.nodes.values().filter(|n| n.pool == pool).count()
    }
}

/// The CPUs and GPUs billed for `grant` of `slots` on a node of `inv` (a task given no
/// cores bills its slots as CPUs).
fn billed(inv: &NodeInventory, grant: &Grant, slots: u32) -> (u32, u32) {
    let cpus = if grant.cores.is_empty() { slots } else { grant.cores.len() as u32 * inv.threads_per_core() };
    (cpus, grant.gpus.len() as u32)
}

/// The CPUs and GPUs a task of `shape` (whose need is `need`) asks for on all its nodes of
/// pool `p` (a whole node counts the pool's largest; a task without a need, its slots).
fn demand(p: &PoolState, need: Option<&Need>, shape: &Shape) -> (u32, u32) {
    let n = shape.gang.unwrap_or(1);
    let (cpus, gpus) = match need {
        Some(need) if need.whole => (p.max_cpus, p.max_gpus),
        // Whole cores are granted, and their threads billed, as the placement does.
        Some(need) => {
            let t = p.max_threads.max(1);
            (need.cpus.div_ceil(t).max(need.cores).saturating_mul(t), need.gpus)
        }
        None if shape.gang.is_some() => (p.max_cpus, p.max_gpus),
        None => (shape.slots, 0),
    };
    (cpus.saturating_mul(n), gpus.saturating_mul(n))
}

/// When a pass must stop (Slurm's `bf_max_time`): the head's reads its clock; the core reads
/// none.
pub trait Budget {
    /// Whether the time is up.
    fn spent(&mut self) -> bool;
}

/// No bound on a pass.
pub struct Unbounded;

impl Budget for Unbounded {
    fn spent(&mut self) -> bool {
        false
    }
}

/// What to do with a shape met in a pass's scan.
enum Look {
    /// Pass it: its owner is at a limit.
    Limited,
    /// Pass it: nothing changed since it found no place.
    Pass,
    /// Pass it and mark it blocked again: the freed nodes cannot hold it either.
    StillBlocked,
    /// It goes here (a freed node).
    Place((NodeKey, Grant)),
    /// Search the pool for it.
    Search,
}

#[cfg(test)]
mod fair_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_tests;

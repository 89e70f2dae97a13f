//! The head's in-memory state: pools, jobs, tasks and nodes, and the scheduler core.
//!
//! Every change happens under one lock and yields [`Effects`]: records to persist, messages
//! for launchers, timers to arm. The caller hands the records to the store and sends the
//! messages only once they are durable, so a launcher never runs an attempt the head could
//! forget, and a client never hears "done" for a change a crash could undo.

pub(crate) mod alloc;
mod apps;
pub(crate) use apps::{apps_not_found, versions_not_found};
mod depends;
pub(crate) mod deps;
pub mod fairness;
mod gangs;
mod job_control;
mod launchers;
pub mod limits;
mod nodes;
pub(crate) mod prep;
pub mod purge;
pub(crate) mod requests;
mod resource_files;
pub(crate) mod resources;
mod schedules;
pub(crate) mod slurm;
pub(crate) mod slurm_control;
pub(crate) mod slurm_view;
mod task_control;
pub(crate) mod tokens;
mod trust;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use gangway_api::messages::HeadMessage;
use gangway_api::{ComputeNode, Job, Pool, Task, TaskState, Timestamp};
use tokio::sync::mpsc::UnboundedSender;

use crate::scheduler::{Decision, Event, NodeKey, PoolKey, QueueKey, Scheduler, TaskKey};
use crate::store::Write;

pub use launchers::RegisterError;

/// Timers the caller arms; each fires back into the state, which checks it still applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Timer {
    /// The node's connection `generation` dropped; if it has not come back by then, it is lost.
    NodeLost { node: String, generation: u64, after: Duration },
    /// The job's `maxWallClockTime` expires.
    JobDeadline { job: String, at: Timestamp },
    /// Slurm job `job`'s `--begin` time comes.
    SlurmBegin { job: u64, at: Timestamp },
    /// Priorities are due for recalculation (every `PriorityCalcPeriod`).
    Reprioritize { after: Duration },
    /// A scheduling pass was cut short at `--max-pass-time`: the rest runs next.
    Pass,
    /// Job schedule `id` has something due at `at` (a run, or the end of a run's window).
    Schedule { id: String, at: Timestamp },
    /// Finished Slurm jobs past `MinJobAge` are due to leave memory (every `after`).
    Purge { after: Duration },
}

/// A pass's budget: spent at this instant.
struct PassClock(std::time::Instant);

impl crate::scheduler::Budget for PassClock {
    fn spent(&mut self) -> bool {
        std::time::Instant::now() >= self.0
    }
}

/// How long one scheduling pass may hold the state by default (Slurm's `bf_max_time`, for a
/// scheduler whose passes take milliseconds).
pub const DEFAULT_MAX_PASS_TIME: Duration = Duration::from_millis(100);

/// What a change asks the outside world to do.
#[derive(Default)]
pub struct Effects {
    /// Records to persist.
    pub writes: Vec<Write>,
    /// Messages to send once the writes are durable.
    pub sends: Vec<(UnboundedSender<HeadMessage>, HeadMessage)>,
    /// Timers to arm.
    pub timers: Vec<Timer>,
}

/// What the head measures of its own work, for `/metrics`.
#[derive(Debug, Clone)]
pub struct Stats {
    /// How long each scheduler pass took.
    pub pass_seconds: crate::histogram::Histogram,
    /// How many starts each pass decided.
    pub pass_decisions: crate::histogram::Histogram,
    /// From a task's submission to its first start.
    pub submit_to_start_seconds: crate::histogram::Histogram,
    /// Launchers that connected again (after a dropped stream or a head restart).
    pub launcher_reconnects: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        use crate::histogram::{Histogram, COUNTS, SECONDS};
        Stats {
            pass_seconds: Histogram::new(&SECONDS),
            pass_decisions: Histogram::new(&COUNTS),
            submit_to_start_seconds: Histogram::new(&SECONDS),
            launcher_reconnects: 0,
        }
    }
}

/// A pool and its scheduler key.
pub(crate) struct PoolRec {
    pub wire: Pool,
    pub key: PoolKey,
}

/// A job, its tasks, and what the scheduler needs of it.
pub(crate) struct JobRec {
    pub wire: Job,
    pub seq: u64,
    pub tasks: BTreeMap<String, TaskRec>,
    /// Tasks in state running.
    pub running: usize,
    /// Tasks in state completed (kept so "all tasks complete" is O(1), not a scan per completion).
    pub completed: usize,
}

/// A task and the bookkeeping of its current attempt.
pub(crate) struct TaskRec {
    pub wire: Task,
    pub key: TaskKey,
    pub seq: u64,
    /// Number of the latest attempt sent to a node (0: never sent).
    pub attempt: u32,
    /// Why its kill was asked for, when it was.
    pub killing: Option<&'static str>,
    /// The instances of its current attempt, when it is a multi-instance task.
    pub instances: Vec<gangs::InstanceRec>,
    /// PMI fences of its managed MPI ranks in progress: each instance's puts, by fence number.
    pub fences: std::collections::BTreeMap<u32, Vec<Option<KvPairs>>>,
}

/// PMI key-value pairs.
pub(crate) type KvPairs = Vec<(String, String)>;

/// A launcher's live connection.
pub(crate) struct Conn {
    pub tx: UnboundedSender<HeadMessage>,
    pub generation: u64,
}

/// A node known to the head.
pub(crate) struct NodeRec {
    pub wire: ComputeNode,
    pub key: NodeKey,
    pub conn: Option<Conn>,
    /// Generation of its latest connection (only that one's node-lost timer applies).
    pub generation: u64,
    /// Tasks running here and the slots each holds.
    pub running: HashMap<TaskKey, u32>,
    /// What it can give tasks (from its registration; its running tasks' allocations say
    /// what they hold of it).
    pub inventory: std::sync::Arc<gangway_topology::alloc::NodeInventory>,
    /// The `boot_id` of its launcher process: a new one reruns the start task.
    pub boot_id: String,
    /// Removal was asked for: it leaves once nothing runs on it.
    pub leaving: bool,
    /// Its launcher process runs a start task with `waitForSuccess`: no tasks until it succeeds.
    pub wait_for_start: bool,
    /// Whether the scheduler was last told it takes new tasks.
    pub schedulable: bool,
    /// What was last persisted of it (None: never), so it is written only when that changes.
    pub persisted: Option<NodeFacts>,
}

/// What of a node is worth persisting: everything but its moment-to-moment task counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeFacts {
    state: gangway_api::NodeState,
    scheduling_state: gangway_api::SchedulingState,
    start_task: Option<(gangway_api::StartTaskState, Option<i32>, u32)>,
    boot_id: String,
    leaving: bool,
    wait_for_start: bool,
    address: String,
}

impl NodeRec {
    pub(crate) fn facts(&self) -> NodeFacts {
        use gangway_api::NodeState;
        NodeFacts {
            // Idle and running alternate with every task; both mean "up".
            state: if self.wire.state == NodeState::Running { NodeState::Idle } else { self.wire.state },
            scheduling_state: self.wire.scheduling_state,
            start_task: self.wire.start_task_info.as_ref().map(|i| (i.state, i.exit_code, i.retry_count)),
            boot_id: self.boot_id.clone(),
            leaving: self.leaving,
            wait_for_start: self.wait_for_start,
            address: self.wire.ip_address.clone(),
        }
    }
}

/// Everything the head knows.
pub struct HeadState {
    pub(crate) pools: BTreeMap<String, PoolRec>,
    pub(crate) jobs: BTreeMap<String, JobRec>,
    /// Job schedules by id.
    pub(crate) schedules: BTreeMap<String, gangway_api::JobSchedule>,
    /// Application packages by id (their archives are on disk, see `head::applications`).
    pub(crate) applications: BTreeMap<String, gangway_api::Application>,
    /// API tokens by id.
    pub(crate) tokens: BTreeMap<String, tokens::TokenRec>,
    /// Join tokens and node certificates.
    pub(crate) trust: trust::Trust,
    /// Client request ids done, and their answers.
    pub(crate) requests: requests::Requests,
    /// What `/metrics` shows of the head's own work.
    pub(crate) stats: Stats,
    /// Slurm's `MinJobAge` (zero: finished jobs stay).
    pub(crate) min_job_age: Duration,
    /// The key of job credentials (see `tokens::job_token`).
    pub(crate) job_token_key: [u8; 32],
    /// The URL tasks reach the head's API at (a job manager's `GANGWAY_URL`).
    pub(crate) api_url: String,
    /// How many jobs may be open, and how many are.
    limits: limits::JobLimits,
    /// Account names, numbered for the scheduler.
    accounts: fairness::Accounts,
    /// How long one scheduling pass may take before it yields.
    max_pass_time: Duration,
    /// Slurm's `MaxArraySize`: array indices must be below it.
    pub(crate) max_array_size: u32,
    /// A cut-short pass's rest is armed.
    pass_pending: bool,
    open: limits::OpenJobs,
    pub(crate) nodes: BTreeMap<String, NodeRec>,
    /// Task key → (job, task).
    pub(crate) task_index: HashMap<TaskKey, (String, String)>,
    /// Tasks the store says were running on a node that has not reconnected since the head started.
    pub(crate) awaiting_node: HashMap<String, HashSet<TaskKey>>,
    /// Attempts of deleted jobs still running when deleted, being killed: their nodes give
    /// back what they hold when they report the end.
    pub(crate) deleted: HashMap<TaskKey, gangway_api::messages::AttemptId>,
    /// Nodes whose persisted facts may have changed since the last flush.
    pub(crate) dirty_nodes: HashSet<String>,
    /// Node key → node name (a key always names the same node), so a scheduler decision
    /// finds its node without a scan.
    pub(crate) node_names: HashMap<NodeKey, String>,
    pub(crate) sched: Scheduler,
    /// The switch tree (`gangway head --fabric`), when there is one.
    pub(crate) fabric: Option<std::sync::Arc<gangway_topology::fabric::Fabric>>,
    pub(crate) node_timeout: Duration,
    pub(crate) heartbeat: Duration,
    /// Slurm jobs' ids, gates and arrays.
    pub(crate) slurm: slurm::SlurmState,
    /// Task dependencies, Azure's and Slurm's.
    pub(crate) deps: deps::Deps,
    /// Waiters whose verdict changed, to act on.
    dep_pending: std::collections::VecDeque<TaskKey>,
    /// Set while acting on them.
    dep_settling: bool,
    /// Scratch for the engine's changes.
    dep_changes: Vec<deps::Change>,
    /// Tasks placed on a node, waiting `preparing` for their job's preparation there (by job
    /// and node), with the start message to send when it succeeds.
    pub(crate) prep_waiting: HashMap<(String, String), Vec<(TaskKey, HeadMessage)>>,
    /// Multi-instance tasks waiting for their job's preparation on some of their nodes: each
    /// instance's start message, by node (sent when every node is prepared).
    pub(crate) gang_waiting: HashMap<TaskKey, Vec<(String, HeadMessage)>>,
    next_key: u64,
    next_seq: u64,
    next_generation: u64,
    decisions: Vec<Decision>,
}

impl HeadState {
    /// An empty state.
    pub fn new(node_timeout: Duration, heartbeat: Duration) -> HeadState {
        HeadState {
            pools: BTreeMap::new(),
            jobs: BTreeMap::new(),
            schedules: BTreeMap::new(),
            applications: BTreeMap::new(),
            tokens: BTreeMap::new(),
            trust: trust::Trust::default(),
            requests: requests::Requests::default(),
            stats: Stats::default(),
            min_job_age: purge::DEFAULT_MIN_JOB_AGE,
            job_token_key: [0; 32],
            api_url: String::new(),
            limits: Default::default(),
            accounts: Default::default(),
            max_pass_time: DEFAULT_MAX_PASS_TIME,
            max_array_size: gangway_api::slurm::MAX_ARRAY_SIZE,
            pass_pending: false,
            open: Default::default(),
            nodes: BTreeMap::new(),
            task_index: HashMap::new(),
            awaiting_node: HashMap::new(),
            deleted: HashMap::new(),
            dirty_nodes: HashSet::new(),
            node_names: HashMap::new(),
            sched: Scheduler::new(),
            fabric: None,
            node_timeout,
            heartbeat,
            slurm: slurm::SlurmState::default(),
            deps: Default::default(),
            dep_pending: Default::default(),
            dep_settling: false,
            dep_changes: Vec::new(),
            prep_waiting: HashMap::new(),
            gang_waiting: HashMap::new(),
            next_key: 1,
            next_seq: 1,
            next_generation: 1,
            decisions: Vec::new(),
        }
    }

    /// The URL tasks reach the head's API at.
    pub fn set_api_url(&mut self, url: &str) {
        self.api_url = url.to_owned();
    }

    /// Sets Slurm's `MaxArraySize` (`--max-array-size`).
    pub fn set_max_array_size(&mut self, n: u32) {
        self.max_array_size = n;
    }

    /// Bounds one scheduling pass (`--max-pass-time`).
    pub fn set_max_pass_time(&mut self, d: Duration) {
        self.max_pass_time = d;
    }

    /// Runs the rest of a pass that was cut short.
    pub(crate) fn resume_pass(&mut self, fx: &mut Effects) {
        self.pass_pending = false;
        self.sched_pass(fx);
    }

    /// Places gangs on `fabric` (set before any pool or node exists).
    pub fn set_fabric(&mut self, fabric: gangway_topology::fabric::Fabric) {
        let fabric = std::sync::Arc::new(fabric);
        self.sched = Scheduler::with_fabric(fabric.clone());
        self.fabric = Some(fabric);
    }

    /// The node a scheduler key names, if it is still known.
    pub(crate) fn node_name(&self, key: NodeKey) -> Option<&str> {
        self.node_names.get(&key).map(String::as_str).filter(|n| self.nodes.contains_key(*n))
    }

    pub(crate) fn new_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    pub(crate) fn new_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(crate) fn bump_seq(&mut self, seen: u64) {
        self.next_seq = self.next_seq.max(seen);
    }

    pub(crate) fn new_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Feeds the scheduler and carries out what it decides.
    pub(crate) fn sched_event(&mut self, ev: Event, fx: &mut Effects) {
        self.sched.advance(alloc::millis(Timestamp::now()));
        self.sched.apply(ev);
        self.sched_pass(fx);
    }

    /// Runs the scheduler's passes that are due, for at most `--max-pass-time` (what is left
    /// runs again at once, after whatever waits for the state), and carries out what they
    /// decide.
    pub(crate) fn sched_pass(&mut self, fx: &mut Effects) {
        let mut out = std::mem::take(&mut self.decisions);
        self.sched.advance(alloc::millis(Timestamp::now()));
        let began = std::time::Instant::now();
        let mut budget = PassClock(began + self.max_pass_time);
        if self.sched.schedule_within(&mut out, &mut budget) && !self.pass_pending {
            self.pass_pending = true;
            fx.timers.push(Timer::Pass);
        }
        self.stats.pass_seconds.observe(began.elapsed().as_secs_f64());
        self.stats.pass_decisions.observe(out.len() as f64);
        for d in out.drain(..) {
            let task = match d {
                Decision::Start { task, node, grant } => {
                    self.start_attempt(task, node, grant, fx);
                    task
                }
                Decision::StartGang { task, nodes } => {
                    self.start_gang(task, nodes, fx);
                    task
                }
            };
            // A start may satisfy a Slurm `after:` dependency.
            self.dependency_moved(task, fx);
        }
        self.decisions = out;
    }

    /// Queues a task of `job` with the scheduler: an active task of an active job, once its
    /// dependencies are met.
    pub(crate) fn enqueue(&mut self, job: &str, task: &str, fx: &mut Effects) {
        let Some(j) = self.jobs.get(job) else { return };
        let Some(t) = j.tasks.get(task) else { return };
        if j.wire.state != gangway_api::JobState::Active
            || t.wire.state != TaskState::Active
            || self.deps.verdict(t.key).is_some()
        {
            return;
        }
        // A Slurm job waits outside the scheduler while held, before its begin time, while
        // its dependency is unmet or its array's running limit is reached.
        if let Some(id) = j.wire.slurm.as_ref().map(|s| s.job_id) {
            if self.slurm_gate(job).is_some() {
                self.slurm.gated.insert(id);
                return;
            }
            self.slurm.gated.remove(&id);
        }
        let Some(j) = self.jobs.get(job) else { return };
        let Some(t) = j.tasks.get(task) else { return };
        let Some(pool) = self.pools.get(&j.wire.pool_info.pool_id) else { return };
        let order = QueueKey::new(j.wire.priority, j.seq, t.seq);
        let (key, slots, need) = (t.key, t.wire.required_slots, alloc::task_need(&t.wire));
        let gang = t.wire.multi_instance_settings.as_ref().map(|m| m.number_of_instances);
        let (pool, limit) = (pool.key, alloc::time_limit(&pool.wire, Some(&t.wire.constraints)));
        let manager = j.wire.job_manager_task.as_ref().is_some_and(|m| m.id == task);
        self.bar_prep_failures(job, key);
        let manager_of = manager.then(|| job.to_owned());
        let job = self.job_facts(job);
        let ev = Event::TaskQueued { task: key, pool, order, slots, need, gang, limit, job };
        self.sched_event(ev, fx);
        // A job manager that did not start makes room, as Azure Batch does.
        if let Some(job) = manager_of.filter(|_| self.task_by_key(key).is_some_and(|t| t.state == TaskState::Active)) {
            self.make_room_for_manager(&job, fx);
        }
    }

    pub(crate) fn task_mut(&mut self, key: TaskKey) -> Option<(&mut JobRec, String)> {
        let (job, task) = self.task_index.get(&key)?;
        let task = task.clone();
        let j = self.jobs.get_mut(job)?;
        Some((j, task))
    }

    pub(crate) fn put_task(job: &str, t: &TaskRec, fx: &mut Effects) {
        fx.writes.push(Write::PutTask {
            job: job.to_owned(),
            id: t.wire.id.clone(),
            seq: t.seq,
            attempt: t.attempt,
            body: serde_json::to_string(&t.wire).expect("tasks serialize"),
        });
    }

    /// Persists the nodes whose facts changed (or that were forgotten) during this change.
    pub fn flush_nodes(&mut self, fx: &mut Effects) {
        for name in std::mem::take(&mut self.dirty_nodes) {
            let Some(n) = self.nodes.get_mut(&name) else {
                fx.writes.push(Write::DeleteNode { id: name });
                continue;
            };
            let facts = n.facts();
            if n.persisted.as_ref() == Some(&facts) {
                continue;
            }
            fx.writes.push(Write::PutNode(crate::store::StoredNode {
                id: name,
                body: serde_json::to_string(&n.wire).expect("nodes serialize"),
                boot_id: n.boot_id.clone(),
                leaving: n.leaving,
                wait_for_start: n.wait_for_start,
            }));
            n.persisted = Some(facts);
        }
    }

    pub(crate) fn put_job(j: &JobRec, fx: &mut Effects) {
        fx.writes.push(Write::PutJob {
            id: j.wire.id.clone(),
            seq: j.seq,
            body: serde_json::to_string(&j.wire).expect("jobs serialize"),
        });
    }
}

/// Moves a task to `state`, recording the previous state and the times.
pub(crate) fn set_task_state(t: &mut Task, state: TaskState, now: Timestamp) {
    if t.state == state {
        return;
    }
    t.previous_state = Some(t.state);
    t.previous_state_transition_time = Some(t.state_transition_time);
    t.state = state;
    t.state_transition_time = now;
}

#[cfg(test)]
mod tests;

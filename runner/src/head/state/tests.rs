//! Drives [`HeadState`] directly: launchers are channels, the store is the list of writes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use gangway_api::messages::{AttemptId, HeadMessage, Hello, TaskFinished};
use gangway_api::*;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{Effects, HeadState, Timer};
use crate::store::{Snapshot, StoredTask, Write};

/// The owner of the jobs these tests add.
fn root() -> Owner {
    Owner { uid: 0, name: "root".into() }
}

mod deps;
mod fairness;
mod gangs;
mod limits;
mod manager;
mod memory;
mod nodes;
mod prep;
mod purge;
mod schedules;
mod slurm_gpus;
mod slurm_layout;
mod task_control;
mod trust;

const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends a change's messages, as the store callback does once its writes are durable.
fn deliver(fx: Effects) {
    for (tx, msg) in fx.sends {
        let _ = tx.send(msg);
    }
}

/// `"job/task#attempt"` → its [`AttemptId`].
fn id(s: &str) -> AttemptId {
    let (job, rest) = s.split_once('/').expect("job/task#n");
    let (task, attempt) = rest.split_once('#').expect("job/task#n");
    AttemptId { job: job.into(), task: task.into(), attempt: attempt.parse().expect("attempt number") }
}

fn show_id(a: &AttemptId) -> String {
    format!("{}/{}#{}", a.job, a.task, a.attempt)
}

fn show(m: &HeadMessage) -> String {
    match m {
        HeadMessage::StartTask(s) => format!("start {}", show_id(&s.id)),
        HeadMessage::KillTask { id, reason } => format!("kill {} {reason}", show_id(id)),
        HeadMessage::Ack { id } => format!("ack {}", show_id(id)),
        HeadMessage::RunStartTask(r) => format!("run start task {}", r.command_line),
        HeadMessage::Leave => "leave".into(),
        other => format!("{other:?}"),
    }
}

/// The report of attempt `a` ending with exit code `code`.
fn exited(a: &str, code: i32) -> TaskFinished {
    TaskFinished::exited_now(id(a), code)
}

/// A head, its fake launchers and everything it asked the store to write.
struct Sim {
    st: HeadState,
    /// Each node's latest connection: what the head sent on it, and its generation.
    conns: HashMap<String, (UnboundedReceiver<HeadMessage>, u64)>,
    writes: Vec<Write>,
    timers: Vec<Timer>,
}

impl Sim {
    fn new() -> Sim {
        let st = HeadState::new(NODE_TIMEOUT, Duration::from_secs(1));
        Sim { st, conns: HashMap::new(), writes: Vec::new(), timers: Vec::new() }
    }

    /// A head with pool `p` of one-slot nodes that take multi-instance tasks, `nodes` joined.
    fn with_gang_pool(nodes: &[&str]) -> Sim {
        let mut sim = Sim::new();
        let p = PoolAddParameter {
            id: "p".into(),
            task_slots_per_node: Some(1),
            enable_inter_node_communication: true,
            ..Default::default()
        };
        sim.apply(|st, fx| st.add_pool(p, fx)).unwrap();
        for n in nodes {
            sim.node(n);
        }
        sim
    }

    /// A head with pool `p`.
    fn with_pool(slots: u32, fill: NodeFillType) -> Sim {
        let mut sim = Sim::new();
        sim.pool("p", slots, fill, None);
        sim
    }

    fn pool(&mut self, id: &str, slots: u32, fill: NodeFillType, start_task: Option<StartTask>) {
        let p = PoolAddParameter {
            id: id.into(),
            task_slots_per_node: Some(slots),
            task_scheduling_policy: Some(TaskSchedulingPolicy { node_fill_type: fill, ..Default::default() }),
            start_task,
            ..Default::default()
        };
        self.apply(|st, fx| st.add_pool(p, fx)).unwrap();
    }

    /// Runs one change, keeps its writes and timers, and delivers its messages.
    fn apply<R>(&mut self, f: impl FnOnce(&mut HeadState, &mut Effects) -> R) -> R {
        let mut fx = Effects::default();
        let r = f(&mut self.st, &mut fx);
        // As Head::apply does.
        self.st.flush_nodes(&mut fx);
        self.writes.append(&mut fx.writes);
        self.timers.append(&mut fx.timers);
        deliver(fx);
        r
    }

    fn job(&mut self, id: &str, priority: i32) {
        self.job_with(JobAddParameter { id: id.into(), priority: Some(priority), ..Default::default() });
    }

    fn job_with(&mut self, mut p: JobAddParameter) {
        p.pool_info = Some(PoolInformation { pool_id: "p".into() });
        self.apply(|st, fx| st.add_job(p, root(), fx)).unwrap();
    }

    /// A job whose tasks may be retried `retries` times.
    fn job_retrying(&mut self, id: &str, retries: i32) {
        let constraints = Some(JobConstraints { max_task_retry_count: Some(retries), ..Default::default() });
        self.job_with(JobAddParameter { id: id.into(), constraints, ..Default::default() });
    }

    /// Adds tasks to `job`, each given as `id` or `id:slots`.
    fn tasks(&mut self, job: &str, specs: &[&str]) {
        for spec in specs {
            let (id, slots) = spec.split_once(':').map_or((*spec, 1), |(i, s)| (i, s.parse().unwrap()));
            let p = TaskAddParameter {
                id: id.into(),
                command_line: "true".into(),
                required_slots: Some(slots),
                ..Default::default()
            };
            self.apply(|st, fx| st.add_task(job, p, fx)).unwrap();
        }
    }

    /// Registers launcher `name` on a new connection; returns the welcome's kill list.
    fn connect(&mut self, name: &str, running: &[&str], finished: Vec<TaskFinished>) -> Vec<String> {
        self.connect_to(name, "p", "boot", running, finished)
    }

    /// Registers launcher process `boot` of node `name` in `pool` on a new connection.
    fn connect_to(
        &mut self,
        name: &str,
        pool: &str,
        boot: &str,
        running: &[&str],
        finished: Vec<TaskFinished>,
    ) -> Vec<String> {
        self.register_with(name, pool, boot, NodeResources::default(), running, finished)
    }

    /// A fresh launcher of node `name` with `resources` joins `pool`.
    fn join(&mut self, name: &str, pool: &str, resources: NodeResources) {
        assert!(self.register_with(name, pool, "boot", resources, &[], Vec::new()).is_empty());
    }

    fn register_with(
        &mut self,
        name: &str,
        pool: &str,
        boot: &str,
        resources: NodeResources,
        running: &[&str],
        finished: Vec<TaskFinished>,
    ) -> Vec<String> {
        let (tx, rx) = unbounded_channel();
        let hello = Hello {
            name: name.into(),
            address: "10.0.0.1".into(),
            pool: pool.into(),
            resources,
            root_dir: "/var/gangway".into(),
            running: running.iter().map(|a| id(a)).collect(),
            finished,
            boot_id: boot.into(),
            topology: None,
        };
        let (generation, welcome) = self.apply(|st, fx| st.register(hello, tx, fx)).unwrap();
        self.conns.insert(name.into(), (rx, generation));
        welcome.kill.iter().map(show_id).collect()
    }

    /// A fresh launcher joins.
    fn node(&mut self, name: &str) {
        assert!(self.connect(name, &[], Vec::new()).is_empty());
    }

    /// The node's connection drops; returns its generation.
    fn disconnect(&mut self, name: &str) -> u64 {
        let generation = self.conns[name].1;
        self.apply(|st, fx| st.disconnected(name, generation, fx));
        generation
    }

    fn lost(&mut self, name: &str, generation: u64) {
        self.apply(|st, fx| st.node_lost(name, generation, fx));
    }

    /// `node` reports that attempt `a` exited with `code`.
    fn finish(&mut self, node: &str, a: &str, code: i32) {
        self.apply(|st, fx| st.finish_attempt(node, exited(a, code), fx));
    }

    /// What was sent to `node`'s current connection since the last look.
    fn sent(&mut self, node: &str) -> Vec<String> {
        let rx = &mut self.conns.get_mut(node).expect("connected").0;
        std::iter::from_fn(|| rx.try_recv().ok()).map(|m| show(&m)).collect()
    }

    /// The attempts started on `node` since the last look.
    fn starts(&mut self, node: &str) -> Vec<String> {
        self.sent(node).into_iter().filter_map(|m| m.strip_prefix("start ").map(str::to_owned)).collect()
    }

    fn task(&self, job: &str, task: &str) -> &Task {
        &self.st.jobs[job].tasks[task].wire
    }

    fn node_of(&self, job: &str, task: &str) -> &str {
        &self.task(job, task).node_info.as_ref().expect("placed").node_id
    }

    fn node_wire(&self, node: &str) -> &ComputeNode {
        &self.st.nodes[node].wire
    }

    fn job_wire(&self, job: &str) -> &Job {
        &self.st.jobs[job].wire
    }

    /// What the store holds after the writes so far: the latest record of each thing.
    fn snapshot(&self) -> Snapshot {
        let (mut pools, mut jobs, mut tasks) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let (mut nodes, mut counters, mut tokens) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut usage = (Vec::new(), 0);
        let (mut schedules, mut trust) = (BTreeMap::new(), BTreeMap::new());
        let mut requests: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for w in self.writes.iter().cloned() {
            match w {
                Write::PutPool { id, body } => {
                    pools.insert(id, body);
                }
                Write::PutJob { id, seq, body } => {
                    jobs.insert(id, (seq, body));
                }
                Write::PutTask { job, id, seq, attempt, body } => {
                    tasks.insert((job.clone(), id), StoredTask { job, seq, attempt, body });
                }
                Write::PutNode(n) => {
                    nodes.insert(n.id.clone(), n);
                }
                Write::DeleteNode { id } => {
                    nodes.remove(&id);
                }
                Write::PutCounter { name, value } => {
                    counters.insert(name, value);
                }
                Write::DeleteTask { job, id } => {
                    tasks.remove(&(job, id));
                }
                Write::DeleteJob { id } => {
                    jobs.remove(&id);
                    tasks.retain(|(job, _), _| *job != id);
                }
                Write::PutToken { id, body } => {
                    tokens.insert(id, body);
                }
                Write::DeleteToken { id } => {
                    tokens.remove(&id);
                }
                Write::PutUsage { at, rows } => usage = (rows, at),
                Write::PutSchedule { id, body } => {
                    schedules.insert(id, body);
                }
                Write::DeleteSchedule { id } => {
                    schedules.remove(&id);
                }
                Write::PutTrust { id, body } => {
                    trust.insert(id, body);
                }
                Write::PutRequest { key, at_ms, body } => {
                    requests.insert(key, (at_ms, body));
                }
                Write::DeleteRequestsBefore { at_ms } => requests.retain(|_, (at, _)| *at >= at_ms),
                // Not read back at start: sacct reads it from the store.
                Write::PutHistory { .. } => {}
                other => panic!("unexpected write {other:?}"),
            }
        }
        let mut jobs: Vec<_> = jobs.into_values().collect();
        jobs.sort_by_key(|(seq, _)| *seq);
        let mut tasks: Vec<_> = tasks.into_values().collect();
        tasks.sort_by_key(|t| t.seq);
        Snapshot {
            pools: pools.into_values().collect(),
            jobs,
            tasks,
            nodes: nodes.into_values().collect(),
            counters: counters.into_iter().collect(),
            tokens: tokens.into_values().collect(),
            usage: usage.0,
            usage_at: usage.1,
            schedules: schedules.into_values().collect(),
            trust: trust.into_values().collect(),
            requests: {
                let mut r: Vec<(u64, String)> = requests.into_values().collect();
                r.sort();
                r.into_iter().map(|(_, b)| b).collect()
            },
        }
    }

    /// A new head (no launchers yet) rebuilt from this one's store.
    fn restart(&self) -> Sim {
        let mut sim = Sim::new();
        let snap = self.snapshot();
        sim.apply(|st, fx| st.restore(snap, fx)).unwrap();
        sim
    }
}

/// A Slurm submission to `partition` as sbatch sends one (root's, one task of one CPU on one
/// node), with `extra` JSON fields (`,"memPerCpuMb":50`).
fn slurm_request(partition: &str, extra: &str) -> gangway_api::slurm::SlurmSubmit {
    let mut req: gangway_api::slurm::SlurmSubmit = serde_json::from_str(&format!(
        r#"{{"name":"a","uid":0,"gid":0,"user":"root","script":"true","workDir":"/","submitDir":"/",
            "submitHost":"h","output":"o","nodes":1,"ntasks":1,"cpusPerTask":1{extra}}}"#
    ))
    .unwrap();
    req.partition = Some(partition.into());
    req
}

fn failure_code(t: &Task) -> Option<&str> {
    t.execution_info.failure_info.as_ref().map(|f| f.code.as_str())
}

#[test]
fn tasks_start_by_job_priority_then_job_then_task_order() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.job("low", 0);
    sim.tasks("low", &["a", "b"]);
    sim.job("high", 10);
    sim.tasks("high", &["c", "d"]);
    sim.job("later", 0);
    sim.tasks("later", &["e"]);
    sim.tasks("low", &["f"]);
    sim.job("lowest", -5);
    sim.tasks("lowest", &["g"]);
    sim.node("n1");
    let mut order = Vec::new();
    loop {
        match sim.starts("n1").as_slice() {
            [] => break,
            [a] => order.push(a.clone()),
            more => panic!("one slot, yet {more:?} started"),
        }
        sim.finish("n1", order.last().unwrap(), 0);
    }
    assert_eq!(order, ["high/c#1", "high/d#1", "low/a#1", "low/b#1", "low/f#1", "later/e#1", "lowest/g#1"]);
}

#[test]
fn required_slots_are_checked_and_respected() {
    let mut sim = Sim::with_pool(4, NodeFillType::Spread);
    sim.job("j", 0);
    let huge =
        TaskAddParameter { id: "huge".into(), command_line: "x".into(), required_slots: Some(5), ..Default::default() };
    assert_eq!(sim.apply(|st, fx| st.add_task("j", huge, fx)).unwrap_err().body.code, "InvalidPropertyValue");
    sim.tasks("j", &["a:3", "b:2", "c:1"]);
    sim.node("n1");
    // b does not fit beside a, but does not hold up c.
    assert_eq!(sim.starts("n1"), ["j/a#1", "j/c#1"]);
    let n = sim.node_wire("n1");
    assert_eq!((n.state, n.running_tasks_count, n.running_task_slots_count), (NodeState::Running, 2, 4));
    sim.finish("n1", "j/c#1", 0);
    assert_eq!(sim.starts("n1"), Vec::<String>::new());
    sim.finish("n1", "j/a#1", 0);
    assert_eq!(sim.starts("n1"), ["j/b#1"]);
    assert_eq!(sim.node_wire("n1").running_task_slots_count, 2);
}

#[test]
fn spread_and_pack_pools_place_tasks_differently() {
    let cases = [(NodeFillType::Spread, ["n1", "n2", "n1", "n2"]), (NodeFillType::Pack, ["n1", "n1", "n2", "n2"])];
    for (fill, expected) in cases {
        let mut sim = Sim::with_pool(2, fill);
        sim.node("n1");
        sim.node("n2");
        sim.job("j", 0);
        sim.tasks("j", &["t1", "t2", "t3", "t4"]);
        let placed: Vec<&str> = ["t1", "t2", "t3", "t4"].iter().map(|t| sim.node_of("j", t)).collect();
        assert_eq!(placed, expected, "{fill:?}");
    }
}

#[test]
fn success_frees_the_slot_and_every_report_is_acked() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["t1", "t2"]);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    sim.finish("n1", "j/t1#1", 0);
    let t1 = sim.task("j", "t1");
    assert_eq!(t1.state, TaskState::Completed);
    assert_eq!(t1.execution_info.result, Some(TaskExecutionResult::Success));
    assert_eq!((t1.execution_info.exit_code, failure_code(t1)), (Some(0), None));
    assert_eq!(sim.sent("n1"), ["ack j/t1#1", "start j/t2#1"]);
    // A wrong attempt, a repeated report, an unknown job: acked, and nothing else happens.
    for stale in ["j/t2#7", "j/t1#1", "gone/x#1"] {
        let writes = sim.writes.len();
        sim.finish("n1", stale, 1);
        assert_eq!(sim.sent("n1"), [format!("ack {stale}")]);
        assert_eq!(sim.writes.len(), writes, "{stale} changed the state");
    }
    assert_eq!((sim.task("j", "t2").state, sim.st.jobs["j"].tasks["t2"].attempt), (TaskState::Running, 1));
    assert_eq!(sim.task("j", "t1").execution_info.result, Some(TaskExecutionResult::Success));
    let n = sim.node_wire("n1");
    assert_eq!((n.total_tasks_run, n.total_tasks_succeeded, n.running_tasks_count), (1, 1, 1));
}

#[test]
fn non_zero_exit_is_retried_max_task_retry_count_times() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job_retrying("j", 2);
    sim.tasks("j", &["t"]);
    for attempt in 1..=3u32 {
        let mut expected = vec![format!("start j/t#{attempt}")];
        if attempt > 1 {
            expected.insert(0, format!("ack j/t#{}", attempt - 1));
        }
        assert_eq!(sim.sent("n1"), expected);
        assert_eq!(sim.task("j", "t").state, TaskState::Running);
        assert_eq!(sim.task("j", "t").execution_info.retry_count, attempt - 1);
        sim.finish("n1", &format!("j/t#{attempt}"), 3);
    }
    assert_eq!(sim.sent("n1"), ["ack j/t#3"]);
    let t = sim.task("j", "t");
    let info = &t.execution_info;
    assert_eq!(t.state, TaskState::Completed);
    assert_eq!((info.retry_count, info.requeue_count, info.exit_code), (2, 0, Some(3)));
    assert_eq!(info.result, Some(TaskExecutionResult::Failure));
    assert_eq!(failure_code(t), Some("FailureExitCode"));
    assert_eq!(sim.st.jobs["j"].running, 0);
}

#[test]
fn a_lost_node_is_unusable_and_its_tasks_run_elsewhere() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["t"]);
    assert_eq!(sim.sent("n1"), ["start j/t#1"]);
    sim.node("n2");
    let g1 = sim.disconnect("n1");
    let timer = Timer::NodeLost { node: "n1".into(), generation: g1, after: NODE_TIMEOUT };
    assert_eq!(sim.timers.last(), Some(&timer));
    assert_eq!(sim.task("j", "t").state, TaskState::Running, "still running until the timer fires");
    sim.lost("n1", g1);
    assert_eq!(sim.node_wire("n1").state, NodeState::Unusable);
    assert_eq!(sim.node_wire("n1").running_tasks_count, 0);
    let info = &sim.task("j", "t").execution_info;
    assert_eq!((info.requeue_count, info.retry_count), (1, 0));
    assert_eq!(sim.sent("n2"), ["start j/t#2"]);
    assert_eq!((sim.task("j", "t").state, sim.node_of("j", "t")), (TaskState::Running, "n2"));
    assert_eq!(sim.st.jobs["j"].running, 1);

    // n2 drops and comes back still running it: the first connection's timer changes nothing…
    let g2 = sim.disconnect("n2");
    assert!(sim.connect("n2", &["j/t#2"], Vec::new()).is_empty());
    sim.lost("n2", g2);
    assert_eq!(sim.node_wire("n2").state, NodeState::Running);
    assert_eq!(sim.task("j", "t").execution_info.requeue_count, 1);
    // …not even once the new connection drops too: only its own timer counts.
    let g3 = sim.disconnect("n2");
    sim.lost("n2", g2);
    assert_eq!(sim.node_wire("n2").state, NodeState::Unknown);
    assert_eq!(sim.task("j", "t").state, TaskState::Running);
    sim.lost("n2", g3);
    assert_eq!(sim.node_wire("n2").state, NodeState::Unusable);
    let t = sim.task("j", "t");
    assert_eq!((t.state, t.execution_info.requeue_count), (TaskState::Active, 2));
}

#[test]
fn a_reconnecting_node_is_reconciled_with_its_report() {
    let mut sim = Sim::with_pool(3, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["kept", "done", "gone", "queued"]);
    assert_eq!(sim.starts("n1"), ["j/kept#1", "j/done#1", "j/gone#1"]);
    sim.disconnect("n1");
    let kill = sim.connect("n1", &["j/kept#1", "old/x#4"], vec![exited("j/done#1", 0)]);
    assert_eq!(kill, ["old/x#4"]);
    let kept = sim.task("j", "kept");
    assert_eq!((kept.state, kept.execution_info.requeue_count), (TaskState::Running, 0));
    assert_eq!(sim.st.jobs["j"].tasks["kept"].attempt, 1);
    assert_eq!(sim.task("j", "done").execution_info.result, Some(TaskExecutionResult::Success));
    assert_eq!(sim.task("j", "gone").execution_info.requeue_count, 1);
    // The requeued task keeps its place in the queue, ahead of the one never started.
    assert_eq!(sim.sent("n1"), ["ack j/done#1", "start j/gone#2", "start j/queued#1"]);
    assert_eq!(sim.node_wire("n1").running_tasks_count, 3);
    assert_eq!(sim.st.jobs["j"].running, 3);
}

/// n1 runs j/t1, j/t2 and j/t3 wait; the head restarts and n2 joins first.
fn restarted_head() -> Sim {
    let mut old = Sim::with_pool(1, NodeFillType::Spread);
    old.node("n1");
    old.job("j", 0);
    old.tasks("j", &["t1", "t2", "t3"]);
    let mut sim = old.restart();
    assert_eq!(sim.timers, [Timer::NodeLost { node: "n1".into(), generation: 0, after: NODE_TIMEOUT }]);
    let states: Vec<_> = ["t1", "t2", "t3"].iter().map(|t| sim.task("j", t).state).collect();
    assert_eq!(states, [TaskState::Running, TaskState::Active, TaskState::Active]);
    assert_eq!(sim.st.awaiting_node["n1"].len(), 1);
    sim.node("n2");
    assert_eq!(sim.sent("n2"), ["start j/t2#1"]);
    sim
}

#[test]
fn a_restored_running_task_is_requeued_if_its_node_never_returns() {
    let mut sim = restarted_head();
    sim.lost("n1", 0);
    let info = &sim.task("j", "t1").execution_info;
    assert_eq!((sim.task("j", "t1").state, info.requeue_count, info.retry_count), (TaskState::Active, 1, 0));
    sim.finish("n2", "j/t2#1", 0);
    assert_eq!(sim.sent("n2"), ["ack j/t2#1", "start j/t1#2"]);
}

#[test]
fn a_restored_running_task_is_kept_if_its_node_reports_it() {
    let mut sim = restarted_head();
    assert!(sim.connect("n1", &["j/t1#1"], Vec::new()).is_empty());
    sim.lost("n1", 0);
    assert!(sim.st.awaiting_node.is_empty());
    let t1 = sim.task("j", "t1");
    assert_eq!((t1.state, t1.execution_info.requeue_count), (TaskState::Running, 0));
    assert_eq!(sim.node_wire("n1").running_tasks_count, 1);
    sim.finish("n1", "j/t1#1", 0);
    assert_eq!(sim.task("j", "t1").execution_info.result, Some(TaskExecutionResult::Success));
    assert_eq!(sim.sent("n1"), ["ack j/t1#1", "start j/t3#1"]);
}

#[test]
fn a_restored_attempt_reported_failed_is_retried_once_elsewhere() {
    let mut old = Sim::with_pool(1, NodeFillType::Spread);
    old.node("n1");
    old.job_retrying("j", 1);
    old.tasks("j", &["t"]);
    let mut sim = old.restart();
    sim.node("n2");
    assert!(sim.connect("n1", &[], vec![exited("j/t#1", 1)]).is_empty());
    assert_eq!(sim.sent("n2"), ["start j/t#2"]);
    assert_eq!(sim.sent("n1"), ["ack j/t#1"]);
    let t = sim.task("j", "t");
    assert_eq!((t.state, t.execution_info.retry_count, t.execution_info.requeue_count), (TaskState::Running, 1, 0));
    assert_eq!(sim.node_of("j", "t"), "n2");
    assert_eq!(sim.node_wire("n1").state, NodeState::Idle);
}

#[test]
fn terminating_a_job_kills_its_running_tasks_and_starts_no_more() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job_retrying("j", 3);
    sim.tasks("j", &["t1", "t2"]);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    sim.apply(|st, fx| st.terminate_job("j", None, fx)).unwrap();
    assert_eq!(sim.sent("n1"), ["kill j/t1#1 JobTerminated"]);
    assert_eq!(sim.job_wire("j").state, JobState::Terminating);
    let again = sim.apply(|st, fx| st.terminate_job("j", None, fx)).unwrap_err();
    assert_eq!(again.body.code, "JobCompleted");
    sim.finish("n1", "j/t1#1", 137);
    assert_eq!(sim.sent("n1"), ["ack j/t1#1"], "the queued task must not start, the killed one not retry");
    let t1 = sim.task("j", "t1");
    assert_eq!(
        (t1.state, t1.execution_info.retry_count, failure_code(t1)),
        (TaskState::Completed, 0, Some("JobTerminated"))
    );
    assert_eq!(sim.task("j", "t2").state, TaskState::Active);
    let job = sim.job_wire("j");
    assert_eq!(
        (job.state, job.execution_info.terminate_reason.as_deref()),
        (JobState::Completed, Some("UserTerminate"))
    );
    assert!(job.execution_info.end_time.is_some());
}

#[test]
fn terminatejob_on_all_tasks_complete_ends_the_job() {
    let mut sim = Sim::with_pool(2, NodeFillType::Spread);
    sim.node("n1");
    let on_all = Some(OnAllTasksComplete::TerminateJob);
    // Created with it and no task: every task (none) has completed, as Azure documents.
    sim.job_with(JobAddParameter { id: "empty".into(), on_all_tasks_complete: on_all, ..Default::default() });
    let job = sim.job_wire("empty");
    assert_eq!(
        (job.state, job.execution_info.terminate_reason.as_deref()),
        (JobState::Completed, Some("AllTasksComplete"))
    );
    // The documented way: add the tasks, then switch it on; it cannot be switched back.
    sim.job("j", 0);
    sim.tasks("j", &["a", "b"]);
    let patch = |v| JobPatchParameter { on_all_tasks_complete: Some(v), ..Default::default() };
    sim.apply(|st, fx| st.patch_job("j", patch(OnAllTasksComplete::TerminateJob), fx)).unwrap();
    let e = sim.apply(|st, fx| st.patch_job("j", patch(OnAllTasksComplete::NoAction), fx)).unwrap_err();
    assert!(e.body.message.value.contains("cannot go back to noaction"), "{:?}", e.body);
    sim.finish("n1", "j/a#1", 0);
    assert_eq!(sim.job_wire("j").state, JobState::Active);
    sim.finish("n1", "j/b#1", 1);
    let job = sim.job_wire("j");
    assert_eq!(
        (job.state, job.execution_info.terminate_reason.as_deref()),
        (JobState::Completed, Some("AllTasksComplete"))
    );
}

#[test]
fn a_jobs_wall_clock_follows_a_patch_and_never_ends_a_later_job_of_the_same_id() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    let limit = |secs| {
        Some(JobConstraints { max_wall_clock_time: Some(IsoDuration(Duration::from_secs(secs))), ..Default::default() })
    };
    sim.job_with(JobAddParameter { id: "j".into(), constraints: limit(3600), ..Default::default() });
    let deadline = |sim: &Sim| match sim.timers.last() {
        Some(Timer::JobDeadline { at, .. }) => *at,
        other => panic!("{other:?}"),
    };
    let first = deadline(&sim);
    let patch = JobPatchParameter { constraints: limit(7200), ..Default::default() };
    sim.apply(|st, fx| st.patch_job("j", patch, fx)).unwrap();
    let second = deadline(&sim);
    assert!(second > first);
    sim.apply(|st, fx| st.job_deadline("j", first, fx));
    assert_eq!(sim.job_wire("j").state, JobState::Active, "the old deadline no longer applies");
    // A new job of the same id: the old job's timer is not its deadline.
    sim.apply(|st, fx| st.delete_job("j", fx)).unwrap();
    sim.job_with(JobAddParameter { id: "j".into(), constraints: limit(60), ..Default::default() });
    sim.apply(|st, fx| st.job_deadline("j", second, fx));
    assert_eq!(sim.job_wire("j").state, JobState::Active);
    let own = deadline(&sim);
    sim.apply(|st, fx| st.job_deadline("j", own, fx));
    let job = sim.job_wire("j");
    assert_eq!(
        (job.state, job.execution_info.terminate_reason.as_deref()),
        (JobState::Completed, Some("MaxWallClockTimeExpiry"))
    );
}

#[test]
fn a_kill_asked_while_the_node_was_away_is_sent_when_it_returns() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["t"]);
    sim.disconnect("n1");
    sim.apply(|st, fx| st.terminate_task("j", "t", fx)).unwrap();
    assert_eq!(sim.connect("n1", &["j/t#1"], Vec::new()), ["j/t#1"]);
    sim.finish("n1", "j/t#1", 143);
    let t = sim.task("j", "t");
    assert_eq!((t.state, failure_code(t)), (TaskState::Completed, Some("TaskTerminated")));
}

#[test]
fn a_job_terminating_across_a_restart_still_kills_and_completes() {
    let mut old = Sim::with_pool(1, NodeFillType::Spread);
    old.node("n1");
    old.job_retrying("j", 3);
    old.tasks("j", &["t1", "t2"]);
    old.apply(|st, fx| st.terminate_job("j", None, fx)).unwrap();
    let mut sim = old.restart();
    assert_eq!(sim.job_wire("j").state, JobState::Terminating);
    assert_eq!(sim.connect("n1", &["j/t1#1"], Vec::new()), ["j/t1#1"]);
    sim.finish("n1", "j/t1#1", 137);
    assert_eq!(sim.sent("n1"), ["ack j/t1#1"]);
    let t1 = sim.task("j", "t1");
    assert_eq!(
        (t1.state, t1.execution_info.retry_count, failure_code(t1)),
        (TaskState::Completed, 0, Some("JobTerminated"))
    );
    assert_eq!(sim.task("j", "t2").state, TaskState::Active);
    assert_eq!(sim.job_wire("j").state, JobState::Completed);
}

#[test]
fn task_counts_tally_tasks_and_slots_by_outcome() {
    let mut sim = Sim::with_pool(4, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["ok:1", "bad:2", "busy:1", "big:4", "dropped:1"]);
    assert_eq!(sim.starts("n1"), ["j/ok#1", "j/bad#1", "j/busy#1"]);
    sim.apply(|st, fx| st.terminate_task("j", "dropped", fx)).unwrap();
    assert_eq!(failure_code(sim.task("j", "dropped")), Some("TaskTerminated"));
    sim.finish("n1", "j/ok#1", 0);
    sim.finish("n1", "j/bad#1", 1);
    assert_eq!(sim.starts("n1"), Vec::<String>::new(), "big needs the whole node");
    let counts = sim.st.task_counts("j").unwrap();
    let tc =
        |active, running, completed, succeeded, failed| TaskCounts { active, running, completed, succeeded, failed };
    assert_eq!(counts.task_counts, tc(1, 1, 3, 1, 2));
    assert_eq!(counts.task_slot_counts, tc(4, 1, 4, 1, 3));
    sim.finish("n1", "j/busy#1", 0);
    assert_eq!(sim.starts("n1"), ["j/big#1"]);
    let counts = sim.st.task_counts("j").unwrap();
    assert_eq!(counts.task_counts, tc(0, 1, 4, 2, 2));
    assert_eq!(counts.task_slot_counts, tc(0, 4, 5, 2, 3));
}

#[test]
fn a_signal_goes_to_the_running_attempts_node_only() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["a", "b"]);
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
    // `b` is queued behind `a`: nothing to signal, nothing sent.
    sim.apply(|st, fx| {
        st.signal_task("j", "a", 12, fx);
        st.signal_task("j", "b", 12, fx);
        st.signal_task("j", "nope", 12, fx);
    });
    let sent = sim.sent("n1");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with("SignalTask") && sent[0].contains("\"a\"") && sent[0].contains("signal: 12"),
        "{sent:?}"
    );
    sim.finish("n1", "j/a#1", 0);
    sim.sent("n1");
    sim.apply(|st, fx| st.signal_task("j", "a", 12, fx));
    assert!(!sim.sent("n1").iter().any(|m| m.starts_with("SignalTask")), "an ended attempt gets no signal");
}

#[test]
fn pool_scheduling_and_time_limits_are_checked_by_field() {
    let mut sim = Sim::new();
    let policy = |backfill, reservations, examined| {
        Some(TaskSchedulingPolicy { backfill, reservations, max_tasks_examined: examined, ..Default::default() })
    };
    let hour = |h: u64| Some(IsoDuration(Duration::from_secs(h * 3600)));
    for (p, field) in [
        (
            PoolAddParameter { task_scheduling_policy: policy(None, Some(0), None), ..Default::default() },
            "reservations",
        ),
        (
            PoolAddParameter { task_scheduling_policy: policy(None, Some(65), None), ..Default::default() },
            "reservations",
        ),
        (
            PoolAddParameter { task_scheduling_policy: policy(None, None, Some(0)), ..Default::default() },
            "maxTasksExamined",
        ),
        (
            PoolAddParameter { default_time_limit: Some(IsoDuration(Duration::ZERO)), ..Default::default() },
            "defaultTimeLimit",
        ),
        (
            PoolAddParameter { default_time_limit: hour(2), max_time_limit: hour(1), ..Default::default() },
            "defaultTimeLimit",
        ),
    ] {
        let p = PoolAddParameter { id: "bad".into(), ..p };
        let e = sim.apply(|st, fx| st.add_pool(p, fx)).unwrap_err().body.message.value;
        assert!(e.contains(field), "{e} names {field}");
    }
    let good = PoolAddParameter {
        id: "ok".into(),
        task_scheduling_policy: policy(Some(Backfill::Conservative), Some(4), Some(100)),
        max_time_limit: hour(1),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_pool(good, fx)).unwrap();
    sim.apply(|st, fx| {
        st.add_job(
            JobAddParameter {
                id: "j".into(),
                pool_info: Some(PoolInformation { pool_id: "ok".into() }),
                ..Default::default()
            },
            root(),
            fx,
        )
    })
    .unwrap();
    let over = TaskAddParameter {
        id: "t".into(),
        command_line: "true".into(),
        constraints: Some(TaskConstraints { max_wall_clock_time: hour(2), ..Default::default() }),
        ..Default::default()
    };
    let e = sim.apply(|st, fx| st.add_task("j", over, fx)).unwrap_err().body.message.value;
    assert!(e.starts_with("Requested time limit is invalid (missing or exceeds some limit)"), "{e}");
}

#[test]
fn a_slurm_job_requeued_by_a_lost_node_shows_the_restart() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    let cpus = gangway_topology::NodeResources { cpus: 1, cores: 1, memory_bytes: 1 << 30, ..Default::default() };
    sim.join("n1", "p", cpus.clone());
    let id = sim.apply(|st, fx| st.slurm_submit(slurm_request("p", ""), "127.0.0.1:1", fx)).unwrap().job_id;
    assert_eq!(sim.starts("n1"), [format!("{id}/batch#1")]);
    assert_eq!(sim.st.slurm_job(id).unwrap().restarts, 0);
    sim.join("n2", "p", cpus);
    let g1 = sim.disconnect("n1");
    sim.lost("n1", g1);
    assert_eq!(sim.starts("n2"), [format!("{id}/batch#2")]);
    let job = sim.st.slurm_job(id).unwrap();
    assert_eq!(job.restarts, 1, "Restarts= counts the requeue");
    // The run on the lost node is kept for `sacct -D`, ended NODE_FAIL.
    assert_eq!(job.earlier_runs.len(), 1, "{:?}", job.earlier_runs);
    let run = &job.earlier_runs[0];
    assert_eq!(
        (run.state, run.nodes.as_slice()),
        (gangway_api::slurm::SlurmJobState::NodeFail, &["n1".to_owned()][..])
    );
    assert!(run.start_time.is_some() && run.end_time.is_some(), "{run:?}");
}

//! Node operations and the pool's start task, driven through [`Sim`].

use gangway_api::*;
use ComputeNodeDeallocationOption::{Requeue, TaskCompletion, Terminate};

use gangway_api::messages::Hello;
use tokio::sync::mpsc::unbounded_channel;

use super::{failure_code, root, Sim};
use crate::head::error::ApiError;
use crate::store::Write;

impl Sim {
    /// A head with pool `p` (one slot per node) whose start task is `setup`.
    fn with_start_task(wait_for_success: bool) -> Sim {
        let mut sim = Sim::new();
        let st = StartTask {
            command_line: "setup".into(),
            environment_settings: Vec::new(),
            wait_for_success,
            max_task_retry_count: 0,
        };
        sim.pool("p", 1, NodeFillType::Spread, Some(st));
        sim
    }

    /// Launcher process `boot` of node `name` connects, with nothing running.
    fn boot(&mut self, name: &str, boot: &str) {
        assert!(self.connect_to(name, "p", boot, &[], Vec::new()).is_empty());
    }

    /// `node` reports its start task running (`exit` None) or completed with `exit`.
    fn start_task_status(&mut self, node: &str, exit: Option<i32>, retries: u32) {
        let generation = self.conns[node].1;
        let now = Timestamp::now();
        let info = StartTaskInformation {
            state: if exit.is_some() { StartTaskState::Completed } else { StartTaskState::Running },
            start_time: now,
            end_time: exit.map(|_| now),
            exit_code: exit,
            failure_info: None,
            retry_count: retries,
            last_retry_time: None,
            result: exit.map(|c| if c == 0 { TaskExecutionResult::Success } else { TaskExecutionResult::Failure }),
        };
        self.apply(|st, fx| st.start_task_status(node, generation, info, fx));
    }

    fn node_state(&self, node: &str) -> (NodeState, SchedulingState) {
        let n = self.node_wire(node);
        (n.state, n.scheduling_state)
    }

    fn disable(&mut self, node: &str, option: ComputeNodeDeallocationOption) {
        self.apply(|st, fx| st.disable_node_scheduling(Some("p"), node, Some(option), fx)).unwrap();
    }

    fn enable(&mut self, node: &str) {
        self.apply(|st, fx| st.enable_node_scheduling(Some("p"), node, fx)).unwrap();
    }

    fn remove(&mut self, nodes: &[&str], option: ComputeNodeDeallocationOption) -> Result<(), ApiError> {
        let p = NodeRemoveParameter {
            node_list: nodes.iter().map(|n| n.to_string()).collect(),
            node_deallocation_option: Some(option),
        };
        self.apply(|st, fx| st.remove_nodes("p", p, fx))
    }
}

#[test]
fn disabling_with_requeue_moves_running_tasks_elsewhere_without_a_retry() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.node("n2");
    sim.job_retrying("j", 3);
    sim.tasks("j", &["t1"]);
    assert_eq!(sim.node_of("j", "t1"), "n1");
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    sim.disable("n1", Requeue);
    assert_eq!(sim.sent("n1"), ["kill j/t1#1 NodeDisabled"]);
    assert_eq!(sim.sent("n2"), ["start j/t1#2"]);
    let info = &sim.task("j", "t1").execution_info;
    assert_eq!((info.requeue_count, info.retry_count), (1, 0));
    assert_eq!(sim.node_state("n1"), (NodeState::Offline, SchedulingState::Disabled));
    assert_eq!(sim.node_wire("n1").running_tasks_count, 0);
    // The killed attempt's report names an attempt the head has moved past.
    let writes = sim.writes.len();
    sim.finish("n1", "j/t1#1", 137);
    assert_eq!(sim.sent("n1"), ["ack j/t1#1"]);
    assert_eq!(sim.writes.len(), writes);
    // Nothing new lands on a disabled node…
    sim.tasks("j", &["t2"]);
    assert_eq!(sim.task("j", "t2").state, TaskState::Active);
    // …until its scheduling is enabled again.
    sim.enable("n1");
    assert_eq!(sim.sent("n1"), ["start j/t2#1"]);
    assert_eq!(sim.node_state("n1"), (NodeState::Running, SchedulingState::Enabled));
}

#[test]
fn disabling_with_terminate_fails_running_tasks_without_a_rerun() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.node("n2");
    sim.job_retrying("j", 3);
    sim.tasks("j", &["t1"]);
    sim.disable("n1", Terminate);
    assert_eq!(sim.sent("n1"), ["start j/t1#1", "kill j/t1#1 NodeDisabled"]);
    assert_eq!(sim.node_state("n1"), (NodeState::Running, SchedulingState::Disabled), "until the kill is reported");
    sim.finish("n1", "j/t1#1", 137);
    let t1 = sim.task("j", "t1");
    assert_eq!((t1.state, failure_code(t1)), (TaskState::Completed, Some("NodeDisabled")));
    assert_eq!((t1.execution_info.retry_count, t1.execution_info.requeue_count), (0, 0));
    assert_eq!(t1.execution_info.result, Some(TaskExecutionResult::Failure));
    assert_eq!(sim.sent("n2"), Vec::<String>::new(), "not run again");
    assert_eq!(sim.node_state("n1"), (NodeState::Offline, SchedulingState::Disabled));
}

#[test]
fn disabling_with_taskcompletion_lets_running_tasks_finish() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["t1", "t2"]);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    sim.disable("n1", TaskCompletion);
    assert_eq!(sim.sent("n1"), Vec::<String>::new());
    assert_eq!(sim.node_state("n1"), (NodeState::Running, SchedulingState::Disabled));
    sim.finish("n1", "j/t1#1", 0);
    assert_eq!(sim.task("j", "t1").execution_info.result, Some(TaskExecutionResult::Success));
    assert_eq!(sim.sent("n1"), ["ack j/t1#1"], "t2 must wait");
    assert_eq!(sim.node_state("n1"), (NodeState::Offline, SchedulingState::Disabled));
    // Disabling again is harmless; the node stays disabled across a reconnect.
    sim.disable("n1", Requeue);
    sim.disconnect("n1");
    sim.node("n1");
    assert_eq!(sim.node_state("n1"), (NodeState::Offline, SchedulingState::Disabled));
    sim.enable("n1");
    assert_eq!(sim.sent("n1"), ["start j/t2#1"]);
}

#[test]
fn a_removed_node_leaves_once_its_tasks_have_finished() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.node("n2");
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    sim.remove(&["n1"], TaskCompletion).unwrap();
    assert_eq!(sim.node_state("n1").0, NodeState::LeavingPool);
    let err = sim.apply(|st, fx| st.enable_node_scheduling(Some("p"), "n1", fx)).unwrap_err();
    assert_eq!((err.status.as_u16(), err.body.code.as_str()), (409, "NodeLeavingPool"));
    assert_eq!(sim.st.pools["p"].wire.current_dedicated_nodes, 2);
    sim.finish("n1", "j/t1#1", 0);
    assert_eq!(sim.sent("n1"), ["ack j/t1#1", "leave"]);
    assert!(!sim.st.nodes.contains_key("n1"));
    assert_eq!(sim.st.pools["p"].wire.current_dedicated_nodes, 1);
    // A later launcher of that name joins afresh.
    sim.boot("n1", "again");
    assert_eq!(sim.node_state("n1"), (NodeState::Idle, SchedulingState::Enabled));
}

#[test]
fn removing_with_requeue_or_terminate_ends_the_nodes_tasks_first() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.node("n2");
    sim.node("n3");
    sim.job("j", 0);
    sim.tasks("j", &["t1", "t2"]);
    assert_eq!((sim.node_of("j", "t1"), sim.node_of("j", "t2")), ("n1", "n2"));
    sim.remove(&["n1"], Requeue).unwrap();
    assert_eq!(sim.sent("n1"), ["start j/t1#1", "kill j/t1#1 NodeRemoved", "leave"]);
    assert!(!sim.st.nodes.contains_key("n1"));
    assert_eq!(sim.sent("n3"), ["start j/t1#2"]);
    assert_eq!(sim.task("j", "t1").execution_info.requeue_count, 1);
    sim.remove(&["n2"], Terminate).unwrap();
    assert_eq!(sim.sent("n2"), ["start j/t2#1", "kill j/t2#1 NodeRemoved"]);
    assert_eq!(sim.node_state("n2").0, NodeState::LeavingPool);
    sim.finish("n2", "j/t2#1", 143);
    assert_eq!(sim.sent("n2"), ["ack j/t2#1", "leave"]);
    assert_eq!(failure_code(sim.task("j", "t2")), Some("NodeRemoved"));
    assert_eq!(sim.st.nodes.keys().collect::<Vec<_>>(), ["n3"]);
}

#[test]
fn a_leaving_node_that_is_lost_is_forgotten_and_its_tasks_requeued() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    sim.remove(&["n1"], TaskCompletion).unwrap();
    let g = sim.disconnect("n1");
    sim.lost("n1", g);
    assert!(!sim.st.nodes.contains_key("n1"));
    let t1 = sim.task("j", "t1");
    assert_eq!((t1.state, t1.execution_info.requeue_count), (TaskState::Active, 1));
}

#[test]
fn node_operations_refuse_bad_input_and_change_nothing() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.pool("q", 1, NodeFillType::Spread, None);
    sim.node("n1");
    assert!(sim.connect_to("m1", "q", "boot", &[], Vec::new()).is_empty());
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    let writes = sim.writes.len();
    let check = |r: Result<(), ApiError>, status: u16, code: &str, names: &str| {
        let e = r.unwrap_err();
        assert_eq!((e.status.as_u16(), e.body.code.as_str()), (status, code), "{}", e.body.message.value);
        assert!(e.body.message.value.contains(names), "{:?} should name {names}", e.body.message.value);
    };
    let r = sim.apply(|st, fx| st.disable_node_scheduling(Some("p"), "nope", None, fx));
    check(r, 404, "NodeNotFound", "'nope'");
    let r = sim.apply(|st, fx| st.disable_node_scheduling(None, "nope", None, fx));
    check(r, 404, "NodeNotFound", "'nope'");
    let r = sim.apply(|st, fx| st.disable_node_scheduling(Some("p"), "m1", None, fx));
    check(r, 404, "NodeNotFound", "pool 'q'");
    let r = sim.apply(|st, fx| st.enable_node_scheduling(Some("zz"), "n1", fx));
    check(r, 404, "PoolNotFound", "'zz'");
    check(sim.remove(&["n1", "m1"], Requeue), 409, "NodeNotInPool", "'m1'");
    check(sim.remove(&["n1", "ghost"], Requeue), 404, "NodeNotFound", "'ghost'");
    check(sim.remove(&[], Requeue), 400, "InvalidPropertyValue", "nodeList");
    let p = NodeRemoveParameter { node_list: vec!["n1".into()], node_deallocation_option: None };
    check(sim.apply(|st, fx| st.remove_nodes("zz", p, fx)), 404, "PoolNotFound", "'zz'");
    assert_eq!(sim.writes.len(), writes);
    assert_eq!(sim.node_state("n1"), (NodeState::Running, SchedulingState::Enabled));
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
}

#[test]
fn a_start_task_with_wait_for_success_holds_tasks_until_it_succeeds() {
    let mut sim = Sim::with_start_task(true);
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    sim.node("n1");
    assert_eq!(sim.sent("n1"), ["run start task setup"]);
    assert_eq!(sim.node_state("n1").0, NodeState::Starting);
    sim.start_task_status("n1", None, 0);
    assert_eq!(sim.node_state("n1").0, NodeState::WaitingForStartTask);
    assert_eq!(sim.task("j", "t1").state, TaskState::Active);
    sim.start_task_status("n1", Some(0), 0);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    assert_eq!(sim.node_state("n1").0, NodeState::Running);
    let info = sim.node_wire("n1").start_task_info.clone().unwrap();
    assert_eq!(
        (info.state, info.exit_code, info.result),
        (StartTaskState::Completed, Some(0), Some(TaskExecutionResult::Success))
    );
    assert_eq!(sim.node_wire("n1").start_task.as_ref().map(|s| s.command_line.as_str()), Some("setup"));
}

#[test]
fn a_failed_start_task_makes_the_node_unusable_for_tasks() {
    let mut sim = Sim::with_start_task(true);
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    sim.node("n1");
    sim.start_task_status("n1", None, 0);
    sim.start_task_status("n1", None, 1);
    assert_eq!(sim.node_wire("n1").start_task_info.as_ref().map(|i| i.retry_count), Some(1));
    sim.start_task_status("n1", Some(3), 1);
    assert_eq!(sim.node_state("n1").0, NodeState::StartTaskFailed);
    assert_eq!(sim.sent("n1"), ["run start task setup"]);
    assert_eq!(sim.task("j", "t1").state, TaskState::Active);
    // Another node whose start task succeeds takes the task.
    sim.node("n2");
    sim.start_task_status("n2", Some(0), 0);
    assert_eq!(sim.sent("n2"), ["run start task setup", "start j/t1#1"]);
    // A status on a connection that is no longer the node's changes nothing.
    let old = sim.conns["n1"].1;
    sim.disconnect("n1");
    sim.node("n1");
    let info = StartTaskInformation { retry_count: 9, ..sim.node_wire("n1").start_task_info.clone().unwrap() };
    sim.apply(|st, fx| st.start_task_status("n1", old, info, fx));
    assert_eq!(sim.node_wire("n1").start_task_info.as_ref().map(|i| i.retry_count), Some(1));
}

#[test]
fn without_wait_for_success_the_node_takes_tasks_while_its_start_task_runs() {
    let mut sim = Sim::with_start_task(false);
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    sim.node("n1");
    assert_eq!(sim.sent("n1"), ["run start task setup", "start j/t1#1"]);
    sim.start_task_status("n1", Some(1), 0);
    assert_eq!(sim.node_state("n1").0, NodeState::Running);
    sim.finish("n1", "j/t1#1", 0);
    assert_eq!(
        sim.node_state("n1").0,
        NodeState::Idle,
        "a failed start task without waitForSuccess does not bar the node"
    );
}

#[test]
fn the_start_task_reruns_for_a_new_launcher_process_only() {
    let mut sim = Sim::with_start_task(true);
    sim.boot("n1", "first");
    sim.start_task_status("n1", Some(0), 0);
    assert_eq!(sim.sent("n1"), ["run start task setup"]);
    assert_eq!(sim.node_state("n1").0, NodeState::Idle);
    // A plain reconnect of the same process keeps the result and runs nothing.
    sim.disconnect("n1");
    sim.boot("n1", "first");
    assert_eq!(sim.sent("n1"), Vec::<String>::new());
    assert_eq!(sim.node_state("n1").0, NodeState::Idle);
    sim.job("j", 0);
    sim.tasks("j", &["t1"]);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    sim.finish("n1", "j/t1#1", 0);
    sim.sent("n1");
    // A restarted launcher runs it again and takes no tasks meanwhile.
    sim.disconnect("n1");
    sim.boot("n1", "second");
    assert_eq!(sim.sent("n1"), ["run start task setup"]);
    assert_eq!((sim.node_state("n1").0, sim.node_wire("n1").start_task_info.is_none()), (NodeState::Starting, true));
    sim.tasks("j", &["t2"]);
    assert_eq!(sim.sent("n1"), Vec::<String>::new());
    sim.start_task_status("n1", Some(0), 0);
    assert_eq!(sim.sent("n1"), ["start j/t2#1"]);
}

#[test]
fn deleting_a_pool_requeues_its_tasks_and_its_jobs_wait_for_a_pool_of_that_id() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["a", "b"]);
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
    sim.apply(|st, fx| st.delete_pool("p", fx)).unwrap();
    let sent = sim.sent("n1");
    assert!(sent.contains(&"kill j/a#1 PoolDeleted".to_string()) && sent.contains(&"leave".to_string()), "{sent:?}");
    assert!(!sim.st.pools.contains_key("p"), "gone once its node has left");
    assert!(sim.writes.iter().any(|w| matches!(w, Write::DeletePool { id } if id == "p")));
    let a = sim.task("j", "a");
    assert_eq!((a.state, a.execution_info.requeue_count, a.execution_info.retry_count), (TaskState::Active, 1, 0));
    let e = sim.apply(|st, fx| st.delete_pool("p", fx)).unwrap_err();
    assert_eq!(e.status.as_u16(), 404);
    // A new pool of the same id takes the job's waiting tasks up.
    sim.pool("p", 1, NodeFillType::Spread, None);
    sim.node("n2");
    assert_eq!(sim.starts("n2"), ["j/a#2"]);
}

#[test]
fn a_deleted_pool_forgets_a_silent_node_and_takes_no_launcher() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.job("j", 0);
    sim.tasks("j", &["a"]);
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
    sim.disconnect("n1");
    sim.apply(|st, fx| st.delete_pool("p", fx)).unwrap();
    assert!(!sim.st.pools.contains_key("p") && !sim.st.nodes.contains_key("n1"));
    assert_eq!(sim.task("j", "a").state, TaskState::Active);
    let job = JobAddParameter {
        id: "k".into(),
        pool_info: Some(PoolInformation { pool_id: "p".into() }),
        ..Default::default()
    };
    let e = sim.apply(|st, fx| st.add_job(job, root(), fx)).unwrap_err();
    assert_eq!(e.body.code, "PoolNotFound");
    let (tx, _rx) = unbounded_channel();
    let e = sim.apply(|st, fx| st.register(hello("n1", "p"), tx, fx)).unwrap_err();
    assert_eq!(e.to_string(), "pool 'p' does not exist; create it first (gangway pool create p)");
}

#[test]
fn pool_and_task_packages_are_checked_and_both_go_to_the_node() {
    let mut sim = Sim::new();
    let v = |version: &str| PackageVersion {
        version: version.into(),
        format: PackageFormat::TarGz,
        sha256: "ab".repeat(32),
        size: 1,
    };
    sim.st.set_applications(vec![
        Application { id: "tools".into(), versions: vec![v("1")], default_version: Some("1".into()) },
        Application { id: "data".into(), versions: vec![v("7")], default_version: None },
    ]);
    let pool = |refs: Vec<ApplicationPackageReference>| PoolAddParameter {
        id: "p".into(),
        application_package_references: refs,
        ..Default::default()
    };
    let r = |app: &str, version: Option<&str>| ApplicationPackageReference {
        application_id: app.into(),
        version: version.map(Into::into),
    };
    let e = sim.apply(|st, fx| st.add_pool(pool(vec![r("data", None)]), fx)).unwrap_err();
    assert_eq!(e.body.code, "InvalidApplicationPackageReferences");
    assert!(e.body.message.value.contains("application 'data' has no default version"), "{:?}", e.body);
    sim.apply(|st, fx| st.add_pool(pool(vec![r("tools", None)]), fx)).unwrap();
    let got = sim.st.packages_for("p", &[r("data", Some("7"))]);
    let names: Vec<(String, String, bool)> =
        got.iter().map(|p| (p.application_id.clone(), p.version.clone(), p.default)).collect();
    assert_eq!(names, [("tools".into(), "1".into(), true), ("data".into(), "7".into(), false)]);
    // A package gone since: sent without a digest, which fails the attempt on its node.
    assert_eq!(sim.st.packages_for("p", &[r("data", Some("8"))])[1].sha256, "");
    // A joining node gets the pool's packages in its welcome, to unpack before tasks come.
    let (tx, _rx) = unbounded_channel();
    let (_, welcome) = sim.apply(|st, fx| st.register(hello("n1", "p"), tx, fx)).unwrap();
    let joined: Vec<&str> = welcome.packages.iter().map(|p| p.application_id.as_str()).collect();
    assert_eq!(joined, ["tools"]);
}

/// A fresh launcher's hello for node `name` in `pool`.
fn hello(name: &str, pool: &str) -> Hello {
    Hello {
        name: name.into(),
        address: "10.0.0.9".into(),
        pool: pool.into(),
        resources: NodeResources::default(),
        root_dir: "/r".into(),
        running: Vec::new(),
        finished: Vec::new(),
        boot_id: "b".into(),
        topology: None,
    }
}

#[test]
fn an_attempt_its_launcher_lost_is_requeued_not_failed() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.node("n2");
    sim.job_retrying("j", 0);
    sim.tasks("j", &["t1"]);
    assert_eq!(sim.sent("n1"), ["start j/t1#1"]);
    let mut lost = super::exited("j/t1#1", 0);
    lost.exit_code = None;
    lost.failure = Some(TaskFailureInformation {
        category: ErrorCategory::ServerError,
        code: gangway_api::messages::TASK_LOST.into(),
        message: "the task's supervisor ended without recording how the task ended".into(),
    });
    sim.apply(|st, fx| st.finish_attempt("n1", lost, fx));
    assert_eq!(sim.sent("n1"), ["ack j/t1#1"]);
    // Run again (n2 is the emptier node now that n1 holds nothing), as a requeue, not a retry.
    assert_eq!(sim.sent("n2"), ["start j/t1#2"]);
    let t1 = sim.task("j", "t1");
    assert_eq!((t1.state, t1.execution_info.requeue_count, t1.execution_info.retry_count), (TaskState::Running, 1, 0));
}

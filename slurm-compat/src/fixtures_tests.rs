//! Test data: jobs, nodes and pools as the head would return them, around a fixed "now"
//! (2026-11-23T09:40:00Z).

use gangway_api::slurm::{SlurmJob, SlurmJobState, SlurmStep};
use gangway_api::{ComputeNode, NodeState, Pool, Timestamp};

/// 2026-11-23T09:40:00Z.
pub const NOW: Timestamp = Timestamp(1_795_426_800_000_000);

/// `NOW` moved by `secs`.
pub fn at(secs: i64) -> Timestamp {
    Timestamp(NOW.0 + secs * 1_000_000)
}

/// A one-node batch job `id` of user `alice` (uid 1000) in partition `default`: pending,
/// submitted 10 minutes ago. Change fields to taste.
pub fn job(id: u64) -> SlurmJob {
    SlurmJob {
        job_id: id,
        allocation: Vec::new(),
        array_job_id: None,
        array_task_id: None,
        name: "job.sh".into(),
        user: "alice".into(),
        uid: 1000,
        gid: 1000,
        partition: "default".into(),
        account: None,
        qos: None,
        state: SlurmJobState::Pending,
        reason: "Priority".into(),
        dependency: None,
        exit_code: None,
        signal: None,
        submit_time: at(-600),
        eligible_time: Some(at(-600)),
        start_time: None,
        end_time: None,
        begin_time: None,
        planned_start: None,
        sched_nodes: Vec::new(),
        priority: None,
        nice: 0,
        max_nodes: None,
        ntasks_per_node: None,
        exclusive: false,
        comment: None,
        threads_per_core: None,
        array_throttle: None,
        node_memory_mb: None,
        tres_per_job: None,
        tres_per_node: None,
        tres_per_task: None,
        cpus_per_tres: None,
        mem_per_tres: None,
        time_limit_s: Some(3600),
        min_nodes: 1,
        nodes: Vec::new(),
        ntasks: 1,
        cpus_per_task: 1,
        num_cpus: 1,
        mem_per_node_mb: None,
        mem_per_cpu_mb: None,
        gres: None,
        constraint: None,
        command: Some("/home/alice/job.sh".into()),
        work_dir: "/home/alice".into(),
        std_out: format!("/home/alice/slurm-{id}.out"),
        std_err: format!("/home/alice/slurm-{id}.out"),
        held: false,
        restarts: 0,
        requeue: true,
        steps: Vec::new(),
        earlier_runs: Vec::new(),
        max_rss_kib: None,
    }
}

/// `job(id)` running on `nodes` since `started` seconds ago.
pub fn running(id: u64, nodes: &[&str], started: i64) -> SlurmJob {
    let mut j = job(id);
    j.state = SlurmJobState::Running;
    j.reason = "None".into();
    j.start_time = Some(at(-started));
    j.nodes = nodes.iter().map(|n| n.to_string()).collect();
    j.min_nodes = nodes.len() as u32;
    j
}

/// `running(id, nodes, ran + ago)` that ended `ago` seconds ago in `state` with `code`.
pub fn ended(id: u64, nodes: &[&str], ran: i64, ago: i64, state: SlurmJobState, code: i32) -> SlurmJob {
    let mut j = running(id, nodes, ran + ago);
    j.state = state;
    j.end_time = Some(at(-ago));
    j.exit_code = Some(code);
    j
}

/// A pool (partition) with `slots` task slots per node.
pub fn pool(id: &str, slots: u32) -> Pool {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "state": "active",
        "allocationState": "steady",
        "creationTime": "2026-11-23T00:00:00Z",
        "taskSlotsPerNode": slots,
        "taskSchedulingPolicy": { "nodeFillType": "spread" },
        "enableInterNodeCommunication": true,
        "currentDedicatedNodes": 0
    }))
    .expect("pool fixture")
}

/// A node of `pool` with 4 CPUs (2 cores) and 8 GiB, in `state`, `busy` slots in use.
pub fn node(id: &str, pool: &str, state: NodeState, busy: u32) -> ComputeNode {
    let mut n: ComputeNode = serde_json::from_value(serde_json::json!({
        "id": id,
        "poolId": pool,
        "state": "idle",
        "schedulingState": "enabled",
        "stateTransitionTime": "2026-11-23T08:00:00Z",
        "lastBootTime": "2026-11-23T08:00:00Z",
        "ipAddress": "10.0.0.1",
        "runningTasksCount": busy,
        "runningTaskSlotsCount": busy,
        "totalTasksRun": 0,
        "totalTasksSucceeded": 0,
        "resources": { "cpus": 4, "cores": 2, "memoryBytes": 8_589_934_592u64 }
    }))
    .expect("node fixture");
    n.state = state;
    n
}

/// Step `id` named `name` on `nodes` with `ntasks` tasks (one CPU each), started `started`
/// seconds ago: running, or ended `ran` seconds after its start with `code` (`Completed` for
/// 0, `Failed` otherwise).
pub fn step(id: u32, name: &str, nodes: &[&str], ntasks: u32, started: i64, end: Option<(i64, i32)>) -> SlurmStep {
    let state = match end {
        None => SlurmJobState::Running,
        Some((_, 0)) => SlurmJobState::Completed,
        Some(_) => SlurmJobState::Failed,
    };
    SlurmStep {
        step_id: id,
        name: name.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        ntasks,
        cpus: ntasks,
        state,
        start_time: at(-started),
        end_time: end.map(|(ran, _)| at(ran - started)),
        exit_code: end.map(|(_, code)| code),
        signal: None,
        max_rss_kib: None,
    }
}

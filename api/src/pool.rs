//! Pools: named sets of nodes with a scheduling policy.

use serde::{Deserialize, Serialize};

use crate::common::EnvironmentSetting;
use crate::node::ComputeNodeDeallocationOption;
use crate::time::{IsoDuration, Timestamp};

/// How tasks are spread over a pool's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeFillType {
    /// Each new task goes to the node with the most free slots.
    #[default]
    Spread,
    /// Fill a node's slots before using the next node.
    Pack,
}

/// `taskSchedulingPolicy` of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSchedulingPolicy {
    /// Spread or pack.
    #[serde(default)]
    pub node_fill_type: NodeFillType,
    /// gangway: what later tasks may do when the first in order cannot start (default `easy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// gangway: how many waiting task shapes one scheduling pass looks at past the first that
    /// cannot start (Slurm's `bf_max_job_test`; default 64, at most 100,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks_examined: Option<u32>,
    /// gangway: with `conservative` backfilling, how many waiting tasks get a reservation
    /// (default 8, at most 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<u32>,
    /// gangway: how jobs of equal priority are ordered (default `deadline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<QueueOrder>,
}

/// gangway: how a pool orders jobs of equal priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueOrder {
    /// Submission order.
    Submit,
    /// Earliest deadline first: eligible time plus `min(16 × time limit × √CPUs, 400,000 s)`
    /// (short, narrow jobs first; none is passed by a job eligible more than 400,000 s later).
    #[default]
    Deadline,
}

/// gangway: a pool's backfilling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backfill {
    /// Strict order: nothing passes a task that cannot start.
    Fcfs,
    /// Later tasks start whenever they fit (a large task may wait forever).
    Firstfit,
    /// EASY: the first task that cannot start gets a reservation that later tasks may not delay.
    #[default]
    Easy,
    /// Conservative: the first `reservations` tasks that cannot start each get one.
    Conservative,
}

/// `startTask` of a pool: a command every node runs when its launcher joins (and again after
/// every launcher restart), before or while it takes tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTask {
    /// The command line, split into arguments without a shell.
    pub command_line: String,
    /// Its environment (no `AZ_BATCH_JOB_ID` or `AZ_BATCH_TASK_ID`: it belongs to no job).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_settings: Vec<EnvironmentSetting>,
    /// Whether the node waits for it to succeed before taking tasks (default true).
    #[serde(default = "yes")]
    pub wait_for_success: bool,
    /// Reruns after a non-zero exit (default 0; -1: unlimited).
    #[serde(default)]
    pub max_task_retry_count: i32,
}

fn yes() -> bool {
    true
}

/// The body of `POST /pools`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolAddParameter {
    /// Pool id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Task slots per node (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_slots_per_node: Option<u32>,
    /// gangway: memory (MiB) per CPU a task that asks for CPUs but no memory is given (and
    /// limited to), so such tasks share nodes (Slurm's `DefMemPerCPU`); absent: none.
    #[serde(default, rename = "defaultMemoryPerCpuMiB", skip_serializing_if = "Option::is_none")]
    pub default_memory_per_cpu_mib: Option<u64>,
    /// gangway: the process-management interface `srun` serves a step that names none
    /// (Slurm's `MpiDefault`): `auto` (the default), `pmi2`, `pmix` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi_default: Option<String>,
    /// Spread or pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_scheduling_policy: Option<TaskSchedulingPolicy>,
    /// gangway: the time limit of a task that sets no `maxWallClockTime` (Slurm's
    /// `DefaultTime`); absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_time_limit: Option<IsoDuration>,
    /// gangway: the largest time limit a task may ask for (Slurm's `MaxTime`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_limit: Option<IsoDuration>,
    /// Whether multi-instance tasks may run here.
    #[serde(default)]
    pub enable_inter_node_communication: bool,
    /// Run on every node as it joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_task: Option<StartTask>,
    /// Application packages every task of the pool gets on its node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_package_references: Vec<crate::apps::ApplicationPackageReference>,
}

/// Pool lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// In use.
    Active,
    /// Being deleted.
    Deleting,
}

/// A pool as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    /// Pool id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Active or deleting.
    pub state: PoolState,
    /// Always `steady`: on-premise pools are as large as the nodes that joined them.
    pub allocation_state: String,
    /// When the pool was created.
    pub creation_time: Timestamp,
    /// Task slots per node.
    pub task_slots_per_node: u32,
    /// gangway: memory (MiB) per CPU of a task that names CPUs but no memory.
    #[serde(default, rename = "defaultMemoryPerCpuMiB", skip_serializing_if = "Option::is_none")]
    pub default_memory_per_cpu_mib: Option<u64>,
    /// gangway: what `srun` serves a step that names no `--mpi` (Slurm's `MpiDefault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi_default: Option<String>,
    /// Spread or pack.
    pub task_scheduling_policy: TaskSchedulingPolicy,
    /// gangway: the time limit of a task that sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_time_limit: Option<IsoDuration>,
    /// gangway: the largest time limit a task may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_limit: Option<IsoDuration>,
    /// Whether multi-instance tasks may run here.
    pub enable_inter_node_communication: bool,
    /// Nodes currently in the pool.
    pub current_dedicated_nodes: u32,
    /// Run on every node as it joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_task: Option<StartTask>,
    /// Application packages every task of the pool gets on its node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_package_references: Vec<crate::apps::ApplicationPackageReference>,
}

/// The body of `POST /pools/{pool}/removenodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRemoveParameter {
    /// The nodes to remove (1 to 100, all of this pool).
    pub node_list: Vec<String>,
    /// What happens to their running tasks (default requeue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_deallocation_option: Option<ComputeNodeDeallocationOption>,
}

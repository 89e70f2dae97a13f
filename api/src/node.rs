//! Compute nodes: the machines launchers run on.

use serde::{Deserialize, Serialize};

use crate::pool::StartTask;
use crate::task::{TaskExecutionResult, TaskFailureInformation, TaskState};
use crate::time::Timestamp;
pub use gangway_topology::NodeResources;

/// Node state (see the reference's state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Registered, start task not done.
    Starting,
    /// Running its start task with waitForSuccess.
    WaitingForStartTask,
    /// No task running.
    Idle,
    /// At least one task running.
    Running,
    /// Start task failed.
    StartTaskFailed,
    /// Scheduling disabled and nothing running.
    Offline,
    /// Lost contact.
    Unusable,
    /// Being removed.
    LeavingPool,
    /// Unknown.
    Unknown,
}

/// enabled or disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulingState {
    /// New tasks may be placed here.
    Enabled,
    /// No new tasks.
    Disabled,
}

/// A task running on a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInformation {
    /// Its job.
    pub job_id: String,
    /// The task.
    pub task_id: String,
    /// Its state.
    pub task_state: TaskState,
}

/// A node as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeNode {
    /// Node id (its name).
    pub id: String,
    /// Its pool.
    pub pool_id: String,
    /// Current state.
    pub state: NodeState,
    /// enabled or disabled.
    pub scheduling_state: SchedulingState,
    /// When it entered its state.
    pub state_transition_time: Timestamp,
    /// When its launcher (re)registered.
    pub last_boot_time: Timestamp,
    /// Address other nodes reach it at.
    pub ip_address: String,
    /// Tasks running now.
    pub running_tasks_count: u32,
    /// Slots in use now.
    pub running_task_slots_count: u32,
    /// Tasks run here since it joined.
    pub total_tasks_run: u64,
    /// Of those, succeeded.
    pub total_tasks_succeeded: u64,
    /// The running tasks.
    #[serde(default)]
    pub recent_tasks: Vec<TaskInformation>,
    /// Cores, memory, GPUs.
    pub resources: NodeResources,
    /// gangway: what its running tasks' allocations hold of it now.
    #[serde(default)]
    pub allocated: NodeUsage,
    /// Packages, NUMA nodes, cores, GPUs and NICs with their locality, as the launcher found
    /// them (or as declared with `gangway-node --topology-xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<gangway_topology::model::NodeTopology>,
    /// Its pool's start task, when the pool has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_task: Option<StartTask>,
    /// How the start task's latest run is going, once the launcher has started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_task_info: Option<StartTaskInformation>,
}

/// What the running tasks' allocations hold of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUsage {
    /// CPUs (hardware threads) of allocated cores.
    pub cpus: u32,
    /// Memory, MiB.
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
    /// GPU indices.
    pub gpus: Vec<u32>,
}

/// running or completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTaskState {
    /// Running now (possibly a retry).
    Running,
    /// Ended: it succeeded, or failed with no retries left.
    Completed,
}

/// `startTaskInfo` of a node: the start task's run since the launcher (re)started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartTaskInformation {
    /// running or completed.
    pub state: StartTaskState,
    /// When its latest attempt started.
    pub start_time: Timestamp,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Exit code of its latest attempt (absent while running or when it never started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed beyond its exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_info: Option<TaskFailureInformation>,
    /// Reruns after a non-zero exit so far.
    pub retry_count: u32,
    /// When the latest rerun started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retry_time: Option<Timestamp>,
    /// success or failure, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskExecutionResult>,
}

/// What happens to the tasks running on a node whose scheduling is disabled or that is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeNodeDeallocationOption {
    /// Kill them and requeue them at once (a recovery requeue, not a retry).
    #[default]
    Requeue,
    /// Kill them; they complete as failed and do not run again.
    Terminate,
    /// Let them finish; start nothing new.
    TaskCompletion,
}

/// Azure's name for the option of `disablescheduling` (the same three values).
pub type DisableComputeNodeSchedulingOption = ComputeNodeDeallocationOption;

/// The body of `POST /pools/{pool}/nodes/{node}/disablescheduling` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDisableSchedulingParameter {
    /// What happens to the node's running tasks (default requeue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_disable_scheduling_option: Option<DisableComputeNodeSchedulingOption>,
}

/// How many of a pool's compute nodes are in each state (Azure Batch's `BatchNodeCounts`;
/// `GET /nodecounts`). gangway's nodes never create, reboot, reimage, upgrade or get
/// preempted: those stay 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    pub creating: u32,
    pub idle: u32,
    pub offline: u32,
    pub preempted: u32,
    pub rebooting: u32,
    pub reimaging: u32,
    pub running: u32,
    pub starting: u32,
    pub start_task_failed: u32,
    pub leaving_pool: u32,
    pub unknown: u32,
    pub unusable: u32,
    pub waiting_for_start_task: u32,
    #[serde(rename = "upgradingOS")]
    pub upgrading_os: u32,
    /// Every node of the pool.
    pub total: u32,
}

impl NodeCounts {
    /// Counts one node in state `s`.
    pub fn add(&mut self, s: NodeState) {
        let slot = match s {
            NodeState::Starting => &mut self.starting,
            NodeState::WaitingForStartTask => &mut self.waiting_for_start_task,
            NodeState::Idle => &mut self.idle,
            NodeState::Running => &mut self.running,
            NodeState::StartTaskFailed => &mut self.start_task_failed,
            NodeState::Offline => &mut self.offline,
            NodeState::Unusable => &mut self.unusable,
            NodeState::LeavingPool => &mut self.leaving_pool,
            NodeState::Unknown => &mut self.unknown,
        };
        *slot += 1;
        self.total += 1;
    }
}

/// One pool's node counts (Azure Batch's `BatchPoolNodeCounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolNodeCounts {
    pub pool_id: String,
    /// Its nodes (all of gangway's are dedicated).
    pub dedicated: NodeCounts,
    /// Always zero: gangway has no spot nodes.
    pub low_priority: NodeCounts,
}

//! Compute nodes: the machines launchers run on.

use serde::{Deserialize, Serialize};

use crate::task::TaskState;
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
    /// Packages, NUMA nodes, cores, GPUs and NICs with their locality, as the launcher found
    /// them (or as declared with `gangway-node --topology-xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<gangway_topology::model::NodeTopology>,
}

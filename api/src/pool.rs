//! Pools: named sets of nodes with a scheduling policy.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

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
    pub node_fill_type: NodeFillType,
}

/// The body of `POST /pools`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Spread or pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_scheduling_policy: Option<TaskSchedulingPolicy>,
    /// Whether multi-instance tasks may run here.
    #[serde(default)]
    pub enable_inter_node_communication: bool,
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
    /// Spread or pack.
    pub task_scheduling_policy: TaskSchedulingPolicy,
    /// Whether multi-instance tasks may run here.
    pub enable_inter_node_communication: bool,
    /// Nodes currently in the pool.
    pub current_dedicated_nodes: u32,
}

//! Node operations (disable and enable scheduling, removal from the pool) and the pool's
//! start task: what a node's state is, and when it takes new tasks.

use gangway_api::messages::HeadMessage;
use gangway_api::*;

use super::{Effects, HeadState, NodeRec};
use crate::head::error::ApiError;
use crate::head::state::resources::{node_not_found, pool_not_found};
use crate::scheduler::{Event, TaskKey};

/// Most nodes one `removenodes` call may name (Azure Batch's limit).
pub const MAX_REMOVE: usize = 100;

impl NodeRec {
    /// Whether its start task lets it take tasks: there is none to wait for, or it succeeded.
    fn start_task_done(&self) -> bool {
        !self.wait_for_start
            || self.wire.start_task_info.as_ref().is_some_and(|i| i.result == Some(TaskExecutionResult::Success))
    }

    /// Whether new tasks may be placed on it.
    pub(crate) fn takes_tasks(&self) -> bool {
        self.conn.is_some()
            && !self.leaving
            && self.wire.scheduling_state == SchedulingState::Enabled
            && self.start_task_done()
    }

    /// Its state while its launcher is connected.
    pub(crate) fn live_state(&self) -> NodeState {
        if self.leaving {
            return NodeState::LeavingPool;
        }
        if !self.running.is_empty() {
            return NodeState::Running;
        }
        if !self.start_task_done() {
            return match &self.wire.start_task_info {
                None => NodeState::Starting,
                Some(i) if i.state == StartTaskState::Running => NodeState::WaitingForStartTask,
                Some(_) => NodeState::StartTaskFailed,
            };
        }
        match self.wire.scheduling_state {
            SchedulingState::Disabled => NodeState::Offline,
            SchedulingState::Enabled => NodeState::Idle,
        }
    }
}

impl HeadState {
    /// `POST /pools/{pool}/nodes/{node}/disablescheduling` (`pool` is None for `/nodes/{node}/…`):
    /// nothing new starts on the node; its running tasks are requeued, killed or left to finish.
    pub fn disable_node_scheduling(
        &mut self,
        pool: Option<&str>,
        node: &str,
        option: Option<ComputeNodeDeallocationOption>,
        fx: &mut Effects,
    ) -> Result<(), ApiError> {
        self.check_node(pool, node)?;
        let option = option.unwrap_or_default();
        tracing::info!(node, ?option, "disabling scheduling");
        self.nodes.get_mut(node).expect("checked").wire.scheduling_state = SchedulingState::Disabled;
        self.sync_schedulable(node, fx);
        self.drain(node, option, "NodeDisabled", fx);
        self.refresh_node(node);
        Ok(())
    }

    /// `POST /pools/{pool}/nodes/{node}/enablescheduling`.
    pub fn enable_node_scheduling(&mut self, pool: Option<&str>, node: &str, fx: &mut Effects) -> Result<(), ApiError> {
        self.check_node(pool, node)?;
        let n = self.nodes.get_mut(node).expect("checked");
        if n.leaving {
            return Err(ApiError::conflict(
                "NodeLeavingPool",
                format!("node '{node}' is leaving its pool; its scheduling cannot be enabled"),
            ));
        }
        tracing::info!(node, "enabling scheduling");
        n.wire.scheduling_state = SchedulingState::Enabled;
        self.sync_schedulable(node, fx);
        self.refresh_node(node);
        Ok(())
    }

    /// `POST /pools/{pool}/removenodes`: each node is `leavingpool`, its tasks are handled as
    /// `nodeDeallocationOption` says, and once nothing runs on it, it is forgotten and its
    /// launcher told to leave. Every node is checked before any changes.
    pub fn remove_nodes(&mut self, pool: &str, p: NodeRemoveParameter, fx: &mut Effects) -> Result<(), ApiError> {
        if !self.pools.contains_key(pool) {
            return Err(pool_not_found(pool));
        }
        if p.node_list.is_empty() || p.node_list.len() > MAX_REMOVE {
            return Err(ApiError::invalid(format!(
                "nodeList names {} node(s); it must name 1 to {MAX_REMOVE}",
                p.node_list.len()
            )));
        }
        for node in &p.node_list {
            let n = self.nodes.get(node).ok_or_else(|| node_not_found(node))?;
            if n.wire.pool_id != pool {
                return Err(ApiError::conflict(
                    "NodeNotInPool",
                    format!("node '{node}' belongs to pool '{}', not to pool '{pool}'", n.wire.pool_id),
                ));
            }
        }
        let option = p.node_deallocation_option.unwrap_or_default();
        for node in &p.node_list {
            self.remove_node(node, option, "NodeRemoved", fx);
        }
        Ok(())
    }

    /// Takes a node out of its pool: it takes no more tasks, its running ones are handled per
    /// `option`, and it leaves once none runs.
    pub(crate) fn remove_node(
        &mut self,
        node: &str,
        option: ComputeNodeDeallocationOption,
        reason: &'static str,
        fx: &mut Effects,
    ) {
        // A node named twice may be gone already.
        let Some(n) = self.nodes.get_mut(node) else { return };
        tracing::info!(node, ?option, reason, "removing node from its pool");
        n.leaving = true;
        self.sync_schedulable(node, fx);
        self.drain(node, option, reason, fx);
        self.refresh_node(node);
        self.maybe_leave(node, fx);
    }

    /// Handles the tasks running on a node that takes no more: requeued now (killed on the
    /// node, not counted as a retry), killed to complete as failed with `reason`, or left alone.
    /// Tasks already being killed end with their kill either way.
    fn drain(&mut self, node: &str, option: ComputeNodeDeallocationOption, reason: &'static str, fx: &mut Effects) {
        let Some(n) = self.nodes.get(node) else { return };
        let (node_key, tx) = (n.key, n.conn.as_ref().map(|c| c.tx.clone()));
        let tasks: Vec<TaskKey> = n.running.keys().copied().filter(|k| !self.is_killing(*k)).collect();
        match option {
            ComputeNodeDeallocationOption::TaskCompletion => {}
            ComputeNodeDeallocationOption::Terminate => {
                for key in tasks {
                    self.kill_task(key, reason, fx);
                }
            }
            ComputeNodeDeallocationOption::Requeue => {
                for key in tasks {
                    let Some(id) = self.attempt_of(key) else { continue };
                    // Its report will name an attempt the head has moved past, and be ignored.
                    if let Some(tx) = &tx {
                        fx.sends.push((tx.clone(), HeadMessage::KillTask { id, reason: reason.into() }));
                    }
                    self.nodes.get_mut(node).and_then(|n| n.running.remove(&key));
                    self.requeue(key, "its node stopped taking tasks", fx);
                    self.sched_event(Event::TaskReleased { task: key, node: node_key }, fx);
                }
            }
        }
    }

    /// A leaving node on which nothing runs any more is forgotten, and its launcher told to go.
    pub(crate) fn maybe_leave(&mut self, node: &str, fx: &mut Effects) {
        if !self.nodes.get(node).is_some_and(|n| n.leaving && n.running.is_empty()) {
            return;
        }
        let n = self.nodes.remove(node).expect("checked");
        self.dirty_nodes.insert(node.to_owned());
        self.sched_event(Event::NodeDown { node: n.key }, fx);
        if let Some(c) = &n.conn {
            fx.sends.push((c.tx.clone(), HeadMessage::Leave));
        }
        tracing::info!(node, "node left its pool");
        // A node removed from its pool cannot come back with its old certificate.
        self.revoke_node_certs(node, fx);
        self.refresh_pool_sizes();
        self.maybe_remove_pool(&n.wire.pool_id, fx);
    }

    /// Tells the scheduler when whether the node takes new tasks has changed.
    pub(crate) fn sync_schedulable(&mut self, node: &str, fx: &mut Effects) {
        let Some(n) = self.nodes.get_mut(node) else { return };
        let wanted = n.takes_tasks();
        // A disconnected node is unknown to the scheduler; its registration tells it afresh.
        if wanted == n.schedulable || n.conn.is_none() {
            return;
        }
        n.schedulable = wanted;
        let key = n.key;
        self.sched_event(Event::NodeSchedulable { node: key, schedulable: wanted }, fx);
    }

    /// The launcher on connection `generation` reported its start task's status.
    pub fn start_task_status(&mut self, node: &str, generation: u64, info: StartTaskInformation, fx: &mut Effects) {
        let Some(n) = self.nodes.get_mut(node) else { return };
        if n.conn.as_ref().is_none_or(|c| c.generation != generation) || n.wire.start_task.is_none() {
            return;
        }
        if info.state == StartTaskState::Completed {
            tracing::info!(node, exit_code = ?info.exit_code, retries = info.retry_count, result = ?info.result, "start task completed");
        }
        n.wire.start_task_info = Some(info);
        self.sync_schedulable(node, fx);
        self.refresh_node(node);
    }

    /// The node exists (404 naming it) and, when `pool` is given, belongs to it (404 naming its pool).
    fn check_node(&self, pool: Option<&str>, node: &str) -> Result<(), ApiError> {
        if let Some(p) = pool.filter(|p| !self.pools.contains_key(*p)) {
            return Err(pool_not_found(p));
        }
        let n = self.nodes.get(node).ok_or_else(|| node_not_found(node))?;
        match pool {
            Some(p) if n.wire.pool_id != p => Err(ApiError::not_found(
                "NodeNotFound",
                format!("node '{node}' is not in pool '{p}' (it belongs to pool '{}')", n.wire.pool_id),
            )),
            _ => Ok(()),
        }
    }
}

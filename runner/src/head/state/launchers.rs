//! Nodes: registration, attempts sent and reported, lost contact.

use std::collections::{HashMap, HashSet};

use gangway_api::cmdline::split_command_line;
use gangway_api::messages::{
    AttemptId, HeadMessage, Hello, RunAs, RunStartTask, StartTask, TaskFinished, Welcome, TASK_LOST,
};
use gangway_api::*;
use tokio::sync::mpsc::UnboundedSender;

use super::{set_task_state, Conn, Effects, HeadState, NodeRec, Timer};
use crate::scheduler::{Event, NodeKey, TaskKey};
use gangway_topology::alloc::Grant;

/// Why a launcher was turned away.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// It named a pool that does not exist.
    #[error("pool '{0}' does not exist; create it first (gangway pool create {0})")]
    UnknownPool(String),
    /// Its name is not a valid node id.
    #[error("{0}")]
    BadName(String),
}

impl HeadState {
    /// A launcher said hello on a new connection. Returns the connection's generation and
    /// the welcome to send first.
    pub fn register(
        &mut self,
        hello: Hello,
        tx: UnboundedSender<HeadMessage>,
        fx: &mut Effects,
    ) -> Result<(u64, Welcome), RegisterError> {
        common::validate_id("node", &hello.name).map_err(RegisterError::BadName)?;
        tracing::debug!(node = %hello.name, boot = %hello.boot_id, "registering");
        let pool_key = self.pools.get(&hello.pool).ok_or_else(|| RegisterError::UnknownPool(hello.pool.clone()))?.key;
        let now = Timestamp::now();
        let generation = self.new_generation();
        let old = self.nodes.remove(&hello.name);
        let old_pool = old.as_ref().map(|n| n.wire.pool_id.clone());
        let key = old.as_ref().map_or_else(|| self.new_key() as NodeKey, |n| n.key);
        self.node_names.insert(key, hello.name.clone());
        // Out of scheduling until its reports are reconciled, so nothing lands on it meanwhile.
        self.sched_event(Event::NodeDown { node: key }, fx);
        let start_task = self.pools[&hello.pool].wire.start_task.clone();
        // The start task runs once per launcher process: a plain reconnect keeps its status.
        let same_boot = old.as_ref().is_some_and(|n| n.boot_id == hello.boot_id && n.wire.pool_id == hello.pool);
        if !same_boot {
            // A new launcher process (the node's "reboot"): job preparations run again there.
            self.prep_node_reset(&hello.name, false, fx);
        }
        let (start_task_info, wait_for_start) = match &old {
            Some(n) if same_boot => (n.wire.start_task_info.clone(), n.wait_for_start),
            _ => (None, start_task.as_ref().is_some_and(|s| s.wait_for_success)),
        };
        let run_start_task = start_task.as_ref().filter(|_| !same_boot).map(|s| {
            HeadMessage::RunStartTask(RunStartTask {
                pool: hello.pool.clone(),
                command_line: s.command_line.clone(),
                env: s.environment_settings.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
                max_task_retry_count: s.max_task_retry_count,
            })
        });
        let wire = ComputeNode {
            id: hello.name.clone(),
            pool_id: hello.pool.clone(),
            state: NodeState::Starting,
            scheduling_state: old.as_ref().map_or(SchedulingState::Enabled, |n| n.wire.scheduling_state),
            state_transition_time: now,
            last_boot_time: now,
            ip_address: hello.address,
            running_tasks_count: 0,
            running_task_slots_count: 0,
            total_tasks_run: old.as_ref().map_or(0, |n| n.wire.total_tasks_run),
            total_tasks_succeeded: old.as_ref().map_or(0, |n| n.wire.total_tasks_succeeded),
            recent_tasks: Vec::new(),
            resources: hello.resources,
            allocated: NodeUsage::default(),
            topology: hello.topology,
            start_task,
            start_task_info,
        };
        let inventory = super::alloc::inventory_of(&wire.resources, wire.topology.as_ref());
        let conn = Some(Conn { tx: tx.clone(), generation });
        // Set only once its reports are reconciled: a leaving node must not leave half-registered.
        let leaving = old.as_ref().is_some_and(|n| n.leaving);
        let old_persisted = old.as_ref().and_then(|n| n.persisted.clone());
        self.stats.launcher_reconnects += u64::from(old.is_some());
        let running = old.map(|n| n.running).unwrap_or_default();
        let boot_id = hello.boot_id.clone();
        let rec = NodeRec {
            wire,
            key,
            conn,
            generation,
            running,
            inventory,
            boot_id,
            leaving: false,
            wait_for_start,
            schedulable: false,
            persisted: old_persisted,
        };
        self.nodes.insert(hello.name.clone(), rec);
        for f in hello.finished {
            self.finish_attempt(&hello.name, f, fx);
        }
        // Tasks the head believes run on this node: keep those it reports, requeue the rest.
        let mut believed: HashSet<TaskKey> = self.awaiting_node.remove(&hello.name).unwrap_or_default();
        let n = self.nodes.get_mut(&hello.name).expect("inserted above");
        believed.extend(n.running.drain().map(|(k, _)| k));
        let reported: HashSet<&AttemptId> = hello.running.iter().collect();
        let mut running = HashMap::new();
        for key in believed {
            let Some(id) = self.attempt_of(key) else {
                // A deleted job's attempt the node no longer runs (or will be told to kill).
                self.forget_deleted(key);
                continue;
            };
            let is_running = self.task_state(key) == Some(TaskState::Running);
            if is_running && reported.contains(&id) {
                running.insert(key, self.slots_of(key));
            } else if self.task_state(key) == Some(TaskState::Preparing) && self.prep_waits(key, &hello.name) {
                // Still waiting here for its job's preparation.
                running.insert(key, self.slots_of(key));
            } else if is_running || self.task_state(key) == Some(TaskState::Preparing) {
                self.requeue(key, "the node no longer runs this attempt", fx);
            }
        }
        // One being killed keeps its slots until its report, but is killed again: the
        // KillTask may have been lost with the old connection (or the head restarted).
        let mut wanted: HashSet<AttemptId> =
            running.keys().filter(|k| !self.is_killing(**k)).filter_map(|k| self.attempt_of(*k)).collect();
        // Job preparation and release tasks running there are kept (and sent again when the
        // node no longer has them).
        wanted.extend(self.specials_on(&hello.name, &reported, fx));
        let kill = hello.running.iter().filter(|a| !wanted.contains(a)).cloned().collect();
        let held = self.held_on(&hello.name, running.iter().map(|(k, s)| (*k, *s)));
        let inventory = self.nodes[&hello.name].inventory.clone();
        let n = self.nodes.get_mut(&hello.name).expect("inserted above");
        n.running = running;
        n.leaving = leaving;
        let schedulable = n.takes_tasks();
        n.schedulable = schedulable;
        // A node new to its pool counts there (a reconnect changes nothing: no walk over
        // every node when thousands reconnect at once).
        if old_pool.as_deref() != Some(hello.pool.as_str()) {
            if let Some(p) = old_pool.and_then(|p| self.pools.get_mut(&p)) {
                p.wire.current_dedicated_nodes = p.wire.current_dedicated_nodes.saturating_sub(1);
            }
            if let Some(p) = self.pools.get_mut(&hello.pool) {
                p.wire.current_dedicated_nodes += 1;
            }
        }
        self.refresh_node(&hello.name);
        if let Some(msg) = run_start_task {
            tracing::info!(node = %hello.name, boot = %hello.boot_id, "sending the pool's start task");
            fx.sends.push((tx, msg));
        }
        let place = self.fabric.as_ref().and_then(|f| f.node_id(&hello.name)).map(|id| id.0);
        self.sched_event(Event::NodeUp { node: key, pool: pool_key, inventory, held, schedulable, place }, fx);
        self.maybe_leave(&hello.name, fx);
        // The pool's packages go to the node as it joins, as Azure Batch installs them.
        let packages = self.packages_for(&hello.pool, &[]).into_iter().filter(|p| !p.sha256.is_empty()).collect();
        let node_timeout_ms = self.node_timeout.as_millis() as u64;
        let heartbeat_ms = self.heartbeat_for_size().as_millis() as u64;
        Ok((generation, Welcome { heartbeat_ms, node_timeout_ms, kill, packages }))
    }

    /// The connection `generation` of `node` closed; the node is lost unless it returns in time.
    pub fn disconnected(&mut self, node: &str, generation: u64, fx: &mut Effects) {
        let Some(n) = self.nodes.get_mut(node) else { return };
        if n.conn.as_ref().is_none_or(|c| c.generation != generation) {
            return;
        }
        n.conn = None;
        n.schedulable = false;
        n.wire.state = NodeState::Unknown;
        n.wire.state_transition_time = Timestamp::now();
        let key = n.key;
        self.sched_event(Event::NodeDown { node: key }, fx);
        fx.timers.push(Timer::NodeLost { node: node.to_owned(), generation, after: self.node_timeout });
        self.refresh_node(node);
    }

    /// The node-lost timer fired: if the node is still away, it is unusable and its tasks requeued.
    pub fn node_lost(&mut self, node: &str, generation: u64, fx: &mut Effects) {
        let mut orphans: Vec<TaskKey> = Vec::new();
        if generation == 0 {
            // Tasks restored from the store whose node never came back after a head restart.
            orphans.extend(self.awaiting_node.remove(node).unwrap_or_default());
        }
        if let Some(n) = self.nodes.get_mut(node).filter(|n| n.conn.is_none() && n.generation == generation) {
            n.wire.state = NodeState::Unusable;
            n.wire.state_transition_time = Timestamp::now();
            orphans.extend(n.running.drain().map(|(k, _)| k));
            tracing::warn!(node, tasks = orphans.len(), "node lost; requeueing its tasks");
        }
        for key in orphans {
            self.requeue(key, "the node was lost", fx);
        }
        self.prep_node_reset(node, true, fx);
        self.refresh_node(node);
        self.maybe_leave(node, fx);
    }

    /// A launcher reported the end of an attempt. Stale or repeated reports change nothing;
    /// every report is acknowledged once this change is durable.
    pub fn finish_attempt(&mut self, node: &str, f: TaskFinished, fx: &mut Effects) {
        if let Some(tx) = self.nodes.get(node).and_then(|n| n.conn.as_ref()).map(|c| c.tx.clone()) {
            fx.sends.push((tx, HeadMessage::Ack { id: f.id.clone() }));
        }
        // A job preparation or release task's: dealt with apart.
        if self.special_finished(node, &f, fx) {
            return;
        }
        // An attempt of a deleted job: its node gives back what it held, and that is all.
        if let Some(key) = self.deleted.iter().find(|(_, a)| **a == f.id).map(|(k, _)| *k) {
            if self.release_deleted(node, key, fx) {
                return self.maybe_leave(node, fx);
            }
        }
        // An instance of a multi-instance task: it releases its own node, and ends the task
        // only when it is the primary or it failed.
        let (f, single) = match f.instance {
            Some(i) => match self.finish_instance(node, &f, i, fx) {
                Some(outcome) => (outcome, false),
                None => return self.maybe_leave(node, fx),
            },
            None => (f, true),
        };
        let Some(j) = self.jobs.get_mut(&f.id.job) else { return };
        let Some(t) = j.tasks.get_mut(&f.id.task) else { return };
        let on_node = !single || t.wire.node_info.as_ref().is_some_and(|n| n.node_id == node);
        if t.attempt != f.id.attempt || t.wire.state != TaskState::Running || !on_node {
            return;
        }
        let key = t.key;
        if let Some(start) = f.start_time {
            t.wire.execution_info.start_time = Some(start);
        }
        let killed_by_user = t.killing;
        let retries_left = match t.wire.constraints.max_task_retry_count.unwrap_or(0) {
            -1 => true,
            n => (t.wire.execution_info.retry_count as i64) < n as i64,
        };
        let retry = killed_by_user.is_none() && f.exit_code.is_some_and(|c| c != 0) && retries_left;
        // Killed by its job's disable: back in the queue, without a retry counted.
        let requeue = killed_by_user == Some(super::job_control::DISABLE_REQUEUE);
        if let Some(n) = self.nodes.get_mut(node).filter(|_| single) {
            n.running.remove(&key);
            n.wire.total_tasks_run += 1;
            if f.exit_code == Some(0) && f.failure.is_none() {
                n.wire.total_tasks_succeeded += 1;
            }
        }
        // A restored attempt reported ended is no longer awaited on this node (a retry may
        // start elsewhere before the node's registration reconciles what it runs).
        if let Some(awaited) = self.awaiting_node.get_mut(node) {
            awaited.remove(&key);
        }
        self.refresh_node(node);
        // Its launcher lost it (not the task's doing): back in the queue, as a lost node's.
        let lost = killed_by_user.is_none() && f.failure.as_ref().is_some_and(|x| x.code == TASK_LOST);
        if lost && single {
            self.requeue(key, "its launcher lost the attempt", fx);
        } else if retry || requeue {
            let (j, tid) = self.task_mut(key).expect("indexed");
            let t = j.tasks.get_mut(&tid).expect("indexed");
            j.running -= 1;
            let info = &mut t.wire.execution_info;
            if requeue {
                info.requeue_count += 1;
                info.last_requeue_time = Some(f.end_time);
            } else {
                info.retry_count += 1;
                info.last_retry_time = Some(f.end_time);
                info.exit_code = f.exit_code;
                info.failure_info = f.failure;
            }
            t.killing = None;
            set_task_state(&mut t.wire, TaskState::Active, f.end_time);
            HeadState::put_task(&j.wire.id, t, fx);
            let (job, task) = (j.wire.id.clone(), tid);
            self.dependency_moved(key, fx);
            self.enqueue(&job, &task, fx);
            self.maybe_disabled(&job, fx);
        } else {
            let failure = match (killed_by_user, f.failure) {
                (Some(reason), _) => Some(TaskFailureInformation {
                    category: ErrorCategory::UserError,
                    code: reason.into(),
                    message: format!("the task was killed ({reason})"),
                }),
                (None, Some(fail)) => Some(fail),
                (None, None) if f.exit_code != Some(0) => Some(TaskFailureInformation {
                    category: ErrorCategory::UserError,
                    code: "FailureExitCode".into(),
                    message: "the task process exited with a non-zero exit code".into(),
                }),
                (None, None) => None,
            };
            self.complete_task(key, f.exit_code, failure, f.end_time, fx);
        }
        if let Some(n) = self.nodes.get(node).filter(|_| single) {
            let node_key = n.key;
            self.sched_event(Event::TaskReleased { task: key, node: node_key }, fx);
        }
        self.maybe_leave(node, fx);
    }

    /// Sends a task's next attempt to `node` (the scheduler has reserved its slots and `grant`).
    pub(crate) fn start_attempt(&mut self, key: TaskKey, node_key: NodeKey, grant: Grant, fx: &mut Effects) {
        let Some((node, pool)) = self.node_name(node_key).map(|n| (n.to_owned(), self.nodes[n].wire.pool_id.clone()))
        else {
            return;
        };
        let allocation = self.allocation_of(&node, &grant);
        let token_key = self.job_token_key;
        let api_url = self.api_url.clone();
        let mpi_default = self.pools.get(&pool).and_then(|p| p.wire.mpi_default.clone());
        // Its job's preparation may have to run (or end) on the node first.
        let job = self.task_index.get(&key).map(|(j, _)| j.clone()).unwrap_or_default();
        let gate = self.prep_gate(&job, &node, fx);
        let refs = self.task_by_key(key).map(|t| t.application_package_references.clone()).unwrap_or_default();
        let packages = self.packages_for(&pool, &refs);
        self.note_first_start(key);
        let Some((j, tid)) = self.task_mut(key) else { return };
        let now = Timestamp::now();
        let t = j.tasks.get_mut(&tid).expect("indexed");
        t.attempt += 1;
        t.wire.allocation = vec![allocation.clone()];
        let state = match gate {
            super::prep::Gate::Go => TaskState::Running,
            super::prep::Gate::Wait => TaskState::Preparing,
        };
        set_task_state(&mut t.wire, state, now);
        t.wire.execution_info.start_time = Some(now);
        t.wire.node_info = Some(ComputeNodeInformation {
            pool_id: pool.clone(),
            node_id: node.clone(),
            task_root_directory: format!("workitems/{}/job-1/{}", j.wire.id, t.wire.id),
        });
        j.running += 1;
        HeadState::put_task(&j.wire.id, t, fx);
        debug_assert!(split_command_line(&t.wire.command_line).is_ok(), "validated at submit");
        let mut start = attempt_message(&j.wire, t, (pool, mpi_default.as_deref()), allocation, &token_key, &api_url);
        start.packages = packages;
        let msg = HeadMessage::StartTask(Box::new(start));
        let slots = t.wire.required_slots;
        let n = self.nodes.get_mut(&node).expect("found above");
        n.running.insert(key, slots);
        if state == TaskState::Preparing {
            self.prep_waiting.entry((job, node.clone())).or_default().push((key, msg));
        } else if let Some(c) = &n.conn {
            fx.sends.push((c.tx.clone(), msg));
        }
        self.refresh_node(&node);
    }

    /// Puts a running task back in the queue without counting a retry (a recovery requeue).
    pub(crate) fn requeue(&mut self, key: TaskKey, why: &str, fx: &mut Effects) {
        // A multi-instance task still waiting for its job's preparation: all its nodes go.
        if self.gang_waiting.contains_key(&key) {
            return self.unwind_gang(key, fx);
        }
        // A multi-instance task is requeued whole: its other instances are stopped first
        // (their nodes stay taken until they report).
        let gang = self.task_mut(key).is_some_and(|(j, tid)| {
            let t = &j.tasks[&tid];
            t.wire.state == TaskState::Running && t.killing.is_none() && !t.instances.is_empty()
        });
        if gang {
            self.kill_instances(key, "Requeued", None, fx);
        }
        let Some((j, tid)) = self.task_mut(key) else {
            self.forget_deleted(key);
            return;
        };
        let t = j.tasks.get_mut(&tid).expect("indexed");
        // A task waiting for its job's preparation there holds its share of the node too.
        if !matches!(t.wire.state, TaskState::Running | TaskState::Preparing) {
            return;
        }
        let now = Timestamp::now();
        let job_active = j.wire.state == gangway_api::JobState::Active;
        tracing::info!(job = %j.wire.id, task = %tid, attempt = t.attempt, why, "requeueing");
        if let Some(reason) = t.killing {
            // It was being killed anyway: it completes rather than runs again.
            let failure = TaskFailureInformation {
                category: ErrorCategory::ServerError,
                code: reason.into(),
                message: format!("the task was killed ({reason}) and its node was lost"),
            };
            self.complete_task(key, None, Some(failure), now, fx);
            return;
        }
        // A Slurm job's run ends NODE_FAIL.
        let slurm_job = j.wire.slurm.is_some().then(|| j.wire.id.clone());
        if let Some(id) = &slurm_job {
            self.slurm_keep_run(id, Some(gangway_api::slurm::SlurmJobState::NodeFail), fx);
        }
        let Some((job, tid)) = self.back_to_active(key, fx) else { return };
        if job_active {
            self.enqueue(&job, &tid, fx);
        } else {
            self.maybe_complete_job(&job, fx);
            self.maybe_disabled(&job, fx);
        }
    }

    /// Counts task `key`'s wait from submission to its first start (`/metrics`).
    pub(crate) fn note_first_start(&mut self, key: TaskKey) {
        let first = self.task_by_key(key).filter(|t| t.execution_info.start_time.is_none());
        if let Some(created) = first.map(|t| t.creation_time) {
            self.stats.submit_to_start_seconds.observe(Timestamp::now().micros_since(created) as f64 / 1e6);
        }
    }

    /// Puts running (or preparing) task `key` back to active without a retry counted (a
    /// requeue by the system: node lost, preparation failed, room made); returns its job and
    /// id. What it held on its nodes, and queueing it again, are the caller's.
    pub(crate) fn back_to_active(&mut self, key: TaskKey, fx: &mut Effects) -> Option<(String, String)> {
        let (j, tid) = self.task_mut(key)?;
        let t = j.tasks.get_mut(&tid).expect("indexed");
        if !matches!(t.wire.state, TaskState::Running | TaskState::Preparing) {
            return None;
        }
        let now = Timestamp::now();
        j.running -= 1;
        let info = &mut t.wire.execution_info;
        info.requeue_count += 1;
        info.last_requeue_time = Some(now);
        set_task_state(&mut t.wire, TaskState::Active, now);
        HeadState::put_task(&j.wire.id, t, fx);
        let job = j.wire.id.clone();
        self.dependency_moved(key, fx);
        Some((job, tid))
    }

    /// Gives back what the deleted job's attempt `key` held on `node`; false when it held
    /// nothing there (then the report is someone else's: a job of the same id made since).
    fn release_deleted(&mut self, node: &str, key: TaskKey, fx: &mut Effects) -> bool {
        let Some(n) = self.nodes.get_mut(node) else { return false };
        if n.running.remove(&key).is_none() {
            return false;
        }
        let node_key = n.key;
        self.refresh_node(node);
        self.sched_event(Event::TaskReleased { task: key, node: node_key }, fx);
        self.forget_deleted(key);
        true
    }

    /// Drops the record of deleted attempt `key` once no node holds it.
    fn forget_deleted(&mut self, key: TaskKey) {
        if !self.nodes.values().any(|n| n.running.contains_key(&key)) {
            self.deleted.remove(&key);
        }
    }

    pub(crate) fn attempt_of(&self, key: TaskKey) -> Option<AttemptId> {
        let (job, task) = self.task_index.get(&key)?;
        let t = self.jobs.get(job)?.tasks.get(task)?;
        Some(AttemptId { job: job.clone(), task: task.clone(), attempt: t.attempt })
    }

    pub(crate) fn is_killing(&self, key: TaskKey) -> bool {
        let Some((job, task)) = self.task_index.get(&key) else { return false };
        self.jobs.get(job).and_then(|j| j.tasks.get(task)).is_some_and(|t| t.killing.is_some())
    }

    fn task_state(&self, key: TaskKey) -> Option<TaskState> {
        let (job, task) = self.task_index.get(&key)?;
        Some(self.jobs.get(job)?.tasks.get(task)?.wire.state)
    }

    fn slots_of(&self, key: TaskKey) -> u32 {
        self.task_index
            .get(&key)
            .and_then(|(job, task)| self.jobs.get(job)?.tasks.get(task))
            .map_or(1, |t| t.wire.required_slots)
    }

    /// Recomputes a node's running counts, state and task list.
    pub(crate) fn refresh_node(&mut self, node: &str) {
        let Some(n) = self.nodes.get(node) else { return };
        let mut recent = Vec::new();
        let mut allocated = NodeUsage::default();
        for key in n.running.keys() {
            if let Some((job, task)) = self.task_index.get(key) {
                let here = self.jobs.get(job).and_then(|j| j.tasks.get(task)).into_iter();
                for a in here.flat_map(|t| &t.wire.allocation).filter(|a| a.node_id == node) {
                    allocated.cpus += a.cpus.len() as u32;
                    allocated.memory_mib += a.memory_mib;
                    allocated.gpus.extend(&a.gpus);
                }
                recent.push(TaskInformation {
                    job_id: job.clone(),
                    task_id: task.clone(),
                    task_state: TaskState::Running,
                });
            }
        }
        allocated.gpus.sort_unstable();
        recent.sort_by(|a, b| (&a.job_id, &a.task_id).cmp(&(&b.job_id, &b.task_id)));
        self.dirty_nodes.insert(node.to_owned());
        let n = self.nodes.get_mut(node).expect("checked");
        n.wire.running_tasks_count = n.running.len() as u32;
        n.wire.running_task_slots_count = n.running.values().sum();
        n.wire.recent_tasks = recent;
        n.wire.allocated = allocated;
        if n.conn.is_some() {
            let state = n.live_state();
            if n.wire.state != state {
                n.wire.state = state;
                n.wire.state_transition_time = Timestamp::now();
            }
        }
    }

    /// The heartbeat interval a launcher is told: `--heartbeat`, stretched on big clusters
    /// so the head hears at most about [`HEARTBEATS_PER_SECOND`] a second, and never more
    /// than a quarter of the node timeout (a stream is called dead after three silent
    /// intervals, well before its node is called lost).
    pub(crate) fn heartbeat_for_size(&self) -> std::time::Duration {
        // Nodes that joined count before they connect: a reconnect storm gets one interval.
        let nodes = self.nodes.len().max(self.trust.issued());
        heartbeat_for(self.heartbeat, self.node_timeout, nodes)
    }

    pub(crate) fn refresh_pool_sizes(&mut self) {
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for n in self.nodes.values() {
            *counts.entry(n.wire.pool_id.as_str()).or_default() += 1;
        }
        for p in self.pools.values_mut() {
            p.wire.current_dedicated_nodes = counts.get(p.wire.id.as_str()).copied().unwrap_or(0);
        }
    }
}

/// How many launcher heartbeats a second the head is sized for (see
/// [`HeadState::heartbeat_for_size`]): the default 2 s interval holds up to 3,000 launchers.
pub const HEARTBEATS_PER_SECOND: f64 = 1500.0;

/// [`HeadState::heartbeat_for_size`] for `nodes` nodes.
fn heartbeat_for(
    configured: std::time::Duration,
    node_timeout: std::time::Duration,
    nodes: usize,
) -> std::time::Duration {
    let spread = std::time::Duration::from_secs_f64(nodes as f64 / HEARTBEATS_PER_SECOND);
    configured.max(spread.min(node_timeout / 4))
}

#[cfg(test)]
#[test]
fn big_clusters_heartbeat_less_often_but_well_inside_the_node_timeout() {
    let s = std::time::Duration::from_secs;
    assert_eq!(heartbeat_for(s(2), s(30), 2), s(2), "small clusters keep --heartbeat");
    assert_eq!(heartbeat_for(s(2), s(30), 3000), s(2));
    assert_eq!(heartbeat_for(s(2), s(30), 6000), s(4), "1,500 a second");
    assert_eq!(heartbeat_for(s(2), s(30), 100_000), std::time::Duration::from_millis(7500), "a quarter of the timeout");
    assert_eq!(heartbeat_for(s(10), s(30), 100_000), s(10), "never shorter than asked");
}

/// The start message of a task's current attempt on the node of `allocation` (for a
/// multi-instance task, the first node's: the part common to every instance).
pub(crate) fn attempt_message(
    job: &Job,
    t: &super::TaskRec,
    (pool, mpi_default): (String, Option<&str>),
    allocation: NodeAllocation,
    token_key: &[u8],
    api_url: &str,
) -> StartTask {
    let mut env: Vec<(String, String)> =
        job.common_environment_settings.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
    env.extend(t.wire.environment_settings.iter().map(|e| (e.name.clone(), e.value.clone())));
    let mut msg = StartTask {
        id: AttemptId { job: job.id.clone(), task: t.wire.id.clone(), attempt: t.attempt },
        pool,
        command_line: t.wire.command_line.clone(),
        env,
        max_wall_clock_ms: t
            .wire
            .constraints
            .max_wall_clock_time
            .filter(|d| !d.is_unlimited())
            .map(|d| d.0.as_millis() as u64),
        retention_ms: t.wire.constraints.retention_time.map_or(0, |d| d.0.as_millis().min(u64::MAX as u128) as u64),
        slots: t.wire.required_slots,
        allocation: None,
        resource_files: t.wire.resource_files.clone(),
        output_files: t.wire.output_files.clone(),
        job_prep_task: job.job_preparation_task.as_ref().map(|p| p.task_id().to_owned()),
        packages: Vec::new(),
        multi_instance: None,
        mpi: t.wire.mpi.clone(),
        batch: None,
        // The task's own user (from its userIdentity), else the job's owner in the group the
        // job was submitted in.
        user: match &t.wire.run_as {
            Some(u) => Some(RunAs { uid: u.uid, gid: None, name: u.name.clone() }),
            None => job.owner.as_ref().map(|o| RunAs {
                uid: o.uid,
                gid: job.slurm.as_ref().map(|s| s.request.gid),
                name: o.name.clone(),
            }),
        },
    };
    super::slurm_view::add_batch(&mut msg, job, t, &allocation.gpus, token_key);
    if job.slurm.is_some() {
        if let Some(m) = mpi_default {
            msg.env.push((gangway_api::slurm_step::MPI_DEFAULT_ENV.to_owned(), m.to_owned()));
        }
    }
    add_manager_credential(&mut msg, job, t, token_key, api_url);
    msg.allocation = Some(allocation);
    msg
}

/// A job manager task that runs as the job's owner gets a credential to add and read its
/// job's tasks (`AZ_BATCH_AUTHENTICATION_TOKEN`, and as `GANGWAY_TOKEN` with `GANGWAY_URL`
/// for the `gangway` CLI).
fn add_manager_credential(msg: &mut StartTask, job: &Job, t: &super::TaskRec, key: &[u8], api_url: &str) {
    let manager = job.job_manager_task.as_ref().is_some_and(|m| m.id == t.wire.id);
    let as_owner = t.wire.run_as.as_ref().is_none_or(|u| job.owner.as_ref().is_some_and(|o| o.uid == u.uid));
    if !manager || !as_owner {
        return;
    }
    let token = super::tokens::manager_token(key, job);
    msg.env.push(("AZ_BATCH_AUTHENTICATION_TOKEN".into(), token.clone()));
    msg.env.push(("GANGWAY_TOKEN".into(), token));
    msg.env.push(("GANGWAY_URL".into(), api_url.to_owned()));
}

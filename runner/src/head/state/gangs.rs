//! Multi-instance tasks, as Azure Batch runs them: one instance per node on a gang of whole
//! idle nodes (or of its `resources` on each node, when it asks for some); every instance runs the coordination command; once all have, the primary
//! (instance 0) runs the application; its exit ends every instance and gives the task's exit
//! code; any instance failing fails (and retries) the whole task; losing a node requeues it whole.

use gangway_api::messages::{AgentRelay, AttemptId, HeadMessage, InstancePlan, PmixModex, StartTask, TaskFinished};
use gangway_api::*;

use super::{set_task_state, Effects, HeadState};
use crate::head::error::ApiError;
use crate::scheduler::{Event, NodeKey, TaskKey};
use gangway_topology::alloc::Grant;

/// One instance of the current attempt of a multi-instance task.
#[derive(Debug, Clone)]
pub(crate) struct InstanceRec {
    pub node: String,
    pub state: SubtaskState,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub failure: Option<TaskFailureInformation>,
}

impl HeadState {
    /// Checks a multi-instance request against its pool: refused at submit when the pool does
    /// not allow inter-node communication or has fewer nodes than it asks for (Azure would
    /// leave such a task active forever).
    pub(crate) fn check_multi_instance(&self, pool_id: &str, m: &MultiInstanceSettings) -> Result<(), ApiError> {
        let pool = self.pools.get(pool_id).ok_or_else(|| super::resources::pool_not_found(pool_id))?;
        if !pool.wire.enable_inter_node_communication {
            return Err(ApiError::invalid(format!(
                "multiInstanceSettings: pool '{pool_id}' does not enable inter-node communication (enableInterNodeCommunication is false)"
            )));
        }
        let n = m.number_of_instances;
        if n == 0 {
            return Err(ApiError::invalid("multiInstanceSettings.numberOfInstances must be at least 1"));
        }
        if let Some(c) = &m.coordination_command_line {
            gangway_api::cmdline::split_command_line(c)
                .map_err(|e| ApiError::invalid(format!("multiInstanceSettings.coordinationCommandLine: {e}")))?;
        }
        // More instances than the pool has nodes is no error: the task stays active until
        // nodes join, as in Azure Batch (and as Slurm queues a job with PartitionNodeLimit).
        Ok(())
    }

    /// Sends one instance of a task's next attempt to each of `nodes` (their slots are taken).
    pub(crate) fn start_gang(&mut self, key: TaskKey, parts: Vec<(NodeKey, Grant)>, fx: &mut Effects) {
        let mut names: Vec<String> = parts.iter().filter_map(|(k, _)| self.node_name(*k).map(str::to_owned)).collect();
        if names.len() != parts.len() {
            return;
        }
        let mut allocations: std::collections::HashMap<String, NodeAllocation> =
            names.iter().zip(&parts).map(|(n, (_, g))| (n.clone(), self.allocation_of(n, g))).collect();
        // A Slurm job's batch host is the first node of its allocation in hostlist order, as
        // in Slurm (SLURMD_NODENAME, srun's step layout and `%N` rely on it).
        if self.task_mut(key).is_some_and(|(j, _)| j.wire.slurm.is_some()) {
            let sorted = gangway_topology::hostlist::compress_hostlist(&names);
            if let Ok(order) = gangway_topology::hostlist::expand_hostlist(&sorted) {
                if order.len() == names.len() {
                    names = order;
                }
            }
        }
        let hosts: Vec<String> = names.iter().map(|n| self.nodes[n].wire.ip_address.clone()).collect();
        let cpus: Vec<u32> = names.iter().map(|n| self.nodes[n].wire.resources.cpus).collect();
        let allocation: Vec<NodeAllocation> = names.iter().filter_map(|n| allocations.remove(n)).collect();
        let token_key = self.job_token_key;
        let api_url = self.api_url.clone();
        // Its job's preparation runs (or ends) on each of its nodes first.
        let job = self.task_index.get(&key).map(|(j, _)| j.clone()).unwrap_or_default();
        let pool_of_job = self.jobs.get(&job).and_then(|j| self.pools.get(&j.wire.pool_info.pool_id));
        let mpi_default = pool_of_job.and_then(|p| p.wire.mpi_default.clone());
        let waits: Vec<String> =
            names.iter().filter(|n| matches!(self.prep_gate(&job, n, fx), super::prep::Gate::Wait)).cloned().collect();
        self.note_first_start(key);
        let Some((j, tid)) = self.task_mut(key) else { return };
        let now = Timestamp::now();
        let t = j.tasks.get_mut(&tid).expect("indexed");
        let Some(m) = t.wire.multi_instance_settings.clone() else { return };
        t.attempt += 1;
        let state = if waits.is_empty() { TaskState::Running } else { TaskState::Preparing };
        set_task_state(&mut t.wire, state, now);
        t.wire.execution_info.start_time = Some(now);
        let pool = j.wire.pool_info.pool_id.clone();
        t.wire.node_info = Some(ComputeNodeInformation {
            pool_id: pool.clone(),
            node_id: names[0].clone(),
            task_root_directory: format!("workitems/{}/job-1/{}", j.wire.id, t.wire.id),
        });
        t.fences.clear();
        t.wire.allocation = allocation.clone();
        t.instances = names
            .iter()
            .map(|n| InstanceRec {
                node: n.clone(),
                state: SubtaskState::Preparing,
                start_time: now,
                end_time: None,
                exit_code: None,
                failure: None,
            })
            .collect();
        j.running += 1;
        HeadState::put_task(&j.wire.id, t, fx);
        let base = super::launchers::attempt_message(
            &j.wire,
            t,
            (pool, mpi_default.as_deref()),
            allocation[0].clone(),
            &token_key,
            &api_url,
        );
        // A Slurm job with GPUs: each node names its own (`base` has the first node's).
        let slurm_gpus = j.wire.slurm.as_ref().is_some_and(|s| s.request.gpus_per_node.is_some());
        let primary_files = t.wire.resource_files.clone();
        // A whole-node instance's `requiredSlots` is already every slot (set at submit).
        let slots = t.wire.required_slots;
        let mut held = Vec::new();
        for (i, (name, own)) in names.iter().zip(allocation).enumerate() {
            let n = self.nodes.get_mut(name).expect("found above");
            n.running.insert(key, slots);
            let mut msg = StartTask {
                // The task's own resource files go to the primary only, as in Azure Batch.
                resource_files: if i == 0 { primary_files.clone() } else { Vec::new() },
                multi_instance: Some(InstancePlan {
                    instance: i as u32,
                    hosts: hosts.clone(),
                    nodes: names.clone(),
                    cpus: cpus.clone(),
                    coordination_command_line: m.coordination_command_line.clone(),
                    common_resource_files: m.common_resource_files.clone(),
                }),
                ..base.clone()
            };
            if slurm_gpus && i > 0 {
                let env = super::slurm_view::gpu_env(&own.gpus);
                msg.env.retain(|(k, _)| !env.iter().any(|(o, _)| o == k));
                msg.env.extend(env);
            }
            msg.allocation = Some(own);
            if !waits.is_empty() {
                held.push((name.clone(), HeadMessage::StartTask(Box::new(msg))));
            } else if let Some(c) = &n.conn {
                fx.sends.push((c.tx.clone(), HeadMessage::StartTask(Box::new(msg))));
            }
            self.refresh_node(name);
        }
        if !waits.is_empty() {
            self.gang_waiting.insert(key, held);
            for node in waits {
                // The messages are the gang's: what waits here is only its key.
                self.prep_waiting.entry((job.clone(), node)).or_default().push((key, HeadMessage::Heartbeat));
            }
        }
    }

    /// An instance coordinated; when every instance has, the primary runs the application.
    pub fn instance_ready(&mut self, node: &str, id: AttemptId, instance: u32, fx: &mut Effects) {
        let Some(j) = self.jobs.get_mut(&id.job) else { return };
        let Some(t) = j.tasks.get_mut(&id.task) else { return };
        if t.attempt != id.attempt || t.wire.state != TaskState::Running {
            return;
        }
        let Some(inst) = t.instances.get_mut(instance as usize).filter(|i| i.node == node) else { return };
        inst.state = SubtaskState::Running;
        if t.instances.iter().all(|i| i.state == SubtaskState::Running) && t.killing.is_none() {
            // The application runs on the primary; managed MPI ranks run on every instance.
            let go: Vec<String> = if t.wire.mpi.is_some() {
                t.instances.iter().map(|i| i.node.clone()).collect()
            } else {
                vec![t.instances[0].node.clone()]
            };
            for node in go {
                if let Some(c) = self.nodes.get(&node).and_then(|n| n.conn.as_ref()) {
                    fx.sends.push((c.tx.clone(), HeadMessage::RunApplication { id: id.clone() }));
                }
            }
        }
    }

    /// An instance ended. Its node's slots are released whatever the attempt; for the
    /// current attempt, the primary's end ends the task, and a failing instance fails it.
    /// Returns Some(outcome) when the task must now complete or retry, as a single task would.
    pub(crate) fn finish_instance(
        &mut self,
        node: &str,
        f: &TaskFinished,
        instance: u32,
        fx: &mut Effects,
    ) -> Option<TaskFinished> {
        let key = self.jobs.get(&f.id.job)?.tasks.get(&f.id.task)?.key;
        if let Some(n) = self.nodes.get_mut(node) {
            if n.running.remove(&key).is_some() {
                n.wire.total_tasks_run += 1;
                let node_key = n.key;
                self.refresh_node(node);
                self.sched_event(Event::TaskReleased { task: key, node: node_key }, fx);
            }
        }
        let j = self.jobs.get_mut(&f.id.job)?;
        let t = j.tasks.get_mut(&f.id.task)?;
        // The record belongs to the attempt: it is kept even after the task has moved on.
        let inst = t.instances.get_mut(instance as usize).filter(|i| i.node == node && t.attempt == f.id.attempt)?;
        inst.state = SubtaskState::Completed;
        inst.end_time = Some(f.end_time);
        inst.exit_code = f.exit_code;
        inst.failure = f.failure.clone();
        let failed = f.exit_code != Some(0) || f.failure.is_some();
        if t.wire.state != TaskState::Running {
            return None;
        }
        // Managed MPI ends when every node's ranks have ended well (or any failed); otherwise
        // the primary's end is the task's.
        let all_done = t.instances.iter().all(|i| i.state == SubtaskState::Completed);
        let ends_task = failed || if t.wire.mpi.is_some() { all_done } else { instance == 0 };
        if !ends_task {
            return None;
        }
        // The task ends now: the primary finished, or an instance failed.
        let key = t.key;
        let mut outcome = f.clone();
        // An instance killed for its memory keeps its code: the task's end says why.
        let oom = f.failure.as_ref().is_some_and(|x| x.code == "OutOfMemory");
        if instance != 0 && failed && !oom {
            outcome.failure = Some(TaskFailureInformation {
                category: ErrorCategory::UserError,
                code: "SubtaskFailed".into(),
                message: format!(
                    "instance {instance} on node '{node}' failed ({}); the whole task fails",
                    f.failure.as_ref().map_or_else(|| format!("exit code {:?}", f.exit_code), |x| x.message.clone())
                ),
            });
        }
        self.kill_instances(key, "TaskEnded", Some(instance), fx);
        Some(outcome)
    }

    /// Asks every node still running an instance of the task's current attempt to stop it.
    pub(crate) fn kill_instances(&mut self, key: TaskKey, reason: &str, except: Option<u32>, fx: &mut Effects) {
        let Some((j, tid)) = self.task_mut(key) else { return };
        let t = &j.tasks[&tid];
        let id = AttemptId { job: j.wire.id.clone(), task: tid.clone(), attempt: t.attempt };
        let targets: Vec<String> = t
            .instances
            .iter()
            .enumerate()
            .filter(|(i, inst)| Some(*i as u32) != except && inst.state != SubtaskState::Completed)
            .map(|(_, inst)| inst.node.clone())
            .collect();
        for node in targets {
            if let Some(c) = self.nodes.get(&node).and_then(|n| n.conn.as_ref()) {
                fx.sends.push((c.tx.clone(), HeadMessage::KillTask { id: id.clone(), reason: reason.into() }));
            }
        }
    }

    /// A node's MPI ranks entered PMI fence `epoch`; once every instance has, each gets all
    /// the puts (in instance order) and releases its ranks.
    pub fn pmi_fence(
        &mut self,
        node: &str,
        id: AttemptId,
        instance: u32,
        epoch: u32,
        puts: Vec<(String, String)>,
        fx: &mut Effects,
    ) {
        let Some(t) = self.jobs.get_mut(&id.job).and_then(|j| j.tasks.get_mut(&id.task)) else { return };
        let n = t.instances.len();
        if t.attempt != id.attempt || t.instances.get(instance as usize).is_none_or(|i| i.node != node) {
            return;
        }
        let slot = t.fences.entry(epoch).or_insert_with(|| vec![None; n]);
        slot[instance as usize] = Some(puts);
        if slot.iter().any(Option::is_none) {
            return;
        }
        let all: Vec<(String, String)> = t.fences.remove(&epoch).into_iter().flatten().flatten().flatten().collect();
        let nodes: Vec<String> = t.instances.iter().map(|i| i.node.clone()).collect();
        for node in nodes {
            if let Some(c) = self.nodes.get(&node).and_then(|n| n.conn.as_ref()) {
                let msg = HeadMessage::PmiFenceDone { id: id.clone(), epoch, puts: all.clone() };
                fx.sends.push((c.tx.clone(), msg));
            }
        }
    }

    /// Relays a PMIx direct-modex message from an instance of a running MPI attempt to its
    /// instance `to`; anything from a node that runs no instance of the attempt is dropped.
    pub fn pmix_modex(&mut self, node: &str, id: AttemptId, to: u32, modex: PmixModex, fx: &mut Effects) {
        let Some(t) = self.jobs.get(&id.job).and_then(|j| j.tasks.get(&id.task)) else { return };
        if t.attempt != id.attempt || !t.instances.iter().any(|i| i.node == node) {
            return;
        }
        let Some(target) = t.instances.get(to as usize).map(|i| i.node.clone()) else { return };
        if let Some(c) = self.nodes.get(&target).and_then(|n| n.conn.as_ref()) {
            fx.sends.push((c.tx.clone(), HeadMessage::PmixModex { id, modex }));
        }
    }

    /// Relays a remote-launch agent message between the instances of an Open MPI attempt:
    /// `Run` and `Kill` to the instance on the named host (a node name or address, as in
    /// the hostfile), `Exited` back to the instance that asked. A `Run` naming no instance of
    /// the attempt is answered at once with an error, so the agent (and `mpirun`) fail clearly.
    pub fn agent_relay(&mut self, node: &str, relay: AgentRelay, fx: &mut Effects) {
        let id = match &relay {
            AgentRelay::Run { id, .. } | AgentRelay::Exited { id, .. } | AgentRelay::Kill { id, .. } => id,
        };
        let Some(t) = self.jobs.get(&id.job).and_then(|j| j.tasks.get(&id.task)) else { return };
        if t.attempt != id.attempt || t.wire.state != TaskState::Running || !t.instances.iter().any(|i| i.node == node)
        {
            return;
        }
        let on_host = |host: &str| {
            t.instances
                .iter()
                .map(|i| i.node.as_str())
                .find(|n| *n == host || self.nodes.get(*n).is_some_and(|x| x.wire.ip_address == host))
        };
        let (target, msg) = match &relay {
            AgentRelay::Run { id, origin, req, host, .. } => match on_host(host) {
                Some(n) => (n.to_owned(), relay.clone()),
                None => {
                    let known: Vec<&str> = t.instances.iter().map(|i| i.node.as_str()).collect();
                    let answer = AgentRelay::Exited {
                        id: id.clone(),
                        origin: *origin,
                        req: *req,
                        exit_code: None,
                        error: Some(format!(
                            "no instance of this task runs on '{host}' (its nodes: {})",
                            known.join(", ")
                        )),
                    };
                    (node.to_owned(), answer)
                }
            },
            AgentRelay::Kill { host, .. } => match on_host(host) {
                Some(n) => (n.to_owned(), relay.clone()),
                None => return,
            },
            AgentRelay::Exited { origin, .. } => match t.instances.get(*origin as usize) {
                Some(i) => (i.node.clone(), relay.clone()),
                None => return,
            },
        };
        if let Some(c) = self.nodes.get(&target).and_then(|n| n.conn.as_ref()) {
            fx.sends.push((c.tx.clone(), HeadMessage::Agent(msg)));
        }
    }

    /// `GET /jobs/{job}/tasks/{task}/subtasksinfo`: the instances but the primary.
    pub fn subtasks_info(&self, job: &str, task: &str) -> Result<Vec<SubtaskInformation>, ApiError> {
        let j = self.jobs.get(job).ok_or_else(|| super::resources::job_not_found(job))?;
        let t = j.tasks.get(task).ok_or_else(|| super::resources::task_not_found(job, task))?;
        Ok(t.instances
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, inst)| SubtaskInformation {
                id: i as u32,
                node_info: ComputeNodeInformation {
                    pool_id: j.wire.pool_info.pool_id.clone(),
                    node_id: inst.node.clone(),
                    task_root_directory: format!("workitems/{job}/job-1/{task}"),
                },
                state: inst.state,
                start_time: Some(inst.start_time),
                end_time: inst.end_time,
                exit_code: inst.exit_code,
                failure_info: inst.failure.clone(),
                result: (inst.state == SubtaskState::Completed).then(|| {
                    if inst.exit_code == Some(0) && inst.failure.is_none() {
                        TaskExecutionResult::Success
                    } else {
                        TaskExecutionResult::Failure
                    }
                }),
            })
            .collect())
    }
}

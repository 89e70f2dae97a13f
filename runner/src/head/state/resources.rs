//! Pools, jobs and tasks: the REST operations that change them, and recovery from the store.

use std::collections::BTreeMap;
use std::time::Duration;

use gangway_api::cmdline::split_command_line;
use gangway_api::common::validate_id;
use gangway_api::messages::HeadMessage;
use gangway_api::*;

use super::{set_task_state, Effects, HeadState, JobRec, PoolRec, TaskRec, Timer};
use crate::head::error::ApiError;
use crate::head::identity::Caller;
use crate::scheduler::{Event, Fill};
use crate::store::{Snapshot, Write};

/// Azure's default retention: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// Azure's limit on `taskSlotsPerNode`.
pub const MAX_SLOTS_PER_NODE: u32 = 256;

impl HeadState {
    /// `POST /pools`.
    pub fn add_pool(&mut self, p: PoolAddParameter, fx: &mut Effects) -> Result<(), ApiError> {
        validate_id("pool", &p.id).map_err(ApiError::invalid)?;
        let slots = p.task_slots_per_node.unwrap_or(1);
        if slots == 0 || slots > MAX_SLOTS_PER_NODE {
            return Err(ApiError::invalid(format!(
                "taskSlotsPerNode is {slots}; it must be between 1 and {MAX_SLOTS_PER_NODE}"
            )));
        }
        if let Some(m) = p.default_memory_per_cpu_mib.filter(|m| *m == 0 || *m > 1 << 30) {
            return Err(ApiError::invalid(format!(
                "defaultMemoryPerCpuMiB is {m}; it must be between 1 and {} (or absent: none)",
                1u64 << 30
            )));
        }
        if let Some(m) = &p.mpi_default {
            gangway_api::slurm_step::StepMpi::parse(m)
                .map_err(|_| ApiError::invalid(format!("mpiDefault is '{m}'; it must be auto, pmi2, pmix or none")))?;
        }
        if let Some(n) = p.task_scheduling_policy.and_then(|t| t.reservations) {
            let max = crate::scheduler::MAX_RESERVATIONS;
            if n == 0 || n > max {
                return Err(ApiError::invalid(format!(
                    "taskSchedulingPolicy.reservations is {n}; it must be between 1 and {max}"
                )));
            }
        }
        if let Some(n) = p.task_scheduling_policy.and_then(|t| t.max_tasks_examined) {
            if n == 0 || n > 100_000 {
                return Err(ApiError::invalid(format!(
                    "taskSchedulingPolicy.maxTasksExamined is {n}; it must be between 1 and 100000"
                )));
            }
        }
        for (name, limit) in [("defaultTimeLimit", p.default_time_limit), ("maxTimeLimit", p.max_time_limit)] {
            if limit.is_some_and(|d| d.0.is_zero()) {
                return Err(ApiError::invalid(format!("{name} is zero; leave it out for no limit")));
            }
        }
        if let (Some(d), Some(m)) = (p.default_time_limit, p.max_time_limit) {
            if d > m && !m.is_unlimited() {
                return Err(ApiError::invalid(format!("defaultTimeLimit ({d}) is above maxTimeLimit ({m})")));
            }
        }
        if let Some(st) = &p.start_task {
            split_command_line(&st.command_line)
                .map_err(|e| ApiError::invalid(format!("startTask.commandLine: {e}")))?;
            check_env(&st.environment_settings, "startTask.environmentSettings")?;
            check_retry_count(Some(st.max_task_retry_count), "startTask.maxTaskRetryCount")?;
        }
        if self.pools.contains_key(&p.id) {
            return Err(ApiError::conflict("PoolExists", format!("pool '{}' already exists", p.id)));
        }
        self.resolve_packages(&p.application_package_references, "applicationPackageReferences")?;
        let wire = Pool {
            id: p.id,
            display_name: p.display_name,
            state: PoolState::Active,
            allocation_state: "steady".into(),
            creation_time: Timestamp::now(),
            task_slots_per_node: slots,
            default_memory_per_cpu_mib: p.default_memory_per_cpu_mib,
            mpi_default: p.mpi_default,
            task_scheduling_policy: p.task_scheduling_policy.unwrap_or_default(),
            default_time_limit: p.default_time_limit.filter(|d| !d.is_unlimited()),
            max_time_limit: p.max_time_limit.filter(|d| !d.is_unlimited()),
            enable_inter_node_communication: p.enable_inter_node_communication,
            current_dedicated_nodes: 0,
            start_task: p.start_task,
            application_package_references: p.application_package_references,
        };
        fx.writes
            .push(Write::PutPool { id: wire.id.clone(), body: serde_json::to_string(&wire).expect("pools serialize") });
        let id = wire.id.clone();
        self.insert_pool(wire, fx);
        // Jobs left behind by a deleted pool of this id take it up.
        let waiting: Vec<(String, String)> = self
            .jobs
            .values()
            .filter(|j| j.wire.pool_info.pool_id == id && j.wire.state == JobState::Active)
            .flat_map(|j| {
                j.tasks
                    .values()
                    .filter(|t| t.wire.state == TaskState::Active)
                    .map(|t| (j.wire.id.clone(), t.wire.id.clone()))
            })
            .collect();
        for (job, task) in waiting {
            self.enqueue(&job, &task, fx);
        }
        Ok(())
    }

    fn insert_pool(&mut self, wire: Pool, fx: &mut Effects) {
        let key = self.new_key() as u32;
        let fill = match wire.task_scheduling_policy.node_fill_type {
            NodeFillType::Spread => Fill::Spread,
            NodeFillType::Pack => Fill::Pack,
        };
        let policy = super::alloc::policy_of(&wire.task_scheduling_policy);
        self.sched_event(Event::PoolAdded { pool: key, slots_per_node: wire.task_slots_per_node, fill, policy }, fx);
        self.pools.insert(wire.id.clone(), PoolRec { wire, key });
    }

    /// `DELETE /pools/{id}`: the pool is `deleting`; its nodes leave, their running tasks
    /// requeued (no retry counted; a node that has gone quiet is forgotten), and it is gone
    /// when the last has left, which with requeueing is at once. Its jobs stay: their tasks
    /// wait for a pool of that id.
    pub fn delete_pool(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let pool = self.pools.get_mut(id).ok_or_else(|| pool_not_found(id))?;
        pool.wire.state = PoolState::Deleting;
        fx.writes.push(Write::PutPool {
            id: id.to_owned(),
            body: serde_json::to_string(&pool.wire).expect("pools serialize"),
        });
        let nodes: Vec<String> =
            self.nodes.values().filter(|n| n.wire.pool_id == id).map(|n| n.wire.id.clone()).collect();
        for node in nodes {
            self.remove_node(&node, ComputeNodeDeallocationOption::Requeue, "PoolDeleted", fx);
        }
        self.maybe_remove_pool(id, fx);
        Ok(())
    }

    /// A deleting pool without nodes is forgotten.
    pub(crate) fn maybe_remove_pool(&mut self, id: &str, fx: &mut Effects) {
        let Some(pool) = self.pools.get(id).filter(|p| p.wire.state == PoolState::Deleting) else { return };
        if self.nodes.values().any(|n| n.wire.pool_id == id) {
            return;
        }
        let key = pool.key;
        self.sched_event(Event::PoolRemoved { pool: key }, fx);
        self.pools.remove(id);
        fx.writes.push(Write::DeletePool { id: id.to_owned() });
    }

    /// `POST /jobs`.
    pub fn add_job(&mut self, p: JobAddParameter, owner: Owner, fx: &mut Effects) -> Result<(), ApiError> {
        validate_id("job", &p.id).map_err(ApiError::invalid)?;
        let rec = self.job_record(p, owner, true)?;
        self.insert_job(rec, fx);
        Ok(())
    }

    /// Every check of a new job `p` but its id's spelling (its manager task's included, as a
    /// task of it; the owner's open-job limit with `limits`), and its record. Changes nothing
    /// but the sequence counter.
    pub(crate) fn job_record(&mut self, p: JobAddParameter, owner: Owner, limits: bool) -> Result<JobRec, ApiError> {
        let priority = p.priority.unwrap_or(0);
        if !(-1000..=1000).contains(&priority) {
            return Err(ApiError::invalid(format!("priority is {priority}; it must be between -1000 and 1000")));
        }
        let constraints = p.constraints.unwrap_or_default();
        check_retry_count(constraints.max_task_retry_count, "constraints.maxTaskRetryCount")?;
        let pool_id = p.pool_info.map_or_else(|| "default".to_owned(), |pi| pi.pool_id);
        if !self.pools.contains_key(&pool_id) {
            return Err(pool_not_found(&pool_id));
        }
        check_env(&p.common_environment_settings, "commonEnvironmentSettings")?;
        super::prep::check_prep_release(p.job_preparation_task.as_ref(), p.job_release_task.as_ref())?;
        if self.jobs.contains_key(&p.id) {
            return Err(ApiError::conflict("JobExists", format!("job '{}' already exists", p.id)));
        }
        if limits {
            self.may_open_jobs(Some(owner.uid), 1)?;
        }
        let now = Timestamp::now();
        let wire = Job {
            id: p.id,
            display_name: p.display_name,
            state: JobState::Active,
            state_transition_time: now,
            previous_state: None,
            creation_time: now,
            priority,
            constraints,
            pool_info: PoolInformation { pool_id: pool_id.clone() },
            on_all_tasks_complete: p.on_all_tasks_complete.unwrap_or_default(),
            on_task_failure: p.on_task_failure.unwrap_or_default(),
            common_environment_settings: p.common_environment_settings,
            uses_task_dependencies: p.uses_task_dependencies.unwrap_or(false),
            on_dependency_blocked: p.on_dependency_blocked.unwrap_or_default(),
            job_manager_task: p.job_manager_task,
            job_schedule_id: None,
            job_preparation_task: p.job_preparation_task,
            job_release_task: p.job_release_task,
            prep_release: Vec::new(),
            execution_info: JobExecutionInformation {
                start_time: Some(now),
                end_time: None,
                pool_id,
                terminate_reason: None,
            },
            slurm: None,
            owner: Some(owner),
        };
        let seq = self.new_seq();
        let rec = JobRec { wire, seq, tasks: BTreeMap::new(), running: 0, completed: 0 };
        if let Some(m) = self.manager_of(&rec) {
            self.validate_task_in(&rec, m, Fit::Now).map_err(|e| prefixed(e, "jobManagerTask"))?;
        }
        Ok(rec)
    }

    /// A job manager task `key` of `job` found no room: the tasks of one node of its pool, all
    /// of jobs of lower priority (none a job manager nor a multi-instance task), are requeued
    /// (not counted as retries) so that it starts there. The node with the fewest such tasks
    /// goes; when every node runs something of equal or higher priority, it waits.
    pub(crate) fn make_room_for_manager(&mut self, job: &str, fx: &mut Effects) {
        let Some(j) = self.jobs.get(job) else { return };
        let (pool, priority) = (j.wire.pool_info.pool_id.clone(), j.wire.priority);
        let yields = |k: &crate::scheduler::TaskKey| {
            let Some((oj, ot)) = self.task_index.get(k) else { return false };
            let Some(o) = self.jobs.get(oj) else { return false };
            let t = o.tasks.get(ot);
            o.wire.priority < priority
                && o.wire.job_manager_task.as_ref().is_none_or(|m| &m.id != ot)
                && t.is_some_and(|t| t.wire.multi_instance_settings.is_none() && t.killing.is_none())
        };
        let victim = self
            .nodes
            .values()
            .filter(|n| n.wire.pool_id == pool && n.conn.is_some() && n.schedulable && !n.running.is_empty())
            .filter(|n| n.running.keys().all(yields))
            .min_by_key(|n| (n.running.len(), n.wire.id.clone()))
            .map(|n| n.wire.id.clone());
        let Some(node) = victim else { return };
        tracing::info!(job, node, "requeueing lower-priority tasks to make room for a job manager");
        // All of them leave before the scheduler looks again (one at a time, the first freed
        // slot could go straight back to another of them), then the manager, queued ahead of
        // them, is placed; they queue again behind it.
        let n = self.nodes.get_mut(&node).expect("chosen above");
        let (node_key, tx) = (n.key, n.conn.as_ref().map(|c| c.tx.clone()));
        let victims: Vec<crate::scheduler::TaskKey> = n.running.drain().map(|(k, _)| k).collect();
        let mut again = Vec::new();
        for key in victims {
            if let (Some(id), Some(tx)) = (self.attempt_of(key), &tx) {
                fx.sends.push((tx.clone(), HeadMessage::KillTask { id, reason: "Preempted".into() }));
            }
            self.sched.apply(Event::TaskReleased { task: key, node: node_key });
            again.extend(self.back_to_active(key, fx));
        }
        self.refresh_node(&node);
        self.sched_pass(fx);
        for (job, task) in again {
            self.enqueue(&job, &task, fx);
        }
    }

    /// The task a job's manager is.
    fn manager_of(&self, j: &JobRec) -> Option<TaskAddParameter> {
        let slots = self.pools.get(&j.wire.pool_info.pool_id).map_or(1, |p| p.wire.task_slots_per_node);
        j.wire.job_manager_task.as_ref().map(|m| m.task(slots))
    }

    /// Creates a job checked by [`HeadState::job_record`], with its manager task.
    pub(crate) fn insert_job(&mut self, rec: JobRec, fx: &mut Effects) {
        if let Some(limit) = rec.wire.constraints.max_wall_clock_time.filter(|d| !d.is_unlimited()) {
            fx.timers.push(Timer::JobDeadline { job: rec.wire.id.clone(), at: rec.wire.creation_time.plus(limit.0) });
        }
        HeadState::put_job(&rec, fx);
        self.count_open(rec.wire.owner.as_ref().map(|o| o.uid), true);
        let manager = self.manager_of(&rec);
        let (id, terminate) = (rec.wire.id.clone(), rec.wire.on_all_tasks_complete == OnAllTasksComplete::TerminateJob);
        self.jobs.insert(id.clone(), rec);
        if let Some(m) = manager {
            self.add_task(&id, m, fx).expect("checked with the job");
        }
        // As Azure documents: a job without tasks has all its tasks complete (add the tasks
        // first with noaction, then PATCH it to terminatejob).
        if terminate && self.jobs[&id].tasks.is_empty() {
            self.end_job(&id, "AllTasksComplete".into(), fx);
        }
    }

    /// `PATCH /jobs/{id}`.
    pub fn patch_job(&mut self, id: &str, p: JobPatchParameter, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| job_not_found(id))?;
        if matches!(j.wire.state, JobState::Completed | JobState::Terminating | JobState::Deleting) {
            return Err(ApiError::conflict("JobCompleted", format!("job '{id}' has ended and cannot be changed")));
        }
        if let Some(priority) = p.priority.filter(|p| !(-1000..=1000).contains(p)) {
            return Err(ApiError::invalid(format!("priority is {priority}; it must be between -1000 and 1000")));
        }
        if let Some(c) = &p.constraints {
            check_retry_count(c.max_task_retry_count, "constraints.maxTaskRetryCount")?;
        }
        if p.on_all_tasks_complete == Some(OnAllTasksComplete::NoAction)
            && j.wire.on_all_tasks_complete == OnAllTasksComplete::TerminateJob
        {
            return Err(ApiError::invalid(format!(
                "onAllTasksComplete of job '{id}' is terminatejob and cannot go back to noaction"
            )));
        }
        let j = self.jobs.get_mut(id).expect("checked");
        if let Some(c) = p.constraints {
            j.wire.constraints = c;
            if let Some(limit) = c.max_wall_clock_time.filter(|d| !d.is_unlimited()) {
                fx.timers.push(Timer::JobDeadline { job: id.to_owned(), at: j.wire.creation_time.plus(limit.0) });
            }
        }
        if let Some(v) = p.on_all_tasks_complete {
            j.wire.on_all_tasks_complete = v;
        }
        if let Some(v) = p.on_task_failure {
            j.wire.on_task_failure = v;
        }
        let requeue = p.priority.is_some_and(|np| np != j.wire.priority);
        if let Some(priority) = p.priority {
            j.wire.priority = priority;
        }
        HeadState::put_job(j, fx);
        let queued: Vec<(u64, String)> = j
            .tasks
            .values()
            .filter(|t| t.wire.state == TaskState::Active)
            .map(|t| (t.key, t.wire.id.clone()))
            .collect();
        let all_done = j.completed == j.tasks.len();
        if requeue && j.wire.state == JobState::Active {
            for (key, task) in queued {
                self.sched_event(Event::TaskWithdrawn { task: key }, fx);
                self.enqueue(id, &task, fx);
            }
        }
        let j = &self.jobs[id];
        if all_done
            && j.wire.state == JobState::Active
            && j.wire.on_all_tasks_complete == OnAllTasksComplete::TerminateJob
        {
            self.end_job(id, "AllTasksComplete".into(), fx);
        }
        Ok(())
    }

    /// `POST /jobs/{id}/tasks` and each element of `addtaskcollection`.
    pub fn add_task(&mut self, job_id: &str, p: TaskAddParameter, fx: &mut Effects) -> Result<(), ApiError> {
        self.add_task_as(job_id, p, None, fx)
    }

    /// [`HeadState::add_task`] for a task that runs as `run_as` (resolved and allowed from its
    /// `userIdentity` by the caller) instead of the job's owner.
    pub fn add_task_as(
        &mut self,
        job_id: &str,
        p: TaskAddParameter,
        run_as: Option<Owner>,
        fx: &mut Effects,
    ) -> Result<(), ApiError> {
        self.add_task_fitting(job_id, p, run_as, Fit::Now, fx)
    }

    /// [`HeadState::add_task_as`], refusing a task no node of its pool could hold (`Fit::Now`)
    /// or letting it wait for bigger nodes (`Fit::MayWait`, Slurm's `PartitionConfig`).
    pub(crate) fn add_task_fitting(
        &mut self,
        job_id: &str,
        p: TaskAddParameter,
        run_as: Option<Owner>,
        fit: Fit,
        fx: &mut Effects,
    ) -> Result<(), ApiError> {
        let j = self.jobs.get(job_id).ok_or_else(|| job_not_found(job_id))?;
        let mut wire = self.validate_task_in(j, p, fit)?;
        wire.run_as = run_as;
        let key = self.new_key();
        let seq = self.new_seq();
        let j = self.jobs.get_mut(job_id).expect("validated");
        let rec =
            TaskRec { wire, key, seq, attempt: 0, killing: None, instances: Vec::new(), fences: Default::default() };
        HeadState::put_task(&j.wire.id, &rec, fx);
        let id = rec.wire.id.clone();
        j.tasks.insert(id.clone(), rec);
        self.task_index.insert(key, (job_id.to_owned(), id.clone()));
        self.dependency_parent_added(job_id, &id);
        if self.register_dependencies(job_id, &id, fx) {
            self.enqueue(job_id, &id, fx);
        }
        Ok(())
    }

    /// Checks a task against its job and pool and builds its record; changes nothing.
    pub fn validate_task(&self, job_id: &str, p: TaskAddParameter) -> Result<Task, ApiError> {
        let j = self.jobs.get(job_id).ok_or_else(|| job_not_found(job_id))?;
        self.validate_task_in(j, p, Fit::Now)
    }

    /// [`HeadState::validate_task`] for job `j` (which may not be in the state yet).
    fn validate_task_in(&self, j: &JobRec, p: TaskAddParameter, fit: Fit) -> Result<Task, ApiError> {
        let job_id = j.wire.id.as_str();
        if !matches!(j.wire.state, JobState::Active | JobState::Disabling | JobState::Disabled) {
            return Err(ApiError::conflict(
                "JobNotActive",
                format!("job '{job_id}' is {:?}; tasks can be added only to an active job", j.wire.state)
                    .to_lowercase(),
            ));
        }
        validate_id("task", &p.id).map_err(ApiError::invalid)?;
        let special = [
            (
                j.wire.job_preparation_task.as_ref().map(|t| t.task_id()),
                "TaskIdSameAsJobPreparationTask",
                "preparation",
            ),
            (j.wire.job_release_task.as_ref().map(|t| t.task_id()), "TaskIdSameAsJobReleaseTask", "release"),
        ];
        for (id, code, what) in special {
            if id == Some(p.id.as_str()) {
                return Err(ApiError::conflict(code, format!("task id '{}' is job '{job_id}''s {what} task's", p.id)));
            }
        }
        if j.tasks.contains_key(&p.id) {
            return Err(ApiError::conflict("TaskExists", format!("task '{}' already exists in job '{job_id}'", p.id)));
        }
        split_command_line(&p.command_line).map_err(|e| ApiError::invalid(format!("commandLine: {e}")))?;
        check_env(&p.environment_settings, "environmentSettings")?;
        self.check_dependencies(j, &p)?;
        self.resolve_packages(&p.application_package_references, "applicationPackageReferences")?;
        for (i, f) in p.output_files.iter().enumerate() {
            f.validate(&format!("outputFiles[{i}]")).map_err(ApiError::invalid)?;
        }

        super::resource_files::check_resource_files(&p.resource_files, "resourceFiles")?;
        let mut constraints = p.constraints.unwrap_or_default();
        check_retry_count(constraints.max_task_retry_count, "constraints.maxTaskRetryCount")?;
        constraints.max_task_retry_count =
            Some(constraints.max_task_retry_count.or(j.wire.constraints.max_task_retry_count).unwrap_or(0));
        constraints.retention_time.get_or_insert(IsoDuration(DEFAULT_RETENTION));
        let slots = p.required_slots.unwrap_or(1);
        let pool =
            &self.pools.get(&j.wire.pool_info.pool_id).ok_or_else(|| pool_not_found(&j.wire.pool_info.pool_id))?.wire;
        if slots == 0 || (slots > pool.task_slots_per_node && fit == Fit::Now) {
            return Err(ApiError::invalid(format!(
                "requiredSlots is {slots}; pool '{}' has {} slot(s) per node, so the task could never run (allowed: 1 to {})",
                pool.id, pool.task_slots_per_node, pool.task_slots_per_node
            )));
        }
        if let Some(m) = &p.mpi {
            if m.ranks_per_node == 0 {
                return Err(ApiError::invalid("mpi.ranksPerNode must be at least 1"));
            }
            if let Some(i) = m.implementation.as_deref().filter(|i| !matches!(*i, "auto" | "pmi" | "pmix" | "openmpi"))
            {
                return Err(ApiError::invalid(format!(
                    "mpi.implementation is '{i}'; it must be auto, pmi, pmix or openmpi"
                )));
            }
            gangway_topology::placement::PlacementRequest::parse(&m.placement_spec())
                .map_err(|e| ApiError::invalid(format!("mpi: {e}")))?;
        }
        if let Some(r) = &p.resources {
            super::alloc::check_resources(r)?;
        }
        let resources = super::alloc::with_default_memory(p.resources, p.mpi.as_ref(), pool.default_memory_per_cpu_mib);
        let p = TaskAddParameter { resources, ..p };
        let need = super::alloc::task_need_of(&p.resources.clone().unwrap_or_default(), p.mpi.as_ref());
        // A multi-instance task without a need takes whole nodes: each instance holds all of
        // its node's slots; with one, each instance takes its need and its slots.
        // A whole-node share takes every slot of it too, as the scheduler counts it.
        let slots = match &p.multi_instance_settings {
            Some(m) => {
                self.check_multi_instance(&pool.id, m)?;
                let whole = need.as_ref().is_none_or(|n| n.whole);
                if whole {
                    pool.task_slots_per_node
                } else {
                    slots
                }
            }
            None if need.as_ref().is_some_and(|n| n.whole) => pool.task_slots_per_node,
            None => slots,
        };
        if let Some(need) = need.as_ref().filter(|_| fit == Fit::Now) {
            self.check_need_fits(&pool.id, need)?;
        }
        super::alloc::check_time_limit(
            pool,
            p.constraints.as_ref().and_then(|c| c.max_wall_clock_time),
            "maxWallClockTime",
        )?;
        let now = Timestamp::now();
        Ok(Task {
            id: p.id,
            display_name: p.display_name,
            creation_time: now,
            state: TaskState::Active,
            state_transition_time: now,
            previous_state: None,
            previous_state_transition_time: None,
            command_line: p.command_line,
            environment_settings: p.environment_settings,
            constraints,
            required_slots: slots,
            multi_instance_settings: p.multi_instance_settings,
            mpi: p.mpi,
            resource_files: p.resource_files,
            resources: p.resources,
            allocation: Vec::new(),
            planned_start: None,
            execution_info: TaskExecutionInformation::default(),
            node_info: None,
            user_identity: p.user_identity,
            run_as: None,
            depends_on: p.depends_on,
            exit_conditions: p.exit_conditions,
            dependency: None,
            output_files: p.output_files,
            application_package_references: p.application_package_references,
        })
    }

    /// `POST /jobs/{id}/tasks/{tid}/terminate`.
    pub fn terminate_task(&mut self, job_id: &str, task_id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(job_id).ok_or_else(|| job_not_found(job_id))?;
        let t = j.tasks.get(task_id).ok_or_else(|| task_not_found(job_id, task_id))?;
        match t.wire.state {
            TaskState::Completed => Ok(()),
            TaskState::Active => {
                let key = t.key;
                self.sched_event(Event::TaskWithdrawn { task: key }, fx);
                let failure = TaskFailureInformation {
                    category: ErrorCategory::UserError,
                    code: "TaskTerminated".into(),
                    message: "the task was terminated before it ran".into(),
                };
                self.complete_task(key, None, Some(failure), Timestamp::now(), fx);
                Ok(())
            }
            TaskState::Running | TaskState::Preparing => {
                let key = t.key;
                self.kill_task(key, "TaskTerminated", fx);
                Ok(())
            }
        }
    }

    /// Asks the task's node to kill its running attempt; the node's report completes it.
    pub(crate) fn kill_task(&mut self, key: u64, reason: &'static str, fx: &mut Effects) {
        if self.abandon_preparing(key, reason, fx) {
            return;
        }
        let Some((j, tid)) = self.task_mut(key) else { return };
        let t = j.tasks.get_mut(&tid).expect("indexed");
        t.killing = Some(reason);
        if !t.instances.is_empty() {
            // Every instance, on every node; the primary's report completes the task.
            return self.kill_instances(key, reason, None, fx);
        }
        let id = messages::AttemptId { job: j.wire.id.clone(), task: tid, attempt: t.attempt };
        let node = t.wire.node_info.as_ref().map(|n| n.node_id.clone());
        if let Some(conn) = node.and_then(|n| self.nodes.get(&n)).and_then(|n| n.conn.as_ref()) {
            fx.sends.push((conn.tx.clone(), HeadMessage::KillTask { id, reason: reason.into() }));
        }
    }

    /// Sends `signal` to every process of the task's running attempt, on every node that runs
    /// an instance of it; nothing is recorded (a signal changes no state the head keeps).
    pub(crate) fn signal_task(&mut self, job_id: &str, task_id: &str, signal: i32, fx: &mut Effects) {
        let Some(t) = self.jobs.get(job_id).and_then(|j| j.tasks.get(task_id)) else { return };
        if !matches!(t.wire.state, TaskState::Running | TaskState::Preparing) {
            return;
        }
        let id = messages::AttemptId { job: job_id.to_owned(), task: task_id.to_owned(), attempt: t.attempt };
        let nodes: Vec<String> = if t.instances.is_empty() {
            t.wire.node_info.iter().map(|n| n.node_id.clone()).collect()
        } else {
            t.instances.iter().map(|i| i.node.clone()).collect()
        };
        for node in nodes {
            if let Some(conn) = self.nodes.get(&node).and_then(|n| n.conn.as_ref()) {
                fx.sends.push((conn.tx.clone(), HeadMessage::SignalTask { id: id.clone(), signal }));
            }
        }
    }

    /// `POST /jobs/{id}/terminate`.
    pub fn terminate_job(&mut self, id: &str, reason: Option<String>, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| job_not_found(id))?;
        match j.wire.state {
            JobState::Completed | JobState::Terminating => {
                return Err(ApiError::conflict(
                    "JobCompleted",
                    format!("job '{id}' is already {:?}", j.wire.state).to_lowercase(),
                ))
            }
            JobState::Deleting => {
                return Err(ApiError::conflict("JobBeingDeleted", format!("job '{id}' is being deleted")))
            }
            _ => {}
        }
        self.end_job(id, reason.unwrap_or_else(|| "UserTerminate".into()), fx);
        Ok(())
    }

    /// Terminates a job: queued tasks never run (they stay active, as in Azure Batch),
    /// running ones are killed; it completes when the last of them has ended.
    pub(crate) fn end_job(&mut self, id: &str, reason: String, fx: &mut Effects) {
        let Some(j) = self.jobs.get_mut(id) else { return };
        let now = Timestamp::now();
        j.wire.previous_state = Some(j.wire.state);
        j.wire.state = JobState::Terminating;
        j.wire.state_transition_time = now;
        j.wire.execution_info.terminate_reason = Some(reason);
        let mut withdraw = Vec::new();
        let mut kill = Vec::new();
        for t in j.tasks.values() {
            match t.wire.state {
                TaskState::Active => withdraw.push(t.key),
                TaskState::Running | TaskState::Preparing => kill.push(t.key),
                TaskState::Completed => {}
            }
        }
        for key in withdraw {
            self.deps.remove(key);
            self.sched_event(Event::TaskWithdrawn { task: key }, fx);
        }
        for key in kill {
            self.kill_task(key, "JobTerminated", fx);
        }
        self.maybe_complete_job(id, fx);
    }

    /// A terminating job with nothing running is completed.
    pub(crate) fn maybe_complete_job(&mut self, id: &str, fx: &mut Effects) {
        let Some(j) = self.jobs.get(id) else { return };
        // With nothing left running, its release tasks run; it completes when they have.
        if j.wire.state == JobState::Terminating && j.running == 0 && self.releases_pending(id, fx) {
            return;
        }
        let Some(j) = self.jobs.get_mut(id) else { return };
        let mut completed = None;
        if j.wire.state == JobState::Terminating && j.running == 0 {
            let now = Timestamp::now();
            j.wire.previous_state = Some(JobState::Terminating);
            j.wire.state = JobState::Completed;
            j.wire.state_transition_time = now;
            j.wire.execution_info.end_time = Some(now);
            completed = Some(j.wire.owner.as_ref().map(|o| o.uid));
        }
        HeadState::put_job(j, fx);
        let schedule = j.wire.job_schedule_id.clone().filter(|_| completed.is_some());
        if let Some(owner) = completed {
            self.count_open(owner, false);
        }
        if let Some(s) = schedule {
            self.schedule_job_ended(&s, fx);
        }
    }

    /// `DELETE /jobs/{id}`: kills what runs, removes task directories on the nodes, forgets the job.
    pub fn delete_job(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| job_not_found(id))?;
        let keys: Vec<_> = j.tasks.values().map(|t| (t.key, t.wire.state)).collect();
        for (key, state) in keys {
            match state {
                TaskState::Active => self.sched_event(Event::TaskWithdrawn { task: key }, fx),
                TaskState::Running | TaskState::Preparing => {
                    if let Some(attempt) = self.attempt_of(key) {
                        self.deleted.insert(key, attempt);
                    }
                    self.kill_task(key, "JobDeleted", fx)
                }
                TaskState::Completed => {}
            }
        }
        self.dependency_job_gone(id, fx);
        // Its releases run where it prepared; nothing waits for them.
        self.releases_pending(id, fx);
        self.forget_job(id, true, fx);
        Ok(())
    }

    /// Removes job `id` from memory and the store (its task directories too, with `remove_dirs`).
    pub(crate) fn forget_job(&mut self, id: &str, remove_dirs: bool, fx: &mut Effects) {
        let Some(j) = self.jobs.remove(id) else { return };
        if let Some(s) = &j.wire.job_schedule_id {
            self.schedule_job_ended(s, fx);
        }
        if j.wire.state != JobState::Completed {
            self.count_open(j.wire.owner.as_ref().map(|o| o.uid), false);
        }
        for t in j.tasks.values() {
            self.task_index.remove(&t.key);
            let Some(node) = t.wire.node_info.as_ref().map(|n| &n.node_id).filter(|_| remove_dirs) else { continue };
            // What a still-running task holds is released when its node reports the kill.
            if let Some(conn) = self.nodes.get(node).and_then(|n| n.conn.as_ref()) {
                let msg = HeadMessage::RemoveTaskDir { job: id.to_owned(), task: t.wire.id.clone() };
                fx.sends.push((conn.tx.clone(), msg));
            }
        }
        fx.writes.push(Write::DeleteJob { id: id.to_owned() });
    }

    /// Rebuilds the state from the store: queued tasks are queued again, tasks that were
    /// running wait for their node to reconnect (or to be declared lost).
    pub fn restore(&mut self, snap: Snapshot, fx: &mut Effects) -> Result<(), String> {
        for body in snap.pools {
            let wire: Pool = serde_json::from_str(&body).map_err(|e| format!("stored pool: {e}"))?;
            self.insert_pool(wire, fx);
        }
        for stored in snap.nodes {
            let mut wire: ComputeNode = serde_json::from_str(&stored.body).map_err(|e| format!("stored node: {e}"))?;
            // Not connected until its launcher says hello again; lost if it does not in time.
            wire.state = NodeState::Unknown;
            wire.running_tasks_count = 0;
            wire.running_task_slots_count = 0;
            wire.recent_tasks.clear();
            let key = self.new_key() as crate::scheduler::NodeKey;
            let inventory = super::alloc::inventory_of(&wire.resources, wire.topology.as_ref());
            let mut rec = super::NodeRec {
                wire,
                key,
                conn: None,
                generation: 0,
                running: std::collections::HashMap::new(),
                inventory,
                boot_id: stored.boot_id,
                leaving: stored.leaving,
                wait_for_start: stored.wait_for_start,
                schedulable: false,
                persisted: None,
            };
            rec.persisted = Some(rec.facts());
            fx.timers.push(Timer::NodeLost { node: stored.id.clone(), generation: 0, after: self.node_timeout });
            self.node_names.insert(key, stored.id.clone());
            self.nodes.insert(stored.id, rec);
        }
        self.refresh_pool_sizes();
        for (seq, body) in snap.jobs {
            let wire: Job = serde_json::from_str(&body).map_err(|e| format!("stored job: {e}"))?;
            self.bump_seq(seq);
            if let (JobState::Active, Some(limit)) = (wire.state, wire.constraints.max_wall_clock_time) {
                if !limit.is_unlimited() {
                    fx.timers.push(Timer::JobDeadline { job: wire.id.clone(), at: wire.creation_time.plus(limit.0) });
                }
            }
            if wire.state != JobState::Completed {
                self.count_open(wire.owner.as_ref().map(|o| o.uid), true);
            }
            self.jobs.insert(wire.id.clone(), JobRec { wire, seq, tasks: BTreeMap::new(), running: 0, completed: 0 });
        }
        let mut queued = Vec::new();
        for st in snap.tasks {
            let wire: Task = serde_json::from_str(&st.body).map_err(|e| format!("stored task: {e}"))?;
            self.bump_seq(st.seq);
            let key = self.new_key();
            let Some(j) = self.jobs.get_mut(&st.job) else { continue };
            match wire.state {
                TaskState::Active if j.wire.state == JobState::Active => queued.push((st.job.clone(), wire.id.clone())),
                // Its instances' progress was not stored: run it again, whole. The nodes still
                // running the old attempt are told to kill it when they say hello.
                TaskState::Running | TaskState::Preparing if wire.multi_instance_settings.is_some() => {
                    let mut wire = wire;
                    let now = Timestamp::now();
                    wire.execution_info.requeue_count += 1;
                    wire.execution_info.last_requeue_time = Some(now);
                    set_task_state(&mut wire, TaskState::Active, now);
                    let rec = TaskRec {
                        wire,
                        key,
                        seq: st.seq,
                        attempt: st.attempt,
                        killing: None,
                        instances: Vec::new(),
                        fences: Default::default(),
                    };
                    HeadState::put_task(&st.job, &rec, fx);
                    if j.wire.state == JobState::Active {
                        queued.push((st.job.clone(), rec.wire.id.clone()));
                    }
                    self.task_index.insert(key, (st.job.clone(), rec.wire.id.clone()));
                    j.tasks.insert(rec.wire.id.clone(), rec);
                    continue;
                }
                TaskState::Running | TaskState::Preparing => {
                    j.running += 1;
                    let node = wire.node_info.as_ref().map(|n| n.node_id.clone()).unwrap_or_default();
                    if self.awaiting_node.entry(node.clone()).or_default().insert(key) && !node.is_empty() {
                        fx.timers.push(Timer::NodeLost { node, generation: 0, after: self.node_timeout });
                    }
                }
                _ => {}
            }
            if wire.state == TaskState::Completed {
                j.completed += 1;
            }
            // A terminating job's running tasks were being killed (end_job): they still are.
            let running = matches!(wire.state, TaskState::Running | TaskState::Preparing);
            let killing = (running && j.wire.state == JobState::Terminating).then_some("JobTerminated");
            self.task_index.insert(key, (st.job.clone(), wire.id.clone()));
            j.tasks.insert(
                wire.id.clone(),
                TaskRec {
                    wire,
                    key,
                    seq: st.seq,
                    attempt: st.attempt,
                    killing,
                    instances: Vec::new(),
                    fences: Default::default(),
                },
            );
        }
        fx.timers.dedup();
        self.slurm_restore(&snap.counters, fx);
        self.restore_tokens(snap.tokens)?;
        self.restore_trust(snap.trust)?;
        self.restore_requests(snap.requests)?;
        self.restore_usage(snap.usage_at, &snap.usage);
        // Every task is known before any dependency is judged (a parent may come later).
        let all: Vec<(String, String)> =
            self.jobs.values().flat_map(|j| j.tasks.keys().map(|t| (j.wire.id.clone(), t.clone()))).collect();
        for (job, task) in &all {
            self.dependency_parent_added(job, task);
        }
        for (job, task) in queued {
            if self.register_dependencies(&job, &task, fx) {
                self.enqueue(&job, &task, fx);
            }
        }
        // Last: a run due while the head was down makes its job now.
        self.restore_schedules(snap.schedules, fx)
    }

    /// Task counts and slot counts of a job.
    pub fn task_counts(&self, id: &str) -> Result<TaskCountsResult, ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| job_not_found(id))?;
        let mut r = TaskCountsResult::default();
        for t in j.tasks.values() {
            let slots = t.wire.required_slots as u64;
            for (c, n) in [(&mut r.task_counts, 1), (&mut r.task_slot_counts, slots)] {
                match t.wire.state {
                    TaskState::Active => c.active += n,
                    TaskState::Running | TaskState::Preparing => c.running += n,
                    TaskState::Completed => {
                        c.completed += n;
                        match t.wire.execution_info.result {
                            Some(TaskExecutionResult::Success) => c.succeeded += n,
                            _ => c.failed += n,
                        }
                    }
                }
            }
        }
        Ok(r)
    }

    /// Called when a job's wall-clock limit, armed for `at`, passes. It ends the job only if
    /// that is still its deadline: a PATCH of its constraints arms another timer (and one for
    /// a longer limit, or none, leaves this one without effect), and a later job of the same id
    /// has a deadline of its own.
    pub fn job_deadline(&mut self, id: &str, at: Timestamp, fx: &mut Effects) {
        let Some(j) = self.jobs.get(id) else { return };
        let deadline = j.wire.constraints.max_wall_clock_time.filter(|d| !d.is_unlimited());
        let current = deadline.map(|d| j.wire.creation_time.plus(d.0)) == Some(at);
        if current && matches!(j.wire.state, JobState::Active | JobState::Disabling | JobState::Disabled) {
            self.end_job(id, "MaxWallClockTimeExpiry".into(), fx);
        }
    }

    /// Marks a task completed (exit code and failure as given) and updates its job.
    pub(crate) fn complete_task(
        &mut self,
        key: u64,
        exit_code: Option<i32>,
        failure: Option<TaskFailureInformation>,
        end: Timestamp,
        fx: &mut Effects,
    ) {
        let Some((j, tid)) = self.task_mut(key) else { return };
        let t = j.tasks.get_mut(&tid).expect("indexed");
        match t.wire.state {
            TaskState::Running | TaskState::Preparing => j.running -= 1,
            TaskState::Completed => j.completed -= 1,
            TaskState::Active => {}
        }
        j.completed += 1;
        set_task_state(&mut t.wire, TaskState::Completed, end);
        let info = &mut t.wire.execution_info;
        info.end_time = Some(end);
        info.exit_code = exit_code;
        info.result = Some(if exit_code == Some(0) && failure.is_none() {
            TaskExecutionResult::Success
        } else {
            TaskExecutionResult::Failure
        });
        info.failure_info = failure;
        t.killing = None;
        HeadState::put_task(&j.wire.id, t, fx);
        let job = j.wire.id.clone();
        let action = (j.wire.on_task_failure == OnTaskFailure::PerformExitOptionsJobAction).then(|| {
            let failure = t.wire.execution_info.failure_info.as_ref().map(|f| f.code.as_str());
            ExitConditions::outcome(t.wire.exit_conditions.as_ref(), exit_code, failure).job_action
        });
        self.deps.remove(key);
        self.dependency_moved(key, fx);
        let Some(j) = self.jobs.get(&job) else { return };
        let all_done = j.completed == j.tasks.len();
        let active = j.wire.state == JobState::Active;
        // A job manager with killJobOnCompletion ends its job, however it ended itself.
        let manager_done = j.wire.job_manager_task.as_ref().is_some_and(|m| m.kills_job() && m.id == tid);
        if manager_done && matches!(j.wire.state, JobState::Active | JobState::Disabling | JobState::Disabled) {
            self.end_job(&job, "JMComplete".into(), fx);
            return self.slurm_task_completed(&job, fx);
        }
        match action.filter(|_| active) {
            Some(JobAction::Terminate) => self.end_job(&job, "TaskFailed".into(), fx),
            Some(JobAction::Disable) => self.disable_job_now(&job, DisableJobOption::Requeue, fx),
            _ if all_done && active && j.wire.on_all_tasks_complete == OnAllTasksComplete::TerminateJob => {
                self.end_job(&job, "AllTasksComplete".into(), fx)
            }
            _ if j.wire.state == JobState::Terminating => self.maybe_complete_job(&job, fx),
            _ => self.maybe_disabled(&job, fx),
        }
        self.slurm_task_completed(&job, fx);
    }
}

pub(crate) fn check_retry_count(n: Option<i32>, field: &str) -> Result<(), ApiError> {
    match n {
        Some(n) if n < -1 => Err(ApiError::invalid(format!("{field} is {n}; it must be -1 (unlimited) or more"))),
        _ => Ok(()),
    }
}

/// `e` with its message prefixed by the field it is about.
fn prefixed(mut e: ApiError, field: &str) -> ApiError {
    e.body.message.value = format!("{field}: {}", e.body.message.value);
    e
}

fn check_env(env: &[EnvironmentSetting], field: &str) -> Result<(), ApiError> {
    for e in env {
        if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') || e.value.contains('\0') {
            return Err(ApiError::invalid(format!(
                "{field}: '{}' is not a valid environment variable name (it must be non-empty, without '=' or NUL)",
                e.name
            )));
        }
    }
    Ok(())
}

pub(crate) fn pool_not_found(id: &str) -> ApiError {
    ApiError::not_found("PoolNotFound", format!("pool '{id}' does not exist"))
}

pub(crate) fn node_not_found(id: &str) -> ApiError {
    ApiError::not_found("NodeNotFound", format!("node '{id}' is not known to this head"))
}

pub(crate) fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found("JobNotFound", format!("job '{id}' does not exist"))
}

pub(crate) fn task_not_found(job: &str, task: &str) -> ApiError {
    ApiError::not_found("TaskNotFound", format!("task '{task}' does not exist in job '{job}'"))
}

/// The refusal to someone else of what only job `id`'s owner (`owner`) or an admin `may`
/// ("change it", "read its files").
pub(crate) fn not_the_owner(id: &str, owner: Option<&Owner>, may: &str) -> ApiError {
    let whose = owner.map_or_else(|| "an admin".to_owned(), |o| o.name.clone());
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "AuthorizationFailure",
        format!("not the owner of job {id} (it is {whose}'s); only its owner or an admin may {may}"),
    )
}

/// The refusal of an operation only admins may make.
/// Whether a task must fit a node of its pool when it is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Refused when no node could ever hold it (Azure's tasks, which say why).
    Now,
    /// Queued to wait for nodes big enough to join (Slurm's jobs, `Reason=PartitionConfig`).
    MayWait,
}

pub(crate) fn admins_only(what: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "AuthorizationFailure",
        format!("only an admin may {what} (root, the head's user or one given to `gangway head --admin`)"),
    )
}

impl HeadState {
    /// Whether `caller` may change job `id`: Ok when it may, NotFound when there is no such
    /// job, Forbidden naming the owner otherwise.
    pub(crate) fn may_change_job(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        self.owner_or_admin(caller, id, "change it")
    }

    /// [`HeadState::may_change_job`] for what the refusal calls `may` ("read its files").
    pub(crate) fn owner_or_admin(&self, caller: &Caller, id: &str, may: &str) -> Result<(), ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| job_not_found(id))?;
        let owner = j.wire.owner.as_ref();
        if caller.may_change(owner.map(|o| o.uid)) {
            Ok(())
        } else {
            Err(not_the_owner(id, owner, may))
        }
    }
}

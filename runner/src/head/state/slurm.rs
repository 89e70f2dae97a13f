//! Slurm jobs in the head: `sbatch` submissions, and the gate that keeps a Slurm job's task
//! out of the scheduler while it is held, before its `--begin`, while its dependency is unmet
//! or while its array's `%max` elements run.
//!
//! A Slurm job N is the gangway job `"N"` in the pool its partition names, with one task,
//! [`BATCH_TASK`], that runs the script (a multi-instance gang when it asks for several nodes:
//! the primary runs the script, the other instances keep their nodes for `srun`). Everything
//! only Slurm knows is in the job's `slurm` field ([`SlurmJobInfo`]), persisted with the job.
//! Job ids come from a persisted counter, so they are never reused, even across restarts.
//!
//! The gate is re-evaluated whenever something it depends on may have changed: a task ends
//! or starts, a job is released or updated, a begin timer fires. Only gated jobs are looked
//! at, so a cluster with no gated job pays nothing.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use gangway_api::slurm::{SlurmJobInfo, SlurmSubmit, SlurmSubmitted, SlurmTestOnly};
use gangway_api::*;

use super::deps::Verdict;
use super::{Effects, HeadState, Timer};
use crate::head::error::ApiError;
use crate::store::Write;

/// The id of a Slurm job's only task: Slurm's name for the batch step.
pub const BATCH_TASK: &str = "batch";
/// The store counter holding the next job id.
const COUNTER: &str = "slurm_next_job_id";

/// The head's Slurm bookkeeping beside the jobs themselves (rebuilt from them on restore).
#[derive(Debug)]
pub(crate) struct SlurmState {
    /// The next job id to hand out.
    pub next_id: u64,
    /// Jobs whose task is kept out of the scheduler, by job id.
    pub gated: BTreeSet<u64>,
    /// Array id → its elements' job ids.
    pub arrays: HashMap<u64, Vec<u64>>,
    /// Set while re-evaluating, so starts it causes do not re-enter it.
    evaluating: bool,
}

impl SlurmState {
    /// Forgets job `id` (purged): it leaves the elements of its array, `array`.
    pub(crate) fn forget(&mut self, id: u64, array: Option<u64>) {
        self.gated.remove(&id);
        let Some(a) = array else { return };
        if let Some(elements) = self.arrays.get_mut(&a) {
            elements.retain(|e| *e != id);
            if elements.is_empty() {
                self.arrays.remove(&a);
            }
        }
    }
}

impl Default for SlurmState {
    fn default() -> SlurmState {
        SlurmState { next_id: 1, gated: BTreeSet::new(), arrays: HashMap::new(), evaluating: false }
    }
}

pub(crate) fn invalid_partition(p: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_REQUEST, "InvalidPartition", format!("invalid partition specified: {p}"))
}

fn memory_unsatisfiable(what: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "MemorySpecificationUnsatisfiable",
        format!("Memory specification can not be satisfied: {what}"),
    )
}

fn node_config_unavailable(what: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "NodeConfigUnavailable",
        format!("Requested node configuration is not available: {what}"),
    )
}

impl HeadState {
    /// `POST /slurm/jobs`: checks everything first (a refused job queues nothing and uses no
    /// id), then creates one gangway job per job or array element, all in this one change.
    pub fn slurm_submit(
        &mut self,
        mut req: SlurmSubmit,
        cluster_addr: &str,
        fx: &mut Effects,
    ) -> Result<SlurmSubmitted, ApiError> {
        let partition = req.partition.clone().unwrap_or_else(|| "default".to_owned());
        let pool = self.pools.get(&partition).ok_or_else(|| invalid_partition(&partition))?;
        let slots_per_node = pool.wire.task_slots_per_node;
        let time = req.time_limit_s.map(|s| IsoDuration(Duration::from_secs(s)));
        super::alloc::check_time_limit(&pool.wire, time, "--time")?;
        if req.nodes == 0 || req.ntasks == 0 || req.cpus_per_task == 0 {
            return Err(ApiError::invalid("nodes, ntasks and cpusPerTask must be at least 1"));
        }
        if !req.work_dir.starts_with('/') {
            return Err(ApiError::invalid(format!("workDir '{}' is not an absolute path", req.work_dir)));
        }
        // Without a node count that pins it, the allocation grows to as many nodes as the
        // tasks need, as Slurm's does (`-n 8` on 2-CPU nodes is 4 nodes).
        if req.ntasks_per_node.is_none() {
            let fit = slots_per_node / req.cpus_per_task;
            let needed = if fit == 0 { u32::MAX } else { req.ntasks.div_ceil(fit) };
            // Within the range asked for (`-N 1-3 -n 16 -c 8` is 3 nodes, too few: it waits).
            if needed > req.nodes && needed != u32::MAX {
                req.nodes = req.max_nodes.map_or(needed, |m| needed.min(m).max(req.nodes));
            }
        }
        // GPUs per node, now that the node count is known (as in GpuRequest::per_node_for).
        req.task_layout = pack_tasks(&req, slots_per_node);
        // Without a memory request, the partition's DefMemPerCPU applies (SLURM_MEM_PER_CPU).
        if req.mem_per_node_mb.is_none() && req.mem_per_cpu_mb.is_none() && req.mem_per_gpu_mb.is_none() {
            req.mem_per_cpu_mb = pool.wire.default_memory_per_cpu_mib;
        }
        req.gpus_per_node = req.gpus_each_node(tasks_per_node(&req).into_iter().max().unwrap_or(1));
        let per_node = cpus_per_node(&req);
        // Slots stand for CPUs here; the CPUs, memory and GPUs themselves are the task's
        // `resources`, allocated like any task's.
        let need = if req.exclusive { slots_per_node } else { per_node.iter().copied().max().unwrap_or(1) };
        // More CPUs on a node than the partition's nodes have is queued (`PartitionConfig`)
        // for bigger nodes, as Slurm does; more memory or GPUs than any node has is refused.
        let per_cpu = pool.wire.default_memory_per_cpu_mib;
        let asked = super::alloc::with_default_memory(Some(slurm_resources(&req)), None, per_cpu).unwrap_or_default();
        let wants = super::alloc::task_need_of(&asked, None).unwrap_or_default();
        if let Some(why) =
            self.need_shortfall(&partition, &gangway_topology::alloc::Need { cpus: 0, cores: 0, ..wants.clone() })
        {
            return Err(match wants.memory_mib > 0 && why.contains("MiB") {
                true => memory_unsatisfiable(why),
                false => node_config_unavailable(why),
            });
        }
        // A dependency on a job that does not exist (or no longer: purged after MinJobAge) is
        // accepted and counts as met, as Slurm 22.05 does.
        if let Some(a) = &req.array {
            if a.indices.is_empty() {
                return Err(ApiError::invalid("array.indices is empty"));
            }
            let max = self.max_array_size;
            if let Some(big) = a.indices.iter().find(|i| **i >= max) {
                return Err(ApiError::invalid(format!(
                    "Invalid job array specification: index {big} is not below MaxArraySize ({max})"
                )));
            }
        }
        let elements = req.array.as_ref().map_or(1, |a| a.indices.len());
        self.may_open_jobs(Some(req.uid), elements)?;
        // gangway's own credentials never stay in a job's environment (the job gets its own):
        // an sbatch run inside a step or an salloc carries their keys with --export=ALL.
        let secret = |k: &str| {
            ["GANGWAY_TOKEN", gangway_api::slurm_step::KEY_ENV, gangway_api::slurm_step::SALLOC_KEY_ENV].contains(&k)
        };
        req.env.retain(|(k, _)| !secret(k));
        let first = self.slurm.next_id;
        if req.test_only {
            return Ok(SlurmSubmitted { job_id: first, test_only: Some(self.slurm_test_only(&req, &partition)) });
        }
        req.partition = Some(partition.clone());
        let indices: Vec<Option<u32>> = match &req.array {
            Some(a) => a.indices.iter().map(|i| Some(*i)).collect(),
            None => vec![None],
        };
        let count = indices.len() as u64;
        self.slurm.next_id = first + count;
        fx.writes.push(Write::PutCounter { name: COUNTER.into(), value: self.slurm.next_id });
        let now = Timestamp::now();
        // As in Slurm, the array's last element keeps the array's id; the others take the
        // ids after it (reserved now, so `scancel N_i` and `squeue` name them at once).
        let ids: Vec<u64> = (0..count).map(|k| if k + 1 == count { first } else { first + 1 + k }).collect();
        if req.array.is_some() {
            self.slurm.arrays.insert(first, ids.clone());
        }
        let request = SlurmSubmit { test_only: false, ..req };
        for (id, index) in ids.iter().zip(indices) {
            let info = SlurmJobInfo {
                job_id: *id,
                array_job_id: index.map(|_| first),
                array_task_id: index,
                request: request.clone(),
                held: request.hold,
                restarts: 0,
                submit_time: now,
                eligible_time: None,
                cluster_addr: cluster_addr.to_owned(),
                steps: Vec::new(),
                runs: Vec::new(),
            };
            self.slurm_add_job(info, need, fx)?;
        }
        Ok(SlurmSubmitted { job_id: first, test_only: None })
    }

    /// Creates the gangway job and task of one Slurm job (or array element).
    fn slurm_add_job(&mut self, info: SlurmJobInfo, slots: u32, fx: &mut Effects) -> Result<(), ApiError> {
        let id = info.job_id.to_string();
        let r = &info.request;
        let job = JobAddParameter {
            id: id.clone(),
            display_name: Some(r.name.clone()),
            priority: None,
            constraints: None,
            pool_info: r.partition.clone().map(|pool_id| PoolInformation { pool_id }),
            // Terminate-on-completion once its task is added (a job created with it and no
            // task would end at once).
            on_all_tasks_complete: None,
            on_task_failure: None,
            common_environment_settings: Vec::new(),
            uses_task_dependencies: None,
            on_dependency_blocked: None,
            job_manager_task: None,
            job_preparation_task: None,
            job_release_task: None,
        };
        let task = TaskAddParameter {
            id: BATCH_TASK.into(),
            display_name: None,
            // The launcher runs the script instead (StartTask.batch); this only names it.
            command_line: "slurm_script".into(),
            environment_settings: Vec::new(),
            constraints: Some(TaskConstraints {
                max_wall_clock_time: r.time_limit_s.map(|s| IsoDuration(Duration::from_secs(s))),
                retention_time: None,
                max_task_retry_count: Some(0),
            }),
            required_slots: Some(slots),
            resources: Some(slurm_resources(r)),
            multi_instance_settings: (r.nodes > 1).then(|| MultiInstanceSettings {
                number_of_instances: r.nodes,
                coordination_command_line: None,
                common_resource_files: Vec::new(),
            }),
            mpi: None,
            resource_files: Vec::new(),
            user_identity: None,
            depends_on: None,
            exit_conditions: None,
            output_files: Vec::new(),
            application_package_references: Vec::new(),
        };
        if let Some(begin) = r.begin.filter(|b| *b > Timestamp::now()) {
            fx.timers.push(Timer::SlurmBegin { job: info.job_id, at: begin });
        }
        let owner = Owner { uid: r.uid, name: r.user.clone() };
        self.add_job(job, owner, fx)?;
        let j = self.jobs.get_mut(&id).expect("just added");
        j.wire.slurm = Some(Box::new(info));
        j.wire.on_all_tasks_complete = OnAllTasksComplete::TerminateJob;
        // add_job queued the job's record without its Slurm part: replace it.
        if matches!(fx.writes.last(), Some(Write::PutJob { id: last, .. }) if *last == id) {
            fx.writes.pop();
        }
        HeadState::put_job(j, fx);
        self.add_task_fitting(&id, task, None, super::resources::Fit::MayWait, fx)
    }

    pub(crate) fn slurm_info(&self, id: u64) -> Option<&SlurmJobInfo> {
        self.jobs.get(&id.to_string())?.wire.slurm.as_deref()
    }

    /// `--test-only`: the first nodes of the partition that could take it now.
    fn slurm_test_only(&self, req: &SlurmSubmit, partition: &str) -> SlurmTestOnly {
        let per_node = cpus_per_node(req);
        let want = per_node.iter().copied().max().unwrap_or(1);
        let mut free: Vec<&str> = self
            .nodes
            .values()
            .filter(|n| n.wire.pool_id == partition && n.schedulable)
            .filter(|n| {
                let pool_slots = self.pools.get(partition).map_or(0, |p| p.wire.task_slots_per_node);
                let used: u32 = n.running.values().sum();
                if req.nodes > 1 {
                    used == 0
                } else {
                    pool_slots.saturating_sub(used) >= want
                }
            })
            .map(|n| n.wire.id.as_str())
            .collect();
        free.truncate(req.nodes as usize);
        let names: Vec<String> = free.iter().map(|s| s.to_string()).collect();
        SlurmTestOnly {
            start_time: Timestamp::now(),
            processors: per_node.iter().sum(),
            nodes: gangway_topology::hostlist::compress_hostlist(&names),
            partition: partition.to_owned(),
        }
    }

    /// Why Slurm job `job` (a gangway job id) may not be queued now, if it may not.
    pub(crate) fn slurm_gate(&self, job: &str) -> Option<&'static str> {
        let info = self.jobs.get(job)?.wire.slurm.as_deref()?;
        if info.held {
            return Some("JobHeldUser");
        }
        if info.request.begin.is_some_and(|b| b > Timestamp::now()) {
            return Some("BeginTime");
        }
        let key = self.jobs.get(job)?.tasks.get(BATCH_TASK)?.key;
        match self.deps.verdict(key) {
            Some(Verdict::Waiting) => return Some("Dependency"),
            Some(Verdict::Never) => return Some("DependencyNeverSatisfied"),
            _ => {}
        }
        let (Some(array), Some(max)) = (info.array_job_id, info.request.array.as_ref().and_then(|a| a.max_running))
        else {
            return None;
        };
        let released = self.slurm.arrays.get(&array).into_iter().flatten().filter(|e| **e != info.job_id).filter(|e| {
            let Some(t) = self.jobs.get(&e.to_string()).and_then(|j| j.tasks.get(BATCH_TASK)) else { return false };
            match t.wire.state {
                TaskState::Running | TaskState::Preparing => true,
                TaskState::Active => !self.slurm.gated.contains(e) && self.deps.verdict(t.key).is_none(),
                TaskState::Completed => false,
            }
        });
        (released.count() as u32 >= max).then_some("JobArrayTaskLimit")
    }

    /// Queues every gated job whose gate has opened (called after anything it depends on).
    pub(crate) fn slurm_reevaluate(&mut self, fx: &mut Effects) {
        if self.slurm.evaluating || self.slurm.gated.is_empty() {
            return;
        }
        self.slurm.evaluating = true;
        let mut opened = true;
        // Queueing one array element can close the gate of the next: look again until stable.
        while opened {
            opened = false;
            let gated: Vec<u64> = self.slurm.gated.iter().copied().collect();
            for id in gated {
                let job = id.to_string();
                match self.slurm_gate(&job) {
                    // The dependency engine queues it when its dependency is met.
                    Some("Dependency" | "DependencyNeverSatisfied") => {
                        self.slurm.gated.remove(&id);
                        continue;
                    }
                    Some(_) => continue,
                    None => {}
                }
                self.slurm.gated.remove(&id);
                if let Some(j) = self.jobs.get_mut(&job) {
                    if let Some(s) = j.wire.slurm.as_mut() {
                        s.eligible_time = Some(Timestamp::now());
                    }
                    HeadState::put_job(j, fx);
                }
                self.enqueue(&job, BATCH_TASK, fx);
                opened = true;
            }
        }
        self.slurm.evaluating = false;
    }

    /// A task ended: a requeue asked of a Slurm job puts it back; gates may open.
    pub(crate) fn slurm_task_completed(&mut self, job: &str, fx: &mut Effects) {
        let Some(j) = self.jobs.get(job) else { return };
        // Only a Slurm job's end can open a gate (an array's limit): dependencies are the engine's.
        let Some(id) = j.wire.slurm.as_ref().map(|s| s.job_id) else { return };
        self.slurm.gated.remove(&id);
        let requeued =
            j.tasks.get(BATCH_TASK).and_then(|t| t.wire.execution_info.failure_info.as_ref()).map(|f| f.code.as_str())
                == Some(super::slurm_control::REQUEUE_REASON);
        if requeued {
            self.slurm_reactivate(job, fx);
        }
        self.slurm_reevaluate(fx);
    }

    /// Restores the id counter and the array index (after the jobs are loaded).
    pub(crate) fn slurm_restore(&mut self, counters: &[(String, u64)], fx: &mut Effects) {
        let stored = counters.iter().find(|(n, _)| n == COUNTER).map_or(1, |(_, v)| *v);
        let mut next = stored.max(1);
        let mut elements: Vec<(u64, u32, u64)> = Vec::new();
        for j in self.jobs.values() {
            let Some(s) = j.wire.slurm.as_deref() else { continue };
            next = next.max(s.job_id + 1);
            let waiting = j.tasks.get(BATCH_TASK).is_some_and(|t| t.wire.state == TaskState::Active);
            if let Some(at) = s.request.begin.filter(|b| waiting && *b > Timestamp::now()) {
                fx.timers.push(Timer::SlurmBegin { job: s.job_id, at });
            }
            if let (Some(a), Some(i)) = (s.array_job_id, s.array_task_id) {
                elements.push((a, i, s.job_id));
            }
        }
        // In index order, as at submit.
        elements.sort_unstable();
        for (a, _, id) in elements {
            self.slurm.arrays.entry(a).or_default().push(id);
        }
        self.slurm.next_id = next;
    }

    /// The begin timer of job `id` fired (its `--begin`, or an `after:N+MIN` delay).
    pub fn slurm_begin(&mut self, id: u64, fx: &mut Effects) {
        if let Some(key) = self.jobs.get(&id.to_string()).and_then(|j| j.tasks.get(BATCH_TASK)).map(|t| t.key) {
            self.dependency_recheck(key, fx);
        }
        if self.slurm.gated.contains(&id) {
            self.slurm_reevaluate(fx);
        }
    }
}

/// What a Slurm job asks of each of its nodes: the busiest node's CPUs (at least
/// `--cpus-per-gpu` × its GPUs), `--mem` (or `--mem-per-cpu` × those CPUs, or `--mem-per-gpu`
/// × its GPUs; `--mem=0` is all of the node's memory), its GPUs per node (of the type), or the
/// whole node with `--exclusive`.
pub(crate) fn slurm_resources(r: &SlurmSubmit) -> TaskResources {
    let gpus = r.gpus_per_node.filter(|g| *g > 0);
    // `--cpus-per-gpu` raises the node's CPUs to that many for each of its GPUs.
    let for_gpus = r.cpus_per_gpu.zip(gpus).map_or(0, |(c, g)| c.saturating_mul(g));
    let cpus = cpus_per_node(r).into_iter().max().unwrap_or(1).max(for_gpus);
    let per_gpu = r.mem_per_gpu_mb.zip(gpus).map(|(m, g)| m.saturating_mul(u64::from(g)));
    let memory_mib = r.mem_per_node_mb.or(r.mem_per_cpu_mb.map(|m| m.saturating_mul(u64::from(cpus)))).or(per_gpu);
    TaskResources {
        cpus: Some(cpus),
        // One thread per core: each CPU a whole core.
        cores: (r.threads_per_core == Some(1)).then_some(cpus),
        memory_mib,
        gpus,
        gpu_type: r.gpu_type.clone().filter(|_| gpus.is_some()),
        exclusive: r.exclusive,
    }
}

/// CPUs of each node of the allocation: tasks spread in blocks (the first nodes take one
/// more when they do not divide evenly, as Slurm's default distribution does) × `-c`.
pub(crate) fn cpus_per_node(r: &SlurmSubmit) -> Vec<u32> {
    tasks_per_node(r).iter().map(|t| t * r.cpus_per_task).collect()
}

/// Tasks on each node as Slurm's cons_tres lays them out on idle nodes of `cpus` CPUs: each
/// node in turn takes as many as it can hold (`-c` each, at most `--ntasks-per-node`), leaving
/// one for each node after it (`-N 2 -n 8` on 16-CPU nodes is 7 and 1, `-N 3 -n 4` 2,1,1).
pub(crate) fn pack_tasks(r: &SlurmSubmit, cpus: u32) -> Vec<u32> {
    let nodes = r.nodes.max(1);
    if let Some(per) = r.ntasks_per_node.filter(|per| r.ntasks >= per.saturating_mul(nodes)) {
        return vec![per; nodes as usize];
    }
    let cap = (cpus / r.cpus_per_task.max(1)).min(r.ntasks_per_node.unwrap_or(u32::MAX)).max(1);
    // More than the nodes can hold: the even spread, which waits for bigger nodes.
    if r.ntasks > cap.saturating_mul(nodes) {
        return Vec::new();
    }
    let mut left = r.ntasks;
    (0..nodes)
        .map(|i| {
            let after = nodes - i - 1;
            let take = left.saturating_sub(after).clamp(1, cap);
            left = left.saturating_sub(take);
            take
        })
        .collect()
}

/// Tasks on each node of the allocation. `--ntasks-per-node` fills every node unless `-n`
/// asks for fewer tasks, which then spread over the nodes, at most that many on each (`-n`
/// wins, as in Slurm: `-n 16 -N 2 --ntasks-per-node=16` is 16 tasks).
pub(crate) fn tasks_per_node(r: &SlurmSubmit) -> Vec<u32> {
    if r.task_layout.len() == r.nodes.max(1) as usize {
        return r.task_layout.clone();
    }
    let nodes = r.nodes.max(1);
    let cap = match r.ntasks_per_node {
        Some(per) if r.ntasks >= per.saturating_mul(nodes) => return vec![per; nodes as usize],
        Some(per) => per,
        None => u32::MAX,
    };
    let (base, extra) = (r.ntasks / nodes, r.ntasks % nodes);
    (0..nodes).map(|i| (base + u32::from(i < extra)).clamp(1, cap.max(1))).collect()
}

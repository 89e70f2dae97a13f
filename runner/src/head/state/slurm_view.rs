//! Slurm jobs as Slurm shows them: [`SlurmJob`] for `squeue`, `sacct` and `scontrol show job`,
//! and the batch script's start (its `SLURM_*` environment and output files) as slurmd
//! would set them up, built when the job is sent to its first node.

use gangway_api::messages::{BatchScript, StartTask};
use gangway_api::slurm::compress_counts;
use gangway_api::slurm::{SlurmJob, SlurmJobInfo, SlurmJobList, SlurmJobState};
use gangway_api::slurm_patterns::{expand_path, PatternContext, Step};
use gangway_api::*;
use gangway_topology::hostlist::compress_hostlist;

use super::slurm::{cpus_per_node, tasks_per_node, BATCH_TASK};
use super::{HeadState, JobRec, TaskRec};

/// Failure codes of a task ended by a kill someone asked for (`scancel`, a job terminate).
const CANCEL_CODES: [&str; 3] = ["TaskTerminated", "JobTerminated", "JobDeleted"];

impl HeadState {
    /// Every Slurm job, in job id order.
    pub fn slurm_jobs(&self) -> SlurmJobList {
        let mut jobs: Vec<SlurmJob> = self.jobs.values().filter_map(|j| self.slurm_job_view(j)).collect();
        jobs.sort_by_key(|j| j.job_id);
        SlurmJobList { jobs }
    }

    /// One Slurm job (or array element) by its own id.
    pub fn slurm_job(&self, id: u64) -> Option<SlurmJob> {
        self.jobs.get(&id.to_string()).and_then(|j| self.slurm_job_view(j))
    }

    /// A job's Slurm state and reason.
    pub(crate) fn slurm_state(&self, job: &str) -> (SlurmJobState, String) {
        let Some(t) = self.jobs.get(job).and_then(|j| j.tasks.get(BATCH_TASK)) else {
            return (SlurmJobState::Cancelled, "None".into());
        };
        match t.wire.state {
            TaskState::Active => {
                let limit = || self.sched.held_by_limit(t.key).map(|l| l.slurm());
                // More nodes than the partition has now: it waits for nodes to join.
                let too_big = || {
                    let j = self.jobs.get(job)?;
                    let nodes = j.wire.slurm.as_ref()?.request.nodes;
                    let pool = self.pools.get(&j.wire.pool_info.pool_id)?;
                    (nodes > pool.wire.current_dedicated_nodes).then_some("PartitionNodeLimit")
                };
                // More than any node of the partition has: it waits for bigger nodes.
                let no_node = || {
                    let pool = &self.pools.get(&self.jobs.get(job)?.wire.pool_info.pool_id)?.wire;
                    let need = t.wire.resources.as_ref().and_then(|r| super::alloc::task_need_of(r, None));
                    let short = t.wire.required_slots > pool.task_slots_per_node
                        || need.is_some_and(|n| self.need_shortfall(&pool.id, &n).is_some());
                    short.then_some("PartitionConfig")
                };
                let reason =
                    self.slurm_gate(job).or_else(limit).or_else(too_big).or_else(no_node).unwrap_or("Resources");
                (SlurmJobState::Pending, reason.into())
            }
            TaskState::Running | TaskState::Preparing if t.killing.is_some() => {
                (SlurmJobState::Completing, "None".into())
            }
            TaskState::Running | TaskState::Preparing => (SlurmJobState::Running, "None".into()),
            TaskState::Completed => {
                let info = &t.wire.execution_info;
                let code = info.failure_info.as_ref().map(|f| f.code.as_str());
                match code {
                    None if info.exit_code == Some(0) => (SlurmJobState::Completed, "None".into()),
                    Some(c) if CANCEL_CODES.contains(&c) => (SlurmJobState::Cancelled, "None".into()),
                    // --kill-on-invalid-dep=yes.
                    Some(super::depends::DEPENDENCY_BLOCKED) => {
                        (SlurmJobState::Cancelled, "DependencyNeverSatisfied".into())
                    }
                    Some("TaskEnded") => (SlurmJobState::Timeout, "TimeLimit".into()),
                    Some("NodeRemoved" | "NodeDisabled") => (SlurmJobState::NodeFail, "NodeDown".into()),
                    Some("OutOfMemory") => (SlurmJobState::OutOfMemory, "OutOfMemory".into()),
                    _ => (SlurmJobState::Failed, "NonZeroExitCode".into()),
                }
            }
        }
    }

    fn slurm_job_view(&self, j: &JobRec) -> Option<SlurmJob> {
        let s = j.wire.slurm.as_deref()?;
        let t = j.tasks.get(BATCH_TASK)?;
        let r = &s.request;
        let (state, reason) = self.slurm_state(&j.wire.id);
        let nodes = allocation(t);
        let info = &t.wire.execution_info;
        // A process killed by a signal reports 128+N; Slurm shows exit code 0 and signal N
        // when the kill was its own (cancel, time limit).
        let killed = matches!(state, SlurmJobState::Cancelled | SlurmJobState::Timeout);
        let (exit_code, signal) = match info.exit_code {
            Some(c) if killed && c > 128 => (Some(0), Some(c - 128)),
            other => (other, None),
        };
        let first = nodes.first().map_or("", String::as_str);
        let (std_out, std_err) = output_paths(s, first);
        let started = matches!(t.wire.state, TaskState::Running | TaskState::Preparing | TaskState::Completed);
        let plan = self.planned_start(t.key, Timestamp::now());
        Some(SlurmJob {
            job_id: s.job_id,
            allocation: t.wire.allocation.clone(),
            array_job_id: s.array_job_id,
            array_task_id: s.array_task_id,
            array_throttle: r.array.as_ref().and_then(|a| a.max_running),
            node_memory_mb: (r.mem_per_node_mb == Some(0)).then(|| self.largest_memory_mib(&j.wire.pool_info.pool_id)),
            tres_per_job: r.gpus.map(|n| gpu_tres(r, n)),
            tres_per_task: r.gpus_per_task.map(|n| gpu_tres(r, n)),
            // Per node when that is how it was asked: the request as sbatch wrote it (the head
            // keeps in `gpus_per_node` what it worked out for each node).
            tres_per_node: r
                .gres
                .as_ref()
                .filter(|_| r.gpus.is_none() && r.gpus_per_task.is_none())
                .map(|g| g.replacen("gres/", "gres:", 1)),
            cpus_per_tres: r.cpus_per_gpu.filter(|_| r.gres.is_some()).map(|c| format!("gres:gpu:{c}")),
            mem_per_tres: r.mem_per_gpu_mb.filter(|_| r.gres.is_some()).map(|m| format!("gres:gpu:{m}")),
            name: r.name.clone(),
            user: r.user.clone(),
            uid: r.uid,
            gid: r.gid,
            partition: j.wire.pool_info.pool_id.clone(),
            account: r.account.clone(),
            qos: r.qos.clone(),
            state,
            reason,
            dependency: r.dependency.as_ref().filter(|_| state == SlurmJobState::Pending).and_then(|d| {
                let verdicts = self.deps.condition_verdicts(t.key);
                slurm_dependency_text(d, verdicts.as_deref())
            }),
            exit_code: info.end_time.and(exit_code),
            signal,
            submit_time: s.submit_time,
            eligible_time: s.eligible_time.or(started.then_some(s.submit_time)),
            start_time: info.start_time.filter(|_| started),
            end_time: info.end_time.filter(|_| state.is_finished()),
            begin_time: r.begin,
            planned_start: plan.as_ref().map(|p| p.start_time),
            sched_nodes: plan.map(|p| p.nodes).unwrap_or_default(),
            priority: self.sched.priority(t.key).map(|f| f.priority),
            nice: r.nice.unwrap_or(0),
            // Without --time, the partition's default (else its maximum) applies, as Slurm shows.
            time_limit_s: r.time_limit_s.or_else(|| {
                let pool = &self.pools.get(&j.wire.pool_info.pool_id)?.wire;
                super::alloc::time_limit(pool, None).map(|ms| ms / 1000)
            }),
            min_nodes: r.nodes,
            max_nodes: r.max_nodes,
            ntasks_per_node: r.ntasks_per_node,
            exclusive: r.exclusive,
            comment: r.comment.clone(),
            threads_per_core: r.threads_per_core,
            nodes,
            ntasks: r.ntasks,
            cpus_per_task: r.cpus_per_task,
            num_cpus: cpus_per_node(r).iter().sum(),
            mem_per_node_mb: r.mem_per_node_mb,
            // Without a memory request, the partition's DefMemPerCPU applies, as Slurm shows.
            mem_per_cpu_mb: r.mem_per_cpu_mb.or_else(|| {
                let asked = r.mem_per_node_mb.is_some() || r.mem_per_gpu_mb.is_some();
                let pool = &self.pools.get(&j.wire.pool_info.pool_id)?.wire;
                pool.default_memory_per_cpu_mib.filter(|_| !asked)
            }),
            gres: r.gres.clone(),
            constraint: r.constraint.clone(),
            command: r.command.clone(),
            work_dir: r.work_dir.clone(),
            std_out,
            std_err,
            held: s.held,
            // Every requeue counts, as Slurm counts them: a lost node or launcher, or `scontrol
            // requeue`.
            restarts: info.requeue_count,
            requeue: r.requeue,
            steps: s.steps.clone(),
            earlier_runs: s.runs.clone(),
            max_rss_kib: None,
        })
    }
}

/// The nodes a task runs (ran) on, in allocation order.
fn allocation(t: &TaskRec) -> Vec<String> {
    if !t.instances.is_empty() {
        return t.instances.iter().map(|i| i.node.clone()).collect();
    }
    t.wire.node_info.iter().map(|n| n.node_id.clone()).collect()
}

/// The batch script's output and error paths, patterns expanded (`%N`: the first node).
fn output_paths(s: &SlurmJobInfo, first_node: &str) -> (String, String) {
    let r = &s.request;
    let ctx = PatternContext {
        job_id: s.job_id as u32,
        array: s.array_job_id.zip(s.array_task_id).map(|(a, i)| (a as u32, i)),
        job_name: &r.name,
        user: &r.user,
        node_name: first_node,
        node_id: 0,
        task_id: 0,
        step: Step::Batch,
    };
    let out = expand_path(&r.output, &r.work_dir, &ctx);
    let err = r.error.as_ref().map_or_else(|| out.clone(), |e| expand_path(e, &r.work_dir, &ctx));
    (out, err)
}

/// Adds what a Slurm batch job's start needs to its attempt message: the script, its files
/// and working directory, and the `SLURM_*` environment of the reference (`case-*.env`).
pub(crate) fn add_batch(msg: &mut StartTask, job: &Job, t: &TaskRec, gpus: &[u32], token_key: &[u8]) {
    let Some(s) = job.slurm.as_deref() else { return };
    let r = &s.request;
    let nodes = allocation(t);
    let first = nodes.first().cloned().unwrap_or_default();
    let (stdout, stderr) = output_paths(s, &first);
    let nodelist = compress_hostlist(&nodes);
    let (mut tasks, mut cpus) = (tasks_per_node(r), cpus_per_node(r));
    // `--exclusive`: each node's every CPU, and as many tasks as they hold when none were asked
    // for, as Slurm gives them.
    let held: Vec<u32> = t.wire.allocation.iter().map(|a| a.cpus.len() as u32).collect();
    if r.exclusive && held.len() == cpus.len() && held.iter().all(|c| *c > 0) {
        if !r.ntasks_given {
            tasks = held.iter().map(|c| c / r.cpus_per_task.max(1)).collect();
        }
        cpus = held;
    }
    let id = s.job_id.to_string();
    let mut env: Vec<(String, String)> = r.env.clone();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("SLURMD_NODENAME", first.clone());
    if let (Some(array), Some(index), Some(a)) = (s.array_job_id, s.array_task_id, r.array.as_ref()) {
        let step = {
            let mut steps = a.indices.windows(2).map(|w| w[1] - w[0]);
            match steps.next() {
                Some(first) if steps.all(|d| d == first) => first,
                _ => 1,
            }
        };
        set("SLURM_ARRAY_JOB_ID", array.to_string());
        set("SLURM_ARRAY_TASK_COUNT", a.indices.len().to_string());
        set("SLURM_ARRAY_TASK_ID", index.to_string());
        set("SLURM_ARRAY_TASK_MAX", a.indices.last().copied().unwrap_or(0).to_string());
        set("SLURM_ARRAY_TASK_MIN", a.indices.first().copied().unwrap_or(0).to_string());
        set("SLURM_ARRAY_TASK_STEP", step.to_string());
    }
    set("SLURM_CLUSTER_NAME", CLUSTER_NAME.into());
    set("SLURM_CONF", SLURM_CONF.into());
    set("SLURM_CPUS_ON_NODE", cpus.first().copied().unwrap_or(1).to_string());
    if r.cpus_given {
        set("SLURM_CPUS_PER_TASK", r.cpus_per_task.to_string());
    }
    set("SLURM_GTIDS", "0".into());
    set("SLURM_JOBID", id.clone());
    set("SLURM_JOB_ID", id);
    set("SLURM_JOB_CPUS_PER_NODE", compress_counts(&cpus));
    if let Some(d) = &r.dependency {
        set("SLURM_JOB_DEPENDENCY", d.text.clone());
    }
    set("SLURM_JOB_GID", r.gid.to_string());
    set("SLURM_JOB_NAME", r.name.clone());
    set("SLURM_JOB_NODELIST", nodelist.clone());
    set("SLURM_JOB_NUM_NODES", nodes.len().to_string());
    set("SLURM_JOB_PARTITION", job.pool_info.pool_id.clone());
    set("SLURM_JOB_UID", r.uid.to_string());
    set("SLURM_JOB_USER", r.user.clone());
    set("SLURM_LOCALID", "0".into());
    if let Some(m) = r.mem_per_cpu_mb {
        set("SLURM_MEM_PER_CPU", m.to_string());
    }
    // `--mem=0` (all of each node's) sets none, as in Slurm.
    if let Some(m) = r.mem_per_node_mb.filter(|m| *m > 0) {
        set("SLURM_MEM_PER_NODE", m.to_string());
    }
    if let Some(m) = r.mem_per_gpu_mb {
        set("SLURM_MEM_PER_GPU", m.to_string());
    }
    if let Some(c) = r.cpus_per_gpu {
        set("SLURM_CPUS_PER_GPU", c.to_string());
    }
    set("SLURM_NNODES", nodes.len().to_string());
    set("SLURM_NODEID", "0".into());
    set("SLURM_NODELIST", nodelist);
    set("SLURM_NODE_ALIASES", "(null)".into());
    if r.ntasks_given {
        set("SLURM_NPROCS", r.ntasks.to_string());
        set("SLURM_NTASKS", r.ntasks.to_string());
    }
    if let Some(n) = r.ntasks_per_node {
        set("SLURM_NTASKS_PER_NODE", n.to_string());
    }
    set("SLURM_PRIO_PROCESS", "0".into());
    set("SLURM_PROCID", "0".into());
    set("SLURM_SUBMIT_DIR", r.submit_dir.clone());
    set("SLURM_SUBMIT_HOST", r.submit_host.clone());
    set("SLURM_TASKS_PER_NODE", compress_counts(&tasks));
    set("SLURM_TOPOLOGY_ADDR", first);
    set("SLURM_TOPOLOGY_ADDR_PATTERN", "node".into());
    // Slurm's `cluster:controller-address:port:protocol-version:select-plugin`.
    let addr = s.cluster_addr.rsplit_once(':').map_or((s.cluster_addr.as_str(), "0"), |(h, p)| (h, p));
    set("SLURM_WORKING_CLUSTER", format!("{CLUSTER_NAME}:{}:{}:9728:109", addr.0, addr.1));
    set("PWD", r.work_dir.clone());
    // The job's own credential for its srun steps: the submitter's never travels with it.
    // Only a task that runs as the job's owner gets it (it acts as the owner).
    set("GANGWAY_URL", format!("https://{}", s.cluster_addr));
    let as_owner = t.wire.run_as.as_ref().is_none_or(|u| job.owner.as_ref().is_some_and(|o| o.uid == u.uid));
    if as_owner {
        set("GANGWAY_TOKEN", super::tokens::job_token(token_key, job));
    }
    if r.gpus_per_node.is_some() {
        env.extend(gpu_env(gpus));
    }
    msg.env.extend(env);
    msg.batch = Some(BatchScript {
        script: r.script.clone(),
        args: r.script_args.clone(),
        work_dir: r.work_dir.clone(),
        stdout,
        stderr,
    });
}

/// The GPU variables of a Slurm job on a node where it was given GPUs `gpus` (indices).
pub(crate) fn gpu_env(gpus: &[u32]) -> Vec<(String, String)> {
    let list = gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut env: Vec<(String, String)> = ["CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES"]
        .into_iter()
        .map(|k| (k.to_owned(), list.clone()))
        .collect();
    env.push(("SLURM_GPUS_ON_NODE".into(), gpus.len().to_string()));
    env.push(("SLURM_JOB_GPUS".into(), list));
    env
}

/// `SLURM_CLUSTER_NAME`.
pub const CLUSTER_NAME: &str = "gangway";
/// `SLURM_CONF`: where Slurm keeps its configuration. gangway has none; scripts that only
/// check the variable is set (or pass it on) keep working.
pub const SLURM_CONF: &str = "/etc/slurm/slurm.conf";

/// A pending job's dependency as Slurm shows it (`scontrol`, `squeue %E`): each condition that
/// is not met yet, marked `(unfulfilled)` or `(failed)` (`afterok:12(unfulfilled),afterok:13(failed)`),
/// joined as given; None once every condition is met (`verdicts` None: it waits for nothing).
fn slurm_dependency_text(
    d: &gangway_api::slurm::SlurmDependency,
    verdicts: Option<&[super::deps::Verdict]>,
) -> Option<String> {
    use super::deps::Verdict;
    let verdicts = verdicts?;
    let shown: Vec<String> = d
        .conditions
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| **v != Verdict::Satisfied)
        .map(|(c, v)| {
            let mut text = match c.job_id {
                None => c.kind.clone(),
                Some(id) => format!("{}:{id}", c.kind),
            };
            if let Some(i) = c.array_task {
                text.push_str(&format!("_{i}"));
            }
            if let Some(m) = c.delay_minutes {
                text.push_str(&format!("+{m}"));
            }
            text.push_str(if *v == Verdict::Never { "(failed)" } else { "(unfulfilled)" });
            text
        })
        .collect();
    (!shown.is_empty()).then(|| shown.join(if d.any { "?" } else { "," }))
}

/// `n` GPUs of the request's type, as Slurm writes a per-job, -node or -task TRES request.
fn gpu_tres(r: &gangway_api::slurm::SlurmSubmit, n: u32) -> String {
    match &r.gpu_type {
        Some(t) => format!("gres:gpu:{t}:{n}"),
        None => format!("gres:gpu:{n}"),
    }
}

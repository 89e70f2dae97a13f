//! The Slurm front door's view of jobs: what `GET /slurm/jobs` returns and what `squeue`,
//! `sacct` and `scontrol show job` print from.
//!
//! A Slurm job is a gangway job whose id is its decimal Slurm job id, in the pool named by its
//! partition; the head keeps the Slurm-only facts (name, user, dependencies, holds, output
//! patterns) beside it and answers with [`SlurmJob`], already in Slurm's terms, so the
//! commands only format.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Slurm's job states (the long names `squeue -t` and `sacct` print; `short` for `%t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SlurmJobState {
    /// Waiting: queued, held, or waiting for a dependency or a begin time.
    Pending,
    /// Running.
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Ended with a non-zero exit code or could not start.
    Failed,
    /// Cancelled (`scancel`) or its dependency can never be satisfied and it was cancelled.
    Cancelled,
    /// Killed at its time limit.
    Timeout,
    /// A node of its allocation was lost.
    NodeFail,
    /// Being killed (cancel or time limit in progress).
    Completing,
    /// Killed by the kernel for using more memory than it was allocated.
    OutOfMemory,
}

impl SlurmJobState {
    /// The long name: `PENDING`, `RUNNING`, …
    pub fn as_str(self) -> &'static str {
        match self {
            SlurmJobState::Pending => "PENDING",
            SlurmJobState::Running => "RUNNING",
            SlurmJobState::Completed => "COMPLETED",
            SlurmJobState::Failed => "FAILED",
            SlurmJobState::Cancelled => "CANCELLED",
            SlurmJobState::Timeout => "TIMEOUT",
            SlurmJobState::NodeFail => "NODE_FAIL",
            SlurmJobState::Completing => "COMPLETING",
            SlurmJobState::OutOfMemory => "OUT_OF_MEMORY",
        }
    }

    /// The compact name `squeue`'s `%t` prints: `PD`, `R`, `CD`, `F`, `CA`, `TO`, `NF`, `CG`.
    pub fn short(self) -> &'static str {
        match self {
            SlurmJobState::Pending => "PD",
            SlurmJobState::Running => "R",
            SlurmJobState::Completed => "CD",
            SlurmJobState::Failed => "F",
            SlurmJobState::Cancelled => "CA",
            SlurmJobState::Timeout => "TO",
            SlurmJobState::NodeFail => "NF",
            SlurmJobState::Completing => "CG",
            SlurmJobState::OutOfMemory => "OOM",
        }
    }

    /// Whether the job has ended (only ended jobs appear in `sacct` with an end time).
    pub fn is_finished(self) -> bool {
        !matches!(self, SlurmJobState::Pending | SlurmJobState::Running | SlurmJobState::Completing)
    }
}

/// One Slurm job, or one element of a job array, as the head reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmJob {
    /// Its own job id (`SLURM_JOB_ID`).
    pub job_id: u64,
    /// What it holds (held) on each node: CPU ids, memory and GPU indices (`scontrol show job -d`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocation: Vec<crate::task::NodeAllocation>,
    /// For an array element: the array's job id (`%A`) and its index (`%a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<u64>,
    /// The element's index in its array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u32>,
    /// GPUs asked for as Slurm shows the request (`gres:gpu:2`, `gres:gpu:a100:2`): for the job
    /// (`-G`), each node (`--gres`, `--gpus-per-node`) or each task (`--gpus-per-task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tres_per_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tres_per_node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tres_per_task: Option<String>,
    /// `--cpus-per-gpu` and `--mem-per-gpu` as Slurm shows them (`gres:gpu:4`, `gres:gpu:1024`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_tres: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_per_tres: Option<String>,
    /// With `--mem=0`: a node's memory in its partition (MiB), which each of its nodes gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_memory_mb: Option<u64>,
    /// Its array's `%N`: at most this many elements run at once (`ArrayTaskThrottle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_throttle: Option<u32>,
    /// `-J` (default: the script's file name, or `wrap`).
    pub name: String,
    /// Who submitted it (`%u`).
    pub user: String,
    /// Their numeric uid.
    pub uid: u32,
    /// Their group id.
    pub gid: u32,
    /// The partition (gangway pool).
    pub partition: String,
    /// `-A`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `-q`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Current state.
    pub state: SlurmJobState,
    /// Why it is pending, or `None`: `Priority`, `Resources`, `Dependency`,
    /// `DependencyNeverSatisfied`, `JobHeldUser`, `BeginTime`, `JobArrayTaskLimit`.
    pub reason: String,
    /// The dependency as given (`afterok:12,afterany:13`), while it still applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// Exit code of the batch script (or the highest of an srun job's tasks), once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it, once ended by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// When it was submitted.
    pub submit_time: Timestamp,
    /// When it became eligible to run (dependencies, hold and begin time cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible_time: Option<Timestamp>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// `--begin`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin_time: Option<Timestamp>,
    /// While pending: when the scheduler plans to start it (its reservation), if it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_start: Option<Timestamp>,
    /// While pending: the nodes of that plan (`SchedNodeList`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sched_nodes: Vec<String>,
    /// While pending: its multifactor priority, as last computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `--nice`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nice: i32,
    /// Time limit in seconds (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<u64>,
    /// Nodes asked for (at least).
    pub min_nodes: u32,
    /// Nodes asked for at most (`-N 2-4`), if a maximum was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes: Option<u32>,
    /// `--ntasks-per-node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntasks_per_node: Option<u32>,
    /// `--exclusive`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
    /// Threads per core asked for (`--hint=nomultithread` is 1, `--threads-per-core`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_per_core: Option<u32>,
    /// `--comment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The nodes it runs (ran) on, in allocation order; empty while pending.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Tasks (`-n`).
    pub ntasks: u32,
    /// `-c`.
    pub cpus_per_task: u32,
    /// CPUs allocated (or asked for, while pending).
    pub num_cpus: u32,
    /// Memory asked for per node in MB (`None`: not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_per_node_mb: Option<u64>,
    /// Memory asked for per CPU in MB (`None`: not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_per_cpu_mb: Option<u64>,
    /// GPUs, as Slurm's TRES string writes them (`gres/gpu:2`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// `-C`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// The batch script's path as submitted (`wrap` jobs: `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Working directory (`-D`, default the submit directory).
    pub work_dir: String,
    /// Standard output file, patterns substituted (absolute).
    pub std_out: String,
    /// Standard error file, patterns substituted (absolute).
    pub std_err: String,
    /// Held by the user (`-H`, `scontrol hold`).
    pub held: bool,
    /// How often it was requeued.
    pub restarts: u32,
    /// `--requeue` (default) / `--no-requeue`.
    pub requeue: bool,
    /// Its `srun` steps, as srun reported them, by step id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<SlurmStep>,
    /// Its runs before it was requeued, oldest first (`sacct -D`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_runs: Vec<SlurmRun>,
    /// The highest resident set size of its processes, in KiB, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kib: Option<u64>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// One waiting job's priority and its factors (a row of `sprio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorityFactors {
    pub job_id: u64,
    pub partition: String,
    pub user: String,
    pub uid: u32,
    pub account: String,
    /// The multifactor priority (weighted factors less nice).
    pub priority: i64,
    /// Normalized factors, each from 0 to 1.
    pub age: f64,
    pub fairshare: f64,
    pub job_size: f64,
    /// The factors times their weights.
    pub weighted_age: i64,
    pub weighted_fairshare: i64,
    pub weighted_job_size: i64,
    pub nice: i32,
}

/// The body of `GET /slurm/priorities`: the weights, and every waiting Slurm job's factors
/// that the caller may see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorityList {
    pub weight_age: u32,
    pub weight_fairshare: u32,
    pub weight_job_size: u32,
    pub jobs: Vec<PriorityFactors>,
}

/// One association of the share tree (a row of `sshare`): an account (no user) or a user in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareRow {
    pub account: String,
    /// The user's name (None: the account's own row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub raw_shares: u32,
    pub norm_shares: f64,
    /// Decayed usage in billed CPU-seconds.
    pub raw_usage: u64,
    pub effective_usage: f64,
    /// The fair-share factor, from 0 to 1.
    pub fairshare: f64,
}

/// The body of `GET /slurm/shares`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareList {
    pub rows: Vec<ShareRow>,
}

/// The body of `GET /slurm/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmJobList {
    /// Every job and array element the head knows, in job id order.
    pub jobs: Vec<SlurmJob>,
}

impl SlurmSubmit {
    /// The GPUs each of the job's `nodes` nodes gets, with `busiest` tasks on the busiest:
    /// the most of `gpusPerNode`, `gpusPerTask` × `busiest`, and `gpus` spread evenly.
    pub fn gpus_each_node(&self, busiest: u32) -> Option<u32> {
        let from_tasks = self.gpus_per_task.map(|t| t.saturating_mul(busiest));
        let from_job = self.gpus.map(|g| g.div_ceil(self.nodes.max(1)));
        [self.gpus_per_node, from_tasks, from_job].into_iter().flatten().max().filter(|&g| g > 0)
    }
}

/// The body of `POST /slurm/jobs`: one `sbatch`, already resolved by the front door (options,
/// `#SBATCH` lines, `--export` applied to the submission environment, `--begin` made absolute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmSubmit {
    /// `-p` (`None`: the default partition, pool `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `-J` or its default.
    pub name: String,
    /// The submitting user's name. Left out, the head names `uid` itself, as slurmctld does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Numeric uid.
    pub uid: u32,
    /// Numeric gid.
    pub gid: u32,
    /// `-A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `-q`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// `-C`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// The batch script's text (for `--wrap`, the script sbatch writes).
    pub script: String,
    /// Arguments after the script name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script_args: Vec<String>,
    /// The script's absolute path as submitted (`None` for `--wrap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Absolute working directory (`-D`, default the submit directory).
    pub work_dir: String,
    /// Where sbatch ran (`SLURM_SUBMIT_DIR`).
    pub submit_dir: String,
    /// Host sbatch ran on (`SLURM_SUBMIT_HOST`).
    pub submit_host: String,
    /// `-o` pattern.
    pub output: String,
    /// `-e` pattern; `None`: standard error goes to the output file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The environment the script starts with (`--export` already applied), `SLURM_*` aside.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// `-N` minimum.
    pub nodes: u32,
    /// `-N` maximum (`None`: as many as the tasks need, when `-N` gives no maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes: Option<u32>,
    /// `-n` or its default.
    pub ntasks: u32,
    /// Whether `-n`/`--ntasks-per-node` was given (then `SLURM_NTASKS` is exported).
    #[serde(default)]
    pub ntasks_given: bool,
    /// `--ntasks-per-node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntasks_per_node: Option<u32>,
    /// `-c`.
    pub cpus_per_task: u32,
    /// Whether `-c` was given (then `SLURM_CPUS_PER_TASK` is exported).
    #[serde(default)]
    pub cpus_given: bool,
    /// `--mem` in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_per_node_mb: Option<u64>,
    /// `--mem-per-cpu` in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_per_cpu_mb: Option<u64>,
    /// GPUs as a TRES string (`gres/gpu:2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// Tasks on each node, as the head lays them out at submission (sbatch leaves it empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_layout: Vec<u32>,
    /// GPUs per node asked for (`--gres=gpu:N`, `--gpus-per-node`). Once the node count is
    /// known the head stores here what each node gets: the most of this, `gpusPerTask` times
    /// the tasks of the busiest node, and `gpus` spread over the nodes. A job with GPUs takes
    /// its nodes whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_node: Option<u32>,
    /// `--gpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_task: Option<u32>,
    /// `-G/--gpus`: GPUs for the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// `--mem-per-gpu` in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_per_gpu_mb: Option<u64>,
    /// `--cpus-per-gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_gpu: Option<u32>,
    /// The GPU type asked for (`--gres=gpu:h100:2`): a node's GPUs must have it in their
    /// name, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// `-t` in seconds (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<u64>,
    /// `--begin`, absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin: Option<Timestamp>,
    /// `--nice`: subtracted from the job's priority (a negative one only from an admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice: Option<i32>,
    /// Threads per core asked for (`--hint=nomultithread` is 1, `--threads-per-core`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_per_core: Option<u32>,
    /// `--comment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `-H`.
    #[serde(default)]
    pub hold: bool,
    /// `-d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<SlurmDependency>,
    /// `--kill-on-invalid-dep=yes`: cancel the job when its dependency can never be met.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kill_on_invalid_dep: bool,
    /// `-a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<SlurmArray>,
    /// `--requeue` (default) or `--no-requeue`.
    #[serde(default = "yes")]
    pub requeue: bool,
    /// `--exclusive`: whole nodes.
    #[serde(default)]
    pub exclusive: bool,
    /// `--test-only`: say where and when it would run; queue nothing.
    #[serde(default)]
    pub test_only: bool,
}

fn yes() -> bool {
    true
}

/// A `--dependency`, parsed by the front door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmDependency {
    /// As Slurm writes it back (`afterok:16`): `SLURM_JOB_DEPENDENCY`, `squeue %E`.
    pub text: String,
    /// `?`-joined (any condition suffices) rather than `,`-joined (all must hold).
    #[serde(default)]
    pub any: bool,
    /// The conditions.
    pub conditions: Vec<SlurmCondition>,
}

/// One dependency condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmCondition {
    /// `after`, `afterany`, `afterok`, `afternotok`, `aftercorr`, `afterburstbuffer` or `singleton`.
    pub kind: String,
    /// The job waited on (absent for `singleton`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// `N_i`: only this element of array `N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task: Option<u32>,
    /// `after:N+MIN`: minutes after the job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_minutes: Option<u32>,
}

/// A `--array`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmArray {
    /// The indices, ascending.
    pub indices: Vec<u32>,
    /// `%N`: at most this many elements run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
}

/// The answer to `POST /slurm/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmSubmitted {
    /// The job id (an array's id; with `--test-only`, the id it would get).
    pub job_id: u64,
    /// With `--test-only`: where and when it would start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_only: Option<SlurmTestOnly>,
}

/// Where and when a `--test-only` job would start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmTestOnly {
    /// The earliest start (now when the nodes are free).
    pub start_time: Timestamp,
    /// CPUs it would use.
    pub processors: u32,
    /// Its nodes (compressed hostlist).
    pub nodes: String,
    /// Its partition.
    pub partition: String,
}

/// The body of `POST /slurm/cancel` (`scancel`): the jobs every given filter matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmCancel {
    /// Job ids as scancel takes them: `N` (a job, or every element of array `N`) or `N_i`.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// `-u`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `-n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `-t` (empty: any state).
    #[serde(default)]
    pub states: Vec<SlurmJobState>,
    /// `-p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `-s`/`--signal`: send this signal number to every process of each running job
    /// instead of cancelling it (9, SIGKILL, cancels as Slurm does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// Slurm's default `MaxArraySize`: array indices run from 0 to 1000.
pub const MAX_ARRAY_SIZE: u32 = 1001;

/// The answer to `POST /slurm/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmCancelled {
    /// Jobs being cancelled now (pending ones are cancelled at once, running ones killed).
    pub cancelled: Vec<u64>,
    /// Ids given that name no job.
    pub invalid: Vec<String>,
    /// Jobs that matched but had already ended.
    pub finished: Vec<u64>,
    /// With a signal: running jobs it was sent to.
    #[serde(default)]
    pub signaled: Vec<u64>,
    /// With a signal: jobs left alone because they have not started ("Job is pending execution").
    #[serde(default)]
    pub pending: Vec<u64>,
    /// Jobs named that belong to another user ("Access/permission denied"); another user's
    /// jobs that only match the filters are left out.
    #[serde(default)]
    pub denied: Vec<u64>,
}

/// The body of `POST /slurm/jobs/{id}/update` (`scontrol update JobId=N …`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmUpdate {
    /// `TimeLimit=` in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<u64>,
    /// `TimeLimit=UNLIMITED`.
    #[serde(default)]
    pub unlimited: bool,
}

/// What the head keeps of a Slurm job beside its gangway job (the `slurm` field of
/// [`Job`](crate::Job)): persisted with it, so it survives a head restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmJobInfo {
    /// Its own job id.
    pub job_id: u64,
    /// For an array element: the array's id and the element's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<u64>,
    /// The element's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u32>,
    /// The submission as sbatch sent it (`testOnly` false).
    pub request: SlurmSubmit,
    /// Held (`-H`, `scontrol hold`).
    #[serde(default)]
    pub held: bool,
    /// Requeues so far.
    #[serde(default)]
    pub restarts: u32,
    /// When it was submitted.
    pub submit_time: Timestamp,
    /// When its hold, begin time and dependency last cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible_time: Option<Timestamp>,
    /// The head's `host:port` (for `SLURM_WORKING_CLUSTER`).
    pub cluster_addr: String,
    /// Its `srun` steps so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<SlurmStep>,
    /// Its runs before each requeue, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<SlurmRun>,
}

/// A run of a Slurm job that was requeued afterwards: how it ended (`NODE_FAIL` for a lost
/// node; a finished job requeued by `scontrol requeue` keeps its own end), when and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmRun {
    /// How it ended.
    pub state: SlurmJobState,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Its nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Its exit code, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// One `srun` step of a Slurm job, as its srun reports it (`POST /slurm/jobs/{id}/step`) when
/// it starts and when it ends; sacct lists it as `N.S`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlurmStep {
    /// The step id (`SLURM_STEP_ID`).
    pub step_id: u32,
    /// The program's name.
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<String>,
    /// Its tasks.
    pub ntasks: u32,
    /// CPUs it uses (tasks × `-c`).
    pub cpus: u32,
    /// `RUNNING`, then `COMPLETED`, `FAILED` or `CANCELLED`.
    pub state: SlurmJobState,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// The highest task exit code, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended a task, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The highest resident set size of one of its tasks, in KiB, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kib: Option<u64>,
}

/// Counts as Slurm compresses them (`SLURM_TASKS_PER_NODE`, `SLURM_JOB_CPUS_PER_NODE`):
/// `2(x4)`, `3,2`.
pub fn compress_counts(counts: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let run = counts[i..].iter().take_while(|c| **c == counts[i]).count();
        parts.push(if run > 1 { format!("{}(x{run})", counts[i]) } else { counts[i].to_string() });
        i += run;
    }
    parts.join(",")
}

/// Counts as Slurm compresses them back into one number per node.
pub fn expand_counts(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (n, times) = match part.split_once("(x") {
            Some((n, t)) => (n, t.strip_suffix(')').and_then(|t| t.parse::<usize>().ok())),
            None => (part, Some(1)),
        };
        match (n.parse::<u32>().ok(), times) {
            (Some(n), Some(t)) => out.extend(std::iter::repeat_n(n, t)),
            _ => return Err(format!("cannot read the counts '{text}'")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod gpus_tests {
    use super::SlurmSubmit;

    #[test]
    fn gpus_per_node_follow_from_each_form_of_the_request() {
        let req = |gpus, per_node, per_task, nodes| {
            SlurmSubmit {
            gpus,
            gpus_per_node: per_node,
            gpus_per_task: per_task,
            nodes,
            ..serde_json::from_str(
                r#"{"name":"n","uid":0,"gid":0,"script":"","workDir":"/","submitDir":"/","submitHost":"h","output":"o","nodes":1,"ntasks":1,"cpusPerTask":1}"#,
            )
            .unwrap()
        }
        };
        assert_eq!(req(None, Some(2), None, 3).gpus_each_node(5), Some(2));
        assert_eq!(
            req(None, None, Some(1), 2).gpus_each_node(8),
            Some(8),
            "-n16 --gpus-per-task=1 on two 8-task nodes"
        );
        assert_eq!(req(Some(5), None, None, 2).gpus_each_node(1), Some(3), "-G 5 over 2 nodes: 3 on the busiest");
        assert_eq!(req(Some(4), Some(1), Some(1), 1).gpus_each_node(2), Some(4), "the most of the forms");
        assert_eq!(req(None, Some(0), None, 1).gpus_each_node(1), None);
    }
}

#[cfg(test)]
mod counts_tests {
    #[test]
    fn counts_compress_and_expand_as_slurm_writes_them() {
        for (counts, want) in [(&[1][..], "1"), (&[2, 2, 2, 2], "2(x4)"), (&[3, 2], "3,2"), (&[4, 4, 1], "4(x2),1")] {
            assert_eq!(super::compress_counts(counts), want);
            assert_eq!(super::expand_counts(want).as_deref(), Ok(counts));
        }
        assert!(super::expand_counts("x").is_err());
        assert!(super::expand_counts("2(x").is_err());
    }
}

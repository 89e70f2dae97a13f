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
    /// For an array element: the array's job id (`%A`) and its index (`%a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<u64>,
    /// The element's index in its array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u32>,
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
    /// Time limit in seconds (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<u64>,
    /// Nodes asked for (at least).
    pub min_nodes: u32,
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
    /// The highest resident set size of its processes, in KiB, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kib: Option<u64>,
}

/// The body of `GET /slurm/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlurmJobList {
    /// Every job and array element the head knows, in job id order.
    pub jobs: Vec<SlurmJob>,
}

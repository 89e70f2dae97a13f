//! Tasks: one command line, its constraints and its execution record.

use serde::{Deserialize, Serialize};

use crate::common::EnvironmentSetting;
use crate::time::{IsoDuration, Timestamp};

/// Task-level constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskConstraints {
    /// Measured from the start of each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_clock_time: Option<IsoDuration>,
    /// How long the task directory is kept after completion (default 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_time: Option<IsoDuration>,
    /// Retries after a non-zero exit (0 default; −1 unlimited; N gives N+1 attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_task_retry_count: Option<i32>,
}

/// A file a task needs on its node before it starts, from exactly one source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceFile {
    /// Where it goes, relative to the task's working directory (or the task directory for a
    /// multi-instance task's common files).
    pub file_path: String,
    /// Download it from this HTTP URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    /// gangway: copy it from this absolute path on the node (a shared file system, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// gangway: a file uploaded to the head with `PUT /files/{name}` (`gangway file put`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_file: Option<String>,
    /// Octal permission bits, like `0755`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<String>,
}

/// gangway's managed MPI launch: the launcher starts the ranks itself (PMI-1 for MPICH-family
/// MPIs), each pinned to its part of the node's placement plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MpiSettings {
    /// Ranks on each node.
    pub ranks_per_node: u32,
    /// CPUs (cores; PUs with bind=threads) per rank; absent: the node's CPUs split evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_rank: Option<u32>,
    /// GPUs per rank.
    #[serde(default)]
    pub gpus_per_rank: u32,
    /// CPU binding: cores (default), threads, numa or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// GPU binding: closest (default), shared or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_bind: Option<String>,
    /// How ranks are started: `pmi` (PMI-1, the MPICH family), `openmpi`, or `auto` (default:
    /// the program's linked MPI library decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
}

impl MpiSettings {
    /// The per-node placement request, in `gangway topo --plan` syntax.
    pub fn placement_spec(&self) -> String {
        let mut s = format!("ranks={},gpus-per-rank={}", self.ranks_per_node, self.gpus_per_rank);
        if let Some(c) = self.cpus_per_rank {
            s.push_str(&format!(",cpus-per-rank={c}"));
        }
        if let Some(b) = &self.bind {
            s.push_str(&format!(",bind={b}"));
        }
        if let Some(g) = &self.gpu_bind {
            s.push_str(&format!(",gpu-bind={g}"));
        }
        s
    }
}

/// `multiInstanceSettings`: run the task on several nodes at once (an MPI job).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MultiInstanceSettings {
    /// Nodes (instances) the task needs, one instance per node.
    pub number_of_instances: u32,
    /// Run on every instance before the application starts (e.g. start an MPI daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordination_command_line: Option<String>,
    /// Downloaded by every instance into the task directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_resource_files: Vec<ResourceFile>,
}

/// gangway: exclusive resources a task (each instance of a multi-instance task) asks for on
/// its node, beside Azure's `requiredSlots`. Absent fields are taken from `mpi` (ranks ×
/// CPUs and GPUs per rank), else none: a task without any gets no exclusive cores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskResources {
    /// CPUs (hardware threads; whole cores are allocated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Whole cores at least, one CPU each (Slurm's `--hint=nomultithread`: one thread per core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// Memory, MiB: the task's cgroup limit.
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// GPUs, each for this task alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// A word of the GPUs' name (`h100`, `a100`, `rtx_a4000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// The whole node (every core, all memory, every GPU).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
}

/// One node's part of a task's allocation: what the scheduler gave it there, exclusively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAllocation {
    /// The node.
    pub node_id: String,
    /// OS CPU numbers (every thread of each allocated core); empty: no exclusive cores.
    #[serde(default)]
    pub cpus: Vec<u32>,
    /// Memory limit, MiB (0: none).
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: u64,
    /// GPU indices.
    #[serde(default)]
    pub gpus: Vec<u32>,
}

impl NodeAllocation {
    /// Whether nothing was given exclusively (a slots-only task: confined to nothing).
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.gpus.is_empty() && self.memory_mib == 0
    }
}

/// Azure's `userIdentity`: a named user, or an auto-user (set neither for the default).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserIdentity {
    /// A user by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// An auto-user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_user: Option<AutoUserSpecification>,
}

/// Azure's `autoUser`: in gangway, the job's owner (`nonadmin`) or root (`admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoUserSpecification {
    /// `task` or `pool` (the default); either is the owner here.
    #[serde(default)]
    pub scope: AutoUserScope,
    /// `nonadmin` (the default) or `admin`.
    #[serde(default)]
    pub elevation_level: ElevationLevel,
}

/// `{"task", "pool"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoUserScope {
    /// One user per task.
    Task,
    /// One user per pool.
    #[default]
    Pool,
}

/// `{"nonadmin", "admin"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElevationLevel {
    /// An ordinary user.
    #[default]
    NonAdmin,
    /// An administrator (root).
    Admin,
}

/// The body of `POST /jobs/{id}/tasks` (and one element of a task collection).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskAddParameter {
    /// Task id, unique in its job.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The command, split into arguments and run without a shell.
    pub command_line: String,
    /// Extra environment (overrides the job's common settings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_settings: Vec<EnvironmentSetting>,
    /// Wall clock, retention and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<TaskConstraints>,
    /// Slots the task occupies on its node (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_slots: Option<u32>,
    /// Run on several nodes at once (an MPI job): one instance per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_instance_settings: Option<MultiInstanceSettings>,
    /// gangway: launch MPI ranks directly, pinned to the node's placement plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi: Option<MpiSettings>,
    /// Files fetched into the working directory before the command starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_files: Vec<ResourceFile>,
    /// gangway: exclusive cores, memory and GPUs on each of its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TaskResources>,
    /// Who the task runs as (Azure's `userIdentity`): the job's owner unless it names a user
    /// (its owner itself, or any user for an admin) or an admin auto-user (root; admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
    /// The tasks of its job it waits for (the job needs `usesTaskDependencies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<crate::deps::TaskDependencies>,
    /// How its completion is treated, by how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_conditions: Option<crate::deps::ExitConditions>,
    /// Files copied out when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_files: Vec<crate::outputs::OutputFile>,
    /// Application packages unpacked on its node before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_package_references: Vec<crate::apps::ApplicationPackageReference>,
}

/// The body of `POST /jobs/{id}/addtaskcollection`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskAddCollectionParameter {
    /// At most 100 tasks.
    pub value: Vec<TaskAddParameter>,
}

/// Outcome of one task of a collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAddResult {
    /// `success` or `clienterror`.
    pub status: String,
    /// The task's id.
    pub task_id: String,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::common::ErrorBody>,
}

/// The body returned by `addtaskcollection`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskAddCollectionResult {
    /// One result per submitted task, in order.
    pub value: Vec<TaskAddResult>,
}

/// Task lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Queued (or requeued).
    Active,
    /// Waiting for the job preparation task on its node.
    Preparing,
    /// Running on a node.
    Running,
    /// Done (succeeded or failed).
    Completed,
}

impl TaskState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Active => "active",
            TaskState::Preparing => "preparing",
            TaskState::Running => "running",
            TaskState::Completed => "completed",
        }
    }
}

/// `success` or `failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskExecutionResult {
    /// Exit code 0.
    Success,
    /// Anything else.
    Failure,
}

/// `usererror` or `servererror`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorCategory {
    /// The task's own doing (bad command, non-zero exit, time limit).
    UserError,
    /// gangway's or the node's doing.
    ServerError,
}

/// Why a task failed beyond its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailureInformation {
    /// usererror or servererror.
    pub category: ErrorCategory,
    /// `TaskEnded` (time limit), `CommandNotFound`, `TaskTerminated`, `FailureExitCode`, `NodeLost`, …
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// `executionInfo` of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskExecutionInformation {
    /// When the latest attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When the task completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Exit code of the last attempt (128+N for a signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed, when it did not just exit non-zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_info: Option<TaskFailureInformation>,
    /// Retries so far (non-zero exits).
    pub retry_count: u32,
    /// When the last retry started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retry_time: Option<Timestamp>,
    /// Requeues by the system (node lost, node operations); not counted as retries.
    pub requeue_count: u32,
    /// When the last requeue happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_requeue_time: Option<Timestamp>,
    /// success or failure, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskExecutionResult>,
}

/// Where a task ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeNodeInformation {
    /// The node's pool.
    pub pool_id: String,
    /// The node.
    pub node_id: String,
    /// The task directory on that node.
    pub task_root_directory: String,
}

/// A task as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When it was added.
    pub creation_time: Timestamp,
    /// Current state.
    pub state: TaskState,
    /// When it entered that state.
    pub state_transition_time: Timestamp,
    /// The state before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<TaskState>,
    /// When it entered the previous state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state_transition_time: Option<Timestamp>,
    /// The command line.
    pub command_line: String,
    /// Its own environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_settings: Vec<EnvironmentSetting>,
    /// Effective constraints (job defaults applied).
    pub constraints: TaskConstraints,
    /// Slots it occupies.
    pub required_slots: u32,
    /// Its instances, when it is a multi-instance task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_instance_settings: Option<MultiInstanceSettings>,
    /// Its managed MPI ranks, when the launcher starts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi: Option<MpiSettings>,
    /// Files fetched into the working directory before the command starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_files: Vec<ResourceFile>,
    /// gangway: what it asked for of each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TaskResources>,
    /// gangway: what its current (or last) attempt was given on each node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocation: Vec<NodeAllocation>,
    /// gangway, read only: while it waits, when and where the scheduler plans to start it
    /// (the reservation its pool holds for it: the first task that cannot start under EASY,
    /// the first N under conservative backfilling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_start: Option<PlannedStart>,
    /// The execution record.
    pub execution_info: TaskExecutionInformation,
    /// Where it runs or ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_info: Option<ComputeNodeInformation>,
    /// Who the task runs as, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
    /// The user the task runs as when it is not the job's owner (a gangway extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<crate::job::Owner>,
    /// The tasks of its job it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<crate::deps::TaskDependencies>,
    /// How its completion is treated, by how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_conditions: Option<crate::deps::ExitConditions>,
    /// gangway, read only: why it waits for its dependencies, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<crate::deps::DependencyStatus>,
    /// Files copied out when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_files: Vec<crate::outputs::OutputFile>,
    /// Application packages unpacked on its node before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_package_references: Vec<crate::apps::ApplicationPackageReference>,
}

/// gangway: a waiting task's planned start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStart {
    /// When, at the latest, if what runs ends by its time limit.
    pub start_time: Timestamp,
    /// The nodes kept for it.
    pub nodes: Vec<String>,
}

/// One entry of `GET …/files`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFile {
    /// Path relative to the task directory (`stdout.txt`, `wd/out.dat`).
    pub name: String,
    /// Whether it is a directory.
    pub is_directory: bool,
    /// Size and time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<FileProperties>,
}

/// Size and modification time of a [`NodeFile`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileProperties {
    /// Bytes.
    pub content_length: u64,
    /// Modification time.
    pub last_modified: Timestamp,
}

/// State of one instance of a multi-instance task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtaskState {
    /// Getting its files and running the coordination command.
    Preparing,
    /// Coordinated; waiting for (or running) the application.
    Running,
    /// Ended.
    Completed,
}

/// One instance of a multi-instance task (`GET …/subtasksinfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubtaskInformation {
    /// Instance number (0 is the primary; subtasksinfo lists 1..n-1).
    pub id: u32,
    /// Where it runs.
    pub node_info: ComputeNodeInformation,
    /// Its state.
    pub state: SubtaskState,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Exit code of its coordination command (or of the application, on the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_info: Option<TaskFailureInformation>,
    /// success or failure, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskExecutionResult>,
}

/// The body of `PUT /jobs/{id}/tasks/{tid}`: the task's constraints, replaced whole (absent
/// fields take their defaults: the job's retry count, 7 days' retention, no wall clock).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskUpdateParameter {
    /// The new constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<TaskConstraints>,
}

//! Jobs: a priority, constraints and a pool, holding tasks.

use serde::{Deserialize, Serialize};

use crate::common::EnvironmentSetting;
use crate::time::{IsoDuration, Timestamp};

/// `poolInfo` of a job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolInformation {
    /// The pool the job's tasks run on.
    pub pool_id: String,
}

/// Job-level constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobConstraints {
    /// Measured from job creation; the job is terminated when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_clock_time: Option<IsoDuration>,
    /// Default retry count for the job's tasks (-1: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_task_retry_count: Option<i32>,
}

/// What happens when every task of the job has completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnAllTasksComplete {
    /// Nothing: the job stays active.
    #[default]
    NoAction,
    /// The job is terminated (reason `AllTasksComplete`).
    TerminateJob,
}

/// What happens when a task of the job fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTaskFailure {
    /// Nothing.
    #[default]
    NoAction,
    /// Apply the task's exit options' job action.
    PerformExitOptionsJobAction,
}

/// The body of `POST /jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobAddParameter {
    /// Job id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// −1000..1000, higher first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Wall clock and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<JobConstraints>,
    /// The pool (when absent, the pool `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_info: Option<PoolInformation>,
    /// Terminate the job when all tasks complete?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_all_tasks_complete: Option<OnAllTasksComplete>,
    /// What a task failure does to the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_task_failure: Option<OnTaskFailure>,
    /// Environment for every task of the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_environment_settings: Vec<EnvironmentSetting>,
    /// Whether its tasks may have `dependsOn` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_task_dependencies: Option<bool>,
    /// gangway: what happens to a task whose dependency can no longer be satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_dependency_blocked: Option<crate::deps::OnDependencyBlocked>,
    /// A task started first, which manages the job (typically adds its tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_manager_task: Option<JobManagerTask>,
    /// Run on each node before the job's first task there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_preparation_task: Option<JobPreparationTask>,
    /// Run when the job ends on every node that ran its preparation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_release_task: Option<JobReleaseTask>,
}

/// `jobManagerTask`: the job's first task, with a credential to add and read the job's tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobManagerTask {
    /// Its task id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The command (no shell).
    pub command_line: String,
    /// Its own environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_settings: Vec<EnvironmentSetting>,
    /// Wall clock, retention and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<crate::task::TaskConstraints>,
    /// Slots it takes when not `runExclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_slots: Option<u32>,
    /// Files fetched before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_files: Vec<crate::task::ResourceFile>,
    /// gangway: exclusive cores, memory and GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::task::TaskResources>,
    /// Whether its completion ends the job (`JMComplete`; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_job_on_completion: Option<bool>,
    /// Whether it has its node to itself (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_exclusive: Option<bool>,
}

impl JobManagerTask {
    /// Whether its completion ends the job.
    pub fn kills_job(&self) -> bool {
        self.kill_job_on_completion.unwrap_or(true)
    }

    /// The task it is, in a pool of `slots_per_node` slots: with `runExclusive` (the default)
    /// it takes every slot of its node.
    pub fn task(&self, slots_per_node: u32) -> crate::task::TaskAddParameter {
        crate::task::TaskAddParameter {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            command_line: self.command_line.clone(),
            environment_settings: self.environment_settings.clone(),
            constraints: self.constraints,
            required_slots: if self.run_exclusive.unwrap_or(true) { Some(slots_per_node) } else { self.required_slots },
            resource_files: self.resource_files.clone(),
            resources: self.resources.clone(),
            ..Default::default()
        }
    }
}

/// Job lifecycle state (see the reference's state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Tasks may be added and run.
    Active,
    /// Being disabled.
    Disabling,
    /// Nothing is scheduled.
    Disabled,
    /// Being re-enabled.
    Enabling,
    /// Running tasks are being killed.
    Terminating,
    /// Done; accepts no changes.
    Completed,
    /// Being deleted.
    Deleting,
}

/// `executionInfo` of a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionInformation {
    /// When the job was created (it starts at once).
    pub start_time: Option<Timestamp>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// The pool it runs on.
    pub pool_id: String,
    /// Why it ended: `UserTerminate`, `MaxWallClockTimeExpiry`, `AllTasksComplete`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_reason: Option<String>,
}

/// A job as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Current state.
    pub state: JobState,
    /// When it entered that state.
    pub state_transition_time: Timestamp,
    /// The state before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<JobState>,
    /// When it was created.
    pub creation_time: Timestamp,
    /// −1000..1000.
    pub priority: i32,
    /// Wall clock and retries.
    pub constraints: JobConstraints,
    /// Its pool.
    pub pool_info: PoolInformation,
    /// Terminate when all tasks complete?
    pub on_all_tasks_complete: OnAllTasksComplete,
    /// What a task failure does.
    pub on_task_failure: OnTaskFailure,
    /// Environment for every task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_environment_settings: Vec<EnvironmentSetting>,
    /// Whether its tasks may have `dependsOn`.
    #[serde(default)]
    pub uses_task_dependencies: bool,
    /// gangway: what happens to a task whose dependency can no longer be satisfied.
    #[serde(default)]
    pub on_dependency_blocked: crate::deps::OnDependencyBlocked,
    /// Its job manager task, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_manager_task: Option<JobManagerTask>,
    /// The job schedule that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_schedule_id: Option<String>,
    /// Its preparation task, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_preparation_task: Option<JobPreparationTask>,
    /// Its release task, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_release_task: Option<JobReleaseTask>,
    /// gangway: where its preparation and release tasks ran (`GET
    /// …/jobpreparationandreleasetaskstatus` shows it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prep_release: Vec<JobPreparationAndReleaseTaskExecutionInformation>,
    /// Start, end, reason.
    pub execution_info: JobExecutionInformation,
    /// For a job submitted with `sbatch`: what the Slurm front door needs of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<Box<crate::slurm::SlurmJobInfo>>,
    /// Who submitted it (a gangway extension); None on jobs from before owners were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// The user a job belongs to: only they (and admins) may change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Numeric uid.
    pub uid: u32,
    /// User name (the uid as a number when it has none).
    pub name: String,
}

/// `{"active", "running", "completed", "succeeded", "failed"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCounts {
    /// Waiting to run.
    pub active: u64,
    /// Running now.
    pub running: u64,
    /// Completed (succeeded + failed).
    pub completed: u64,
    /// Completed with result success.
    pub succeeded: u64,
    /// Completed with result failure.
    pub failed: u64,
}

/// The body of `GET /jobs/{id}/taskcounts`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCountsResult {
    /// Tasks by state.
    pub task_counts: TaskCounts,
    /// Task slots by state.
    pub task_slot_counts: TaskCounts,
}

/// The body of `POST /jobs/{id}/terminate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobTerminateParameter {
    /// Recorded as `executionInfo.terminateReason` (default `UserTerminate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_reason: Option<String>,
}

/// The body of `PATCH /jobs/{id}`: the properties given are changed, the rest kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobPatchParameter {
    /// New priority (−1000..1000); tasks not yet running move in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// New constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<JobConstraints>,
    /// New completion behaviour; `terminatejob` on a job whose tasks have all completed ends it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_all_tasks_complete: Option<OnAllTasksComplete>,
    /// New failure behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_task_failure: Option<OnTaskFailure>,
}

/// `disableTasks`: what happens to a job's running tasks when it is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisableJobOption {
    /// Kill them and put them back in the queue (no retry is counted).
    Requeue,
    /// Kill them; they complete, failed (`TaskTerminated`).
    Terminate,
    /// Let them finish.
    Wait,
}

/// The body of `POST /jobs/{id}/disable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobDisableParameter {
    /// What happens to the running tasks.
    pub disable_tasks: DisableJobOption,
}

/// The body of `PUT /jobs/{id}`: every updatable property replaced; those left out take their
/// defaults (priority 0, no constraints, `noaction`, which a `terminatejob` job refuses).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobUpdateParameter {
    /// The pool; another pool only while the job is disabled.
    pub pool_info: PoolInformation,
    /// −1000..1000 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Wall clock and retries (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<JobConstraints>,
    /// Completion behaviour (default `noaction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_all_tasks_complete: Option<OnAllTasksComplete>,
}

/// `jobPreparationTask`: run on a node before the job's first task there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobPreparationTask {
    /// Its id (default `jobpreparation`); no task of the job may have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The command (no shell).
    pub command_line: String,
    /// Its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_settings: Vec<EnvironmentSetting>,
    /// Files fetched before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_files: Vec<crate::task::ResourceFile>,
    /// Wall clock, retention and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<crate::task::TaskConstraints>,
    /// Whether the job's tasks on a node wait for it to succeed (default true); when it fails
    /// for good, the node runs none of the job's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_success: Option<bool>,
    /// Whether it runs again after its node restarts (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_on_node_reboot_after_success: Option<bool>,
}

impl JobPreparationTask {
    /// Its task id.
    pub fn task_id(&self) -> &str {
        self.id.as_deref().unwrap_or("jobpreparation")
    }
}

/// `jobReleaseTask`: run when the job ends, on every node that ran its preparation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobReleaseTask {
    /// Its id (default `jobrelease`); no task of the job may have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The command (no shell).
    pub command_line: String,
    /// Its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_settings: Vec<EnvironmentSetting>,
    /// Files fetched before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_files: Vec<crate::task::ResourceFile>,
    /// At most 15 minutes (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_clock_time: Option<IsoDuration>,
    /// How long its directory is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_time: Option<IsoDuration>,
}

impl JobReleaseTask {
    /// Its task id.
    pub fn task_id(&self) -> &str {
        self.id.as_deref().unwrap_or("jobrelease")
    }
}

/// The longest (and default) wall clock of a job release task.
pub const MAX_RELEASE_TIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `running` or `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobPrepReleaseState {
    /// Running.
    Running,
    /// Ended.
    Completed,
}

/// One run of a preparation or release task on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPrepReleaseExecution {
    /// Its state.
    pub state: JobPrepReleaseState,
    /// When its latest attempt started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Its directory on the node.
    pub task_root_directory: String,
    /// Exit code of its latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed beyond its exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_info: Option<crate::task::TaskFailureInformation>,
    /// Retries so far.
    pub retry_count: u32,
    /// success or failure, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::task::TaskExecutionResult>,
    /// gangway: the number of its latest attempt.
    #[serde(default)]
    pub attempt: u32,
}

/// One node's entry of `GET /jobs/{id}/jobpreparationandreleasetaskstatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPreparationAndReleaseTaskExecutionInformation {
    /// The pool.
    pub pool_id: String,
    /// The node.
    pub node_id: String,
    /// Its preparation task's run there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_preparation_task_execution_info: Option<JobPrepReleaseExecution>,
    /// Its release task's run there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_release_task_execution_info: Option<JobPrepReleaseExecution>,
}

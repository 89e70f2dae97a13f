//! Job schedules: jobs made from one specification at set times.

use serde::{Deserialize, Serialize};

use crate::common::EnvironmentSetting;
use crate::deps::OnDependencyBlocked;
use crate::job::{JobConstraints, JobManagerTask, OnAllTasksComplete, OnTaskFailure, Owner, PoolInformation};
use crate::time::{IsoDuration, Timestamp};

/// The shortest `recurrenceInterval` gangway takes (Azure's is a minute).
pub const MIN_RECURRENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// When a schedule makes jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// No job before this (default: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_run_until: Option<Timestamp>,
    /// No job after this; the schedule completes once it has passed and its job has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_run_after: Option<Timestamp>,
    /// How long after its time a job may still be made (default: until it can be); past it,
    /// that run is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_window: Option<IsoDuration>,
    /// Time between runs (absent: one run, then the schedule completes with its job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_interval: Option<IsoDuration>,
}

/// The job each run makes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpecification {
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// −1000..1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Wall clock and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<JobConstraints>,
    /// The pool.
    pub pool_info: PoolInformation,
    /// Terminate the job when all its tasks complete?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_all_tasks_complete: Option<OnAllTasksComplete>,
    /// What a task failure does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_task_failure: Option<OnTaskFailure>,
    /// Environment for every task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_environment_settings: Vec<EnvironmentSetting>,
    /// Whether its tasks may have `dependsOn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_task_dependencies: Option<bool>,
    /// gangway: what happens to a task whose dependency can no longer be satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_dependency_blocked: Option<OnDependencyBlocked>,
    /// The task that runs each job (how a scheduled job gets its work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_manager_task: Option<JobManagerTask>,
    /// Each job's preparation task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_preparation_task: Option<crate::job::JobPreparationTask>,
    /// Each job's release task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_release_task: Option<crate::job::JobReleaseTask>,
}

/// The body of `POST /jobschedules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobScheduleAddParameter {
    /// Schedule id (its jobs are `ID:job-N`).
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When.
    pub schedule: Schedule,
    /// What.
    pub job_specification: JobSpecification,
}

/// `{"active", "completed", "disabled", "terminating", "deleting"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobScheduleState {
    /// Making jobs.
    Active,
    /// Done: no more jobs.
    Completed,
    /// Making no jobs until enabled.
    Disabled,
    /// Its job is being terminated.
    Terminating,
    /// Being deleted.
    Deleting,
}

/// The latest job a schedule made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentJob {
    /// Its id.
    pub id: String,
}

/// `executionInfo` of a schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobScheduleExecutionInformation {
    /// When the next job is due (absent: no more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<Timestamp>,
    /// The latest job made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_job: Option<RecentJob>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
}

/// A job schedule as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSchedule {
    /// Id.
    pub id: String,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// State.
    pub state: JobScheduleState,
    /// When it entered it.
    pub state_transition_time: Timestamp,
    /// The state before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<JobScheduleState>,
    /// When it was created.
    pub creation_time: Timestamp,
    /// When.
    pub schedule: Schedule,
    /// What.
    pub job_specification: JobSpecification,
    /// Next run and latest job.
    pub execution_info: JobScheduleExecutionInformation,
    /// gangway: jobs made so far (the next is `ID:job-N+1`).
    #[serde(default)]
    pub jobs_created: u64,
    /// Who made it (only they and admins may change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// The body of `PATCH /jobschedules/{id}`: what is given is replaced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSchedulePatchParameter {
    /// New timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// New specification (for jobs made from now on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_specification: Option<JobSpecification>,
}

/// The body of `PUT /jobschedules/{id}`: both replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobScheduleUpdateParameter {
    /// New timing.
    pub schedule: Schedule,
    /// New specification.
    pub job_specification: JobSpecification,
}

//! Task dependencies and exit conditions (Azure Batch's `dependsOn` and `exitConditions`).

use serde::{Deserialize, Serialize};

/// Azure's limit on the combined length of a task's `dependsOn.taskIds`.
pub const MAX_TASK_IDS_CHARS: usize = 64_000;
/// gangway's limit on the ids a task's `dependsOn.taskIdRanges` may name in all.
pub const MAX_RANGE_IDS: u64 = 1_000_000;

/// `dependsOn`: the tasks of the same job this one waits for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDependencies {
    /// Task ids (at most 64,000 characters in all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_ids: Vec<String>,
    /// Inclusive ranges of integer task ids (leading zeros ignored: `007` is 7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_id_ranges: Vec<TaskIdRange>,
}

/// `{start, end}`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskIdRange {
    /// First id.
    pub start: i64,
    /// Last id.
    pub end: i64,
}

/// `jobAction`: what a task's completion does to its job (with the job's `onTaskFailure`
/// set to `performexitoptionsjobaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    /// Nothing.
    None,
    /// Disable the job (its running tasks are requeued).
    Disable,
    /// Terminate the job (reason `TaskFailed`).
    Terminate,
}

/// `dependencyAction`: whether a completion lets the task's dependents run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyAction {
    /// Dependents may run.
    Satisfy,
    /// Dependents keep waiting.
    Block,
}

/// `exitOptions`; an absent field takes Azure's default for the outcome: `none` and
/// `satisfy` after a success, `terminate` and `block` after anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitOptions {
    /// What happens to the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_action: Option<JobAction>,
    /// What happens to the dependents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_action: Option<DependencyAction>,
}

/// One exit code and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitCodeMapping {
    /// The exit code.
    pub code: i32,
    /// What it does.
    pub exit_options: ExitOptions,
}

/// A range of exit codes (both ends included) and what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitCodeRangeMapping {
    /// First code.
    pub start: i32,
    /// Last code.
    pub end: i32,
    /// What they do.
    pub exit_options: ExitOptions,
}

/// `exitConditions`: how a task's completion is treated, by how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitConditions {
    /// Single exit codes (looked at first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_codes: Vec<ExitCodeMapping>,
    /// Ranges of exit codes (looked at next, in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_code_ranges: Vec<ExitCodeRangeMapping>,
    /// The task could not start (a resource file, or its command, could not be had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_processing_error: Option<ExitOptions>,
    /// An output file could not be uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_upload_error: Option<ExitOptions>,
    /// Any other failure: a non-zero exit code not listed, an error above not given, a kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ExitOptions>,
}

/// Failure codes that mean the task never started (Azure's pre-processing errors).
pub const PRE_PROCESSING_CODES: &[&str] =
    &["ResourceFileDownloadFailed", "CommandNotFound", "CommandLaunchFailed", "ApplicationPackageFailed"];
/// The failure code of an output file that could not be uploaded.
pub const FILE_UPLOAD_CODE: &str = "FileUploadFailed";

/// What a completion does, every default applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// To the job.
    pub job_action: JobAction,
    /// To the dependents.
    pub dependency_action: DependencyAction,
}

impl ExitConditions {
    /// The options that apply to a completion with `exit_code` and the failure code
    /// `failure` (None: no failure), with Azure's defaults for what they leave out.
    pub fn outcome(conditions: Option<&ExitConditions>, exit_code: Option<i32>, failure: Option<&str>) -> Outcome {
        let success = exit_code == Some(0) && failure.is_none();
        let chosen = conditions.and_then(|c| c.options_for(exit_code, failure, success));
        let (job, dependency) = if success {
            (JobAction::None, DependencyAction::Satisfy)
        } else {
            (JobAction::Terminate, DependencyAction::Block)
        };
        Outcome {
            job_action: chosen.and_then(|o| o.job_action).unwrap_or(job),
            dependency_action: chosen.and_then(|o| o.dependency_action).unwrap_or(dependency),
        }
    }

    fn options_for(&self, exit_code: Option<i32>, failure: Option<&str>, success: bool) -> Option<ExitOptions> {
        let listed = |code: i32| {
            let exact = self.exit_codes.iter().find(|m| m.code == code).map(|m| m.exit_options);
            exact.or_else(|| {
                self.exit_code_ranges.iter().find(|r| (r.start..=r.end).contains(&code)).map(|r| r.exit_options)
            })
        };
        match (failure, exit_code) {
            (Some(f), _) if PRE_PROCESSING_CODES.contains(&f) => self.pre_processing_error.or(self.default),
            (Some(FILE_UPLOAD_CODE), _) => self.file_upload_error.or(self.default),
            (_, Some(code)) => listed(code).or(if success { None } else { self.default }),
            (_, None) => self.default,
        }
    }

    /// Whether any of its options names a job action.
    pub fn has_job_action(&self) -> bool {
        let mut all = self.exit_codes.iter().map(|m| m.exit_options);
        let mut ranges = self.exit_code_ranges.iter().map(|r| r.exit_options);
        let rest = [self.pre_processing_error, self.file_upload_error, self.default];
        all.any(|o| o.job_action.is_some())
            || ranges.any(|o| o.job_action.is_some())
            || rest.iter().flatten().any(|o| o.job_action.is_some())
    }

    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.exit_code_ranges.iter().enumerate() {
            if r.start > r.end {
                return Err(format!(
                    "exitConditions.exitCodeRanges[{i}]: start ({}) is above end ({})",
                    r.start, r.end
                ));
            }
        }
        Ok(())
    }
}

/// gangway, read only: why a task with `dependsOn` has not been queued yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    /// `waiting` (parents still to complete) or `blocked` (a parent's completion blocks it).
    pub state: String,
    /// In words, naming a parent.
    pub reason: String,
}

/// gangway: what happens to a task whose dependency can no longer be satisfied (a parent
/// completed with `dependencyAction: block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDependencyBlocked {
    /// It stays active, blocked, as in Azure Batch (a reactivated parent may still free it).
    #[default]
    NoAction,
    /// It completes, failed (`DependencyBlocked`, naming the parent), and so do its own
    /// dependents in turn.
    FailTask,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(job: Option<JobAction>, dep: Option<DependencyAction>) -> ExitOptions {
        ExitOptions { job_action: job, dependency_action: dep }
    }

    #[test]
    fn azure_defaults_without_exit_conditions() {
        let o = ExitConditions::outcome(None, Some(0), None);
        assert_eq!((o.job_action, o.dependency_action), (JobAction::None, DependencyAction::Satisfy));
        let o = ExitConditions::outcome(None, Some(3), Some("FailureExitCode"));
        assert_eq!((o.job_action, o.dependency_action), (JobAction::Terminate, DependencyAction::Block));
        let o = ExitConditions::outcome(None, None, Some("TaskEnded"));
        assert_eq!((o.job_action, o.dependency_action), (JobAction::Terminate, DependencyAction::Block));
    }

    #[test]
    fn codes_then_ranges_then_default() {
        let c = ExitConditions {
            exit_codes: vec![ExitCodeMapping { code: 4, exit_options: opts(Some(JobAction::None), None) }],
            exit_code_ranges: vec![
                ExitCodeRangeMapping { start: 2, end: 5, exit_options: opts(None, Some(DependencyAction::Satisfy)) },
                ExitCodeRangeMapping { start: 3, end: 3, exit_options: opts(Some(JobAction::Disable), None) },
            ],
            default: Some(opts(Some(JobAction::Disable), None)),
            ..Default::default()
        };
        let at = |code, failure| ExitConditions::outcome(Some(&c), code, failure);
        // Exit 3: the first matching range; its missing jobAction is the failure default.
        assert_eq!(at(Some(3), Some("FailureExitCode")).dependency_action, DependencyAction::Satisfy);
        assert_eq!(at(Some(3), Some("FailureExitCode")).job_action, JobAction::Terminate);
        // Exit 4: the single code wins over the range.
        let o = at(Some(4), Some("FailureExitCode"));
        assert_eq!((o.job_action, o.dependency_action), (JobAction::None, DependencyAction::Block));
        // Exit 9 and a kill: the default.
        assert_eq!(at(Some(9), Some("FailureExitCode")).job_action, JobAction::Disable);
        assert_eq!(at(None, Some("TaskTerminated")).job_action, JobAction::Disable);
        // A success not listed keeps the success defaults, whatever `default` says.
        let o = at(Some(0), None);
        assert_eq!((o.job_action, o.dependency_action), (JobAction::None, DependencyAction::Satisfy));
    }

    #[test]
    fn pre_processing_and_upload_errors_fall_back_to_default() {
        let pre = opts(None, Some(DependencyAction::Satisfy));
        let c = ExitConditions {
            pre_processing_error: Some(pre),
            default: Some(opts(Some(JobAction::None), None)),
            ..Default::default()
        };
        let o = ExitConditions::outcome(Some(&c), None, Some("ResourceFileDownloadFailed"));
        assert_eq!((o.job_action, o.dependency_action), (JobAction::Terminate, DependencyAction::Satisfy));
        let o = ExitConditions::outcome(Some(&c), Some(0), Some(FILE_UPLOAD_CODE));
        assert_eq!((o.job_action, o.dependency_action), (JobAction::None, DependencyAction::Block));
        assert!(c.has_job_action());
        assert!(!ExitConditions { pre_processing_error: Some(pre), ..Default::default() }.has_job_action());
    }

    #[test]
    fn a_backwards_range_is_named() {
        let c = ExitConditions {
            exit_code_ranges: vec![ExitCodeRangeMapping { start: 5, end: 1, exit_options: ExitOptions::default() }],
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err(), "exitConditions.exitCodeRanges[0]: start (5) is above end (1)");
    }
}

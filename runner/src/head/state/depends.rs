//! The head's side of the dependency engine ([`super::deps`]): what Azure's `dependsOn` and
//! Slurm's `--dependency` register, how a task's moves reach its dependents, and what a
//! verdict does.
//!
//! - Satisfied: the task is queued (a Slurm job still passes its hold, begin time and array
//!   limit first).
//! - Never (a parent completed with `dependencyAction: block`, or Slurm's `afterok` parent
//!   failed): the task stays active and shows why (Azure; Slurm's `DependencyNeverSatisfied`),
//!   unless its job says to end it (`onDependencyBlocked: failtask`, `sbatch
//!   --kill-on-invalid-dep=yes`): then it completes, failed with `DependencyBlocked`, and its
//!   own dependents are judged in turn, from a work list rather than by recursion.

use std::collections::HashSet;

use gangway_api::slurm::{SlurmDependency, SlurmJobInfo};
use gangway_api::*;

use super::deps::{Change, Condition, Kind, Name, Parent, Progress, Verdict};
use super::slurm::BATCH_TASK;
use super::{alloc::millis, Effects, HeadState, JobRec, Timer};
use crate::head::error::ApiError;
use crate::scheduler::TaskKey;

/// The failure code of a task ended because its dependency can never be satisfied.
pub const DEPENDENCY_BLOCKED: &str = "DependencyBlocked";

/// How far a task has got, as its dependents see it.
pub(crate) fn progress_of(t: &Task) -> Progress {
    let started = |t: &Task| t.execution_info.start_time.map_or(0, millis);
    match t.state {
        TaskState::Active => Progress::Waiting,
        TaskState::Running | TaskState::Preparing => Progress::Started(started(t)),
        TaskState::Completed => {
            let info = &t.execution_info;
            let failure = info.failure_info.as_ref().map(|f| f.code.as_str());
            let outcome = ExitConditions::outcome(t.exit_conditions.as_ref(), info.exit_code, failure);
            Progress::Ended { ok: outcome.dependency_action == DependencyAction::Satisfy, started: started(t) }
        }
    }
}

fn cycle(task: &str, how: &str) -> ApiError {
    ApiError::invalid_code("TaskDependencyCycle", format!("task '{task}' {how}: dependencies must not form a cycle"))
}

impl HeadState {
    /// Checks a new task's `dependsOn` and `exitConditions` against its job; changes nothing.
    pub(crate) fn check_dependencies(&self, j: &JobRec, p: &TaskAddParameter) -> Result<(), ApiError> {
        if let Some(c) = &p.exit_conditions {
            c.validate().map_err(ApiError::invalid)?;
            if c.has_job_action() && j.wire.on_task_failure == OnTaskFailure::NoAction {
                return Err(ApiError::invalid(format!(
                    "exitConditions names a jobAction, but job '{}' has onTaskFailure noaction, so it would never \
                     act: create (or patch) the job with onTaskFailure performexitoptionsjobaction",
                    j.wire.id
                )));
            }
        }
        let Some(d) = &p.depends_on else { return Ok(()) };
        if !j.wire.uses_task_dependencies {
            return Err(ApiError::conflict(
                "TaskDependenciesNotSpecifiedOnJob",
                format!(
                    "task '{}' has dependsOn, but job '{}' was not created with usesTaskDependencies: true",
                    p.id, j.wire.id
                ),
            ));
        }
        let chars: usize = d.task_ids.iter().map(String::len).sum();
        if chars > MAX_TASK_IDS_CHARS {
            return Err(ApiError::invalid_code(
                "TaskDependencyListTooLong",
                format!(
                    "dependsOn.taskIds is {chars} characters long; at most {MAX_TASK_IDS_CHARS} are allowed \
                     (use taskIdRanges for long runs of integer ids)"
                ),
            ));
        }
        for id in &d.task_ids {
            gangway_api::common::validate_id("task", id)
                .map_err(|e| ApiError::invalid(format!("dependsOn.taskIds: {e}")))?;
        }
        let mut span = 0u64;
        for (i, r) in d.task_id_ranges.iter().enumerate() {
            if r.start < 0 || r.end < r.start {
                return Err(ApiError::invalid(format!(
                    "dependsOn.taskIdRanges[{i}] is {}..{}: it needs 0 <= start <= end",
                    r.start, r.end
                )));
            }
            span += (r.end - r.start) as u64 + 1;
        }
        if span > MAX_RANGE_IDS {
            return Err(ApiError::invalid(format!(
                "dependsOn.taskIdRanges name {span} task ids; at most {MAX_RANGE_IDS} are allowed"
            )));
        }
        let me = super::deps::id_number(&p.id);
        let in_ranges = |n: u64| d.task_id_ranges.iter().any(|r| (r.start as u64..=r.end as u64).contains(&n));
        if d.task_ids.contains(&p.id) || me.is_some_and(in_ranges) {
            return Err(cycle(&p.id, "depends on itself"));
        }
        // Only a task that others already wait for, by name, can close a cycle.
        if self.deps.is_named(j.seq, &p.id) {
            let mut parents: HashSet<TaskKey> =
                d.task_ids.iter().filter_map(|id| j.tasks.get(id)).map(|t| t.key).collect();
            for r in &d.task_id_ranges {
                parents.extend((r.start as u64..=r.end as u64).filter_map(|n| self.deps.numbered(j.seq, n)));
            }
            if self.deps.would_cycle(j.seq, &p.id, &parents) {
                return Err(cycle(&p.id, "depends on a task that already waits for it"));
            }
        }
        Ok(())
    }

    /// A task was added (or restored): it may be the parent some waiters named before it
    /// existed.
    pub(crate) fn dependency_parent_added(&mut self, job: &str, task: &str) {
        let Some(j) = self.jobs.get(job) else { return };
        let Some(t) = j.tasks.get(task) else { return };
        self.deps.added(j.seq, task, t.key, j.wire.uses_task_dependencies);
    }

    /// Registers the dependencies of a task of `job` (its `dependsOn`, or its Slurm job's
    /// `--dependency`), if it has any, and acts on the verdict. Returns whether it may be
    /// queued now.
    pub(crate) fn register_dependencies(&mut self, job: &str, task: &str, fx: &mut Effects) -> bool {
        let Some(j) = self.jobs.get(job) else { return false };
        let Some(t) = j.tasks.get(task) else { return false };
        let key = t.key;
        let (any, conditions) = if let Some(d) = &t.wire.depends_on {
            (false, vec![self.azure_condition(j, d)])
        } else if let Some(s) = j.wire.slurm.as_deref() {
            let Some(dep) = &s.request.dependency else { return true };
            (dep.any, self.slurm_conditions(s, dep))
        } else {
            return true;
        };
        let now = millis(Timestamp::now());
        match self.deps.register(key, any, conditions, now) {
            Verdict::Satisfied => true,
            Verdict::Waiting => {
                if let Some(at) = self.deps.wake_at(key, now) {
                    self.dependency_wake(key, at, fx);
                }
                false
            }
            Verdict::Never => {
                self.dep_pending.push_back(key);
                self.settle_dependencies(fx);
                false
            }
        }
    }

    fn azure_condition(&self, j: &JobRec, d: &TaskDependencies) -> Condition {
        let mut parents = Vec::with_capacity(d.task_ids.len());
        for id in &d.task_ids {
            parents.push(match j.tasks.get(id) {
                Some(t) => Parent::Task(t.key, progress_of(&t.wire)),
                None => Parent::Missing(Name::Id(j.seq, id.clone())),
            });
        }
        for r in &d.task_id_ranges {
            for n in r.start as u64..=r.end as u64 {
                let found = self.deps.numbered(j.seq, n).and_then(|k| self.task_by_key(k).map(|t| (k, t)));
                parents.push(match found {
                    Some((k, t)) => Parent::Task(k, progress_of(t)),
                    None => Parent::Missing(Name::Number(j.seq, n)),
                });
            }
        }
        Condition { kind: Kind::Ok, parents }
    }

    /// Slurm's conditions as the engine's: each names its jobs' batch tasks (every element
    /// of an array, or one); a job no longer known counts as ended successfully.
    fn slurm_conditions(&self, me: &SlurmJobInfo, dep: &SlurmDependency) -> Vec<Condition> {
        let batch = |id: u64| {
            let t = self.jobs.get(&id.to_string()).and_then(|j| j.tasks.get(BATCH_TASK));
            t.map_or(Parent::Gone { ok: true }, |t| Parent::Task(t.key, progress_of(&t.wire)))
        };
        let mut out = Vec::with_capacity(dep.conditions.len());
        for c in &dep.conditions {
            if c.kind == "singleton" {
                // Every earlier job of the same name and user that has not ended.
                let (name, uid) = (&me.request.name, me.request.uid);
                let parents =
                    self.jobs
                        .values()
                        .filter(|j| {
                            j.wire.slurm.as_deref().is_some_and(|s| {
                                s.job_id < me.job_id && s.request.name == *name && s.request.uid == uid
                            })
                        })
                        .filter_map(|j| j.tasks.get(BATCH_TASK))
                        .filter(|t| t.wire.state != TaskState::Completed)
                        .map(|t| Parent::Task(t.key, progress_of(&t.wire)))
                        .collect();
                out.push(Condition { kind: Kind::Any, parents });
                continue;
            }
            let kind = match c.kind.as_str() {
                "after" => Kind::Started { delay_ms: 60_000 * u64::from(c.delay_minutes.unwrap_or(0)) },
                "afterok" | "aftercorr" => Kind::Ok,
                "afternotok" => Kind::NotOk,
                // afterany, afterburstbuffer (no burst buffers: the same as afterany).
                _ => Kind::Any,
            };
            let Some(id) = c.job_id else {
                out.push(Condition { kind, parents: Vec::new() });
                continue;
            };
            // The jobs waited on: one job, one array element, or every element of an array.
            let index = match (c.kind.as_str(), c.array_task) {
                ("aftercorr", None) => me.array_task_id,
                (_, i) => i,
            };
            // A job that does not exist (or no longer) counts as met, whatever the kind, as
            // in Slurm 22.05.
            if !self.slurm.arrays.contains_key(&id) && !self.jobs.contains_key(&id.to_string()) {
                out.push(Condition { kind: Kind::Any, parents: Vec::new() });
                continue;
            }
            let parents = match (self.slurm.arrays.get(&id), index) {
                (Some(elements), Some(i)) => elements
                    .iter()
                    .filter(|e| self.slurm_info(**e).and_then(|s| s.array_task_id) == Some(i))
                    .map(|e| batch(*e))
                    .collect(),
                (Some(elements), None) => elements.iter().map(|e| batch(*e)).collect(),
                (None, _) => vec![batch(id)],
            };
            out.push(Condition { kind, parents });
        }
        out
    }

    pub(crate) fn task_by_key(&self, key: TaskKey) -> Option<&Task> {
        let (job, task) = self.task_index.get(&key)?;
        Some(&self.jobs.get(job)?.tasks.get(task)?.wire)
    }

    /// Task `key` moved (started, ended, back to waiting): its dependents are told, and those
    /// whose verdict changed are acted on.
    pub(crate) fn dependency_moved(&mut self, key: TaskKey, fx: &mut Effects) {
        if !self.deps.has_dependents(key) {
            return;
        }
        let Some(progress) = self.task_by_key(key).map(progress_of) else { return };
        self.dependency_progress(key, progress, fx);
    }

    /// Parent `key` is at `progress` (also for a parent about to be forgotten).
    pub(crate) fn dependency_progress(&mut self, key: TaskKey, progress: Progress, fx: &mut Effects) {
        let mut changes = std::mem::take(&mut self.dep_changes);
        self.deps.moved(key, progress, millis(Timestamp::now()), &mut changes);
        for c in changes.drain(..) {
            match c {
                Change::Verdict(task, _) => self.dep_pending.push_back(task),
                Change::Wake(task, at) => self.dependency_wake(task, at, fx),
            }
        }
        self.dep_changes = changes;
        self.settle_dependencies(fx);
    }

    /// Arms the wake-up of a Slurm job waiting for an `after:N+MIN` delay.
    fn dependency_wake(&mut self, key: TaskKey, at_ms: u64, fx: &mut Effects) {
        let Some(id) = self.task_index.get(&key).and_then(|(job, _)| job.parse::<u64>().ok()) else { return };
        let at = Timestamp(at_ms as i64 * 1000);
        fx.timers.push(Timer::SlurmBegin { job: id, at });
    }

    /// A timer fired for task `key`: a delay it waits for may have run out.
    pub(crate) fn dependency_recheck(&mut self, key: TaskKey, fx: &mut Effects) {
        if self.deps.recheck(key, millis(Timestamp::now())).is_some() {
            self.dep_pending.push_back(key);
            self.settle_dependencies(fx);
        }
    }

    /// Acts on the waiters whose verdict changed, until none is left (a failed dependent's
    /// own dependents join the list; nothing recurses).
    fn settle_dependencies(&mut self, fx: &mut Effects) {
        if self.dep_settling {
            return;
        }
        self.dep_settling = true;
        while let Some(key) = self.dep_pending.pop_front() {
            match self.deps.verdict(key) {
                Some(Verdict::Satisfied) => {
                    self.deps.remove(key);
                    self.dependency_met(key, fx);
                }
                Some(Verdict::Never) => self.dependency_never(key, fx),
                _ => {}
            }
        }
        self.dep_settling = false;
    }

    fn dependency_met(&mut self, key: TaskKey, fx: &mut Effects) {
        let Some((job, task)) = self.task_index.get(&key).cloned() else { return };
        if let Some(j) = self.jobs.get_mut(&job) {
            if let Some(s) = j.wire.slurm.as_mut() {
                s.eligible_time = Some(Timestamp::now());
                HeadState::put_job(j, fx);
            }
        }
        self.enqueue(&job, &task, fx);
    }

    /// A dependency that can no longer be met: the task ends if its job says so, else waits.
    fn dependency_never(&mut self, key: TaskKey, fx: &mut Effects) {
        let Some((job, _)) = self.task_index.get(&key) else { return };
        let Some(j) = self.jobs.get(job) else { return };
        let end = match j.wire.slurm.as_deref() {
            Some(s) => s.request.kill_on_invalid_dep,
            None => j.wire.on_dependency_blocked == OnDependencyBlocked::FailTask,
        };
        if !end || !matches!(j.wire.state, JobState::Active | JobState::Disabling | JobState::Disabled) {
            return;
        }
        let reason = self.dependency_status(key).map(|s| s.reason).unwrap_or_default();
        self.deps.remove(key);
        let failure = TaskFailureInformation {
            category: ErrorCategory::UserError,
            code: DEPENDENCY_BLOCKED.into(),
            message: reason,
        };
        self.complete_task(key, None, Some(failure), Timestamp::now(), fx);
    }

    /// Why task `key` waits for its dependencies, while it does.
    pub(crate) fn dependency_status(&self, key: TaskKey) -> Option<DependencyStatus> {
        let verdict = self.deps.verdict(key)?;
        let culprit = self.deps.culprit(key);
        let name = match &culprit {
            Some(Ok(k)) => match self.task_index.get(k) {
                Some((job, task))
                    if task == BATCH_TASK && self.jobs.get(job).is_some_and(|j| j.wire.slurm.is_some()) =>
                {
                    format!("job {job}")
                }
                Some((_, task)) => format!("task '{task}'"),
                None => "a task no longer known".into(),
            },
            Some(Err(Name::Id(_, id))) => format!("task '{id}', which does not exist yet"),
            Some(Err(Name::Number(_, n))) => format!("task {n} (of a taskIdRange), which does not exist yet"),
            None => String::new(),
        };
        let outcome = match culprit {
            Some(Ok(k)) => self.task_by_key(k).map(|t| {
                let info = &t.execution_info;
                match (info.exit_code, &info.failure_info) {
                    (Some(c), _) => format!("exit code {c}"),
                    (None, Some(f)) => f.code.clone(),
                    (None, None) => "no exit code".into(),
                }
            }),
            _ => None,
        };
        let (open, all) = self.deps.open_parents(key).unwrap_or((0, 0));
        Some(match verdict {
            Verdict::Never if name.is_empty() => {
                DependencyStatus { state: "blocked".into(), reason: "its dependency can never be satisfied".into() }
            }
            Verdict::Never => DependencyStatus {
                state: "blocked".into(),
                reason: format!(
                    "parent {name} completed ({}) in a way that blocks its dependents",
                    outcome.unwrap_or_default()
                ),
            },
            _ if name.is_empty() => {
                DependencyStatus { state: "waiting".into(), reason: "waiting for its dependency".into() }
            }
            _ => DependencyStatus {
                state: "waiting".into(),
                reason: format!("waiting for {open} of {all} parent(s), {name} among them"),
            },
        })
    }

    /// A job is being forgotten: its tasks stop waiting, and count as ended successfully for
    /// whatever waits on them from other jobs (Slurm's view of a purged job).
    pub(crate) fn dependency_job_gone(&mut self, job: &str, fx: &mut Effects) {
        let Some(j) = self.jobs.get(job) else { return };
        let seq = j.seq;
        let tasks: Vec<(TaskKey, String, u64)> = j
            .tasks
            .values()
            .map(|t| (t.key, t.wire.id.clone(), t.wire.execution_info.start_time.map_or(0, millis)))
            .collect();
        for (key, id, _) in &tasks {
            self.deps.remove(*key);
            self.deps.forget_number(seq, id);
        }
        for (key, _, started) in tasks {
            if self.deps.has_dependents(key) {
                self.dependency_progress(key, Progress::Ended { ok: true, started }, fx);
            }
        }
    }
}

//! Queue control of single tasks and whole-job updates: `PUT /jobs/{id}` (every updatable
//! property replaced), and a task's `PUT` (its constraints), `reactivate` and `DELETE`.
//!
//! Slurm jobs are left to the Slurm front door (`scontrol`, `scancel`): these refuse them.

use gangway_api::*;

use super::depends::progress_of;
use super::deps::Progress;
use super::resources::{job_not_found, pool_not_found, task_not_found, DEFAULT_RETENTION};
use super::{set_task_state, Effects, HeadState};
use crate::head::error::ApiError;
use crate::scheduler::Event;
use crate::store::Write;

fn slurm_job(job: &str, what: &str) -> ApiError {
    ApiError::conflict(
        "SlurmJob",
        format!("job '{job}' is a Slurm job: {what} it through the Slurm commands (scontrol, scancel)"),
    )
}

impl HeadState {
    /// `PUT /jobs/{id}`: replaces priority, constraints and completion behaviour (absent ones
    /// take their defaults) and, while the job is disabled, its pool.
    pub fn update_job(&mut self, id: &str, p: JobUpdateParameter, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| job_not_found(id))?;
        if j.wire.slurm.is_some() {
            return Err(slurm_job(id, "change"));
        }
        let pool = p.pool_info.pool_id;
        let move_pool = pool != j.wire.pool_info.pool_id;
        if move_pool {
            if !self.pools.contains_key(&pool) {
                return Err(pool_not_found(&pool));
            }
            if j.wire.state != JobState::Disabled {
                return Err(ApiError::conflict(
                    "JobNotDisabled",
                    format!("job '{id}' can move to pool '{pool}' only while it is disabled"),
                ));
            }
        }
        let patch = JobPatchParameter {
            priority: Some(p.priority.unwrap_or(0)),
            constraints: Some(p.constraints.unwrap_or_default()),
            on_all_tasks_complete: Some(p.on_all_tasks_complete.unwrap_or_default()),
            on_task_failure: None,
        };
        self.patch_job(id, patch, fx)?;
        if move_pool {
            let j = self.jobs.get_mut(id).expect("checked");
            j.wire.pool_info.pool_id = pool.clone();
            j.wire.execution_info.pool_id = pool;
            HeadState::put_job(j, fx);
        }
        Ok(())
    }

    /// `PUT /jobs/{id}/tasks/{tid}`: new constraints for a task that has not completed (a
    /// running attempt keeps the wall clock it started with; the next attempt takes the new).
    pub fn update_task(
        &mut self,
        job: &str,
        task: &str,
        p: TaskUpdateParameter,
        fx: &mut Effects,
    ) -> Result<(), ApiError> {
        let j = self.jobs.get(job).ok_or_else(|| job_not_found(job))?;
        let t = j.tasks.get(task).ok_or_else(|| task_not_found(job, task))?;
        if j.wire.slurm.is_some() {
            return Err(slurm_job(job, "change"));
        }
        if t.wire.state == TaskState::Completed {
            return Err(ApiError::conflict("TaskCompleted", format!("task '{task}' has completed and cannot change")));
        }
        let mut c = p.constraints.unwrap_or_default();
        super::resources::check_retry_count(c.max_task_retry_count, "constraints.maxTaskRetryCount")?;
        let pool =
            self.pools.get(&j.wire.pool_info.pool_id).ok_or_else(|| pool_not_found(&j.wire.pool_info.pool_id))?;
        super::alloc::check_time_limit(&pool.wire, c.max_wall_clock_time, "maxWallClockTime")?;
        c.max_task_retry_count = Some(c.max_task_retry_count.or(j.wire.constraints.max_task_retry_count).unwrap_or(0));
        c.retention_time.get_or_insert(IsoDuration(DEFAULT_RETENTION));
        let (key, queued) = (t.key, t.wire.state == TaskState::Active);
        let j = self.jobs.get_mut(job).expect("checked");
        let t = j.tasks.get_mut(task).expect("checked");
        t.wire.constraints = c;
        HeadState::put_task(job, t, fx);
        if queued {
            // The scheduler plans with its time limit: queue it again with the new one.
            self.sched_event(Event::TaskWithdrawn { task: key }, fx);
            self.enqueue(job, task, fx);
        }
        Ok(())
    }

    /// `POST /jobs/{id}/tasks/{tid}/reactivate`: a failed task runs again, its retry count
    /// reset. Its dependents blocked by its failure wait again, and a task failed because its
    /// own dependency was blocked waits for that dependency again.
    pub fn reactivate_task(&mut self, job: &str, task: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(job).ok_or_else(|| job_not_found(job))?;
        let t = j.tasks.get(task).ok_or_else(|| task_not_found(job, task))?;
        if j.wire.slurm.is_some() {
            return Err(slurm_job(job, "requeue"));
        }
        if !matches!(j.wire.state, JobState::Active | JobState::Disabling | JobState::Disabled) {
            return Err(ApiError::conflict(
                "JobNotActive",
                format!("job '{job}' has ended; its tasks cannot be reactivated"),
            ));
        }
        let failed = t.wire.execution_info.result == Some(TaskExecutionResult::Failure);
        if t.wire.state != TaskState::Completed || !failed {
            return Err(ApiError::conflict(
                "TaskNotReactivatable",
                format!("task '{task}' is {}; only a completed task that failed can be reactivated", describe(&t.wire)),
            ));
        }
        let key = t.key;
        let j = self.jobs.get_mut(job).expect("checked");
        j.completed -= 1;
        let t = j.tasks.get_mut(task).expect("checked");
        set_task_state(&mut t.wire, TaskState::Active, Timestamp::now());
        let info = &mut t.wire.execution_info;
        info.retry_count = 0;
        info.last_retry_time = None;
        info.exit_code = None;
        info.failure_info = None;
        info.result = None;
        info.end_time = None;
        HeadState::put_task(job, t, fx);
        self.dependency_moved(key, fx);
        if self.register_dependencies(job, task, fx) {
            self.enqueue(job, task, fx);
        }
        Ok(())
    }

    /// `DELETE /jobs/{id}/tasks/{tid}`: a running task is killed; its files on its node are
    /// removed. What waits on it and has not been satisfied by it is blocked.
    pub fn delete_task(&mut self, job: &str, task: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(job).ok_or_else(|| job_not_found(job))?;
        let t = j.tasks.get(task).ok_or_else(|| task_not_found(job, task))?;
        if j.wire.slurm.is_some() {
            return Err(slurm_job(job, "cancel"));
        }
        let (key, state, seq) = (t.key, t.wire.state, j.seq);
        let progress = progress_of(&t.wire);
        match state {
            TaskState::Active => self.sched_event(Event::TaskWithdrawn { task: key }, fx),
            TaskState::Running | TaskState::Preparing => {
                if let Some(attempt) = self.attempt_of(key) {
                    self.deleted.insert(key, attempt);
                }
                self.kill_task(key, "TaskDeleted", fx);
            }
            TaskState::Completed => {}
        }
        self.deps.remove(key);
        self.deps.forget_number(seq, task);
        let j = self.jobs.get_mut(job).expect("checked");
        let t = j.tasks.remove(task).expect("checked");
        match state {
            TaskState::Running | TaskState::Preparing => j.running -= 1,
            TaskState::Completed => j.completed -= 1,
            TaskState::Active => {}
        }
        self.task_index.remove(&key);
        fx.writes.push(Write::DeleteTask { job: job.to_owned(), id: task.to_owned() });
        if let Some(node) = t.wire.node_info.as_ref().map(|n| &n.node_id) {
            if let Some(conn) = self.nodes.get(node).and_then(|n| n.conn.as_ref()) {
                let msg =
                    gangway_api::messages::HeadMessage::RemoveTaskDir { job: job.to_owned(), task: task.to_owned() };
                fx.sends.push((conn.tx.clone(), msg));
            }
        }
        if self.deps.has_dependents(key) && !matches!(progress, Progress::Ended { ok: true, .. }) {
            let started = t.wire.execution_info.start_time.map_or(0, super::alloc::millis);
            self.dependency_progress(key, Progress::Ended { ok: false, started }, fx);
        }
        let j = self.jobs.get(job).expect("checked");
        let all_done = j.completed == j.tasks.len();
        if all_done
            && j.wire.state == JobState::Active
            && j.wire.on_all_tasks_complete == OnAllTasksComplete::TerminateJob
        {
            self.end_job(job, "AllTasksComplete".into(), fx);
        } else if j.wire.state == JobState::Terminating {
            self.maybe_complete_job(job, fx);
        } else {
            self.maybe_disabled(job, fx);
        }
        Ok(())
    }
}

fn describe(t: &Task) -> &'static str {
    match t.state {
        TaskState::Completed => "completed and succeeded",
        s => s.as_str(),
    }
}

//! Changing Slurm jobs after submission: `scancel`, `scontrol hold|release|update|requeue`.
//! Every operation checks first and changes nothing when it refuses.

use gangway_api::slurm::{SlurmCancel, SlurmCancelled, SlurmJobState, SlurmStep, SlurmUpdate};
use gangway_api::*;

use super::slurm::BATCH_TASK;
use super::{set_task_state, Effects, HeadState};
use crate::head::error::ApiError;
use crate::head::identity::Caller;
use crate::scheduler::Event;

/// The kill reason of `scontrol requeue`: the task's end puts the job back in the queue.
pub const REQUEUE_REASON: &str = "SlurmRequeued";

/// Signal 9: `scancel --signal=KILL` cancels the job.
const SIGKILL: i32 = 9;

fn invalid_job_id(spec: &str) -> ApiError {
    ApiError::not_found("InvalidJobId", format!("Invalid job id specified: {spec}"))
}

fn not_pending(id: u64) -> ApiError {
    ApiError::conflict("JobNotPending", format!("Job is no longer pending execution: {id}"))
}

/// The most steps one job keeps a record of.
pub const MAX_STEPS: usize = 10_000;

impl HeadState {
    /// The Slurm jobs `spec` names: `N` (a job, or every element of array `N`) or `N_i`.
    pub(crate) fn slurm_resolve(&self, spec: &str) -> Option<Vec<u64>> {
        let (id, index) = match spec.split_once('_') {
            Some((id, i)) => (id.parse::<u64>().ok()?, Some(i.parse::<u32>().ok()?)),
            None => (spec.parse::<u64>().ok()?, None),
        };
        if let Some(elements) = self.slurm.arrays.get(&id) {
            let picked: Vec<u64> = elements
                .iter()
                .copied()
                .filter(|e| index.is_none() || self.slurm_info(*e).and_then(|s| s.array_task_id) == index)
                .collect();
            return (!picked.is_empty()).then_some(picked);
        }
        // An element may also be named by its own id; `N_i` needs the array's id.
        (index.is_none() && self.slurm_info(id).is_some()).then(|| vec![id])
    }

    /// `POST /slurm/cancel`: pending jobs are cancelled at once, running ones killed; with a
    /// signal, running jobs are sent it and pending ones left as they are.
    pub fn slurm_cancel(&mut self, c: SlurmCancel, caller: &Caller, fx: &mut Effects) -> SlurmCancelled {
        let mut out = SlurmCancelled::default();
        let mut candidates: Vec<u64> = Vec::new();
        if c.jobs.is_empty() {
            candidates.extend(self.jobs.values().filter_map(|j| j.wire.slurm.as_ref().map(|s| s.job_id)));
        }
        for spec in &c.jobs {
            match self.slurm_resolve(spec) {
                // Named (not only filtered for): another user's is refused, not passed over.
                Some(ids) => candidates.extend(ids),
                None => out.invalid.push(spec.clone()),
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for id in candidates {
            let Some(info) = self.slurm_info(id) else { continue };
            let r = &info.request;
            let matches = c.user.as_ref().is_none_or(|u| *u == r.user || *u == r.uid.to_string())
                && c.name.as_ref().is_none_or(|n| *n == r.name)
                && c.partition.as_ref().is_none_or(|p| Some(p) == r.partition.as_ref());
            if !matches {
                continue;
            }
            if self.may_change_job(caller, &id.to_string()).is_err() {
                if !c.jobs.is_empty() {
                    out.denied.push(id);
                }
                continue;
            }
            let (state, _) = self.slurm_state(&id.to_string());
            if !c.states.is_empty() && !c.states.contains(&state) {
                continue;
            }
            if state.is_finished() {
                out.finished.push(id);
                continue;
            }
            // SIGKILL cancels, as in Slurm; any other signal goes to a running job's processes.
            if let Some(signal) = c.signal.filter(|&s| s != SIGKILL) {
                if state == SlurmJobState::Pending {
                    out.pending.push(id);
                } else {
                    self.signal_task(&id.to_string(), BATCH_TASK, signal, fx);
                    out.signaled.push(id);
                }
                continue;
            }
            self.slurm.gated.remove(&id);
            if self.terminate_task(&id.to_string(), BATCH_TASK, fx).is_ok() {
                out.cancelled.push(id);
            }
        }
        self.slurm_reevaluate(fx);
        out
    }

    /// `scontrol hold` (`hold` true) and `scontrol release`: only pending jobs.
    pub fn slurm_hold(&mut self, spec: &str, hold: bool, fx: &mut Effects) -> Result<(), ApiError> {
        let ids = self.slurm_resolve(spec).ok_or_else(|| invalid_job_id(spec))?;
        for id in &ids {
            if self.slurm_state(&id.to_string()).0 != SlurmJobState::Pending {
                return Err(not_pending(*id));
            }
        }
        for id in ids {
            let job = id.to_string();
            let Some(j) = self.jobs.get_mut(&job) else { continue };
            let Some(s) = j.wire.slurm.as_mut() else { continue };
            if s.held == hold {
                continue;
            }
            s.held = hold;
            HeadState::put_job(j, fx);
            let key = j.tasks.get(BATCH_TASK).map(|t| t.key);
            if hold && self.slurm.gated.insert(id) {
                // It was queued: take it back out of the scheduler.
                if let Some(key) = key {
                    self.sched_event(Event::TaskWithdrawn { task: key }, fx);
                }
            }
        }
        self.slurm_reevaluate(fx);
        Ok(())
    }

    /// `scontrol update JobId=N TimeLimit=…`: pending jobs only (a running attempt's wall clock
    /// is already with its launcher).
    pub fn slurm_update(&mut self, spec: &str, u: SlurmUpdate, fx: &mut Effects) -> Result<(), ApiError> {
        let ids = self.slurm_resolve(spec).ok_or_else(|| invalid_job_id(spec))?;
        if u.time_limit_s.is_none() && !u.unlimited {
            return Ok(());
        }
        for id in &ids {
            if self.slurm_state(&id.to_string()).0 != SlurmJobState::Pending {
                return Err(not_pending(*id));
            }
        }
        let limit = if u.unlimited { None } else { u.time_limit_s };
        for id in ids {
            let Some(j) = self.jobs.get_mut(&id.to_string()) else { continue };
            if let Some(s) = j.wire.slurm.as_mut() {
                s.request.time_limit_s = limit;
            }
            HeadState::put_job(j, fx);
            let Some(t) = j.tasks.get_mut(BATCH_TASK) else { continue };
            t.wire.constraints.max_wall_clock_time = limit.map(|s| IsoDuration(std::time::Duration::from_secs(s)));
            HeadState::put_task(&j.wire.id, t, fx);
            // The scheduler orders and reserves by the limit: queue it again with the new one.
            let key = t.key;
            self.sched_event(Event::TaskWithdrawn { task: key }, fx);
            self.enqueue(&id.to_string(), BATCH_TASK, fx);
        }
        Ok(())
    }

    /// srun's report of a step of a running job: recorded (replacing the step's earlier
    /// record), at most [`MAX_STEPS`] per job.
    pub fn slurm_step(&mut self, spec: &str, step: SlurmStep, fx: &mut Effects) -> Result<(), ApiError> {
        let id: u64 = spec.parse().map_err(|_| invalid_job_id(spec))?;
        if self.slurm_state(&id.to_string()).0 != SlurmJobState::Running {
            return Err(ApiError::conflict(
                "InvalidJobState",
                format!("job {id} is not running: its steps can no longer change"),
            ));
        }
        let j = self.jobs.get_mut(&id.to_string()).ok_or_else(|| invalid_job_id(spec))?;
        let Some(s) = j.wire.slurm.as_mut() else { return Err(invalid_job_id(spec)) };
        let full = s.steps.len() >= MAX_STEPS;
        match s.steps.iter_mut().find(|x| x.step_id == step.step_id) {
            Some(x) => *x = step,
            None if full => {
                return Err(ApiError::conflict(
                    "TooManySteps",
                    format!("job {id} already has {MAX_STEPS} steps recorded"),
                ))
            }
            None => s.steps.push(step),
        }
        HeadState::put_job(j, fx);
        Ok(())
    }

    /// `scontrol requeue`: a running job is killed and queued again; an ended one queued again.
    pub fn slurm_requeue(&mut self, spec: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let ids = self.slurm_resolve(spec).ok_or_else(|| invalid_job_id(spec))?;
        for id in &ids {
            let info = self.slurm_info(*id).ok_or_else(|| invalid_job_id(spec))?;
            if !info.request.requeue {
                return Err(ApiError::conflict("JobNotRequeueable", format!("Job is not requeueable: {id}")));
            }
            if self.slurm_state(&id.to_string()).0 == SlurmJobState::Pending {
                return Err(ApiError::conflict("JobPending", format!("Job is pending execution: {id}")));
            }
        }
        for id in ids {
            let job = id.to_string();
            let Some(t) = self.jobs.get(&job).and_then(|j| j.tasks.get(BATCH_TASK)) else { continue };
            match t.wire.state {
                TaskState::Running | TaskState::Preparing => {
                    let key = t.key;
                    self.kill_task(key, REQUEUE_REASON, fx);
                }
                TaskState::Completed => self.slurm_reactivate(&job, fx),
                TaskState::Active => {}
            }
        }
        Ok(())
    }

    /// Keeps the current run of Slurm job `job` as an earlier run (`sacct -D`) before a
    /// requeue starts another: ended `state`, or as it shows now (a finished job).
    pub(crate) fn slurm_keep_run(
        &mut self,
        job: &str,
        state: Option<gangway_api::slurm::SlurmJobState>,
        fx: &mut Effects,
    ) {
        let Some(v) = job.parse().ok().and_then(|id| self.slurm_job(id)) else { return };
        let run = gangway_api::slurm::SlurmRun {
            state: state.unwrap_or(v.state),
            start_time: v.start_time,
            end_time: v.end_time.or_else(|| Some(Timestamp::now())),
            nodes: v.nodes,
            exit_code: v.exit_code,
        };
        if let Some(j) = self.jobs.get_mut(job) {
            if let Some(s) = j.wire.slurm.as_mut() {
                s.runs.push(run);
            }
            HeadState::put_job(j, fx);
        }
    }

    /// Puts an ended Slurm job back in the queue (through its gate), counting a restart.
    pub(crate) fn slurm_reactivate(&mut self, job: &str, fx: &mut Effects) {
        let ended = self
            .jobs
            .get(job)
            .and_then(|j| j.tasks.get(BATCH_TASK))
            .is_some_and(|t| t.wire.state == TaskState::Completed);
        if ended {
            self.slurm_keep_run(job, None, fx);
        }
        let Some(j) = self.jobs.get_mut(job) else { return };
        let now = Timestamp::now();
        if j.wire.state != JobState::Active {
            j.wire.previous_state = Some(j.wire.state);
            j.wire.state = JobState::Active;
            j.wire.state_transition_time = now;
            j.wire.execution_info.end_time = None;
            j.wire.execution_info.terminate_reason = None;
        }
        if let Some(s) = j.wire.slurm.as_mut() {
            s.restarts += 1;
            // The new run numbers its steps from 0 again.
            s.steps.clear();
        }
        let Some(t) = j.tasks.get_mut(BATCH_TASK) else { return };
        if t.wire.state != TaskState::Completed {
            return;
        }
        j.completed -= 1;
        set_task_state(&mut t.wire, TaskState::Active, now);
        let info = &mut t.wire.execution_info;
        info.requeue_count += 1;
        info.last_requeue_time = Some(now);
        info.exit_code = None;
        info.result = None;
        info.failure_info = None;
        info.end_time = None;
        let key = t.key;
        HeadState::put_task(job, t, fx);
        HeadState::put_job(j, fx);
        self.dependency_moved(key, fx);
        self.enqueue(job, BATCH_TASK, fx);
    }
}

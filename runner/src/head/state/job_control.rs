//! Disabling and enabling a job (`POST /jobs/{id}/disable`, `/enable`, and an exit
//! condition's `jobAction: disable`).
//!
//! A disabled job's waiting tasks leave the scheduler (they stay active); its running tasks
//! are requeued, terminated or left to finish (`disableTasks`). The job is `disabling` until
//! none of them runs, then `disabled`. Enabling queues its active tasks again. Tasks may be
//! added to a disabled job: they wait until it is enabled.

use gangway_api::*;

use super::{Effects, HeadState};
use crate::head::error::ApiError;
use crate::scheduler::Event;

/// The kill reason of a running task requeued by its job's disable.
pub const DISABLE_REQUEUE: &str = "JobDisabled";

impl HeadState {
    /// `POST /jobs/{id}/disable`: only an active job.
    pub fn disable_job(&mut self, id: &str, how: DisableJobOption, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get(id).ok_or_else(|| super::resources::job_not_found(id))?;
        if j.wire.state != JobState::Active {
            return Err(ApiError::conflict(
                "JobNotActive",
                format!("job '{id}' is {}; only an active job can be disabled", state_name(j.wire.state)),
            ));
        }
        self.disable_job_now(id, how, fx);
        Ok(())
    }

    /// Disables an active job.
    pub(crate) fn disable_job_now(&mut self, id: &str, how: DisableJobOption, fx: &mut Effects) {
        let Some(j) = self.jobs.get_mut(id) else { return };
        set_job_state(&mut j.wire, JobState::Disabling);
        HeadState::put_job(j, fx);
        let mut withdraw = Vec::new();
        let mut kill = Vec::new();
        for t in j.tasks.values() {
            match t.wire.state {
                TaskState::Active => withdraw.push(t.key),
                TaskState::Running | TaskState::Preparing if t.killing.is_none() => kill.push(t.key),
                _ => {}
            }
        }
        for key in withdraw {
            self.sched_event(Event::TaskWithdrawn { task: key }, fx);
        }
        let reason = match how {
            DisableJobOption::Requeue => Some(DISABLE_REQUEUE),
            DisableJobOption::Terminate => Some("TaskTerminated"),
            DisableJobOption::Wait => None,
        };
        for key in kill.into_iter().filter(|_| reason.is_some()) {
            self.kill_task(key, reason.expect("filtered"), fx);
        }
        self.maybe_disabled(id, fx);
    }

    /// A disabling job with nothing running is disabled.
    pub(crate) fn maybe_disabled(&mut self, id: &str, fx: &mut Effects) {
        let Some(j) = self.jobs.get_mut(id) else { return };
        if j.wire.state == JobState::Disabling && j.running == 0 {
            set_job_state(&mut j.wire, JobState::Disabled);
            HeadState::put_job(j, fx);
        }
    }

    /// `POST /jobs/{id}/enable`: a disabling or disabled job is active again and its waiting
    /// tasks are queued.
    pub fn enable_job(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let j = self.jobs.get_mut(id).ok_or_else(|| super::resources::job_not_found(id))?;
        match j.wire.state {
            JobState::Active => return Ok(()),
            JobState::Disabling | JobState::Disabled => {}
            other => {
                return Err(ApiError::conflict(
                    "JobNotDisabled",
                    format!("job '{id}' is {}; only a disabled job can be enabled", state_name(other)),
                ))
            }
        }
        set_job_state(&mut j.wire, JobState::Active);
        HeadState::put_job(j, fx);
        let waiting: Vec<String> =
            j.tasks.values().filter(|t| t.wire.state == TaskState::Active).map(|t| t.wire.id.clone()).collect();
        for task in waiting {
            self.enqueue(id, &task, fx);
        }
        Ok(())
    }
}

fn set_job_state(j: &mut Job, state: JobState) {
    j.previous_state = Some(j.state);
    j.state = state;
    j.state_transition_time = Timestamp::now();
}

fn state_name(s: JobState) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

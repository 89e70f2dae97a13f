//! Job schedules (`/jobschedules`): a job made from one specification at set times.
//!
//! A schedule's next run time is a *slot*: `doNotRunUntil` (or its creation), then one every
//! `recurrenceInterval`. When a slot is due and the schedule's previous job has ended, the
//! job `ID:job-N` is made; while the previous job runs, the slot waits for it, up to
//! `startWindow` (then the run is skipped; without a window, it waits as long as it takes). A
//! schedule completes after `doNotRunAfter`, or after its one run without a recurrence, once
//! its job has ended.
//!
//! Making a job, counting it and moving the slot on are one change, written in one commit:
//! a head restarted at any moment neither makes a run's job twice nor skips a run whose slot
//! (and window) it finds due. [`HeadState::schedule_tick`] is the one place that decides; it
//! runs at creation, on its timer, when its job ends, and on restore.

use gangway_api::common::validate_id;
use gangway_api::*;

use super::resources::{job_not_found, pool_not_found};
use super::{Effects, HeadState, Timer};
use crate::head::error::ApiError;
use crate::head::identity::Caller;
use crate::store::Write;

fn schedule_not_found(id: &str) -> ApiError {
    ApiError::not_found("JobScheduleNotFound", format!("job schedule '{id}' does not exist"))
}

fn put(s: &JobSchedule, fx: &mut Effects) {
    fx.writes
        .push(Write::PutSchedule { id: s.id.clone(), body: serde_json::to_string(s).expect("schedules serialize") });
}

fn set_state(s: &mut JobSchedule, state: JobScheduleState) {
    if s.state != state {
        s.previous_state = Some(s.state);
        s.state = state;
        s.state_transition_time = Timestamp::now();
    }
}

/// The job run `n` of schedule `id` makes from `spec`, as a job's creation takes it.
fn job_of(id: &str, spec: &JobSpecification, n: u64) -> JobAddParameter {
    JobAddParameter {
        id: format!("{id}:job-{n}"),
        display_name: spec.display_name.clone(),
        priority: spec.priority,
        constraints: spec.constraints,
        pool_info: Some(spec.pool_info.clone()),
        on_all_tasks_complete: spec.on_all_tasks_complete,
        on_task_failure: spec.on_task_failure,
        common_environment_settings: spec.common_environment_settings.clone(),
        uses_task_dependencies: spec.uses_task_dependencies,
        on_dependency_blocked: spec.on_dependency_blocked,
        job_manager_task: spec.job_manager_task.clone(),
        job_preparation_task: spec.job_preparation_task.clone(),
        job_release_task: spec.job_release_task.clone(),
    }
}

impl HeadState {
    /// Checks a schedule's timing and specification (as its first job would be checked).
    fn check_schedule(
        &mut self,
        id: &str,
        s: &Schedule,
        spec: &JobSpecification,
        owner: &Owner,
    ) -> Result<(), ApiError> {
        if let Some(r) = s.recurrence_interval.filter(|r| r.0 < schedule::MIN_RECURRENCE) {
            return Err(ApiError::invalid(format!(
                "schedule.recurrenceInterval is {r}; it must be at least {}s",
                schedule::MIN_RECURRENCE.as_secs()
            )));
        }
        if s.start_window.is_some_and(|w| w.0.is_zero()) {
            return Err(ApiError::invalid("schedule.startWindow is zero; leave it out for no limit"));
        }
        if let (Some(until), Some(after)) = (s.do_not_run_until, s.do_not_run_after) {
            if after < until {
                return Err(ApiError::invalid(format!(
                    "schedule.doNotRunAfter ({after}) is before schedule.doNotRunUntil ({until})"
                )));
            }
        }
        if !self.pools.contains_key(&spec.pool_info.pool_id) {
            return Err(pool_not_found(&spec.pool_info.pool_id));
        }
        self.job_record(job_of(id, spec, 0), owner.clone(), false).map(|_| ()).map_err(|mut e| {
            e.body.message.value = format!("jobSpecification: {}", e.body.message.value);
            e
        })
    }

    /// `POST /jobschedules`.
    pub fn add_schedule(&mut self, p: JobScheduleAddParameter, owner: Owner, fx: &mut Effects) -> Result<(), ApiError> {
        validate_id("job schedule", &p.id).map_err(ApiError::invalid)?;
        if self.schedules.contains_key(&p.id) {
            return Err(ApiError::conflict("JobScheduleExists", format!("job schedule '{}' already exists", p.id)));
        }
        self.check_schedule(&p.id, &p.schedule, &p.job_specification, &owner)?;
        let now = Timestamp::now();
        let wire = JobSchedule {
            id: p.id.clone(),
            display_name: p.display_name,
            state: JobScheduleState::Active,
            state_transition_time: now,
            previous_state: None,
            creation_time: now,
            execution_info: JobScheduleExecutionInformation {
                next_run_time: Some(p.schedule.do_not_run_until.unwrap_or(now)),
                ..Default::default()
            },
            schedule: p.schedule,
            job_specification: p.job_specification,
            jobs_created: 0,
            owner: Some(owner),
        };
        put(&wire, fx);
        self.schedules.insert(p.id.clone(), wire);
        self.schedule_tick(&p.id, fx);
        Ok(())
    }

    /// Whether `caller` may change schedule `id` (its owner or an admin).
    pub(crate) fn may_change_schedule(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        let s = self.schedules.get(id).ok_or_else(|| schedule_not_found(id))?;
        if caller.may_change(s.owner.as_ref().map(|o| o.uid)) {
            Ok(())
        } else {
            let whose = s.owner.as_ref().map_or_else(|| "an admin".to_owned(), |o| o.name.clone());
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "AuthorizationFailure",
                format!(
                    "not the owner of job schedule {id} (it is {whose}'s); only its owner or an admin may change it"
                ),
            ))
        }
    }

    /// `PATCH` (`put_all` false: what is given) and `PUT` (both replaced) of a schedule;
    /// the next run follows a new timing, counted from now.
    pub fn change_schedule(
        &mut self,
        id: &str,
        schedule: Option<Schedule>,
        spec: Option<JobSpecification>,
        fx: &mut Effects,
    ) -> Result<(), ApiError> {
        let s = self.schedules.get(id).ok_or_else(|| schedule_not_found(id))?;
        if matches!(s.state, JobScheduleState::Completed | JobScheduleState::Terminating | JobScheduleState::Deleting) {
            return Err(ApiError::conflict("JobScheduleCompleted", format!("job schedule '{id}' has ended")));
        }
        let timing = schedule.unwrap_or(s.schedule);
        let what = spec.clone().unwrap_or_else(|| s.job_specification.clone());
        let owner = s.owner.clone().unwrap_or(Owner { uid: 0, name: "root".into() });
        self.check_schedule(id, &timing, &what, &owner)?;
        let s = self.schedules.get_mut(id).expect("checked");
        if let Some(t) = schedule {
            s.schedule = t;
            s.execution_info.next_run_time = Some(t.do_not_run_until.unwrap_or_else(Timestamp::now));
        }
        if let Some(spec) = spec {
            s.job_specification = spec;
        }
        put(s, fx);
        self.schedule_tick(id, fx);
        Ok(())
    }

    /// `POST /jobschedules/{id}/disable`: no job is made until it is enabled.
    pub fn disable_schedule(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let s = self.schedules.get_mut(id).ok_or_else(|| schedule_not_found(id))?;
        match s.state {
            JobScheduleState::Disabled => Ok(()),
            JobScheduleState::Active => {
                set_state(s, JobScheduleState::Disabled);
                put(s, fx);
                Ok(())
            }
            _ => Err(ApiError::conflict("JobScheduleNotActive", format!("job schedule '{id}' is not active"))),
        }
    }

    /// `POST /jobschedules/{id}/enable`: runs due while it was disabled are made if their
    /// window allows, else skipped.
    pub fn enable_schedule(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let s = self.schedules.get_mut(id).ok_or_else(|| schedule_not_found(id))?;
        match s.state {
            JobScheduleState::Active => Ok(()),
            JobScheduleState::Disabled => {
                set_state(s, JobScheduleState::Active);
                put(s, fx);
                self.schedule_tick(id, fx);
                Ok(())
            }
            _ => Err(ApiError::conflict("JobScheduleNotDisabled", format!("job schedule '{id}' is not disabled"))),
        }
    }

    /// `POST /jobschedules/{id}/terminate`: no more jobs; its job is terminated
    /// (`TerminateJobSchedule`); it completes when that job has.
    pub fn terminate_schedule(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let s = self.schedules.get_mut(id).ok_or_else(|| schedule_not_found(id))?;
        if matches!(s.state, JobScheduleState::Completed | JobScheduleState::Terminating | JobScheduleState::Deleting) {
            return Err(ApiError::conflict("JobScheduleCompleted", format!("job schedule '{id}' has ended")));
        }
        set_state(s, JobScheduleState::Terminating);
        s.execution_info.next_run_time = None;
        put(s, fx);
        if let Some(job) = self.active_job_of(id) {
            if matches!(self.jobs[&job].wire.state, JobState::Active | JobState::Disabling | JobState::Disabled) {
                self.end_job(&job, "TerminateJobSchedule".into(), fx);
            }
        }
        self.schedule_tick(id, fx);
        Ok(())
    }

    /// `DELETE /jobschedules/{id}`: the schedule and every job it made.
    pub fn delete_schedule(&mut self, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let s = self.schedules.get_mut(id).ok_or_else(|| schedule_not_found(id))?;
        set_state(s, JobScheduleState::Deleting);
        let jobs: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.wire.job_schedule_id.as_deref() == Some(id))
            .map(|j| j.wire.id.clone())
            .collect();
        for job in jobs {
            self.delete_job(&job, fx).map_err(|_| job_not_found(&job))?;
        }
        self.schedules.remove(id);
        fx.writes.push(Write::DeleteSchedule { id: id.to_owned() });
        Ok(())
    }

    /// The schedule's latest job, while it has not completed.
    fn active_job_of(&self, id: &str) -> Option<String> {
        let recent = self.schedules.get(id)?.execution_info.recent_job.as_ref()?;
        self.jobs.get(&recent.id).filter(|j| j.wire.state != JobState::Completed).map(|j| j.wire.id.clone())
    }

    /// A job ended (completed, or was deleted): its schedule may make the next.
    pub(crate) fn schedule_job_ended(&mut self, schedule: &str, fx: &mut Effects) {
        if self.schedules.contains_key(schedule) {
            self.schedule_tick(schedule, fx);
        }
    }

    /// A timer of schedule `id` fired (a tick decides afresh: a stale timer changes nothing).
    pub fn schedule_due(&mut self, id: &str, fx: &mut Effects) {
        if self.schedules.contains_key(id) {
            self.schedule_tick(id, fx);
        }
    }

    /// Decides what schedule `id` does now: make its due job, skip a run whose window has
    /// passed, wait (arming its timer), or complete.
    pub(crate) fn schedule_tick(&mut self, id: &str, fx: &mut Effects) {
        loop {
            let now = Timestamp::now();
            let active_job = self.active_job_of(id);
            let Some(s) = self.schedules.get_mut(id) else { return };
            match s.state {
                JobScheduleState::Active => {}
                JobScheduleState::Terminating if active_job.is_none() => {
                    set_state(s, JobScheduleState::Completed);
                    s.execution_info.end_time = Some(now);
                    put(s, fx);
                    return;
                }
                _ => return,
            }
            let Some(next) = s.execution_info.next_run_time else {
                if active_job.is_none() {
                    set_state(s, JobScheduleState::Completed);
                    s.execution_info.end_time = Some(now);
                    put(s, fx);
                }
                return;
            };
            // No job is made after doNotRunAfter, whenever its run was due.
            if s.schedule.do_not_run_after.is_some_and(|after| next > after || now > after) {
                s.execution_info.next_run_time = None;
                put(s, fx);
                continue;
            }
            if now < next {
                fx.timers.push(Timer::Schedule { id: id.to_owned(), at: next });
                return;
            }
            let interval = s.schedule.recurrence_interval.map(|i| i.0);
            // Past its window (a window as long as the interval is no window), a run is lost.
            let window_end = match (s.schedule.start_window, interval) {
                (Some(w), Some(i)) if w.0 < i => Some(next.plus(w.0)),
                (Some(w), None) => Some(next.plus(w.0)),
                _ => None,
            };
            if window_end.is_some_and(|end| now > end) {
                tracing::info!(schedule = id, "a run's start window passed; skipped");
                s.execution_info.next_run_time = interval.map(|i| next.plus(i));
                put(s, fx);
                continue;
            }
            if active_job.is_some() {
                // Its end ticks again; the window's end too.
                if let Some(end) = window_end {
                    fx.timers
                        .push(Timer::Schedule { id: id.to_owned(), at: end.plus(std::time::Duration::from_millis(1)) });
                }
                return;
            }
            let n = s.jobs_created + 1;
            let p = job_of(id, &s.job_specification, n);
            let owner = s.owner.clone().unwrap_or(Owner { uid: 0, name: "root".into() });
            // The run is counted and its slot moved on whether or not its job could be made.
            s.jobs_created = n;
            let mut after = interval.map(|i| next.plus(i));
            while let (Some(a), Some(i)) = (after, interval) {
                if a > now {
                    break;
                }
                after = Some(a.plus(i));
            }
            s.execution_info.next_run_time = after;
            match self.job_record(p, owner, true) {
                Ok(mut rec) => {
                    rec.wire.job_schedule_id = Some(id.to_owned());
                    let job = rec.wire.id.clone();
                    let s = self.schedules.get_mut(id).expect("found above");
                    s.execution_info.recent_job = Some(RecentJob { id: job.clone() });
                    put(s, fx);
                    tracing::info!(schedule = id, job, "job schedule made a job");
                    self.insert_job(rec, fx);
                }
                Err(e) => {
                    tracing::warn!(schedule = id, error = %e.body.message.value, "job schedule could not make its job");
                    let s = self.schedules.get_mut(id).expect("found above");
                    put(s, fx);
                }
            }
        }
    }

    /// Puts back the schedules the store held and lets each catch up (after the jobs).
    pub(crate) fn restore_schedules(&mut self, bodies: Vec<String>, fx: &mut Effects) -> Result<(), String> {
        let mut ids = Vec::new();
        for body in bodies {
            let s: JobSchedule = serde_json::from_str(&body).map_err(|e| format!("stored job schedule: {e}"))?;
            ids.push(s.id.clone());
            self.schedules.insert(s.id.clone(), s);
        }
        for id in ids {
            self.schedule_tick(&id, fx);
        }
        Ok(())
    }
}

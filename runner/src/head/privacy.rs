//! What a user sees of another user's jobs. By default (Slurm's default `PrivateData`, as
//! gangway keeps it): ids, states, owners, resources and times, but not command lines,
//! scripts, environments, resource-file addresses or outputs. With `gangway head
//! --private-data jobs` (Slurm's `PrivateData=jobs`): nothing, as if they did not exist.
//! Owners and admins see everything.

use gangway_api::slurm::SlurmJob;
use gangway_api::{Job, JobManagerTask, JobSchedule, Task};

use super::identity::Caller;

/// `job` as `caller` may see it.
pub fn job(caller: &Caller, mut job: Job) -> Job {
    if caller.may_change(job.owner.as_ref().map(|o| o.uid)) {
        return job;
    }
    job.common_environment_settings.clear();
    hide_manager(job.job_manager_task.as_mut());
    if let Some(s) = job.slurm.as_deref_mut() {
        let r = &mut s.request;
        r.script.clear();
        r.script_args.clear();
        r.command = None;
        r.env.clear();
    }
    job
}

/// A job schedule as `caller` may see it (as its jobs are seen).
pub fn schedule(caller: &Caller, mut s: JobSchedule) -> JobSchedule {
    if caller.may_change(s.owner.as_ref().map(|o| o.uid)) {
        return s;
    }
    s.job_specification.common_environment_settings.clear();
    hide_manager(s.job_specification.job_manager_task.as_mut());
    s
}

fn hide_manager(m: Option<&mut JobManagerTask>) {
    if let Some(m) = m {
        m.command_line.clear();
        m.environment_settings.clear();
        m.resource_files.clear();
    }
}

/// `task` of a job owned by `owner`, as `caller` may see it.
pub fn task(caller: &Caller, owner: Option<u32>, mut task: Task) -> Task {
    if caller.may_change(owner) {
        return task;
    }
    task.command_line.clear();
    task.environment_settings.clear();
    task.resource_files.clear();
    if let Some(m) = task.multi_instance_settings.as_mut() {
        m.coordination_command_line = None;
        m.common_resource_files.clear();
    }
    task
}

/// A Slurm job's view as `caller` may see it.
pub fn slurm_job(caller: &Caller, mut job: SlurmJob) -> SlurmJob {
    if !caller.may_change(Some(job.uid)) {
        job.command = None;
    }
    job
}

/// How much of other users' jobs a user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivateData {
    /// Their ids, states, owners, resources and times.
    #[default]
    Details,
    /// Nothing: they are not listed and not found.
    Jobs,
}

impl PrivateData {
    /// Whether `caller` may not see at all a job owned by `owner`.
    pub fn hides(self, caller: &Caller, owner: Option<u32>) -> bool {
        self == PrivateData::Jobs && !caller.may_change(owner)
    }
}

//! Job preparation and release tasks.
//!
//! A job's preparation task runs on a node before the first of the job's tasks there: the
//! task the scheduler placed waits `preparing`, holding its share of the node, until the
//! preparation succeeds (with `waitForSuccess: false` it starts at once). The preparation is
//! an attempt like any (its own directory, `workitems/JOB/job-1/jobpreparation`), takes no
//! slot, and is retried per its constraints. When it fails for good, the node is barred to
//! the job: the tasks waiting there are requeued, and the scheduler never places one of the
//! job's tasks there again ([`crate::scheduler::Event::TaskBarred`], sent with each queueing).
//! A node whose launcher comes back as a new process (a reboot) prepares again, unless
//! `rerunOnNodeRebootAfterSuccess` is false; a node lost forgets its preparation.
//!
//! When the job ends (its running tasks gone), its release task runs on every node that ran
//! the preparation, at most 15 minutes, and the job completes when they have ended (a node
//! not connected counts as ended). A deleted job's releases are sent, not waited for.
//!
//! Where each ran is the job's `prep_release` field, persisted with it.

use gangway_api::messages::{AttemptId, HeadMessage, RunAs, StartTask, TaskFinished};
use gangway_api::*;

use super::resources::DEFAULT_RETENTION;
use super::{set_task_state, Effects, HeadState};
use crate::head::error::ApiError;
use crate::scheduler::{Event, TaskKey};

/// What a task placed on a node does about its job's preparation there.
pub(crate) enum Gate {
    /// Start it.
    Go,
    /// Hold it `preparing` until the preparation ends.
    Wait,
}

/// Which of a job's two special tasks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prep,
    Release,
}

fn entry<'a>(j: &'a mut Job, node: &str, pool: &str) -> &'a mut JobPreparationAndReleaseTaskExecutionInformation {
    match j.prep_release.iter().position(|e| e.node_id == node) {
        Some(i) => &mut j.prep_release[i],
        None => {
            j.prep_release.push(JobPreparationAndReleaseTaskExecutionInformation {
                pool_id: pool.to_owned(),
                node_id: node.to_owned(),
                job_preparation_task_execution_info: None,
                job_release_task_execution_info: None,
            });
            j.prep_release.last_mut().expect("just pushed")
        }
    }
}

fn exec_of(
    e: &mut JobPreparationAndReleaseTaskExecutionInformation,
    kind: Kind,
) -> &mut Option<JobPrepReleaseExecution> {
    match kind {
        Kind::Prep => &mut e.job_preparation_task_execution_info,
        Kind::Release => &mut e.job_release_task_execution_info,
    }
}

/// Whether a preparation that ended so bars its node (it failed, and tasks wait for success).
fn bars(j: &Job, e: &JobPreparationAndReleaseTaskExecutionInformation) -> bool {
    let wait = j.job_preparation_task.as_ref().is_some_and(|p| p.wait_for_success.unwrap_or(true));
    let failed = e
        .job_preparation_task_execution_info
        .as_ref()
        .is_some_and(|x| x.state == JobPrepReleaseState::Completed && x.result != Some(TaskExecutionResult::Success));
    wait && failed
}

/// Checks a job's preparation and release tasks.
pub(crate) fn check_prep_release(
    prep: Option<&JobPreparationTask>,
    release: Option<&JobReleaseTask>,
) -> Result<(), ApiError> {
    let command = |field: &str, cmd: &str| {
        gangway_api::cmdline::split_command_line(cmd)
            .map_err(|e| ApiError::invalid(format!("{field}.commandLine: {e}")))
    };
    let id = |field: &str, id: &str| {
        gangway_api::common::validate_id("task", id).map_err(|e| ApiError::invalid(format!("{field}.id: {e}")))
    };
    if let Some(p) = prep {
        id("jobPreparationTask", p.task_id())?;
        command("jobPreparationTask", &p.command_line)?;
        super::resource_files::check_resource_files(&p.resource_files, "jobPreparationTask.resourceFiles")?;
        super::resources::check_retry_count(
            p.constraints.and_then(|c| c.max_task_retry_count),
            "jobPreparationTask.constraints.maxTaskRetryCount",
        )?;
    }
    if let Some(r) = release {
        if prep.is_none() {
            return Err(ApiError::invalid(
                "jobReleaseTask needs a jobPreparationTask: it runs on the nodes the preparation ran on",
            ));
        }
        id("jobReleaseTask", r.task_id())?;
        command("jobReleaseTask", &r.command_line)?;
        super::resource_files::check_resource_files(&r.resource_files, "jobReleaseTask.resourceFiles")?;
        if let Some(t) = r.max_wall_clock_time.filter(|t| t.0 > MAX_RELEASE_TIME) {
            return Err(ApiError::invalid(format!(
                "jobReleaseTask.maxWallClockTime is {t}; it may be at most 15 minutes"
            )));
        }
        if prep.is_some_and(|p| p.task_id() == r.task_id()) {
            return Err(ApiError::invalid("jobPreparationTask and jobReleaseTask must have different ids"));
        }
    }
    Ok(())
}

impl HeadState {
    /// What a task of `job` placed on `node` does about the job's preparation there (which
    /// starts now if it has not run there).
    pub(crate) fn prep_gate(&mut self, job: &str, node: &str, fx: &mut Effects) -> Gate {
        let Some(j) = self.jobs.get(job) else { return Gate::Go };
        let Some(prep) = &j.wire.job_preparation_task else { return Gate::Go };
        let wait = prep.wait_for_success.unwrap_or(true);
        let ran = j.wire.prep_release.iter().find(|e| e.node_id == node);
        match ran.and_then(|e| e.job_preparation_task_execution_info.as_ref()).map(|x| (x.state, x.result)) {
            Some((JobPrepReleaseState::Completed, _)) => Gate::Go,
            Some((JobPrepReleaseState::Running, _)) => {
                if wait {
                    Gate::Wait
                } else {
                    Gate::Go
                }
            }
            None => {
                self.start_special(job, node, Kind::Prep, 1, 0, fx);
                if wait {
                    Gate::Wait
                } else {
                    Gate::Go
                }
            }
        }
    }

    /// Sends attempt `attempt` of the job's preparation or release task to `node` and records it.
    fn start_special(&mut self, job: &str, node: &str, kind: Kind, attempt: u32, retries: u32, fx: &mut Effects) {
        let Some(n) = self.nodes.get(node) else { return };
        let (pool, conn) = (n.wire.pool_id.clone(), n.conn.as_ref().map(|c| c.tx.clone()));
        let Some(j) = self.jobs.get_mut(job) else { return };
        let (id, command_line, own_env, resource_files, wall, retention) = match kind {
            Kind::Prep => {
                let Some(p) = &j.wire.job_preparation_task else { return };
                let c = p.constraints.unwrap_or_default();
                (
                    p.task_id().to_owned(),
                    p.command_line.clone(),
                    p.environment_settings.clone(),
                    p.resource_files.clone(),
                    c.max_wall_clock_time.filter(|d| !d.is_unlimited()).map(|d| d.0),
                    c.retention_time.map_or(DEFAULT_RETENTION, |d| d.0),
                )
            }
            Kind::Release => {
                let Some(r) = &j.wire.job_release_task else { return };
                (
                    r.task_id().to_owned(),
                    r.command_line.clone(),
                    r.environment_settings.clone(),
                    r.resource_files.clone(),
                    Some(r.max_wall_clock_time.map_or(MAX_RELEASE_TIME, |d| d.0)),
                    r.retention_time.map_or(DEFAULT_RETENTION, |d| d.0),
                )
            }
        };
        let now = Timestamp::now();
        let e = entry(&mut j.wire, node, &pool);
        *exec_of(e, kind) = Some(JobPrepReleaseExecution {
            state: JobPrepReleaseState::Running,
            start_time: now,
            end_time: None,
            task_root_directory: format!("workitems/{job}/job-1/{id}"),
            exit_code: None,
            failure_info: None,
            retry_count: retries,
            result: None,
            attempt,
        });
        let mut env: Vec<(String, String)> =
            j.wire.common_environment_settings.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
        env.extend(own_env.iter().map(|e| (e.name.clone(), e.value.clone())));
        let msg = StartTask {
            id: AttemptId { job: job.to_owned(), task: id, attempt },
            pool,
            command_line,
            env,
            max_wall_clock_ms: wall.map(|d| d.as_millis() as u64),
            retention_ms: retention.as_millis().min(u64::MAX as u128) as u64,
            slots: 0,
            allocation: None,
            multi_instance: None,
            mpi: None,
            resource_files,
            job_prep_task: None,
            packages: Vec::new(),
            output_files: Vec::new(),
            batch: None,
            user: j.wire.owner.as_ref().map(|o| RunAs { uid: o.uid, gid: None, name: o.name.clone() }),
        };
        HeadState::put_job(j, fx);
        match conn {
            Some(tx) => fx.sends.push((tx, HeadMessage::StartTask(Box::new(msg)))),
            // Not connected: it cannot run there now; counted as failed (a release) or
            // retried when the node is back (a preparation is forgotten with a lost node).
            None => {
                let f = TaskFinished {
                    id: msg.id,
                    exit_code: None,
                    failure: Some(TaskFailureInformation {
                        category: ErrorCategory::ServerError,
                        code: "NodeNotConnected".into(),
                        message: format!("node '{node}' was not connected"),
                    }),
                    start_time: None,
                    end_time: now,
                    max_rss_bytes: None,
                    instance: None,
                };
                self.special_finished(node, &f, fx);
            }
        }
    }

    /// A report of attempt `f` from `node`: true when it was a preparation or release task's
    /// (then it is dealt with here).
    pub(crate) fn special_finished(&mut self, node: &str, f: &TaskFinished, fx: &mut Effects) -> bool {
        let Some(j) = self.jobs.get_mut(&f.id.job) else { return false };
        let kind = if j.wire.job_preparation_task.as_ref().is_some_and(|p| p.task_id() == f.id.task) {
            Kind::Prep
        } else if j.wire.job_release_task.as_ref().is_some_and(|r| r.task_id() == f.id.task) {
            Kind::Release
        } else {
            return false;
        };
        let retries_allowed = match kind {
            Kind::Prep => {
                j.wire.job_preparation_task.as_ref().and_then(|p| p.constraints).and_then(|c| c.max_task_retry_count)
            }
            Kind::Release => Some(0),
        };
        let Some(e) = j.wire.prep_release.iter_mut().find(|e| e.node_id == node) else { return true };
        let Some(x) = exec_of(e, kind).as_mut() else { return true };
        if x.attempt != f.id.attempt || x.state != JobPrepReleaseState::Running {
            return true;
        }
        let success = f.exit_code == Some(0) && f.failure.is_none();
        let retry = !success
            && f.exit_code.is_some_and(|c| c != 0)
            && match retries_allowed.unwrap_or(0) {
                -1 => true,
                n => (x.retry_count as i64) < n as i64,
            };
        x.exit_code = f.exit_code;
        x.failure_info = f.failure.clone().or_else(|| {
            (!success).then(|| TaskFailureInformation {
                category: ErrorCategory::UserError,
                code: "FailureExitCode".into(),
                message: "the task process exited with a non-zero exit code".into(),
            })
        });
        if let Some(start) = f.start_time {
            x.start_time = start;
        }
        let job = f.id.job.clone();
        if retry {
            let (attempt, retries) = (x.attempt + 1, x.retry_count + 1);
            self.start_special(&job, node, kind, attempt, retries, fx);
            return true;
        }
        x.state = JobPrepReleaseState::Completed;
        x.end_time = Some(f.end_time);
        x.result = Some(if success { TaskExecutionResult::Success } else { TaskExecutionResult::Failure });
        let e = e.clone();
        let barred = kind == Kind::Prep && bars(&j.wire, &e);
        HeadState::put_job(j, fx);
        match kind {
            Kind::Prep => self.prep_ended(&job, node, barred, fx),
            Kind::Release => self.maybe_complete_job(&job, fx),
        }
        true
    }

    /// The job's preparation on `node` has ended: what waited for it starts, or, when it bars
    /// the node, goes back to the queue and keeps off the node from now on.
    fn prep_ended(&mut self, job: &str, node: &str, barred: bool, fx: &mut Effects) {
        let waiting = self.prep_waiting.remove(&(job.to_owned(), node.to_owned())).unwrap_or_default();
        if !barred {
            for (key, msg) in waiting {
                if self.gang_waiting.contains_key(&key) {
                    self.gang_prepared(job, key, fx);
                    continue;
                }
                let Some((j, tid)) = self.task_mut(key) else { continue };
                let t = j.tasks.get_mut(&tid).expect("indexed");
                if t.wire.state != TaskState::Preparing {
                    continue;
                }
                set_task_state(&mut t.wire, TaskState::Running, Timestamp::now());
                HeadState::put_task(job, t, fx);
                if let Some(c) = self.nodes.get(node).and_then(|n| n.conn.as_ref()) {
                    fx.sends.push((c.tx.clone(), msg));
                }
            }
            return;
        }
        tracing::warn!(job, node, "job preparation failed for good; the node runs none of the job's tasks");
        let Some(node_key) = self.nodes.get(node).map(|n| n.key) else { return };
        // What is queued is queued again, barred from the node (it no longer places like
        // tasks that are not); what waited there is requeued.
        let queued: Vec<(TaskKey, String)> = self.jobs.get(job).map_or_else(Vec::new, |j| {
            j.tasks.values().filter(|t| t.wire.state == TaskState::Active).map(|t| (t.key, t.wire.id.clone())).collect()
        });
        for (task, id) in queued {
            self.sched.apply(Event::TaskWithdrawn { task });
            self.enqueue(job, &id, fx);
        }
        for (key, _) in waiting {
            if self.gang_waiting.contains_key(&key) {
                self.unwind_gang(key, fx);
                continue;
            }
            if self.task_by_key(key).map(|t| t.state) != Some(TaskState::Preparing) {
                continue;
            }
            let Some((_, tid)) = self.back_to_active(key, fx) else { continue };
            if let Some(n) = self.nodes.get_mut(node) {
                n.running.remove(&key);
            }
            self.refresh_node(node);
            self.sched_event(Event::TaskReleased { task: key, node: node_key }, fx);
            self.enqueue(job, &tid, fx);
        }
    }

    /// A task killed while it waited for its job's preparation (it never reached its node):
    /// it gives its share of the node back and completes at once. False when it was not waiting.
    pub(crate) fn abandon_preparing(&mut self, key: TaskKey, reason: &'static str, fx: &mut Effects) -> bool {
        if self.gang_waiting.contains_key(&key) {
            let failure = TaskFailureInformation {
                category: ErrorCategory::UserError,
                code: reason.into(),
                message: format!("the task was killed ({reason}) while it waited for its job's preparation"),
            };
            self.release_gang(key);
            self.complete_task(key, None, Some(failure), Timestamp::now(), fx);
            return true;
        }
        let Some((job, _)) = self.task_index.get(&key).cloned() else { return false };
        let Some(((_, node), list)) =
            self.prep_waiting.iter_mut().find(|((j, _), l)| *j == job && l.iter().any(|(k, _)| *k == key))
        else {
            return false;
        };
        list.retain(|(k, _)| *k != key);
        let node = node.clone();
        let failure = TaskFailureInformation {
            category: ErrorCategory::UserError,
            code: reason.into(),
            message: format!("the task was killed ({reason}) while it waited for its job's preparation"),
        };
        self.complete_task(key, None, Some(failure), Timestamp::now(), fx);
        if let Some(n) = self.nodes.get_mut(&node) {
            n.running.remove(&key);
            let node_key = n.key;
            self.refresh_node(&node);
            self.sched_event(Event::TaskReleased { task: key, node: node_key }, fx);
        }
        true
    }

    /// A multi-instance task's job is prepared on one more of its nodes: when none is left
    /// to prepare, its instances start.
    fn gang_prepared(&mut self, job: &str, key: TaskKey, fx: &mut Effects) {
        let pending = self.prep_waiting.iter().any(|((j, _), l)| j == job && l.iter().any(|(k, _)| *k == key));
        if pending {
            return;
        }
        let Some(msgs) = self.gang_waiting.remove(&key) else { return };
        let Some((j, tid)) = self.task_mut(key) else { return };
        let t = j.tasks.get_mut(&tid).expect("indexed");
        set_task_state(&mut t.wire, TaskState::Running, Timestamp::now());
        HeadState::put_task(job, t, fx);
        for (node, msg) in msgs {
            if let Some(c) = self.nodes.get(&node).and_then(|n| n.conn.as_ref()) {
                fx.sends.push((c.tx.clone(), msg));
            }
        }
    }

    /// Gives back every node a waiting multi-instance task holds and forgets its waiting.
    fn release_gang(&mut self, key: TaskKey) {
        let nodes: Vec<String> =
            self.gang_waiting.remove(&key).unwrap_or_default().into_iter().map(|(n, _)| n).collect();
        for list in self.prep_waiting.values_mut() {
            list.retain(|(k, _)| *k != key);
        }
        for node in nodes {
            let Some(n) = self.nodes.get_mut(&node) else { continue };
            n.running.remove(&key);
            let node_key = n.key;
            self.refresh_node(&node);
            self.sched.apply(Event::TaskReleased { task: key, node: node_key });
        }
        if let Some((j, tid)) = self.task_mut(key) {
            j.tasks.get_mut(&tid).expect("indexed").instances.clear();
        }
    }

    /// A waiting multi-instance task goes back to the queue whole (its preparation failed for
    /// good on one of its nodes, or a node of it was lost), without a retry counted.
    pub(crate) fn unwind_gang(&mut self, key: TaskKey, fx: &mut Effects) {
        self.release_gang(key);
        if self.task_by_key(key).map(|t| t.state) != Some(TaskState::Preparing) {
            return;
        }
        if let Some((job, tid)) = self.back_to_active(key, fx) {
            self.enqueue(&job, &tid, fx);
        }
    }

    /// Whether task `key` waits on `node` for its job's preparation.
    pub(crate) fn prep_waits(&self, key: TaskKey, node: &str) -> bool {
        if self.gang_waiting.get(&key).is_some_and(|l| l.iter().any(|(n, _)| n == node)) {
            return true;
        }
        let Some((job, _)) = self.task_index.get(&key) else { return false };
        self.prep_waiting.get(&(job.clone(), node.to_owned())).is_some_and(|l| l.iter().any(|(k, _)| *k == key))
    }

    /// The preparation and release attempts the head has running on `node` (a launcher that
    /// reconnects keeps them); those it does not report (`reported`) are sent again.
    pub(crate) fn specials_on(
        &mut self,
        node: &str,
        reported: &std::collections::HashSet<&AttemptId>,
        fx: &mut Effects,
    ) -> Vec<AttemptId> {
        let mut kept = Vec::new();
        let mut resend = Vec::new();
        for j in self.jobs.values() {
            let Some(e) = j.wire.prep_release.iter().find(|e| e.node_id == node) else { continue };
            let ids = [
                (
                    Kind::Prep,
                    j.wire.job_preparation_task.as_ref().map(|p| p.task_id()),
                    &e.job_preparation_task_execution_info,
                ),
                (
                    Kind::Release,
                    j.wire.job_release_task.as_ref().map(|r| r.task_id()),
                    &e.job_release_task_execution_info,
                ),
            ];
            for (kind, task, x) in ids {
                let (Some(task), Some(x)) = (task, x.as_ref().filter(|x| x.state == JobPrepReleaseState::Running))
                else {
                    continue;
                };
                let id = AttemptId { job: j.wire.id.clone(), task: task.to_owned(), attempt: x.attempt };
                if reported.contains(&id) {
                    kept.push(id);
                } else {
                    resend.push((j.wire.id.clone(), kind, x.attempt + 1, x.retry_count));
                }
            }
        }
        for (job, kind, attempt, retries) in resend {
            self.start_special(&job, node, kind, attempt, retries, fx);
        }
        kept
    }

    /// The nodes task `key` of `job` may not be placed on: sent to the scheduler before it
    /// is queued.
    pub(crate) fn bar_prep_failures(&mut self, job: &str, key: TaskKey) {
        let Some(j) = self.jobs.get(job) else { return };
        if j.wire.job_preparation_task.is_none() {
            return;
        }
        let barred: Vec<_> = j
            .wire
            .prep_release
            .iter()
            .filter(|e| bars(&j.wire, e))
            .filter_map(|e| self.nodes.get(&e.node_id).map(|n| n.key))
            .collect();
        for node in barred {
            self.sched.apply(Event::TaskBarred { task: key, node });
        }
    }

    /// Starts the job's release task on every node its preparation ran on and that has not
    /// run it yet; true while one of them runs (the job waits for it).
    pub(crate) fn releases_pending(&mut self, job: &str, fx: &mut Effects) -> bool {
        let Some(j) = self.jobs.get(job) else { return false };
        if j.wire.job_release_task.is_none() {
            return false;
        }
        let to_start: Vec<String> = j
            .wire
            .prep_release
            .iter()
            .filter(|e| e.job_preparation_task_execution_info.is_some() && e.job_release_task_execution_info.is_none())
            .map(|e| e.node_id.clone())
            .collect();
        for node in to_start {
            self.start_special(job, &node, Kind::Release, 1, 0, fx);
        }
        let j = &self.jobs[job];
        j.wire.prep_release.iter().any(|e| {
            e.job_release_task_execution_info.as_ref().is_some_and(|x| x.state == JobPrepReleaseState::Running)
        })
    }

    /// `node` was lost or came back as a new process: its preparations are forgotten (they
    /// run again when a task of theirs lands there; with `rerun` false only if they had not
    /// succeeded), and its running releases count as ended.
    pub(crate) fn prep_node_reset(&mut self, node: &str, lost: bool, fx: &mut Effects) {
        let jobs: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.wire.prep_release.iter().any(|e| e.node_id == node))
            .map(|j| j.wire.id.clone())
            .collect();
        for job in jobs {
            let j = self.jobs.get_mut(&job).expect("listed");
            let rerun = j
                .wire
                .job_preparation_task
                .as_ref()
                .is_none_or(|p| p.rerun_on_node_reboot_after_success.unwrap_or(true));
            let Some(e) = j.wire.prep_release.iter_mut().find(|e| e.node_id == node) else { continue };
            let release_running =
                e.job_release_task_execution_info.as_ref().is_some_and(|x| x.state == JobPrepReleaseState::Running);
            if let (true, Some(x)) = (release_running, e.job_release_task_execution_info.as_mut()) {
                x.state = JobPrepReleaseState::Completed;
                x.end_time = Some(Timestamp::now());
                x.result = Some(TaskExecutionResult::Failure);
                x.failure_info = Some(TaskFailureInformation {
                    category: ErrorCategory::ServerError,
                    code: "NodeLost".into(),
                    message: format!("node '{node}' went away while the release task ran"),
                });
            }
            let succeeded = e
                .job_preparation_task_execution_info
                .as_ref()
                .is_some_and(|x| x.result == Some(TaskExecutionResult::Success));
            if e.job_release_task_execution_info.is_none() && (lost || rerun || !succeeded) {
                e.job_preparation_task_execution_info = None;
            }
            HeadState::put_job(j, fx);
            let waiting = self.prep_waiting.remove(&(job.clone(), node.to_owned())).unwrap_or_default();
            let gangs: Vec<TaskKey> =
                waiting.into_iter().map(|(k, _)| k).filter(|k| self.gang_waiting.contains_key(k)).collect();
            for key in gangs {
                self.unwind_gang(key, fx);
            }
            if release_running {
                self.maybe_complete_job(&job, fx);
            }
        }
    }
}

//! One instance of a multi-instance task on this node, as Azure Batch runs it: fetch the
//! common resource files into the task directory, run the coordination command (its
//! background processes stay up, in the instance's cgroup), tell the head, then — on the
//! primary, once the head says every instance is ready — run the application. Every
//! instance ends when the head says so (the primary's exit, a failure, a requeue).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gangway_api::messages::{InstancePlan, LauncherMessage, StartTask, TaskFinished};
use gangway_api::slurm_step::NODE_BIN_ENV;
use gangway_api::{ErrorCategory, TaskFailureInformation, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::executor::{release, Executor, Launch, Outcome, RunMode, StopReason};
use crate::resource_files::fetch;

/// The environment Azure Batch gives every instance of a multi-instance task.
pub fn instance_env(plan: &InstancePlan, task_dir: &Path) -> Vec<(String, String)> {
    let hosts = &plan.hosts;
    let ccp: Vec<String> = hosts.iter().zip(&plan.cpus).map(|(h, c)| format!("{h} {c}")).collect();
    vec![
        ("AZ_BATCH_HOST_LIST".into(), hosts.join(",")),
        ("AZ_BATCH_NODE_LIST".into(), hosts.join(";")),
        ("AZ_BATCH_MASTER_NODE".into(), format!("{}:6000", hosts.first().map_or("", String::as_str))),
        ("AZ_BATCH_IS_CURRENT_NODE_MASTER".into(), (plan.instance == 0).to_string()),
        ("AZ_BATCH_TASK_SHARED_DIR".into(), task_dir.to_string_lossy().into_owned()),
        ("CCP_NODES".into(), format!("{} {}", hosts.len(), ccp.join(" "))),
        ("GANGWAY_INSTANCE".into(), plan.instance.to_string()),
    ]
}

impl Executor {
    /// The head says every instance coordinated: the primary may run the application.
    pub fn run_application(&self, id: &gangway_api::messages::AttemptId) {
        if let Some(go) = self.go.lock().expect("lock").remove(id) {
            let _ = go.send(());
        }
    }

    /// Runs this node's instance to its end and returns its report.
    pub(crate) async fn run_instance(
        self: &Arc<Self>,
        start: StartTask,
        plan: InstancePlan,
        mut stop_rx: mpsc::UnboundedReceiver<StopReason>,
    ) -> TaskFinished {
        let (go_tx, go_rx) = oneshot::channel();
        self.go.lock().expect("lock").insert(start.id.clone(), go_tx);
        let mut o = self.instance_outcome(&start, &plan, &mut stop_rx, go_rx).await;
        self.go.lock().expect("lock").remove(&start.id);
        // The primary's output files, as Azure Batch copies them (from its node).
        if plan.instance == 0 && !start.output_files.is_empty() {
            let dir = self.layout.task_dir(&start.id.job, &start.id.task);
            crate::executor::upload_outputs(&dir, start.output_files.clone(), self.head_store(&start), &mut o).await;
        }
        o.into_report(start.id, Some(plan.instance))
    }

    async fn instance_outcome(
        self: &Arc<Self>,
        start: &StartTask,
        plan: &InstancePlan,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
        go_rx: oneshot::Receiver<()>,
    ) -> Outcome {
        let dir = self.layout.task_dir(&start.id.job, &start.id.task);
        let wd = dir.join("wd");
        if let Err(e) = crate::users::as_user(self.user_of(&dir).as_deref(), || std::fs::create_dir_all(&wd)) {
            return Outcome::failed("TaskDirectory", format!("creating {}: {e}", dir.display()));
        }
        let (user, owner) = (self.user_of(&dir), start.user.as_ref().map(|u| u.uid));
        let files = &plan.common_resource_files;
        if let Err(e) = fetch(files, &dir, &self.head_link(), user.as_deref(), owner).await {
            return Outcome::failed(crate::resource_files::DOWNLOAD_FAILED, e.to_string());
        }
        if let Err(o) = self.fetch_resource_files(start, &dir).await {
            return o;
        }
        let mut env = self.layout.task_env(start, &self.node, &self.account_url);
        env.extend(instance_env(plan, &dir));
        // With managed MPI the ranks get their own cgroup with the memory limit; the instance's
        // (coordination command, agent) is confined to the CPUs only, so the node's share is
        // not counted twice.
        let mut limits = self.limits_of(start.allocation.as_ref());
        if start.mpi.is_some() {
            limits.memory_bytes = 0;
        }
        let cgroup = match self.new_cgroup_on('m', &limits) {
            Ok(c) => Arc::new(c),
            Err(o) => return o,
        };
        // A Slurm batch gang: srun on the primary starts its steps' node parts on every
        // instance through the agent relay (slurm_step.rs), as Open MPI starts its daemons.
        let site = match start.batch.is_some().then(|| self.batch_site(start, plan, &dir, &mut env, &cgroup)) {
            Some(Ok(site)) => Some(site),
            Some(Err(o)) => {
                self.end_instance(unwrap_cgroup(cgroup).await).await;
                return o;
            }
            None => None,
        };
        let o = self.instance_body(start, plan, &dir, env, &cgroup, stop_rx, go_rx).await;
        if let Some(site) = site {
            site.close().await;
        }
        self.end_instance(unwrap_cgroup(cgroup).await).await;
        o
    }

    /// Opens the agent site of a batch gang's instance and tells its processes where it is.
    fn batch_site(
        self: &Arc<Self>,
        start: &StartTask,
        plan: &InstancePlan,
        dir: &Path,
        env: &mut Vec<(String, String)>,
        cgroup: &Arc<Option<crate::cgroup::TaskCgroup>>,
    ) -> Result<crate::agent::SiteHandle, Outcome> {
        let me = crate::batch::node_bin()
            .ok_or_else(|| Outcome::failed("TaskDirectory", "finding gangway-node's own path failed".to_owned()))?;
        env.push((NODE_BIN_ENV.into(), me.to_owned()));
        let socket = crate::agent::socket_path(dir);
        env.push((crate::agent_cli::SOCKET_ENV.into(), socket.to_string_lossy().into_owned()));
        let mut aliases = vec![self.node.clone()];
        aliases.extend(plan.hosts.get(plan.instance as usize).cloned());
        let spec = crate::agent::SiteSpec {
            id: start.id.clone(),
            instance: plan.instance,
            aliases,
            dir: dir.to_path_buf(),
            env: env.clone(),
            cgroup: cgroup.clone(),
        };
        crate::agent::Site::open(self, spec).map_err(|e| Outcome::failed("TaskDirectory", e.to_string()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn instance_body(
        self: &Arc<Self>,
        start: &StartTask,
        plan: &InstancePlan,
        dir: &Path,
        env: Vec<(String, String)>,
        cgroup: &Arc<Option<crate::cgroup::TaskCgroup>>,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
        go_rx: oneshot::Receiver<()>,
    ) -> Outcome {
        let cgroup = cgroup.as_ref().as_ref();
        let launch = |command_line: String, max_wall_clock: Option<Duration>| Launch {
            dir: dir.to_path_buf(),
            command_line,
            env: env.clone(),
            max_wall_clock,
            cgroup_prefix: 'm',
            rank: None,
        };
        let mut coordination = None;
        if let Some(cmd) = &plan.coordination_command_line {
            let keep = RunMode { keep_leftovers: true, append_logs: false };
            let mut o = self.run_in(launch(cmd.clone(), None), cgroup, stop_rx, keep).await;
            if o.exit_code != Some(0) || o.failure.is_some() {
                o.failure.get_or_insert_with(|| TaskFailureInformation {
                    category: ErrorCategory::UserError,
                    code: "CoordinationCommandFailed".into(),
                    message: format!("the coordination command exited with {:?}", o.exit_code),
                });
                return o;
            }
            coordination = Some(o);
        }
        self.send(LauncherMessage::InstanceReady { id: start.id.clone(), instance: plan.instance });
        if let Some(mpi) = &start.mpi {
            // Managed MPI: every instance starts its ranks once all have coordinated.
            return tokio::select! {
                _ = go_rx => {
                    let step = crate::ranks::StepLayout { node_rank: plan.instance, nodes: plan.hosts.len() as u32 };
                    let fence = crate::ranks::HeadFence {
                        exec: self.clone(),
                        id: start.id.clone(),
                        instance: plan.instance,
                        epoch: std::sync::atomic::AtomicU32::new(0),
                        ranks_per_node: mpi.ranks_per_node,
                    };
                    self.ranks_outcome(start, mpi, stop_rx, step, fence).await
                }
                why = stop_rx.recv() => stopped_outcome(why.unwrap_or(StopReason::Shutdown), coordination),
            };
        }
        if plan.instance == 0 {
            let stopped = tokio::select! {
                _ = go_rx => None,
                why = stop_rx.recv() => Some(why.unwrap_or(StopReason::Shutdown)),
            };
            return match stopped {
                None => {
                    let app = launch(start.command_line.clone(), start.max_wall_clock_ms.map(Duration::from_millis));
                    let append = RunMode { keep_leftovers: false, append_logs: coordination.is_some() };
                    self.run_in(app, cgroup, stop_rx, append).await
                }
                Some(why) => stopped_outcome(why, coordination),
            };
        }
        // A subtask lives (with whatever its coordination started) until the head ends it.
        let why = stop_rx.recv().await.unwrap_or(StopReason::Shutdown);
        stopped_outcome(why, coordination)
    }

    /// SIGTERM to the instance's cgroup, the grace period, then SIGKILL, and its removal.
    async fn end_instance(&self, cgroup: Option<crate::cgroup::TaskCgroup>) {
        if let Some(cg) = &cgroup {
            cg.signal_all(libc::SIGTERM);
            let deadline = tokio::time::Instant::now() + self.kill_grace;
            while !cg.pids().is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        release(cgroup).await;
    }
}

/// The cgroup back from the site's commands, which let go of it once the site is closed.
async fn unwrap_cgroup(mut cgroup: Arc<Option<crate::cgroup::TaskCgroup>>) -> Option<crate::cgroup::TaskCgroup> {
    for _ in 0..100 {
        match Arc::try_unwrap(cgroup) {
            Ok(cg) => return cg,
            Err(still) => cgroup = still,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("an agent command still holds the instance's cgroup; it is left to the node's cleanup");
    None
}

/// How an instance ended when the head stopped it: ending with the task is a normal end.
pub(crate) fn stopped_outcome(why: StopReason, coordination: Option<Outcome>) -> Outcome {
    let failure = match why {
        StopReason::Killed(reason) if reason == "TaskEnded" => None,
        StopReason::Killed(reason) => Some(TaskFailureInformation {
            category: ErrorCategory::UserError,
            message: format!("the instance was killed ({reason})"),
            code: reason,
        }),
        StopReason::WallClock => Some(TaskFailureInformation {
            category: ErrorCategory::UserError,
            code: "TaskEnded".into(),
            message: "the task exceeded its maximum wall clock time".into(),
        }),
        StopReason::Shutdown => Some(TaskFailureInformation {
            category: ErrorCategory::ServerError,
            code: "NodeShutdown".into(),
            message: "the node's launcher shut down".into(),
        }),
    };
    Outcome {
        exit_code: coordination.as_ref().and_then(|c| c.exit_code).or(Some(0)),
        start_time: coordination.as_ref().and_then(|c| c.start_time),
        max_rss_bytes: coordination.and_then(|c| c.max_rss_bytes),
        failure,
        end_time: Timestamp::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_in_the_reference_formats() {
        let plan = InstancePlan {
            instance: 1,
            hosts: vec!["10.0.0.4".into(), "10.0.0.5".into()],
            nodes: vec!["a".into(), "b".into()],
            cpus: vec![1, 1],
            coordination_command_line: None,
            common_resource_files: Vec::new(),
        };
        let env: std::collections::HashMap<_, _> =
            instance_env(&plan, Path::new("/r/workitems/j/job-1/t")).into_iter().collect();
        assert_eq!(env["AZ_BATCH_HOST_LIST"], "10.0.0.4,10.0.0.5");
        assert_eq!(env["AZ_BATCH_NODE_LIST"], "10.0.0.4;10.0.0.5");
        assert_eq!(env["AZ_BATCH_MASTER_NODE"], "10.0.0.4:6000");
        assert_eq!(env["AZ_BATCH_IS_CURRENT_NODE_MASTER"], "false");
        assert_eq!(env["AZ_BATCH_TASK_SHARED_DIR"], "/r/workitems/j/job-1/t");
        assert_eq!(env["CCP_NODES"], "2 10.0.0.4 1 10.0.0.5 1");
    }
}

//! The pool's start task: run once per launcher process in `startup/`, through the same
//! spawn path as task attempts (own process group and cgroup), rerun after a non-zero exit
//! up to its `maxTaskRetryCount`, its status reported to the head at every step.

use std::sync::Arc;
use std::time::Duration;

use gangway_api::messages::{LauncherMessage, RunStartTask};
use gangway_api::{
    ErrorCategory, StartTaskInformation, StartTaskState, TaskExecutionResult, TaskFailureInformation, Timestamp,
};
use tokio::sync::mpsc;

use crate::executor::{Executor, Launch, StopReason};

/// The longest pause between two runs of a failing start task.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// This launcher process's start task.
#[derive(Default)]
pub struct StartTaskSlot {
    /// Its latest status; set once it was asked to run.
    status: Option<StartTaskInformation>,
    /// Stops it while it runs.
    stop: Option<mpsc::UnboundedSender<StopReason>>,
}

impl Executor {
    /// The start task's latest status, once it was asked to run.
    pub fn start_task_status(&self) -> Option<StartTaskInformation> {
        self.start_task.lock().expect("lock").status.clone()
    }

    /// Runs the start task, unless this process already ran it or runs it: then its status
    /// is only reported again (the head asks again after it restarted and forgot the node).
    pub fn run_start_task(self: &Arc<Self>, spec: RunStartTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let known = {
            let mut slot = self.start_task.lock().expect("lock");
            let known = slot.status.is_some() || slot.stop.is_some();
            if !known {
                slot.stop = Some(tx);
            }
            known.then(|| slot.status.clone())
        };
        if let Some(status) = known {
            // None: it is starting right now, and its first status is on its way.
            if let Some(status) = status {
                self.send(LauncherMessage::StartTaskStatus(status));
            }
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.start_task_runs(spec, rx).await });
    }

    /// Stops the start task if it runs; true while it has not ended yet.
    pub(crate) fn stop_start_task(&self, why: StopReason) -> bool {
        let slot = self.start_task.lock().expect("lock");
        if let Some(tx) = &slot.stop {
            let _ = tx.send(why);
        }
        slot.stop.is_some()
    }

    async fn start_task_runs(self: Arc<Self>, spec: RunStartTask, mut stop_rx: mpsc::UnboundedReceiver<StopReason>) {
        let dir = self.layout.startup_dir();
        let env = self.layout.start_task_env(&spec, &self.node, &self.account_url);
        let mut retry_count = 0u32;
        let mut last_retry_time = None;
        tracing::info!(command = %spec.command_line, "running the start task");
        let status = loop {
            let started = Timestamp::now();
            self.set_start_task_status(StartTaskInformation {
                state: StartTaskState::Running,
                start_time: started,
                end_time: None,
                exit_code: None,
                failure_info: None,
                retry_count,
                last_retry_time,
                result: None,
            });
            let launch = Launch {
                dir: dir.clone(),
                command_line: spec.command_line.clone(),
                env: env.clone(),
                max_wall_clock: None,
                cgroup_prefix: 's',
                rank: None,
            };
            let o = self.run_process(launch, &mut stop_rx).await;
            let succeeded = o.exit_code == Some(0) && o.failure.is_none();
            // Like a task: only a non-zero exit is retried, not a command that cannot start.
            let retries_left = match spec.max_task_retry_count {
                -1 => true,
                n => i64::from(retry_count) < i64::from(n),
            };
            let mut stopped = false;
            if !succeeded && o.failure.is_none() && retries_left {
                tracing::warn!(exit_code = ?o.exit_code, retry_count, "the start task failed; running it again");
                let pause = Duration::from_millis(100u64 << retry_count.min(6)).min(MAX_RETRY_PAUSE);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {
                        retry_count += 1;
                        last_retry_time = Some(Timestamp::now());
                        continue;
                    }
                    Some(_) = stop_rx.recv() => stopped = true,
                }
            }
            let failure_info = o.failure.or_else(|| {
                (!succeeded).then(|| TaskFailureInformation {
                    category: ErrorCategory::UserError,
                    code: "FailureExitCode".into(),
                    message: if stopped {
                        "the start task exited with a non-zero exit code and the launcher stopped before its next run"
                    } else {
                        "the start task process exited with a non-zero exit code"
                    }
                    .into(),
                })
            });
            break StartTaskInformation {
                state: StartTaskState::Completed,
                start_time: o.start_time.unwrap_or(started),
                end_time: Some(o.end_time),
                exit_code: o.exit_code,
                failure_info,
                retry_count,
                last_retry_time,
                result: Some(if succeeded { TaskExecutionResult::Success } else { TaskExecutionResult::Failure }),
            };
        };
        tracing::info!(exit_code = ?status.exit_code, result = ?status.result, retry_count, "the start task completed");
        self.set_start_task_status(status);
        self.start_task.lock().expect("lock").stop = None;
    }

    fn set_start_task_status(&self, status: StartTaskInformation) {
        self.start_task.lock().expect("lock").status = Some(status.clone());
        self.send(LauncherMessage::StartTaskStatus(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeLayout;

    fn executor(root: &std::path::Path) -> (Arc<Executor>, mpsc::UnboundedReceiver<LauncherMessage>) {
        let layout = NodeLayout::create(root).unwrap();
        let exec = Arc::new(Executor::new(layout, "n1".into(), "http://h:1".into(), None, Duration::from_secs(1)));
        let (tx, rx) = mpsc::unbounded_channel();
        *exec.out.lock().unwrap() = Some(tx);
        (exec, rx)
    }

    fn spec(cmd: &str, retries: i32) -> RunStartTask {
        RunStartTask { pool: "p".into(), command_line: cmd.into(), env: Vec::new(), max_task_retry_count: retries }
    }

    /// Every status the launcher reported, until the start task completed.
    async fn statuses(rx: &mut mpsc::UnboundedReceiver<LauncherMessage>) -> Vec<StartTaskInformation> {
        let mut out = Vec::new();
        while let Some(LauncherMessage::StartTaskStatus(s)) = rx.recv().await {
            let done = s.state == StartTaskState::Completed;
            out.push(s);
            if done {
                return out;
            }
        }
        out
    }

    #[tokio::test]
    async fn it_runs_in_startup_without_a_job_and_only_once_per_process() {
        let root = tempfile::tempdir().unwrap();
        let (exec, mut rx) = executor(root.path());
        let cmd = r#"/bin/sh -c 'echo "$AZ_BATCH_JOB_ID|$AZ_BATCH_TASK_DIR|$(pwd)" > "$AZ_BATCH_NODE_SHARED_DIR/seen"; echo out; echo err >&2'"#;
        exec.run_start_task(spec(cmd, 0));
        let seen = statuses(&mut rx).await;
        let states: Vec<_> = seen.iter().map(|s| s.state).collect();
        assert_eq!(states, [StartTaskState::Running, StartTaskState::Completed]);
        let done = seen.last().unwrap();
        assert_eq!((done.exit_code, done.result, done.retry_count), (Some(0), Some(TaskExecutionResult::Success), 0));
        let startup = root.path().join("startup");
        let shared = std::fs::read_to_string(root.path().join("shared/seen")).unwrap();
        assert_eq!(shared, format!("|{}|{}\n", startup.display(), startup.join("wd").display()));
        assert_eq!(std::fs::read_to_string(startup.join("stdout.txt")).unwrap(), "out\n");
        assert_eq!(std::fs::read_to_string(startup.join("stderr.txt")).unwrap(), "err\n");
        // Asked again (the head restarted), it only says how it went.
        std::fs::remove_file(root.path().join("shared/seen")).unwrap();
        exec.run_start_task(spec(cmd, 0));
        assert_eq!(statuses(&mut rx).await, std::slice::from_ref(done));
        assert!(!root.path().join("shared/seen").exists(), "not run twice");
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_retried_max_task_retry_count_times() {
        let root = tempfile::tempdir().unwrap();
        let (exec, mut rx) = executor(root.path());
        exec.run_start_task(spec("/bin/sh -c 'echo run >> ../runs; exit 3'", 2));
        let seen = statuses(&mut rx).await;
        let retries: Vec<_> = seen.iter().map(|s| (s.state, s.retry_count)).collect();
        use StartTaskState::{Completed, Running};
        assert_eq!(retries, [(Running, 0), (Running, 1), (Running, 2), (Completed, 2)]);
        let done = seen.last().unwrap();
        assert_eq!((done.exit_code, done.result), (Some(3), Some(TaskExecutionResult::Failure)));
        assert_eq!(done.failure_info.as_ref().map(|f| f.code.as_str()), Some("FailureExitCode"));
        assert!(done.last_retry_time.is_some());
        assert_eq!(std::fs::read_to_string(root.path().join("startup/runs")).unwrap(), "run\nrun\nrun\n");
        assert_eq!(exec.start_task_status().as_ref(), Some(done));
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_is_not_retried() {
        let root = tempfile::tempdir().unwrap();
        let (exec, mut rx) = executor(root.path());
        exec.run_start_task(spec("/no/such/program", 5));
        let done = statuses(&mut rx).await.pop().unwrap();
        assert_eq!((done.exit_code, done.retry_count), (None, 0));
        assert_eq!(done.failure_info.map(|f| f.code), Some("CommandNotFound".into()));
    }

    #[tokio::test]
    async fn stopping_the_launcher_stops_a_running_start_task() {
        let root = tempfile::tempdir().unwrap();
        let (exec, mut rx) = executor(root.path());
        exec.run_start_task(spec("sleep 30", 0));
        assert_eq!(rx.recv().await.map(|m| matches!(m, LauncherMessage::StartTaskStatus(_))), Some(true));
        tokio::time::timeout(Duration::from_secs(10), exec.stop_all()).await.expect("stopped in time");
        let done = exec.start_task_status().unwrap();
        assert_eq!(done.failure_info.map(|f| f.code), Some("NodeShutdown".into()));
    }
}

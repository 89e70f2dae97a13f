//! The executor's signal delivery, on real processes (process groups: no cgroups here).

use std::sync::Arc;
use std::time::Duration;

use gangway_api::messages::{AttemptId, LauncherMessage, StartTask};
use tokio::sync::mpsc;

use super::{Executor, StopReason};
use crate::layout::NodeLayout;

fn executor(root: &std::path::Path) -> (Arc<Executor>, mpsc::UnboundedReceiver<LauncherMessage>) {
    let layout = NodeLayout::create(root).unwrap();
    let exec = Arc::new(Executor::new(layout, "n1".into(), "http://h:1".into(), None, Duration::from_secs(1)));
    let (tx, rx) = mpsc::unbounded_channel();
    *exec.out.lock().unwrap() = Some(tx);
    (exec, rx)
}

/// A plain attempt `id` running `command_line` (shared with the other modules' tests).
pub(crate) fn start(id: &AttemptId, command_line: &str) -> StartTask {
    StartTask {
        id: id.clone(),
        pool: "p".into(),
        command_line: command_line.into(),
        env: Vec::new(),
        max_wall_clock_ms: None,
        retention_ms: 0,
        slots: 1,
        allocation: None,
        multi_instance: None,
        mpi: None,
        resource_files: Vec::new(),
        output_files: Vec::new(),
        job_prep_task: None,
        packages: Vec::new(),
        batch: None,
        user: None,
    }
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..300 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_signal_reaches_the_attempts_processes_once_and_leaves_it_running() {
    let root = tempfile::tempdir().unwrap();
    let (exec, mut rx) = executor(root.path());
    let id = AttemptId { job: "j".into(), task: "t".into(), attempt: 1 };
    let dir = exec.layout.task_dir("j", "t");
    let script = r#"trap 'echo got >> "$AZ_BATCH_TASK_DIR/sig"' USR1; touch "$AZ_BATCH_TASK_DIR/ready"; while :; do sleep 0.1; done"#;
    exec.start(start(&id, &format!("/bin/sh -c '{}'", script.replace('\'', r"'\''"))));
    until("the trap to be installed", || dir.join("ready").exists()).await;

    // Another attempt of the same task is not this one: nothing is sent.
    let stale = AttemptId { attempt: 2, ..id.clone() };
    assert_eq!(exec.signal(&stale, libc::SIGUSR1), 0);
    assert!(exec.signal(&id, libc::SIGUSR1) >= 1, "the process group was signalled");
    until("the trap to run", || std::fs::read_to_string(dir.join("sig")).is_ok_and(|t| t == "got\n")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::read_to_string(dir.join("sig")).unwrap(), "got\n", "the shell got it once");
    assert!(exec.running_ids().contains(&id), "the attempt keeps running");

    exec.stop(&id, StopReason::Killed("TaskTerminated".into()));
    let report = loop {
        match rx.recv().await {
            Some(LauncherMessage::TaskFinished(f)) => break f,
            Some(_) => continue,
            None => panic!("the executor went away"),
        }
    };
    assert_eq!(report.failure.map(|f| f.code).as_deref(), Some("TaskTerminated"));
    assert_eq!(exec.signal(&id, libc::SIGUSR1), 0, "an ended attempt is not signalled");
}

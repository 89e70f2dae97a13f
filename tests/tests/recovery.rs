//! Reliability: the head killed with SIGKILL mid-run, a launcher killed mid-task, and the
//! embedded cluster's `up`/`down` leaving nothing behind.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use gangway_api::client::ListOptions;
use gangway_api::*;
use gangway_tests::{bin, leftover_cgroups, wait_for, Cluster, Options};

const TASKS: usize = 1000;

fn expected_exit(i: usize) -> i32 {
    (i % 4) as i32
}

#[test]
fn killing_the_head_mid_run_loses_nothing_and_runs_nothing_twice() {
    let mut cluster = Cluster::start(Options { nodes: 2, slots: 4, ..Options::default() });
    let log = cluster.dir.path().join("ran.log");
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "big".into(), ..Default::default() }).unwrap();
    for chunk in 0..TASKS / 100 {
        let tasks = (chunk * 100..(chunk + 1) * 100)
            .map(|i| TaskAddParameter {
                id: format!("t{i:04}"),
                command_line: format!(
                    "/bin/sh -c 'sleep 0.02; echo $AZ_BATCH_TASK_ID >> {}; exit {}'",
                    log.display(),
                    expected_exit(i)
                ),
                ..Default::default()
            })
            .collect();
        let r = c.add_task_collection("big", tasks).unwrap();
        assert!(r.value.iter().all(|x| x.status == "success"));
    }
    wait_for(Duration::from_secs(60), "100 tasks to complete", || {
        (c.task_counts("big").ok()?.task_counts.completed >= 100).then_some(())
    });
    cluster.kill_head();
    std::thread::sleep(Duration::from_millis(300));
    cluster.start_head();
    let mut c = cluster.client();
    wait_for(Duration::from_secs(120), "every task to complete after the restart", || {
        (c.task_counts("big").ok()?.task_counts.completed == TASKS as u64).then_some(())
    });
    let tasks = c.list_tasks("big", &ListOptions::default()).unwrap();
    assert_eq!(tasks.len(), TASKS);
    for t in &tasks {
        let i: usize = t.id[1..].parse().unwrap();
        assert_eq!(t.state, TaskState::Completed);
        assert_eq!(
            t.execution_info.exit_code,
            Some(expected_exit(i)),
            "task {} has its real exit code: {:?}",
            t.id,
            t.execution_info
        );
        assert_eq!(t.execution_info.retry_count, 0);
    }
    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        *runs.entry(line.to_owned()).or_default() += 1;
    }
    assert_eq!(runs.len(), TASKS, "every task ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks ran more than once: {twice:?}");
    let counts = c.task_counts("big").unwrap().task_counts;
    assert_eq!((counts.succeeded, counts.failed), (TASKS as u64 / 4, 3 * TASKS as u64 / 4));
}

#[test]
fn a_killed_launchers_tasks_are_requeued_and_complete_elsewhere() {
    let mut cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "lost".into(), ..Default::default() }).unwrap();
    let marker = format!("1.{}", 1000 + std::process::id() % 9000);
    let tasks = (0..4)
        .map(|i| TaskAddParameter {
            id: format!("t{i}"),
            command_line: format!("sleep {marker}"),
            ..Default::default()
        })
        .collect();
    c.add_task_collection("lost", tasks).unwrap();
    let on_node1: Vec<String> = wait_for(Duration::from_secs(10), "four running tasks", || {
        let ts = c.list_tasks("lost", &ListOptions::default()).ok()?;
        let running: Vec<_> = ts.iter().filter(|t| t.state == TaskState::Running).collect();
        (running.len() == 4).then(|| {
            running.iter().filter(|t| t.node_info.as_ref().unwrap().node_id == "node1").map(|t| t.id.clone()).collect()
        })
    });
    assert_eq!(on_node1.len(), 2, "spread puts two on each node");
    cluster.kill_node(0);
    for id in &on_node1 {
        let t = wait_for(Duration::from_secs(30), "the lost tasks to complete on node2", || {
            let t = c.get_task("lost", id).ok()?;
            (t.state == TaskState::Completed).then_some(t)
        });
        assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Success));
        assert_eq!(t.node_info.unwrap().node_id, "node2");
        assert_eq!(
            (t.execution_info.requeue_count, t.execution_info.retry_count),
            (1, 0),
            "a recovery requeue is no retry"
        );
    }
    let n = c.get_node("node1").unwrap();
    assert_eq!(n.state, NodeState::Unusable);
    // The node comes back when its launcher does, and takes work again.
    cluster.start_node(0);
    cluster.wait_idle(2);
}

#[test]
fn up_detach_and_down_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let gangway = |args: &[&str]| {
        let out = Command::new(bin("gangway")).arg("--state-dir").arg(&state).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The launchers' directories elsewhere (`--nodes-dir`): `down` removes them too.
    let nodes_dir = dir.path().join("scratch");
    let nodes = nodes_dir.to_str().unwrap();
    let (code, _, err) = gangway(&["up", "--nodes", "2", "--detach", "--slots-per-node", "1", "--nodes-dir", nodes]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = gangway(&["up", "--nodes", "1", "--detach"]);
    assert_ne!(code, 0, "a second cluster in the same directory is refused");
    assert!(err.contains("already running"), "{err}");
    let (code, job, _) = gangway(&["submit", "--wait", "--", "/bin/sh", "-c", "sleep 0.2; echo $AZ_BATCH_NODE_ID"]);
    assert_eq!(code, 0);
    let (_, out, _) = gangway(&["task", "logs", job.trim(), "1"]);
    assert!(out == "node1\n" || out == "node2\n", "{out}");
    let pids: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("cluster.pids")).unwrap()).unwrap();
    let (code, _, err) = gangway(&["down"]);
    assert_eq!(code, 0, "{err}");
    let mut all = vec![pids["head"].as_i64().unwrap()];
    all.extend(pids["nodes"].as_array().unwrap().iter().map(|p| p.as_i64().unwrap()));
    for pid in all {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs after down");
    }
    for (i, name) in ["node1", "node2"].iter().enumerate() {
        let root = nodes_dir.join(name);
        assert!(leftover_cgroups(name, &root).is_empty(), "cgroups of node{} left behind", i + 1);
    }
    assert!(!state.join("cluster.pids").exists());
    assert!(!nodes_dir.exists(), "the --nodes-dir is gone with the launchers");
}

#[test]
fn nodes_and_their_scheduling_state_survive_a_head_restart() {
    let mut cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    let r = c.raw("POST", "/pools/default/nodes/node2/disablescheduling", Some(b"{}"), &[]).unwrap();
    assert!(r.status < 300, "{}", r.text());
    cluster.kill_node(0);
    cluster.kill_head();
    cluster.start_head();
    let mut c = cluster.client();
    // Known at once, before any launcher has said hello again.
    let nodes = c.list_nodes(None).unwrap();
    assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["node1", "node2"]);
    wait_for(Duration::from_secs(20), "node2 to come back disabled (offline) and node1 to be lost", || {
        let n1 = c.get_node("node1").ok()?;
        let n2 = c.get_node("node2").ok()?;
        (n2.state == NodeState::Offline
            && n2.scheduling_state == SchedulingState::Disabled
            && n1.state == NodeState::Unusable)
            .then_some(())
    });
    // Nothing may run on the disabled node; with node1 back, the task runs there.
    cluster.start_node(0);
    c.add_job(&JobAddParameter { id: "after".into(), ..Default::default() }).unwrap();
    c.add_task("after", &TaskAddParameter { id: "t".into(), command_line: "/bin/true".into(), ..Default::default() })
        .unwrap();
    let t = wait_for(Duration::from_secs(20), "the task", || {
        let t = c.get_task("after", "t").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    assert_eq!(t.node_info.unwrap().node_id, "node1");
}

//! Node lifecycle on a real cluster: the pool's start task, disabling and enabling scheduling,
//! and removing a node from its pool (its launcher exits and leaves no cgroups).

use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::*;
use gangway_tests::{leftover_cgroups, wait_for, Cluster, Options};

fn pool_with_start_task(id: &str, cmd: &str, retries: i32) -> PoolAddParameter {
    PoolAddParameter {
        id: id.into(),
        task_slots_per_node: Some(1),
        start_task: Some(StartTask {
            command_line: cmd.into(),
            environment_settings: Vec::new(),
            wait_for_success: true,
            max_task_retry_count: retries,
        }),
        ..Default::default()
    }
}

fn job_on(c: &mut Client, id: &str, pool: &str) {
    let pool_info = Some(PoolInformation { pool_id: pool.into() });
    c.add_job(&JobAddParameter { id: id.into(), pool_info, ..Default::default() }).unwrap();
}

fn task(id: &str, cmd: &str) -> TaskAddParameter {
    TaskAddParameter { id: id.into(), command_line: cmd.into(), ..Default::default() }
}

fn wait_task(c: &mut Client, job: &str, task: &str, what: &str, f: impl Fn(&Task) -> bool) -> Task {
    wait_for(Duration::from_secs(30), &format!("task {job}/{task}: {what}"), || {
        let t = c.get_task(job, task).ok()?;
        f(&t).then_some(t)
    })
}

fn wait_node(c: &mut Client, node: &str, what: &str, f: impl Fn(&ComputeNode) -> bool) -> ComputeNode {
    wait_for(Duration::from_secs(30), &format!("node {node}: {what}"), || {
        let n = c.get_node(node).ok()?;
        f(&n).then_some(n)
    })
}

fn post(c: &mut Client, path: &str, body: &str) -> (u16, String) {
    let r = c.raw("POST", path, Some(body.as_bytes()), &[]).unwrap();
    (r.status, r.text())
}

fn running_on(t: &Task) -> Option<&str> {
    (t.state == TaskState::Running).then(|| t.node_info.as_ref().map(|n| n.node_id.as_str())).flatten()
}

#[test]
fn the_start_task_prepares_each_node_before_it_takes_tasks() {
    // The sleep makes a task that ran before the start task finished miss the marker.
    let cmd = "/bin/sh -c 'sleep 0.5; echo ready-$AZ_BATCH_NODE_ID > $AZ_BATCH_NODE_SHARED_DIR/marker; echo job=$AZ_BATCH_JOB_ID'";
    let pool = pool_with_start_task("prep", cmd, 0);
    let mut cluster = Cluster::start(Options { nodes: 0, pool: Some(pool), ..Options::default() });
    let mut c = cluster.client();
    job_on(&mut c, "j", "prep");
    for i in 0..2 {
        c.add_task("j", &task(&format!("t{i}"), "/bin/sh -c 'cat $AZ_BATCH_NODE_SHARED_DIR/marker'")).unwrap();
    }
    for i in 0..2 {
        cluster.nodes.push(None);
        cluster.start_node(i);
    }
    for i in 0..2 {
        let t = wait_task(&mut c, "j", &format!("t{i}"), "complete", |t| t.state == TaskState::Completed);
        assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Success), "{:?}", t.execution_info);
        let node = t.node_info.unwrap().node_id;
        let out = c.get_task_file("j", &t.id, "stdout.txt", 0).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("ready-{node}\n"));
    }
    for (i, name) in ["node1", "node2"].iter().enumerate() {
        let n = wait_node(&mut c, name, "idle", |n| n.state == NodeState::Idle);
        let info = n.start_task_info.expect("startTaskInfo");
        assert_eq!((info.state, info.exit_code, info.retry_count), (StartTaskState::Completed, Some(0), 0));
        assert_eq!(info.result, Some(TaskExecutionResult::Success));
        assert!(info.end_time.is_some_and(|e| e >= info.start_time));
        let startup = cluster.node_root(i).join("startup");
        assert_eq!(std::fs::read_to_string(startup.join("stdout.txt")).unwrap(), "job=\n", "no AZ_BATCH_JOB_ID");
        assert!(startup.join("wd").is_dir());
    }
    let (code, out, err) = cluster.cli(&["node", "show", "node1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Start task: /bin/sh") && out.contains("completed (result success, exit code 0"), "{out}");
}

#[test]
fn the_cli_creates_pools_with_a_start_task() {
    let cluster = Cluster::start(Options { nodes: 0, ..Options::default() });
    let args = ["pool", "create", "p", "--start-task", "/bin/sh -c 'exit 0'", "--start-task-wait", "false"];
    let (code, _, err) = cluster.cli(&[&args[..], &["--start-task-retries", "-1"]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cluster.cli(&["--json", "pool", "show", "p"]);
    assert_eq!(code, 0, "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    let want =
        serde_json::json!({"commandLine": "/bin/sh -c 'exit 0'", "waitForSuccess": false, "maxTaskRetryCount": -1});
    assert_eq!(p["startTask"], want);
    let (code, _, err) = cluster.cli(&["pool", "create", "q", "--start-task", "/bin/sh -c 'oops"]);
    assert!(code != 0 && err.contains("startTask.commandLine"), "{err}");
    let (code, _, err) = cluster.cli(&["pool", "create", "q", "--start-task-wait", "false"]);
    assert!(code != 0 && err.contains("--start-task"), "{err}");
}

#[test]
fn a_failing_start_task_bars_the_node_and_its_tasks_wait() {
    let pool = pool_with_start_task("broken", "/bin/sh -c 'echo nope >&2; exit 3'", 1);
    let cluster = Cluster::start(Options { nodes: 1, pool: Some(pool), ..Options::default() });
    let mut c = cluster.client();
    let n = c.get_node("node1").unwrap();
    assert_eq!(n.state, NodeState::StartTaskFailed);
    let info = n.start_task_info.expect("startTaskInfo");
    assert_eq!((info.state, info.exit_code, info.retry_count), (StartTaskState::Completed, Some(3), 1));
    assert_eq!(info.result, Some(TaskExecutionResult::Failure));
    assert_eq!(info.failure_info.map(|f| f.code).as_deref(), Some("FailureExitCode"));
    let stderr = std::fs::read_to_string(cluster.node_root(0).join("startup/stderr.txt")).unwrap();
    assert_eq!(stderr, "nope\n");
    job_on(&mut c, "j", "broken");
    c.add_task("j", &task("t", "/bin/true")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.get_task("j", "t").unwrap().state, TaskState::Active);
    assert_eq!(c.get_node("node1").unwrap().state, NodeState::StartTaskFailed);
}

#[test]
fn disabling_with_requeue_moves_a_running_task_to_the_other_node() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    job_on(&mut c, "j", "default");
    c.add_task("j", &task("t", "sleep 30")).unwrap();
    let first = wait_task(&mut c, "j", "t", "run", |t| running_on(t).is_some());
    let first = running_on(&first).unwrap().to_owned();
    let (code, _, err) = cluster.cli(&["node", "disable", &first]);
    assert_eq!(code, 0, "{err}");
    let t = wait_task(&mut c, "j", "t", "run on the other node", |t| running_on(t).is_some_and(|n| n != first));
    assert_eq!((t.execution_info.requeue_count, t.execution_info.retry_count), (1, 0));
    let n = wait_node(&mut c, &first, "offline", |n| n.state == NodeState::Offline);
    assert_eq!((n.scheduling_state, n.running_tasks_count), (SchedulingState::Disabled, 0));
    let (code, _, err) = cluster.cli(&["node", "enable", &first]);
    assert_eq!(code, 0, "{err}");
    let n = wait_node(&mut c, &first, "idle", |n| n.state == NodeState::Idle);
    assert_eq!(n.scheduling_state, SchedulingState::Enabled);
    c.terminate_job("j", None).unwrap();
}

#[test]
fn removing_a_node_lets_its_task_finish_then_its_launcher_exits_cleanly() {
    let mut cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    job_on(&mut c, "j", "default");
    c.add_task("j", &task("t", "sleep 1")).unwrap();
    let t = wait_task(&mut c, "j", "t", "run", |t| running_on(t).is_some());
    let node = running_on(&t).unwrap().to_owned();
    let i: usize = node.trim_start_matches("node").parse::<usize>().unwrap() - 1;
    let (code, _, err) = cluster.cli(&["node", "remove", &node, "--option", "taskcompletion"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(c.get_node(&node).unwrap().state, NodeState::LeavingPool);
    let t = wait_task(&mut c, "j", "t", "complete", |t| t.state == TaskState::Completed);
    assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Success));
    let mut child = cluster.nodes[i].take().unwrap();
    let status = wait_for(Duration::from_secs(15), "the removed node's launcher to exit", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0), "{}", cluster.head_log());
    assert_eq!(leftover_cgroups(&node, &cluster.node_root(i)), Vec::<std::path::PathBuf>::new());
    let err = c.get_node(&node).unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(c.get_pool("default").unwrap().current_dedicated_nodes, 1);
    // Started again, it joins afresh.
    cluster.start_node(i);
    wait_node(&mut c, &node, "idle again", |n| n.state == NodeState::Idle);
}

#[test]
fn node_operations_refuse_bad_input() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_pool(&PoolAddParameter { id: "other".into(), ..Default::default() }).unwrap();
    let (status, text) =
        post(&mut c, "/pools/default/nodes/node1/disablescheduling", r#"{"nodeDisableSchedulingOption":"x"}"#);
    assert_eq!(status, 400, "{text}");
    assert!(["requeue", "terminate", "taskcompletion"].iter().all(|v| text.contains(v)), "{text}");
    let (status, text) = post(&mut c, "/pools/default/nodes/nope/disablescheduling", "");
    assert!(status == 404 && text.contains("'nope'"), "{status} {text}");
    let (status, text) = post(&mut c, "/pools/other/nodes/node1/enablescheduling", "");
    assert!(status == 404 && text.contains("pool 'default'"), "{status} {text}");
    let (status, text) = post(&mut c, "/pools/other/removenodes", r#"{"nodeList":["node1"]}"#);
    assert!(status == 409 && text.contains("NodeNotInPool"), "{status} {text}");
    let (status, text) =
        post(&mut c, "/pools/default/removenodes", r#"{"nodeList":["node1"],"nodeDeallocationOption":"later"}"#);
    assert!(status == 400 && text.contains("taskcompletion"), "{status} {text}");
    let (code, _, err) = cluster.cli(&["node", "disable", "node1", "--option", "soon"]);
    assert!(code != 0 && err.contains("requeue"), "{err}");
    let (code, _, err) = cluster.cli(&["node", "remove", "ghost"]);
    assert!(code != 0 && err.contains("'ghost'"), "{err}");
    let n = c.get_node("node1").unwrap();
    assert_eq!((n.state, n.scheduling_state), (NodeState::Idle, SchedulingState::Enabled), "nothing changed");
    // The alias without the pool works too.
    let (status, text) = post(&mut c, "/nodes/node1/disablescheduling", "");
    assert_eq!(status, 200, "{text}");
    assert_eq!(c.get_node("node1").unwrap().state, NodeState::Offline);
}

#[test]
fn an_idle_cluster_keeps_its_launcher_streams() {
    // The head heartbeats an idle stream, so no launcher takes its silence for a dead head
    // (a minute: 200 heartbeat intervals here; three silent ones dropped the stream before).
    let cluster = Cluster::start(Options { nodes: 2, ..Options::default() });
    std::thread::sleep(Duration::from_secs(60));
    let log = cluster.head_log();
    assert_eq!(log.matches("launcher connected").count(), 2, "{log}");
    assert_eq!(log.matches("launcher disconnected").count(), 0, "{log}");
}

#[test]
fn node_counts_say_how_many_of_each_pools_nodes_are_in_each_state() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_pool(&PoolAddParameter { id: "empty".into(), ..Default::default() }).unwrap();
    c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    let long = TaskAddParameter { id: "t".into(), command_line: "sleep 30".into(), ..Default::default() };
    c.add_task("j", &long).unwrap();
    let counts = wait_for(Duration::from_secs(20), "one node to run the task", || {
        let counts = c.pool_node_counts().ok()?;
        let default = counts.iter().find(|p| p.pool_id == "default")?;
        (default.dedicated.running == 1).then_some(counts)
    });
    let pools: Vec<(&str, u32, u32, u32)> =
        counts.iter().map(|p| (p.pool_id.as_str(), p.dedicated.idle, p.dedicated.running, p.dedicated.total)).collect();
    assert_eq!(pools, [("default", 1, 1, 2), ("empty", 0, 0, 0)]);
    assert!(counts.iter().all(|p| p.low_priority == NodeCounts::default()));
    // Azure's field names, and a filter on the pool.
    let r = c.raw("GET", "/nodecounts?$filter=poolId%20eq%20'empty'", None, &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["value"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["value"][0]["dedicated"]["waitingForStartTask"], 0, "{v}");
    assert_eq!(v["value"][0]["lowPriority"]["upgradingOS"], 0, "{v}");
    c.terminate_job("j", None).unwrap();
}

#[test]
fn a_nodes_own_files_are_listed_read_and_deleted_within_its_batch_directories() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    let task = TaskAddParameter { id: "t".into(), command_line: "/bin/echo hello".into(), ..Default::default() };
    c.add_task("j", &task).unwrap();
    wait_for(Duration::from_secs(20), "the task", || {
        (c.get_task("j", "t").ok()?.state == TaskState::Completed).then_some(())
    });
    let base = "/pools/default/nodes/node1/files";
    let names = |c: &mut Client, query: &str| -> Vec<String> {
        let r = c.raw("GET", &format!("{base}{query}"), None, &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["value"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    };
    let top = names(&mut c, "");
    assert_eq!(
        top,
        ["applications", "fsmounts", "shared", "startup", "volatile", "workitems"],
        "Azure's directories only"
    );
    let all = names(&mut c, "?recursive=true");
    assert!(all.contains(&"workitems/j/job-1/t/stdout.txt".to_owned()), "{all:?}");
    assert!(!all.iter().any(|n| n.starts_with("tls") || n.starts_with("running")), "never the key or records: {all:?}");
    let file = c.raw("GET", &format!("{base}/workitems/j/job-1/t/stdout.txt"), None, &[]).unwrap();
    assert_eq!((file.status, file.text()), (200, "hello\n".to_owned()));
    for (path, status) in [("tls/node.key", 404), ("running", 404), ("../x", 400), ("workitems", 409)] {
        let method = if path == "workitems" { "DELETE" } else { "GET" };
        let r = c.raw(method, &format!("{base}/{path}"), None, &[]).unwrap();
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    }
    let gone = c.raw("DELETE", &format!("{base}/workitems/j/job-1/t/stdout.txt"), None, &[]).unwrap();
    assert_eq!(gone.status, 200, "{}", gone.text());
    let again = c.raw("GET", &format!("{base}/workitems/j/job-1/t/stdout.txt"), None, &[]).unwrap();
    assert_eq!(again.status, 404);
    let elsewhere = c.raw("GET", "/pools/nopool/nodes/node1/files", None, &[]).unwrap();
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.text());
}

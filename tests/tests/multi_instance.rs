//! Multi-instance tasks on a real three-node cluster: every instance coordinates, the primary
//! runs the application with the Azure Batch environment, subtasks end with it, a failing
//! coordination fails (and retries) the whole task, and impossible requests are refused.

use std::time::Duration;

use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

fn multi(id: &str, n: u32, coordination: Option<&str>, cmd: &str) -> TaskAddParameter {
    TaskAddParameter {
        id: id.into(),
        command_line: cmd.into(),
        multi_instance_settings: Some(MultiInstanceSettings {
            number_of_instances: n,
            coordination_command_line: coordination.map(str::to_owned),
            common_resource_files: Vec::new(),
        }),
        ..Default::default()
    }
}

fn done(c: &mut gangway_api::client::Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(30), "the multi-instance task", || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

#[test]
fn instances_coordinate_then_the_primary_runs_the_application() {
    let cluster = Cluster::start(Options { nodes: 3, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mpi".into(), ..Default::default() }).unwrap();
    let marker = format!("{}", 6000 + std::process::id() % 1000);
    // Coordination leaves a daemon behind (as smpd or orted would); it must live until the end.
    let coord = format!("/bin/sh -c 'echo coordinated $AZ_BATCH_NODE_ID; (sleep {marker} &)'");
    let app = format!("/bin/sh -c 'pgrep -c -f \"^sleep {marker}$\"; echo $AZ_BATCH_IS_CURRENT_NODE_MASTER $AZ_BATCH_HOST_LIST $CCP_NODES; exit 3'");
    c.add_task("mpi", &multi("t", 3, Some(&coord), &app)).unwrap();
    let t = done(&mut c, "mpi", "t");
    assert_eq!(t.execution_info.exit_code, Some(3), "the primary's exit code is the task's");
    let primary = t.node_info.unwrap().node_id;
    let out = String::from_utf8(c.get_task_file("mpi", "t", "stdout.txt", 0).unwrap()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("coordinated {primary}"), "{out}");
    assert_eq!(lines[1], "3", "every instance's coordination daemon is alive when the application runs: {out}");
    assert_eq!(lines[2], "true 127.0.0.1,127.0.0.1,127.0.0.1 3 127.0.0.1 2 127.0.0.1 2 127.0.0.1 2", "{out}");
    let subtasks: ListResponse<SubtaskInformation> =
        serde_json::from_slice(&c.raw("GET", "/jobs/mpi/tasks/t/subtasksinfo", None, &[]).unwrap().body).unwrap();
    let subtasks = subtasks.value;
    assert_eq!(subtasks.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
    let mut nodes: Vec<&str> = subtasks.iter().map(|s| s.node_info.node_id.as_str()).collect();
    nodes.push(&primary);
    nodes.sort();
    assert_eq!(nodes, ["node1", "node2", "node3"], "one instance per node");
    wait_for(Duration::from_secs(10), "subtasks to end with the primary", || {
        let v: ListResponse<SubtaskInformation> =
            serde_json::from_slice(&c.raw("GET", "/jobs/mpi/tasks/t/subtasksinfo", None, &[]).ok()?.body).ok()?;
        v.value.iter().all(|s| s.state == SubtaskState::Completed).then_some(())
    });
    // The coordination daemons died with their instances.
    let left = std::process::Command::new("pgrep").args(["-f", &format!("^sleep {marker}$")]).output().unwrap();
    assert!(left.stdout.is_empty(), "daemons left behind: {}", String::from_utf8_lossy(&left.stdout));
    cluster.wait_idle(3);
}

#[test]
fn a_failing_coordination_fails_and_retries_the_whole_task() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "bad".into(), ..Default::default() }).unwrap();
    let mut t = multi("t", 2, Some("/bin/sh -c 'test $AZ_BATCH_IS_CURRENT_NODE_MASTER = true || exit 9'"), "/bin/true");
    t.constraints = Some(TaskConstraints { max_task_retry_count: Some(1), ..Default::default() });
    c.add_task("bad", &t).unwrap();
    let t = done(&mut c, "bad", "t");
    assert_eq!(t.execution_info.exit_code, Some(9));
    assert_eq!(t.execution_info.retry_count, 1, "retried whole, once");
    assert_eq!(t.execution_info.failure_info.unwrap().code, "SubtaskFailed");
    cluster.wait_idle(2);
}

#[test]
fn impossible_multi_instance_requests_are_refused_at_submit_and_too_big_ones_wait() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    // More instances than nodes is no error: the task stays active until nodes join, as in
    // Azure Batch.
    c.add_task("j", &multi("big", 3, None, "/bin/true")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(c.get_task("j", "big").unwrap().state, TaskState::Active);
    let err = c.add_task("j", &multi("zero", 0, None, "/bin/true")).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");
    let r = c.raw("POST", "/pools", Some(br#"{"id":"nocomm","taskSlotsPerNode":1}"#), &[]).unwrap();
    assert_eq!(r.status, 201);
    c.add_job(&JobAddParameter {
        id: "j2".into(),
        pool_info: Some(PoolInformation { pool_id: "nocomm".into() }),
        ..Default::default()
    })
    .unwrap();
    let err = c.add_task("j2", &multi("t", 1, None, "/bin/true")).unwrap_err().to_string();
    assert!(err.contains("enableInterNodeCommunication"), "{err}");
    let ids: Vec<String> = c.list_tasks("j", &Default::default()).unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["big"], "nothing refused was added");
}

#[test]
fn common_resource_files_reach_every_instance_and_the_tasks_own_only_the_primary() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    let src = cluster.dir.path().join("input.dat");
    std::fs::write(&src, "shared input\n").unwrap();
    c.add_job(&JobAddParameter { id: "rf".into(), ..Default::default() }).unwrap();
    let file =
        |to: &str| ResourceFile { file_path: to.into(), path: Some(src.display().to_string()), ..Default::default() };
    let mut t = multi(
        "t",
        2,
        Some("/bin/sh -c 'cat $AZ_BATCH_TASK_SHARED_DIR/common.dat; ls $AZ_BATCH_TASK_WORKING_DIR'"),
        "/bin/sh -c 'cat own.dat'",
    );
    t.multi_instance_settings.as_mut().unwrap().common_resource_files = vec![file("common.dat")];
    t.resource_files = vec![file("own.dat")];
    c.add_task("rf", &t).unwrap();
    let done = done(&mut c, "rf", "t");
    assert_eq!(done.execution_info.exit_code, Some(0), "{:?}", done.execution_info);
    let primary = done.node_info.unwrap().node_id;
    for (k, node) in ["node1", "node2"].iter().enumerate() {
        let out = std::fs::read_to_string(cluster.node_root(k).join("workitems/rf/job-1/t/stdout.txt")).unwrap();
        assert!(out.starts_with("shared input\n"), "{node} got the common file in the task directory: {out:?}");
        if *node == primary {
            assert!(
                out.contains("own.dat") && out.ends_with("shared input\n"),
                "the primary has its own file in wd: {out:?}"
            );
        } else {
            assert!(!out.contains("own.dat"), "a subtask does not get the task's own files: {out:?}");
        }
    }
}

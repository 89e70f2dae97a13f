//! Tasks on a real two-node cluster: placement, environment, files, exit codes, retries,
//! wall-clock limits, terminate, retention, and cleanup of processes and cgroups.

use std::collections::HashSet;
use std::time::Duration;

use gangway_api::client::{ClientError, ListOptions};
use gangway_api::*;
use gangway_tests::{leftover_cgroups, wait_for, Cluster, Options};

fn task(id: &str, cmd: &str) -> TaskAddParameter {
    TaskAddParameter { id: id.into(), command_line: cmd.into(), ..Default::default() }
}

fn job(c: &mut gangway_api::client::Client, id: &str) {
    c.add_job(&JobAddParameter { id: id.into(), ..Default::default() }).unwrap();
}

fn wait_done(c: &mut gangway_api::client::Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(30), &format!("task {job}/{task} to complete"), || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

#[test]
fn tasks_spread_over_both_nodes_with_the_batch_environment() {
    let cluster = Cluster::start(Options::default());
    let mut c = cluster.client();
    job(&mut c, "spread");
    let tasks: Vec<_> = (0..4)
        .map(|i| task(&format!("t{i}"), "/bin/sh -c 'echo $AZ_BATCH_NODE_ID $AZ_BATCH_TASK_ID; sleep 0.5'"))
        .collect();
    let r = c.add_task_collection("spread", tasks).unwrap();
    assert!(r.value.iter().all(|x| x.status == "success"), "{r:?}");
    let mut nodes = HashSet::new();
    for i in 0..4 {
        let t = wait_done(&mut c, "spread", &format!("t{i}"));
        assert_eq!(t.execution_info.exit_code, Some(0));
        let node = t.node_info.unwrap().node_id;
        let out = String::from_utf8(c.get_task_file("spread", &t.id, "stdout.txt", 0).unwrap()).unwrap();
        assert_eq!(out, format!("{node} {}\n", t.id));
        nodes.insert(node);
    }
    assert_eq!(nodes, HashSet::from(["node1".to_string(), "node2".to_string()]), "spread uses both nodes");
    let counts = c.task_counts("spread").unwrap().task_counts;
    assert_eq!((counts.completed, counts.succeeded, counts.failed), (4, 4, 0));
}

#[test]
fn command_lines_are_not_run_under_a_shell() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "noshell");
    c.add_task("noshell", &task("t", "echo $HOME 'a  b' *")).unwrap();
    wait_done(&mut c, "noshell", "t");
    assert_eq!(c.get_task_file("noshell", "t", "stdout.txt", 0).unwrap(), b"$HOME a  b *\n");
}

#[test]
fn files_are_listed_and_read_with_ranges() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "files");
    c.add_task(
        "files",
        &task("t", "/bin/sh -c 'printf 0123456789; echo oops >&2; mkdir -p sub; echo data > sub/out.dat'"),
    )
    .unwrap();
    wait_done(&mut c, "files", "t");
    let names: Vec<String> = c.list_task_files("files", "t").unwrap().into_iter().map(|f| f.name).collect();
    for want in ["stdout.txt", "stderr.txt", "wd", "wd/sub/out.dat"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert_eq!(c.get_task_file("files", "t", "stdout.txt", 4).unwrap(), b"456789");
    assert_eq!(c.get_task_file("files", "t", "stderr.txt", 0).unwrap(), b"oops\n");
    assert_eq!(c.get_task_file("files", "t", "wd/sub/out.dat", 0).unwrap(), b"data\n");
    let r = c.raw("GET", "/jobs/files/tasks/t/files/stdout.txt", None, &[("Range", "bytes=2-4")]).unwrap();
    assert_eq!((r.status, r.body.as_slice(), r.header("content-range")), (206, &b"234"[..], Some("bytes 2-4/10")));
    let err = c.get_task_file("files", "t", "missing.txt", 0).unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // Without recursive=true, the top level only, as in Azure.
    let r = c.raw("GET", "/jobs/files/tasks/t/files", None, &[]).unwrap();
    let top: ListResponse<NodeFile> = serde_json::from_slice(&r.body).unwrap();
    let top: Vec<String> = top.value.into_iter().map(|f| f.name).collect();
    assert!(top.contains(&"wd".to_string()) && !top.iter().any(|n| n.contains('/')), "{top:?}");
    // Deleting: a file, a directory only with recursive=true, nothing outside.
    let del = |c: &mut gangway_api::client::Client, path: &str| {
        let r = c.raw("DELETE", &format!("/jobs/files/tasks/t/files/{path}"), None, &[]).unwrap();
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    for (path, status, words) in [
        ("wd/sub", 409, "not empty"),
        ("wd/sub?recursive=maybe", 400, "recursive is 'maybe'"),
        ("stderr.txt", 200, ""),
        ("stderr.txt", 404, "does not exist"),
        ("wd/sub?recursive=true", 200, ""),
        ("wd%2F..%2F..%2Fx", 400, "'..'"),
    ] {
        let (got, body) = del(&mut c, path);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(words), "{path}: {body}");
    }
    assert_eq!(c.get_task_file("files", "t", "wd/sub/out.dat", 0).unwrap_err().status(), Some(404));
    assert_eq!(c.get_task_file("files", "t", "stdout.txt", 0).unwrap(), b"0123456789");
}

#[test]
fn exit_codes_retries_and_failure_information() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "exits");
    let retry = TaskConstraints { max_task_retry_count: Some(2), ..Default::default() };
    c.add_task("exits", &TaskAddParameter { constraints: Some(retry), ..task("retry", "/bin/sh -c 'exit 7'") })
        .unwrap();
    c.add_task("exits", &task("missing", "/no/such/program")).unwrap();
    c.add_task("exits", &task("ok", "/bin/true")).unwrap();
    let t = wait_done(&mut c, "exits", "retry");
    assert_eq!(t.execution_info.exit_code, Some(7));
    assert_eq!((t.execution_info.retry_count, t.execution_info.requeue_count), (2, 0), "2 retries: 3 attempts");
    assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Failure));
    assert_eq!(t.execution_info.failure_info.unwrap().code, "FailureExitCode");
    let t = wait_done(&mut c, "exits", "missing");
    assert_eq!(t.execution_info.exit_code, None);
    assert_eq!(t.execution_info.failure_info.unwrap().code, "CommandNotFound");
    let t = wait_done(&mut c, "exits", "ok");
    assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Success));
    let failed = c
        .list_tasks("exits", &ListOptions { filter: Some("executionInfo/exitCode gt 0".into()), ..Default::default() })
        .unwrap();
    assert_eq!(failed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["retry"]);
}

fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
            if cmd.contains(marker) && !zombie {
                out.push(cmd);
            }
        }
    }
    out
}

#[test]
fn wall_clock_limit_and_terminate_kill_the_whole_tree() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "kill");
    let marker = format!("{}", 4000 + std::process::id() % 1000);
    // A shell that leaves a background child behind and ignores nothing.
    let cmd = format!("/bin/sh -c 'sleep {marker} & sleep {marker}'");
    let limit =
        TaskConstraints { max_wall_clock_time: Some(IsoDuration(Duration::from_secs(1))), ..Default::default() };
    c.add_task("kill", &TaskAddParameter { constraints: Some(limit), ..task("limited", &cmd) }).unwrap();
    c.add_task("kill", &task("terminated", &cmd)).unwrap();
    wait_for(Duration::from_secs(10), "both tasks to run", || {
        (processes_with(&format!("sleep {marker}")).len() >= 4).then_some(())
    });
    c.terminate_task("kill", "terminated").unwrap();
    let t = wait_done(&mut c, "kill", "terminated");
    assert_eq!(t.execution_info.failure_info.unwrap().code, "TaskTerminated");
    let t = wait_done(&mut c, "kill", "limited");
    assert_eq!(t.execution_info.failure_info.unwrap().code, "TaskEnded");
    assert!(
        t.execution_info.exit_code.is_some_and(|c| c > 128),
        "killed by a signal: {:?}",
        t.execution_info.exit_code
    );
    wait_for(Duration::from_secs(5), "every sleep to be gone", || {
        processes_with(&format!("sleep {marker}")).is_empty().then_some(())
    });
}

#[test]
fn terminating_a_queued_task_completes_it_without_running() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "q");
    c.add_task("q", &task("busy", "sleep 30")).unwrap();
    c.add_task("q", &task("queued", "/bin/true")).unwrap();
    assert_eq!(c.get_task("q", "queued").unwrap().state, TaskState::Active);
    c.terminate_task("q", "queued").unwrap();
    let t = c.get_task("q", "queued").unwrap();
    assert_eq!(t.state, TaskState::Completed);
    assert_eq!(t.execution_info.start_time, None, "it never ran");
    c.terminate_job("q", None).unwrap();
    let j = wait_for(Duration::from_secs(10), "the job to complete", || {
        let j = c.get_job("q").ok()?;
        (j.state == JobState::Completed).then_some(j)
    });
    assert_eq!(j.execution_info.terminate_reason.as_deref(), Some("UserTerminate"));
    let err: ClientError = c.add_task("q", &task("late", "/bin/true")).unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
}

#[test]
fn retention_removes_the_task_directory_and_stopping_leaves_no_cgroups() {
    let mut cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "ret");
    let keep = TaskConstraints { retention_time: Some(IsoDuration(Duration::from_secs(1))), ..Default::default() };
    c.add_task("ret", &TaskAddParameter { constraints: Some(keep), ..task("t", "/bin/true") }).unwrap();
    wait_done(&mut c, "ret", "t");
    let dir = cluster.node_root(0).join("workitems/ret/job-1/t");
    assert!(dir.join("stdout.txt").exists(), "the directory exists until retention passes");
    wait_for(Duration::from_secs(10), "the task directory to be removed", || (!dir.exists()).then_some(()));
    let root = cluster.node_root(0);
    cluster.nodes[0].take().map(|mut n| {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(n.id() as i32, libc::SIGTERM) };
        n.wait().unwrap()
    });
    assert_eq!(leftover_cgroups("node1", &root), Vec::<std::path::PathBuf>::new());
}

#[test]
fn the_cli_submits_waits_and_reports() {
    let cluster = Cluster::start(Options { nodes: 2, ..Options::default() });
    let (code, out, err) = cluster.cli(&["submit", "--wait", "--", "/bin/sh", "-c", "echo hi; exit 4"]);
    assert_eq!(code, 4, "{err}");
    let job = out.trim().to_owned();
    assert!(job.starts_with("job-") && !job.contains('\n'), "only the job id on stdout: {out:?}");
    let (code, out, _) = cluster.cli(&["task", "logs", &job, "1"]);
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    let (code, out, _) = cluster.cli(&["--json", "task", "list", &job]);
    assert_eq!(code, 0);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(tasks[0]["executionInfo"]["exitCode"], 4);
    assert_eq!(tasks[0]["state"], "completed");
    let (code, _, _) = cluster.cli(&["wait", &job]);
    assert_eq!(code, 4);
    let (code, out, _) = cluster.cli(&["node", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("NODE") && out.contains("node1") && out.contains("node2"), "{out}");
    let (code, out, _) = cluster.cli(&["--json", "job", "show", &job]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["state"], "completed", "a submitted job ends with its task");
}

//! Azure Batch task dependencies, exit conditions and job actions through the REST API of a
//! real cluster, written from Azure's documentation.

use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

fn task(id: &str, cmd: &str, parents: &[&str]) -> TaskAddParameter {
    let depends_on = (!parents.is_empty()).then(|| TaskDependencies {
        task_ids: parents.iter().map(|p| p.to_string()).collect(),
        task_id_ranges: Vec::new(),
    });
    TaskAddParameter { id: id.into(), command_line: cmd.into(), depends_on, ..Default::default() }
}

fn dag_job(c: &mut Client, id: &str, extra: JobAddParameter) {
    c.add_job(&JobAddParameter { id: id.into(), uses_task_dependencies: Some(true), ..extra }).unwrap();
}

fn wait_done(c: &mut Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(30), &format!("task {job}/{task} to complete"), || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

fn wait_job(c: &mut Client, job: &str, state: JobState) -> Job {
    wait_for(Duration::from_secs(30), &format!("job {job} to be {state:?}"), || {
        let j = c.get_job(job).ok()?;
        (j.state == state).then_some(j)
    })
}

/// Sends `body` to `path` and checks the answer's status and error code.
fn check(c: &mut Client, method: &str, path: &str, body: &str, status: u16, code: &str) {
    let r = c.raw(method, path, Some(body.as_bytes()), &[]).unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, status, "{method} {path} {body}: {text}");
    if !code.is_empty() {
        let err: ErrorBody = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(err.code, code, "{method} {path} {body}: {text}");
    }
}

#[test]
fn a_diamond_runs_in_order_and_ranges_ignore_leading_zeros() {
    let cluster = Cluster::start(Options::default());
    let mut c = cluster.client();
    dag_job(&mut c, "diamond", JobAddParameter::default());
    // Added bottom up: a dependent may name a parent added after it.
    let stamp = |_: &str| "/bin/sh -c 'sleep 0.2'".to_owned();
    c.add_task("diamond", &task("d", &stamp("d"), &["b", "c"])).unwrap();
    let b = TaskAddParameter {
        depends_on: Some(TaskDependencies {
            task_ids: Vec::new(),
            task_id_ranges: vec![TaskIdRange { start: 1, end: 1 }],
        }),
        ..task("b", &stamp("b"), &[])
    };
    c.add_task("diamond", &b).unwrap();
    c.add_task("diamond", &task("c", &stamp("c"), &["001"])).unwrap();
    let waiting = c.get_task("diamond", "d").unwrap();
    let status = waiting.dependency.expect("d waits");
    assert_eq!(status.state, "waiting");
    assert!(status.reason.contains("task 'b'"), "{}", status.reason);
    c.add_task("diamond", &task("001", &stamp("001"), &[])).unwrap();
    let ended: Vec<Task> = ["001", "b", "c", "d"].iter().map(|t| wait_done(&mut c, "diamond", t)).collect();
    for t in &ended {
        assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Success), "{}", t.id);
        assert!(t.dependency.is_none());
    }
    let start = |i: usize| ended[i].execution_info.start_time.unwrap();
    let end = |i: usize| ended[i].execution_info.end_time.unwrap();
    assert!(start(1) >= end(0) && start(2) >= end(0), "b and c after 001");
    assert!(start(3) >= end(1) && start(3) >= end(2), "d after b and c");
}

#[test]
fn exit_code_3_satisfies_by_range_and_a_blocked_dependent_shows_why() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    dag_job(&mut c, "codes", JobAddParameter::default());
    let satisfy = ExitOptions { job_action: None, dependency_action: Some(DependencyAction::Satisfy) };
    let conditions = ExitConditions {
        exit_code_ranges: vec![ExitCodeRangeMapping { start: 3, end: 3, exit_options: satisfy }],
        ..Default::default()
    };
    for (id, code) in [("three", 3), ("four", 4)] {
        let p = TaskAddParameter {
            exit_conditions: Some(conditions.clone()),
            ..task(id, &format!("/bin/sh -c 'exit {code}'"), &[])
        };
        c.add_task("codes", &p).unwrap();
    }
    c.add_task("codes", &task("after-three", "/bin/true", &["three"])).unwrap();
    c.add_task("codes", &task("after-four", "/bin/true", &["four"])).unwrap();
    let ran = wait_done(&mut c, "codes", "after-three");
    assert_eq!(ran.execution_info.exit_code, Some(0));
    assert_eq!(wait_done(&mut c, "codes", "three").execution_info.result, Some(TaskExecutionResult::Failure));
    wait_done(&mut c, "codes", "four");
    let blocked = c.get_task("codes", "after-four").unwrap();
    assert_eq!(blocked.state, TaskState::Active, "Azure leaves a blocked dependent active");
    let status = blocked.dependency.expect("blocked");
    assert_eq!(status.state, "blocked");
    assert_eq!(status.reason, "parent task 'four' completed (exit code 4) in a way that blocks its dependents");
    let counts = c.task_counts("codes").unwrap().task_counts;
    assert_eq!((counts.active, counts.completed), (1, 3));
}

#[test]
fn blocked_dependents_end_when_the_job_says_so_and_job_actions_act() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    let fail = JobAddParameter { on_dependency_blocked: Some(OnDependencyBlocked::FailTask), ..Default::default() };
    dag_job(&mut c, "chain", fail);
    c.add_task("chain", &task("a", "/bin/false", &[])).unwrap();
    c.add_task("chain", &task("b", "/bin/true", &["a"])).unwrap();
    c.add_task("chain", &task("c", "/bin/true", &["b"])).unwrap();
    let cc = wait_done(&mut c, "chain", "c");
    let f = cc.execution_info.failure_info.expect("failed");
    assert_eq!(f.code, "DependencyBlocked");
    assert!(f.message.contains("parent task 'b'"), "{}", f.message);
    assert!(cc.node_info.is_none(), "c never ran");

    // onTaskFailure performexitoptionsjobaction: a failure's default job action terminates.
    let act =
        JobAddParameter { on_task_failure: Some(OnTaskFailure::PerformExitOptionsJobAction), ..Default::default() };
    c.add_job(&JobAddParameter { id: "act".into(), ..act.clone() }).unwrap();
    c.add_task("act", &task("bad", "/bin/sh -c 'exit 9'", &[])).unwrap();
    let j = wait_job(&mut c, "act", JobState::Completed);
    assert_eq!(j.execution_info.terminate_reason.as_deref(), Some("TaskFailed"));

    // jobAction disable; then enable runs what waited.
    c.add_job(&JobAddParameter { id: "dis".into(), ..act }).unwrap();
    let disable = ExitConditions {
        default: Some(ExitOptions { job_action: Some(JobAction::Disable), dependency_action: None }),
        ..Default::default()
    };
    let p = TaskAddParameter { exit_conditions: Some(disable), ..task("bad", "/bin/false", &[]) };
    c.add_task("dis", &p).unwrap();
    wait_job(&mut c, "dis", JobState::Disabled);
    c.add_task("dis", &task("later", "/bin/true", &[])).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.get_task("dis", "later").unwrap().state, TaskState::Active, "a disabled job runs nothing");
    c.enable_job("dis").unwrap();
    assert_eq!(wait_done(&mut c, "dis", "later").execution_info.exit_code, Some(0));
    c.disable_job("dis", DisableJobOption::Wait).unwrap();
    wait_job(&mut c, "dis", JobState::Disabled);
}

#[test]
fn bad_dependency_input_is_refused_as_azure_does() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "plain".into(), ..Default::default() }).unwrap();
    dag_job(&mut c, "dag", JobAddParameter::default());
    c.add_task("dag", &task("a", "/bin/true", &["b"])).unwrap();
    let ids: Vec<String> = (0..6_500).map(|i| format!("\"task-{i:05}\"")).collect();
    let long = format!(r#"{{"id":"x","commandLine":"true","dependsOn":{{"taskIds":[{}]}}}}"#, ids.join(","));
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            "/jobs/plain/tasks",
            r#"{"id":"x","commandLine":"true","dependsOn":{"taskIds":["a"]}}"#,
            409,
            "TaskDependenciesNotSpecifiedOnJob",
        ),
        ("POST", "/jobs/dag/tasks", &long, 400, "TaskDependencyListTooLong"),
        (
            "POST",
            "/jobs/dag/tasks",
            r#"{"id":"b","commandLine":"true","dependsOn":{"taskIds":["a"]}}"#,
            400,
            "TaskDependencyCycle",
        ),
        (
            "POST",
            "/jobs/dag/tasks",
            r#"{"id":"x","commandLine":"true","dependsOn":{"taskIdRanges":[{"start":5,"end":1}]}}"#,
            400,
            "InvalidPropertyValue",
        ),
        (
            "POST",
            "/jobs/dag/tasks",
            r#"{"id":"x","commandLine":"true","dependsOn":{"taskIdz":["a"]}}"#,
            400,
            "InvalidPropertyValue",
        ),
        (
            "POST",
            "/jobs/dag/tasks",
            r#"{"id":"x","commandLine":"true","exitConditions":{"default":{"jobAction":"terminate"}}}"#,
            400,
            "InvalidPropertyValue",
        ),
        (
            "POST",
            "/jobs/dag/tasks",
            r#"{"id":"x","commandLine":"true","exitConditions":{"exitCodes":[{"code":1,"exitOptions":{"dependencyAction":"maybe"}}]}}"#,
            400,
            "InvalidPropertyValue",
        ),
        ("POST", "/jobs/dag/disable", r#"{"disableTasks":"later"}"#, 400, "InvalidPropertyValue"),
        ("POST", "/jobs/nosuch/disable", r#"{"disableTasks":"wait"}"#, 404, "JobNotFound"),
        ("POST", "/jobs/dag/enable", "", 202, ""),
        ("POST", "/jobs/dag/disable", r#"{"disableTasks":"requeue"}"#, 202, ""),
        ("POST", "/jobs/dag/disable", r#"{"disableTasks":"requeue"}"#, 409, "JobNotActive"),
        ("POST", "/jobs/dag/enable", "", 202, ""),
    ];
    for (method, path, body, status, code) in cases {
        check(&mut c, method, path, body, *status, code);
    }
    let tasks: Vec<String> = c.list_tasks("dag", &Default::default()).unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(tasks, ["a"], "nothing refused was added");
}

#[test]
fn the_cli_chains_tasks_and_reactivates_a_failed_parent() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    let ok = |(code, out, err): (i32, String, String)| {
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    // Task 1 fails until a flag file exists; 2-3 wait for it; 4 waits for both.
    let flag = cluster.state_dir().join("flag");
    // --keep-open: the job does not end with task 1, so dependents may come after it ended.
    let test = format!("test -e {}", flag.display());
    let job = ok(cluster.cli(&["submit", "--keep-open", "--", "/bin/sh", "-c", &test])).trim().to_owned();
    wait_done(&mut c, &job, "1");
    ok(cluster.cli(&["submit", "--job", &job, "--tasks", "2", "--depends-on", "1", "--", "/bin/true"]));
    ok(cluster.cli(&["submit", "--job", &job, "--depends-on", "2-3", "--", "/bin/true"]));
    let first = wait_done(&mut c, &job, "1");
    assert_eq!(first.execution_info.result, Some(TaskExecutionResult::Failure));
    wait_for(Duration::from_secs(10), "task 2 to show it is blocked", || {
        let s = c.get_task(&job, "2").ok()?.dependency?;
        (s.state == "blocked").then_some(())
    });
    std::fs::write(&flag, b"").unwrap();
    ok(cluster.cli(&["task", "reactivate", &job, "1"]));
    for t in ["1", "2", "3", "4"] {
        assert_eq!(wait_done(&mut c, &job, t).execution_info.exit_code, Some(0), "task {t}");
    }
    assert_eq!(c.get_job(&job).unwrap().state, JobState::Active, "kept open");
    let (code, _, err) = cluster.cli(&["task", "reactivate", &job, "3"]);
    assert_ne!(code, 0);
    assert!(err.contains("only a completed task that failed can be reactivated"), "{err}");
    ok(cluster.cli(&["task", "delete", &job, "4"]));
    let ids: Vec<String> = c.list_tasks(&job, &Default::default()).unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    // $select keeps what it names.
    let r = c.raw("GET", &format!("/jobs/{job}/tasks/1?$select=id,state"), None, &[]).unwrap();
    assert_eq!(String::from_utf8_lossy(&r.body), r#"{"id":"1","state":"completed"}"#);
}

#[test]
fn a_job_manager_adds_100_tasks_with_its_credential_and_ends_the_job() {
    let cluster = Cluster::start(Options::default());
    let mut c = cluster.client();
    let gangway = gangway_tests::bin("gangway");
    // It adds 100 tasks as the CLI would, waits for them, then tries what it may not.
    let script = r#"
        set -e
        $GW submit --job "$AZ_BATCH_JOB_ID" --tasks 100 -- /bin/true > /dev/null
        until $GW job show "$AZ_BATCH_JOB_ID" | grep -q " 100 succeeded"; do sleep 0.1; done
        if $GW job terminate "$AZ_BATCH_JOB_ID" 2> denied.txt; then exit 9; fi
        if $GW job list 2>> denied.txt; then exit 8; fi
    "#;
    let manager = JobManagerTask {
        id: "manager".into(),
        command_line: format!("/bin/sh -c '{script}'"),
        environment_settings: vec![EnvironmentSetting { name: "GW".into(), value: gangway.display().to_string() }],
        run_exclusive: Some(false),
        ..Default::default()
    };
    c.add_job(&JobAddParameter { id: "managed".into(), job_manager_task: Some(manager), ..Default::default() })
        .unwrap();
    let j = wait_for(Duration::from_secs(60), "the manager to end its job", || {
        let j = c.get_job("managed").ok()?;
        (j.state == JobState::Completed).then_some(j)
    });
    assert_eq!(j.execution_info.terminate_reason.as_deref(), Some("JMComplete"));
    let m = c.get_task("managed", "manager").unwrap();
    let stderr = String::from_utf8(c.get_task_file("managed", "manager", "stderr.txt", 0).unwrap()).unwrap();
    let denied = c.get_task_file("managed", "manager", "wd/denied.txt", 0);
    let denied = String::from_utf8(denied.unwrap_or_else(|e| panic!("{e}: {m:?} {stderr}"))).unwrap();
    assert_eq!(m.execution_info.exit_code, Some(0), "{denied}");
    assert_eq!(denied.matches("may only add and read the tasks of job managed").count(), 2, "{denied}");
    let counts = c.task_counts("managed").unwrap().task_counts;
    assert_eq!((counts.succeeded, counts.failed), (101, 0));
}

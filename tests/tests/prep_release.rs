//! Job preparation and release tasks on a real two-node cluster.

use std::time::Duration;

use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

#[test]
fn preparation_runs_once_per_node_for_many_tasks_and_release_after_terminate() {
    let cluster = Cluster::start(Options::default());
    let mut c = cluster.client();
    let log = cluster.state_dir().join("prep-release.log");
    let shell = |script: String| format!("/bin/sh -c '{script}'");
    let prep = JobPreparationTask {
        command_line: shell(format!("echo staged > data.txt; echo prep $AZ_BATCH_NODE_ID >> {}", log.display())),
        ..Default::default()
    };
    let release = JobReleaseTask {
        command_line: shell(format!("echo release $AZ_BATCH_NODE_ID >> {}", log.display())),
        ..Default::default()
    };
    let job = JobAddParameter {
        id: "staged".into(),
        job_preparation_task: Some(prep),
        job_release_task: Some(release),
        ..Default::default()
    };
    c.add_job(&job).unwrap();
    let tasks: Vec<TaskAddParameter> = (0..20)
        .map(|i| TaskAddParameter {
            id: format!("t{i}"),
            command_line: shell("cat $AZ_BATCH_JOB_PREP_WORKING_DIR/data.txt".into()),
            ..Default::default()
        })
        .collect();
    c.add_task_collection("staged", tasks).unwrap();
    // One long task keeps the job open until it is terminated.
    c.add_task(
        "staged",
        &TaskAddParameter { id: "long".into(), command_line: "sleep 60".into(), ..Default::default() },
    )
    .unwrap();
    for i in 0..20 {
        let t = wait_for(Duration::from_secs(30), "a task to complete", || {
            let t = c.get_task("staged", &format!("t{i}")).ok()?;
            (t.state == TaskState::Completed).then_some(t)
        });
        assert_eq!(t.execution_info.exit_code, Some(0));
        let out = c.get_task_file("staged", &t.id, "stdout.txt", 0).unwrap();
        assert_eq!(out, b"staged\n", "task {i} read what its node's preparation staged");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut preps: Vec<&str> = text.lines().filter(|l| l.starts_with("prep ")).collect();
    preps.sort_unstable();
    assert_eq!(preps, ["prep node1", "prep node2"], "once per node");
    c.terminate_job("staged", None).unwrap();
    let j = wait_for(Duration::from_secs(30), "the job to complete", || {
        let j = c.get_job("staged").ok()?;
        (j.state == JobState::Completed).then_some(j)
    });
    assert_eq!(j.execution_info.terminate_reason.as_deref(), Some("UserTerminate"));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut releases: Vec<&str> = text.lines().filter(|l| l.starts_with("release ")).collect();
    releases.sort_unstable();
    assert_eq!(releases, ["release node1", "release node2"], "{text}");
    let (code, shown, err) = cluster.cli(&["job", "show", "staged"]);
    assert_eq!(code, 0, "{err}");
    for n in ["node1", "node2"] {
        assert!(shown.contains(&format!("Node {n}: preparation exit 0, release exit 0")), "{shown}");
    }
    let r = c.raw("GET", "/jobs/staged/jobpreparationandreleasetaskstatus", None, &[]).unwrap();
    let status: ListResponse<JobPreparationAndReleaseTaskExecutionInformation> =
        serde_json::from_slice(&r.body).unwrap();
    assert_eq!(status.value.len(), 2);
    for e in status.value {
        let p = e.job_preparation_task_execution_info.expect("prepared");
        let r = e.job_release_task_execution_info.expect("released");
        assert_eq!((p.result, r.result), (Some(TaskExecutionResult::Success), Some(TaskExecutionResult::Success)));
        assert_eq!(p.task_root_directory, "workitems/staged/job-1/jobpreparation");
    }
}

//! Job preparation and release tasks on the head alone.

use super::*;

fn prep(retries: i32, wait: bool) -> JobPreparationTask {
    JobPreparationTask {
        command_line: "stage-in".into(),
        constraints: Some(TaskConstraints { max_task_retry_count: Some(retries), ..Default::default() }),
        wait_for_success: Some(wait),
        ..Default::default()
    }
}

fn release() -> JobReleaseTask {
    JobReleaseTask { command_line: "clean-up".into(), ..Default::default() }
}

fn job(sim: &mut Sim, id: &str, prep: JobPreparationTask, release: Option<JobReleaseTask>) {
    sim.job_with(JobAddParameter {
        id: id.into(),
        job_preparation_task: Some(prep),
        job_release_task: release,
        ..Default::default()
    });
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn status(sim: &Sim, job: &str, node: &str) -> JobPreparationAndReleaseTaskExecutionInformation {
    sim.job_wire(job).prep_release.iter().find(|e| e.node_id == node).cloned().expect("ran there")
}

#[test]
fn preparation_runs_once_per_node_before_the_jobs_tasks_there() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(0, true), None);
    sim.tasks("j", &["a", "b", "c"]);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#1"], "the tasks wait for it");
    assert_eq!((sim.task("j", "a").state, sim.task("j", "b").state), (TaskState::Preparing, TaskState::Preparing));
    sim.finish("n1", "j/jobpreparation#1", 0);
    assert_eq!(sorted(sim.starts("n1")), ["j/a#1", "j/b#1"]);
    assert_eq!(sim.task("j", "a").state, TaskState::Running);
    sim.finish("n1", "j/a#1", 0);
    assert_eq!(sim.starts("n1"), ["j/c#1"], "prepared once: c starts at once");
    let x = status(&sim, "j", "n1").job_preparation_task_execution_info.unwrap();
    assert_eq!(
        (x.state, x.result, x.exit_code),
        (JobPrepReleaseState::Completed, Some(TaskExecutionResult::Success), Some(0))
    );
    // A new launcher process there (a reboot) prepares again.
    sim.connect_to("n1", "p", "boot-2", &["j/b#1", "j/c#1"], Vec::new());
    assert!(status(&sim, "j", "n1").job_preparation_task_execution_info.is_none());
}

#[test]
fn a_failed_preparation_is_retried_then_bars_its_node_from_the_job() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(1, true), None);
    sim.tasks("j", &["a", "b"]);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#1"]);
    sim.finish("n1", "j/jobpreparation#1", 1);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#2"], "retried");
    sim.finish("n1", "j/jobpreparation#2", 1);
    let x = status(&sim, "j", "n1").job_preparation_task_execution_info.unwrap();
    assert_eq!((x.result, x.retry_count), (Some(TaskExecutionResult::Failure), 1));
    let a = sim.task("j", "a");
    assert_eq!((a.state, a.execution_info.requeue_count), (TaskState::Active, 1));
    assert!(sim.starts("n1").is_empty(), "n1 runs none of j's tasks");
    // Other jobs still run there; j's tasks go to a node that prepares well.
    sim.job("other", 0);
    sim.tasks("other", &["x"]);
    assert_eq!(sim.starts("n1"), ["other/x#1"]);
    sim.node("n2");
    assert_eq!(sim.starts("n2"), ["j/jobpreparation#1"]);
    sim.finish("n2", "j/jobpreparation#1", 0);
    assert_eq!(sim.starts("n2"), ["j/a#2"]);
    // A restarted head keeps the bar.
    let mut sim = sim.restart();
    sim.connect("n1", &["other/x#1"], Vec::new());
    sim.connect("n2", &["j/a#2"], Vec::new());
    sim.finish("n1", "other/x#1", 0);
    assert!(sim.starts("n1").is_empty(), "still barred after a restart");
}

#[test]
fn tasks_start_beside_a_preparation_that_is_not_waited_for() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(0, false), None);
    sim.tasks("j", &["a"]);
    assert_eq!(sorted(sim.starts("n1")), ["j/a#1", "j/jobpreparation#1"]);
    sim.finish("n1", "j/jobpreparation#1", 1);
    sim.tasks("j", &["b"]);
    assert_eq!(sim.starts("n1"), ["j/b#1"], "a failure does not bar the node either");
}

#[test]
fn release_runs_where_the_job_prepared_when_it_ends_and_then_it_completes() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    sim.node("n1");
    sim.node("n2");
    job(&mut sim, "j", prep(0, true), Some(release()));
    sim.tasks("j", &["a", "b"]);
    for n in ["n1", "n2"] {
        assert_eq!(sim.starts(n), ["j/jobpreparation#1"]);
        sim.finish(n, "j/jobpreparation#1", 0);
    }
    let running: Vec<(String, String)> =
        ["n1", "n2"].iter().flat_map(|n| sim.starts(n).into_iter().map(move |a| (n.to_string(), a))).collect();
    assert_eq!(running.len(), 2);
    sim.apply(|st, fx| st.terminate_job("j", None, fx)).unwrap();
    for (n, a) in &running {
        sim.finish(n, a, 137);
    }
    assert_eq!(sim.job_wire("j").state, JobState::Terminating, "waiting for its releases");
    for n in ["n1", "n2"] {
        assert_eq!(sim.starts(n), ["j/jobrelease#1"]);
    }
    sim.finish("n1", "j/jobrelease#1", 0);
    assert_eq!(sim.job_wire("j").state, JobState::Terminating);
    sim.finish("n2", "j/jobrelease#1", 2);
    assert_eq!(sim.job_wire("j").state, JobState::Completed, "a failed release does not block");
    let r = status(&sim, "j", "n2").job_release_task_execution_info.unwrap();
    assert_eq!((r.state, r.exit_code), (JobPrepReleaseState::Completed, Some(2)));
}

#[test]
fn a_task_killed_while_it_waits_for_preparation_gives_its_node_back() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(0, true), None);
    sim.tasks("j", &["a"]);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#1"]);
    sim.apply(|st, fx| st.terminate_task("j", "a", fx)).unwrap();
    let a = sim.task("j", "a");
    assert_eq!((a.state, failure_code(a)), (TaskState::Completed, Some("TaskTerminated")));
    sim.job("k", 0);
    sim.tasks("k", &["x"]);
    assert_eq!(sim.starts("n1"), ["k/x#1"], "its slot is free again");
}

#[test]
fn bad_preparation_and_release_tasks_are_refused() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    let add = |sim: &mut Sim, p: Option<JobPreparationTask>, r: Option<JobReleaseTask>| {
        let j = JobAddParameter {
            id: "j".into(),
            pool_info: Some(PoolInformation { pool_id: "p".into() }),
            job_preparation_task: p,
            job_release_task: r,
            ..Default::default()
        };
        sim.apply(|st, fx| st.add_job(j, root(), fx))
    };
    let long = JobReleaseTask { max_wall_clock_time: Some(IsoDuration(Duration::from_secs(1200))), ..release() };
    let cases = [
        (None, Some(release()), "jobReleaseTask needs a jobPreparationTask"),
        (Some(prep(0, true)), Some(long), "at most 15 minutes"),
        (
            Some(JobPreparationTask { command_line: "echo 'x".into(), ..prep(0, true) }),
            None,
            "jobPreparationTask.commandLine",
        ),
        (Some(prep(-3, true)), None, "maxTaskRetryCount is -3"),
    ];
    for (p, r, words) in cases {
        let e = add(&mut sim, p, r).unwrap_err();
        assert!(e.body.message.value.contains(words), "{words}: {:?}", e.body);
    }
    add(&mut sim, Some(prep(0, true)), Some(release())).unwrap();
    let t = TaskAddParameter { id: "jobrelease".into(), command_line: "true".into(), ..Default::default() };
    let e = sim.apply(|st, fx| st.add_task("j", t, fx)).unwrap_err();
    assert_eq!((e.status.as_u16(), e.body.code.as_str()), (409, "TaskIdSameAsJobReleaseTask"));
}

#[test]
fn a_task_waiting_on_a_lost_node_is_requeued_and_prepares_elsewhere() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(0, true), None);
    sim.tasks("j", &["a"]);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#1"]);
    let generation = sim.disconnect("n1");
    sim.lost("n1", generation);
    let a = sim.task("j", "a");
    assert_eq!((a.state, a.execution_info.requeue_count), (TaskState::Active, 1));
    assert!(sim.job_wire("j").prep_release.iter().all(|e| e.job_preparation_task_execution_info.is_none()));
    sim.node("n2");
    assert_eq!(sim.starts("n2"), ["j/jobpreparation#1"]);
    sim.finish("n2", "j/jobpreparation#1", 0);
    assert_eq!(sim.starts("n2"), ["j/a#2"]);
}

#[test]
fn a_reconnect_keeps_a_running_preparation_and_what_waits_for_it() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(0, true), None);
    sim.tasks("j", &["a"]);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#1"]);
    sim.disconnect("n1");
    // The same launcher process comes back still running the preparation: nothing is killed.
    assert!(sim.connect("n1", &["j/jobpreparation#1"], Vec::new()).is_empty());
    assert_eq!(sim.task("j", "a").state, TaskState::Preparing);
    sim.finish("n1", "j/jobpreparation#1", 0);
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
    // A head restart while a task waits: the task is queued again and finds the node prepared.
    sim.tasks("j", &["b"]);
    sim.finish("n1", "j/a#1", 0);
    assert_eq!(sim.starts("n1"), ["j/b#1"]);
    let mut sim = sim.restart();
    sim.connect("n1", &["j/b#1"], Vec::new());
    sim.finish("n1", "j/b#1", 0);
    assert_eq!(sim.task("j", "b").state, TaskState::Completed);
}

#[test]
fn a_preparation_the_node_lost_is_sent_again() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    job(&mut sim, "j", prep(0, true), None);
    sim.tasks("j", &["a"]);
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#1"]);
    sim.disconnect("n1");
    assert!(sim.connect("n1", &[], Vec::new()).is_empty());
    assert_eq!(sim.starts("n1"), ["j/jobpreparation#2"]);
    sim.finish("n1", "j/jobpreparation#2", 0);
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
}

fn gang_task(sim: &mut Sim, job: &str, id: &str, n: u32) {
    let t = TaskAddParameter {
        id: id.into(),
        command_line: "./app".into(),
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: n, ..Default::default() }),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_task(job, t, fx)).unwrap();
}

#[test]
fn a_multi_instance_task_starts_when_every_node_of_it_is_prepared() {
    let mut sim = Sim::with_gang_pool(&["n1", "n2"]);
    job(&mut sim, "j", prep(0, true), None);
    gang_task(&mut sim, "j", "mpi", 2);
    for n in ["n1", "n2"] {
        assert_eq!(sim.starts(n), ["j/jobpreparation#1"], "{n}: only the preparation");
    }
    assert_eq!(sim.task("j", "mpi").state, TaskState::Preparing);
    sim.finish("n1", "j/jobpreparation#1", 0);
    assert!(sim.starts("n1").is_empty() && sim.starts("n2").is_empty(), "n2 is not prepared yet");
    sim.finish("n2", "j/jobpreparation#1", 0);
    assert_eq!((sim.starts("n1"), sim.starts("n2")), (vec!["j/mpi#1".to_string()], vec!["j/mpi#1".to_string()]));
    assert_eq!(sim.task("j", "mpi").state, TaskState::Running);
}

#[test]
fn a_multi_instance_task_whose_node_fails_preparation_goes_elsewhere_whole() {
    let mut sim = Sim::with_gang_pool(&["n1", "n2"]);
    job(&mut sim, "j", prep(0, true), None);
    gang_task(&mut sim, "j", "mpi", 2);
    for n in ["n1", "n2"] {
        assert_eq!(sim.starts(n), ["j/jobpreparation#1"]);
    }
    sim.finish("n1", "j/jobpreparation#1", 0);
    sim.finish("n2", "j/jobpreparation#1", 1);
    let t = sim.task("j", "mpi");
    assert_eq!((t.state, t.execution_info.requeue_count), (TaskState::Active, 1));
    for n in ["n1", "n2"] {
        let s = sim.starts(n);
        assert!(s.is_empty(), "{n}: {s:?}");
    }
    // A third node: the gang runs on n1 (prepared) and n3 (prepared now), never on n2.
    sim.node("n3");
    assert_eq!(sim.starts("n3"), ["j/jobpreparation#1"]);
    sim.finish("n3", "j/jobpreparation#1", 0);
    assert_eq!((sim.starts("n1"), sim.starts("n3")), (vec!["j/mpi#2".to_string()], vec!["j/mpi#2".to_string()]));
    assert!(sim.starts("n2").is_empty());
}

#[test]
fn a_multi_instance_task_killed_while_it_waits_gives_every_node_back() {
    let mut sim = Sim::with_gang_pool(&["n1", "n2"]);
    job(&mut sim, "j", prep(0, true), None);
    gang_task(&mut sim, "j", "mpi", 2);
    sim.apply(|st, fx| st.terminate_task("j", "mpi", fx)).unwrap();
    let t = sim.task("j", "mpi");
    assert_eq!((t.state, failure_code(t)), (TaskState::Completed, Some("TaskTerminated")));
    sim.job("k", 0);
    sim.tasks("k", &["x", "y"]);
    let started: Vec<String> =
        ["n1", "n2"].iter().flat_map(|n| sim.starts(n)).filter(|s| s.starts_with("k/")).collect();
    assert_eq!(started.len(), 2, "both nodes are free: {started:?}");
}

//! Task dependencies, exit conditions and job actions, on the head alone.

use super::*;

/// A job of pool `p` whose tasks may depend on each other.
fn dag_job(sim: &mut Sim, id: &str, extra: JobAddParameter) {
    sim.job_with(JobAddParameter { id: id.into(), uses_task_dependencies: Some(true), ..extra });
}

fn on(ids: &[&str]) -> Option<TaskDependencies> {
    Some(TaskDependencies { task_ids: ids.iter().map(|s| s.to_string()).collect(), task_id_ranges: Vec::new() })
}

fn dep_task(id: &str, depends_on: Option<TaskDependencies>) -> TaskAddParameter {
    TaskAddParameter { id: id.into(), command_line: "true".into(), depends_on, ..Default::default() }
}

fn add(sim: &mut Sim, job: &str, t: TaskAddParameter) -> Result<(), crate::head::error::ApiError> {
    sim.apply(|st, fx| st.add_task(job, t, fx))
}

fn status(sim: &Sim, job: &str, task: &str) -> Option<DependencyStatus> {
    sim.st.dependency_status(sim.st.jobs[job].tasks[task].key)
}

/// The kills sent to `node` since the last look.
fn kills(sim: &mut Sim, node: &str) -> Vec<String> {
    sim.sent(node).into_iter().filter(|m| m.starts_with("kill ")).collect()
}

/// Starts, sorted (the order of tasks freed together is the queue's).
fn started(sim: &mut Sim, node: &str) -> Vec<String> {
    let mut s = sim.starts(node);
    s.sort();
    s
}

#[test]
fn a_diamond_runs_in_dependency_order() {
    let mut sim = Sim::with_pool(4, NodeFillType::Pack);
    sim.node("n1");
    dag_job(&mut sim, "j", JobAddParameter::default());
    add(&mut sim, "j", dep_task("d", on(&["b", "c"]))).unwrap();
    add(&mut sim, "j", dep_task("b", on(&["a"]))).unwrap();
    add(&mut sim, "j", dep_task("c", on(&["a"]))).unwrap();
    assert_eq!(
        status(&sim, "j", "b").unwrap().reason,
        "waiting for 1 of 1 parent(s), task 'a', which does not exist yet among them"
    );
    add(&mut sim, "j", dep_task("a", None)).unwrap();
    assert_eq!(started(&mut sim, "n1"), ["j/a#1"]);
    assert_eq!(status(&sim, "j", "d").unwrap().state, "waiting");
    sim.finish("n1", "j/a#1", 0);
    assert_eq!(started(&mut sim, "n1"), ["j/b#1", "j/c#1"]);
    sim.finish("n1", "j/b#1", 0);
    assert!(sim.starts("n1").is_empty(), "d still waits for c");
    assert_eq!(status(&sim, "j", "d").unwrap().reason, "waiting for 1 of 2 parent(s), task 'c' among them");
    sim.finish("n1", "j/c#1", 0);
    assert_eq!(started(&mut sim, "n1"), ["j/d#1"]);
    assert_eq!(status(&sim, "j", "d"), None);
}

#[test]
fn exit_code_3_satisfies_through_an_exit_code_range_and_5_blocks() {
    let mut sim = Sim::with_pool(4, NodeFillType::Pack);
    sim.node("n1");
    dag_job(&mut sim, "j", JobAddParameter::default());
    let satisfy = ExitOptions { job_action: None, dependency_action: Some(DependencyAction::Satisfy) };
    let conditions = ExitConditions {
        exit_code_ranges: vec![ExitCodeRangeMapping { start: 2, end: 4, exit_options: satisfy }],
        ..Default::default()
    };
    for p in ["p3", "p5"] {
        add(&mut sim, "j", TaskAddParameter { exit_conditions: Some(conditions.clone()), ..dep_task(p, None) })
            .unwrap();
    }
    add(&mut sim, "j", dep_task("after3", on(&["p3"]))).unwrap();
    add(&mut sim, "j", dep_task("after5", on(&["p5"]))).unwrap();
    assert_eq!(started(&mut sim, "n1"), ["j/p3#1", "j/p5#1"]);
    sim.finish("n1", "j/p3#1", 3);
    sim.finish("n1", "j/p5#1", 5);
    assert_eq!(started(&mut sim, "n1"), ["j/after3#1"]);
    assert_eq!(sim.task("j", "p3").execution_info.result, Some(TaskExecutionResult::Failure), "3 still fails");
    let s = status(&sim, "j", "after5").unwrap();
    assert_eq!(s.state, "blocked");
    assert_eq!(s.reason, "parent task 'p5' completed (exit code 5) in a way that blocks its dependents");
    assert_eq!(sim.task("j", "after5").state, TaskState::Active, "Azure leaves it active");
}

#[test]
fn a_fan_in_of_10000_and_a_fan_out_of_10000() {
    const N: u64 = 10_000;
    let mut sim = Sim::with_pool(8, NodeFillType::Pack);
    dag_job(&mut sim, "j", JobAddParameter::default());
    let all = TaskDependencies { task_ids: Vec::new(), task_id_ranges: vec![TaskIdRange { start: 1, end: N as i64 }] };
    add(&mut sim, "j", dep_task("join", Some(all))).unwrap();
    for i in 1..=N {
        add(&mut sim, "j", dep_task(&format!("out{i}"), on(&["join"]))).unwrap();
    }
    // The parents come after their dependent, zero-padded: the range still finds them.
    for i in 1..=N {
        add(&mut sim, "j", dep_task(&format!("{i:05}"), None)).unwrap();
    }
    let nodes: Vec<String> = (1..=16).map(|i| format!("n{i}")).collect();
    for n in &nodes {
        sim.node(n);
    }
    let mut done = 0;
    let mut joined = false;
    while done < 2 * N + 1 {
        let starts: Vec<(String, String)> =
            nodes.iter().flat_map(|n| sim.starts(n).into_iter().map(move |a| (n.clone(), a))).collect();
        assert!(!starts.is_empty(), "stalled after {done}");
        for (node, a) in starts {
            let task = a.split(['/', '#']).nth(1).unwrap().to_owned();
            if task == "join" {
                assert_eq!(done, N, "the join runs after all its parents");
                joined = true;
            } else if task.starts_with("out") {
                assert!(joined, "{task} ran before the join");
            }
            sim.finish(&node, &a, 0);
            done += 1;
        }
    }
    let counts = sim.st.task_counts("j").unwrap().task_counts;
    assert_eq!((counts.succeeded, counts.active), (2 * N + 1, 0));
}

#[test]
fn bad_dependencies_are_refused_as_azure_does_and_nothing_is_added() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.job("plain", 0);
    dag_job(&mut sim, "j", JobAddParameter::default());
    add(&mut sim, "j", dep_task("a", on(&["b"]))).unwrap();
    let long =
        TaskDependencies { task_ids: (0..7_000).map(|i| format!("task-{i:05}")).collect(), task_id_ranges: Vec::new() };
    let range =
        |start, end| TaskDependencies { task_ids: Vec::new(), task_id_ranges: vec![TaskIdRange { start, end }] };
    let job_action = ExitConditions {
        default: Some(ExitOptions { job_action: Some(JobAction::Terminate), dependency_action: None }),
        ..Default::default()
    };
    let cases: Vec<(&str, TaskAddParameter, u16, &str, &str)> = vec![
        ("plain", dep_task("x", on(&["a"])), 409, "TaskDependenciesNotSpecifiedOnJob", "usesTaskDependencies"),
        ("j", dep_task("x", Some(long)), 400, "TaskDependencyListTooLong", "70000 characters"),
        ("j", dep_task("x", on(&["x"])), 400, "TaskDependencyCycle", "depends on itself"),
        ("j", dep_task("7", Some(range(5, 9))), 400, "TaskDependencyCycle", "depends on itself"),
        ("j", dep_task("b", on(&["a"])), 400, "TaskDependencyCycle", "already waits for it"),
        ("j", dep_task("x", Some(range(9, 5))), 400, "InvalidPropertyValue", "taskIdRanges[0] is 9..5"),
        ("j", dep_task("x", Some(range(-1, 5))), 400, "InvalidPropertyValue", "0 <= start"),
        ("j", dep_task("x", Some(range(0, 2_000_000))), 400, "InvalidPropertyValue", "2000001 task ids"),
        ("j", dep_task("x", on(&["bad id!"])), 400, "InvalidPropertyValue", "dependsOn.taskIds"),
        (
            "j",
            TaskAddParameter { exit_conditions: Some(job_action), ..dep_task("x", None) },
            400,
            "InvalidPropertyValue",
            "onTaskFailure noaction",
        ),
    ];
    for (job, t, status, code, words) in cases {
        let what = format!("{job}/{} ({code})", t.id);
        let e = add(&mut sim, job, t).expect_err(&what);
        assert_eq!((e.status.as_u16(), e.body.code.as_str()), (status, code), "{what}: {:?}", e.body);
        assert!(e.body.message.value.contains(words), "{what}: {}", e.body.message.value);
    }
    assert_eq!(sim.st.jobs["j"].tasks.len(), 1, "only a was added");
    assert!(sim.st.jobs["plain"].tasks.is_empty());
}

#[test]
fn blocked_dependents_fail_in_turn_when_the_job_says_so() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    let fail = JobAddParameter { on_dependency_blocked: Some(OnDependencyBlocked::FailTask), ..Default::default() };
    dag_job(&mut sim, "j", fail);
    add(&mut sim, "j", dep_task("a", None)).unwrap();
    add(&mut sim, "j", dep_task("b", on(&["a"]))).unwrap();
    add(&mut sim, "j", dep_task("c", on(&["b"]))).unwrap();
    add(&mut sim, "j", dep_task("other", None)).unwrap();
    assert_eq!(started(&mut sim, "n1"), ["j/a#1", "j/other#1"]);
    sim.finish("n1", "j/a#1", 1);
    for t in ["b", "c"] {
        let w = sim.task("j", t);
        assert_eq!((w.state, failure_code(w)), (TaskState::Completed, Some("DependencyBlocked")), "{t}");
        assert_eq!(w.execution_info.result, Some(TaskExecutionResult::Failure));
    }
    let parent = |t: &str| sim.task("j", t).execution_info.failure_info.clone().unwrap().message;
    assert_eq!(parent("b"), "parent task 'a' completed (exit code 1) in a way that blocks its dependents");
    assert!(parent("c").contains("task 'b' completed (DependencyBlocked)"), "{}", parent("c"));
    assert!(sim.starts("n1").is_empty());
}

#[test]
fn exit_options_act_on_the_job() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    let act = |id: &str| JobAddParameter {
        id: id.into(),
        on_task_failure: Some(OnTaskFailure::PerformExitOptionsJobAction),
        ..Default::default()
    };
    // The default for a failure is terminate: the job ends with TaskFailed.
    sim.job_with(act("t"));
    sim.tasks("t", &["bad", "slow"]);
    assert_eq!(started(&mut sim, "n1"), ["t/bad#1", "t/slow#1"]);
    sim.finish("n1", "t/bad#1", 2);
    assert_eq!(kills(&mut sim, "n1"), ["kill t/slow#1 JobTerminated"]);
    sim.finish("n1", "t/slow#1", 137);
    let j = sim.job_wire("t");
    assert_eq!((j.state, j.execution_info.terminate_reason.as_deref()), (JobState::Completed, Some("TaskFailed")));

    // exitCodes 1 → disable: the running task is requeued, the job waits disabled.
    sim.job_with(act("d"));
    let disable = ExitConditions {
        exit_codes: vec![ExitCodeMapping {
            code: 1,
            exit_options: ExitOptions { job_action: Some(JobAction::Disable), dependency_action: None },
        }],
        ..Default::default()
    };
    let t = TaskAddParameter { exit_conditions: Some(disable), ..dep_task("one", None) };
    sim.apply(|st, fx| st.add_task("d", t, fx)).unwrap();
    sim.tasks("d", &["two", "three"]);
    assert_eq!(started(&mut sim, "n1"), ["d/one#1", "d/two#1"]);
    sim.finish("n1", "d/one#1", 1);
    assert_eq!(kills(&mut sim, "n1"), ["kill d/two#1 JobDisabled"]);
    assert_eq!(sim.job_wire("d").state, JobState::Disabling);
    sim.finish("n1", "d/two#1", 137);
    assert_eq!(sim.job_wire("d").state, JobState::Disabled);
    let two = sim.task("d", "two");
    assert_eq!(
        (two.state, two.execution_info.requeue_count, two.execution_info.retry_count),
        (TaskState::Active, 1, 0)
    );
    assert!(sim.starts("n1").is_empty(), "a disabled job runs nothing");
    sim.apply(|st, fx| st.enable_job("d", fx)).unwrap();
    assert_eq!(sim.job_wire("d").state, JobState::Active);
    assert_eq!(started(&mut sim, "n1"), ["d/three#1", "d/two#2"]);
}

#[test]
fn disable_requeue_terminate_or_wait() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    for (job, how) in [("w", DisableJobOption::Wait), ("t", DisableJobOption::Terminate)] {
        sim.job(job, 0);
        sim.tasks(job, &["a", "b"]);
        assert_eq!(sim.starts("n1"), [format!("{job}/a#1")]);
        sim.apply(|st, fx| st.disable_job(job, how, fx)).unwrap();
        let e = sim.apply(|st, fx| st.disable_job(job, how, fx)).unwrap_err();
        assert_eq!((e.status.as_u16(), e.body.code.as_str()), (409, "JobNotActive"));
        match how {
            DisableJobOption::Wait => assert!(kills(&mut sim, "n1").is_empty()),
            _ => assert_eq!(kills(&mut sim, "n1"), [format!("kill {job}/a#1 TaskTerminated")]),
        }
        assert_eq!(sim.job_wire(job).state, JobState::Disabling);
        sim.finish("n1", &format!("{job}/a#1"), 0);
        assert_eq!(sim.job_wire(job).state, JobState::Disabled);
        assert!(sim.starts("n1").is_empty(), "b waits while {job} is disabled");
        let a = sim.task(job, "a");
        let expected = if how == DisableJobOption::Wait { None } else { Some("TaskTerminated") };
        assert_eq!((a.state, failure_code(a)), (TaskState::Completed, expected));
        sim.apply(|st, fx| st.enable_job(job, fx)).unwrap();
        assert_eq!(sim.starts("n1"), [format!("{job}/b#1")]);
        sim.finish("n1", &format!("{job}/b#1"), 0);
    }
    let e = sim.apply(|st, fx| st.enable_job("nosuch", fx)).unwrap_err();
    assert_eq!(e.status.as_u16(), 404);
}

#[test]
fn dependencies_survive_a_head_restart() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    dag_job(&mut sim, "j", JobAddParameter::default());
    add(&mut sim, "j", dep_task("a", None)).unwrap();
    add(&mut sim, "j", dep_task("b", on(&["a"]))).unwrap();
    add(&mut sim, "j", dep_task("c", on(&["b", "later"]))).unwrap();
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
    sim.finish("n1", "j/a#1", 0);
    assert_eq!(sim.starts("n1"), ["j/b#1"]);
    let mut sim = sim.restart();
    sim.connect("n1", &["j/b#1"], Vec::new());
    assert_eq!(status(&sim, "j", "c").unwrap().state, "waiting");
    sim.finish("n1", "j/b#1", 0);
    assert!(sim.starts("n1").is_empty(), "c still waits for 'later'");
    add(&mut sim, "j", dep_task("later", None)).unwrap();
    assert_eq!(sim.starts("n1"), ["j/later#1"]);
    sim.finish("n1", "j/later#1", 0);
    assert_eq!(sim.starts("n1"), ["j/c#1"]);
}

#[test]
fn slurm_jobs_wait_on_the_same_engine_and_may_be_killed_when_never_satisfied() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.join("n1", "p", NodeResources { cpus: 2, cores: 2, memory_bytes: 1 << 30, ..Default::default() });
    let submit = |sim: &mut Sim, extra: &str| {
        let req = slurm_request("p", extra);
        sim.apply(|st, fx| st.slurm_submit(req, "h:1", fx)).unwrap().job_id
    };
    let parent = submit(&mut sim, "");
    let dep = |kind: &str, kill: bool| {
        format!(
            r#","dependency":{{"text":"{kind}:{parent}","conditions":[{{"kind":"{kind}","jobId":{parent}}}]}},"killOnInvalidDep":{kill}"#
        )
    };
    let waits = submit(&mut sim, &dep("afterok", false));
    let killed = submit(&mut sim, &dep("afterok", true));
    let notok = submit(&mut sim, &dep("afternotok", false));
    assert_eq!(sim.st.slurm_state(&waits.to_string()).1, "Dependency");
    assert_eq!(sim.starts("n1"), [format!("{parent}/batch#1")]);
    sim.finish("n1", &format!("{parent}/batch#1"), 1);
    assert_eq!(sim.st.slurm_state(&waits.to_string()).1, "DependencyNeverSatisfied");
    let (state, reason) = sim.st.slurm_state(&killed.to_string());
    assert_eq!((state, reason.as_str()), (gangway_api::slurm::SlurmJobState::Cancelled, "DependencyNeverSatisfied"));
    assert_eq!(sim.starts("n1"), [format!("{notok}/batch#1")]);
}

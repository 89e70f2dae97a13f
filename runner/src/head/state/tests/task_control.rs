//! Task reactivate, delete and update, and whole-job updates, on the head alone.

use super::*;

fn dag(sim: &mut Sim, id: &str, blocked: OnDependencyBlocked) {
    sim.job_with(JobAddParameter {
        id: id.into(),
        uses_task_dependencies: Some(true),
        on_dependency_blocked: Some(blocked),
        ..Default::default()
    });
}

fn add(sim: &mut Sim, job: &str, id: &str, parents: &[&str]) {
    let depends_on = (!parents.is_empty()).then(|| TaskDependencies {
        task_ids: parents.iter().map(|p| p.to_string()).collect(),
        task_id_ranges: Vec::new(),
    });
    let t = TaskAddParameter { id: id.into(), command_line: "true".into(), depends_on, ..Default::default() };
    sim.apply(|st, fx| st.add_task(job, t, fx)).unwrap();
}

fn code(r: Result<(), crate::head::error::ApiError>) -> (u16, String) {
    let e = r.expect_err("refused");
    (e.status.as_u16(), e.body.code)
}

#[test]
fn a_reactivated_parent_frees_what_its_failure_blocked() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    dag(&mut sim, "wait", OnDependencyBlocked::NoAction);
    dag(&mut sim, "fail", OnDependencyBlocked::FailTask);
    for job in ["wait", "fail"] {
        add(&mut sim, job, "parent", &[]);
        add(&mut sim, job, "child", &["parent"]);
    }
    let mut starts = sim.starts("n1");
    starts.sort();
    assert_eq!(starts, ["fail/parent#1", "wait/parent#1"]);
    sim.finish("n1", "wait/parent#1", 1);
    sim.finish("n1", "fail/parent#1", 1);
    assert_eq!(sim.st.dependency_status(sim.st.jobs["wait"].tasks["child"].key).unwrap().state, "blocked");
    assert_eq!(failure_code(sim.task("fail", "child")), Some("DependencyBlocked"));
    for job in ["wait", "fail"] {
        sim.apply(|st, fx| st.reactivate_task(job, "parent", fx)).unwrap();
        let p = &sim.task(job, "parent").execution_info;
        assert_eq!((p.retry_count, p.exit_code, p.result), (0, None, None));
    }
    // The failed child waits for its dependency again once reactivated too.
    sim.apply(|st, fx| st.reactivate_task("fail", "child", fx)).unwrap();
    assert_eq!(sim.st.dependency_status(sim.st.jobs["fail"].tasks["child"].key).unwrap().state, "waiting");
    let mut starts = sim.starts("n1");
    starts.sort();
    assert_eq!(starts, ["fail/parent#2", "wait/parent#2"]);
    sim.finish("n1", "wait/parent#2", 0);
    sim.finish("n1", "fail/parent#2", 0);
    let mut starts = sim.starts("n1");
    starts.sort();
    assert_eq!(starts, ["fail/child#1", "wait/child#1"]);
}

#[test]
fn only_a_failed_task_of_a_live_azure_job_is_reactivated() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.join("n1", "p", NodeResources { cpus: 1, cores: 1, memory_bytes: 1 << 30, ..Default::default() });
    sim.job("j", 0);
    sim.tasks("j", &["ok", "queued"]);
    assert_eq!(sim.starts("n1"), ["j/ok#1"]);
    sim.finish("n1", "j/ok#1", 0);
    assert_eq!(sim.starts("n1"), ["j/queued#1"]);
    assert_eq!(code(sim.apply(|st, fx| st.reactivate_task("j", "ok", fx))), (409, "TaskNotReactivatable".into()));
    assert_eq!(code(sim.apply(|st, fx| st.reactivate_task("j", "queued", fx))), (409, "TaskNotReactivatable".into()));
    assert_eq!(code(sim.apply(|st, fx| st.reactivate_task("j", "nope", fx))), (404, "TaskNotFound".into()));
    let req = slurm_request("p", "");
    let id = sim.apply(|st, fx| st.slurm_submit(req, "h:1", fx)).unwrap().job_id.to_string();
    assert_eq!(code(sim.apply(|st, fx| st.reactivate_task(&id, "batch", fx))), (409, "SlurmJob".into()));
    assert_eq!(code(sim.apply(|st, fx| st.delete_task(&id, "batch", fx))), (409, "SlurmJob".into()));
}

#[test]
fn deleting_tasks_kills_what_runs_blocks_what_waits_and_may_end_the_job() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    dag(&mut sim, "j", OnDependencyBlocked::NoAction);
    add(&mut sim, "j", "runs", &[]);
    add(&mut sim, "j", "done", &[]);
    add(&mut sim, "j", "after-runs", &["runs"]);
    add(&mut sim, "j", "after-done", &["done"]);
    let mut starts = sim.starts("n1");
    starts.sort();
    assert_eq!(starts, ["j/done#1", "j/runs#1"]);
    sim.finish("n1", "j/done#1", 0);
    assert_eq!(sim.starts("n1"), ["j/after-done#1"]);
    sim.apply(|st, fx| st.delete_task("j", "done", fx)).unwrap();
    sim.apply(|st, fx| st.delete_task("j", "runs", fx)).unwrap();
    let sent = sim.sent("n1");
    assert!(sent.contains(&"kill j/runs#1 TaskDeleted".to_string()), "{sent:?}");
    assert!(sim.writes.iter().any(|w| matches!(w, Write::DeleteTask { job, id } if job == "j" && id == "runs")));
    let status = sim.st.dependency_status(sim.st.jobs["j"].tasks["after-runs"].key).unwrap();
    assert_eq!(status.state, "blocked");
    assert!(status.reason.contains("a task no longer known"), "{}", status.reason);
    // The kill's report frees the slot; nothing is completed for the deleted task.
    sim.finish("n1", "j/runs#1", 137);
    assert!(!sim.st.jobs["j"].tasks.contains_key("runs"));
    // Deleting the last waiting task of a terminatejob job ends it.
    sim.finish("n1", "j/after-done#1", 0);
    let patch =
        JobPatchParameter { on_all_tasks_complete: Some(OnAllTasksComplete::TerminateJob), ..Default::default() };
    sim.apply(|st, fx| st.patch_job("j", patch, fx)).unwrap();
    assert_eq!(sim.job_wire("j").state, JobState::Active);
    sim.apply(|st, fx| st.delete_task("j", "after-runs", fx)).unwrap();
    assert_eq!(sim.job_wire("j").state, JobState::Completed);
    let restarted = sim.restart();
    assert_eq!(restarted.st.jobs["j"].tasks.keys().collect::<Vec<_>>(), ["after-done"]);
}

#[test]
fn a_tasks_constraints_and_a_jobs_properties_are_replaced() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.pool("q", 1, NodeFillType::Pack, None);
    sim.node("n1");
    sim.job("j", 5);
    sim.tasks("j", &["t", "u"]);
    assert_eq!(sim.starts("n1"), ["j/t#1"]);
    let limit =
        TaskConstraints { max_wall_clock_time: Some(IsoDuration(Duration::from_secs(60))), ..Default::default() };
    let update = |c| TaskUpdateParameter { constraints: Some(c) };
    sim.apply(|st, fx| st.update_task("j", "u", update(limit), fx)).unwrap();
    let u = &sim.task("j", "u").constraints;
    assert_eq!((u.max_wall_clock_time, u.max_task_retry_count), (limit.max_wall_clock_time, Some(0)));
    assert_eq!(u.retention_time, Some(IsoDuration(super::super::resources::DEFAULT_RETENTION)));
    let bad = TaskConstraints { max_task_retry_count: Some(-5), ..Default::default() };
    assert_eq!(code(sim.apply(|st, fx| st.update_task("j", "u", update(bad), fx))).0, 400);
    sim.finish("n1", "j/t#1", 0);
    let done = code(sim.apply(|st, fx| st.update_task("j", "t", update(limit), fx)));
    assert_eq!(done, (409, "TaskCompleted".into()));
    assert_eq!(sim.starts("n1"), ["j/u#1"]);

    // PUT: what is left out takes its default.
    let put = |pool: &str, on_all| JobUpdateParameter {
        pool_info: PoolInformation { pool_id: pool.into() },
        priority: None,
        constraints: None,
        on_all_tasks_complete: on_all,
    };
    sim.apply(|st, fx| st.update_job("j", put("p", Some(OnAllTasksComplete::TerminateJob)), fx)).unwrap();
    assert_eq!(sim.job_wire("j").priority, 0);
    assert_eq!(code(sim.apply(|st, fx| st.update_job("j", put("p", None), fx))), (400, "InvalidPropertyValue".into()));
    sim.job("k", 0);
    sim.tasks("k", &["v"]);
    assert_eq!(code(sim.apply(|st, fx| st.update_job("k", put("q", None), fx))), (409, "JobNotDisabled".into()));
    assert_eq!(code(sim.apply(|st, fx| st.update_job("k", put("nope", None), fx))), (404, "PoolNotFound".into()));
    sim.apply(|st, fx| st.disable_job("k", DisableJobOption::Wait, fx)).unwrap();
    sim.apply(|st, fx| st.update_job("k", put("q", None), fx)).unwrap();
    sim.apply(|st, fx| st.enable_job("k", fx)).unwrap();
    assert_eq!(sim.job_wire("k").pool_info.pool_id, "q");
    sim.connect_to("m1", "q", "boot", &[], Vec::new());
    assert_eq!(sim.starts("m1"), ["k/v#1"]);
}

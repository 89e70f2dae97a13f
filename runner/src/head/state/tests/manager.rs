//! Job manager tasks on the head alone.

use super::*;

fn manager(cmd: &str) -> JobManagerTask {
    JobManagerTask { id: "jm".into(), command_line: cmd.into(), ..Default::default() }
}

fn with_manager(sim: &mut Sim, id: &str, m: JobManagerTask) -> Result<(), crate::head::error::ApiError> {
    let p = JobAddParameter {
        id: id.into(),
        pool_info: Some(PoolInformation { pool_id: "p".into() }),
        job_manager_task: Some(m),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_job(p, root(), fx))
}

#[test]
fn a_bad_manager_creates_no_job() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    let e = with_manager(&mut sim, "j", manager("echo 'oops")).unwrap_err();
    assert!(e.body.message.value.starts_with("jobManagerTask: commandLine: "), "{:?}", e.body);
    let e = with_manager(&mut sim, "j", JobManagerTask { id: "bad id".into(), ..manager("true") }).unwrap_err();
    assert!(e.body.message.value.starts_with("jobManagerTask: "), "{:?}", e.body);
    assert!(sim.st.jobs.is_empty());
    assert!(!sim.writes.iter().any(|w| matches!(w, Write::PutJob { .. })), "nothing was written");
}

#[test]
fn the_manager_runs_first_alone_and_its_end_ends_the_job() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    with_manager(&mut sim, "j", manager("true")).unwrap();
    sim.tasks("j", &["a", "b"]);
    assert_eq!(sim.starts("n1"), ["j/jm#1"], "runExclusive: the node is the manager's");
    assert_eq!(sim.task("j", "jm").required_slots, 2);
    sim.finish("n1", "j/jm#1", 0);
    let j = sim.job_wire("j");
    assert_eq!((j.state, j.execution_info.terminate_reason.as_deref()), (JobState::Completed, Some("JMComplete")));
    assert!(sim.starts("n1").is_empty(), "the job's other tasks never run");
}

#[test]
fn a_failed_manager_is_retried_ahead_of_the_jobs_tasks_and_may_leave_the_job_open() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.node("n1");
    let m = JobManagerTask {
        run_exclusive: Some(false),
        kill_job_on_completion: Some(false),
        constraints: Some(TaskConstraints { max_task_retry_count: Some(1), ..Default::default() }),
        ..manager("true")
    };
    with_manager(&mut sim, "j", m).unwrap();
    sim.tasks("j", &["a"]);
    assert_eq!(sim.starts("n1"), ["j/jm#1"]);
    sim.finish("n1", "j/jm#1", 3);
    assert_eq!(sim.starts("n1"), ["j/jm#2"], "the manager's retry goes before task a");
    sim.finish("n1", "j/jm#2", 0);
    assert_eq!(sim.job_wire("j").state, JobState::Active, "killJobOnCompletion false");
    assert_eq!(sim.starts("n1"), ["j/a#1"]);
}

#[test]
fn only_the_manager_gets_a_credential_and_it_is_scoped_to_its_job() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.st.set_job_token_key("secret");
    sim.st.set_api_url("http://head:1");
    sim.node("n1");
    let m = JobManagerTask { run_exclusive: Some(false), ..manager("true") };
    with_manager(&mut sim, "j", m).unwrap();
    sim.tasks("j", &["a"]);
    let mut envs = Vec::new();
    let rx = &mut sim.conns.get_mut("n1").unwrap().0;
    while let Ok(m) = rx.try_recv() {
        if let HeadMessage::StartTask(s) = m {
            envs.push((s.id.task.clone(), s.env.clone()));
        }
    }
    envs.sort();
    let get = |env: &[(String, String)], k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(envs.len(), 2);
    assert_eq!(get(&envs[0].1, "AZ_BATCH_AUTHENTICATION_TOKEN"), None, "task a has none");
    let token = get(&envs[1].1, "AZ_BATCH_AUTHENTICATION_TOKEN").expect("the manager's");
    assert_eq!(get(&envs[1].1, "GANGWAY_TOKEN").as_ref(), Some(&token));
    assert_eq!(get(&envs[1].1, "GANGWAY_URL").as_deref(), Some("http://head:1"));
    let cred = sim.st.job_token_user(&token).unwrap();
    assert_eq!((cred.uid, cred.scope.as_deref()), (0, Some("j")));
    // Forged or of an ended job: refused.
    assert!(sim.st.job_token_user(&token.replace("gwm_", "gwj_")).is_err());
    sim.apply(|st, fx| st.terminate_job("j", None, fx)).unwrap();
    sim.finish("n1", "j/jm#1", 137);
    sim.finish("n1", "j/a#1", 137);
    assert_eq!(sim.job_wire("j").state, JobState::Completed);
    assert!(sim.st.job_token_user(&token).unwrap_err().contains("has ended"));
}

#[test]
fn a_manager_with_no_room_requeues_lower_priority_work_of_its_pool() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    sim.job("low", 0);
    sim.tasks("low", &["a", "b"]);
    assert_eq!(sim.starts("n1").len(), 2, "the node is full");
    // Equal priority: the manager waits.
    let m = |id: &str, priority| JobAddParameter {
        id: id.into(),
        priority: Some(priority),
        pool_info: Some(PoolInformation { pool_id: "p".into() }),
        job_manager_task: Some(manager("true")),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_job(m("same", 0), root(), fx)).unwrap();
    assert!(sim.sent("n1").iter().all(|s| !s.starts_with("kill")));
    assert_eq!(sim.task("same", "jm").state, TaskState::Active);
    // Higher priority: both tasks of the node are requeued (not retries) and it starts there.
    sim.apply(|st, fx| st.add_job(m("urgent", 10), root(), fx)).unwrap();
    let sent = sim.sent("n1");
    assert!(
        sent.contains(&"kill low/a#1 Preempted".to_string()) && sent.contains(&"kill low/b#1 Preempted".to_string()),
        "{sent:?}"
    );
    assert!(sent.contains(&"start urgent/jm#1".to_string()), "{sent:?}");
    for t in ["a", "b"] {
        let w = sim.task("low", t);
        assert_eq!((w.state, w.execution_info.requeue_count, w.execution_info.retry_count), (TaskState::Active, 1, 0));
    }
    // The killed attempts' reports change nothing; the manager's end frees the node for them.
    sim.finish("n1", "low/a#1", 137);
    sim.finish("n1", "urgent/jm#1", 0);
    let mut starts = sim.starts("n1");
    starts.sort();
    assert_eq!(starts, ["low/a#2", "low/b#2"], "the requeued tasks run again, ahead of the later job's manager");
}

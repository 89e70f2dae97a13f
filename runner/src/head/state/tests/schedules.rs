//! Job schedules on the head alone (times in the past stand for runs already due).

use super::*;

fn ago(secs: u64) -> Timestamp {
    Timestamp(Timestamp::now().0 - (secs * 1_000_000) as i64)
}

fn every(secs: u64) -> Option<IsoDuration> {
    Some(IsoDuration(Duration::from_secs(secs)))
}

fn spec(manager: &str) -> JobSpecification {
    JobSpecification {
        pool_info: PoolInformation { pool_id: "p".into() },
        job_manager_task: Some(JobManagerTask {
            id: "run".into(),
            command_line: manager.into(),
            run_exclusive: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn add(
    sim: &mut Sim,
    id: &str,
    schedule: Schedule,
    spec: JobSpecification,
) -> Result<(), crate::head::error::ApiError> {
    let p = JobScheduleAddParameter { id: id.into(), display_name: None, schedule, job_specification: spec };
    sim.apply(|st, fx| st.add_schedule(p, root(), fx))
}

fn jobs_of(sim: &Sim, id: &str) -> Vec<String> {
    sim.st.jobs.values().filter(|j| j.wire.job_schedule_id.as_deref() == Some(id)).map(|j| j.wire.id.clone()).collect()
}

#[test]
fn a_due_run_makes_its_job_and_the_next_run_is_one_interval_on() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    let until = ago(10);
    add(
        &mut sim,
        "s",
        Schedule { do_not_run_until: Some(until), recurrence_interval: every(3600), ..Default::default() },
        spec("true"),
    )
    .unwrap();
    assert_eq!(jobs_of(&sim, "s"), ["s:job-1"]);
    assert_eq!(sim.starts("n1"), ["s:job-1/run#1"]);
    let s = &sim.st.schedules["s"];
    assert_eq!(s.execution_info.next_run_time, Some(until.plus(Duration::from_secs(3600))));
    assert_eq!(s.execution_info.recent_job.as_ref().map(|r| r.id.as_str()), Some("s:job-1"));
    assert!(sim.timers.contains(&Timer::Schedule { id: "s".into(), at: until.plus(Duration::from_secs(3600)) }));
    // Its manager ends the job; nothing more is due, and a restart makes nothing twice.
    sim.finish("n1", "s:job-1/run#1", 0);
    assert_eq!(sim.job_wire("s:job-1").state, JobState::Completed);
    let sim = sim.restart();
    assert_eq!(jobs_of(&sim, "s"), ["s:job-1"]);
    assert_eq!(sim.st.schedules["s"].jobs_created, 1);
}

#[test]
fn a_run_past_its_start_window_is_skipped_and_one_without_recurrence_completes_the_schedule() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    let window = Some(IsoDuration(Duration::from_secs(5)));
    let late = Schedule {
        do_not_run_until: Some(ago(10)),
        start_window: window,
        recurrence_interval: every(3600),
        ..Default::default()
    };
    add(&mut sim, "late", late, spec("true")).unwrap();
    assert!(jobs_of(&sim, "late").is_empty(), "its window had passed");
    assert_eq!(sim.st.schedules["late"].state, JobScheduleState::Active);
    add(&mut sim, "once", Schedule::default(), spec("true")).unwrap();
    assert_eq!(jobs_of(&sim, "once"), ["once:job-1"]);
    assert_eq!(sim.st.schedules["once"].execution_info.next_run_time, None);
    assert_eq!(sim.starts("n1"), ["once:job-1/run#1"]);
    sim.finish("n1", "once:job-1/run#1", 0);
    assert_eq!(sim.st.schedules["once"].state, JobScheduleState::Completed);
    let past = Schedule { do_not_run_until: Some(ago(20)), do_not_run_after: Some(ago(10)), ..Default::default() };
    add(&mut sim, "past", past, spec("true")).unwrap();
    assert_eq!(sim.st.schedules["past"].state, JobScheduleState::Completed);
    assert!(jobs_of(&sim, "past").is_empty());
}

#[test]
fn one_job_at_a_time_and_a_late_run_waits_for_the_previous_one() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    sim.node("n1");
    add(&mut sim, "s", Schedule { recurrence_interval: every(1), ..Default::default() }, spec("sleep 5")).unwrap();
    assert_eq!(sim.starts("n1"), ["s:job-1/run#1"]);
    std::thread::sleep(Duration::from_millis(1100));
    sim.apply(|st, fx| st.schedule_due("s", fx));
    assert_eq!(jobs_of(&sim, "s"), ["s:job-1"], "its previous job still runs");
    sim.finish("n1", "s:job-1/run#1", 0);
    assert_eq!(jobs_of(&sim, "s"), ["s:job-1", "s:job-2"], "the waiting run is made when it ends");
    assert_eq!(sim.starts("n1"), ["s:job-2/run#1"]);
    // Disabled, it makes nothing; terminated, its job ends (TerminateJobSchedule), then it.
    sim.apply(|st, fx| st.disable_schedule("s", fx)).unwrap();
    sim.finish("n1", "s:job-2/run#1", 0);
    std::thread::sleep(Duration::from_millis(1100));
    sim.apply(|st, fx| st.schedule_due("s", fx));
    assert_eq!(jobs_of(&sim, "s").len(), 2);
    sim.apply(|st, fx| st.enable_schedule("s", fx)).unwrap();
    assert_eq!(jobs_of(&sim, "s").len(), 3, "the run due while disabled is made on enable");
    assert_eq!(sim.starts("n1"), ["s:job-3/run#1"]);
    sim.apply(|st, fx| st.terminate_schedule("s", fx)).unwrap();
    assert_eq!(sim.st.schedules["s"].state, JobScheduleState::Terminating);
    let j = sim.job_wire("s:job-3");
    assert_eq!(
        (j.state, j.execution_info.terminate_reason.as_deref()),
        (JobState::Terminating, Some("TerminateJobSchedule"))
    );
    sim.finish("n1", "s:job-3/run#1", 137);
    assert_eq!(sim.st.schedules["s"].state, JobScheduleState::Completed);
    // Deleting it deletes its jobs.
    sim.apply(|st, fx| st.delete_schedule("s", fx)).unwrap();
    assert!(jobs_of(&sim, "s").is_empty() && !sim.st.schedules.contains_key("s"));
    let sim = sim.restart();
    assert!(sim.st.schedules.is_empty());
}

#[test]
fn bad_schedules_are_refused_by_field_and_create_nothing() {
    let mut sim = Sim::with_pool(2, NodeFillType::Pack);
    let half = Some(IsoDuration(Duration::from_millis(500)));
    let cases: Vec<(Schedule, JobSpecification, u16, &str)> = vec![
        (
            Schedule { recurrence_interval: half, ..Default::default() },
            spec("true"),
            400,
            "schedule.recurrenceInterval is",
        ),
        (
            Schedule { start_window: Some(IsoDuration(Duration::ZERO)), ..Default::default() },
            spec("true"),
            400,
            "schedule.startWindow is zero",
        ),
        (
            Schedule { do_not_run_until: Some(ago(1)), do_not_run_after: Some(ago(5)), ..Default::default() },
            spec("true"),
            400,
            "doNotRunAfter",
        ),
        (
            Schedule::default(),
            JobSpecification { pool_info: PoolInformation { pool_id: "nope".into() }, ..spec("true") },
            404,
            "pool 'nope'",
        ),
        (Schedule::default(), spec("echo 'oops"), 400, "jobSpecification: jobManagerTask: commandLine"),
        (
            Schedule::default(),
            JobSpecification { priority: Some(5000), ..spec("true") },
            400,
            "jobSpecification: priority is 5000",
        ),
    ];
    for (schedule, spec, status, words) in cases {
        let e = add(&mut sim, "s", schedule, spec).unwrap_err();
        assert_eq!(e.status.as_u16(), status, "{words}: {:?}", e.body);
        assert!(e.body.message.value.contains(words), "{words}: {}", e.body.message.value);
    }
    let e = add(&mut sim, "bad id", Schedule::default(), spec("true")).unwrap_err();
    assert_eq!(e.status.as_u16(), 400);
    assert!(sim.st.schedules.is_empty() && sim.st.jobs.is_empty());
    assert!(!sim.writes.iter().any(|w| matches!(w, Write::PutSchedule { .. } | Write::PutJob { .. })));
}

#[test]
fn only_its_owner_or_an_admin_changes_a_schedule() {
    use crate::head::identity::Caller;
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    let alice = Owner { uid: 1001, name: "alice".into() };
    let p = JobScheduleAddParameter {
        id: "hers".into(),
        display_name: None,
        schedule: Schedule {
            do_not_run_until: Some(Timestamp::now().plus(Duration::from_secs(3600))),
            ..Default::default()
        },
        job_specification: spec("true"),
    };
    sim.apply(|st, fx| st.add_schedule(p, alice, fx)).unwrap();
    let who = |uid, admin| Caller { uid, admin, by_job: false, scope: None };
    assert!(sim.st.may_change_schedule(&who(1001, false), "hers").is_ok());
    assert!(sim.st.may_change_schedule(&who(0, true), "hers").is_ok());
    let e = sim.st.may_change_schedule(&who(1002, false), "hers").unwrap_err();
    assert_eq!(e.status.as_u16(), 403);
    assert!(e.body.message.value.contains("it is alice's"), "{:?}", e.body);
    assert_eq!(sim.st.may_change_schedule(&who(1002, false), "nope").unwrap_err().status.as_u16(), 404);
}

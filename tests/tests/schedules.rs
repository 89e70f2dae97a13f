//! Job schedules through the REST API and CLI of a real cluster.

use std::time::Duration;

use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

const EVERY: Duration = Duration::from_secs(2);

#[test]
fn a_schedule_every_2s_neither_repeats_nor_skips_a_run_across_a_head_restart() {
    let mut cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let (code, out, err) = cluster.cli(&["schedule", "create", "--id", "tick", "--every", "2s", "--", "/bin/true"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "tick");
    let mut c = cluster.client();
    let created = |c: &mut gangway_api::client::Client| c.get_schedule("tick").ok().map(|s| s.jobs_created);
    wait_for(Duration::from_secs(20), "the second run", || (created(&mut c)? >= 2).then_some(()));
    cluster.kill_head();
    cluster.start_head();
    let mut c = cluster.client();
    wait_for(Duration::from_secs(20), "the fourth run", || (created(&mut c)? >= 4).then_some(()));
    let s = c.get_schedule("tick").unwrap();
    let now = Timestamp::now();
    // Runs are due at the schedule's creation and every 2 s after: one job per run so far.
    let due = now.millis_since(s.creation_time) / EVERY.as_millis() as u64 + 1;
    assert!(s.jobs_created == due || s.jobs_created + 1 == due, "{} jobs, {due} runs due", s.jobs_created);
    let mut jobs: Vec<Job> = c
        .list_jobs(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|j| j.job_schedule_id.as_deref() == Some("tick"))
        .collect();
    jobs.sort_by_key(|j| j.creation_time);
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let want: Vec<String> = (1..=ids.len()).map(|n| format!("tick:job-{n}")).collect();
    assert_eq!(ids, want, "numbered without a gap or a repeat");
    assert!(ids.len() as u64 >= s.jobs_created, "{ids:?}");
    for (k, j) in jobs.iter().enumerate() {
        // Job k+1 was made in its own run's slot (a slot due while the head was down, at its
        // restart), never before it.
        let slot = s.creation_time.plus(EVERY * k as u32);
        assert!(j.creation_time >= slot, "{} made before its run", j.id);
        assert!(j.creation_time < slot.plus(EVERY + Duration::from_secs(1)), "{} made a run late", j.id);
    }
    // Each job ran its manager task and ended with it.
    let first = c.get_task("tick:job-1", "run").unwrap();
    assert_eq!(first.execution_info.exit_code, Some(0));
    assert_eq!(c.get_job("tick:job-1").unwrap().execution_info.terminate_reason.as_deref(), Some("JMComplete"));
    // Terminated: no more runs; deleted: its jobs go with it.
    let (code, _, err) = cluster.cli(&["schedule", "terminate", "tick"]);
    assert_eq!(code, 0, "{err}");
    let ended = wait_for(Duration::from_secs(10), "the schedule to complete", || {
        let s = c.get_schedule("tick").ok()?;
        (s.state == JobScheduleState::Completed).then_some(s)
    });
    std::thread::sleep(EVERY);
    assert_eq!(c.get_schedule("tick").unwrap().jobs_created, ended.jobs_created);
    let (code, _, err) = cluster.cli(&["schedule", "delete", "tick"]);
    assert_eq!(code, 0, "{err}");
    let left = c.list_jobs(&Default::default()).unwrap();
    assert!(left.iter().all(|j| j.job_schedule_id.is_none()), "{left:?}");
    assert_eq!(c.get_schedule("tick").unwrap_err().status(), Some(404));
}

#[test]
fn bad_schedules_are_refused_by_name_and_a_good_one_is_kept_as_given() {
    let cluster = Cluster::start(Options { nodes: 0, ..Options::default() });
    let mut c = cluster.client();
    let check =
        |c: &mut gangway_api::client::Client, method: &str, path: &str, body: &str, status: u16, words: &str| {
            let r = c.raw(method, path, Some(body.as_bytes()), &[]).unwrap();
            let text = String::from_utf8_lossy(&r.body).into_owned();
            assert_eq!(r.status, status, "{method} {path} {body}: {text}");
            assert!(text.contains(words), "{method} {path} {body}: {text}");
        };
    let spec =
        r#""jobSpecification":{"poolInfo":{"poolId":"default"},"jobManagerTask":{"id":"m","commandLine":"true"}}"#;
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/jobschedules".into(),
            format!(r#"{{"id":"s","schedule":{{"recurrenceInterval":"PT0.5S"}},{spec}}}"#),
            400,
            "recurrenceInterval is",
        ),
        (
            "POST",
            "/jobschedules".into(),
            format!(r#"{{"id":"s","schedule":{{"sometimes":true}},{spec}}}"#),
            400,
            "sometimes",
        ),
        (
            "POST",
            "/jobschedules".into(),
            r#"{"id":"s","schedule":{},"jobSpecification":{"poolInfo":{"poolId":"nope"}}}"#.into(),
            404,
            "pool 'nope'",
        ),
        ("POST", "/jobschedules".into(), format!(r#"{{"id":"s:x","schedule":{{}},{spec}}}"#), 400, "job schedule id"),
        (
            "POST",
            "/jobschedules".into(),
            format!(r#"{{"id":"s","schedule":{{"doNotRunUntil":"2099-01-01T00:00:00Z"}},{spec}}}"#),
            201,
            "",
        ),
        ("POST", "/jobschedules".into(), format!(r#"{{"id":"s","schedule":{{}},{spec}}}"#), 409, "JobScheduleExists"),
        ("POST", "/jobschedules/s/disable".into(), String::new(), 204, ""),
        ("POST", "/jobschedules/s/enable".into(), String::new(), 204, ""),
        ("POST", "/jobschedules/s/explode".into(), String::new(), 404, "ResourceNotFound"),
        (
            "PATCH",
            "/jobschedules/s".into(),
            r#"{"schedule":{"recurrenceInterval":"PT1H","doNotRunUntil":"2099-01-01T00:00:00Z"}}"#.into(),
            200,
            "",
        ),
        ("GET", "/jobschedules/s?$select=id,state".into(), String::new(), 200, r#"{"id":"s","state":"active"}"#),
        ("GET", "/jobschedules/nope".into(), String::new(), 404, "JobScheduleNotFound"),
    ];
    for (method, path, body, status, words) in &cases {
        check(&mut c, method, path, body, *status, words);
    }
    let s = c.get_schedule("s").unwrap();
    assert_eq!(s.schedule.recurrence_interval, Some(IsoDuration(Duration::from_secs(3600))));
    assert_eq!(s.jobs_created, 0, "nothing is due before 2099");
    assert_eq!(s.owner.map(|o| o.uid), Some(0));
}

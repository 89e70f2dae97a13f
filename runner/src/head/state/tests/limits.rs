//! Limits the head enforces whatever the client checked: array sizes, open jobs.

use gangway_api::slurm::MAX_ARRAY_SIZE;
use gangway_api::*;

use super::{slurm_request, Sim};

#[test]
fn array_indices_past_max_array_size_are_refused_and_nothing_is_queued() {
    let mut sim = Sim::new();
    let pool = PoolAddParameter { id: "default".into(), task_slots_per_node: Some(1), ..Default::default() };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    let submit = |last: u32| slurm_request("default", &format!(r#","array":{{"indices":[0,{last}]}}"#));
    let big = submit(MAX_ARRAY_SIZE);
    let err = sim.apply(|st, fx| st.slurm_submit(big, "127.0.0.1:1", fx)).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    let msg = &err.body.message.value;
    assert!(msg.contains("Invalid job array specification: index 1001 is not below MaxArraySize (1001)"), "{msg}");
    assert!(sim.st.jobs.is_empty());
    let ok = submit(MAX_ARRAY_SIZE - 1);
    sim.apply(|st, fx| st.slurm_submit(ok, "127.0.0.1:1", fx)).unwrap();
    assert_eq!(sim.st.jobs.len(), 2);
    // A site's own MaxArraySize (`--max-array-size`).
    sim.st.set_max_array_size(5000);
    let big = submit(4999);
    sim.apply(|st, fx| st.slurm_submit(big, "127.0.0.1:1", fx)).unwrap();
    assert_eq!(sim.st.jobs.len(), 4);
    let err = sim.apply(|st, fx| st.slurm_submit(submit(5000), "127.0.0.1:1", fx)).unwrap_err();
    assert!(err.body.message.value.contains("is not below MaxArraySize (5000)"), "{err:?}");
}

#[test]
fn open_jobs_are_limited_in_all_and_per_user_and_completing_one_makes_room() {
    use super::super::limits::JobLimits;
    let mut sim = Sim::new();
    sim.st.set_job_limits(JobLimits { max_jobs: 3, max_per_user: Some(2) });
    let pool = PoolAddParameter { id: "default".into(), task_slots_per_node: Some(1), ..Default::default() };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    let add = |sim: &mut Sim, id: &str, uid: u32| {
        let owner = Owner { uid, name: format!("u{uid}") };
        sim.apply(|st, fx| st.add_job(JobAddParameter { id: id.into(), ..Default::default() }, owner, fx))
    };
    add(&mut sim, "a1", 1001).unwrap();
    add(&mut sim, "a2", 1001).unwrap();
    let err = add(&mut sim, "a3", 1001).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
    assert!(err.body.message.value.contains("uid 1001 has 2 open jobs and may have 2 (--max-jobs-per-user)"));
    add(&mut sim, "b1", 1002).unwrap();
    let err = add(&mut sim, "b2", 1002).unwrap_err();
    assert!(err.body.message.value.contains("3 jobs are open and the head takes at most 3 (--max-jobs)"), "{err:?}");
    assert!(!sim.st.jobs.contains_key("a3") && !sim.st.jobs.contains_key("b2"), "nothing refused was added");
    // A job that completes (terminated, nothing running) or is deleted makes room.
    sim.apply(|st, fx| st.terminate_job("a1", None, fx)).unwrap();
    add(&mut sim, "a3", 1001).unwrap();
    sim.apply(|st, fx| st.delete_job("b1", fx)).unwrap();
    add(&mut sim, "b2", 1002).unwrap();
    // And the counts come back with the store.
    let mut again = sim.restart();
    again.st.set_job_limits(JobLimits { max_jobs: 3, max_per_user: Some(2) });
    assert!(add(&mut again, "b3", 1002).unwrap_err().body.message.value.contains("--max-jobs"));
}

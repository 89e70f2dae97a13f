//! Limits the head enforces whatever the client checked: array sizes.

use gangway_api::slurm::{SlurmSubmit, MAX_ARRAY_SIZE};
use gangway_api::*;

use super::Sim;

#[test]
fn array_indices_past_max_array_size_are_refused_and_nothing_is_queued() {
    let mut sim = Sim::new();
    let pool = PoolAddParameter { id: "default".into(), task_slots_per_node: Some(1), ..Default::default() };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    let submit = |last: u32| -> SlurmSubmit {
        let mut req: SlurmSubmit = serde_json::from_str(&format!(
            r#"{{"name":"a","uid":0,"gid":0,"user":"root","script":"true","workDir":"/","submitDir":"/",
                "submitHost":"h","output":"o","nodes":1,"ntasks":1,"cpusPerTask":1,
                "array":{{"indices":[0,{last}]}}}}"#
        ))
        .unwrap();
        req.partition = Some("default".into());
        req
    };
    let big = submit(MAX_ARRAY_SIZE);
    let err = sim.apply(|st, fx| st.slurm_submit(big, "127.0.0.1:1", fx)).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    let msg = &err.body.message.value;
    assert!(msg.contains("Invalid job array specification: index 1001 is not below MaxArraySize (1001)"), "{msg}");
    assert!(sim.st.jobs.is_empty());
    let ok = submit(MAX_ARRAY_SIZE - 1);
    sim.apply(|st, fx| st.slurm_submit(ok, "127.0.0.1:1", fx)).unwrap();
    assert_eq!(sim.st.jobs.len(), 2);
}

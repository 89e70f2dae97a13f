//! `MinJobAge`: finished Slurm jobs leave memory (for the store's history) after an age.

use std::time::Duration;

use gangway_api::*;

use super::{slurm_request, Sim};
use crate::store::Write;

#[test]
fn finished_slurm_jobs_leave_memory_after_min_job_age_and_their_record_goes_to_history() {
    let mut sim = Sim::with_pool(1, NodeFillType::Pack);
    sim.join("n1", "p", NodeResources { cpus: 1, cores: 1, memory_bytes: 1 << 30, ..Default::default() });
    let submit = |sim: &mut Sim, extra: &str| {
        let req = slurm_request("p", extra);
        sim.apply(|st, fx| st.slurm_submit(req, "h:1", fx)).unwrap().job_id
    };
    let done = submit(&mut sim, "");
    let failed = submit(&mut sim, "");
    let waits = submit(
        &mut sim,
        &format!(r#","dependency":{{"text":"afterok:{failed}","conditions":[{{"kind":"afterok","jobId":{failed}}}]}}"#),
    );
    let pending = submit(&mut sim, "");
    sim.finish("n1", &format!("{done}/batch#1"), 0);
    sim.finish("n1", &format!("{failed}/batch#1"), 1);
    assert_eq!(sim.starts("n1").len(), 3, "done, failed, then pending ran");
    assert_eq!(sim.st.slurm_state(&waits.to_string()).1, "DependencyNeverSatisfied");
    let azure = "az";
    sim.job_with(JobAddParameter { id: azure.into(), ..Default::default() });
    sim.tasks(azure, &["t"]);
    sim.finish("n1", &format!("{pending}/batch#1"), 0);
    sim.finish("n1", "az/t#1", 0);
    sim.apply(|st, fx| st.terminate_job(azure, None, fx)).unwrap();
    assert_eq!(sim.job_wire(azure).state, JobState::Completed);

    // Not yet: the age has not passed.
    let now = Timestamp::now();
    assert!(sim.apply(|st, fx| st.purge_finished(now, fx)).is_empty());
    // Past it: the ended Slurm jobs go, but not one a pending job still waits on, nor an Azure job.
    let mark = sim.writes.len();
    let later = now.plus(Duration::from_secs(301));
    let purged = sim.apply(|st, fx| st.purge_finished(later, fx));
    assert_eq!(purged, [done, pending]);
    for id in [done, pending] {
        assert!(sim.st.slurm_job(id).is_none(), "{id} left memory");
        let history = sim.writes[mark..].iter().find_map(|w| match w {
            Write::PutHistory { job_id, uid, body, .. } if *job_id == id => Some((*uid, body.clone())),
            _ => None,
        });
        let (uid, body) = history.unwrap_or_else(|| panic!("{id} has a history record"));
        let job: gangway_api::slurm::SlurmJob = serde_json::from_str(&body).unwrap();
        assert_eq!((uid, job.job_id, job.state), (0, id, gangway_api::slurm::SlurmJobState::Completed));
        assert!(sim.writes[mark..].contains(&Write::DeleteJob { id: id.to_string() }));
    }
    assert!(sim.st.slurm_job(failed).is_some(), "job {waits} still depends on it");
    assert!(sim.st.jobs.contains_key(azure), "Azure jobs stay until deleted");
    // A restarted head does not bring them back; the job ids are never reused.
    let mut again = sim.restart();
    assert!(again.st.slurm_job(done).is_none() && again.st.slurm_job(failed).is_some());
    let next = {
        let req = slurm_request("p", "");
        again.apply(|st, fx| st.slurm_submit(req, "h:1", fx)).unwrap().job_id
    };
    assert!(next > pending, "{next}");
    // With MinJobAge 0 nothing is purged.
    again.st.set_min_job_age(Duration::ZERO);
    assert_eq!(again.st.purge_every(), None);
    assert!(again.apply(|st, fx| st.purge_finished(later.plus(Duration::from_secs(3600)), fx)).is_empty());
}

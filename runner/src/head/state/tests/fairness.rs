//! Fair share through the Azure front door: the same mechanism as Slurm's jobs.

use gangway_api::*;

use super::super::fairness::FairnessConfig;
use super::{NodeFillType, Sim};

#[test]
fn an_azure_job_of_a_user_who_used_less_passes_an_older_one() {
    let run = |recalculate: bool| {
        let mut sim = Sim::new();
        let mut config = FairnessConfig::default();
        config.set_priority("PriorityWeightFairshare=10000").unwrap();
        sim.st.set_fairness(&config);
        sim.pool("p", 1, NodeFillType::Spread, None);
        let add = |sim: &mut Sim, job: &str, uid: u32, tasks: &[&str]| {
            let owner = Owner { uid, name: format!("u{uid}") };
            let p = JobAddParameter {
                id: job.into(),
                pool_info: Some(PoolInformation { pool_id: "p".into() }),
                ..Default::default()
            };
            sim.apply(|st, fx| st.add_job(p, owner, fx)).unwrap();
            sim.tasks(job, tasks);
        };
        add(&mut sim, "alice", 1001, &["a1", "a2"]);
        sim.node("n1");
        assert_eq!(sim.starts("n1"), ["alice/a1#1"]);
        add(&mut sim, "bob", 1002, &["b1"]);
        std::thread::sleep(std::time::Duration::from_millis(30));
        if recalculate {
            sim.apply(|st, fx| st.reprioritize(fx));
        }
        sim.finish("n1", "alice/a1#1", 0);
        sim.starts("n1")
    };
    // Before a recalculation Alice's usage is not known: her older task goes first.
    assert_eq!(run(false), ["alice/a2#1"]);
    // After it, Bob's job, though newer, passes hers.
    assert_eq!(run(true), ["bob/b1#1"]);
}

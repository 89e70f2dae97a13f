//! How a Slurm job's tasks and CPUs spread over its nodes.

use gangway_api::slurm::SlurmSubmit;

use super::super::slurm::{cpus_per_node, tasks_per_node};

fn submit(nodes: u32, ntasks: u32, per_node: Option<u32>, cpus: u32) -> SlurmSubmit {
    let mut r = super::slurm_request("p", "");
    (r.nodes, r.ntasks, r.ntasks_per_node, r.cpus_per_task) = (nodes, ntasks, per_node, cpus);
    r
}

#[test]
fn ntasks_wins_over_ntasks_per_node_times_nodes_as_in_slurm() {
    // `--ntasks=16 --nodes=2 --ntasks-per-node=16 -c 8`: 16 tasks, NumCPUs=128 (not 256).
    let r = submit(2, 16, Some(16), 8);
    assert_eq!(tasks_per_node(&r), [8, 8]);
    assert_eq!(cpus_per_node(&r).iter().sum::<u32>(), 128);
    // `-N 4 --ntasks-per-node=2` (ntasks 8): every node full.
    assert_eq!(tasks_per_node(&submit(4, 8, Some(2), 1)), [2, 2, 2, 2]);
    // `-n 5 -N 2 --ntasks-per-node=4`: at most 4 on a node.
    assert_eq!(tasks_per_node(&submit(2, 5, Some(4), 1)), [3, 2]);
    // `-N 2` alone (one task per node).
    assert_eq!(tasks_per_node(&submit(2, 2, None, 1)), [1, 1]);
}

#[test]
fn a_pending_jobs_new_time_limit_moves_it_in_the_deadline_order() {
    use super::Sim;
    use gangway_api::slurm::SlurmUpdate;
    use gangway_api::PoolAddParameter;
    let mut sim = Sim::new();
    let pool = PoolAddParameter { id: "p".into(), task_slots_per_node: Some(1), ..Default::default() };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    let submit = |sim: &mut Sim, minutes: u64| {
        let mut req = submit(1, 1, None, 1);
        req.partition = Some("p".into());
        req.time_limit_s = Some(minutes * 60);
        sim.apply(|st, fx| st.slurm_submit(req, "127.0.0.1:1", fx)).unwrap().job_id
    };
    let cpus = gangway_topology::NodeResources { cpus: 1, cores: 1, memory_bytes: 1 << 30, ..Default::default() };
    sim.join("n1", "p", cpus);
    let first = submit(&mut sim, 10);
    assert_eq!(sim.starts("n1"), [format!("{first}/batch#1")]);
    let (long, short) = (submit(&mut sim, 100), submit(&mut sim, 1));
    // The short job is first by deadline until its limit becomes unlimited.
    let update = SlurmUpdate { time_limit_s: None, unlimited: true };
    sim.apply(|st, fx| st.slurm_update(&short.to_string(), update, fx)).unwrap();
    sim.finish("n1", &format!("{first}/batch#1"), 0);
    assert_eq!(sim.starts("n1"), [format!("{long}/batch#1")]);
}

#[test]
fn a_job_without_memory_shows_the_partitions_def_mem_per_cpu() {
    use super::Sim;
    use gangway_api::PoolAddParameter;
    let mut sim = Sim::new();
    let pool = PoolAddParameter {
        id: "p".into(),
        task_slots_per_node: Some(4),
        default_memory_per_cpu_mib: Some(2048),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    let mut req = submit(1, 2, None, 1);
    req.partition = Some("p".into());
    let id = sim.apply(|st, fx| st.slurm_submit(req.clone(), "127.0.0.1:1", fx)).unwrap().job_id;
    assert_eq!(sim.st.slurm_job(id).unwrap().mem_per_cpu_mb, Some(2048));
    req.mem_per_node_mb = Some(1000);
    let id = sim.apply(|st, fx| st.slurm_submit(req, "127.0.0.1:1", fx)).unwrap().job_id;
    assert_eq!(sim.st.slurm_job(id).unwrap().mem_per_cpu_mb, None, "a request of its own wins");
}

#[test]
fn a_partitions_mpi_default_reaches_its_batch_jobs_for_srun() {
    use super::Sim;
    use gangway_api::messages::HeadMessage;
    use gangway_api::PoolAddParameter;
    let mut sim = Sim::new();
    let bad = PoolAddParameter { id: "bad".into(), mpi_default: Some("lam".into()), ..Default::default() };
    let err = sim.apply(|st, fx| st.add_pool(bad, fx)).unwrap_err().body.message.value;
    assert!(err.contains("mpiDefault is 'lam'; it must be auto, pmi2, pmix or none"), "{err}");
    let pool = PoolAddParameter { id: "p".into(), mpi_default: Some("pmix".into()), ..Default::default() };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    sim.join("n1", "p", gangway_topology::NodeResources { cpus: 1, cores: 1, ..Default::default() });
    let mut req = submit(1, 1, None, 1);
    req.partition = Some("p".into());
    sim.apply(|st, fx| st.slurm_submit(req, "127.0.0.1:1", fx)).unwrap();
    let rx = &mut sim.conns.get_mut("n1").expect("connected").0;
    let env: Vec<(String, String)> = std::iter::from_fn(|| rx.try_recv().ok())
        .find_map(|m| match m {
            HeadMessage::StartTask(s) => Some(s.env),
            _ => None,
        })
        .expect("the job started");
    assert!(env.contains(&("GANGWAY_MPI_DEFAULT".into(), "pmix".into())), "{env:?}");
}

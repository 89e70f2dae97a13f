//! Memory in allocations: a pool's default memory per CPU, `--mem`, `--mem=0`, as the head
//! records and sends them.

use gangway_api::messages::HeadMessage;
use gangway_api::*;

use super::{slurm_request, Sim};

/// A head with pool `default` (4 slots, `per_cpu` MiB per CPU by default) and one 4-CPU,
/// 1 GiB node.
fn cluster(per_cpu: Option<u64>) -> Sim {
    let mut sim = Sim::new();
    let pool = PoolAddParameter {
        id: "default".into(),
        task_slots_per_node: Some(4),
        default_memory_per_cpu_mib: per_cpu,
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    sim.join("node1", "default", NodeResources { cpus: 4, cores: 4, memory_bytes: 1 << 30, ..Default::default() });
    sim
}

/// The memory the node was told the latest start may use.
fn started_memory(sim: &mut Sim) -> Vec<u64> {
    let rx = &mut sim.conns.get_mut("node1").unwrap().0;
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            HeadMessage::StartTask(s) => s.allocation.map(|a| a.memory_mib),
            _ => None,
        })
        .collect()
}

fn sbatch(sim: &mut Sim, extra: &str) {
    let mut req = slurm_request("default", extra);
    req.cpus_per_task = 2;
    sim.apply(|st, fx| st.slurm_submit(req, "127.0.0.1:1", fx)).unwrap();
}

#[test]
fn a_pool_default_gives_tasks_without_memory_some_per_cpu() {
    let mut sim = cluster(Some(100));
    // -c 2 without --mem: 2 × 100 MiB.
    sbatch(&mut sim, "");
    // --mem-per-cpu and --mem win over the default.
    sbatch(&mut sim, r#","memPerCpuMb":50"#);
    assert_eq!(started_memory(&mut sim), vec![200, 100]);
    let job = sim.st.jobs.values().find(|j| j.wire.slurm.is_some()).unwrap();
    let t = &job.tasks["batch"].wire;
    assert_eq!(t.resources.as_ref().and_then(|r| r.memory_mib), Some(200), "recorded as what it asked");
    // An Azure task naming CPUs but no memory gets the default too (it waits: both jobs
    // hold the node's 4 CPUs).
    sim.apply(|st, fx| st.add_job(JobAddParameter { id: "j".into(), ..Default::default() }, super::root(), fx))
        .unwrap();
    let task = TaskAddParameter {
        id: "t".into(),
        command_line: "true".into(),
        resources: Some(TaskResources { cpus: Some(1), ..Default::default() }),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_task("j", task, fx)).unwrap();
    let t = &sim.st.jobs["j"].tasks["t"].wire;
    assert_eq!(t.resources.as_ref().and_then(|r| r.memory_mib), Some(100));
}

#[test]
fn mem_0_takes_all_of_a_node_s_memory_and_without_a_default_memory_is_not_allocated() {
    let mut sim = cluster(None);
    sbatch(&mut sim, "");
    sbatch(&mut sim, r#","memPerNodeMb":0"#);
    assert_eq!(started_memory(&mut sim), vec![0, 1024]);
    // A pool default of 0 is refused by name.
    let bad = PoolAddParameter { id: "bad".into(), default_memory_per_cpu_mib: Some(0), ..Default::default() };
    let e = sim.apply(|st, fx| st.add_pool(bad, fx)).unwrap_err();
    assert!(e.body.message.value.contains("defaultMemoryPerCpuMiB"), "{}", e.body.message.value);
}

#[test]
fn per_gpu_requests_size_cpus_and_memory_by_the_node_s_gpus() {
    let mut sim = Sim::new();
    let pool = PoolAddParameter { id: "default".into(), task_slots_per_node: Some(16), ..Default::default() };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    let mut resources = NodeResources { cpus: 16, cores: 16, memory_bytes: 4 << 30, ..Default::default() };
    for index in 0..4 {
        let gpu =
            gangway_topology::Gpu { index, name: "NVIDIA H100".into(), uuid: String::new(), pci_bus_id: String::new() };
        resources.gpus.push(gpu);
    }
    sim.join("node1", "default", resources);
    // 2 GPUs per node, 3 CPUs and 500 MB for each.
    let req = slurm_request("default", r#","gpusPerNode":2,"cpusPerGpu":3,"memPerGpuMb":500"#);
    sim.apply(|st, fx| st.slurm_submit(req, "127.0.0.1:1", fx)).unwrap();
    let rx = &mut sim.conns.get_mut("node1").unwrap().0;
    let start = std::iter::from_fn(|| rx.try_recv().ok())
        .find_map(|m| match m {
            HeadMessage::StartTask(s) => Some(s),
            _ => None,
        })
        .expect("started");
    let a = start.allocation.as_ref().unwrap();
    assert_eq!((a.cpus.len(), a.memory_mib, a.gpus.len()), (6, 1000, 2), "{a:?}");
    let var = |k: &str| start.env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!((var("SLURM_CPUS_PER_GPU"), var("SLURM_MEM_PER_GPU")), (Some("3"), Some("500")));
}

/// The scheduler's free cores on `node`.
fn free_cores(sim: &Sim, node: &str) -> u32 {
    sim.st.sched.free_resources(sim.st.nodes[node].key).unwrap().free_cores()
}

/// The last start sent to node1.
fn last_start(sim: &mut Sim) -> Box<gangway_api::messages::StartTask> {
    let rx = &mut sim.conns.get_mut("node1").unwrap().0;
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            HeadMessage::StartTask(s) => Some(s),
            _ => None,
        })
        .last()
        .expect("a start")
}

#[test]
fn retries_deleted_jobs_and_whole_node_tasks_give_back_exactly_what_they_held() {
    let mut sim = cluster(None);
    sim.apply(|st, fx| st.add_job(JobAddParameter { id: "j".into(), ..Default::default() }, super::root(), fx))
        .unwrap();
    let task = |id: &str, resources: TaskResources| TaskAddParameter {
        id: id.into(),
        command_line: "true".into(),
        resources: Some(resources),
        constraints: Some(TaskConstraints { max_task_retry_count: Some(1), ..Default::default() }),
        ..Default::default()
    };
    // A retry: the first attempt's cores come back before the retry takes its own.
    sim.apply(|st, fx| st.add_task("j", task("r", TaskResources { cpus: Some(3), ..Default::default() }), fx)).unwrap();
    let first = last_start(&mut sim);
    assert_eq!(free_cores(&sim, "node1"), 1);
    sim.apply(|st, fx| st.finish_attempt("node1", super::exited(&super::show_id(&first.id), 1), fx));
    let retry = last_start(&mut sim);
    assert_eq!(retry.id.attempt, 2);
    assert_eq!(free_cores(&sim, "node1"), 1, "the retry holds 3 cores, not 6");
    sim.apply(|st, fx| st.finish_attempt("node1", super::exited(&super::show_id(&retry.id), 0), fx));
    assert_eq!(free_cores(&sim, "node1"), 4);

    // A deleted job's running task gives its cores back when its node reports the kill.
    sim.apply(|st, fx| st.add_job(JobAddParameter { id: "d".into(), ..Default::default() }, super::root(), fx))
        .unwrap();
    sim.apply(|st, fx| st.add_task("d", task("all", TaskResources { cpus: Some(4), ..Default::default() }), fx))
        .unwrap();
    let doomed = last_start(&mut sim);
    sim.apply(|st, fx| st.delete_job("d", fx)).unwrap();
    assert_eq!(free_cores(&sim, "node1"), 0, "held until the node says it is gone");
    sim.apply(|st, fx| st.finish_attempt("node1", super::exited(&super::show_id(&doomed.id), 137), fx));
    assert_eq!(free_cores(&sim, "node1"), 4);
    assert!(sim.st.deleted.is_empty());

    // A whole-node task holds every slot, as the head records it too.
    sim.apply(|st, fx| st.add_task("j", task("x", TaskResources { exclusive: true, ..Default::default() }), fx))
        .unwrap();
    assert_eq!(sim.st.jobs["j"].tasks["x"].wire.required_slots, 4);
    assert_eq!(sim.st.nodes["node1"].wire.running_task_slots_count, 4);
}

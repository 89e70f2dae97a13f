//! How a Slurm job's tasks and CPUs spread over its nodes.

use gangway_api::slurm::SlurmSubmit;

use super::super::slurm::{cpus_per_node, tasks_per_node};

fn submit(nodes: u32, ntasks: u32, per_node: Option<u32>, cpus: u32) -> SlurmSubmit {
    let mut r: SlurmSubmit = serde_json::from_str(
        r#"{"name":"a","uid":0,"gid":0,"script":"true","workDir":"/","submitDir":"/",
            "submitHost":"h","output":"o","nodes":1,"ntasks":1,"cpusPerTask":1}"#,
    )
    .unwrap();
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

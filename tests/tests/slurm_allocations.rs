//! Slurm jobs get exact allocations on launchers that declare 8-GPU nodes (the hwloc fixture):
//! a job over its `--mem` ends OUT_OF_MEMORY and the next runs; a 2-node
//! `--ntasks-per-node=2` job leaves the rest of both nodes to other jobs; `scontrol show job -d`
//! and `sinfo -O` show what is held; requests no node can meet are refused.

use std::time::Duration;

use gangway_api::slurm::SlurmJobState;
use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{topology_fixture, wait_for, Cluster, Options};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn slurm_jobs_share_nodes_by_their_cpus_memory_and_gpus() {
    let xml = topology_fixture("dgx_like.xml");
    let cluster = Cluster::start(Options { nodes: 2, slots: 64, topology_xml: Some(xml), ..Options::default() });
    let door = SlurmFrontDoor::new(cluster.config.clone());
    let go = door.work().join("go");
    let hold = format!("while [ ! -e {} ]; do sleep 0.05; done", go.display());

    // Over its memory: killed and shown as OUT_OF_MEMORY; the next job runs normally.
    let hog = door.sbatch(&["--mem=64M", "-o", "hog.out", "--wrap", "python3 -c 'b = bytearray(256 << 20)'"]);
    assert_eq!(door.wait_end(hog, WAIT).state, SlurmJobState::OutOfMemory);
    let sacct = door.run("sacct", &["-n", "-P", "-X", "-j", &hog.to_string(), "-o", "State"]);
    assert!(String::from_utf8_lossy(&sacct.stdout).contains("OUT_OF_MEMORY"), "{sacct:?}");
    let fine = door.sbatch(&["--mem=64M", "-o", "fine.out", "--wrap", "python3 -c 'b = bytearray(16 << 20)'"]);
    assert_eq!(door.wait_end(fine, WAIT).state, SlurmJobState::Completed);

    // Two nodes, two tasks (CPUs) each, one GPU each; beside it, a 1-GPU job on each node.
    let gang = door.sbatch(&["-N2", "--ntasks-per-node=2", "--gpus-per-node=1", "-o", "gang.out", "--wrap", &hold]);
    let side: Vec<u64> =
        (0..2).map(|_| door.sbatch(&["-c", "8", "--gres=gpu:1", "-o", "/dev/null", "--wrap", &hold])).collect();
    let mut c = cluster.client();
    wait_for(WAIT, "the gang and both side jobs to run", || {
        [gang, side[0], side[1]]
            .iter()
            .all(|id| c.slurm_job(*id).is_ok_and(|j| j.state == SlurmJobState::Running))
            .then_some(())
    });
    let g = c.slurm_job(gang).unwrap();
    assert_eq!(g.allocation.len(), 2, "{g:?}");
    for part in &g.allocation {
        // 2 CPUs on 2-thread cores: one core, both of its threads.
        assert_eq!((part.cpus.len(), part.gpus.len()), (2, 1), "{part:?}");
    }
    let details = door.run("scontrol", &["-d", "show", "job", &gang.to_string()]);
    let text = String::from_utf8_lossy(&details.stdout);
    assert!(text.contains("   JOB_GRES=gpu:2\n"), "{text}");
    assert!(text.contains("     Nodes=node[1-2] CPU_IDs=0-1 Mem=0 GRES=gpu:1(IDX:0)\n"), "{text}");
    let sinfo = door.run("sinfo", &["-N", "-h", "-O", "NodeList:6,CPUsState,GresUsed"]);
    let rows = String::from_utf8_lossy(&sinfo.stdout).into_owned();
    // Each node: the gang's 2 CPUs, a side job's 8, of 64; GPUs 0 and 1.
    for node in ["node1", "node2"] {
        let want = format!("{node} 10/54/0/64          gpu:2(IDX:0-1)      ");
        assert!(rows.lines().any(|l| l == want), "{want:?} in\n{rows}");
    }

    // More memory than any node has: refused at submission, in Slurm's words and naming the
    // resource; more CPUs than any node has: queued for bigger nodes, as Slurm does.
    let out = door.run("sbatch", &["--mem=10T", "--wrap", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("sbatch: error: Memory specification can not be satisfied\n"), "{err}");
    assert!(err.contains("MiB of memory on one node, and the largest node has"), "{err}");
    let big = door.sbatch(&["-c", "65", "--wrap", "true"]);
    let job = door.job(big);
    assert_eq!((job.state, job.reason.as_str()), (SlurmJobState::Pending, "PartitionConfig"));
    assert!(door.run("scancel", &[&big.to_string()]).status.success());
    std::fs::write(&go, "").unwrap();
    for id in [gang, side[0], side[1]] {
        assert_eq!(door.wait_end(id, WAIT).state, SlurmJobState::Completed, "job {id}");
    }
}

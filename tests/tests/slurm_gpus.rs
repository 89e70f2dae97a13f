//! GPUs for Slurm jobs on launchers that declare an 8-GPU node (the hwloc fixture; this
//! machine has no GPU): `--gres=gpu:N` gets the batch environment of the reference
//! (`gpu-binding.txt`), `--gpus-per-task` gives each srun task its own GPU, a GPU job takes
//! only its GPUs of a node, and a request no node can meet is refused before anything is queued.

use std::time::Duration;

use gangway_api::slurm::SlurmJobState;
use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{topology_fixture, Cluster, Options};

const SHOW: &str = "env | grep -E '^(CUDA_VISIBLE_DEVICES|GPU_DEVICE_ORDINAL|ROCR_VISIBLE_DEVICES|SLURM_GPUS_ON_NODE|SLURM_JOB_GPUS|SLURM_GPUS|SLURM_GPUS_PER_TASK)=' | sort";
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn gpu_jobs_get_their_own_gpus_of_their_nodes() {
    let xml = topology_fixture("dgx_like.xml");
    let cluster = Cluster::start(Options { nodes: 2, slots: 8, topology_xml: Some(xml), ..Options::default() });
    let door = SlurmFrontDoor::new(cluster.config.clone());

    // As `sbatch -n2 --gres=gpu:2` in the reference.
    let a = door.sbatch(&["-n2", "--gres=gpu:2", "-o", "a.out", "--wrap", SHOW]);
    assert_eq!(door.wait_end(a, WAIT).state, SlurmJobState::Completed);
    assert_eq!(
        door.sorted_lines("a.out"),
        [
            "CUDA_VISIBLE_DEVICES=0,1",
            "GPU_DEVICE_ORDINAL=0,1",
            "ROCR_VISIBLE_DEVICES=0,1",
            "SLURM_GPUS_ON_NODE=2",
            "SLURM_JOB_GPUS=0,1"
        ]
    );

    // --gpus-per-task: the job's srun gives each task one of the job's GPUs; a type that the
    // nodes' GPUs name (H100) is accepted.
    let b = door.sbatch(&[
        "-n3",
        "--gpus-per-task=h100:1",
        "-o",
        "b.out",
        "--wrap",
        &format!("{SHOW}; srun -l sh -c 'echo $CUDA_VISIBLE_DEVICES'"),
    ]);
    assert_eq!(door.wait_end(b, WAIT).state, SlurmJobState::Completed, "{}", door.read("b.out"));
    let lines = door.sorted_lines("b.out");
    for want in
        ["0: 0", "1: 1", "2: 2", "CUDA_VISIBLE_DEVICES=0,1,2", "SLURM_GPUS_ON_NODE=3", "SLURM_GPUS_PER_TASK=h100:1"]
    {
        assert!(lines.iter().any(|l| l == want), "{want} missing from {lines:?}");
    }

    // --gres=gpu:0: zero GPUs per node: the job sees none of the node's.
    let z = door.sbatch(&["-n1", "--gres=gpu:0", "-o", "z.out", "--wrap", SHOW]);
    assert_eq!(door.wait_end(z, WAIT).state, SlurmJobState::Completed, "{}", door.read("z.out"));
    let z_out = door.sorted_lines("z.out");
    assert_eq!(z_out, ["CUDA_VISIBLE_DEVICES=", "GPU_DEVICE_ORDINAL=", "ROCR_VISIBLE_DEVICES="], "every GPU hidden");

    // -G 4 over two nodes: 2 on each, on every node of the allocation.
    let c = door.sbatch(&["-N2", "-G", "4", "-o", "c.out", "--wrap", "srun -l sh -c 'echo $CUDA_VISIBLE_DEVICES'"]);
    assert_eq!(door.wait_end(c, WAIT).state, SlurmJobState::Completed, "{}", door.read("c.out"));
    assert_eq!(door.sorted_lines("c.out"), ["0: 0,1", "1: 0,1"]);

    // The per-node count follows the node count the head settles on: 16 tasks on 8-slot
    // nodes are 2 nodes of 8 GPUs.
    let d = door.sbatch(&["-n16", "--gpus-per-task=1", "-o", "d.out", "--wrap", SHOW]);
    assert_eq!(door.wait_end(d, WAIT).state, SlurmJobState::Completed);
    let d_out = door.sorted_lines("d.out");
    assert!(d_out.iter().any(|l| l == "SLURM_GPUS_ON_NODE=8"), "{d_out:?}");

    // Not whole nodes: a one-GPU job on both nodes leaves the other GPUs to a second job,
    // which runs meanwhile on a GPU of its own.
    let first =
        door.sbatch(&["-N2", "--gres=gpu:1", "-o", "first.out", "--wrap", "echo $CUDA_VISIBLE_DEVICES; sleep 3"]);
    let second = door.sbatch(&["--gres=gpu:1", "-o", "second.out", "--wrap", "echo $CUDA_VISIBLE_DEVICES"]);
    let (first, second) = (door.wait_end(first, WAIT), door.wait_end(second, WAIT));
    assert_eq!((first.state, second.state), (SlurmJobState::Completed, SlurmJobState::Completed));
    assert!(second.end_time < first.end_time, "{first:?} {second:?}");
    let (gpu_first, gpu_second) = (door.read("first.out"), door.read("second.out"));
    if second.nodes[0] == first.nodes[0] {
        assert_ne!(gpu_first, gpu_second, "two jobs on one GPU");
    }

    // Refused, naming the problem, and nothing queued.
    let before = door.run("squeue", &["-h", "-t", "all"]).stdout;
    for (args, needle) in [
        (&["--gres=gpu:9"][..], "9 GPUs on one node, and the largest node has 8"),
        (&["--gpus-per-node=a100:1"][..], "1 GPUs of type a100 on one node, and the largest node has 0"),
        (&["-n", "3", "--gpus-per-task=3"][..], "9 GPUs on one node"),
    ] {
        let out = door.run("sbatch", &[args, &["--wrap", "true"]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            err.contains("Requested node configuration is not available") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    assert_eq!(door.run("squeue", &["-h", "-t", "all"]).stdout, before, "a refused job was queued");
}

//! Exact allocations on real launchers: cores, memory and GPUs are given out exclusively by
//! the scheduler, shown on the task, and enforced by the launcher's cgroups (this machine's
//! real topology and cgroups for CPUs and memory; the 8-GPU hwloc fixture for GPUs).

use std::collections::HashSet;
use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::*;
use gangway_tests::{topology_fixture, wait_for, Cluster, Options};

fn job(c: &mut Client, id: &str) {
    c.add_job(&JobAddParameter { id: id.into(), ..Default::default() }).unwrap();
}

fn task(id: &str, cmd: &str, resources: TaskResources) -> TaskAddParameter {
    TaskAddParameter { id: id.into(), command_line: cmd.into(), resources: Some(resources), ..Default::default() }
}

fn cpus(n: u32) -> TaskResources {
    TaskResources { cpus: Some(n), ..Default::default() }
}

fn gpus(cpus: u32, gpus: u32) -> TaskResources {
    TaskResources { cpus: Some(cpus), gpus: Some(gpus), ..Default::default() }
}

fn wait_done(c: &mut Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(60), &format!("task {job}/{task} to complete"), || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

fn stdout(c: &mut Client, job: &str, task: &str) -> String {
    String::from_utf8(c.get_task_file(job, task, "stdout.txt", 0).unwrap()).unwrap()
}

/// The OS CPUs this process may run on (what the launchers' nodes have).
fn host_cpus() -> Vec<u32> {
    gangway_topology::discover::allowed_cpus()
}

/// A flag file that held tasks wait for, so several run at once until the test lets them end.
struct Gate {
    dir: tempfile::TempDir,
}

impl Gate {
    fn new() -> Gate {
        Gate { dir: tempfile::tempdir().unwrap() }
    }

    /// A command that runs `first` (which prints `started` first) and waits for the gate.
    fn held(&self, first: &str) -> String {
        format!("/bin/sh -c '{first}; while [ ! -e {} ]; do sleep 0.05; done'", self.dir.path().join("go").display())
    }

    /// Lets every held task end.
    fn open(&self) {
        std::fs::write(self.dir.path().join("go"), "").unwrap();
    }
}

/// One launcher declaring the 8-GPU fixture node (2 NUMA domains of 16 two-thread cores).
fn dgx_node() -> Cluster {
    let xml = topology_fixture("dgx_like.xml");
    Cluster::start(Options { nodes: 1, slots: 64, topology_xml: Some(xml), ..Options::default() })
}

/// Waits until every task in `ids` of `job` runs and has written `started` to its stdout (so
/// they all run at once); a task that ended instead fails the test.
fn all_running(c: &mut Client, job: &str, ids: &[String]) {
    wait_for(Duration::from_secs(60), &format!("tasks {ids:?} to run at once"), || {
        for t in ids {
            let task = c.get_task(job, t).ok()?;
            assert_ne!(task.state, TaskState::Completed, "{t} ended: {:?}", task.execution_info);
        }
        ids.iter()
            .all(|t| c.get_task_file(job, t, "stdout.txt", 0).is_ok_and(|o| o.starts_with(b"started")))
            .then_some(())
    });
}

#[test]
fn one_core_tasks_share_a_node_on_different_cores() {
    let host = host_cpus();
    let n = host.len().min(4) as u32;
    assert!(n >= 2, "this test needs two CPUs");
    let gate = Gate::new();
    let cluster = Cluster::start(Options { nodes: 1, slots: n, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "cores");
    let script = gate.held("echo started; grep Cpus_allowed_list /proc/self/status");
    let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    for id in &ids {
        c.add_task("cores", &task(id, &script, cpus(1))).unwrap();
    }
    // One more waits: every core is taken.
    c.add_task("cores", &task("extra", "true", cpus(1))).unwrap();
    all_running(&mut c, "cores", &ids);
    assert_eq!(c.get_task("cores", "extra").unwrap().state, TaskState::Active, "no core is left for it");
    let mut seen = HashSet::new();
    for id in &ids {
        let t = c.get_task("cores", id).unwrap();
        let a = &t.allocation;
        assert_eq!((a.len(), a[0].node_id.as_str(), a[0].cpus.len()), (1, "node1", 1), "{a:?}");
        let out = stdout(&mut c, "cores", id);
        assert!(out.contains(&format!("Cpus_allowed_list:\t{}\n", a[0].cpus[0])), "{id} runs on its own CPU: {out}");
        assert!(seen.insert(a[0].cpus[0]), "CPU {} given twice", a[0].cpus[0]);
    }
    gate.open();
    for id in &ids {
        assert_eq!(wait_done(&mut c, "cores", id).execution_info.exit_code, Some(0));
    }
    assert_eq!(wait_done(&mut c, "cores", "extra").execution_info.exit_code, Some(0));
}

#[test]
fn a_task_over_its_memory_is_killed_and_reported_and_the_next_runs() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "mem");
    let limited = TaskResources { memory_mib: Some(64), ..Default::default() };
    // Touches 256 MiB (bytearray zero-fills what it allocates).
    let hog = "python3 -c 'b = bytearray(256 << 20); print(len(b))'";
    c.add_task("mem", &task("hog", hog, limited.clone())).unwrap();
    let t = wait_done(&mut c, "mem", "hog");
    let failure = t.execution_info.failure_info.expect("a failure");
    assert_eq!(failure.code, "OutOfMemory", "{failure:?}");
    assert_eq!(t.allocation[0].memory_mib, 64);
    // Within its limit the same kind of task runs normally.
    let fits = "python3 -c 'b = bytearray(16 << 20); print(len(b))'";
    c.add_task("mem", &task("fits", fits, limited)).unwrap();
    let t = wait_done(&mut c, "mem", "fits");
    assert_eq!((t.execution_info.exit_code, t.execution_info.failure_info), (Some(0), None));
    assert_eq!(stdout(&mut c, "mem", "fits"), format!("{}\n", 16 << 20));
}

#[test]
fn requests_no_node_can_meet_are_refused_at_submission() {
    let cluster = dgx_node();
    let mut c = cluster.client();
    job(&mut c, "refused");
    let mpi = |ranks, gpus_per_rank| MpiSettings {
        ranks_per_node: ranks,
        cpus_per_rank: Some(1),
        gpus_per_rank,
        ..Default::default()
    };
    for (t, needle) in [
        (
            task("mem", "true", TaskResources { memory_mib: Some(1 << 30), ..Default::default() }),
            "MiB of memory on one node, and the largest node has",
        ),
        (task("gpus", "true", gpus(1, 9)), "9 GPUs on one node, and the largest node has 8"),
        (
            task("type", "true", TaskResources { gpus: Some(1), gpu_type: Some("a100".into()), ..Default::default() }),
            "1 GPUs of type a100 on one node, and the largest node has 0",
        ),
        (task("cpus", "true", cpus(65)), "65 CPUs on one node, and the largest node has 64"),
        // 8 ranks × 2 GPUs on one 8-GPU node: never silently two ranks per GPU.
        (
            TaskAddParameter { mpi: Some(mpi(8, 2)), ..task("ranks", "true", TaskResources::default()) },
            "16 GPUs on one node",
        ),
        (task("zero", "true", cpus(0)), "resources.cpus is 0"),
    ] {
        let err = c.add_task("refused", &t).unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
        assert!(err.to_string().contains(needle), "{err} should say {needle}");
    }
    assert!(c.list_tasks("refused", &Default::default()).unwrap().is_empty(), "nothing was queued");
}

#[test]
fn eight_one_gpu_tasks_run_at_once_each_with_its_gpu_and_cores_of_its_numa_domain() {
    let cluster = dgx_node();
    let mut c = cluster.client();
    job(&mut c, "gpus");
    let gate = Gate::new();
    let script = gate.held("echo started; echo $CUDA_VISIBLE_DEVICES");
    let ids: Vec<String> = (0..8).map(|i| format!("g{i}")).collect();
    for id in &ids {
        c.add_task("gpus", &task(id, &script, gpus(4, 1))).unwrap();
    }
    all_running(&mut c, "gpus", &ids);
    let mut seen = HashSet::new();
    for id in &ids {
        let a = c.get_task("gpus", id).unwrap().allocation.remove(0);
        assert_eq!(a.gpus.len(), 1, "{a:?}");
        let gpu = a.gpus[0];
        assert!(seen.insert(gpu), "GPU {gpu} given twice");
        assert_eq!(stdout(&mut c, "gpus", id), format!("started\n{gpu}\n"));
        // dgx_like: GPUs 0-3 and PUs 0-31 are NUMA 0, GPUs 4-7 and PUs 32-63 NUMA 1.
        assert_eq!(a.cpus.len(), 4, "{a:?}");
        assert!(a.cpus.iter().all(|p| (*p < 32) == (gpu < 4)), "{id}: cores of GPU {gpu}'s domain: {a:?}");
    }
    gate.open();
    for id in &ids {
        assert_eq!(wait_done(&mut c, "gpus", id).execution_info.exit_code, Some(0));
    }
}

#[test]
fn a_partial_gang_leaves_the_rest_of_its_nodes_to_other_tasks() {
    let xml = topology_fixture("dgx_like.xml");
    let pool = PoolAddParameter {
        id: "gangs".into(),
        task_slots_per_node: Some(64),
        enable_inter_node_communication: true,
        ..Default::default()
    };
    let cluster = Cluster::start(Options {
        nodes: 2,
        slots: 64,
        topology_xml: Some(xml),
        pool: Some(pool),
        ..Options::default()
    });
    let mut c = cluster.client();
    let gang_job = JobAddParameter {
        id: "gang".into(),
        pool_info: Some(PoolInformation { pool_id: "gangs".into() }),
        ..Default::default()
    };
    c.add_job(&gang_job).unwrap();
    let gate = Gate::new();
    let wait = gate.held("echo started");
    // Two nodes, two CPUs and one GPU on each.
    let gang = TaskAddParameter {
        multi_instance_settings: Some(MultiInstanceSettings {
            number_of_instances: 2,
            coordination_command_line: None,
            common_resource_files: Vec::new(),
        }),
        ..task("gang", &wait, gpus(2, 1))
    };
    c.add_task("gang", &gang).unwrap();
    // Beside it on each node: 7 GPUs and most of the cores.
    c.add_task("gang", &task("side1", &wait, gpus(56, 7))).unwrap();
    c.add_task("gang", &task("side2", &wait, gpus(56, 7))).unwrap();
    let ids: Vec<String> = ["gang", "side1", "side2"].map(String::from).to_vec();
    all_running(&mut c, "gang", &ids[..1]);
    wait_for(Duration::from_secs(60), "the side tasks to start", || {
        ids[1..].iter().all(|t| c.get_task("gang", t).is_ok_and(|t| t.state == TaskState::Running)).then_some(())
    });
    let g = c.get_task("gang", "gang").unwrap().allocation;
    assert_eq!(g.iter().map(|a| a.node_id.as_str()).collect::<HashSet<_>>(), HashSet::from(["node1", "node2"]));
    for part in &g {
        assert_eq!((part.cpus.len(), part.gpus.len()), (2, 1), "{part:?}");
    }
    let side: Vec<NodeAllocation> =
        ids[1..].iter().map(|t| c.get_task("gang", t).unwrap().allocation.remove(0)).collect();
    assert_ne!(side[0].node_id, side[1].node_id);
    for s in &side {
        let mine = g.iter().find(|p| p.node_id == s.node_id).unwrap();
        assert!(s.gpus.iter().all(|x| !mine.gpus.contains(x)) && s.cpus.iter().all(|x| !mine.cpus.contains(x)));
    }
    gate.open();
    for id in &ids {
        assert_eq!(wait_done(&mut c, "gang", id).execution_info.exit_code, Some(0), "{id}");
    }
}

#[test]
fn two_single_node_mpi_tasks_on_one_node_get_disjoint_cores_and_gpus() {
    // Regression: both were planned over the whole node, so pinned to the same cores and GPUs.
    let cluster = dgx_node();
    let mut c = cluster.client();
    job(&mut c, "mpi");
    let gate = Gate::new();
    let script = gate.held("echo started $GANGWAY_LOCAL_RANK $CUDA_VISIBLE_DEVICES");
    let mpi = MpiSettings { ranks_per_node: 2, cpus_per_rank: Some(2), gpus_per_rank: 1, ..Default::default() };
    for id in ["a", "b"] {
        let t = TaskAddParameter { mpi: Some(mpi.clone()), ..task(id, &script, TaskResources::default()) };
        c.add_task("mpi", &t).unwrap();
    }
    let ids = ["a", "b"].map(String::from);
    all_running(&mut c, "mpi", &ids);
    let allocs: Vec<NodeAllocation> = ids.iter().map(|t| c.get_task("mpi", t).unwrap().allocation.remove(0)).collect();
    for (id, a) in ids.iter().zip(&allocs) {
        // 2 ranks × 2 cores (2 threads each) and 2 GPUs.
        assert_eq!((a.cpus.len(), a.gpus.len()), (8, 2), "{id}: {a:?}");
        // Each rank's GPU is one of its task's.
        let out = wait_for(Duration::from_secs(30), "both ranks' lines", || {
            let o = stdout(&mut c, "mpi", id);
            (o.lines().count() >= 2).then_some(o)
        });
        for line in out.lines() {
            let gpu: u32 = line.rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{id}: {out}"));
            assert!(a.gpus.contains(&gpu), "{id}: a rank on GPU {gpu} outside {a:?}");
        }
    }
    assert!(allocs[0].cpus.iter().all(|p| !allocs[1].cpus.contains(p)), "{allocs:?}");
    assert!(allocs[0].gpus.iter().all(|g| !allocs[1].gpus.contains(g)), "{allocs:?}");
    gate.open();
    for id in &ids {
        assert_eq!(wait_done(&mut c, "mpi", id).execution_info.exit_code, Some(0), "{id}");
    }
}

#[test]
fn allocations_survive_a_head_restart() {
    let mut cluster = dgx_node();
    let mut c = cluster.client();
    job(&mut c, "restart");
    let gate = Gate::new();
    let wait = gate.held("echo started");
    c.add_task("restart", &task("held", &wait, gpus(2, 6))).unwrap();
    all_running(&mut c, "restart", &["held".to_string()]);
    let before = c.get_task("restart", "held").unwrap().allocation;
    cluster.kill_head();
    cluster.start_head();
    let mut c = cluster.client();
    wait_for(Duration::from_secs(30), "node1 to reconnect", || {
        (c.get_node("node1").ok()?.state == NodeState::Running).then_some(())
    });
    assert_eq!(c.get_task("restart", "held").unwrap().allocation, before, "persisted with the task");
    // The restarted head knows those 6 GPUs are taken: a 4-GPU task waits, a 2-GPU one runs.
    c.add_task("restart", &task("four", "true", gpus(1, 4))).unwrap();
    c.add_task("restart", &task("two", "/bin/sh -c 'echo $CUDA_VISIBLE_DEVICES'", gpus(1, 2))).unwrap();
    let two = wait_done(&mut c, "restart", "two");
    assert!(two.allocation[0].gpus.iter().all(|g| !before[0].gpus.contains(g)), "{two:?} {before:?}");
    assert_eq!(c.get_task("restart", "four").unwrap().state, TaskState::Active);
    gate.open();
    wait_done(&mut c, "restart", "held");
    assert_eq!(wait_done(&mut c, "restart", "four").execution_info.exit_code, Some(0));
}

#[test]
fn a_task_cannot_fork_past_the_pids_limit() {
    let cluster = Cluster::start(Options { nodes: 1, task_pids_max: Some(16), ..Options::default() });
    let mut c = cluster.client();
    job(&mut c, "pids");
    let forks = "import os, time\nfailed = 0\nfor i in range(40):\n    try:\n        pid = os.fork()\n    except OSError:\n        failed += 1\n        continue\n    if pid == 0:\n        time.sleep(1)\n        os._exit(0)\nprint('failed', failed)\n";
    std::fs::write(cluster.state_dir().join("forks.py"), forks).unwrap();
    let cmd = format!("python3 {}", cluster.state_dir().join("forks.py").display());
    c.add_task("pids", &task("t", &cmd, cpus(1))).unwrap();
    let t = wait_done(&mut c, "pids", "t");
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}", t.execution_info);
    let out = stdout(&mut c, "pids", "t");
    let failed: u32 = out.trim().trim_start_matches("failed ").parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(failed >= 40 - 16, "at most 16 processes at once: {out}");
}

#[test]
fn a_task_can_open_only_its_own_gpus() {
    // Device nodes as the NVIDIA driver makes them (`/dev/nvidiaN` is 195:N); with no driver
    // here, opening an allowed one fails with ENXIO, a denied one with EPERM (the cgroup).
    let devs = tempfile::tempdir().unwrap();
    for gpu in 0..8u32 {
        let path = std::ffi::CString::new(devs.path().join(format!("nvidia{gpu}")).to_str().unwrap()).unwrap();
        // SAFETY: mknod(2) with a valid path; makedev(195, gpu).
        let made = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(195, gpu)) };
        assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    }
    let cluster = dgx_node();
    let mut c = cluster.client();
    job(&mut c, "devs");
    let probe = format!(
        "python3 -c 'import os\nfor g in range(8):\n    try:\n        os.open(\"{}/nvidia%d\" % g, os.O_RDWR)\n        print(g, \"open\")\n    except OSError as e:\n        print(g, os.strerror(e.errno))'",
        devs.path().display()
    );
    c.add_task("devs", &task("t", &probe, gpus(1, 2))).unwrap();
    let t = wait_done(&mut c, "devs", "t");
    let mine = &t.allocation[0].gpus;
    let out = stdout(&mut c, "devs", "t");
    for line in out.lines() {
        let (gpu, what) = line.split_once(' ').unwrap();
        let gpu: u32 = gpu.parse().unwrap();
        let denied = what == "Operation not permitted";
        assert_eq!(denied, !mine.contains(&gpu), "GPU {gpu} ({what}); the task has {mine:?}\n{out}");
    }
    assert_eq!(out.lines().count(), 8, "{out}");
}

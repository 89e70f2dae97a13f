//! `srun` steps across the nodes of a batch job: the reference's multi-node step environment
//! (`mn-step-N4-n8.task*.env`), distributions (`mn-distribution.txt`), labels, exit codes,
//! `-K`, CPU binding, and MPICH ranks over PMI-1 — on launchers sharing this host, and on
//! hosts in separate network namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gangway_api::slurm::SlurmJobState;
use gangway_tests::netns::{self, NetCluster, NetOptions};
use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{assert_nothing_left, compile_mpich_hello, compile_openmpi_hello, Cluster, Options};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../slurm-compat/tests/fixtures").join(name)
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Writes `script` into the work directory as `name`.
fn script(slurm: &SlurmFrontDoor, name: &str, text: &str) -> String {
    std::fs::write(slurm.work().join(name), text).expect("writing the script");
    name.to_owned()
}

#[test]
fn srun_spans_the_nodes_of_a_batch_job() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    compile_mpich_hello(slurm.work());
    let text = "#!/bin/bash\n\
        srun -l printenv SLURMD_NODENAME > names.txt\n\
        srun bash -c 'env | grep -E \"^SLURM|^PMI\" | sort > step.task$SLURM_PROCID.env'\n\
        srun -l -m cyclic printenv SLURM_NODEID > cyclic.txt\n\
        srun -N2 -n2 sh -c 'exit $((SLURM_PROCID + 3))' 2> fail.err; echo \"exit=$?\" > fail.code\n\
        srun -l ./hello > mpi.txt\n\
        srun -N1 -n1 --cpu-bind=verbose,map_cpu:0 grep Cpus_allowed_list /proc/self/status > bind.txt 2>&1\n\
        srun -o 'out-%n-%t.txt' -N2 -n2 printenv SLURMD_NODENAME\n\
        echo hello | srun -N2 -n2 -l cat > input.txt\n\
        echo only | srun -N2 -n2 -i 1 -l cat > input1.txt\n\
        mkdir -p sub; srun -N1 -n1 --export=NONE,FOO=bar -D sub sh -c 'echo $FOO ${HOME:-none} ${PWD##*/}' > export.txt\n\
        srun -N1 -n3 true 2> oc.err; echo \"plain=$?\" > oc.txt; srun -O -N1 -n3 true; echo \"overcommit=$?\" >> oc.txt\n\
        srun -N1 -n1 sh -c 'sleep 300 & echo bg' > bg.txt\n\
        srun -N2 -n2 -o shared.txt sh -c 'echo $SLURMD_NODENAME; echo e$SLURM_PROCID >&2'\n\
        srun -N2 -n2 -m plane=2 -l ./hello > plane.txt\n";
    let id = slurm.sbatch(&["-N2", "--ntasks-per-node=2", "-o", "job.out", &script(&slurm, "mn.sh", text)]);
    let job = slurm.wait_end(id, Duration::from_secs(60));
    assert_eq!(job.state, SlurmJobState::Completed, "job output:\n{}", slurm.read("job.out"));
    let (n1, n2) = (&job.nodes[0], &job.nodes[1]);

    assert_eq!(
        slurm.sorted_lines("names.txt"),
        [format!("0: {n1}"), format!("1: {n1}"), format!("2: {n2}"), format!("3: {n2}")]
    );

    // sacct lists the steps the job's sruns reported, after the batch step.
    let format = "--format=JobID,JobName,State,ExitCode,NNodes,NTasks,MaxRSS";
    let acct = slurm.run("sacct", &["-n", "-P", "-j", &id.to_string(), format]);
    let acct = String::from_utf8_lossy(&acct.stdout).into_owned();
    let lines: Vec<&str> = acct.lines().collect();
    assert!(lines[1].starts_with(&format!("{id}.batch|batch|COMPLETED|0:0|1|1|")), "{acct}");
    let step0 = lines[2].strip_prefix(&format!("{id}.0|printenv|COMPLETED|0:0|2|4|"));
    let rss_unit = |rss: &str| rss.len() > 1 && rss.ends_with(['K', 'M', 'G']);
    assert!(step0.is_some_and(rss_unit), "the step and its MaxRSS: {acct}");
    assert!(lines.iter().any(|l| l.starts_with(&format!("{id}.3|sh|FAILED|4:0|2|2|"))), "{acct}");

    // The reference's names (a 4-node step there, 2 nodes here), and the values that follow
    // from the step's shape.
    let reference = read_env(&fixture("mn-step-N4-n8.task5.env"));
    let names = |m: &BTreeMap<String, String>| -> Vec<String> {
        m.keys().filter(|k| k.starts_with("SLURM") && *k != "SLURM_MEM_PER_CPU").cloned().collect()
    };
    for t in 0..4u32 {
        let env = read_env(&slurm.work().join(format!("step.task{t}.env")));
        assert_eq!(names(&env), names(&reference), "task {t}: SLURM_* names as in mn-step-N4-n8");
        let node = t / 2;
        let gtids = if node == 0 { "0,1" } else { "2,3" };
        for (k, v) in [
            ("SLURM_PROCID", t.to_string()),
            ("SLURM_LOCALID", (t % 2).to_string()),
            ("SLURM_NODEID", node.to_string()),
            ("SLURM_GTIDS", gtids.to_owned()),
            ("SLURMD_NODENAME", job.nodes[node as usize].clone()),
            ("SLURM_STEP_NODELIST", "node[1-2]".to_owned()),
            ("SLURM_STEP_TASKS_PER_NODE", "2(x2)".to_owned()),
            ("SLURM_STEP_NUM_TASKS", "4".to_owned()),
            ("SLURM_STEP_NUM_NODES", "2".to_owned()),
            ("SLURM_STEP_ID", "1".to_owned()),
            ("SLURM_DISTRIBUTION", "block".to_owned()),
            ("SLURM_JOB_NODELIST", "node[1-2]".to_owned()),
            ("PMI_RANK", t.to_string()),
            ("PMI_SIZE", "4".to_owned()),
        ] {
            assert_eq!(env.get(k), Some(&v), "task {t}: {k}");
        }
    }

    assert_eq!(slurm.sorted_lines("cyclic.txt"), ["0: 0", "1: 1", "2: 0", "3: 1"], "-m cyclic deals ranks");

    assert_eq!(slurm.read("fail.code").trim(), "exit=4", "srun exits with the highest task exit code");
    let err = slurm.read("fail.err");
    assert!(err.contains(&format!("srun: error: {n1}: task 0: Exited with exit code 3")), "{err}");
    assert!(err.contains(&format!("srun: error: {n2}: task 1: Exited with exit code 4")), "{err}");

    let mpi = slurm.sorted_lines("mpi.txt");
    let want: Vec<String> = (0..4).map(|r| format!("{r}: rank={r} size=4 sum=10")).collect();
    assert_eq!(mpi, want, "MPICH ranks over PMI-1 across both nodes");

    let bind = slurm.read("bind.txt");
    assert!(bind.contains("cpu-bind=MASK - node1, task  0  0 ["), "{bind}");
    assert!(bind.contains("Cpus_allowed_list:\t0\n"), "{bind}");

    assert_eq!(slurm.sorted_lines("input.txt"), ["0: hello", "1: hello"], "input goes to every task");
    assert_eq!(slurm.sorted_lines("input1.txt"), ["1: only"], "-i 1: to task 1 alone");
    assert_eq!(slurm.read("export.txt"), "bar none sub\n", "--export=NONE,FOO=bar and -D");
    assert_eq!(slurm.read("oc.txt"), "plain=1\novercommit=0\n", "{}", slurm.read("oc.err"));
    assert!(slurm.read("oc.err").contains("More processors requested than permitted"));
    assert_eq!(slurm.read("bg.txt"), "bg\n", "a task's background process does not hold the step");
    let mut shared = slurm.sorted_lines("shared.txt");
    shared.sort();
    assert_eq!(shared, ["e0", "e1", n1.as_str(), n2.as_str()], "one -o file for both nodes, -e following -o");
    let want: Vec<String> = (0..2).map(|r| format!("{r}: rank={r} size=2 sum=3")).collect();
    assert_eq!(slurm.sorted_lines("plane.txt"), want, "plane=2 leaves node2 out of the step");
    assert_eq!(slurm.read("out-0-0.txt").trim(), n1.as_str());
    assert_eq!(slurm.read("out-1-1.txt").trim(), n2.as_str());

    let nodes: Vec<(String, PathBuf)> = (0..2).map(|i| (format!("node{}", i + 1), cluster.node_root(i))).collect();
    assert_nothing_left(&nodes);
}

#[test]
fn multi_prog_runs_a_program_per_task_across_nodes() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let conf = "# srun -n4 --multi-prog mpmd.conf\n\
        0,2   echo even:%t:%o\n\
        *     sh -c 'echo rest:$SLURM_PROCID:$SLURMD_NODENAME'\n";
    std::fs::write(slurm.work().join("mpmd.conf"), conf).unwrap();
    std::fs::write(slurm.work().join("short.conf"), "0-2 true\n").unwrap();
    let text = "#!/bin/sh\n\
        srun -l -N2 -n4 -m cyclic --multi-prog mpmd.conf > mpmd.out\n\
        srun -n4 --multi-prog short.conf 2> short.err; echo \"short=$?\" > short.txt\n";
    let id = slurm.sbatch(&["-N2", "-n4", "-o", "job.out", &script(&slurm, "m.sh", text)]);
    let job = slurm.wait_end(id, Duration::from_secs(60));
    assert_eq!(job.state, SlurmJobState::Completed, "{}", slurm.read("job.out"));
    // Cyclic: tasks 0 and 2 on node1, 1 and 3 on node2.
    let want = ["0: even:0:0", "1: rest:1:node2", "2: even:2:1", "3: rest:3:node2"];
    assert_eq!(slurm.sorted_lines("mpmd.out"), want, "{}", slurm.read("job.out"));
    assert_eq!(slurm.read("short.txt").trim(), "short=1");
    let err = slurm.read("short.err");
    assert!(err.contains("Configuration file short.conf invalid, no record for task id 3"), "{err}");
    assert_nothing_left(&(0..2).map(|i| (format!("node{}", i + 1), cluster.node_root(i))).collect::<Vec<_>>());
}

/// Runs `srun --pty sh -c 'stty size'` with a 30×100 terminal as its input and output, and
/// prints what it wrote, its exit code, and whether srun gave the terminal its settings back.
const PTY_DRIVER: &str = r#"
import os, struct, subprocess, termios, fcntl, select
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
before = termios.tcgetattr(slave)
p = subprocess.Popen(["srun", "-n1", "--pty", "sh", "-c", "stty size; [ -t 0 ] && echo tty-in"],
                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
code = p.wait()
after = termios.tcgetattr(slave)
out = b""
while select.select([master], [], [], 0.5)[0]:
    out += os.read(master, 4096)
print(out.decode().replace("\r", ""))
print("code=%d restored=%s" % (code, before == after))
# A resize of srun's terminal reaches the task's (SIGWINCH there).
p = subprocess.Popen(["srun", "-n1", "--pty", "sh", "-c",
                      "trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.1; done"],
                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
seen = b""
while b"ready" not in seen and select.select([master], [], [], 20)[0]:
    seen += os.read(master, 4096)
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
p.send_signal(28)
code = p.wait(timeout=20)
while select.select([master], [], [], 0.5)[0]:
    seen += os.read(master, 4096)
print("resized: " + seen.decode().replace("\r", "").replace("\n", " ") + "code=%d" % code)
"#;

#[test]
fn srun_pty_gives_task_zero_a_terminal() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    std::fs::write(slurm.work().join("drive.py"), PTY_DRIVER).unwrap();
    let text = "#!/bin/sh\n\
        srun --pty sh -c 'tty; [ -t 0 ] && echo tty-in; stty size' < /dev/null > plain.out\n\
        printf 'echo hi-$((6*7))\\nexit 3\\n' | srun --pty sh > typed.out; echo \"code=$?\" > typed.code\n\
        python3 drive.py > driven.out 2>&1\n\
        srun -n2 --pty sh -c 'echo task$SLURM_PROCID' < /dev/null > two.out\n";
    let id = slurm.sbatch(&["-n2", "-o", "job.out", &script(&slurm, "p.sh", text)]);
    let job = slurm.wait_end(id, Duration::from_secs(60));
    assert_eq!(job.state, SlurmJobState::Completed, "{}", slurm.read("job.out"));
    let lines = |name: &str| -> Vec<String> { slurm.read(name).replace('\r', "").lines().map(str::to_owned).collect() };
    let plain = lines("plain.out");
    assert!(plain[0].starts_with("/dev/pts/"), "{plain:?}");
    assert_eq!(plain[1..], ["tty-in", "24 80"], "a terminal of the default size when srun has none");
    let typed = slurm.read("typed.out");
    assert!(typed.contains("hi-42"), "the shell read its commands from the terminal: {typed:?}");
    assert_eq!(slurm.read("typed.code").trim(), "code=3");
    let driven = slurm.read("driven.out");
    assert!(driven.contains("30 100\ntty-in\n"), "srun's terminal size reached the task's: {driven:?}");
    assert!(driven.contains("code=0 restored=True"), "{driven:?}");
    assert!(driven.contains("resized: ready 40 120 code=0"), "{driven:?}");
    assert_eq!(lines("two.out"), ["task0"], "only task 0 is connected");
}

#[test]
fn a_failing_task_with_kill_on_bad_exit_ends_the_step() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let text = "#!/bin/sh\n\
        start=$(date +%s)\n\
        srun -K -N2 -n2 sh -c 'if [ $SLURM_PROCID = 1 ]; then exit 7; fi; sleep 60'\n\
        echo \"exit=$? took=$(( $(date +%s) - start ))\" > k.txt\n\
        srun --mpi=cray_shasta true 2> pmix.err; echo \"pmix=$?\" >> k.txt\n\
        srun -N3 true 2> n3.err; echo \"n3=$?\" >> k.txt\n";
    let id = slurm.sbatch(&["-N2", "-o", "job.out", &script(&slurm, "k.sh", text)]);
    let job = slurm.wait_end(id, Duration::from_secs(60));
    assert_eq!(job.state, SlurmJobState::Completed, "{}", slurm.read("job.out"));
    let k = slurm.read("k.txt");
    let first = k.lines().next().unwrap_or_default();
    let took: u64 = first.rsplit('=').next().and_then(|t| t.parse().ok()).unwrap_or(999);
    // The sleeping task ends by the SIGTERM -K sends (128 + 15), which outranks the 7.
    assert!(first.starts_with("exit=143 "), "{k}");
    assert!(took < 30, "-K ended the sleeping task at once: {k}");
    assert!(k.contains("pmix=1"), "{k}");
    assert!(slurm.read("pmix.err").contains("Couldn't find the specified plugin name for mpi/cray_shasta"));
    assert!(k.contains("n3=1"), "{k}");
    assert!(slurm.read("n3.err").contains("Only allocated 2 nodes asked for 3"));
    assert_nothing_left(&(0..2).map(|i| (format!("node{}", i + 1), cluster.node_root(i))).collect::<Vec<_>>());
}

#[test]
fn srun_steps_cross_namespace_hosts() {
    if !netns::available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let c = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..NetOptions::default() });
    let slurm = SlurmFrontDoor::new(c.config.clone());
    compile_mpich_hello(slurm.work());
    compile_openmpi_hello(slurm.work());
    // Open MPI's own mpirun inside the job starts its daemons with srun (its plm/slurm), as
    // under Slurm. The fake hosts share one /dev/shm, so its shared-memory transport is off.
    let text = "#!/bin/sh\n\
        srun -l printenv SLURMD_NODENAME SLURM_LAUNCH_NODE_IPADDR > names.txt\n\
        srun -l ./hello > mpi.txt\n\
        srun -N1 -n1 -w host2 srun -N2 -n2 -l printenv SLURMD_NODENAME > nested.txt\n\
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,tcp\n\
        mpirun -np 4 sh -c 'echo $OMPI_COMM_WORLD_RANK $SLURMD_NODENAME' > ompi-nodes.txt\n\
        mpirun -np 4 ./hello-ompi > ompi.txt\n";
    let id = slurm.sbatch(&["-N2", "--ntasks-per-node=2", "-o", "job.out", &script(&slurm, "net.sh", text)]);
    let job = slurm.wait_end(id, Duration::from_secs(60));
    assert_eq!(job.state, SlurmJobState::Completed, "{}", slurm.read("job.out"));
    let first = &c.hosts.iter().find(|h| h.name == job.nodes[0]).expect("first host").address;
    let names = slurm.sorted_lines("names.txt");
    assert_eq!(names.len(), 8, "{names:?}");
    for (r, node) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
        assert!(names.contains(&format!("{r}: {}", job.nodes[node])), "{names:?}");
        assert!(names.contains(&format!("{r}: {first}")), "srun listens on the batch host's address: {names:?}");
    }
    let want: Vec<String> = (0..4).map(|r| format!("{r}: rank={r} size=4 sum=10")).collect();
    assert_eq!(slurm.sorted_lines("mpi.txt"), want);
    let nested = [format!("0: {}", job.nodes[0]), format!("1: {}", job.nodes[1])];
    assert_eq!(slurm.sorted_lines("nested.txt"), nested, "an srun started on host2 runs its step from there");
    let placed = [
        format!("0 {}", job.nodes[0]),
        format!("1 {}", job.nodes[0]),
        format!("2 {}", job.nodes[1]),
        format!("3 {}", job.nodes[1]),
    ];
    assert_eq!(slurm.sorted_lines("ompi-nodes.txt"), placed, "mpirun places 2 ranks per node as the job asked");
    let want: Vec<String> = (0..4).map(|r| format!("rank={r} size=4 sum=10")).collect();
    assert_eq!(slurm.sorted_lines("ompi.txt"), want, "an Open MPI program under mpirun in the job");
    assert_nothing_left(&c.hosts.iter().enumerate().map(|(k, h)| (h.name.clone(), c.root(k))).collect::<Vec<_>>());
}

#[test]
fn salloc_runs_a_command_whose_sruns_run_inside_the_allocation() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let command = "echo job=$SLURM_JOB_ID nodes=$SLURM_JOB_NODELIST n=$SLURM_NNODES; \
        srun -l printenv SLURMD_NODENAME | sort; echo piped | srun -n1 cat; exit 5";
    let out = slurm.run("salloc", &["-N2", "--ntasks-per-node=1", "sh", "-c", command]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(5), "salloc exits with its command's code: {stderr}");
    let id: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("salloc: Granted job allocation "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no grant line: {stderr}"));
    assert!(stderr.contains(&format!("salloc: Relinquishing job allocation {id}")), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, [&format!("job={id} nodes=node[1-2] n=2"), "0: node1", "1: node2", "piped"], "{stderr}");
    let job = slurm.wait_end(id, Duration::from_secs(30));
    assert_eq!(job.exit_code, Some(5), "the allocation ends with the command's exit code");
    let left: Vec<_> = std::fs::read_dir(slurm.work()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "salloc leaves nothing in the directory: {left:?}");
    // No key of gangway's is stored with the job: the holder made the allocation's key, and
    // an sbatch that inherits a step's or an allocation's key (or a token) is stripped of it.
    let stored = |id: u64| {
        let job = cluster.client().get_job(&id.to_string()).unwrap();
        job.slurm.expect("a Slurm job").request.env.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    let secrets = ["GANGWAY_TOKEN", "GANGWAY_STEP_KEY", "GANGWAY_SALLOC_KEY"];
    assert!(!stored(id).iter().any(|k| secrets.contains(&k.as_str())), "{:?}", stored(id));
    let out = slurm
        .command(gangway_tests::bin("gangway-slurm"))
        .args(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"])
        .env("GANGWAY_STEP_KEY", "k1")
        .env("GANGWAY_SALLOC_KEY", "k2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inherited: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let keys = stored(inherited);
    assert!(keys.iter().any(|k| k == "PATH"), "the rest of the environment is kept: {keys:?}");
    assert!(!keys.iter().any(|k| secrets.contains(&k.as_str())), "{keys:?}");
    slurm.wait_end(inherited, Duration::from_secs(30));
    assert_nothing_left(&(0..2).map(|i| (format!("node{}", i + 1), cluster.node_root(i))).collect::<Vec<_>>());
}

#[test]
fn srun_outside_an_allocation_relays_input_and_spans_nodes() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let out = slurm.shell("printf 'a\\nb\\n' | srun -N2 -n2 -l sort -r");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["0: a", "0: b", "1: a", "1: b"], "both tasks read srun's input");
    let out = slurm.shell("srun -N2 -n2 sh -c 'exit $((SLURM_PROCID * 6))'");
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("srun: error: node2: task 1: Exited with exit code 6"));
    let left: Vec<_> = std::fs::read_dir(slurm.work()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing left in the directory: {left:?}");
    assert_nothing_left(&(0..2).map(|i| (format!("node{}", i + 1), cluster.node_root(i))).collect::<Vec<_>>());
}

#[test]
fn squeue_lists_a_running_step_and_scancel_ends_it() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let id = slurm.sbatch(&["-N2", "-o", "/dev/null", "--wrap", "srun -N2 -n2 sleep 60"]);
    let row = gangway_tests::wait_for(Duration::from_secs(30), "the step to show in squeue -s", || {
        let out = slurm.run("squeue", &["-h", "-s"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find(|l| l.contains(&format!("{id}.0"))).map(str::to_owned)
    });
    let words: Vec<&str> = row.split_whitespace().collect();
    let step = format!("{id}.0");
    assert_eq!((words[0], words[1], words[2], words[5]), (step.as_str(), "sleep", "default", "node[1-2]"), "{row}");
    let out = slurm.run("scancel", &[&id.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(slurm.wait_end(id, Duration::from_secs(30)).state, SlurmJobState::Cancelled);
    assert_nothing_left(&(0..2).map(|i| (format!("node{}", i + 1), cluster.node_root(i))).collect::<Vec<_>>());
}

#[test]
fn open_mpi_ranks_start_directly_under_srun_with_pmix() {
    if !netns::available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let c = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..NetOptions::default() });
    let slurm = SlurmFrontDoor::new(c.config.clone());
    gangway_tests::compile_openmpi_ranks(slurm.work());
    compile_mpich_hello(slurm.work());
    // Open MPI's own transports (shared memory too: each part gives its ranks a directory).
    let text = "#!/bin/sh\n\
        srun -l ./ranks-ompi > auto.txt 2> auto.err\n\
        srun --mpi=pmix -N2 -n4 ./ranks-ompi > pmix.txt 2> pmix.err\n\
        OMPI_MCA_pmix_base_async_modex=1 OMPI_MCA_pmix_base_collect_data=0 srun -N2 -n4 ./ranks-ompi > dmodex.txt 2>&1\n\
        srun --mpi=pmix ./ranks-ompi abort > abort.txt 2> abort.err; echo \"abort=$?\" > codes.txt\n\
        srun --mpi=pmix ./ranks-ompi die > die.txt 2> die.err; echo \"die=$?\" >> codes.txt\n\
        srun --mpi=pmi2 ./ranks-ompi > wrong.txt 2> wrong.err; echo \"wrong=$?\" >> codes.txt\n\
        srun --mpi=pmix ./hello > wrong2.txt 2> wrong2.err; echo \"wrong2=$?\" >> codes.txt\n\
        srun --mpi=bogus true 2> bogus.err; echo \"bogus=$?\" >> codes.txt\n\
        srun -l ./hello > mpich.txt\n";
    let id = slurm.sbatch(&["-N2", "--ntasks-per-node=2", "-o", "job.out", &script(&slurm, "pmix.sh", text)]);
    let job = slurm.wait_end(id, Duration::from_secs(90));
    assert_eq!(job.state, SlurmJobState::Completed, "{}", slurm.read("job.out"));
    let (n1, n2) = (&job.nodes[0], &job.nodes[1]);
    let want: Vec<String> =
        (0..4).map(|r| format!("{r}: rank={r} size=4 sum=10 local=2 host={}", if r < 2 { n1 } else { n2 })).collect();
    assert_eq!(slurm.sorted_lines("auto.txt"), want, "{}", slurm.read("auto.err"));
    let plain: Vec<String> = want.iter().map(|l| l[3..].to_owned()).collect();
    assert_eq!(slurm.sorted_lines("pmix.txt"), plain, "{}", slurm.read("pmix.err"));
    // Fences that collect nothing: each rank's data is fetched from its node when first needed.
    assert_eq!(slurm.sorted_lines("dmodex.txt"), plain, "direct modex through srun");
    let codes = slurm.read("codes.txt");
    assert!(codes.contains("abort=7\n"), "MPI_Abort's code ends the step: {codes}\n{}", slurm.read("abort.err"));
    assert!(slurm.read("abort.err").contains("task 1 aborted"), "{}", slurm.read("abort.err"));
    assert!(codes.contains("die=3\n"), "a rank that dies ends the others: {codes}\n{}", slurm.read("die.err"));
    assert!(codes.contains("wrong=1\n") && codes.contains("wrong2=1\n"), "{codes}");
    assert!(
        slurm.read("wrong.err").contains("linked to Open MPI, which speaks PMIx only"),
        "{}",
        slurm.read("wrong.err")
    );
    assert!(slurm.read("wrong2.err").contains("speaks PMI-1 and PMI-2, but the step serves PMIx"));
    assert!(codes.contains("bogus=1\n"), "{codes}");
    let bogus = slurm.read("bogus.err");
    assert!(bogus.starts_with("srun: error: Couldn't find the specified plugin name for mpi/bogus"), "{bogus}");
    assert!(bogus.contains("\nsrun: error: Invalid MPI type 'bogus', --mpi=list for acceptable types"), "{bogus}");
    let want: Vec<String> = (0..4).map(|r| format!("{r}: rank={r} size=4 sum=10")).collect();
    assert_eq!(slurm.sorted_lines("mpich.txt"), want, "MPICH keeps PMI-1");
    assert_nothing_left(&c.hosts.iter().enumerate().map(|(k, h)| (h.name.clone(), c.root(k))).collect::<Vec<_>>());
    // The hosts share this machine's /tmp, where each part's server kept its rendezvous files,
    // and /dev/shm, where its ranks kept their shared memory.
    let left: Vec<_> = [std::env::temp_dir(), "/dev/shm".into()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("gangway-pmix.{id}.")))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "PMIx directories left: {left:?}");
}

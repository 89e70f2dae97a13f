//! Managed MPI ranks on one node: a real MPICH program launched over PMI-1 by gangway-node
//! (no mpiexec), ranks bound to the placement plan, and one failing rank failing the task;
//! an Open MPI program started through mpirun and gangway's agent on one node.

use std::process::Command;
use std::time::Duration;

use gangway_api::*;
use gangway_tests::{bin, compile_mpich_hello, wait_for, Cluster, Options};

fn mpi_task(id: &str, cmd: &str, ranks: u32) -> TaskAddParameter {
    TaskAddParameter {
        id: id.into(),
        command_line: cmd.into(),
        mpi: Some(MpiSettings { ranks_per_node: ranks, ..Default::default() }),
        ..Default::default()
    }
}

fn done(c: &mut gangway_api::client::Client, job: &str, task: &str) -> Task {
    wait_for(Duration::from_secs(60), "the MPI task", || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

#[test]
fn an_mpich_program_runs_over_gangways_pmi_without_mpiexec() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 2, ..Options::default() });
    let exe = compile_mpich_hello(cluster.dir.path());
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mpi".into(), ..Default::default() }).unwrap();
    // Its output files are copied when it ends, as any task's are.
    let collected = cluster.dir.path().join("collected");
    let output = OutputFile {
        file_pattern: "../stdout.txt".into(),
        destination: OutputFileDestination { path: Some(collected.display().to_string()), ..Default::default() },
        upload_options: OutputFileUploadOptions { upload_condition: UploadCondition::TaskSuccess },
    };
    let task = TaskAddParameter { output_files: vec![output], ..mpi_task("hello", &exe.display().to_string(), 2) };
    c.add_task("mpi", &task).unwrap();
    let t = done(&mut c, "mpi", "hello");
    let out = String::from_utf8(c.get_task_file("mpi", "hello", "stdout.txt", 0).unwrap()).unwrap();
    let err = String::from_utf8(c.get_task_file("mpi", "hello", "stderr.txt", 0).unwrap()).unwrap();
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{out}{err}", t.execution_info);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["rank=0 size=2 sum=3", "rank=1 size=2 sum=3"], "{err}");
    let copied = std::fs::read_to_string(collected.join("stdout.txt")).unwrap_or_default();
    assert_eq!(copied, out, "the ranks' output, copied to the task's output-file destination");
}

#[test]
fn ranks_are_bound_to_the_placement_plan() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    let plan = Command::new(bin("gangway")).args(["topo", "--json", "--plan", "ranks=2"]).output().unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    c.add_job(&JobAddParameter { id: "bind".into(), ..Default::default() }).unwrap();
    // What the kernel says of each rank: CPUs, memory policy, the cgroup's cpuset.
    let script = cluster.dir.path().join("probe.sh");
    std::fs::write(
        &script,
        r#"echo $GANGWAY_RANK $PMI_RANK $PMI_SIZE $(grep Cpus_allowed_list /proc/self/status | cut -f2)
echo mem $GANGWAY_RANK $(grep -m1 -o -e 'prefer:[0-9]*' -e 'bind:[0-9,-]*' /proc/self/numa_maps)
if [ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]; then echo cpuset $(cat /sys/fs/cgroup/cpuset$(cat /proc/self/cpuset)/cpuset.cpus); fi
"#,
    )
    .unwrap();
    c.add_task("bind", &mpi_task("t", &format!("/bin/sh {}", script.display()), 2)).unwrap();
    let t = done(&mut c, "bind", "t");
    assert_eq!(t.execution_info.exit_code, Some(0));
    let out = String::from_utf8(c.get_task_file("bind", "t", "stdout.txt", 0).unwrap()).unwrap();
    let mut all = Vec::new();
    for r in 0..2usize {
        let cpus: Vec<String> = plan["ranks"][r]["cpus"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
        let want = format!("{r} {r} 2 {}", compact(&cpus));
        assert!(out.lines().any(|l| l == want), "rank {r} should print {want:?}: {out}");
        // Memory from the rank's own NUMA node (node 0 on a one-node machine).
        let numa = plan["ranks"][r]["numa_nodes"][0].as_u64().unwrap();
        assert!(out.lines().any(|l| l == format!("mem {r} prefer:{numa}")), "rank {r}'s memory policy: {out}");
        all.extend(cpus);
    }
    // The task's cpuset (cgroup v1 here) holds every CPU its ranks are bound to.
    all.sort();
    all.dedup();
    for line in out.lines().filter(|l| l.starts_with("cpuset ")) {
        assert_eq!(line, format!("cpuset {}", compact(&all)), "{out}");
    }
}

/// "0","1","2","5" → "0-2,5", as the kernel writes CPU lists.
fn compact(cpus: &[String]) -> String {
    let mut n: Vec<u32> = cpus.iter().map(|c| c.parse().unwrap()).collect();
    n.sort_unstable();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < n.len() {
        let start = n[i];
        while i + 1 < n.len() && n[i + 1] == n[i] + 1 {
            i += 1;
        }
        parts.push(if start == n[i] { start.to_string() } else { format!("{start}-{}", n[i]) });
        i += 1;
    }
    parts.join(",")
}

#[test]
fn one_failing_rank_fails_the_task_and_kills_the_others() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "fail".into(), ..Default::default() }).unwrap();
    let marker = 7000 + std::process::id() % 1000;
    let cmd = format!("/bin/sh -c 'if [ $GANGWAY_RANK = 1 ]; then exit 3; fi; exec sleep {marker}'");
    c.add_task("fail", &mpi_task("t", &cmd, 2)).unwrap();
    let t = done(&mut c, "fail", "t");
    assert_eq!(t.execution_info.exit_code, Some(3), "{:?}", t.execution_info);
    let left = Command::new("pgrep").args(["-f", &format!("^sleep {marker}$")]).output().unwrap();
    assert!(left.stdout.is_empty(), "rank 0 was left running: {}", String::from_utf8_lossy(&left.stdout));
    let err =
        c.add_task("fail", &TaskAddParameter { mpi: Some(MpiSettings::default()), ..mpi_task("zero", "/bin/true", 0) });
    assert!(err.unwrap_err().to_string().contains("ranksPerNode"));
}

#[test]
fn an_mpich_program_runs_across_two_nodes_with_fences_through_the_head() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let exe = compile_mpich_hello(cluster.dir.path());
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mn".into(), ..Default::default() }).unwrap();
    let task = TaskAddParameter {
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        ..mpi_task("hello", &exe.display().to_string(), 2)
    };
    c.add_task("mn", &task).unwrap();
    let t = done(&mut c, "mn", "hello");
    let mut lines = Vec::new();
    for k in 0..2 {
        let out = std::fs::read_to_string(cluster.node_root(k).join("workitems/mn/job-1/hello/stdout.txt"))
            .unwrap_or_default();
        let err = std::fs::read_to_string(cluster.node_root(k).join("workitems/mn/job-1/hello/stderr.txt"))
            .unwrap_or_default();
        assert!(err.is_empty() || t.execution_info.exit_code == Some(0), "node{}: {err}", k + 1);
        lines.extend(out.lines().map(str::to_owned));
    }
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?} {lines:?}", t.execution_info);
    lines.sort();
    assert_eq!(lines, (0..4).map(|r| format!("rank={r} size=4 sum=10")).collect::<Vec<_>>());
}

#[test]
fn a_failing_rank_on_another_node_fails_the_task_everywhere() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mnf".into(), ..Default::default() }).unwrap();
    let marker = 8000 + std::process::id() % 1000;
    // Rank 3 lives on the second node; the other three wait to be killed.
    let cmd = format!("/bin/sh -c 'if [ $GANGWAY_RANK = 3 ]; then sleep 0.3; exit 3; fi; exec sleep {marker}'");
    let task = TaskAddParameter {
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        ..mpi_task("t", &cmd, 2)
    };
    c.add_task("mnf", &task).unwrap();
    let t = done(&mut c, "mnf", "t");
    assert_eq!(t.execution_info.exit_code, Some(3), "{:?}", t.execution_info);
    wait_for(Duration::from_secs(10), "every rank on every node to be gone", || {
        let left = Command::new("pgrep").args(["-f", &format!("^sleep {marker}$")]).output().ok()?;
        left.stdout.is_empty().then_some(())
    });
    cluster.wait_idle(2);
}

#[test]
fn a_multi_node_job_succeeds_when_its_last_node_finishes_after_the_primary() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "order".into(), ..Default::default() }).unwrap();
    // The primary's ranks end at once; the other node's a little later.
    let cmd = "/bin/sh -c 'if [ $GANGWAY_NODE_RANK = 1 ]; then sleep 0.5; fi; exit 0'";
    let task = TaskAddParameter {
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        ..mpi_task("t", cmd, 2)
    };
    c.add_task("order", &task).unwrap();
    let t = done(&mut c, "order", "t");
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}", t.execution_info);
    assert_eq!(t.execution_info.result, Some(TaskExecutionResult::Success), "{:?}", t.execution_info);
}

#[test]
fn an_open_mpi_program_on_one_node_starts_under_pmix_not_as_singletons() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 2, ..Options::default() });
    let dir = cluster.dir.path();
    std::fs::write(
        dir.join("ompi.c"),
        "#include <mpi.h>\n#include <stdio.h>\n#include <stdlib.h>\n\
         int main(int c, char **v) { int r, n, s; MPI_Init(&c, &v); MPI_Comm_rank(MPI_COMM_WORLD, &r);\n\
         MPI_Comm_size(MPI_COMM_WORLD, &n); MPI_Allreduce(&r, &s, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n\
         printf(\"rank=%d size=%d sum=%d gangway_rank=%s\\n\", r, n, s, getenv(\"GANGWAY_RANK\")); MPI_Finalize(); return 0; }\n",
    )
    .unwrap();
    let cc = Command::new("mpicc.openmpi")
        .arg("-o")
        .arg(dir.join("ompi"))
        .arg(dir.join("ompi.c"))
        .output()
        .expect("mpicc.openmpi is not installed: run scripts/deps.sh");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "ompi".into(), ..Default::default() }).unwrap();
    // `auto` finds Open MPI's libmpi in the program and starts its ranks under the launcher's
    // PMIx server.
    c.add_task("ompi", &mpi_task("t", &dir.join("ompi").display().to_string(), 2)).unwrap();
    let t = done(&mut c, "ompi", "t");
    let out = String::from_utf8(c.get_task_file("ompi", "t", "stdout.txt", 0).unwrap()).unwrap();
    let err = String::from_utf8(c.get_task_file("ompi", "t", "stderr.txt", 0).unwrap()).unwrap();
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{out}{err}", t.execution_info);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["rank=0 size=2 sum=1 gangway_rank=0", "rank=1 size=2 sum=1 gangway_rank=1"], "{err}");
    let mut bad = mpi_task("bad", "/bin/true", 2);
    bad.mpi.as_mut().unwrap().implementation = Some("lam".into());
    let err = c.add_task("ompi", &bad).unwrap_err().to_string();
    assert!(err.contains("mpi.implementation") && err.contains("auto, pmi, pmix or openmpi"), "{err}");
}

/// A bare PMIx client (no MPI): what each rank reads from the namespace its launcher
/// registered, as `key=value` words.
const PMIX_CLIENT_C: &str = r#"#include <pmix.h>
#include <stdio.h>
static void show(pmix_proc_t *p, const char *key, const char *name) {
    pmix_value_t *v = NULL;
    if (PMIx_Get(p, key, NULL, 0, &v) != PMIX_SUCCESS) { printf(" %s=?", name); return; }
    switch (v->type) {
    case PMIX_STRING: printf(" %s=%s", name, v->data.string); break;
    case PMIX_UINT32: printf(" %s=%u", name, v->data.uint32); break;
    case PMIX_UINT16: printf(" %s=%u", name, (unsigned) v->data.uint16); break;
    case PMIX_PROC_RANK: printf(" %s=%u", name, v->data.rank); break;
    default: printf(" %s=type%d", name, v->type);
    }
    PMIX_VALUE_RELEASE(v);
}
int main(void) {
    pmix_proc_t me, job;
    if (PMIx_Init(&me, NULL, 0) != PMIX_SUCCESS) { printf("no PMIx server\n"); return 1; }
    PMIX_LOAD_PROCID(&job, me.nspace, PMIX_RANK_WILDCARD);
    printf("rank=%u", me.rank);
    show(&job, PMIX_JOB_SIZE, "size");
    show(&job, PMIX_LOCAL_PEERS, "peers");
    show(&me, PMIX_LOCAL_RANK, "lrank");
    show(&me, PMIX_HOSTNAME, "host");
    show(&me, PMIX_CPUSET, "cpuset");
    show(&me, PMIX_LOCALITY_STRING, "locality");
    printf("\n");
    fflush(stdout);
    PMIx_Fence(NULL, 0, NULL, 0);
    PMIx_Finalize(NULL, 0);
    return 0;
}
"#;

#[test]
fn a_pmix_client_reads_the_namespace_its_launcher_registered() {
    let cluster = Cluster::start(Options { nodes: 1, slots: 2, ..Options::default() });
    let dir = cluster.dir.path();
    std::fs::write(dir.join("client.c"), PMIX_CLIENT_C).unwrap();
    let cc = Command::new("cc")
        .arg("-o")
        .arg(dir.join("client"))
        .arg(dir.join("client.c"))
        .args(["-I/usr/lib/x86_64-linux-gnu/pmix2/include", "-lpmix"])
        .output()
        .expect("cc is not installed: run scripts/deps.sh");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "pmix".into(), ..Default::default() }).unwrap();
    let mut task = mpi_task("t", &dir.join("client").display().to_string(), 2);
    task.mpi.as_mut().unwrap().implementation = Some("pmix".into());
    c.add_task("pmix", &task).unwrap();
    let t = done(&mut c, "pmix", "t");
    let out = String::from_utf8(c.get_task_file("pmix", "t", "stdout.txt", 0).unwrap()).unwrap();
    let err = String::from_utf8(c.get_task_file("pmix", "t", "stderr.txt", 0).unwrap()).unwrap();
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{out}{err}", t.execution_info);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{out}{err}");
    // Each rank's CPUs are its part of the node's plan, the same as PMI-1 ranks get.
    let plan = Command::new(bin("gangway")).args(["topo", "--json", "--plan", "ranks=2"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    for (r, line) in lines.iter().enumerate() {
        let words: std::collections::HashMap<&str, &str> = line.split(' ').filter_map(|w| w.split_once('=')).collect();
        assert_eq!(words["rank"], r.to_string(), "{line}");
        assert_eq!((words["size"], words["peers"], words["host"]), ("2", "0,1", "node1"), "{line}");
        assert_eq!(words["lrank"], r.to_string(), "{line}");
        let cpus: Vec<String> =
            plan["ranks"][r]["cpus"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap().to_string()).collect();
        assert_eq!(words["cpuset"], format!("hwloc:{}", cpus.join(",")), "{line}");
        assert!(words["locality"] != "?" && !words["locality"].is_empty(), "a locality string: {line}");
    }
}

//! Managed MPI with Open MPI across namespace hosts: started directly by each launcher under
//! its PMIx server (the default), or by Open MPI's own `mpirun` on the primary, whose daemons
//! reach the other host through gangway's remote-launch agent and the head (no ssh), with a
//! hostfile and rankfile from the placement plans and a rank step that applies each rank's
//! part of its node's plan. The program is the real `mpi-probe` built against
//! Open MPI by `scripts/build-mpi.sh openmpi`; nothing is mocked.
//!
//! Needs root (namespaces, cgroups) like the other namespace tests; without it they say so
//! and pass, as `netns.rs` does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gangway_api::*;
use gangway_tests::netns::{available, NetCluster, NetOptions};
use gangway_tests::{bin, wait_for};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Builds the MPI programs for Open MPI (incremental after the first time) and returns their directory.
fn build_open_mpi_programs() -> PathBuf {
    let script = repo_root().join("scripts/build-mpi.sh");
    let out = Command::new("timeout").arg("600").arg(&script).arg("openmpi").output().expect("running build-mpi.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "build-mpi.sh openmpi failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(stdout.lines().last().expect("build-mpi.sh names the binaries' directory").trim())
}

/// The plan gangway computes for `ranks` ranks on this machine (the namespace hosts report it).
fn plan(ranks: u32) -> Value {
    let out =
        Command::new(bin("gangway")).args(["topo", "--json", "--plan", &format!("ranks={ranks}")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn open_mpi_task(id: &str, command_line: &str, nodes: u32, implementation: Option<&str>) -> TaskAddParameter {
    TaskAddParameter {
        id: id.into(),
        command_line: command_line.into(),
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: nodes, ..Default::default() }),
        mpi: Some(MpiSettings {
            ranks_per_node: 2,
            implementation: implementation.map(String::from),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn completed(cluster: &NetCluster, job: &str, task: &str) -> Task {
    let mut c = cluster.client();
    wait_for(Duration::from_secs(120), "the Open MPI task to complete", || {
        let t = c.get_task(job, task).ok()?;
        (t.state == TaskState::Completed).then_some(t)
    })
}

/// Every host's stdout and stderr of the task, for assertion messages.
fn logs(cluster: &NetCluster, job: &str, task: &str) -> String {
    let mut all = String::new();
    for (k, h) in cluster.hosts.iter().enumerate() {
        let dir = cluster.root(k).join(format!("workitems/{job}/job-1/{task}"));
        for f in ["stdout.txt", "stderr.txt"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            all.push_str(&format!("--- {} {f}\n{text}", h.name));
        }
    }
    all
}

/// Nothing of the task is left on any host: no process whose environment names one of its
/// task directories (mpirun, orted, ranks, agents), no task cgroup under any launcher's, no
/// temporary directory or agent socket.
fn assert_nothing_left(cluster: &NetCluster, job: &str, task: &str) {
    let dirs: Vec<String> = (0..cluster.hosts.len())
        .map(|k| {
            format!("AZ_BATCH_TASK_DIR={}", cluster.root(k).join(format!("workitems/{job}/job-1/{task}")).display())
        })
        .collect();
    let processes = || gangway_tests::processes_with_env(&dirs);
    let nodes: Vec<_> = cluster.hosts.iter().enumerate().map(|(k, h)| (h.name.clone(), cluster.root(k))).collect();
    let cgroups = || gangway_tests::task_cgroups_left(&nodes);
    let pids: Vec<String> =
        cluster.hosts.iter().filter_map(|h| h.launcher.as_ref()).map(|l| format!("gangway.{}.", l.id())).collect();
    let files = || -> Vec<String> {
        let shm = std::fs::read_dir("/dev/shm").into_iter().flatten().flatten();
        let mut found: Vec<String> = shm
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| pids.iter().any(|p| n.starts_with(p.as_str())))
            .map(|n| format!("/dev/shm/{n}"))
            .collect();
        for k in 0..cluster.hosts.len() {
            let dir = cluster.root(k).join(format!("workitems/{job}/job-1/{task}"));
            let left = ["tmp", ".gangway-agent.sock"].into_iter().map(|f| dir.join(f)).filter(|p| p.exists());
            found.extend(left.map(|p| p.display().to_string()));
        }
        found
    };
    // The task completes when the primary reports; the other instances finish their cleanup
    // (kill, cgroup removal, then their directories) a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<String> = [processes(), cgroups(), files()].concat();
        if left.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "left behind by {job}/{task}: {left:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn open_mpi_ranks_on_two_namespace_hosts_follow_the_plan() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let programs = build_open_mpi_programs();
    let cluster = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "ompi".into(), ..Default::default() }).unwrap();
    // `openmpi`: mpirun on the primary, its daemons through gangway's agent. `auto`: the probe
    // is linked to Open MPI's libmpi, so each launcher starts its ranks under its PMIx server.
    for (task, implementation) in [("probe", Some("openmpi")), ("direct", None)] {
        probe_follows_the_plan(&cluster, &programs, task, implementation);
    }
}

fn probe_follows_the_plan(cluster: &NetCluster, programs: &Path, task: &str, implementation: Option<&str>) {
    let mut c = cluster.client();
    let probe = programs.join("mpi-probe").display().to_string();
    c.add_task("ompi", &open_mpi_task(task, &probe, 2, implementation)).unwrap();
    let t = completed(cluster, "ompi", task);
    let logs = logs(cluster, "ompi", task);
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{logs}", t.execution_info);
    let primary = t.node_info.as_ref().unwrap().node_id.clone();
    let k0 = cluster.hosts.iter().position(|h| h.name == primary).unwrap();
    let dir = cluster.root(k0).join(format!("workitems/ompi/job-1/{task}"));

    // Rank 0 gathers every rank's report and prints it in the primary's stdout.txt.
    let out = std::fs::read_to_string(dir.join("stdout.txt")).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{logs}")))
        .collect();
    assert_eq!(lines.len(), 5, "{logs}");
    assert_eq!(lines[4], serde_json::json!({ "allreduce_sum": 10 }), "{logs}");

    let plan = plan(2);
    let cpus = |local: usize| -> Vec<u64> {
        plan["ranks"][local]["cpus"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
    };
    let list = |c: &[u64]| c.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    if implementation == Some("openmpi") {
        // The hostfile and rankfile name the gang's nodes in instance order, bound to the plan.
        let sub: ListResponse<SubtaskInformation> = serde_json::from_slice(
            &c.raw("GET", &format!("/jobs/ompi/tasks/{task}/subtasksinfo"), None, &[]).unwrap().body,
        )
        .unwrap();
        let nodes = [primary.clone(), sub.value[0].node_info.node_id.clone()];
        let hostfile = std::fs::read_to_string(dir.join("openmpi.hostfile")).unwrap();
        assert_eq!(hostfile, format!("{} slots=2\n{} slots=2\n", nodes[0], nodes[1]));
        let rankfile = std::fs::read_to_string(dir.join("openmpi.rankfile")).unwrap();
        let want: String = (0..4).map(|r| format!("rank {r}={} slot={}\n", nodes[r / 2], list(&cpus(r % 2)))).collect();
        assert_eq!(rankfile, want);
    } else {
        assert!(!dir.join("openmpi.hostfile").exists(), "no mpirun under PMIx");
    }

    // What the kernel applied to each rank, and its environment, is its node's plan.
    for (r, line) in lines[..4].iter().enumerate() {
        let local = r % 2;
        let p = &plan["ranks"][local];
        assert_eq!((line["rank"].as_u64(), line["size"].as_u64()), (Some(r as u64), Some(4)), "{line}");
        assert_eq!((line["local_rank"].as_u64(), line["local_size"].as_u64()), (Some(local as u64), Some(2)), "{line}");
        let got: Vec<u64> = line["cpus"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(got, cpus(local), "rank {r}'s CPUs: {line}");
        assert!(p["numa_nodes"].as_array().unwrap().contains(&line["numa_node"]), "rank {r}'s NUMA node: {line}");
        assert_eq!(line["mempolicy"]["nodes"], p["numa_nodes"], "rank {r}'s memory policy: {line}");
        let env = &line["env"];
        assert_eq!(env["GANGWAY_RANK"], r.to_string(), "{line}");
        assert_eq!(env["GANGWAY_LOCAL_RANK"], local.to_string(), "{line}");
        for var in ["CUDA_VISIBLE_DEVICES", "UCX_NET_DEVICES"] {
            assert_eq!(env[var], p["env"].get(var).cloned().unwrap_or(Value::Null), "rank {r}'s {var}: {line}");
        }
        assert_eq!(env["PMI_RANK"], Value::Null, "Open MPI ranks get no PMI-1 variables: {line}");
    }
    assert_nothing_left(cluster, "ompi", task);
    cluster.wait_idle(2);
}

#[test]
fn pmix_ranks_end_together_fetch_data_lazily_and_refuse_the_wrong_interface() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let cluster = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "ends".into(), ..Default::default() }).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ranks = gangway_tests::compile_openmpi_ranks(work.path()).display().to_string();
    for (task, word, code) in [("abort", "abort", 7), ("die", "die", 3)] {
        let cmd = format!("{ranks} {word}");
        c.add_task("ends", &open_mpi_task(task, &cmd, 2, Some("pmix"))).unwrap();
        let t = completed(&cluster, "ends", task);
        assert_eq!(t.execution_info.exit_code, Some(code), "{:?}\n{}", t.execution_info, logs(&cluster, "ends", task));
        assert_nothing_left(&cluster, "ends", task);
        cluster.wait_idle(2);
    }
    // Fences that collect nothing: each rank's data is fetched from its instance through the
    // head when first needed (direct modex).
    let mut lazy = open_mpi_task("lazy", &ranks, 2, Some("pmix"));
    lazy.environment_settings = ["OMPI_MCA_pmix_base_async_modex", "OMPI_MCA_pmix_base_collect_data"]
        .iter()
        .zip(["1", "0"])
        .map(|(n, v)| EnvironmentSetting { name: n.to_string(), value: v.into() })
        .collect();
    c.add_task("ends", &lazy).unwrap();
    let t = completed(&cluster, "ends", "lazy");
    let logs = logs(&cluster, "ends", "lazy");
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{logs}", t.execution_info);
    let ranks_seen = logs.lines().filter(|l| l.starts_with("rank=") && l.contains("size=4 sum=10 local=2")).count();
    assert_eq!(ranks_seen, 4, "{logs}");
    assert_nothing_left(&cluster, "ends", "lazy");
    cluster.wait_idle(2);
    // PMI-1 for an Open MPI program would start four one-rank jobs: refused, saying why.
    c.add_task("ends", &open_mpi_task("wrong", &ranks, 2, Some("pmi"))).unwrap();
    let t = completed(&cluster, "ends", "wrong");
    let f = t.execution_info.failure_info.clone().unwrap_or_else(|| panic!("{:?}", t.execution_info));
    // Refused on every node; whichever instance reports first names the task's failure.
    assert!(f.code == "MpiMismatch" || f.code == "SubtaskFailed", "{f:?}");
    assert!(f.message.contains("linked to Open MPI, which speaks PMIx only"), "{f:?}");
}

#[test]
fn a_failing_open_mpi_rank_fails_the_task_with_its_code_and_leaves_nothing() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let cluster = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "fail".into(), ..Default::default() }).unwrap();
    // Rank 3 lives on the second host; the other three wait to be killed.
    let cmd = "/bin/sh -c 'if [ $GANGWAY_RANK = 3 ]; then sleep 0.3; exit 3; fi; exec sleep 600'";
    c.add_task("fail", &open_mpi_task("t", cmd, 2, Some("openmpi"))).unwrap();
    let t = completed(&cluster, "fail", "t");
    assert_eq!(t.execution_info.exit_code, Some(3), "{:?}\n{}", t.execution_info, logs(&cluster, "fail", "t"));
    assert_nothing_left(&cluster, "fail", "t");
    cluster.wait_idle(2);

    // A wall-clock limit ends the same way: everything on both hosts killed.
    let mut timed = open_mpi_task("slow", "/bin/sh -c 'exec sleep 600'", 2, Some("openmpi"));
    timed.constraints =
        Some(TaskConstraints { max_wall_clock_time: Some(IsoDuration(Duration::from_secs(3))), ..Default::default() });
    c.add_task("fail", &timed).unwrap();
    let t = completed(&cluster, "fail", "slow");
    let f = t.execution_info.failure_info.clone().unwrap_or_else(|| panic!("{:?}", t.execution_info));
    assert_eq!(f.code, "TaskEnded", "{f:?}");
    assert_nothing_left(&cluster, "fail", "slow");
}

#[test]
fn open_mpi_ranks_with_bind_none_are_left_unbound_and_long_ids_work() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let programs = build_open_mpi_programs();
    let cluster = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "free".into(), ..Default::default() }).unwrap();
    // A long task id too: its agent socket's path is longer than a socket address holds.
    let id = format!("unbound-{}", "x".repeat(56));
    let mut task = open_mpi_task(&id, &programs.join("mpi-probe").display().to_string(), 2, Some("openmpi"));
    task.mpi.as_mut().unwrap().bind = Some("none".into());
    c.add_task("free", &task).unwrap();
    let t = completed(&cluster, "free", &id);
    let logs = logs(&cluster, "free", &id);
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{logs}", t.execution_info);
    let primary = t.node_info.as_ref().unwrap().node_id.clone();
    let k0 = cluster.hosts.iter().position(|h| h.name == primary).unwrap();
    let dir = cluster.root(k0).join(format!("workitems/free/job-1/{id}"));
    // No rankfile: mpirun maps two ranks per node and binds nothing.
    assert!(!dir.join("openmpi.rankfile").exists());
    let machine: Vec<Value> = plan(1)["ranks"][0]["cpus"].as_array().unwrap().clone();
    let out = std::fs::read_to_string(dir.join("stdout.txt")).unwrap();
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.last(), Some(&serde_json::json!({ "allreduce_sum": 10 })), "{logs}");
    for (r, line) in lines[..4].iter().enumerate() {
        assert_eq!(line["env"]["GANGWAY_RANK"], r.to_string(), "{line}");
        assert_eq!(line["cpus"].as_array().unwrap(), &machine, "rank {r} should keep every CPU: {line}");
    }
    assert_nothing_left(&cluster, "free", &id);
}

#[test]
fn the_agent_and_the_rank_step_refuse_to_run_outside_a_task() {
    let agent = Command::new(bin("gangway-node"))
        .args(["rsh-agent", "host2", "orted", "-mca", "ess", "\"env\""])
        .env_remove("GANGWAY_AGENT_SOCKET")
        .output()
        .unwrap();
    // 255, as ssh exits when it cannot reach the host.
    assert_eq!(agent.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&agent.stderr).contains("GANGWAY_AGENT_SOCKET"), "{agent:?}");
    let words = Command::new(bin("gangway-node")).args(["rsh-agent", "host2"]).output().unwrap();
    assert_eq!(words.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&words.stderr).contains("nothing to run on 'host2'"), "{words:?}");
    let step = Command::new(bin("gangway-node")).args(["rank-step", "--", "/bin/true"]).output().unwrap();
    assert_eq!(step.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&step.stderr).contains("OMPI_COMM_WORLD_RANK"), "{step:?}");
}

use super::*;
use crate::format::fixtures::{ended, job, node, pool, running, NOW};
use gangway_api::slurm::SlurmJobState::Completed;
use gangway_api::NodeState;

/// The reference record (`case-e-scontrol-show-job.txt`) rebuilt from the job it shows.
#[test]
fn job_layout_matches_the_reference() {
    let mut j = ended(23, &["vm"], 0, 0, Completed, 0);
    j.name = "refjob".into();
    j.user = "root".into();
    j.uid = 0;
    j.gid = 0;
    j.partition = "debug".into();
    j.time_limit_s = None;
    j.mem_per_cpu_mb = Some(128);
    j.submit_time = crate::format::fixtures::at(-3);
    j.eligible_time = Some(j.submit_time);
    j.command = Some("/srv/slurm-peer/refwork/e.sh".into());
    j.work_dir = "/srv/slurm-peer/refwork".into();
    j.std_out = "/srv/slurm-peer/refwork/slurm-23.out".into();
    j.std_err = j.std_out.clone();
    let out = show_job(&[j], Some("23"), false, NOW);
    let reference = include_str!("../tests/fixtures/case-e-scontrol-show-job.txt");
    let differs: Vec<(&str, &str)> =
        out.stdout.lines().zip(reference.lines()).filter(|(ours, theirs)| ours != theirs).collect();
    // What gangway cannot know: the priority, the submitting host and the times of this run.
    let expected_diffs = [
        "   Priority=1 Nice=0 Account=(null) QOS=(null)",
        "   SubmitTime=2026-11-23T09:39:57 EligibleTime=2026-11-23T09:39:57",
        "   AccrueTime=2026-11-23T09:39:57",
        "   StartTime=2026-11-23T09:40:00 EndTime=2026-11-23T09:40:00 Deadline=N/A",
        "   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-23T09:40:00 Scheduler=Main",
        "   Partition=debug AllocNode:Sid=(null):0",
    ];
    assert_eq!(differs.iter().map(|(o, _)| *o).collect::<Vec<_>>(), expected_diffs, "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), reference.lines().count());
    assert!(out.stdout.ends_with("   Power=\n   \n\n"));
}

#[test]
fn one_liner_and_errors() {
    let jobs = vec![running(11, &["node01"], 5), job(12)];
    let out = show_job(&jobs, Some("11"), true, NOW);
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(out.stdout.starts_with("JobId=11 JobName=job.sh UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A"));
    assert!(out.stdout.contains(" JobState=RUNNING Reason=None "));
    assert!(out.stdout.contains(" NodeList=node01 BatchHost=node01 NumNodes=1 "));
    let pending = show_job(&jobs, Some("12"), false, NOW).stdout;
    assert!(pending.contains("   JobState=PENDING Reason=Priority Dependency=(null)\n"));
    assert!(pending.contains("   NodeList=\n   NumNodes=1 "));
    assert!(!pending.contains("BatchHost"));
    assert_eq!(show_job(&jobs, None, false, NOW).stdout.matches("JobId=").count(), 2);
    let missing = show_job(&jobs, Some("999"), false, NOW);
    assert_eq!((missing.stderr.as_str(), missing.code), ("slurm_load_jobs error: Invalid job id specified\n", 1));
    assert_eq!(show_job(&jobs, Some("abc"), false, NOW).code, 1);
    assert_eq!(split_flags(&["-o".into(), "show".into()]), (true, &["show".to_string()][..]));
    assert!(!split_flags(&["show".into()]).0);
}

#[test]
fn nodes_and_partitions() {
    let pools = vec![pool("default", 4), pool("empty", 1)];
    let nodes = vec![node("node01", "default", NodeState::Idle, 0), node("node02", "default", NodeState::Running, 1)];
    let jobs = vec![running(11, &["node02"], 5)];
    let n = show_node(&pools, &nodes, &jobs, Some("node02"), false).stdout;
    assert!(n.starts_with("NodeName=node02 Arch="), "{n}");
    assert!(n.contains("\n   CPUAlloc=1 CPUEfctv=4 CPUTot=4 CPULoad=N/A\n"), "{n}");
    assert!(n.contains("\n   RealMemory=8192 AllocMem=0 FreeMem=N/A Sockets=1 Boards=1\n"), "{n}");
    assert!(n.contains("\n   State=MIXED ThreadsPerCore=2 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n"), "{n}");
    assert!(n.contains("\n   Partitions=default\n"), "{n}");
    assert!(n.ends_with("\n\n"));
    assert_eq!(show_node(&pools, &nodes, &jobs, None, false).stdout.matches("NodeName=").count(), 2);
    let missing = show_node(&pools, &nodes, &jobs, Some("nope"), false);
    assert_eq!((missing.stderr.as_str(), missing.code), ("Node nope not found\n", 1));

    let p = show_partition(&pools, &nodes, &jobs, Some("default"), false).stdout;
    assert!(p.starts_with("PartitionName=default\n   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL\n"), "{p}");
    assert!(p.contains("\n   AllocNodes=ALL Default=YES QoS=N/A\n"), "{p}");
    assert!(p.contains("\n   Nodes=node[01-02]\n"), "{p}");
    assert!(p.contains("\n   State=UP TotalCPUs=8 TotalNodes=2 SelectTypeParameters=NONE\n"), "{p}");
    let empty = show_partition(&pools, &nodes, &jobs, Some("empty"), true).stdout;
    assert!(
        empty.starts_with("PartitionName=empty AllowGroups=ALL")
            && empty.contains(" Default=NO ")
            && empty.contains(" Nodes=(null) ")
    );
    let missing = show_partition(&pools, &nodes, &jobs, Some("nope"), false);
    assert_eq!((missing.stderr.as_str(), missing.code), ("Partition nope not found\n", 1));
}

#[test]
fn details_show_each_node_s_cpus_memory_and_gpus() {
    let mut j = running(7, &["n1", "n2", "n3"], 10);
    let share = |node: &str, cpus: Vec<u32>, gpus: Vec<u32>| gangway_api::NodeAllocation {
        node_id: node.into(),
        cpus,
        memory_mib: 1024,
        gpus,
    };
    j.allocation = vec![
        share("n1", vec![0, 1, 2, 3, 8], vec![0, 1]),
        share("n2", vec![0, 1, 2, 3, 8], vec![0, 1]),
        share("n3", vec![4, 5], vec![]),
    ];
    let args: Vec<String> = ["-d", "show", "job", "7"].map(String::from).to_vec();
    assert!(details_asked(&args));
    assert!(!details_asked(&args[1..]));
    let out = show_job_with(std::slice::from_ref(&j), Some("7"), false, true, NOW).stdout;
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("   Socks/Node=")).unwrap();
    assert_eq!(
        &lines[at + 1..at + 5],
        [
            "   JOB_GRES=gpu:4",
            "     Nodes=n[1-2] CPU_IDs=0-3,8 Mem=1024 GRES=gpu:2(IDX:0-1)",
            "     Nodes=n3 CPU_IDs=4-5 Mem=1024",
            "   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0",
        ],
        "{out}"
    );
    let plain = show_job(&[j], Some("7"), false, NOW).stdout;
    assert!(!plain.contains("CPU_IDs="), "only with -d");
}

#[test]
fn a_node_shows_its_allocated_memory() {
    let mut n = node("n1", "p", NodeState::Running, 1);
    n.allocated.memory_mib = 3000;
    let out = show_node(&[pool("p", 2)], &[n], &[], Some("n1"), false).stdout;
    assert!(out.contains("RealMemory=8192 AllocMem=3000 "), "{out}");
}

#[test]
fn a_pending_job_shows_its_planned_start_and_nodes() {
    let mut j = job(12);
    j.planned_start = Some(crate::format::fixtures::at(600));
    j.sched_nodes = vec!["node01".into(), "node02".into()];
    let out = show_job(&[j.clone()], Some("12"), false, NOW).stdout;
    assert!(out.contains("   StartTime=2026-11-23T09:50:00 EndTime=2026-11-23T10:50:00 Deadline=N/A\n"), "{out}");
    assert!(out.contains("   NodeList= SchedNodeList=node[01-02]\n"), "{out}");
    j.planned_start = None;
    j.sched_nodes.clear();
    let out = show_job(&[j], Some("12"), false, NOW).stdout;
    assert!(out.contains("   StartTime=Unknown EndTime=Unknown Deadline=N/A\n"), "{out}");
    assert!(out.contains("   NodeList=\n"), "{out}");
}

#[test]
fn node_ranges_tasks_per_node_and_exclusive_show_as_slurms() {
    let mut pending = job(12);
    (pending.min_nodes, pending.max_nodes, pending.ntasks_per_node, pending.exclusive) = (2, Some(4), Some(16), true);
    let out = show_job(&[pending.clone()], Some("12"), false, NOW).stdout;
    assert!(out.contains("   NumNodes=2-4 "), "{out}");
    assert!(out.contains(" NtasksPerN:B:S:C=16:0:*:* "), "{out}");
    assert!(out.contains("   OverSubscribe=NO "), "{out}");
    // Once placed: its nodes; without --exclusive: OK.
    let mut placed = running(13, &["node01", "node02", "node03"], 5);
    (placed.min_nodes, placed.max_nodes) = (2, Some(4));
    let out = show_job(&[placed], Some("13"), false, NOW).stdout;
    assert!(out.contains(" NumNodes=3 ") && out.contains("   OverSubscribe=OK "), "{out}");
}

#[test]
fn mem_zero_shows_the_nodes_memory_once_placed() {
    let mut j = running(14, &["node01"], 5);
    j.mem_per_node_mb = Some(0);
    j.allocation = vec![gangway_api::task::NodeAllocation {
        node_id: "node01".into(),
        cpus: vec![0],
        memory_mib: 162_000,
        gpus: Vec::new(),
    }];
    let out = show_job(&[j], Some("14"), false, NOW).stdout;
    assert!(out.contains(",mem=162000M,"), "{out}");
    assert!(out.contains(" MinMemoryNode=0 "), "{out}");
}

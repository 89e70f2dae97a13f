//! `scontrol show job|node|partition`, in the key=value layout of Slurm 22.05 (see
//! `shared/reference/slurm-22.05/case-e-scontrol-show-job.txt`): records of indented lines,
//! a blank line after each, or one line per record with `-o` (`--oneliner`).
//!
//! Keys gangway has no value for are printed with Slurm's placeholder for "not set"
//! (`(null)`, `N/A`, `*`), so scripts that read a fixed key find it. Jobs that ended more than
//! `MinJobAge` ago are gone, as in squeue ([`crate::queue::still_known`]).

use gangway_api::slurm::{SlurmJob, SlurmJobState};
use gangway_api::{ComputeNode, Pool, Timestamp};

use crate::format::{
    clock_secs, exit_code_str, iso_time, limit_str, mem_str, mem_str_exact, nodes_str, run_secs, time_or, Output,
};
use crate::nodes::{cpus, memory_mb, partitions, sct, PartitionView, DEFAULT_PARTITION};
use crate::queue::still_known;
use crate::queue_fields::{node_count, reason};

/// Pulls scontrol's own flags (`-o`, `--oneliner`; `-d`, `-a`, `-v`, `-Q` are accepted and
/// ignored) off the front of its arguments: returns the one-liner flag and the rest.
pub fn split_flags(args: &[String]) -> (bool, &[String]) {
    let mut one = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-o" | "--oneliner" => one = true,
            "-d" | "--details" | "-a" | "--all" | "-v" | "--verbose" | "-Q" | "--quiet" => {}
            _ => break,
        }
        i += 1;
    }
    (one, &args[i..])
}

/// Whether scontrol's leading flags ask for details (`-d`, `--details`).
pub fn details_asked(args: &[String]) -> bool {
    let (_, rest) = split_flags(args);
    args[..args.len() - rest.len()].iter().any(|a| a == "-d" || a == "--details")
}

/// `-d`'s lines of a job that holds an allocation: `JOB_GRES=` and, per run of nodes with the
/// same share, `Nodes=… CPU_IDs=… Mem=… GRES=gpu:N(IDX:…)` (CPU ids are OS CPU numbers).
fn detail_lines(job: &SlurmJob) -> Vec<Vec<String>> {
    if job.allocation.is_empty() || job.state == SlurmJobState::Pending {
        return Vec::new();
    }
    let gpus: usize = job.allocation.iter().map(|a| a.gpus.len()).sum();
    let mut lines = vec![vec![kv("JOB_GRES", if gpus == 0 { "(null)".to_string() } else { format!("gpu:{gpus}") })]];
    let share = |a: &gangway_api::NodeAllocation| {
        let cpus = crate::format::id_ranges(&a.cpus);
        let gres = match a.gpus.len() {
            0 => String::new(),
            n => format!(" GRES=gpu:{n}(IDX:{})", crate::format::id_ranges(&a.gpus)),
        };
        format!("CPU_IDs={cpus} Mem={}{gres}", a.memory_mib)
    };
    let mut runs: Vec<(Vec<String>, String)> = Vec::new();
    for a in &job.allocation {
        let s = share(a);
        match runs.iter_mut().find(|(_, x)| *x == s) {
            Some((nodes, _)) => nodes.push(a.node_id.clone()),
            None => runs.push((vec![a.node_id.clone()], s)),
        }
    }
    // Two more spaces than the record's own lines, as Slurm indents them.
    lines.extend(runs.into_iter().map(|(nodes, s)| vec![format!("  Nodes={} {s}", nodes_str(&nodes))]));
    lines
}

/// Joins a record: its lines indented by three spaces and a blank line after, or one line.
fn record(lines: &[Vec<String>], one_liner: bool) -> String {
    if one_liner {
        let mut all: Vec<&str> = lines.iter().flatten().map(|s| s.trim_start()).collect();
        all.retain(|s| !s.is_empty());
        return format!("{}\n", all.join(" "));
    }
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("   ");
        }
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    out.push('\n');
    out
}

fn kv(k: &str, v: impl std::fmt::Display) -> String {
    format!("{k}={v}")
}

fn or_null(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(null)".into())
}

/// A group name: gangway knows only the gid, so `root` for 0, the user's name for a private
/// group (gid = uid), else the number.
fn group_name(job: &SlurmJob) -> String {
    match job.gid {
        0 => "root".into(),
        g if g == job.uid => job.user.clone(),
        g => g.to_string(),
    }
}

/// `NodeList=`, and a pending job's planned nodes (`SchedNodeList=`) when it has some.
fn node_list(job: &SlurmJob, pending: bool) -> Vec<String> {
    // Slurm 22.05 leaves it empty while pending.
    let mut line = vec![kv("NodeList", if pending { String::new() } else { nodes_str(&job.nodes) })];
    if pending && !job.sched_nodes.is_empty() {
        line.push(kv("SchedNodeList", nodes_str(&job.sched_nodes)));
    }
    line
}

/// One job's record; `folded`: the indices of an array's pending elements shown as one
/// record (`JobId` the array's, `ArrayTaskId=1-3,5%2`), as slurmctld keeps them.
fn job_lines(job: &SlurmJob, now: Timestamp, details: bool, folded: Option<&str>) -> Vec<Vec<String>> {
    let mut first = vec![kv("JobId", folded.and(job.array_job_id).unwrap_or(job.job_id))];
    if let (Some(a), Some(t)) = (job.array_job_id, job.array_task_id) {
        first.push(kv("ArrayJobId", a));
        match folded {
            Some(tasks) => first.push(kv("ArrayTaskId", tasks)),
            None => first.push(kv("ArrayTaskId", t)),
        }
        if let Some(n) = job.array_throttle {
            first.push(kv("ArrayTaskThrottle", n));
        }
    }
    first.push(kv("JobName", &job.name));
    let pending = job.state == SlurmJobState::Pending;
    // A pending job shows its planned start, as slurmctld shows the backfill's estimate.
    let start = job.start_time.or(job.planned_start.filter(|_| pending));
    let end = match (job.end_time, start, job.time_limit_s) {
        (Some(e), ..) => iso_time(e),
        (None, Some(s), Some(l)) => iso_time(s.plus(std::time::Duration::from_secs(l))),
        _ => "Unknown".into(),
    };
    let mut tres = vec![format!("cpu={}", job.num_cpus)];
    let nodes = node_count(job) as u64;
    // A pending job's TRES counts the nodes it asked for (`-N`; 1 without), as slurmctld's
    // does before it places the job; NumNodes shows what its CPUs need.
    let tres_nodes = if pending && job.max_nodes.is_none() { 1 } else { nodes };
    let allocated: u64 = job.allocation.iter().map(|a| a.memory_mib).sum();
    match (job.mem_per_node_mb, job.mem_per_cpu_mb) {
        // `--mem=0`: all of each node's memory, known once placed.
        (Some(0), _) if allocated > 0 => tres.push(format!("mem={}", mem_str_exact(allocated, 1))),
        // While pending, what each node gives it: all of a node's memory.
        (Some(0), _) => {
            if let Some(mb) = job.node_memory_mb {
                tres.push(format!("mem={}", mem_str_exact(mb.saturating_mul(tres_nodes), 1)));
            }
        }
        (Some(mb), _) => tres.push(format!("mem={}", mem_str_exact(mb.saturating_mul(tres_nodes), 1))),
        (None, Some(mb)) => tres.push(format!("mem={}", mem_str_exact(mb.saturating_mul(u64::from(job.num_cpus)), 1))),
        _ => {}
    }
    tres.push(format!("node={tres_nodes}"));
    tres.push(format!("billing={}", job.num_cpus));
    // Once placed, the GPUs the whole job holds (a held or pending job's TRES has none).
    let gpus: usize = job.allocation.iter().map(|a| a.gpus.len()).sum();
    if gpus > 0 {
        tres.push(format!("gres/gpu={gpus}"));
    }
    let min_mem = match (job.mem_per_node_mb, job.mem_per_cpu_mb) {
        (_, Some(mb)) => kv("MinMemoryCPU", mem_str_exact(mb, 1)),
        (Some(mb), None) => kv("MinMemoryNode", mem_str_exact(mb, 1)),
        (None, None) => kv("MinMemoryNode", 0),
    };
    let mut lines = vec![
        first,
        vec![
            format!("UserId={}({})", job.user, job.uid),
            format!("GroupId={}({})", group_name(job), job.gid),
            kv("MCS_label", "N/A"),
        ],
        vec![
            kv("Priority", if job.held { 0 } else { job.priority.unwrap_or(1) }),
            kv("Nice", job.nice),
            kv("Account", or_null(&job.account)),
            kv("QOS", or_null(&job.qos)),
        ],
        vec![kv("JobState", job.state.as_str()), kv("Reason", reason(job)), kv("Dependency", or_null(&job.dependency))],
        vec![
            kv("Requeue", u8::from(job.requeue)),
            kv("Restarts", job.restarts),
            kv("BatchFlag", 1),
            kv("Reboot", 0),
            kv("ExitCode", exit_code_str(job)),
        ],
        vec![
            kv("RunTime", clock_secs(run_secs(job, now))),
            kv("TimeLimit", limit_str(job.time_limit_s)),
            kv("TimeMin", "N/A"),
        ],
        vec![kv("SubmitTime", iso_time(job.submit_time)), kv("EligibleTime", time_or(job.eligible_time, "Unknown"))],
        vec![kv("AccrueTime", time_or(job.eligible_time, "Unknown"))],
        vec![kv("StartTime", time_or(start, "Unknown")), kv("EndTime", end), kv("Deadline", "N/A")],
        vec![
            kv("SuspendTime", "None"),
            kv("SecsPreSuspend", 0),
            kv("LastSchedEval", time_or(job.start_time.or(job.eligible_time), "Unknown")),
            kv("Scheduler", "Main"),
        ],
        vec![kv("Partition", &job.partition), kv("AllocNode:Sid", "(null):0")],
        vec![kv("ReqNodeList", "(null)"), kv("ExcNodeList", "(null)")],
        node_list(job, pending),
    ];
    if let Some(host) = job.nodes.first().filter(|_| !pending) {
        lines.push(vec![kv("BatchHost", host)]);
    }
    lines.extend([
        vec![
            // A pending job shows the range it asked for (`2-4`, and `2-2` for `-N 2`); once
            // placed, its nodes.
            match job.max_nodes.filter(|_| pending) {
                Some(max) => kv("NumNodes", format!("{}-{max}", job.min_nodes)),
                None => kv("NumNodes", nodes),
            },
            kv("NumCPUs", job.num_cpus),
            kv("NumTasks", job.ntasks),
            kv("CPUs/Task", job.cpus_per_task),
            // `--hint=nomultithread` (and `--threads-per-core`): threads per core asked for.
            kv("ReqB:S:C:T", format!("0:0:*:{}", job.threads_per_core.map_or("*".to_owned(), |t| t.to_string()))),
        ],
        vec![kv("TRES", tres.join(","))],
        vec![
            kv("Socks/Node", "*"),
            kv("NtasksPerN:B:S:C", format!("{}:0:*:*", job.ntasks_per_node.unwrap_or(0))),
            kv("CoreSpec", "*"),
        ],
    ]);
    if details {
        lines.extend(detail_lines(job));
    }
    lines.extend([
        // The CPUs one node must give: a node's tasks' when --ntasks-per-node fixes them.
        vec![
            kv("MinCPUsNode", job.ntasks_per_node.map_or(job.cpus_per_task, |n| n.min(job.ntasks) * job.cpus_per_task)),
            min_mem,
            kv("MinTmpDiskNode", 0),
        ],
        vec![kv("Features", or_null(&job.constraint)), kv("DelayBoot", "00:00:00")],
        vec![
            kv("OverSubscribe", if job.exclusive { "NO" } else { "OK" }),
            kv("Contiguous", 0),
            kv("Licenses", "(null)"),
            kv("Network", "(null)"),
        ],
        vec![kv("Command", or_null(&job.command))],
        vec![kv("WorkDir", &job.work_dir)],
    ]);
    if let Some(c) = &job.comment {
        // Slurm prints it with a space after.
        lines.push(vec![format!("Comment={c} ")]);
    }
    lines.extend([
        vec![kv("StdErr", &job.std_err)],
        vec![kv("StdIn", "/dev/null")],
        vec![kv("StdOut", &job.std_out)],
        vec![kv("Power", "")],
    ]);
    // The GPU request as it was made, as Slurm lists it after Power=.
    for (key, value) in [
        ("CpusPerTres", &job.cpus_per_tres),
        ("MemPerTres", &job.mem_per_tres),
        ("TresPerJob", &job.tres_per_job),
        ("TresPerNode", &job.tres_per_node),
        ("TresPerTask", &job.tres_per_task),
    ] {
        if let Some(v) = value {
            lines.push(vec![kv(key, v)]);
        }
    }
    // Slurm ends a job record with an empty indented line before the blank one.
    lines.push(vec![String::new()]);
    lines
}

/// `scontrol show job [ID]`: every job slurmctld would still know, or one (an array's id
/// shows all its elements). Unknown: `slurm_load_jobs error: Invalid job id specified`.
pub fn show_job(jobs: &[SlurmJob], id: Option<&str>, one_liner: bool, now: Timestamp) -> Output {
    show_job_with(jobs, id, one_liner, false, now)
}

/// [`show_job`], with `-d`'s allocation lines when `details`.
pub fn show_job_with(jobs: &[SlurmJob], id: Option<&str>, one_liner: bool, details: bool, now: Timestamp) -> Output {
    let known = jobs.iter().filter(|j| still_known(j, now));
    let picked: Vec<&SlurmJob> = match id {
        None => known.collect(),
        Some(id) => {
            let Ok(specs) = crate::format::parse_job_ids(id) else {
                return Output::fail("slurm_load_jobs error: Invalid job id specified");
            };
            known.filter(|j| specs.iter().any(|s| s.matches(j))).collect()
        }
    };
    if picked.is_empty() {
        return match id {
            Some(_) => Output::fail("slurm_load_jobs error: Invalid job id specified"),
            None => Output { stdout: "No jobs in the system\n".into(), ..Output::default() },
        };
    }
    let stdout = fold_pending_elements(&picked)
        .into_iter()
        .map(|(j, folded)| record(&job_lines(j, now, details, folded.as_deref()), one_liner))
        .collect();
    Output { stdout, ..Output::default() }
}

/// The pending elements of each array as one record (the first, with every pending index and
/// the array's `%N`), as slurmctld keeps an array until its elements start; the rest as they are.
fn fold_pending_elements<'a>(jobs: &[&'a SlurmJob]) -> Vec<(&'a SlurmJob, Option<String>)> {
    crate::queue::fold_pending(jobs.iter().copied(), |_, array| array)
        .into_iter()
        .map(|(job, tasks)| (job, (!tasks.is_empty()).then(|| crate::queue::array_tasks(job, &tasks))))
        .collect()
}

fn node_lines(node: &ComputeNode, parts: &[PartitionView<'_>]) -> Vec<Vec<String>> {
    let view = parts.iter().flat_map(|p| p.nodes.iter()).find(|v| v.node.id == node.id);
    let (sockets, cores, threads) = sct(node);
    let total = cpus(node);
    let alloc = view.map_or(0, |v| v.alloc_cpus);
    let state = view.map_or_else(|| "UNKNOWN".to_string(), |v| v.state.scontrol(v.busy));
    let mem = memory_mb(node);
    let gres = match node.resources.gpus.len() {
        0 => "(null)".to_string(),
        g => format!("gpu:{g}"),
    };
    let mut cfg = format!("cpu={total},mem={}", mem_str(mem, 1));
    if !node.resources.gpus.is_empty() {
        cfg.push_str(&format!(",gres/gpu={}", node.resources.gpus.len()));
    }
    cfg.push_str(&format!(",billing={total}"));
    let mut lines = vec![
        vec![kv("NodeName", &node.id), kv("Arch", std::env::consts::ARCH), kv("CoresPerSocket", cores)],
        vec![kv("CPUAlloc", alloc), kv("CPUEfctv", total), kv("CPUTot", total), kv("CPULoad", "N/A")],
        vec![kv("AvailableFeatures", "(null)")],
        vec![kv("ActiveFeatures", "(null)")],
        vec![kv("Gres", gres)],
        vec![kv("NodeAddr", &node.ip_address), kv("NodeHostName", &node.id), kv("Version", "22.05.8")],
        vec![kv("OS", "Linux")],
        vec![
            kv("RealMemory", mem),
            kv("AllocMem", node.allocated.memory_mib),
            kv("FreeMem", "N/A"),
            kv("Sockets", sockets),
            kv("Boards", 1),
        ],
        vec![
            kv("State", state),
            kv("ThreadsPerCore", threads),
            kv("TmpDisk", 0),
            kv("Weight", 1),
            kv("Owner", "N/A"),
            kv("MCS_label", "N/A"),
        ],
        vec![kv("Partitions", &node.pool_id)],
        vec![kv("BootTime", iso_time(node.last_boot_time)), kv("SlurmdStartTime", iso_time(node.last_boot_time))],
        vec![kv("LastBusyTime", iso_time(node.state_transition_time)), kv("ResumeAfterTime", "None")],
        vec![kv("CfgTRES", cfg)],
        vec![kv("AllocTRES", if alloc > 0 { format!("cpu={alloc}") } else { String::new() })],
        vec![kv("CapWatts", "n/a")],
        vec![kv("CurrentWatts", 0), kv("AveWatts", 0)],
        vec![kv("ExtSensorsJoules", "n/s"), kv("ExtSensorsWatts", 0), kv("ExtSensorsTemp", "n/s")],
    ];
    if let Some(v) = view.filter(|v| v.reason != "none") {
        lines.push(vec![format!("Reason={} [gangway@{}]", v.reason, iso_time(node.state_transition_time))]);
    }
    lines
}

/// `scontrol show node [NAME]`. Unknown: `Node NAME not found`.
pub fn show_node(
    pools: &[Pool],
    nodes: &[ComputeNode],
    jobs: &[SlurmJob],
    name: Option<&str>,
    one_liner: bool,
) -> Output {
    let parts = partitions(pools, nodes, jobs);
    let mut picked: Vec<&ComputeNode> = match name {
        None => nodes.iter().collect(),
        Some(list) => {
            let Ok(names) = gangway_topology::hostlist::expand_hostlist(list) else {
                return Output::fail(format!("Node {list} not found"));
            };
            let found: Vec<&ComputeNode> = nodes.iter().filter(|n| names.contains(&n.id)).collect();
            if found.is_empty() {
                return Output::fail(format!("Node {list} not found"));
            }
            found
        }
    };
    picked.sort_by(|a, b| a.id.cmp(&b.id));
    if picked.is_empty() {
        return Output { stdout: "No nodes in the system\n".into(), ..Output::default() };
    }
    let stdout = picked.iter().map(|n| record(&node_lines(n, &parts), one_liner)).collect();
    Output { stdout, ..Output::default() }
}

fn partition_lines(p: &PartitionView<'_>) -> Vec<Vec<String>> {
    let names: Vec<String> = p.nodes.iter().map(|v| v.node.id.clone()).collect();
    let total_cpus: u32 = p.nodes.iter().map(|v| cpus(v.node)).sum();
    let mem: u64 = p.nodes.iter().map(|v| memory_mb(v.node)).sum();
    let yes_no = |b: bool| if b { "YES" } else { "NO" };
    vec![
        vec![kv("PartitionName", &p.name)],
        vec![kv("AllowGroups", "ALL"), kv("AllowAccounts", "ALL"), kv("AllowQos", "ALL")],
        vec![kv("AllocNodes", "ALL"), kv("Default", yes_no(p.name == DEFAULT_PARTITION)), kv("QoS", "N/A")],
        vec![
            kv("DefaultTime", p.time_limits().1.map_or_else(|| "NONE".into(), clock_secs)),
            kv("DisableRootJobs", "NO"),
            kv("ExclusiveUser", "NO"),
            kv("GraceTime", 0),
            kv("Hidden", "NO"),
        ],
        vec![
            kv("MaxNodes", "UNLIMITED"),
            kv("MaxTime", limit_str(p.time_limits().0)),
            kv("MinNodes", 0),
            kv("LLN", "NO"),
            kv("MaxCPUsPerNode", "UNLIMITED"),
        ],
        vec![kv("Nodes", if names.is_empty() { "(null)".to_string() } else { nodes_str(&names) })],
        vec![
            kv("PriorityJobFactor", 1),
            kv("PriorityTier", 1),
            kv("RootOnly", "NO"),
            kv("ReqResv", "NO"),
            kv("OverSubscribe", "NO"),
        ],
        vec![kv("OverTimeLimit", "NONE"), kv("PreemptMode", "OFF")],
        vec![
            kv("State", p.avail().to_ascii_uppercase()),
            kv("TotalCPUs", total_cpus),
            kv("TotalNodes", names.len()),
            kv("SelectTypeParameters", "NONE"),
        ],
        vec![kv("JobDefaults", "(null)")],
        // Slurm prints DefMemPerCPU in DefMemPerNode's place when a partition has one.
        match p.pool.and_then(|pool| pool.default_memory_per_cpu_mib) {
            Some(m) => vec![kv("DefMemPerCPU", m), kv("MaxMemPerNode", "UNLIMITED")],
            None => vec![kv("DefMemPerNode", "UNLIMITED"), kv("MaxMemPerNode", "UNLIMITED")],
        },
        vec![kv("TRES", format!("cpu={total_cpus},mem={},node={},billing={total_cpus}", mem_str(mem, 1), names.len()))],
    ]
}

/// `scontrol show partition [NAME]`. Unknown: `Partition NAME not found`.
pub fn show_partition(
    pools: &[Pool],
    nodes: &[ComputeNode],
    jobs: &[SlurmJob],
    name: Option<&str>,
    one_liner: bool,
) -> Output {
    let parts: Vec<PartitionView<'_>> =
        partitions(pools, nodes, jobs).into_iter().filter(|p| name.is_none_or(|n| n == p.name)).collect();
    if parts.is_empty() {
        return match name {
            Some(n) => Output::fail(format!("Partition {n} not found")),
            None => Output { stdout: "No partitions in the system\n".into(), ..Output::default() },
        };
    }
    let stdout = parts.iter().map(|p| record(&partition_lines(p), one_liner)).collect();
    Output { stdout, ..Output::default() }
}

#[cfg(test)]
#[path = "show_tests.rs"]
mod tests;

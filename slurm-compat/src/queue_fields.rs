//! squeue's job fields: the `-o` letters and `-O` names, their headers and values, as
//! `src/squeue/print.c` prints them.

use gangway_api::slurm::{SlurmJob, SlurmJobState};
use gangway_api::Timestamp;

use crate::format::{iso_time, job_id_str, mem_str_exact, nodes_str, run_secs, squeue_secs};

/// One job row as squeue sees it: a job, or the pending elements of an array folded into one
/// record (`123_[1-3,5]`).
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// The job (for a folded array: its first pending element).
    pub job: &'a SlurmJob,
    /// For a folded array: the element indices as Slurm's `bit_fmt` writes them (`1-3,5`).
    pub tasks: Option<String>,
}

/// How a field is printed: whether squeue cuts it to its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Cut to the width (most fields).
    Yes,
    /// Never cut (node lists, times used and limits).
    No,
}

/// The letter's header and cut rule, or `None` for a letter squeue does not know.
pub fn letter_info(letter: char) -> Option<(&'static str, Cut)> {
    let (header, cut) = match letter {
        'a' => ("ACCOUNT", Cut::Yes),
        'A' => ("JOBID", Cut::Yes),
        'b' => ("TRES_PER_NODE", Cut::Yes),
        'B' => ("EXEC_HOST", Cut::Yes),
        'c' => ("MIN_CPUS", Cut::Yes),
        'C' => ("CPUS", Cut::Yes),
        'D' => ("NODES", Cut::Yes),
        'e' => ("END_TIME", Cut::Yes),
        'E' => ("DEPENDENCY", Cut::Yes),
        'f' => ("FEATURES", Cut::Yes),
        'F' => ("ARRAY_JOB_ID", Cut::Yes),
        'g' => ("GROUP", Cut::Yes),
        'G' => ("GROUP", Cut::Yes),
        'h' => ("OVER_SUBSCRIBE", Cut::Yes),
        'i' => ("JOBID", Cut::Yes),
        'j' => ("NAME", Cut::Yes),
        'k' => ("COMMENT", Cut::Yes),
        'K' => ("ARRAY_TASK_ID", Cut::Yes),
        'l' => ("TIME_LIMIT", Cut::No),
        'L' => ("TIME_LEFT", Cut::No),
        'm' => ("MIN_MEMORY", Cut::Yes),
        'M' => ("TIME", Cut::No),
        'n' => ("REQ_NODES", Cut::Yes),
        'N' => ("NODELIST", Cut::No),
        'o' => ("COMMAND", Cut::Yes),
        'p' => ("PRIORITY", Cut::Yes),
        'P' => ("PARTITION", Cut::Yes),
        'Q' => ("PRIORITY", Cut::Yes),
        'q' => ("QOS", Cut::Yes),
        'r' => ("REASON", Cut::Yes),
        'R' => ("NODELIST(REASON)", Cut::No),
        'S' => ("START_TIME", Cut::Yes),
        't' => ("ST", Cut::Yes),
        'T' => ("STATE", Cut::Yes),
        'u' => ("USER", Cut::Yes),
        'U' => ("UID", Cut::Yes),
        'V' => ("SUBMIT_TIME", Cut::Yes),
        'Y' => ("SCHEDNODES", Cut::Yes),
        'y' => ("NICE", Cut::Yes),
        'Z' => ("WORK_DIR", Cut::Yes),
        _ => return None,
    };
    Some((header, cut))
}

/// The `-O` names squeue 22.05 knows that gangway can fill, with the letter that prints the
/// same thing. Matched case-insensitively.
const LONG_NAMES: [(&str, char); 39] = [
    ("account", 'a'),
    ("arrayjobid", 'F'),
    ("arraytaskid", 'K'),
    ("batchhost", 'B'),
    ("command", 'o'),
    ("comment", 'k'),
    ("dependency", 'E'),
    ("endtime", 'e'),
    ("feature", 'f'),
    ("groupid", 'G'),
    ("groupname", 'g'),
    ("jobarrayid", 'i'),
    ("jobid", 'A'),
    ("mincpus", 'c'),
    ("minmemory", 'm'),
    ("name", 'j'),
    ("nice", 'y'),
    ("nodelist", 'N'),
    ("numcpus", 'C'),
    ("numnodes", 'D'),
    ("partition", 'P'),
    ("priority", 'p'),
    ("prioritylong", 'Q'),
    ("qos", 'q'),
    ("reason", 'r'),
    ("reasonlist", 'R'),
    ("reqnodes", 'n'),
    ("schednodes", 'Y'),
    ("starttime", 'S'),
    ("state", 'T'),
    ("statecompact", 't'),
    ("submittime", 'V'),
    ("timeleft", 'L'),
    ("timelimit", 'l'),
    ("timeused", 'M'),
    ("tres-per-node", 'b'),
    ("userid", 'U'),
    ("username", 'u'),
    ("workdir", 'Z'),
];

/// `-O` names printed by their own code rather than a letter's: (name, header).
pub const EXTRA_LONG_NAMES: [(&str, &str); 4] =
    [("stdout", "STDOUT"), ("stderr", "STDERR"), ("exit_code", "EXIT_CODE"), ("numtasks", "NUM_TASKS")];

/// The letter a `-O` name stands for.
pub fn long_name_letter(name: &str) -> Option<char> {
    LONG_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, l)| *l)
}

/// A `-O` name printed by its own code: its value.
pub fn extra_value(name: &str, job: &SlurmJob) -> String {
    match name {
        "stdout" => job.std_out.clone(),
        "stderr" => job.std_err.clone(),
        "exit_code" => job.exit_code.unwrap_or(0).to_string(),
        _ => job.ntasks.to_string(),
    }
}

/// Why a job is not running, as `%r` prints it: the head's reason, or what Slurm says for
/// ended jobs (`NonZeroExitCode`, `TimeLimit`).
pub fn reason(job: &SlurmJob) -> String {
    if !job.reason.is_empty() && job.reason != "None" {
        return job.reason.clone();
    }
    match job.state {
        SlurmJobState::Failed => "NonZeroExitCode".into(),
        SlurmJobState::Timeout => "TimeLimit".into(),
        SlurmJobState::NodeFail => "NodeDown".into(),
        _ => "None".into(),
    }
}

/// Whether `%R` shows the reason (in parentheses) rather than the nodes: print.c's rule.
fn shows_reason(state: SlurmJobState) -> bool {
    matches!(state, SlurmJobState::Pending | SlurmJobState::Timeout | SlurmJobState::Failed)
}

/// The node count squeue prints: the allocation once there is one, else what was asked for.
pub fn node_count(job: &SlurmJob) -> usize {
    if job.nodes.is_empty() {
        job.min_nodes as usize
    } else {
        job.nodes.len()
    }
}

/// The value of letter `letter` for `row` (the caller checked the letter with [`letter_info`]).
pub fn letter_value(letter: char, row: &Row<'_>, now: Timestamp) -> String {
    let job = row.job;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(null)".into());
    match letter {
        'a' => opt(&job.account),
        'A' => job.job_id.to_string(),
        'b' => job.gres.clone().unwrap_or_else(|| "N/A".into()),
        'B' => job.nodes.first().cloned().unwrap_or_else(|| "n/a".into()),
        // The CPUs one node must give, as MinCPUsNode (a node's tasks' with --ntasks-per-node).
        'c' => job.ntasks_per_node.map_or(job.cpus_per_task, |n| n.min(job.ntasks) * job.cpus_per_task).to_string(),
        'h' => if job.exclusive { "NO" } else { "OK" }.to_owned(),
        'C' => job.num_cpus.to_string(),
        'D' => node_count(job).to_string(),
        'e' => match job.end_time {
            Some(t) => iso_time(t),
            None if job.time_limit_s.is_none() && job.state == SlurmJobState::Running => "NONE".into(),
            None => match (job.start_time.or(job.planned_start), job.time_limit_s) {
                (Some(start), Some(limit)) => iso_time(start.plus(std::time::Duration::from_secs(limit))),
                _ => "N/A".into(),
            },
        },
        'E' => opt(&job.dependency),
        'f' => opt(&job.constraint),
        'F' => job.array_job_id.unwrap_or(job.job_id).to_string(),
        'g' | 'G' => job.gid.to_string(),
        'i' => match (&row.tasks, job.array_job_id) {
            (Some(tasks), Some(a)) => format!("{a}_[{tasks}]"),
            _ => job_id_str(job),
        },
        'j' => job.name.clone(),
        'k' => opt(&job.comment),
        'K' => match (&row.tasks, job.array_task_id) {
            (Some(tasks), _) => tasks.clone(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "N/A".into(),
        },
        'l' => job.time_limit_s.map_or_else(|| "UNLIMITED".into(), |s| squeue_secs(s as i64)),
        'L' => match job.time_limit_s {
            None => "UNLIMITED".into(),
            Some(limit) => squeue_secs(limit as i64 - run_secs(job, now) as i64),
        },
        'm' => match (job.mem_per_node_mb, job.mem_per_cpu_mb) {
            // `--mem=0` is all of a node's: squeue shows the 0 as given.
            (Some(0), _) | (None, None) => "0".into(),
            // As given: `4000M` stays so, `16384` is `16G` (squeue converts only whole units).
            (Some(mb), _) | (None, Some(mb)) => mem_str_exact(mb, 1),
        },
        'M' => squeue_secs(run_secs(job, now) as i64),
        'n' => String::new(),
        'N' => nodes_str(&job.nodes),
        'o' => job.command.clone().unwrap_or_else(|| "(null)".into()),
        'P' => job.partition.clone(),
        'q' => opt(&job.qos),
        'r' => reason(job),
        'R' if shows_reason(job.state) => format!("({})", reason(job)),
        'R' => nodes_str(&job.nodes),
        'S' => job.start_time.or(job.planned_start).map_or_else(|| "N/A".into(), iso_time),
        't' => job.state.short().into(),
        'T' => job.state.as_str().into(),
        'u' => job.user.clone(),
        'U' => job.uid.to_string(),
        'V' => iso_time(job.submit_time),
        'Y' if job.sched_nodes.is_empty() => "(null)".into(),
        'Y' => nodes_str(&job.sched_nodes),
        'y' => job.nice.to_string(),
        // Slurm's priority is a 32-bit number; %p is it over the largest.
        'p' => format!("{:.14}", job.priority.unwrap_or(0).max(0) as f64 / f64::from(u32::MAX)),
        'Q' => job.priority.unwrap_or(0).to_string(),
        'Z' => job.work_dir.clone(),
        _ => String::new(),
    }
}

/// Whether `%R` for this row is a node list (never cut) or a reason (cut).
pub fn cut_for(letter: char, row: &Row<'_>) -> Cut {
    match letter {
        'R' if shows_reason(row.job.state) => Cut::Yes,
        _ => letter_info(letter).map_or(Cut::Yes, |(_, c)| c),
    }
}

/// squeue `--json`: roughly Slurm 22.05's `jobs` array (data_parser v0.0.38 names; times in
/// Unix seconds, the time limit in minutes).
pub fn job_json(job: &SlurmJob, now: Timestamp) -> serde_json::Value {
    let secs = |t: Option<Timestamp>| t.map_or(0, |t| t.0.div_euclid(1_000_000));
    serde_json::json!({
        "account": job.account.clone().unwrap_or_default(),
        "array_job_id": job.array_job_id.unwrap_or(0),
        "array_task_id": job.array_task_id,
        "batch_host": job.nodes.first().cloned().unwrap_or_default(),
        "command": job.command.clone().unwrap_or_default(),
        "cpus": job.num_cpus,
        "cpus_per_task": job.cpus_per_task,
        "current_working_directory": job.work_dir,
        "dependency": job.dependency.clone().unwrap_or_default(),
        "eligible_time": secs(job.eligible_time),
        "end_time": secs(job.end_time),
        "exit_code": job.exit_code.unwrap_or(0),
        "features": job.constraint.clone().unwrap_or_default(),
        "group_id": job.gid,
        "job_id": job.job_id,
        "job_state": job.state.as_str(),
        "memory_per_cpu": job.mem_per_cpu_mb,
        "memory_per_node": job.mem_per_node_mb,
        "name": job.name,
        "node_count": node_count(job),
        "nodes": nodes_str(&job.nodes),
        "partition": job.partition,
        "qos": job.qos.clone().unwrap_or_default(),
        "requeue": job.requeue,
        "restart_cnt": job.restarts,
        "run_time": run_secs(job, now),
        "standard_error": job.std_err,
        "standard_output": job.std_out,
        "start_time": secs(job.start_time.or(job.planned_start)),
        "state_reason": reason(job),
        "submit_time": secs(Some(job.submit_time)),
        "tasks": job.ntasks,
        "time_limit": job.time_limit_s.map(|s| s / 60),
        "tres_per_node": job.gres.clone().unwrap_or_default(),
        "user_id": job.uid,
        "user_name": job.user,
    })
}

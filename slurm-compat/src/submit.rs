//! `sbatch`: resolve the command line and the script's `#SBATCH` lines, capture what the job
//! takes from here (environment per `--export`, directories, user, host, `--begin` made
//! absolute in local time), and submit it in one request. Anything malformed fails here,
//! before the head is asked, with sbatch's own messages.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::slurm::{SlurmArray, SlurmCondition, SlurmDependency, SlurmJob, SlurmSubmit};
use gangway_api::Timestamp;

use crate::begin::{BeginTime, CivilTime};
use crate::cluster;
use crate::dependency::{ArrayTask, Combine, Condition, Dependencies};
use crate::step::Failure;
use crate::{resolve_command_line, resolve_source, split_command_line, Resolved, SlurmError};

/// Runs `sbatch ARGS…`.
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        // A mistake in the options exits 255, as Slurm's sbatch does; a refused submission 1.
        Err(Failure::Usage(msg)) => {
            gangway_api::errln!("{msg}");
            ExitCode::from(255)
        }
        Err(Failure::Other(msg)) => {
            gangway_api::errln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, Failure> {
    let resolved = resolve_args(args).map_err(|e| match e {
        // Slurm's controller, not sbatch, refuses these: "Batch job submission failed", exit 1.
        SlurmError::Array(_) | SlurmError::Dependency(_) => Failure::Other(render(&e)),
        SlurmError::NodeCount { value } if value.parse::<u64>() == Ok(0) => {
            Failure::Other("sbatch: error: Batch job submission failed: Node count specification invalid".into())
        }
        _ => Failure::Usage(render(&e)),
    })?;
    // Slurm's own warnings always; what gangway notes beyond them (options it accepts but
    // ignores, lines Slurm skips silently) with -v.
    let shown = if resolved.submit.verbose > 0 { &resolved.warnings } else { &resolved.submit.slurm_warnings };
    for w in shown {
        gangway_api::errln!("sbatch: warning: {w}");
    }
    let cwd = std::env::current_dir().map_err(|e| format!("sbatch: error: getcwd failed: {e}"))?;
    let script_path = split_command_line(args).ok().and_then(|c| c.script);
    let req = build_request(&resolved, &cwd, script_path.as_deref()).map_err(Failure::Usage)?;
    let mut client = cluster::connect("sbatch")?;
    let submitted = client.slurm_submit(&req).map_err(|e| submit_error(&e))?;
    if let Some(t) = submitted.test_only {
        gangway_api::errln!(
            "sbatch: Job {} to start at {} using {} processors on nodes {} in partition {}",
            submitted.job_id,
            local_time(t.start_time),
            t.processors,
            t.nodes,
            t.partition
        );
        return Ok(ExitCode::SUCCESS);
    }
    if resolved.submit.parsable {
        gangway_api::outln!("{}", submitted.job_id);
    } else {
        gangway_api::outln!("Submitted batch job {}", submitted.job_id);
    }
    if resolved.submit.wait {
        return Ok(wait(&mut client, submitted.job_id)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole command line, or the script from standard input when none is named.
fn resolve_args(args: &[String]) -> Result<Resolved, SlurmError> {
    let read = |path: &str| std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    match resolve_command_line(args, read) {
        Err(SlurmError::NoScript) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|source| SlurmError::ReadScript { path: "-".into(), source })?;
            resolve_source(Some(("sbatch", &text)), &split_command_line(args)?.options)
        }
        r => r,
    }
}

fn render(e: &SlurmError) -> String {
    match e.detail() {
        Some(d) => format!("{}\n  ({d})", e.render("sbatch")),
        None => e.render("sbatch"),
    }
}

/// sbatch's words for the controller's refusals.
pub(crate) fn submit_error(e: &gangway_api::client::ClientError) -> String {
    let why = match cluster::code(e) {
        Some("InvalidPartition") => {
            return format!(
                "sbatch: error: {}\nsbatch: error: Batch job submission failed: Invalid partition name specified",
                cluster::message(e)
            )
        }
        Some("NodeConfigUnavailable") => {
            // Slurm's last line, after one that says what could not be met.
            let detail = cluster::message(e);
            let detail = detail.trim_start_matches("Requested node configuration is not available: ");
            return format!(
                "sbatch: error: {detail}\nsbatch: error: Batch job submission failed: Requested node configuration is not available"
            );
        }
        Some("MemorySpecificationUnsatisfiable") => {
            // Slurm's two lines, then what exactly (gangway's).
            let detail = cluster::message(e);
            let detail = detail.trim_start_matches("Memory specification can not be satisfied: ");
            return format!(
                "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available\n  ({detail})"
            );
        }
        _ => cluster::message(e),
    };
    format!("sbatch: error: Batch job submission failed: {why}")
}

/// The uid and gid to submit as: the caller's, or `--uid` (a name or a number; its primary
/// group unless `--gid` names one). Only an admin may name another user; the head checks.
fn submit_ids(uid: Option<&str>, gid: Option<&str>) -> Result<(u32, u32), String> {
    use gangway_api::users;
    let (mut ids_uid, mut ids_gid) = cluster::ids();
    if let Some(u) = uid {
        ids_uid = u.parse().ok().or_else(|| users::user_id(u)).ok_or_else(|| format!("Invalid user id: {u}"))?;
        ids_gid = users::primary_group(ids_uid).unwrap_or(ids_gid);
    }
    if let Some(g) = gid {
        ids_gid = g.parse().ok().or_else(|| users::group_id(g)).ok_or_else(|| format!("Invalid group id: {g}"))?;
    }
    Ok((ids_uid, ids_gid))
}

/// The request for `resolved`, submitted from `cwd`.
pub fn build_request(resolved: &Resolved, cwd: &Path, script: Option<&str>) -> Result<SlurmSubmit, String> {
    let sub = &resolved.submit;
    let (uid, gid) = submit_ids(sub.uid.as_deref(), sub.gid.as_deref())?;
    let cwd_s = cwd.to_string_lossy().into_owned();
    let absolute = |p: &str| if p.starts_with('/') { p.to_owned() } else { cwd.join(p).to_string_lossy().into_owned() };
    let work_dir = resolved.chdir.as_deref().map_or_else(|| cwd_s.clone(), absolute);
    let begin = sub.begin.map(absolute_begin).transpose()?;
    Ok(SlurmSubmit {
        partition: resolved.partition.clone(),
        name: resolved.name.clone(),
        user: String::new(),
        uid,
        gid,
        account: resolved.account.clone(),
        qos: resolved.qos.clone(),
        constraint: resolved.constraint.clone(),
        script: sub.script.clone(),
        script_args: sub.script_args.clone(),
        command: script.filter(|_| sub.wrap.is_none()).map(absolute),
        work_dir,
        submit_dir: cwd_s,
        submit_host: cluster::short_hostname(),
        output: resolved.output.clone(),
        error: Some(resolved.error.clone()).filter(|e| *e != resolved.output),
        env: export_env(resolved),
        nodes: resolved.nodes.min,
        max_nodes: resolved.nodes.max,
        ntasks: resolved.ntasks,
        ntasks_given: sub.ntasks_given,
        ntasks_per_node: resolved.ntasks_per_node,
        cpus_per_task: resolved.cpus_per_task,
        cpus_given: sub.cpus_given,
        mem_per_node_mb: resolved.mem_mb.and_then(|m| m.per_node),
        mem_per_cpu_mb: resolved.mem_mb.and_then(|m| m.per_cpu),
        mem_per_gpu_mb: resolved.mem_mb.and_then(|m| m.per_gpu),
        cpus_per_gpu: resolved.cpus_per_gpu,
        gres: resolved.gpus.as_ref().map(|g| {
            let n = g.per_node.or(g.per_job).or(g.per_task).unwrap_or(0);
            match &g.gpu_type {
                Some(t) => format!("gres/gpu:{t}:{n}"),
                None => format!("gres/gpu:{n}"),
            }
        }),
        task_layout: Vec::new(),
        gpus_per_node: resolved.gpus.as_ref().and_then(|g| g.per_node),
        gpus_per_task: resolved.gpus.as_ref().and_then(|g| g.per_task),
        gpus: resolved.gpus.as_ref().and_then(|g| g.per_job),
        gpu_type: resolved.gpus.as_ref().and_then(|g| g.gpu_type.clone()),
        time_limit_s: resolved.time_limit_s,
        begin,
        hold: sub.hold,
        dependency: resolved.dependencies.as_ref().map(dependency),
        kill_on_invalid_dep: sub.kill_on_invalid_dep,
        array: resolved.array.as_ref().map(|a| SlurmArray { indices: a.indices.clone(), max_running: a.max_running }),
        requeue: sub.requeue.unwrap_or(true),
        nice: sub.nice,
        comment: sub.comment.clone(),
        threads_per_core: sub.threads_per_core,
        exclusive: resolved.exclusive,
        test_only: sub.test_only,
    })
}

/// The environment the job starts with: this one (`ALL`) or none, plus `--export`'s list.
fn export_env(resolved: &Resolved) -> Vec<(String, String)> {
    let here = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let mut env = resolved.export.apply(here, |_| false);
    if let Some(g) = &resolved.gpus {
        env.extend(g.env());
    }
    env
}

fn dependency(d: &Dependencies) -> SlurmDependency {
    let conditions = d
        .conditions
        .iter()
        .map(|c| match c {
            Condition::Singleton => {
                SlurmCondition { kind: "singleton".into(), job_id: None, array_task: None, delay_minutes: None }
            }
            Condition::After { kind, job, delay_minutes } => SlurmCondition {
                kind: kind.as_str().into(),
                job_id: Some(u64::from(job.job_id)),
                array_task: match job.array_task {
                    Some(ArrayTask::Index(i)) => Some(i),
                    Some(ArrayTask::All) | None => None,
                },
                delay_minutes: *delay_minutes,
            },
        })
        .collect();
    SlurmDependency { text: d.to_string(), any: d.combine == Combine::Any, conditions }
}

/// `--begin` as an absolute time, local times read in this host's time zone.
fn absolute_begin(b: BeginTime) -> Result<Timestamp, String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let secs = match b {
        BeginTime::Epoch(s) => s,
        BeginTime::Relative(d) => now.saturating_add(d),
        local => {
            let at = local.at(civil_now(now)).ok_or("sbatch: error: Invalid time specification")?;
            to_epoch(at)
        }
    };
    Ok(Timestamp(secs.saturating_mul(1_000_000)))
}

fn civil_now(now: i64) -> CivilTime {
    // SAFETY: localtime_r fills `tm` from a valid time_t.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&(now as libc::time_t), &mut tm);
        tm
    };
    CivilTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u8,
        day: tm.tm_mday as u8,
        hour: tm.tm_hour as u8,
        minute: tm.tm_min as u8,
        second: tm.tm_sec as u8,
    }
}

fn to_epoch(t: CivilTime) -> i64 {
    // SAFETY: mktime reads and normalises a tm we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = t.year - 1900;
        tm.tm_mon = i32::from(t.month) - 1;
        tm.tm_mday = i32::from(t.day);
        tm.tm_hour = i32::from(t.hour);
        tm.tm_min = i32::from(t.minute);
        tm.tm_sec = i32::from(t.second);
        tm.tm_isdst = -1;
        libc::mktime(&mut tm) as i64
    }
}

/// A timestamp as Slurm prints times: local, `YYYY-MM-DDTHH:MM:SS`.
pub fn local_time(t: Timestamp) -> String {
    let c = civil_now(t.0.div_euclid(1_000_000));
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `-W`: waits for the job (every element of an array) to end; exits with its exit code.
fn wait(client: &mut Client, id: u64) -> Result<ExitCode, String> {
    // The head has no push channel for clients; polling backs off to 200 ms, which only
    // costs this waiting process.
    let mut delay = Duration::from_millis(5);
    // On a terminal, a line says how the job stands while it waits and runs.
    let mut progress = gangway_api::out::Progress::new();
    loop {
        let jobs = client.slurm_jobs().map_err(|e| format!("sbatch: error: {}", cluster::message(&e)))?;
        let mine: Vec<&SlurmJob> = jobs.jobs.iter().filter(|j| j.job_id == id || j.array_job_id == Some(id)).collect();
        if !mine.is_empty() && mine.iter().all(|j| j.state.is_finished()) {
            progress.clear();
            let code = mine.iter().map(|j| exit_status(j)).max().unwrap_or(0);
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        if let Some(j) = mine.iter().find(|j| !j.state.is_finished()) {
            let reason =
                if j.reason.is_empty() || j.reason == "None" { String::new() } else { format!(" ({})", j.reason) };
            let s = progress.elapsed_s();
            progress.show(&format!("sbatch: job {id} is {}{reason} ({s} s)", j.state.as_str()));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

pub(crate) fn exit_status(j: &SlurmJob) -> i32 {
    match (j.exit_code, j.signal) {
        (_, Some(sig)) => 128 + sig,
        (Some(c), None) if c != 0 => c,
        _ if j.state == gangway_api::slurm::SlurmJobState::Completed => 0,
        (Some(c), None) => c.max(1),
        (None, None) => 1,
    }
}

//! The read and write commands: submit, job, task, node, pool, wait, status.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context};
use gangway_api::client::{Client, ClientError, ListOptions};
use gangway_api::cmdline::join_command_line;
use gangway_api::*;
use serde::Serialize;

use super::table::{opt, render};

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    gangway_api::outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn lower<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Options of `gangway submit`.
pub struct Submit {
    pub pool: Option<String>,
    pub job: Option<String>,
    pub name: Option<String>,
    pub time: Option<Duration>,
    pub retries: Option<i32>,
    pub slots: Option<u32>,
    /// Exclusive CPUs, memory and GPUs.
    pub resources: Option<TaskResources>,
    pub tasks: u32,
    /// Instances of a multi-instance task (one per node).
    pub nodes: Option<u32>,
    /// Its coordination command line.
    pub coordination: Option<String>,
    /// Managed MPI ranks on the node.
    pub mpi: Option<MpiSettings>,
    /// Stored files (`gangway file put`) to put in its working directory.
    pub files: Vec<String>,
    /// Who it runs as, when not the job's owner.
    pub user_identity: Option<gangway_api::UserIdentity>,
    /// `--depends-on`: task ids and integer ranges of the job, comma-separated.
    pub depends_on: Option<String>,
    /// `--keep-open`: a new job does not end with its tasks.
    pub keep_open: bool,
    pub wait: bool,
    pub command: Vec<String>,
}

/// `prep,1-100`: task ids, and integer ranges `A-B`.
fn parse_depends_on(s: &str) -> anyhow::Result<gangway_api::TaskDependencies> {
    let mut d = gangway_api::TaskDependencies::default();
    for part in s.split(',').map(str::trim) {
        let range = part.split_once('-').and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)));
        match range {
            Some((start, end)) => d.task_id_ranges.push(gangway_api::TaskIdRange { start, end }),
            None if part.is_empty() => bail!("--depends-on '{s}' has an empty entry"),
            None => d.task_ids.push(part.to_owned()),
        }
    }
    Ok(d)
}

fn new_job_id() -> String {
    format!("job-{}", gangway_api::common::random_hex(4).unwrap_or_else(|_| "00000000".into()))
}

/// Creates a job with one task (or adds a task to `--job`); prints the job id.
pub fn submit(c: &mut Client, s: Submit) -> anyhow::Result<i32> {
    if s.command.is_empty() {
        bail!("nothing to run: give the command after `--`, e.g. gangway submit -- /bin/hostname");
    }
    let constraints = TaskConstraints {
        max_wall_clock_time: s.time.map(IsoDuration),
        retention_time: None,
        max_task_retry_count: s.retries,
    };
    let mut task = TaskAddParameter {
        id: "1".into(),
        display_name: s.name.clone(),
        command_line: join_command_line(&s.command),
        environment_settings: Vec::new(),
        constraints: Some(constraints),
        required_slots: s.slots,
        resource_files: s
            .files
            .iter()
            .map(|name| gangway_api::ResourceFile {
                file_path: name.clone(),
                uploaded_file: Some(name.clone()),
                ..Default::default()
            })
            .collect(),
        mpi: s.mpi.clone(),
        resources: s.resources.clone(),
        multi_instance_settings: s.nodes.map(|n| MultiInstanceSettings {
            number_of_instances: n,
            coordination_command_line: s.coordination.clone(),
            common_resource_files: Vec::new(),
        }),
        user_identity: s.user_identity.clone(),
        depends_on: s.depends_on.as_deref().map(parse_depends_on).transpose()?,
        exit_conditions: None,
        output_files: Vec::new(),
        application_package_references: Vec::new(),
    };
    if s.coordination.is_some() && s.nodes.is_none() {
        bail!("--coordination needs --nodes N (it runs on every instance of a multi-instance task)");
    }
    if s.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    let existing = match &s.job {
        Some(id) => match c.get_job(id) {
            Ok(_) => true,
            Err(e) if e.status() == Some(404) => false,
            Err(e) => return Err(e.into()),
        },
        None => false,
    };
    let job_id = s.job.clone().unwrap_or_else(new_job_id);
    if existing && s.pool.is_some() {
        bail!("--pool cannot change the pool of existing job '{job_id}'");
    }
    let first = if existing { c.list_tasks(&job_id, &ListOptions::default())?.len() as u64 + 1 } else { 1 };
    let ids: Vec<String> = (first..first + s.tasks as u64).map(|i| i.to_string()).collect();
    if !existing {
        c.add_job(&JobAddParameter {
            id: job_id.clone(),
            display_name: s.name.clone(),
            pool_info: s.pool.clone().map(|pool_id| PoolInformation { pool_id }),
            // So that later tasks (`--job ID --depends-on …`) may wait for these.
            uses_task_dependencies: Some(true),
            ..Default::default()
        })?;
    }
    for chunk in ids.chunks(100) {
        let batch = chunk.iter().map(|id| TaskAddParameter { id: id.clone(), ..task.clone() }).collect();
        let refused: Vec<String> = match c.add_task_collection(&job_id, batch) {
            Ok(r) => r
                .value
                .into_iter()
                .filter_map(|x| x.error.map(|e| format!("task {}: {}", x.task_id, e.message.value)))
                .collect(),
            Err(e) => vec![e.to_string()],
        };
        if !refused.is_empty() {
            if !existing {
                // Leave nothing half-submitted.
                let _ = c.delete_job(&job_id);
            }
            bail!("the head refused the submission: {}", refused.join("; "));
        }
    }
    if !existing && !s.keep_open {
        // Like a Slurm job, a submitted job ends when its tasks have.
        let patch = serde_json::json!({"onAllTasksComplete": "terminatejob"});
        c.patch_job(&job_id, &patch)?;
    }
    task.id = ids[0].clone();
    gangway_api::outln!("{job_id}");
    std::io::stdout().flush()?;
    if !s.wait {
        return Ok(0);
    }
    if s.tasks == 1 {
        let t = wait_task(c, &job_id, &task.id)?;
        return Ok(exit_status(&t));
    }
    wait(c, &job_id)
}

fn exit_status(t: &Task) -> i32 {
    match (t.execution_info.exit_code, t.execution_info.result) {
        (_, Some(TaskExecutionResult::Success)) => 0,
        (Some(0) | None, _) => 1,
        (Some(code), _) => code,
    }
}

fn backoff(step: &mut u64) {
    std::thread::sleep(Duration::from_millis(*step));
    *step = (*step * 2).min(200);
}

fn wait_task(c: &mut Client, job: &str, task: &str) -> anyhow::Result<Task> {
    let mut step = 5;
    loop {
        let t = c.get_task(job, task)?;
        if t.state == TaskState::Completed {
            return Ok(t);
        }
        backoff(&mut step);
    }
}

/// `gangway wait JOB`: 0 when every task succeeded, else the first failing task's exit code.
pub fn wait(c: &mut Client, job: &str) -> anyhow::Result<i32> {
    let mut step = 5;
    // On a terminal, a line says how the job stands while it runs.
    let mut progress = gangway_api::out::Progress::new();
    loop {
        let j = c.get_job(job)?;
        let tasks = c.list_tasks(job, &ListOptions::default())?;
        let done = tasks.iter().all(|t| t.state == TaskState::Completed);
        if (done && !tasks.is_empty()) || j.state == JobState::Completed {
            progress.clear();
            let failed = tasks.iter().find(|t| t.execution_info.result != Some(TaskExecutionResult::Success));
            return Ok(failed.map_or(0, exit_status));
        }
        let count = |s: TaskState| tasks.iter().filter(|t| t.state == s).count();
        let (waiting, running) = (count(TaskState::Active) + count(TaskState::Preparing), count(TaskState::Running));
        let finished = count(TaskState::Completed);
        let s = progress.elapsed_s();
        progress.show(&format!(
            "gangway: waiting for job {job}: {waiting} waiting, {running} running, {finished} done ({s} s)"
        ));
        backoff(&mut step);
    }
}

/// `gangway job list|show|terminate|delete`.
pub fn job(c: &mut Client, action: &str, id: Option<&str>, json: bool) -> anyhow::Result<()> {
    let need = || id.context("this command needs a job id");
    match action {
        "list" => {
            let jobs = c.list_jobs(&ListOptions::default())?;
            if json {
                return print_json(&jobs);
            }
            let mut rows = Vec::new();
            for j in &jobs {
                let counts = c.task_counts(&j.id).map(|r| r.task_counts).unwrap_or_default();
                rows.push(vec![
                    j.id.clone(),
                    lower(&j.state),
                    j.pool_info.pool_id.clone(),
                    j.priority.to_string(),
                    counts.active.to_string(),
                    counts.running.to_string(),
                    counts.succeeded.to_string(),
                    counts.failed.to_string(),
                ]);
            }
            gangway_api::out!(
                "{}",
                render(&["JOB", "STATE", "POOL", "PRIORITY", "ACTIVE", "RUNNING", "SUCCEEDED", "FAILED"], &rows)
            );
        }
        "show" => {
            let j = c.get_job(need()?)?;
            if json {
                return print_json(&j);
            }
            let counts = c.task_counts(&j.id)?.task_counts;
            gangway_api::outln!("Job:        {}", j.id);
            gangway_api::outln!("State:      {}", lower(&j.state));
            gangway_api::outln!("Pool:       {}", j.pool_info.pool_id);
            gangway_api::outln!("Priority:   {}", j.priority);
            gangway_api::outln!("Created:    {}", j.creation_time);
            gangway_api::outln!("Ended:      {}", opt(j.execution_info.end_time));
            gangway_api::outln!("Reason:     {}", opt(j.execution_info.terminate_reason.as_ref()));
            gangway_api::outln!(
                "Tasks:      {} active, {} running, {} succeeded, {} failed",
                counts.active,
                counts.running,
                counts.succeeded,
                counts.failed
            );
            // Where its preparation and release tasks ran, and how.
            let how = |x: &Option<gangway_api::JobPrepReleaseExecution>| match x {
                None => "-".to_owned(),
                Some(x) => match (x.state, x.exit_code) {
                    (gangway_api::JobPrepReleaseState::Running, _) => "running".to_owned(),
                    (_, Some(code)) => format!("exit {code}"),
                    (_, None) => x.failure_info.as_ref().map_or_else(|| "ended".to_owned(), |f| f.code.clone()),
                },
            };
            for e in &j.prep_release {
                gangway_api::outln!(
                    "Node {}: preparation {}, release {}",
                    e.node_id,
                    how(&e.job_preparation_task_execution_info),
                    how(&e.job_release_task_execution_info)
                );
            }
        }
        "terminate" => {
            c.terminate_job(need()?, None)?;
            gangway_api::errln!("job {} terminating", need()?);
        }
        "delete" => {
            c.delete_job(need()?)?;
            gangway_api::errln!("job {} deleted", need()?);
        }
        "disable" => {
            c.disable_job(need()?, gangway_api::DisableJobOption::Requeue)?;
            gangway_api::errln!("job {} disabled (its running tasks requeued)", need()?);
        }
        "enable" => {
            c.enable_job(need()?)?;
            gangway_api::errln!("job {} enabled", need()?);
        }
        other => bail!("unknown job command '{other}'"),
    }
    Ok(())
}

/// `gangway task list|show|logs|terminate`.
pub fn task(
    c: &mut Client,
    action: &str,
    job: &str,
    task: Option<&str>,
    json: bool,
    stderr: bool,
    follow: bool,
) -> anyhow::Result<()> {
    let need = || task.context("this command needs a task id");
    match action {
        "list" => {
            let tasks = c.list_tasks(job, &ListOptions::default())?;
            if json {
                return print_json(&tasks);
            }
            let rows: Vec<_> = tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        lower(&t.state),
                        opt(t.node_info.as_ref().map(|n| &n.node_id)),
                        opt(t.execution_info.exit_code),
                        t.execution_info.retry_count.to_string(),
                        t.command_line.clone(),
                    ]
                })
                .collect();
            gangway_api::out!("{}", render(&["TASK", "STATE", "NODE", "EXIT", "RETRIES", "COMMAND"], &rows));
        }
        "show" => {
            let t = c.get_task(job, need()?)?;
            if json {
                return print_json(&t);
            }
            let e = &t.execution_info;
            gangway_api::outln!("Task:       {} (job {job})", t.id);
            gangway_api::outln!("State:      {}", lower(&t.state));
            gangway_api::outln!("Command:    {}", t.command_line);
            gangway_api::outln!("Node:       {}", opt(t.node_info.as_ref().map(|n| &n.node_id)));
            if let Some(p) = &t.planned_start {
                gangway_api::outln!("Planned:    {} on {}", p.start_time, p.nodes.join(","));
            }
            gangway_api::outln!("Started:    {}", opt(e.start_time));
            gangway_api::outln!("Ended:      {}", opt(e.end_time));
            gangway_api::outln!("Exit code:  {}", opt(e.exit_code));
            gangway_api::outln!("Result:     {}", opt(e.result.map(|r| lower(&r))));
            gangway_api::outln!("Retries:    {}   Requeues: {}", e.retry_count, e.requeue_count);
            if let Some(f) = &e.failure_info {
                gangway_api::outln!("Failure:    {} ({}): {}", f.code, lower(&f.category), f.message);
            }
        }
        "logs" => {
            let tid = need()?;
            let file = if stderr { "stderr.txt" } else { "stdout.txt" };
            let mut offset = 0u64;
            let mut step = 20;
            loop {
                let done = !follow || c.get_task(job, tid)?.state == TaskState::Completed;
                let data = match c.get_task_file(job, tid, file, offset) {
                    Ok(d) => d,
                    Err(e) if follow && matches!(e.status(), Some(404 | 503)) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                offset += data.len() as u64;
                std::io::stdout().write_all(&data)?;
                std::io::stdout().flush()?;
                if done && data.is_empty() {
                    return Ok(());
                }
                if data.is_empty() {
                    backoff(&mut step);
                } else {
                    step = 20;
                }
            }
        }
        "terminate" => {
            c.terminate_task(job, need()?)?;
            gangway_api::errln!("task {} of job {job} terminated", need()?);
        }
        "reactivate" => {
            c.reactivate_task(job, need()?)?;
            gangway_api::errln!("task {} of job {job} reactivated", need()?);
        }
        "delete" => {
            c.delete_task(job, need()?)?;
            gangway_api::errln!("task {} of job {job} deleted", need()?);
        }
        other => bail!("unknown task command '{other}'"),
    }
    Ok(())
}

fn gib(bytes: u64) -> String {
    format!("{:.1}G", bytes as f64 / (1u64 << 30) as f64)
}

/// `--option` of `gangway node disable|remove`.
pub fn deallocation_option(s: &str) -> anyhow::Result<ComputeNodeDeallocationOption> {
    serde_json::from_value(serde_json::Value::from(s))
        .with_context(|| format!("--option '{s}' is not valid; use requeue, terminate or taskcompletion"))
}

/// `gangway node list|show|disable|enable|remove`.
pub fn node(
    c: &mut Client,
    action: &str,
    id: Option<&str>,
    json: bool,
    option: Option<ComputeNodeDeallocationOption>,
) -> anyhow::Result<()> {
    let need = || id.context("this command needs a node id");
    if option.is_some() && !matches!(action, "disable" | "remove") {
        bail!("--option applies only to `node disable` and `node remove`");
    }
    match action {
        "list" => {
            let nodes = c.list_nodes(None)?;
            if json {
                return print_json(&nodes);
            }
            let rows: Vec<_> = nodes
                .iter()
                .map(|n| {
                    vec![
                        n.id.clone(),
                        n.pool_id.clone(),
                        lower(&n.state),
                        lower(&n.scheduling_state),
                        n.ip_address.clone(),
                        // Used/total: what running tasks' allocations hold.
                        format!("{}/{}", n.allocated.cpus, n.resources.cpus),
                        format!("{}/{}", gib(n.allocated.memory_mib << 20), gib(n.resources.memory_bytes)),
                        format!("{}/{}", n.allocated.gpus.len(), n.resources.gpus.len()),
                        n.running_tasks_count.to_string(),
                    ]
                })
                .collect();
            gangway_api::out!(
                "{}",
                render(&["NODE", "POOL", "STATE", "SCHEDULING", "ADDRESS", "CPUS", "MEMORY", "GPUS", "RUNNING"], &rows)
            );
        }
        "show" => {
            let n = c.get_node(id.context("this command needs a node id")?)?;
            if json {
                return print_json(&n);
            }
            gangway_api::outln!("Node:       {}", n.id);
            gangway_api::outln!("Pool:       {}", n.pool_id);
            gangway_api::outln!("State:      {} (scheduling {})", lower(&n.state), lower(&n.scheduling_state));
            gangway_api::outln!("Address:    {}", n.ip_address);
            gangway_api::outln!(
                "Resources:  {} CPUs, {} cores, {} memory",
                n.resources.cpus,
                n.resources.cores,
                gib(n.resources.memory_bytes)
            );
            for g in &n.resources.gpus {
                gangway_api::outln!("GPU {}:      {} {} {}", g.index, g.name, g.uuid, g.pci_bus_id);
            }
            gangway_api::outln!("Tasks run:  {} ({} succeeded)", n.total_tasks_run, n.total_tasks_succeeded);
            for t in &n.recent_tasks {
                gangway_api::outln!("Running:    {}/{}", t.job_id, t.task_id);
            }
            if let (Some(st), info) = (&n.start_task, &n.start_task_info) {
                gangway_api::outln!("Start task: {}", st.command_line);
                match info {
                    None => gangway_api::outln!("            not started yet"),
                    Some(i) => gangway_api::outln!(
                        "            {} (result {}, exit code {}, {} retries)",
                        lower(&i.state),
                        opt(i.result.map(|r| lower(&r))),
                        opt(i.exit_code),
                        i.retry_count
                    ),
                }
            }
        }
        "disable" | "enable" | "remove" => {
            // The pool paths are Azure's; the node's own record says which pool it is in.
            let node = need()?;
            let pool = c.get_node(node)?.pool_id;
            match action {
                "disable" => {
                    c.disable_node_scheduling(&pool, node, option)?;
                    gangway_api::errln!("node {node}: scheduling disabled");
                }
                "enable" => {
                    c.enable_node_scheduling(&pool, node)?;
                    gangway_api::errln!("node {node}: scheduling enabled");
                }
                _ => {
                    c.remove_nodes(&pool, &[node.to_owned()], option)?;
                    gangway_api::errln!("node {node} is leaving pool {pool}");
                }
            }
        }
        other => bail!("unknown node command '{other}'"),
    }
    Ok(())
}

/// Options of `gangway pool create`.
pub struct PoolCreate {
    pub slots: Option<u32>,
    /// MiB per CPU of tasks that name CPUs but no memory.
    pub default_mem_per_cpu: Option<u64>,
    /// What srun serves a step that names no `--mpi`.
    pub mpi_default: Option<String>,
    pub fill: Option<NodeFillType>,
    pub backfill: Option<gangway_api::Backfill>,
    pub reservations: Option<u32>,
    pub order: Option<gangway_api::QueueOrder>,
    pub default_time: Option<gangway_api::IsoDuration>,
    pub max_time: Option<gangway_api::IsoDuration>,
    pub inter_node: bool,
    pub start_task: Option<StartTask>,
}

/// `gangway pool list|show|create|delete`.
pub fn pool(c: &mut Client, action: &str, id: Option<&str>, json: bool, create: PoolCreate) -> anyhow::Result<()> {
    let need = || id.context("this command needs a pool id");
    match action {
        "list" => {
            let pools = c.list_pools()?;
            if json {
                return print_json(&pools);
            }
            let rows: Vec<_> = pools
                .iter()
                .map(|p| {
                    vec![
                        p.id.clone(),
                        lower(&p.state),
                        p.current_dedicated_nodes.to_string(),
                        p.task_slots_per_node.to_string(),
                        lower(&p.task_scheduling_policy.node_fill_type),
                        p.enable_inter_node_communication.to_string(),
                    ]
                })
                .collect();
            gangway_api::out!("{}", render(&["POOL", "STATE", "NODES", "SLOTS/NODE", "FILL", "INTER-NODE"], &rows));
        }
        "show" => {
            let p = c.get_pool(need()?)?;
            if json {
                return print_json(&p);
            }
            gangway_api::outln!("Pool:       {}", p.id);
            gangway_api::outln!("State:      {}", lower(&p.state));
            gangway_api::outln!("Nodes:      {}", p.current_dedicated_nodes);
            gangway_api::outln!("Slots/node: {}", p.task_slots_per_node);
            gangway_api::outln!("Fill:       {}", lower(&p.task_scheduling_policy.node_fill_type));
            let policy = &p.task_scheduling_policy;
            match (policy.backfill.unwrap_or_default(), policy.reservations) {
                (gangway_api::Backfill::Conservative, n) => {
                    gangway_api::outln!(
                        "Backfill:   conservative ({} reservations)",
                        n.unwrap_or(gangway_runner::scheduler::DEFAULT_RESERVATIONS)
                    )
                }
                (b, _) => gangway_api::outln!("Backfill:   {}", lower(&b)),
            }
            gangway_api::outln!("Order:      {}", lower(&policy.order.unwrap_or_default()));
            let limit = |d: Option<gangway_api::IsoDuration>| d.map_or_else(|| "none".to_owned(), |d| d.to_string());
            gangway_api::outln!("Time limit: default {}, max {}", limit(p.default_time_limit), limit(p.max_time_limit));
            gangway_api::outln!("Inter-node: {}", p.enable_inter_node_communication);
            if let Some(st) = &p.start_task {
                gangway_api::outln!(
                    "Start task: {} (wait for success: {}, retries: {})",
                    st.command_line,
                    st.wait_for_success,
                    st.max_task_retry_count
                );
            }
        }
        "create" => {
            c.add_pool(&PoolAddParameter {
                id: need()?.to_owned(),
                display_name: None,
                task_slots_per_node: create.slots,
                default_memory_per_cpu_mib: create.default_mem_per_cpu,
                mpi_default: create.mpi_default,
                task_scheduling_policy: (create.fill.is_some() || create.backfill.is_some() || create.order.is_some())
                    .then(|| TaskSchedulingPolicy {
                        node_fill_type: create.fill.unwrap_or_default(),
                        backfill: create.backfill,
                        max_tasks_examined: None,
                        reservations: create.reservations,
                        order: create.order,
                    }),
                enable_inter_node_communication: create.inter_node,
                start_task: create.start_task,
                default_time_limit: create.default_time,
                max_time_limit: create.max_time,
                application_package_references: Vec::new(),
            })?;
            gangway_api::errln!("pool {} created", need()?);
        }
        "delete" => {
            c.delete_pool(need()?)?;
            gangway_api::errln!("pool {} deleted", need()?);
        }
        other => bail!("unknown pool command '{other}'"),
    }
    Ok(())
}

/// `gangway status`: one screen about the cluster.
pub fn status(c: &mut Client, url: &str, json: bool) -> Result<(), ClientError> {
    let nodes = c.list_nodes(None)?;
    let jobs = c.list_jobs(&ListOptions::default())?;
    let mut totals = TaskCounts::default();
    for j in &jobs {
        let t = c.task_counts(&j.id)?.task_counts;
        totals.active += t.active;
        totals.running += t.running;
        totals.succeeded += t.succeeded;
        totals.failed += t.failed;
        totals.completed += t.completed;
    }
    if json {
        let v = serde_json::json!({"url": url, "nodes": nodes.len(), "jobs": jobs.len(), "tasks": totals});
        gangway_api::outln!("{v}");
        return Ok(());
    }
    gangway_api::outln!("Cluster:  {url}");
    let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
    gangway_api::outln!(
        "Nodes:    {} ({} idle, {} running, {} unusable/unknown)",
        nodes.len(),
        count(NodeState::Idle),
        count(NodeState::Running),
        count(NodeState::Unusable) + count(NodeState::Unknown)
    );
    let active_jobs = jobs.iter().filter(|j| j.state == JobState::Active).count();
    gangway_api::outln!("Jobs:     {} ({} active)", jobs.len(), active_jobs);
    gangway_api::outln!(
        "Tasks:    {} active, {} running, {} succeeded, {} failed",
        totals.active,
        totals.running,
        totals.succeeded,
        totals.failed
    );
    Ok(())
}

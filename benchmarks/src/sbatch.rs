//! sbatch end to end: starts `gangway up --nodes N --detach`, runs `--jobs` invocations of the
//! real `gangway-slurm sbatch --parsable --wrap=true` binary from `--submitters` threads at
//! once, waits until every job has ended, and reports jobs per second (first submit to last
//! job end) and the latency of one sbatch process (spawn to exit, which includes the
//! durable submit).
//!
//! `cargo build --release -p gangway-benchmarks -p gangway-runner -p gangway-launcher -p gangway-slurm --bins &&
//! target/release/gangway-sbatch-bench [--jobs 1000] [--submitters 4] [--nodes 1] [--slots-per-node N]
//! [--nodes-dir DIR] [--as-user NAME]`
//!
//! With `--as-user` (run as root; the user must exist: `useradd gwbench`) every sbatch runs as
//! that user, who reaches the head through its socket with no token (the kernel names them),
//! and the jobs run as that user: authentication and run-as-user on. Without it, sbatch runs as
//! the caller with the admin token from `client.json`.
//!
//! The head's state (and its fsyncs) live in `$TMPDIR`; `--nodes-dir` puts the nodes' task
//! directories and the jobs' `slurm-N.out` files elsewhere (a scratch such as /dev/shm).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::client::{Client, ClientConfig};
use gangway_api::slurm::SlurmJobState;
use gangway_api::Timestamp;
use gangway_benchmarks::{percentile, LocalCluster};

struct Args {
    jobs: usize,
    submitters: usize,
    nodes: u32,
    slots: Option<u32>,
    nodes_dir: Option<PathBuf>,
    /// Submit (and run) as this user: (uid, gid).
    as_user: Option<(u32, u32)>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { jobs: 1000, submitters: 4, nodes: 1, slots: None, nodes_dir: None, as_user: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--jobs" => a.jobs = value()?.parse()?,
            "--submitters" => a.submitters = value()?.parse::<usize>()?.max(1),
            "--nodes" => a.nodes = value()?.parse()?,
            "--slots-per-node" => a.slots = Some(value()?.parse()?),
            "--nodes-dir" => a.nodes_dir = Some(PathBuf::from(value()?)),
            "--as-user" => {
                let name = value()?;
                let uid = gangway_api::users::user_id(&name).with_context(|| format!("no user {name}"))?;
                let gid = gangway_api::users::primary_group(uid).with_context(|| format!("no group of {name}"))?;
                a.as_user = Some((uid, gid));
            }
            other => bail!("unknown option {other}; see the source's header for usage"),
        }
    }
    Ok(a)
}

/// `--help`: this file's header.
const USAGE: &str = r#"sbatch end to end: starts `gangway up --nodes N --detach`, runs `--jobs` invocations of the
real `gangway-slurm sbatch --parsable --wrap=true` binary from `--submitters` threads at
once, waits until every job has ended, and reports jobs per second (first submit to last
job end) and the latency of one sbatch process (spawn to exit, which includes the
durable submit).

`cargo build --release -p gangway-benchmarks -p gangway-runner -p gangway-launcher -p gangway-slurm --bins &&
target/release/gangway-sbatch-bench [--jobs 1000] [--submitters 4] [--nodes 1] [--slots-per-node N]
[--nodes-dir DIR] [--as-user NAME]`

With `--as-user` (run as root; the user must exist: `useradd gwbench`) every sbatch runs as
that user, who reaches the head through its socket with no token (the kernel names them),
and the jobs run as that user: authentication and run-as-user on. Without it, sbatch runs as
the caller with the admin token from `client.json`.

The head's state (and its fsyncs) live in `$TMPDIR`; `--nodes-dir` puts the nodes' task
directories and the jobs' `slurm-N.out` files elsewhere (a scratch such as /dev/shm)."#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let args = parse_args()?;
    let tag = format!("gangway-sbatch-bench-{}", std::process::id());
    let scratch = args.nodes_dir.clone().unwrap_or_else(std::env::temp_dir).join(format!("{tag}-nodes"));
    let cluster = LocalCluster::up(&tag, args.nodes, args.slots, Some(scratch.clone()))?;
    let sbatch = std::env::current_exe()?.with_file_name("gangway-slurm");
    measure(&args, &cluster.state, &scratch, &sbatch)
}

fn measure(args: &Args, state: &Path, scratch: &Path, sbatch: &Path) -> anyhow::Result<()> {
    let mut c = Client::new(&ClientConfig::from_state_dir(state)?)?;
    let slots = c.get_pool("default")?.task_slots_per_node;
    let work = scratch.join("work");
    std::fs::create_dir_all(&work)?;
    if let Some((uid, gid)) = args.as_user {
        // The jobs write their output here, as the user.
        std::os::unix::fs::chown(&work, Some(uid), Some(gid))?;
    }
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(args.jobs));
    let failures = AtomicUsize::new(0);
    let start_wall = Timestamp::now();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.submitters {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < args.jobs {
                    let t0 = Instant::now();
                    let mut cmd = Command::new(sbatch);
                    cmd.args(["sbatch", "--parsable", "--wrap=true"])
                        .current_dir(&work)
                        .env("GANGWAY_STATE_DIR", state)
                        .env_remove("GANGWAY_URL")
                        .env_remove("GANGWAY_TOKEN")
                        .stdin(Stdio::null());
                    // Both ways through the same spawn (std forks instead of posix_spawn once
                    // ids are set), so the figures differ only by what gangway does.
                    use std::os::unix::process::CommandExt;
                    match args.as_user {
                        Some((uid, gid)) => cmd.uid(uid).gid(gid).env_remove("HOME"),
                        // SAFETY: getuid/getgid have no preconditions.
                        None => cmd.uid(unsafe { libc::getuid() }).gid(unsafe { libc::getgid() }),
                    };
                    let out = cmd.output();
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    match out {
                        Ok(o) if o.status.success() => latencies.lock().expect("lock").push(ms),
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let submitted = start.elapsed();
    if failures.load(Ordering::Relaxed) > 0 {
        bail!("{} sbatch invocations failed", failures.load(Ordering::Relaxed));
    }
    let jobs = loop {
        let jobs = c.slurm_jobs()?.jobs;
        if jobs.len() >= args.jobs && jobs.iter().all(|j| j.state.is_finished()) {
            break jobs;
        }
        // Each poll lists every job (the head's work, on the same cores as the jobs): poll
        // slowly; the figure uses the jobs' own end times, not when this loop saw them.
        std::thread::sleep(Duration::from_millis(100));
    };
    let last_end = jobs.iter().filter_map(|j| j.end_time).max().context("no end time")?;
    let secs = last_end.micros_since(start_wall) as f64 / 1e6;
    let failed = jobs.iter().filter(|j| j.state != SlurmJobState::Completed).count();
    for j in jobs.iter().filter(|j| j.state != SlurmJobState::Completed).take(3) {
        let task = c.get_task(&j.job_id.to_string(), "batch")?;
        eprintln!("job {} {:?} exit {:?}: {:?}", j.job_id, j.state, j.exit_code, task.execution_info.failure_info);
    }
    let mut lat = latencies.into_inner().expect("lock");
    lat.sort_by(f64::total_cmp);
    println!(
        "{{\"as_user\": {}, \"nodes\": {}, \"slots_per_node\": {slots}, \"submitters\": {}, \"jobs\": {}, \"failed\": {failed}, \"submit_s\": {:.3}, \"run_s\": {secs:.3}, \"jobs_per_s\": {:.0}, \"sbatch_ms\": {{\"p50\": {:.2}, \"p99\": {:.2}, \"samples\": {}}}}}",
        args.as_user.is_some(),
        args.nodes,
        args.submitters,
        jobs.len(),
        submitted.as_secs_f64(),
        jobs.len() as f64 / secs,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
    Ok(())
}

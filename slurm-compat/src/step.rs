//! `srun` inside a batch job, for steps on the batch host: the step's tasks are started right
//! here, as children of the batch script (so they live in the job's process group and cgroup
//! and die with it), each with the step environment of the reference
//! (`case-d-srun-step.task*.env`): `SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_STEP_*`, …, its
//! output to srun's own (with `-l` labels) or to `-o`/`-e` pattern files.
//!
//! Not here yet: steps over several nodes (they need the other nodes' launchers), CPU and GPU
//! binding (`--cpu-bind`, `--gpu-bind` are accepted and ignored), and PMI for MPI ranks.
//! Outside an allocation, srun first gets one ([`crate::allocate`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use crate::patterns::{expand_path, PatternContext, Step};

/// What a step asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StepRequest {
    /// `-n`.
    pub ntasks: Option<u32>,
    /// `-N`.
    pub nodes: Option<u32>,
    /// `-c`.
    pub cpus_per_task: Option<u32>,
    /// `-l`.
    pub label: bool,
    /// `-o`.
    pub output: Option<String>,
    /// `-e`.
    pub error: Option<String>,
    /// Allocation options for srun outside an allocation, as sbatch's long options
    /// (`--partition=P`, `--time=T`, …); inside one they do not apply.
    pub allocation: Vec<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Runs `srun ARGS…`.
pub fn main(args: &[String]) -> ExitCode {
    let outside = env("SLURM_JOB_ID").is_none();
    let ran =
        parse(args).and_then(|r| if outside { crate::allocate::run(&r, args) } else { run(&r).map(ExitCode::from) });
    match ran {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("srun: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Reads srun's options up to the command (glibc's `+`: the first word that is not an option).
pub fn parse(args: &[String]) -> Result<StepRequest, String> {
    let mut r = StepRequest::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        i += 1;
        if arg == "--" {
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if arg.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ if !arg.starts_with("--") && arg.len() > 2 => (arg[..2].to_owned(), Some(arg[2..].to_owned())),
            _ => (arg.clone(), None),
        };
        let flag = matches!(name.as_str(), "-l" | "--label" | "--overlap" | "--exact" | "-Q" | "--quiet" | "-v");
        if flag {
            if inline.is_some() && !arg.starts_with("--") {
                return Err(format!("invalid option -- '{}'", &arg[1..]));
            }
            r.label |= matches!(name.as_str(), "-l" | "--label");
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args.get(i).cloned().ok_or_else(|| format!("option '{name}' requires an argument"))?;
                i += 1;
                v
            }
        };
        let count = |v: &str| v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("invalid {name}: {v}"));
        match name.as_str() {
            "-n" | "--ntasks" => r.ntasks = Some(count(&value)?),
            "-N" | "--nodes" => r.nodes = Some(count(&value)?),
            "-c" | "--cpus-per-task" => r.cpus_per_task = Some(count(&value)?),
            "-o" | "--output" => r.output = Some(value),
            "-e" | "--error" => r.error = Some(value),
            "--mpi" | "--cpu-bind" | "--gpu-bind" | "-m" | "--distribution" => {}
            "-J" | "--job-name" | "-p" | "--partition" | "-t" | "--time" | "-A" | "--account" | "-q" | "--qos"
            | "-C" | "--constraint" | "-G" | "--gpus" | "--gres" | "--mem" | "--mem-per-cpu" | "--gpus-per-node"
            | "--gpus-per-task" | "-w" | "--nodelist" | "--ntasks-per-node" => {
                r.allocation.push(format!("{}={value}", long_name(&name)));
            }
            _ => return Err(format!("unrecognized option '{arg}'")),
        }
    }
    r.command = args[i..].to_vec();
    if r.command.is_empty() {
        return Err("No command given to execute.".into());
    }
    Ok(r)
}

/// sbatch's long name for an srun option.
fn long_name(name: &str) -> &str {
    match name {
        "-J" => "--job-name",
        "-p" => "--partition",
        "-t" => "--time",
        "-A" => "--account",
        "-q" => "--qos",
        "-C" => "--constraint",
        "-G" => "--gpus",
        "-w" => "--nodelist",
        long => long,
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// Runs the step's tasks here and waits for them; the exit code is the highest of theirs.
fn run(r: &StepRequest) -> Result<u8, String> {
    let job: u32 = env("SLURM_JOB_ID")
        .and_then(|j| j.parse().ok())
        .ok_or("gangway's srun runs only inside a batch job (sbatch) for now")?;
    let nnodes: u32 = env("SLURM_JOB_NUM_NODES").and_then(|n| n.parse().ok()).unwrap_or(1);
    if r.nodes.unwrap_or(nnodes) > 1 {
        return Err("steps over several nodes are not implemented yet in gangway (use -N1)".into());
    }
    let ntasks = r.ntasks.or_else(|| env("SLURM_NTASKS").and_then(|n| n.parse().ok())).unwrap_or(1);
    let cpus = r.cpus_per_task.unwrap_or(1);
    let on_node: u32 = env("SLURM_CPUS_ON_NODE").and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
    if ntasks.saturating_mul(cpus) > on_node {
        return Err(format!("Unable to create step for job {job}: More processors requested than permitted"));
    }
    let step = next_step_id()?;
    let node = env("SLURMD_NODENAME").unwrap_or_default();
    let name = env("SLURM_JOB_NAME").unwrap_or_default();
    let user = env("SLURM_JOB_USER").unwrap_or_default();
    let array = env("SLURM_ARRAY_JOB_ID")
        .and_then(|a| a.parse().ok())
        .zip(env("SLURM_ARRAY_TASK_ID").and_then(|t| t.parse().ok()));
    let cwd = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?.to_string_lossy().into_owned();
    let mut files: HashMap<String, std::fs::File> = HashMap::new();
    let mut open = |pattern: &Option<String>, rank: u32| -> Result<Option<std::fs::File>, String> {
        let Some(p) = pattern else { return Ok(None) };
        let ctx = PatternContext {
            job_id: job,
            array,
            job_name: &name,
            user: &user,
            node_name: &node,
            node_id: 0,
            task_id: rank,
            step: Step::Id(step),
        };
        let path = expand_path(p, &cwd, &ctx);
        if !files.contains_key(&path) {
            let f = std::fs::File::create(&path).map_err(|e| format!("opening {path}: {e}"))?;
            files.insert(path.clone(), f);
        }
        files[&path].try_clone().map(Some).map_err(|e| e.to_string())
    };
    let gtids = (0..ntasks).map(|t| t.to_string()).collect::<Vec<_>>().join(",");
    let mut children = Vec::new();
    for rank in 0..ntasks {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "SLURM_TASK_PID=$$; export SLURM_TASK_PID; exec \"$@\"", "srun"]).args(&r.command);
        for (k, v) in step_env(rank, ntasks, step, &node, &gtids) {
            cmd.env(k, v);
        }
        if let Some(c) = r.cpus_per_task {
            cmd.env("SLURM_CPUS_PER_TASK", c.to_string());
        }
        cmd.stdin(Stdio::null());
        match (open(&r.output, rank)?, r.label) {
            (Some(f), _) => cmd.stdout(f),
            (None, true) => cmd.stdout(Stdio::piped()),
            (None, false) => cmd.stdout(Stdio::inherit()),
        };
        match (open(&r.error, rank)?, r.label) {
            (Some(f), _) => cmd.stderr(f),
            (None, true) => cmd.stderr(Stdio::piped()),
            (None, false) => cmd.stderr(Stdio::inherit()),
        };
        let mut child = cmd.spawn().map_err(|e| format!("launching {}: {e}", r.command[0]))?;
        let relays =
            [child.stdout.take().map(|o| relay(o, rank, false)), child.stderr.take().map(|e| relay(e, rank, true))];
        children.push((child, relays));
    }
    let mut code = 0u8;
    for (mut child, relays) in children {
        let status = child.wait().map_err(|e| e.to_string())?;
        for t in relays.into_iter().flatten() {
            let _ = t.join();
        }
        let c =
            status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
        code = code.max(c.clamp(0, 255) as u8);
    }
    Ok(code)
}

/// Copies a task's output to srun's with its `-l` label (`0: `), line by line.
fn relay(from: impl std::io::Read + Send + 'static, rank: u32, err: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
            let mut out: Box<dyn Write> = if err { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
            let mut text = format!("{rank}: ").into_bytes();
            text.extend_from_slice(&line);
            text.push(b'\n');
            let _ = out.write_all(&text);
        }
    })
}

/// The step's own variables over the job's (which the task inherits from the batch script).
fn step_env(rank: u32, ntasks: u32, step: u32, node: &str, gtids: &str) -> Vec<(String, String)> {
    let cpus = env("SLURM_JOB_CPUS_PER_NODE").unwrap_or_else(|| "1".into());
    // SAFETY: umask(2) cannot fail; it is set back at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    let step = step.to_string();
    [
        ("SLURM_PROCID", rank.to_string()),
        ("SLURM_LOCALID", rank.to_string()),
        ("SLURM_NODEID", "0".into()),
        ("SLURM_GTIDS", gtids.into()),
        ("SLURM_NTASKS", ntasks.to_string()),
        ("SLURM_NPROCS", ntasks.to_string()),
        ("SLURM_STEPID", step.clone()),
        ("SLURM_STEP_ID", step),
        ("SLURM_STEP_NODELIST", node.into()),
        ("SLURM_STEP_NUM_NODES", "1".into()),
        ("SLURM_STEP_NUM_TASKS", ntasks.to_string()),
        ("SLURM_STEP_TASKS_PER_NODE", ntasks.to_string()),
        ("SLURM_DISTRIBUTION", "block".into()),
        ("SLURM_JOB_CPUS_PER_NODE_PACK_GROUP_0", cpus),
        ("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1".into()),
        // No srun↔slurmstepd sockets exist here: the ports are srun's pid, unique per step.
        ("SLURM_SRUN_COMM_HOST", "127.0.0.1".into()),
        ("SLURM_SRUN_COMM_PORT", std::process::id().to_string()),
        ("SLURM_STEP_LAUNCHER_PORT", std::process::id().to_string()),
        ("SLURM_UMASK", format!("{mask:04o}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The job's next step id: a counter in the task directory, under a lock, so concurrent
/// sruns of one job get distinct ids.
fn next_step_id() -> Result<u32, String> {
    use std::os::fd::AsRawFd;
    let dir = env("AZ_BATCH_TASK_DIR").ok_or("AZ_BATCH_TASK_DIR is not set (not inside a gangway job)")?;
    let path = std::path::Path::new(&dir).join("slurm_steps");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; released when it closes.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("locking {}", path.display()));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(|e| e.to_string())?;
    let step: u32 = text.trim().parse().unwrap_or(0);
    std::io::Seek::rewind(&mut f).map_err(|e| e.to_string())?;
    f.set_len(0).map_err(|e| e.to_string())?;
    write!(f, "{}", step + 1).map_err(|e| e.to_string())?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_stop_at_the_command() {
        let r = parse(&args("--ntasks=2 -l -o out-%t hostname -n 5")).unwrap();
        assert_eq!((r.ntasks, r.label, r.output.as_deref()), (Some(2), true, Some("out-%t")));
        assert_eq!(r.command, ["hostname", "-n", "5"]);
        assert!(parse(&args("-n 0 true")).is_err());
        assert!(parse(&args("--bogus true")).is_err());
        assert!(parse(&args("-n 2")).is_err());
    }
}

//! An `srun` step inside a batch job, run from the batch host as Slurm's srun runs one.
//!
//! srun is the step's hub. It plans where the tasks go ([`crate::step_layout`]), listens on
//! a TCP port of the batch host, and starts one node part (`gangway-node slurm-step`) per
//! node: its own node's directly, the others through `gangway-node rsh-agent`, which asks the
//! launchers (via the head) to run it inside the job's cgroup on that node. Every part
//! connects back with the step's key and gets its tasks (the wire is
//! `gangway_api::slurm_step`). The relaying is [`crate::step_events`]: output, input, PMI
//! fences, signals, failures, and the exit code (the highest task's; 128 + the signal for a
//! task a signal ended). This module starts things: the listener, the parts, and the threads
//! that feed the loop.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gangway_api::slurm_step::{PartMessage, StdinTarget, StepMpi, StepStart, AGENT_COMMAND_ENV, KEY_ENV, NODE_BIN_ENV};

use gangway_api::slurm::SlurmStep;

use crate::step::{env, next_step_id, StepRequest};
use crate::step_events::Hub;
use crate::step_layout::{ranks_by_node, step_env, StepShape};
use crate::step_plan::{exported_env, node_bin, per_part, plan, umask, PatternNames};

/// What the hub's loop hears about.
pub(crate) enum Event {
    /// A connection (numbered) said hello as node `n`'s part.
    Hello(u32, u64, TcpStream),
    /// A message from node `n`'s part on connection `c`.
    Message(u32, u64, PartMessage),
    /// Node `n`'s connection `c` closed.
    Closed(u32, u64),
    /// Node `n`'s part process (or its agent) exited with this code.
    PartExited(u32, Option<i32>),
    /// srun got a signal.
    Signal(i32),
    /// A piece of srun's input; `None` at its end.
    Input(Option<Vec<u8>>),
}

/// Runs step `r` over the job's nodes and returns srun's exit code.
pub fn run(r: &StepRequest) -> Result<u8, String> {
    let job: u32 = env("SLURM_JOB_ID")
        .and_then(|j| j.parse().ok())
        .ok_or("gangway's srun runs only inside a batch job (sbatch) for now")?;
    // As in Slurm, `SLURM_MPI_TYPE` from the environment is the default of `--mpi`, then the
    // partition's `MpiDefault`.
    let mpi_type = r.mpi.clone().or_else(|| env("SLURM_MPI_TYPE"));
    let mpi_type_or_site = mpi_type.clone().or_else(|| env(gangway_api::slurm_step::MPI_DEFAULT_ENV));
    let mpi = match mpi_type_or_site.as_deref() {
        None => StepMpi::Auto,
        Some("list") => {
            // As Slurm 22.05 lists them, less cray_shasta (gangway's pmi2 serves PMI-1's wire).
            gangway_api::outln!(
                "MPI plugin types are...\n\tpmix\n\tnone\n\tpmi2\nspecific pmix plugin versions available: pmix_v4"
            );
            return Ok(0);
        }
        Some(m) => StepMpi::parse(m)?,
    };
    if let Some(b) = &r.cpu_bind {
        gangway_api::slurm_bind::parse_cpu_bind(b)?;
    }
    if let Some(b) = &r.gpu_bind {
        gangway_api::slurm_bind::parse_gpu_bind(b)?;
    }
    let (stdin_to, input_file) = match r.input.as_deref() {
        // --pty: the terminal is task 0's.
        None if r.pty => (StdinTarget::Task(0), None),
        None | Some("all") => (StdinTarget::All, None),
        Some("none") => (StdinTarget::None, None),
        Some(t) if t.parse::<u32>().is_ok() => (StdinTarget::Task(t.parse().unwrap_or(0)), None),
        Some(path) => {
            let f = std::fs::File::open(path).map_err(|e| format!("opening --input file {path}: {e}"))?;
            (StdinTarget::All, Some(f))
        }
    };
    let plan = plan(r, job)?;
    let programs = match (r.multi_prog, r.command.first()) {
        (true, Some(file)) => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("unable to read --multi-prog file {file}: {e}"))?;
            let mut all = crate::multi_prog::commands(file, &text, plan.rank_nodes.len() as u32)?;
            // Words after the file are every task's further arguments, as in Slurm.
            for c in &mut all {
                c.extend(r.command[1..].iter().cloned());
            }
            all
        }
        _ => Vec::new(),
    };
    let step = next_step_id()?;
    // This node's address among the gang's (srun may run on any node of the job, e.g. from
    // inside another step's task); 127.0.0.1 for a one-node job.
    let instance: usize = env("GANGWAY_INSTANCE").and_then(|i| i.parse().ok()).unwrap_or(0);
    let host = env("AZ_BATCH_HOST_LIST")
        .and_then(|h| h.split(',').nth(instance).map(str::to_owned))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    let listener = TcpListener::bind((host.as_str(), 0)).map_err(|e| format!("listening on {host}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let key = crate::step_plan::new_key()?;
    let ranks = ranks_by_node(&plan.rank_nodes, plan.nodes.len());
    let shape = StepShape {
        step,
        nodes: &plan.nodes,
        cpus: &plan.cpus,
        ranks: &ranks,
        dist: plan.dist,
        cpus_per_task: plan.cpus_per_task,
        host: &host,
        port,
        umask: &umask(),
    };
    // Files that name no node or task are written by srun alone (as Slurm's srun does), so
    // parts on several nodes do not truncate and overwrite one file; -e defaults to -o.
    let error = r.error.clone().or_else(|| r.output.clone());
    let names = PatternNames {
        job,
        step,
        name: env("SLURM_JOB_NAME").unwrap_or_default(),
        user: env("SLURM_JOB_USER").unwrap_or_default(),
        node: plan.nodes[0].clone(),
    };
    let (out_here, err_here) =
        (r.output.as_deref().filter(|p| !per_part(p)), error.as_deref().filter(|p| !per_part(p)));
    let files = names.open_files(out_here, err_here)?;
    let own = exported_env(r.export.as_deref(), std::env::vars().collect())?;
    let here_dir = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
    let cwd = r.chdir.as_ref().map_or(here_dir.clone(), |d| here_dir.join(d)).to_string_lossy().into_owned();
    // The job's `--gpus-per-task` (`SLURM_GPUS_PER_TASK`, `[type:]N`) is srun's default.
    let gpus_per_task = r.gpus_per_task.or_else(|| {
        let v = env("SLURM_GPUS_PER_TASK")?;
        v.rsplit(':').next()?.parse().ok()
    });
    let starts: Vec<StepStart> = (0..plan.nodes.len())
        .map(|i| {
            let mut env = own.clone();
            env.extend(step_env(&shape, i));
            if let Some(m) = &mpi_type {
                env.push(("SLURM_MPI_TYPE".into(), m.clone()));
            }
            StepStart {
                job_id: job,
                step_id: step,
                node_index: i as u32,
                node_name: plan.nodes[i].clone(),
                ranks: ranks[i].clone(),
                ntasks: plan.rank_nodes.len() as u32,
                env,
                cwd: cwd.clone(),
                command: r.command.clone(),
                rank_commands: if programs.is_empty() {
                    Vec::new()
                } else {
                    ranks[i].iter().map(|k| programs[*k as usize].clone()).collect()
                },
                output: r.output.clone().filter(|p| per_part(p)),
                error: error.clone().filter(|p| per_part(p)),
                mpi,
                nodes: plan.nodes.clone(),
                kvsname: format!("kvs_{job}_{step}"),
                rank_nodes: plan.rank_nodes.clone(),
                cpus_per_task: plan.cpus_per_task.unwrap_or(1),
                cpu_bind: r.cpu_bind.clone(),
                gpu_bind: r.gpu_bind.clone(),
                gpus_per_task,
                stdin_to,
                pty: r.pty.then(crate::terminal::size),
            }
        })
        .collect();

    let (tx, rx) = mpsc::channel();
    let signals = tx.clone();
    forward_signals(move |sig| {
        let _ = signals.send(Event::Signal(sig));
    });
    accept_parts(listener, key.clone(), plan.nodes.len() as u32, tx.clone());
    let addr = format!("{host}:{port}");
    let here = env("SLURMD_NODENAME").unwrap_or_default();
    let bin = node_bin();
    let mut children = Vec::new();
    let mut pids = Vec::new();
    for (i, node) in plan.nodes.iter().enumerate() {
        let mut cmd = Command::new(&bin);
        if *node == here {
            cmd.args(["slurm-step", &addr, &i.to_string()]).env(KEY_ENV, &key);
        } else {
            // The words (with the key) go to the agent in its environment, not on a command
            // line anyone on the node can read for as long as the step runs.
            let line = format!("{KEY_ENV}={key} exec \"${NODE_BIN_ENV}\" slurm-step {addr} {i}");
            cmd.args(["rsh-agent", node]).env(AGENT_COMMAND_ENV, line);
        }
        let child = cmd.stdin(Stdio::null()).spawn().map_err(|e| format!("starting {bin}: {e}"))?;
        pids.push(child.id() as i32);
        children.push(watch_part(child, i as u32, tx.clone()));
    }
    let input: Option<Box<dyn std::io::Read + Send>> = match (stdin_to, input_file) {
        (StdinTarget::None, _) => None,
        (_, Some(f)) => Some(Box::new(f)),
        (_, None) => Some(Box::new(std::io::stdin())),
    };
    let ntasks = plan.rank_nodes.len() as u32;
    let record = StepRecord::start(
        u64::from(job),
        SlurmStep {
            step_id: step,
            name: r.command[0].rsplit('/').next().unwrap_or(&r.command[0]).to_owned(),
            nodes: plan.nodes.clone(),
            ntasks,
            cpus: ntasks * plan.cpus_per_task.unwrap_or(1),
            state: gangway_api::slurm::SlurmJobState::Running,
            start_time: gangway_api::Timestamp::now(),
            end_time: None,
            exit_code: None,
            signal: None,
            max_rss_kib: None,
        },
    );
    let mut hub = Hub::new(starts, r.label, r.kill_on_bad_exit);
    hub.input = input.map(|i| (i, tx.clone()));
    hub.part_pids = pids;
    hub.files = files;
    hub.quit_on_interrupt = r.quit_on_interrupt;
    hub.pty = r.pty;
    hub.step_name = format!("StepId={job}.{step}");
    drop(tx);
    let code = hub.serve(&rx);
    for c in children {
        let _ = c.join();
    }
    let (state, signal) = hub.step_state(code);
    record.finish(state, code, signal, hub.max_rss_kib);
    Ok(code)
}

/// The step's record with the head (`sacct` shows it as `N.S`), kept off the step's path: a
/// thread reports the start, and the end waits for it. A job that cannot reach the head (no
/// client configuration in its environment) records nothing, as a cluster without accounting.
struct StepRecord {
    job: u64,
    step: SlurmStep,
    started: Option<std::thread::JoinHandle<bool>>,
}

impl StepRecord {
    fn start(job: u64, step: SlurmStep) -> StepRecord {
        let first = step.clone();
        let started = std::thread::spawn(move || {
            crate::cluster::connect("srun").ok().is_some_and(|mut c| c.slurm_step(job, &first).is_ok())
        });
        StepRecord { job, step, started: Some(started) }
    }

    fn finish(mut self, state: gangway_api::slurm::SlurmJobState, code: u8, signal: Option<i32>, rss: Option<u64>) {
        let recorded = self.started.take().is_some_and(|h| h.join().unwrap_or(false));
        if !recorded {
            return;
        }
        self.step.state = state;
        self.step.end_time = Some(gangway_api::Timestamp::now());
        self.step.exit_code = Some(i32::from(code));
        self.step.signal = signal;
        self.step.max_rss_kib = rss;
        if let Ok(mut c) = crate::cluster::connect("srun") {
            let _ = c.slurm_step(self.job, &self.step);
        }
    }
}

/// Reads srun's input on a thread of its own and hands it to the loop.
pub(crate) fn read_input(mut from: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Event::Input(Some(buf[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::Input(None));
    });
}

/// Waits for a part's process on a thread of its own.
fn watch_part(mut child: Child, node: u32, tx: mpsc::Sender<Event>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let code = child.wait().ok().and_then(|s| s.code());
        let _ = tx.send(Event::PartExited(node, code));
    })
}

/// Accepts the parts' connections; each says hello and then streams its messages. Only a
/// hello with the step's key and a node index of the step gets through; the loop takes the
/// first connection per node and ignores any other.
fn accept_parts(listener: TcpListener, key: String, nodes: u32, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        for (conn, stream) in (0u64..).zip(listener.incoming().map_while(Result::ok)) {
            let (tx, key) = (tx.clone(), key.clone());
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(writer) = stream.try_clone() else { return };
                let mut lines = BufReader::new(stream).lines();
                let hello = lines.next().and_then(Result::ok).and_then(|l| serde_json::from_str(&l).ok());
                let Some(PartMessage::Hello { node_index, key: theirs }) = hello else { return };
                if theirs != key || node_index >= nodes {
                    return;
                }
                let _ = writer.set_read_timeout(None);
                if tx.send(Event::Hello(node_index, conn, writer)).is_err() {
                    return;
                }
                for line in lines.map_while(Result::ok) {
                    match serde_json::from_str::<PartMessage>(&line) {
                        Ok(m) => {
                            if tx.send(Event::Message(node_index, conn, m)).is_err() {
                                return;
                            }
                        }
                        Err(e) => gangway_api::errln!("srun: error: a garbled line from node part {node_index}: {e}"),
                    }
                }
                let _ = tx.send(Event::Closed(node_index, conn));
            });
        }
    });
}

/// Blocks the signals srun forwards and hands each to `f` on a thread of its own (children
/// get an empty signal mask back when they start).
pub(crate) fn forward_signals(mut f: impl FnMut(i32) + Send + 'static) {
    const FORWARDED: [i32; 7] =
        [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask only reads it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: sigwait on a set we own; it writes the signal into `sig`.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        f(sig);
    });
}

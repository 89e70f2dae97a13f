//! `gangway-node slurm-step ADDR NODE`: one node's part of an `srun` job step (the wire is
//! `gangway_api::slurm_step`).
//!
//! srun starts it on every node of the step — on its own node directly, on the others through
//! the launchers' agent relay, inside the job's cgroup there — with the step's key in
//! `GANGWAY_STEP_KEY`. The part connects back to srun over TCP, gets its [`StepStart`],
//! and starts its node's tasks as slurmstepd does: each with the step's environment plus its
//! own `SLURM_PROCID`/`SLURM_LOCALID`/`SLURM_TASK_PID`, bound to its CPUs (`--cpu-bind`) and
//! GPUs (`--gpu-bind`, `--gpus-per-task`), in its own process group, its output sent back to
//! srun or written to the `-o`/`-e` files. The part serves its tasks PMI-1 over `PMI_FD` or
//! PMIx (`--mpi`; by default PMIx for programs linked to Open MPI, PMI-1 for the rest), with
//! every fence going through srun to the other nodes.
//!
//! The part ends when its tasks have ended; if srun goes away first it kills them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use gangway_api::slurm_bind::{cpu_bind_env, cpu_sets, gpu_sets, mask_text, parse_cpu_bind, parse_gpu_bind, CpuSlot};
use gangway_api::slurm_patterns::{expand_path, PatternContext, Step};
use gangway_api::slurm_step::{PartMessage, SrunMessage, StdinTarget, StepMpi, StepStart, KEY_ENV};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::pmi::io::FenceError;
use crate::pmi::{process_mapping_of, serve_node, FenceExchange, NodeConfig, NodePmi, PmiEvent, RankSocket};
use crate::pmix::server::RemoveDir;
use crate::ranks::{cannot_speak, linked_mpi, LinkedMpi};

type Lines = tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>;
/// Fences waiting for srun's answer, by epoch.
type Waiting = Arc<Mutex<HashMap<u32, oneshot::Sender<Vec<(String, String)>>>>>;

/// Runs `gangway-node slurm-step ADDR NODE`; returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let (Some(addr), Some(node)) = (words.first(), words.get(1).and_then(|n| n.parse::<u32>().ok())) else {
        gangway_api::errln!("usage: gangway-node slurm-step ADDR NODE-INDEX (started by srun, with {KEY_ENV} set)");
        return 2;
    };
    let key = std::env::var(KEY_ENV).unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            gangway_api::errln!("gangway-node slurm-step: starting a runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(addr, node, key)) {
        Ok(()) => 0,
        Err(e) => {
            gangway_api::errln!("gangway-node slurm-step: {e}");
            1
        }
    }
}

async fn run(addr: &str, node: u32, key: String) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connecting to srun at {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<PartMessage>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let mut line = serde_json::to_vec(&m).expect("wire types serialize");
            line.push(b'\n');
            if wr.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    let _ = tx.send(PartMessage::Hello { node_index: node, key });
    let mut lines = BufReader::new(rd).lines();
    let first = lines.next_line().await.map_err(|e| format!("reading from srun: {e}"))?;
    let spec = match first.as_deref().map(serde_json::from_str::<SrunMessage>) {
        Some(Ok(SrunMessage::Start(spec))) => spec,
        Some(Ok(other)) => return Err(format!("srun sent {other:?} before the step")),
        Some(Err(e)) => return Err(format!("srun sent a line that is not a step: {e}")),
        None => return Err("srun closed the connection (wrong key, or the step was cancelled)".into()),
    };
    let result = run_tasks(&spec, &tx, lines).await;
    if let Err(message) = &result {
        let _ = tx.send(PartMessage::Failed { message: message.clone() });
    }
    let _ = tx.send(PartMessage::Done { max_rss_kib: children_max_rss_kib() });
    drop(tx);
    let _ = writer.await;
    result
}

/// The highest resident set size of the tasks this part waited for (Linux reports KiB).
fn children_max_rss_kib() -> Option<u64> {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) == 0).then_some(u)
    };
    usage.map(|u| u.ru_maxrss.max(0) as u64).filter(|k| *k > 0)
}

/// Direct-modex requests waiting for srun's answer, by request id.
type ModexWaiting = Arc<Mutex<HashMap<u64, crate::pmi::io::ModexAnswer>>>;

/// A fence (and direct-modex requests) through srun.
struct SrunFence {
    tx: mpsc::UnboundedSender<PartMessage>,
    waiting: Waiting,
    epoch: AtomicU32,
    modex: ModexWaiting,
    modex_id: std::sync::atomic::AtomicU64,
}

impl FenceExchange for SrunFence {
    fn fetch_modex(&self, rank: u32) -> crate::pmi::io::ModexFuture {
        let id = self.modex_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.modex.lock().expect("lock").insert(id, done);
        let _ = self.tx.send(PartMessage::ModexRequest { id, rank });
        Box::pin(async move { wait.await.ok().flatten() })
    }

    async fn exchange(&self, puts: Vec<(String, String)>) -> Result<Vec<(String, String)>, FenceError> {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.waiting.lock().expect("lock").insert(epoch, done);
        let _ = self.tx.send(PartMessage::Fence { epoch, puts });
        wait.await.map_err(|_| FenceError::StepEnded)
    }
}

/// The CPUs this process may use, with their cores and sockets from sysfs.
fn node_cpus() -> Vec<CpuSlot> {
    // SAFETY: cpu_set_t is plain bits that sched_getaffinity fills in.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        set
    };
    let read = |cpu: usize, what: &str| -> Option<u32> {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{what}")).ok()?.trim().parse().ok()
    };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads a bit of the set we own.
        .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
        .map(|c| {
            let socket = read(c, "physical_package_id").unwrap_or(0);
            // Core ids repeat across sockets: the key combines both.
            let core = read(c, "core_id").map_or(c as u32, |id| (socket << 16) | id);
            CpuSlot { cpu: c as u32, core, socket }
        })
        .collect()
}

/// The value of `key` in `env` (the last one wins).
fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Starts the node's tasks and waits for them, serving PMI and following srun's orders.
async fn run_tasks(spec: &StepStart, tx: &mpsc::UnboundedSender<PartMessage>, mut lines: Lines) -> Result<(), String> {
    let local = spec.ranks.len() as u32;
    let cpu_bind = spec.cpu_bind.as_deref().map(parse_cpu_bind).transpose()?;
    let cpus = match &cpu_bind {
        Some(b) => cpu_sets(&b.bind, &node_cpus(), local, spec.cpus_per_task),
        None => vec![None; local as usize],
    };
    let gpu_bind = spec.gpu_bind.as_deref().map(parse_gpu_bind).transpose()?;
    // This node's GPUs: its own instance's variable first, then the one srun passed on.
    let own_gpus = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let visible: Vec<String> = own_gpus
        .as_deref()
        .or_else(|| lookup(&spec.env, "CUDA_VISIBLE_DEVICES"))
        .map(|v| v.split(',').filter(|g| !g.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let gpus = gpu_sets(gpu_bind.as_ref().map(|g| &g.bind), spec.gpus_per_task, &visible, local)?;

    let mut env = spec.env.clone();
    // The node's own directories and launcher variables, not the batch host's.
    env.extend(std::env::vars().filter(|(k, _)| {
        (k.starts_with("AZ_BATCH_") || k.starts_with("GANGWAY_")) && k != KEY_ENV && !k.starts_with("GANGWAY_STEP")
    }));
    env.push(("SLURM_GTIDS".into(), spec.ranks.iter().map(u32::to_string).collect::<Vec<_>>().join(",")));
    if let Some(b) = &cpu_bind {
        env.extend(cpu_bind_env(b, &cpus));
    }
    let mut cwd = spec.cwd.clone();
    if !Path::new(&cwd).is_dir() {
        let note =
            format!("slurmstepd: error: couldn't chdir to `{cwd}': No such file or directory: going to /tmp instead\n");
        let _ = tx.send(PartMessage::output(spec.ranks.first().copied().unwrap_or(0), true, note.into_bytes()));
        cwd = "/tmp".into();
    }
    let mut files: HashMap<String, std::fs::File> = HashMap::new();
    let mut open = |pattern: &Option<String>, rank: u32| -> Result<Option<std::fs::File>, String> {
        let Some(p) = pattern else { return Ok(None) };
        let user = lookup(&spec.env, "SLURM_JOB_USER").unwrap_or_default();
        let name = lookup(&spec.env, "SLURM_JOB_NAME").unwrap_or_default();
        let array = lookup(&spec.env, "SLURM_ARRAY_JOB_ID")
            .and_then(|a| a.parse().ok())
            .zip(lookup(&spec.env, "SLURM_ARRAY_TASK_ID").and_then(|t| t.parse().ok()));
        let ctx = PatternContext {
            job_id: spec.job_id,
            array,
            job_name: name,
            user,
            node_name: &spec.node_name,
            node_id: spec.node_index,
            task_id: rank,
            step: Step::Id(spec.step_id),
        };
        let path = expand_path(p, &cwd, &ctx);
        if !files.contains_key(&path) {
            let f = std::fs::File::create(&path).map_err(|e| format!("opening {path}: {e}"))?;
            files.insert(path.clone(), f);
        }
        files[&path].try_clone().map(Some).map_err(|e| e.to_string())
    };

    let serve = served_mpi(spec.mpi, spec.rank_commands.first().unwrap_or(&spec.command), &env, Path::new(&cwd))?;
    // PMIx: this part's own server (one per process), its rendezvous files in a directory of
    // the step's, and Open MPI's shared-memory segments in one of the part's own (fake hosts on
    // one machine would otherwise collide in /dev/shm); both removed at the end.
    let pmix = serve == StepMpi::Pmix;
    let own = format!("gangway-pmix.{}.{}.{}", spec.job_id, spec.step_id, std::process::id());
    let pmix_dir = std::env::temp_dir().join(&own);
    let shm =
        if pmix && Path::new("/dev/shm").is_dir() { Path::new("/dev/shm").join(&own) } else { pmix_dir.join("shm") };
    let _cleanup = pmix.then(|| (RemoveDir(pmix_dir.clone()), RemoveDir(shm.clone())));
    let mut namespace = match serve {
        StepMpi::Pmix => {
            let server = crate::pmix::server(&pmix_dir).map_err(|e| format!("starting the PMIx server: {e}"))?;
            let local_cpus = spec.ranks.iter().zip(&cpus).filter_map(|(r, c)| Some((*r, c.clone()?))).collect();
            let map = crate::pmix::StepMap {
                nspace: format!("gangway.{}.{}", spec.job_id, spec.step_id),
                job_id: format!("{}.{}", spec.job_id, spec.step_id),
                hosts: spec.nodes.clone(),
                rank_nodes: spec.rank_nodes.clone(),
                node: spec.node_index,
                tmpdir: pmix_dir.to_string_lossy().into_owned(),
                cpus: local_cpus,
                owner: None,
            };
            std::fs::create_dir_all(&shm).map_err(|e| format!("creating {}: {e}", shm.display()))?;
            Some(server.register(&map).map_err(|e| format!("registering the step with the PMIx server: {e}"))?)
        }
        _ => None,
    };
    let (uid, gid) = crate::pmix::server::own_ids();

    let mut sockets = Vec::new();
    let mut inputs: Vec<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = Vec::new();
    // `--pty`: task 0's terminal (its master side), which srun's resizes reach.
    let mut terminal: Option<std::os::fd::OwnedFd> = None;
    let mut waits = tokio::task::JoinSet::new();
    let pgids: Arc<Mutex<Vec<i32>>> = Arc::default();
    for (local_id, &rank) in spec.ranks.iter().enumerate() {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        let program = spec.rank_commands.get(local_id).unwrap_or(&spec.command);
        cmd.args(["-c", "SLURM_TASK_PID=$$; export SLURM_TASK_PID; exec \"$@\"", "srun"]).args(program);
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        cmd.env("SLURM_PROCID", rank.to_string()).env("SLURM_LOCALID", local_id.to_string());
        if let Some(ns) = &namespace {
            let fork_env = ns.client(rank, uid, gid).map_err(|e| format!("registering task {rank} with PMIx: {e}"))?;
            cmd.envs(fork_env).envs(crate::openmpi::direct_env(&spec.env, rdma_present(), &shm));
        }
        let pmi_fd = if serve == StepMpi::Pmi1 {
            let s = RankSocket::new(rank).map_err(|e| format!("making the PMI socket of task {rank}: {e}"))?;
            cmd.envs(s.env(spec.ntasks));
            cmd.env("PMI_JOBID", format!("{}.{}", spec.job_id, spec.step_id));
            let fd = s.child_fd();
            sockets.push(s);
            Some(fd)
        } else {
            None
        };
        if let Some(set) = gpus.as_ref().and_then(|g| g.get(local_id)) {
            let list = set.join(",");
            for k in ["CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES", "SLURM_STEP_GPUS"] {
                cmd.env(k, &list);
            }
        }
        let reads_input = match spec.stdin_to {
            StdinTarget::All => true,
            StdinTarget::Task(t) => t == rank,
            StdinTarget::None => false,
        };
        let pty = match spec.pty {
            Some(size) if rank == 0 => {
                Some(crate::pty::open(size).map_err(|e| format!("making task 0's pseudo-terminal: {e}"))?)
            }
            _ => None,
        };
        let mut verbose_file = None;
        let mut to_srun = (false, false);
        cmd.current_dir(&cwd).kill_on_drop(true);
        if let Some(p) = &pty {
            // The terminal is the task's input and output; it leads a session of its own.
            let side = || p.slave.try_clone().map(std::process::Stdio::from).map_err(|e| e.to_string());
            cmd.stdin(side()?).stdout(side()?).stderr(side()?);
        } else if spec.pty.is_some() {
            // As in Slurm, the tasks other than 0 write to /dev/null.
            use std::process::Stdio;
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
        } else {
            let stdin = if reads_input { std::process::Stdio::piped() } else { std::process::Stdio::null() };
            cmd.stdin(stdin).process_group(0);
            let out_file = open(&spec.output, rank)?;
            let err_file = open(&spec.error, rank)?;
            to_srun = (out_file.is_none(), err_file.is_none());
            cmd.stdout(out_file.map_or_else(std::process::Stdio::piped, Into::into));
            verbose_file = err_file.as_ref().and_then(|f| f.try_clone().ok());
            cmd.stderr(err_file.map_or_else(std::process::Stdio::piped, Into::into));
        }
        let controlling = pty.is_some();
        let task_cpus = cpus[local_id].clone().unwrap_or_default();
        let bind = task_cpus.clone();
        // SAFETY: the closure only makes syscalls (sched_setaffinity, fcntl) on data it owns.
        unsafe {
            cmd.pre_exec(move || {
                // A part that dies (even SIGKILLed) takes its tasks with it. The runtime has
                // one thread, the parent, so the signal follows the part's own death.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = pmi_fd {
                    crate::pmi::inherit_fd(fd)?;
                }
                if controlling {
                    crate::pty::take_as_controlling()?;
                }
                crate::agent_cli::apply_binding(&bind, &[])
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("starting task {rank} ({}): {e}", program.join(" ")))?;
        drop(cmd); // closes this process's copies of the terminal's task side
        let pid = child.id().unwrap_or(0) as i32;
        inputs.extend(child.stdin.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>));
        let mut terminal_output = None;
        if let Some(p) = pty {
            let side = || {
                p.master
                    .try_clone()
                    .map(|fd| tokio::fs::File::from_std(std::fs::File::from(fd)))
                    .map_err(|e| e.to_string())
            };
            if reads_input {
                inputs.push(Box::new(side()?));
            }
            terminal_output = Some(tokio::spawn(relay(side()?, rank, false, tx.clone())));
            terminal = Some(p.master);
        }
        pgids.lock().expect("lock").push(pid);
        if cpu_bind.as_ref().is_some_and(|b| b.verbose) && !task_cpus.is_empty() {
            let note = format!(
                "cpu-bind=MASK - {}, task {rank:2} {local_id:2} [{pid}]: mask {} set\n",
                spec.node_name,
                mask_text(&task_cpus)
            );
            match verbose_file.as_mut() {
                Some(f) => {
                    let _ = std::io::Write::write_all(f, note.as_bytes());
                }
                None => {
                    let _ = tx.send(PartMessage::output(rank, true, note.into_bytes()));
                }
            }
        }
        let relays = [
            child.stdout.take().filter(|_| to_srun.0).map(|o| tokio::spawn(relay(o, rank, false, tx.clone()))),
            child.stderr.take().filter(|_| to_srun.1).map(|e| tokio::spawn(relay(e, rank, true, tx.clone()))),
            terminal_output,
        ];
        let tx = tx.clone();
        let terminal_task = controlling;
        let unfinished = namespace.as_ref().map(crate::pmix::Namespace::unfinished);
        waits.spawn(async move {
            let status = child.wait().await;
            if unfinished.is_some_and(|u| u.lock().expect("lock").remove(&rank)) {
                let _ = tx.send(PartMessage::Lost { rank });
            }
            // What the task left running in its process group goes with it, as Slurm ends a
            // step's leftovers: otherwise its output pipe (and PMI socket) would stay open.
            if pid > 0 {
                // SAFETY: kill(2) on the task's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            for r in relays.into_iter().flatten() {
                if terminal_task {
                    // A background job of task 0's in a process group of its own keeps the
                    // terminal open: its output is not waited for beyond a moment.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), r).await;
                } else {
                    let _ = r.await;
                }
            }
            let (code, signal) = match status {
                Ok(s) => (s.code(), s.signal()),
                Err(_) => (None, Some(libc::SIGKILL)),
            };
            let _ = tx.send(PartMessage::Exited { rank, code, signal });
        });
    }
    drop(files);
    // srun's input goes to the tasks from a task of its own, so a task that does not read
    // cannot hold up fences and signals.
    let (input_tx, mut input_rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    let on_terminal = terminal.is_some();
    tokio::spawn(async move {
        while let Some(Some(data)) = input_rx.recv().await {
            for w in &mut inputs {
                let _ = w.write_all(&data).await;
                let _ = w.flush().await;
            }
        }
        // End of input (or srun gone): the tasks see EOF; on a terminal, that is its EOF
        // character (closing the master side would hang the terminal up instead).
        if on_terminal {
            for w in &mut inputs {
                let _ = w.write_all(b"\x04").await;
                let _ = w.flush().await;
            }
        }
        drop(inputs);
    });

    let waiting: Waiting = Arc::default();
    let modex: ModexWaiting = Arc::default();
    let fence = SrunFence {
        tx: tx.clone(),
        waiting: waiting.clone(),
        epoch: AtomicU32::new(0),
        modex: modex.clone(),
        modex_id: std::sync::atomic::AtomicU64::new(0),
    };
    let (etx, mut erx) = mpsc::unbounded_channel();
    let etx_pmix = etx.clone();
    let pmi = async {
        if sockets.is_empty() {
            return;
        }
        let config = NodeConfig {
            size: spec.ntasks,
            local_ranks: spec.ranks.clone(),
            kvsname: spec.kvsname.clone(),
            process_mapping: process_mapping_of(&spec.rank_nodes),
        };
        let servers = sockets.drain(..).map(|s| (s.rank, s.into_server())).collect();
        if let Err(e) = serve_node(NodePmi::new(config), servers, &fence, etx).await {
            tracing::warn!(error = %e, "PMI server stopped");
        }
    };
    let upcalls = namespace.as_mut().and_then(crate::pmix::Namespace::upcalls);
    let orders = async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => match serde_json::from_str::<SrunMessage>(&line) {
                    Ok(SrunMessage::FenceDone { epoch, all }) => {
                        if let Some(done) = waiting.lock().expect("lock").remove(&epoch) {
                            let _ = done.send(all);
                        }
                    }
                    Ok(SrunMessage::Signal { signal }) => signal_all(&pgids, signal),
                    Ok(SrunMessage::Kill) => signal_all(&pgids, libc::SIGKILL),
                    Ok(SrunMessage::Input { data }) => {
                        let _ = input_tx.send(Some(data.into_bytes()));
                    }
                    Ok(SrunMessage::InputEnd) => {
                        let _ = input_tx.send(None);
                    }
                    Ok(SrunMessage::Resize(size)) => {
                        if let Some(t) = &terminal {
                            let _ = crate::pty::resize(t, size);
                        }
                    }
                    Ok(SrunMessage::ModexRequest { id, rank, from }) => {
                        // Another node's server wants one of this node's ranks' data.
                        let answer = namespace.as_ref().map(|ns| ns.local_modex(rank));
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let data = match answer {
                                Some(rx) => rx.await.ok().flatten(),
                                None => None,
                            };
                            let data = data.map(|d| crate::pmix::io::encode(&d));
                            let _ = tx.send(PartMessage::ModexData { id, to: from, data });
                        });
                    }
                    Ok(SrunMessage::ModexData { id, data }) => {
                        if let Some(done) = modex.lock().expect("lock").remove(&id) {
                            let _ = done.send(data.as_deref().and_then(crate::pmix::io::decode));
                        }
                    }
                    Ok(SrunMessage::Start(_)) | Err(_) => {}
                },
                // srun is gone: nobody can see the output or end the step any more.
                Ok(None) | Err(_) => {
                    signal_all(&pgids, libc::SIGKILL);
                    waiting.lock().expect("lock").clear();
                    modex.lock().expect("lock").clear();
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    let pmix_events = etx_pmix;
    let pmix = async {
        if let Some(upcalls) = upcalls {
            crate::pmix::serve_namespace(upcalls, &fence, pmix_events).await;
        }
        std::future::pending::<()>().await;
    };
    let aborts = async {
        while let Some(ev) = erx.recv().await {
            if let PmiEvent::Abort { rank, code, msg } = ev {
                let _ = tx.send(PartMessage::Abort { rank, code, message: msg });
            }
        }
        std::future::pending::<()>().await;
    };
    let tasks = async { while waits.join_next().await.is_some() {} };
    tokio::select! {
        _ = async { tokio::join!(tasks, pmi) } => {}
        _ = orders => {}
        _ = aborts => {}
        _ = pmix => {}
    }
    drop(namespace);
    Ok(())
}

/// Whether this node has RDMA devices (then Open MPI chooses its transports itself).
fn rdma_present() -> bool {
    std::fs::read_dir("/sys/class/infiniband").is_ok_and(|mut d| d.next().is_some())
}

/// The interface the node's tasks are served: `--mpi` as given or, by default, by what
/// `program` is linked to (PMIx for Open MPI, PMI-1 for the rest). A program that cannot
/// speak the interface named is refused before anything starts, rather than running as
/// separate one-rank jobs side by side.
fn served_mpi(mpi: StepMpi, program: &[String], env: &[(String, String)], cwd: &Path) -> Result<StepMpi, String> {
    let Some(name) = program.first() else { return Ok(mpi) };
    let path = lookup(env, "PATH").map(std::ffi::OsStr::new);
    let linked =
        crate::spawn::resolve_program(name, path, cwd).map_or(LinkedMpi::Unknown, |p| linked_mpi(&cwd.join(p)));
    let served = match (mpi, linked) {
        (StepMpi::Auto, LinkedMpi::OpenMpi) => StepMpi::Pmix,
        (StepMpi::Auto, _) => StepMpi::Pmi1,
        (m, _) => m,
    };
    let words = match served {
        StepMpi::Pmix => Some((true, "PMIx (--mpi=pmix): use --mpi=pmi2")),
        StepMpi::Pmi1 => Some((false, "PMI-1 (--mpi=pmi2): use --mpi=pmix")),
        _ => None,
    };
    match words.and_then(|(pmix, words)| Some((cannot_speak(name, linked, pmix)?, words))) {
        Some((what, words)) => Err(format!("{what}, but the step serves {words} (or leave --mpi out)")),
        None => Ok(served),
    }
}

/// Sends `signal` to every task's process group.
fn signal_all(pgids: &Mutex<Vec<i32>>, signal: i32) {
    for pgid in pgids.lock().expect("lock").iter().filter(|p| **p > 0) {
        // SAFETY: kill(2) on a process group this part created.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// Sends a task's output to srun as it comes.
async fn relay(
    mut from: impl tokio::io::AsyncRead + Unpin,
    rank: u32,
    stderr: bool,
    tx: mpsc::UnboundedSender<PartMessage>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(PartMessage::output(rank, stderr, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
}

//! An `srun` step inside a batch job, run from the batch host as Slurm's srun runs one.
//!
//! srun is the step's hub. It plans where the tasks go ([`crate::step_layout`]), listens on
//! a TCP port of the batch host, and starts one node part (`gangway-node slurm-step`) per
//! node: its own node's directly, the others through `gangway-node rsh-agent`, which asks the
//! launchers (via the head) to run it inside the job's cgroup on that node. Every part
//! connects back with the step's key and gets its tasks (the wire is
//! `gangway_api::slurm_step`). srun then relays: the tasks' output to its own (with `-l`
//! labels), PMI fences between the nodes, signals it receives to every task, and `Kill` to
//! all when a part fails, a rank aborts, or `-K` sees a task fail. It exits with the highest
//! task exit code (128 + the signal for a task a signal ended).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gangway_api::slurm::expand_counts;
use gangway_api::slurm_step::{
    joined_bytes, text_or_bytes, PartMessage, SrunMessage, StdinTarget, StepStart, KEY_ENV, NODE_BIN_ENV,
};
use gangway_topology::hostlist::expand_hostlist;

use crate::step::{env, next_step_id, StepRequest};
use crate::step_layout::{place_tasks, ranks_by_node, step_env, Distribution, StepShape};

/// How long a node part may take to connect back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a step's tasks go.
#[derive(Debug)]
struct Plan {
    nodes: Vec<String>,
    cpus: Vec<u32>,
    rank_nodes: Vec<u32>,
    dist: Distribution,
    cpus_per_task: Option<u32>,
}

/// Plans step `r` of job `job` on the job's allocation (from the batch environment).
fn plan(r: &StepRequest, job: u32) -> Result<Plan, String> {
    let host = env("SLURMD_NODENAME").unwrap_or_default();
    let list = env("SLURM_JOB_NODELIST").unwrap_or_else(|| host.clone());
    let job_nodes = expand_hostlist(&list).map_err(|e| format!("reading SLURM_JOB_NODELIST '{list}': {e}"))?;
    let mut job_cpus = env("SLURM_JOB_CPUS_PER_NODE").map(|c| expand_counts(&c)).transpose()?.unwrap_or_default();
    if job_cpus.len() != job_nodes.len() {
        let on_node = env("SLURM_CPUS_ON_NODE").and_then(|c| c.parse().ok()).unwrap_or(1);
        job_cpus = vec![on_node; job_nodes.len()];
    }
    let not_available =
        || format!("Unable to create step for job {job}: Requested node configuration is not available");
    let excluded = match &r.exclude {
        Some(x) => expand_hostlist(x).map_err(|e| format!("invalid --exclude '{x}': {e}"))?,
        None => Vec::new(),
    };
    let (job_nodes, job_cpus): (Vec<String>, Vec<u32>) =
        job_nodes.into_iter().zip(job_cpus).filter(|(n, _)| !excluded.contains(n)).unzip();
    let (mut nodes, mut cpus) = match &r.nodelist {
        None => (job_nodes, job_cpus),
        Some(w) => {
            let wanted = expand_hostlist(w).map_err(|e| format!("invalid --nodelist '{w}': {e}"))?;
            let mut picked = (Vec::new(), Vec::new());
            for name in wanted {
                let i = job_nodes.iter().position(|n| *n == name).ok_or_else(not_available)?;
                picked.0.push(name);
                picked.1.push(job_cpus[i]);
            }
            picked
        }
    };
    if let Some(n) = r.nodes {
        if n as usize > nodes.len() {
            return Err(format!("Only allocated {} nodes asked for {n}", nodes.len()));
        }
    }
    let cpus_per_task = r.cpus_per_task.or_else(|| env("SRUN_CPUS_PER_TASK").and_then(|c| c.parse().ok()));
    let per_task = cpus_per_task.unwrap_or(1).max(1);
    let mut count = r.nodes.map_or(nodes.len(), |n| n as usize);
    let ntasks = r
        .ntasks
        .or_else(|| r.ntasks_per_node.map(|t| t * count as u32))
        .or_else(|| r.nodes.is_none().then(|| env("SLURM_NTASKS").and_then(|n| n.parse().ok())).flatten())
        .unwrap_or(count as u32);
    if (ntasks as usize) < count {
        if r.nodes.is_some() {
            eprintln!("srun: Warning: can't run {ntasks} processes on {count} nodes, setting nnodes to {ntasks}");
        }
        count = ntasks as usize;
    }
    nodes.truncate(count);
    cpus.truncate(count);
    let capacity: Vec<u32> = cpus.iter().map(|c| r.ntasks_per_node.unwrap_or(c / per_task)).collect();
    let too_many = || format!("Unable to create step for job {job}: More processors requested than permitted");
    let fits = cpus.iter().zip(&capacity).all(|(c, k)| *k > 0 && k * per_task <= *c);
    if !r.overcommit && (!fits || capacity.iter().sum::<u32>() < ntasks) {
        return Err(too_many());
    }
    let capacity: Vec<u32> = capacity.into_iter().map(|k| k.max(1)).collect();
    let dist = r.distribution.as_deref().map(Distribution::parse).transpose()?.unwrap_or(Distribution::Block);
    let rank_nodes = place_tasks(ntasks, &capacity, dist);
    Ok(Plan { nodes, cpus, rank_nodes, dist, cpus_per_task })
}

/// The tasks' environment from srun's per `--export`: `ALL` (the default) keeps it; `NONE`
/// keeps only the `SLURM_*` variables and what gangway itself needs (`AZ_BATCH_*`,
/// `GANGWAY_*`); a list adds its names (from srun's environment) and `NAME=value`s to those,
/// or to everything when it includes `ALL`.
fn exported_env(export: Option<&str>, all: Vec<(String, String)>) -> Vec<(String, String)> {
    let Some(spec) = export.filter(|s| !s.eq_ignore_ascii_case("ALL")) else { return all };
    let items: Vec<&str> = spec.split(',').filter(|i| !i.is_empty()).collect();
    let keep_all = items.iter().any(|i| i.eq_ignore_ascii_case("ALL"));
    let names: Vec<&str> = items.iter().filter(|i| !i.contains('=')).copied().collect();
    let always = |k: &str| k.starts_with("SLURM") || k.starts_with("AZ_BATCH_") || k.starts_with("GANGWAY_");
    let mut env: Vec<(String, String)> =
        all.into_iter().filter(|(k, _)| keep_all || always(k) || names.contains(&k.as_str())).collect();
    env.extend(items.iter().filter_map(|i| i.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())));
    env
}

/// `gangway-node`: where the launcher said it is, else next to this program, else on `PATH`.
fn node_bin() -> String {
    env(NODE_BIN_ENV)
        .or_else(|| {
            let me = std::env::current_exe().ok()?;
            let sibling = me.parent()?.join("gangway-node");
            sibling.is_file().then(|| sibling.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "gangway-node".into())
}

/// A fresh random key for the step.
pub(crate) fn new_key() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| format!("opening /dev/urandom: {e}"))?,
        &mut bytes,
    )
    .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The umask, as `SLURM_UMASK` writes it.
fn umask() -> String {
    // SAFETY: umask(2) cannot fail; it is set back at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    format!("{mask:04o}")
}

/// What the hub's loop hears about.
enum Event {
    /// A part connected and said hello.
    Hello(u32, TcpStream),
    /// A message from node `n`'s part.
    Message(u32, PartMessage),
    /// Node `n`'s connection closed.
    Closed(u32),
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
    let mpi = r.mpi.as_deref().unwrap_or("pmi2");
    let pmi = match mpi {
        "pmi2" | "pmi1" | "pmi" | "mpich" | "mvapich" | "openmpi" => true,
        "none" => false,
        "list" => {
            println!("MPI plugin types are...\n\tnone\n\tpmi2\nspecific pmi2 plugin versions available: pmi1 wire protocol (PMI_FD)");
            return Ok(0);
        }
        "pmix" | "pmix_v3" | "pmix_v4" | "pmix_v5" => {
            return Err(format!(
                "Couldn't find the specified plugin name for mpi/{mpi}: gangway's srun serves PMI-1 (--mpi=pmi2 or \
                 none); run Open MPI programs with mpirun inside the job or with gangway submit --mpi openmpi"
            ))
        }
        other => return Err(format!("Couldn't find the specified plugin name for mpi/{other}")),
    };
    if let Some(b) = &r.cpu_bind {
        gangway_api::slurm_bind::parse_cpu_bind(b)?;
    }
    if let Some(b) = &r.gpu_bind {
        gangway_api::slurm_bind::parse_gpu_bind(b)?;
    }
    let (stdin_to, input_file) = match r.input.as_deref() {
        None | Some("all") => (StdinTarget::All, None),
        Some("none") => (StdinTarget::None, None),
        Some(t) if t.parse::<u32>().is_ok() => (StdinTarget::Task(t.parse().unwrap_or(0)), None),
        Some(path) => {
            let f = std::fs::File::open(path).map_err(|e| format!("opening --input file {path}: {e}"))?;
            (StdinTarget::All, Some(f))
        }
    };
    let plan = plan(r, job)?;
    let step = next_step_id()?;
    let host = env("AZ_BATCH_HOST_LIST")
        .and_then(|h| h.split(',').next().map(str::to_owned))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    let listener = TcpListener::bind((host.as_str(), 0)).map_err(|e| format!("listening on {host}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let key = new_key()?;
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
    let own = exported_env(r.export.as_deref(), std::env::vars().collect());
    let here_dir = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
    let cwd = r.chdir.as_ref().map_or(here_dir.clone(), |d| here_dir.join(d)).to_string_lossy().into_owned();
    let starts: Vec<StepStart> = (0..plan.nodes.len())
        .map(|i| {
            let mut env = own.clone();
            env.extend(step_env(&shape, i));
            if let Some(m) = &r.mpi {
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
                output: r.output.clone(),
                error: r.error.clone(),
                pmi,
                kvsname: format!("kvs_{job}_{step}"),
                rank_nodes: plan.rank_nodes.clone(),
                cpus_per_task: plan.cpus_per_task.unwrap_or(1),
                cpu_bind: r.cpu_bind.clone(),
                gpu_bind: r.gpu_bind.clone(),
                gpus_per_task: r.gpus_per_task,
                stdin_to,
            }
        })
        .collect();

    let (tx, rx) = mpsc::channel();
    let signals = tx.clone();
    forward_signals(move |sig| {
        let _ = signals.send(Event::Signal(sig));
    });
    accept_parts(listener, key.clone(), tx.clone());
    let addr = format!("{host}:{port}");
    let here = env("SLURMD_NODENAME").unwrap_or_default();
    let bin = node_bin();
    let mut children = Vec::new();
    for (i, node) in plan.nodes.iter().enumerate() {
        let mut cmd = Command::new(&bin);
        if *node == here {
            cmd.args(["slurm-step", &addr, &i.to_string()]).env(KEY_ENV, &key);
        } else {
            let line = format!("{KEY_ENV}={key} exec \"${NODE_BIN_ENV}\" slurm-step {addr} {i}");
            cmd.args(["rsh-agent", node, &line]);
        }
        let child = cmd.stdin(Stdio::null()).spawn().map_err(|e| format!("starting {bin}: {e}"))?;
        children.push(watch_part(child, i as u32, tx.clone()));
    }
    let input: Option<Box<dyn std::io::Read + Send>> = match (stdin_to, input_file) {
        (StdinTarget::None, _) => None,
        (_, Some(f)) => Some(Box::new(f)),
        (_, None) => Some(Box::new(std::io::stdin())),
    };
    let mut hub = Hub::new(starts, r.label, r.kill_on_bad_exit);
    hub.input = input.map(|i| (i, tx.clone()));
    drop(tx);
    let code = hub.serve(&rx);
    for c in children {
        let _ = c.join();
    }
    Ok(code)
}

/// Reads srun's input on a thread of its own and hands it to the loop.
fn read_input(mut from: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<Event>) {
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

/// Accepts the parts' connections; each says hello and then streams its messages.
fn accept_parts(listener: TcpListener, key: String, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (tx, key) = (tx.clone(), key.clone());
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let Ok(writer) = stream.try_clone() else { return };
                let mut lines = BufReader::new(stream).lines();
                let hello = lines.next().and_then(Result::ok).and_then(|l| serde_json::from_str(&l).ok());
                let Some(PartMessage::Hello { node_index, key: theirs }) = hello else { return };
                if theirs != key {
                    return;
                }
                if tx.send(Event::Hello(node_index, writer)).is_err() {
                    return;
                }
                for line in lines.map_while(Result::ok) {
                    match serde_json::from_str::<PartMessage>(&line) {
                        Ok(m) => {
                            if tx.send(Event::Message(node_index, m)).is_err() {
                                return;
                            }
                        }
                        Err(e) => eprintln!("srun: error: a garbled line from node part {node_index}: {e}"),
                    }
                }
                let _ = tx.send(Event::Closed(node_index));
            });
        }
    });
}

/// Blocks the signals srun forwards and hands each to `f` on a thread of its own (children
/// get an empty signal mask back when they start).
pub(crate) fn forward_signals(mut f: impl FnMut(i32) + Send + 'static) {
    const FORWARDED: [i32; 6] =
        [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
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

/// One node's PMI puts.
type Puts = Vec<(String, String)>;

/// One node's part as the hub sees it.
#[derive(Default)]
struct Part {
    writer: Option<TcpStream>,
    done: bool,
    exited: bool,
}

/// The hub's state while the step runs.
struct Hub {
    starts: Vec<StepStart>,
    parts: Vec<Part>,
    label: bool,
    label_width: usize,
    kill_on_bad_exit: bool,
    /// Partial lines per (rank, stderr) when labelling.
    partial: HashMap<(u32, bool), Vec<u8>>,
    /// Each open fence's puts so far, by node.
    fences: BTreeMap<u32, Vec<Option<Puts>>>,
    /// Each ended task's (exit code, signal).
    ended: BTreeMap<u32, (Option<i32>, Option<i32>)>,
    failed: bool,
    killed: bool,
    last_interrupt: Option<Instant>,
    /// srun's input, read once every part has connected.
    input: Option<(Box<dyn std::io::Read + Send>, mpsc::Sender<Event>)>,
}

impl Hub {
    fn new(starts: Vec<StepStart>, label: bool, kill_on_bad_exit: bool) -> Hub {
        let ntasks = starts.first().map_or(1, |s| s.ntasks);
        Hub {
            parts: starts.iter().map(|_| Part::default()).collect(),
            starts,
            label,
            label_width: (ntasks.saturating_sub(1)).to_string().len(),
            kill_on_bad_exit,
            partial: HashMap::new(),
            fences: BTreeMap::new(),
            ended: BTreeMap::new(),
            failed: false,
            killed: false,
            last_interrupt: None,
            input: None,
        }
    }

    fn send(&mut self, node: usize, msg: &SrunMessage) {
        if let Some(w) = self.parts[node].writer.as_mut() {
            let mut line = serde_json::to_vec(msg).expect("wire types serialize");
            line.push(b'\n');
            let _ = w.write_all(&line);
        }
    }

    fn broadcast(&mut self, msg: &SrunMessage) {
        for node in 0..self.parts.len() {
            self.send(node, msg);
        }
    }

    /// Ends every task now.
    fn kill_all(&mut self) {
        if !self.killed {
            self.killed = true;
            self.broadcast(&SrunMessage::Kill);
        }
    }

    fn node_failed(&mut self, node: u32, why: &str) {
        let name = self.starts[node as usize].node_name.clone();
        eprintln!("srun: error: {name}: {why}");
        self.failed = true;
        self.parts[node as usize].done = true;
        self.kill_all();
    }

    /// Runs until every part is done and its process has exited; returns the exit code.
    fn serve(&mut self, rx: &mpsc::Receiver<Event>) -> u8 {
        let started = Instant::now();
        while !self.parts.iter().all(|p| p.done && p.exited) {
            let event = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(e) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if started.elapsed() > CONNECT_TIMEOUT {
                        for n in 0..self.parts.len() {
                            if self.parts[n].writer.is_none() && !self.parts[n].done {
                                self.node_failed(n as u32, "the step's node part did not connect back in time");
                            }
                        }
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            self.handle(event);
        }
        self.flush_partial();
        self.report_failures();
        let worst = self
            .ended
            .values()
            .map(|(code, signal)| code.unwrap_or_else(|| 128 + signal.unwrap_or(0)))
            .max()
            .unwrap_or(0);
        let missing = self.ended.len() < self.starts.first().map_or(0, |s| s.ntasks as usize);
        let code = if self.failed && (worst == 0 || missing) { 1 } else { worst };
        code.clamp(0, 255) as u8
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Hello(node, writer) => {
                let Some(part) = self.parts.get_mut(node as usize).filter(|p| p.writer.is_none()) else { return };
                part.writer = Some(writer);
                let start = SrunMessage::Start(Box::new(self.starts[node as usize].clone()));
                self.send(node as usize, &start);
                if self.killed {
                    self.send(node as usize, &SrunMessage::Kill);
                }
                if self.parts.iter().all(|p| p.writer.is_some()) {
                    if let Some((from, tx)) = self.input.take() {
                        read_input(from, tx);
                    }
                }
            }
            Event::Message(node, m) => self.message(node, m),
            Event::Closed(node) => {
                if !self.parts[node as usize].done {
                    self.node_failed(node, "lost the connection to the step's node part");
                }
            }
            Event::PartExited(node, code) => {
                let part = &mut self.parts[node as usize];
                part.exited = true;
                if !part.done && part.writer.is_none() {
                    let why = format!("could not start the step's node part (exit code {})", code.unwrap_or(-1));
                    self.node_failed(node, &why);
                }
            }
            Event::Input(Some(data)) => {
                let (text, bytes) = text_or_bytes(data);
                self.broadcast(&SrunMessage::Input { text, bytes });
            }
            Event::Input(None) => self.broadcast(&SrunMessage::InputEnd),
            Event::Signal(sig) => {
                let now = Instant::now();
                if sig == libc::SIGINT
                    && self.last_interrupt.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
                {
                    eprintln!("srun: forcing job termination");
                    self.kill_all();
                } else {
                    if sig == libc::SIGINT {
                        eprintln!("srun: interrupt (one more within 1 sec to abort)");
                        self.last_interrupt = Some(now);
                    }
                    self.broadcast(&SrunMessage::Signal { signal: sig });
                }
            }
        }
    }

    fn message(&mut self, node: u32, m: PartMessage) {
        match m {
            PartMessage::Output { rank, stderr, text, bytes } => {
                self.output(rank, stderr, &joined_bytes(text, bytes));
            }
            PartMessage::Fence { epoch, puts } => {
                let n = self.parts.len();
                let slots = self.fences.entry(epoch).or_insert_with(|| vec![None; n]);
                if let Some(slot) = slots.get_mut(node as usize) {
                    *slot = Some(puts);
                }
                if slots.iter().all(Option::is_some) {
                    let all = self.fences.remove(&epoch).unwrap_or_default().into_iter().flatten().flatten().collect();
                    self.broadcast(&SrunMessage::FenceDone { epoch, all });
                }
            }
            PartMessage::Abort { rank, code, message } => {
                eprintln!("srun: error: task {rank} aborted (PMI_Abort, code {code}): {}", message.unwrap_or_default());
                self.failed = true;
                self.ended.entry(rank).or_insert((Some(code.max(1)), None));
                self.kill_all();
            }
            PartMessage::Exited { rank, code, signal } => {
                self.ended.insert(rank, (code, signal));
                if code != Some(0) && self.kill_on_bad_exit {
                    self.kill_all();
                }
            }
            PartMessage::Failed { message } => self.node_failed(node, &message),
            PartMessage::Done => self.parts[node as usize].done = true,
            PartMessage::Hello { .. } => {}
        }
    }

    fn output(&mut self, rank: u32, stderr: bool, data: &[u8]) {
        let mut out: Box<dyn Write> = if stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
        if !self.label {
            let _ = out.write_all(data);
            let _ = out.flush();
            return;
        }
        let buf = self.partial.entry((rank, stderr)).or_default();
        buf.extend_from_slice(data);
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return };
        let whole: Vec<u8> = buf.drain(..=end).collect();
        let mut text = Vec::with_capacity(whole.len() + 16);
        for line in whole.split_inclusive(|b| *b == b'\n') {
            text.extend_from_slice(format!("{rank:>w$}: ", w = self.label_width).as_bytes());
            text.extend_from_slice(line);
        }
        let _ = out.write_all(&text);
        let _ = out.flush();
    }

    /// Output that did not end with a newline, labelled and ended.
    fn flush_partial(&mut self) {
        let rest: Vec<((u32, bool), Vec<u8>)> = self.partial.drain().filter(|(_, b)| !b.is_empty()).collect();
        for ((rank, stderr), mut data) in rest {
            data.push(b'\n');
            self.output(rank, stderr, &data);
        }
    }

    /// Slurm's end-of-step lines: `srun: error: node1: tasks 0-1: Exited with exit code 3`.
    fn report_failures(&self) {
        let mut by: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
        for (rank, (code, signal)) in &self.ended {
            let why = match (code, signal) {
                (Some(0), _) => continue,
                (Some(c), _) => format!("Exited with exit code {c}"),
                (None, Some(s)) => signal_name(*s),
                (None, None) => continue,
            };
            let node = self.starts.iter().find(|s| s.ranks.contains(rank)).map_or("", |s| s.node_name.as_str());
            by.entry((node.to_owned(), why)).or_default().push(*rank);
        }
        for ((node, why), ranks) in by {
            let (word, list) =
                if ranks.len() == 1 { ("task", ranks[0].to_string()) } else { ("tasks", ranges(&ranks)) };
            eprintln!("srun: error: {node}: {word} {list}: {why}");
        }
    }
}

/// `0-2,5` for ranks 0, 1, 2 and 5.
fn ranges(ranks: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let mut j = i;
        while j + 1 < ranks.len() && ranks[j + 1] == ranks[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { ranks[i].to_string() } else { format!("{}-{}", ranks[i], ranks[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// What a signal is called in srun's report (`Killed`, `Terminated`, …).
fn signal_name(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local string.
    let name = unsafe { libc::strsignal(sig) };
    if name.is_null() {
        return format!("Signal {sig}");
    }
    // SAFETY: a non-null strsignal result is a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_keeps_what_it_names() {
        let all =
            vec![("PATH".to_owned(), "/bin".to_owned()), ("SLURM_JOB_ID".into(), "3".into()), ("X".into(), "1".into())];
        let keys = |e: Vec<(String, String)>| e.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        assert_eq!(keys(exported_env(None, all.clone())), ["PATH=/bin", "SLURM_JOB_ID=3", "X=1"]);
        assert_eq!(keys(exported_env(Some("NONE"), all.clone())), ["SLURM_JOB_ID=3"]);
        assert_eq!(keys(exported_env(Some("X,Y=2"), all.clone())), ["SLURM_JOB_ID=3", "X=1", "Y=2"]);
        assert_eq!(keys(exported_env(Some("ALL,X=9"), all)), ["PATH=/bin", "SLURM_JOB_ID=3", "X=1", "X=9"]);
    }

    #[test]
    fn rank_lists_compress_as_srun_writes_them() {
        assert_eq!(ranges(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(signal_name(libc::SIGKILL), "Killed");
    }

    #[test]
    fn labels_pad_to_the_widest_rank_and_wait_for_whole_lines() {
        let start = StepStart { ntasks: 12, ..StepStart::default() };
        let mut hub = Hub::new(vec![start], true, false);
        assert_eq!(hub.label_width, 2);
        hub.output(3, false, b"par");
        assert_eq!(hub.partial[&(3, false)], b"par");
        hub.output(3, false, b"tial\nnext");
        assert_eq!(hub.partial[&(3, false)], b"next");
    }
}

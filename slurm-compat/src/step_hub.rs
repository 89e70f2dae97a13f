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

use gangway_api::slurm_step::{
    joined_bytes, text_or_bytes, PartMessage, SrunMessage, StdinTarget, StepStart, AGENT_COMMAND_ENV, KEY_ENV,
    NODE_BIN_ENV,
};

use crate::step::{env, next_step_id, StepRequest};
use crate::step_layout::{ranks_by_node, step_env, StepShape};
use crate::step_plan::{exported_env, node_bin, per_part, plan, umask, PatternNames};

/// How long a node part may take to connect back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long tasks get between SIGTERM and SIGKILL when srun ends a step (`-K`, Ctrl-C twice).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What the hub's loop hears about.
enum Event {
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
                output: r.output.clone().filter(|p| per_part(p)),
                error: error.clone().filter(|p| per_part(p)),
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
    let mut hub = Hub::new(starts, r.label, r.kill_on_bad_exit);
    hub.input = input.map(|i| (i, tx.clone()));
    hub.part_pids = pids;
    hub.files = files;
    hub.quit_on_interrupt = r.quit_on_interrupt;
    hub.step_name = format!("StepId={job}.{step}");
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
                        Err(e) => eprintln!("srun: error: a garbled line from node part {node_index}: {e}"),
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
    /// The connection the hub took for it.
    conn: Option<u64>,
    done: bool,
    exited: bool,
}

/// The hub's state while the step runs.
struct Hub {
    starts: Vec<StepStart>,
    parts: Vec<Part>,
    /// The parts' processes (or their agents), by node.
    part_pids: Vec<i32>,
    label: bool,
    label_width: usize,
    kill_on_bad_exit: bool,
    quit_on_interrupt: bool,
    /// `StepId=J.S`, for status lines.
    step_name: String,
    /// The output and error files srun writes itself (`-o`/`-e` naming no node or task).
    files: (Option<std::fs::File>, Option<std::fs::File>),
    /// Partial lines per (rank, stderr) when labelling.
    partial: HashMap<(u32, bool), Vec<u8>>,
    /// Each open fence's puts so far, by node.
    fences: BTreeMap<u32, Vec<Option<Puts>>>,
    /// Each ended task's (exit code, signal).
    ended: BTreeMap<u32, (Option<i32>, Option<i32>)>,
    failed: bool,
    killed: bool,
    /// When a terminating step gets SIGKILL after its SIGTERM.
    kill_at: Option<Instant>,
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
            part_pids: Vec::new(),
            label,
            label_width: (ntasks.saturating_sub(1)).to_string().len(),
            kill_on_bad_exit,
            quit_on_interrupt: false,
            step_name: String::new(),
            files: (None, None),
            partial: HashMap::new(),
            fences: BTreeMap::new(),
            ended: BTreeMap::new(),
            failed: false,
            killed: false,
            kill_at: None,
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

    /// Ends every task as Slurm ends a step: SIGTERM, then SIGKILL a moment later.
    fn terminate(&mut self) {
        if self.kill_at.is_none() && !self.killed {
            self.broadcast(&SrunMessage::Signal { signal: libc::SIGTERM });
            self.kill_at = Some(Instant::now() + KILL_WAIT);
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
            if started.elapsed() > CONNECT_TIMEOUT {
                for n in 0..self.parts.len() {
                    if self.parts[n].writer.is_none() && !self.parts[n].done {
                        self.node_failed(n as u32, "the step's node part did not connect back in time");
                        // Its agent (or the part itself) goes too, or nothing would end it.
                        if let Some(pid) = self.part_pids.get(n) {
                            // SAFETY: kill(2) on our own child; it is reaped by its watcher.
                            unsafe { libc::kill(*pid, libc::SIGKILL) };
                        }
                    }
                }
            }
            if self.kill_at.is_some_and(|t| Instant::now() >= t) {
                self.kill_all();
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => self.handle(event),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
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

    /// Whether connection `conn` is the one the hub took for `node`.
    fn current(&self, node: u32, conn: u64) -> bool {
        self.parts.get(node as usize).is_some_and(|p| p.conn == Some(conn))
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Hello(node, conn, writer) => {
                let Some(part) = self.parts.get_mut(node as usize).filter(|p| p.conn.is_none()) else { return };
                part.writer = Some(writer);
                part.conn = Some(conn);
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
            Event::Message(node, conn, m) if self.current(node, conn) => self.message(node, m),
            Event::Closed(node, conn) if self.current(node, conn) => {
                if !self.parts[node as usize].done {
                    self.node_failed(node, "lost the connection to the step's node part");
                }
            }
            Event::Message(..) | Event::Closed(..) => {}
            Event::PartExited(node, code) => {
                let Some(part) = self.parts.get_mut(node as usize) else { return };
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
            Event::Signal(libc::SIGINT) => self.interrupt(),
            Event::Signal(sig) => self.broadcast(&SrunMessage::Signal { signal: sig }),
        }
    }

    /// Ctrl-C, as Slurm's srun takes it: the first reports the tasks' state, a second within a
    /// second sends them SIGINT and ends the step (`-q`: the first does).
    fn interrupt(&mut self) {
        let now = Instant::now();
        let again = self.last_interrupt.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
        if again || self.quit_on_interrupt {
            eprintln!("srun: sending Ctrl-C to {}", self.step_name);
            self.broadcast(&SrunMessage::Signal { signal: libc::SIGINT });
            self.terminate();
            return;
        }
        self.last_interrupt = Some(now);
        eprintln!("srun: interrupt (one more within 1 sec to abort)");
        let ntasks = self.starts.first().map_or(0, |s| s.ntasks);
        let running: Vec<u32> = (0..ntasks).filter(|r| !self.ended.contains_key(r)).collect();
        let done: Vec<u32> = (0..ntasks).filter(|r| self.ended.contains_key(r)).collect();
        for (what, ranks) in [("running", running), ("exited", done)] {
            if !ranks.is_empty() {
                let word = if ranks.len() == 1 { "task" } else { "tasks" };
                eprintln!("srun: {} {word} {}: {what}", self.step_name, ranges(&ranks));
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
                    self.terminate();
                }
            }
            PartMessage::Failed { message } => self.node_failed(node, &message),
            PartMessage::Done => self.parts[node as usize].done = true,
            PartMessage::Hello { .. } => {}
        }
    }

    fn output(&mut self, rank: u32, stderr: bool, data: &[u8]) {
        let text = if self.label {
            let buf = self.partial.entry((rank, stderr)).or_default();
            buf.extend_from_slice(data);
            let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return };
            let whole: Vec<u8> = buf.drain(..=end).collect();
            let mut text = Vec::with_capacity(whole.len() + 16);
            for line in whole.split_inclusive(|b| *b == b'\n') {
                text.extend_from_slice(format!("{rank:>w$}: ", w = self.label_width).as_bytes());
                text.extend_from_slice(line);
            }
            text
        } else {
            data.to_vec()
        };
        let file = if stderr { self.files.1.as_mut() } else { self.files.0.as_mut() };
        let _ = match (file, stderr) {
            (Some(f), _) => f.write_all(&text),
            (None, true) => std::io::stderr().write_all(&text),
            (None, false) => std::io::stdout().write_all(&text).and_then(|()| std::io::stdout().flush()),
        };
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

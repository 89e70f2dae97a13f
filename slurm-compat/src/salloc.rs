//! `salloc [OPTIONS…] [COMMAND [ARGS…]]`: an allocation, and a command run here (on the
//! submit host) while it lasts, as Slurm's salloc does.
//!
//! The allocation is a batch job whose script is the holder ([`crate::salloc_holder`]): on
//! the allocation's first node it listens on a TCP port, and writes the port and the job's
//! `SLURM_*` environment to `.gangway-salloc-N.json` in the submit directory (which, as for
//! sbatch's output files, must be shared with that node). salloc reads it, runs the command
//! (by default the user's shell) with that environment plus the holder's address and key,
//! and when the command exits tells the holder to end the job with its exit code.
//!
//! `srun` run by that command is forwarded ([`forward_srun`]): the holder runs the same
//! srun inside the allocation, where it starts its step over the job's nodes, and streams
//! its output back; input and signals go the other way.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gangway_api::slurm_step::{AllocReady, AllocReply, AllocRequest, SALLOC_ADDR_ENV, SALLOC_KEY_ENV};

use crate::step::Failure;
use crate::{cluster, options_end, resolve_command_line};

/// Variables of the batch environment that describe the batch host's own process, not the
/// allocation: salloc's command does not get them.
const NOT_FOR_SALLOC: [&str; 11] = [
    "SLURMD_NODENAME",
    "SLURM_NODEID",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_GTIDS",
    "SLURM_TASK_PID",
    "SLURM_TOPOLOGY_ADDR",
    "SLURM_TOPOLOGY_ADDR_PATTERN",
    "SLURM_CPUS_ON_NODE",
    "SLURM_PRIO_PROCESS",
    "PWD",
];

/// The rendezvous file of job `id` in `dir`.
pub fn ready_file(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!(".gangway-salloc-{id}.json"))
}

/// Runs `salloc ARGS…`.
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(f) => f.exit("salloc"),
    }
}

/// A no-op handler: salloc outlives Ctrl-C meant for its command, and a handler (unlike
/// `SIG_IGN`) is reset to the default in the command when it starts.
extern "C" fn ignore(_: libc::c_int) {}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Sets `handler` for the signals that end an interactive command.
fn handle_signals(handler: extern "C" fn(libc::c_int)) {
    // SAFETY: both handlers only touch an atomic or nothing, which is async-signal-safe.
    unsafe {
        for s in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(s, handler as libc::sighandler_t);
        }
    }
}

/// A running allocation and its holder.
pub struct Allocation {
    /// The job id.
    pub id: u64,
    /// The holder's `ADDR:PORT`.
    pub addr: String,
    /// The allocation's key.
    pub key: String,
    /// What the holder wrote: the job's environment.
    pub ready: AllocReady,
}

impl Allocation {
    /// Asks for an allocation with sbatch's options `opts` (`prog` names the command in
    /// messages), and waits until it runs and its holder is ready. Ctrl-C while waiting
    /// cancels it.
    pub fn get(prog: &str, opts: &[String]) -> Result<Allocation, Failure> {
        let me = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
        let mut sbatch: Vec<String> = opts.to_vec();
        sbatch.push("--output=/dev/null".into());
        sbatch.push(format!("--wrap=exec '{}' salloc-holder", me.to_string_lossy().replace('\'', r"'\''")));
        let resolved = resolve_command_line(&sbatch, |_| Err(std::io::Error::other("no script")))
            .map_err(|e| Failure::Usage(e.render(prog)))?;
        let cwd = std::env::current_dir().map_err(|e| format!("getcwd failed: {e}"))?;
        let req = crate::submit::build_request(&resolved, &cwd, None)
            .map_err(|m| Failure::Usage(m.replace("sbatch: ", &format!("{prog}: "))))?;
        let mut client = cluster::connect(prog)?;
        let id = client
            .slurm_submit(&req)
            .map_err(|e| {
                crate::submit::submit_error(&e)
                    .replace("sbatch: error: Batch job submission failed", "Job submit/allocate failed")
            })?
            .job_id;
        handle_signals(on_interrupt);
        let file = ready_file(Path::new(&req.work_dir), id);
        match wait_ready(prog, &mut client, id, &file) {
            Ok((addr, ready)) => Ok(Allocation { id, addr, key: ready.key.clone(), ready }),
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                let cancel = gangway_api::slurm::SlurmCancel { jobs: vec![id.to_string()], ..Default::default() };
                let _ = client.slurm_cancel(&cancel);
                Err(e.into())
            }
        }
    }

    /// Ends the allocation with `code` (its job's exit code).
    pub fn release(self, code: i32) {
        let release = AllocRequest::Release { key: self.key, code };
        let addr = self.addr.parse::<std::net::SocketAddr>();
        let connected = addr.map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(10)));
        if let Ok(Ok(mut s)) = connected {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = writeln!(s, "{}", serde_json::to_string(&release).expect("wire types serialize"));
            let mut done = String::new();
            let _ = BufReader::new(s).read_line(&mut done);
        }
    }
}

fn run(args: &[String]) -> Result<i32, Failure> {
    let at = options_end(args).map_err(|e| Failure::Usage(e.render("salloc")))?;
    let (opts, command) = args.split_at(at);
    let command: Vec<String> = if command.is_empty() {
        vec![std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into())]
    } else {
        command.to_vec()
    };
    let mut opts = opts.to_vec();
    if !opts.iter().any(|o| o == "-J" || o.starts_with("--job-name") || (o.starts_with("-J") && o.len() > 2)) {
        opts.push(format!("--job-name={}", command[0].rsplit('/').next().unwrap_or("salloc")));
    }
    let alloc = Allocation::get("salloc", &opts)?;
    let id = alloc.id;
    handle_signals(ignore);
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    for (k, v) in alloc.ready.env.iter().filter(|(k, _)| !NOT_FOR_SALLOC.contains(&k.as_str())) {
        cmd.env(k, v);
    }
    cmd.env(SALLOC_ADDR_ENV, &alloc.addr).env(SALLOC_KEY_ENV, &alloc.key);
    let code = match cmd.spawn() {
        Ok(mut child) => {
            let mut client = cluster::connect("salloc")?;
            let status = wait_child(&mut child, &mut client, id);
            status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0))
        }
        Err(e) => {
            gangway_api::errln!("salloc: error: {}: {e}", command[0]);
            if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    };
    gangway_api::errln!("salloc: Relinquishing job allocation {id}");
    alloc.release(code);
    Ok(code)
}

/// Waits for the job to run and its holder to write the rendezvous file; the holder's
/// address and what it wrote.
fn wait_ready(
    prog: &str,
    client: &mut gangway_api::client::Client,
    id: u64,
    file: &Path,
) -> Result<(String, AllocReady), String> {
    let mut said_pending = false;
    let mut delay = Duration::from_millis(5);
    let mut running_since: Option<Instant> = None;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            gangway_api::errln!("{prog}: Job allocation {id} has been revoked.");
            return Err(format!("interrupted while waiting for job allocation {id}; it was cancelled"));
        }
        let job = client.slurm_job(id).map_err(|e| format!("job {id}: {}", cluster::message(&e)))?;
        if job.state.is_finished() {
            return Err(format!("job allocation {id} ended before it could be used ({})", job.state.as_str()));
        }
        if job.state == gangway_api::slurm::SlurmJobState::Pending && !said_pending {
            if prog == "salloc" {
                gangway_api::errln!("salloc: Pending job allocation {id}");
            }
            gangway_api::errln!("{prog}: job {id} queued and waiting for resources");
            said_pending = true;
        }
        if job.state == gangway_api::slurm::SlurmJobState::Running {
            let since = *running_since.get_or_insert_with(Instant::now);
            if let Some(text) = read_private(file, job.uid)? {
                let ready: AllocReady =
                    serde_json::from_str(&text).map_err(|e| format!("reading {}: {e}", file.display()))?;
                let _ = std::fs::remove_file(file);
                let first = job.nodes.first().cloned().unwrap_or_default();
                let ip = client.get_node(&first).map(|n| n.ip_address).unwrap_or_else(|_| first.clone());
                if said_pending {
                    gangway_api::errln!("{prog}: job {id} has been allocated resources");
                }
                if prog == "salloc" {
                    gangway_api::errln!("salloc: Granted job allocation {id}");
                    let nodes = gangway_topology::hostlist::compress_hostlist(&job.nodes);
                    gangway_api::errln!("salloc: Nodes {nodes} are ready for job");
                }
                return Ok((format!("{ip}:{}", ready.port), ready));
            }
            if since.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "job {id} runs but its holder wrote no {} (is the directory shared with {}?)",
                    file.display(),
                    job.nodes.first().map_or("its first node", String::as_str)
                ));
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// The holder's ready file, once it is there: read only if it is a regular file of the job's
/// user that nobody else may read or write (no link, no file planted by another user).
fn read_private(file: &Path, uid: u32) -> Result<Option<String>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut f = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("refusing {}: {e}", file.display())),
    };
    let meta = f.metadata().map_err(|e| format!("reading {}: {e}", file.display()))?;
    if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(format!("refusing {}: it is not the job's own private file", file.display()));
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| format!("reading {}: {e}", file.display()))?;
    Ok(Some(text))
}

/// Waits for salloc's command; if the allocation ends first (scancel, its time limit), says
/// so and ends the command, as Slurm's salloc does.
fn wait_child(
    child: &mut std::process::Child,
    client: &mut gangway_api::client::Client,
    id: u64,
) -> std::process::ExitStatus {
    let mut revoked = false;
    let mut last_check = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if !revoked && last_check.elapsed() > Duration::from_secs(1) {
            last_check = Instant::now();
            if client.slurm_job(id).is_ok_and(|j| j.state.is_finished()) {
                gangway_api::errln!("salloc: Job allocation {id} has been revoked.");
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
                revoked = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `srun` under salloc: runs `srun ARGS…` inside the allocation through its holder; the
/// exit code of that srun.
pub fn forward_srun(args: &[String]) -> Result<u8, String> {
    let addr = std::env::var(SALLOC_ADDR_ENV).map_err(|_| format!("{SALLOC_ADDR_ENV} is not set"))?;
    let key = std::env::var(SALLOC_KEY_ENV).unwrap_or_default();
    forward_srun_to(&addr, key, args)
}

/// Runs `srun ARGS…` in the allocation whose holder is at `addr`.
pub fn forward_srun_to(addr: &str, key: String, args: &[String]) -> Result<u8, String> {
    // Signals are blocked (and handed to a thread) before any other thread exists, so none of
    // them can end this process instead of reaching the srun inside.
    let (signal_tx, signal_rx) = std::sync::mpsc::channel::<i32>();
    crate::step_hub::forward_signals(move |signal| {
        let _ = signal_tx.send(signal);
    });
    let stream = TcpStream::connect(addr).map_err(|e| format!("reaching the allocation at {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    // Requests, input and signals share the connection one whole line at a time.
    let writer = Arc::new(Mutex::new(stream.try_clone().map_err(|e| e.to_string())?));
    let cwd = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?.to_string_lossy().into_owned();
    let first = AllocRequest::Srun { key, args: args.to_vec(), env: std::env::vars().collect(), cwd };
    send(&mut *writer.lock().expect("lock"), &first)?;
    let input = writer.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut stdin = std::io::stdin();
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = buf[..n].to_vec().into();
                    if send(&mut *input.lock().expect("lock"), &AllocRequest::Input { data }).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = send(&mut *input.lock().expect("lock"), &AllocRequest::InputEnd);
    });
    std::thread::spawn(move || {
        for signal in signal_rx {
            let _ = send(&mut *writer.lock().expect("lock"), &AllocRequest::Signal { signal });
        }
    });
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("reading from the allocation: {e}"))?;
        match serde_json::from_str::<AllocReply>(&line) {
            Ok(AllocReply::Output { stderr, data }) => {
                let data = data.into_bytes();
                let _ = if stderr { std::io::stderr().write_all(&data) } else { std::io::stdout().write_all(&data) };
                let _ = std::io::stdout().flush();
            }
            Ok(AllocReply::Exited { code }) => return Ok(code.clamp(0, 255) as u8),
            Err(e) => return Err(format!("a garbled line from the allocation: {e}")),
        }
    }
    Err("the allocation's holder went away (the job ended?)".into())
}

/// One JSON line.
pub(crate) fn send(w: &mut impl Write, msg: &impl serde::Serialize) -> Result<(), String> {
    let mut line = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
    line.push(b'\n');
    w.write_all(&line).map_err(|e| e.to_string())
}

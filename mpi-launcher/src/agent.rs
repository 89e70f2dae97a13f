//! The launcher's side of gangway's remote-launch agent (Open MPI's `plm_rsh_agent`, and
//! srun's way to its steps' node parts).
//!
//! Every instance of an Open MPI attempt, and of a Slurm batch gang, is a [`Site`]: a Unix
//! socket in its task directory where the `rsh-agent` helpers started on this node (by
//! `mpirun`, by `orted` when it spawns further daemons down its tree, or by `srun` for its
//! steps' node parts) ask for a command on some host. A request for this
//! node runs here at once; one for another node goes to the head, which relays it to that
//! node's launcher, and its end comes back the same way. The command runs with `sh -c` in the
//! instance's cgroup with the instance's environment, so the daemon and the ranks it starts
//! are contained and killed like any task process. An agent that goes away (mpirun killed it)
//! gets its command killed.
//!
//! The sites are kept in one registry per launcher process, keyed by attempt: a launcher
//! process has exactly one executor, and messages from the head find their site by attempt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gangway_api::messages::{AgentRelay, AttemptId, LauncherMessage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cgroup::TaskCgroup;
use crate::executor::{Executor, Launch, RunMode, StopReason};
use crate::openmpi_files::join_command_line;

/// The socket's name in the task directory.
pub const SOCKET_NAME: &str = ".gangway-agent.sock";

static SITES: LazyLock<Mutex<HashMap<AttemptId, Arc<Site>>>> = LazyLock::new(Default::default);

/// Why a site could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// Binding the socket failed.
    #[error("listening on the agent socket {path}")]
    Bind {
        /// The socket.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// How many agent commands this node has run for the attempt, and how many still run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Commands started so far.
    pub started: u32,
    /// Commands still running.
    pub running: u32,
}

/// How a command ended, for the agent that asked.
#[derive(Debug, Clone)]
struct Reply {
    exit_code: Option<i32>,
    error: Option<String>,
}

/// One instance of an Open MPI attempt on this node.
pub struct Site {
    exec: Arc<Executor>,
    id: AttemptId,
    instance: u32,
    /// Names `mpirun` may give this node: its node name and its address.
    aliases: Vec<String>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    cgroup: Arc<Option<TaskCgroup>>,
    /// Commands running here, by (asking instance, request).
    runs: Mutex<HashMap<(u32, u64), mpsc::UnboundedSender<StopReason>>>,
    /// This node's agents waiting for commands on other nodes, by request.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_req: AtomicU64,
    activity: watch::Sender<Activity>,
}

/// An open site: its socket's accept loop runs until [`SiteHandle::close`].
pub struct SiteHandle {
    site: Arc<Site>,
    accept: tokio::task::JoinHandle<()>,
    socket: PathBuf,
}

/// What a site needs to run commands like the instance's other processes.
pub struct SiteSpec {
    /// The attempt.
    pub id: AttemptId,
    /// This node's instance.
    pub instance: u32,
    /// Names `mpirun` may use for this node.
    pub aliases: Vec<String>,
    /// The task directory (the socket lives there; commands log to its stdout/stderr.txt).
    pub dir: PathBuf,
    /// The commands' environment.
    pub env: Vec<(String, String)>,
    /// The cgroup they run in.
    pub cgroup: Arc<Option<TaskCgroup>>,
}

/// The socket path of a task directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

impl Site {
    /// Opens the site: binds its socket and registers it for messages from the head.
    pub fn open(exec: &Arc<Executor>, spec: SiteSpec) -> Result<SiteHandle, SiteError> {
        let socket = socket_path(&spec.dir);
        let shown = socket.to_string_lossy().into_owned();
        // A socket left by an earlier attempt of the same task would refuse the bind.
        let _ = std::fs::remove_file(&socket);
        // Only the task's user (whose mpirun and daemons run the agent) may connect, and only
        // they are answered: anyone else could run commands as them. The user makes the
        // socket in their directory (root never works by path there) and keeps it to
        // themselves.
        let user = exec.user_of(&spec.dir);
        let bind = || {
            use std::os::unix::fs::PermissionsExt;
            let (_dir, short) = crate::agent_cli::short_socket_path(&socket)?;
            let listener = std::os::unix::net::UnixListener::bind(&short)?;
            std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let listener = crate::users::as_user(user.as_deref(), bind)
            .and_then(UnixListener::from_std)
            .map_err(|source| SiteError::Bind { path: shown, source })?;
        // SAFETY: geteuid has no preconditions.
        let allowed = user.map_or(unsafe { libc::geteuid() }, |u| u.uid);
        let site = Arc::new(Site {
            exec: exec.clone(),
            id: spec.id,
            instance: spec.instance,
            aliases: spec.aliases,
            dir: spec.dir,
            env: spec.env,
            cgroup: spec.cgroup,
            runs: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(0),
            activity: watch::channel(Activity::default()).0,
        });
        SITES.lock().expect("lock").insert(site.id.clone(), site.clone());
        let me = site.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let peer = stream.peer_cred().map(|c| c.uid()).ok();
                if peer.is_some_and(|uid| uid == allowed || uid == 0) {
                    tokio::spawn(me.clone().serve_agent(stream));
                } else {
                    tracing::warn!(?peer, allowed, "refused an agent connection from another user");
                }
            }
        });
        Ok(SiteHandle { site, accept, socket })
    }

    /// Answers one agent: runs its command here or through the head, replies with the exit
    /// code, and kills the command if the agent goes away first.
    async fn serve_agent(self: Arc<Self>, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        if (&mut rd).take(1 << 20).read_line(&mut line).await.is_err() {
            return;
        }
        let request: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
        let (Some(host), Some(command)) = (request["host"].as_str(), request["command"].as_str()) else {
            let _ = wr.write_all(b"{\"error\":\"a request is one JSON line with host and command\"}\n").await;
            return;
        };
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let local = self.aliases.iter().any(|a| a == host);
        if local {
            let (me, command) = (self.clone(), command.to_owned());
            tokio::spawn(async move {
                let _ = tx.send(me.run_here(me.instance, req, command).await);
            });
        } else {
            self.waiting.lock().expect("lock").insert(req, tx);
            self.exec.send(LauncherMessage::Agent(AgentRelay::Run {
                id: self.id.clone(),
                origin: self.instance,
                req,
                host: host.to_owned(),
                command: command.to_owned(),
            }));
        }
        let mut rest = Vec::new();
        tokio::select! {
            reply = rx => {
                let reply = reply.unwrap_or(Reply { exit_code: None, error: Some("the task ended".into()) });
                let answer = match (reply.exit_code, reply.error) {
                    (Some(code), _) => serde_json::json!({ "exit_code": code }),
                    (None, e) => serde_json::json!({ "error": e.unwrap_or_else(|| "the command did not start".into()) }),
                };
                let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
            }
            // The agent closed its end: mpirun killed it, so its command must go too.
            _ = rd.read_to_end(&mut rest) => {
                if local {
                    self.stop_run(self.instance, req);
                } else {
                    self.waiting.lock().expect("lock").remove(&req);
                    self.exec.send(LauncherMessage::Agent(AgentRelay::Kill {
                        id: self.id.clone(),
                        origin: self.instance,
                        req,
                        host: host.to_owned(),
                    }));
                }
            }
        }
    }

    /// Runs `command` with `sh -c` in the instance's cgroup for request `req` of `origin`.
    async fn run_here(self: &Arc<Self>, origin: u32, req: u64, command: String) -> Reply {
        let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
        self.runs.lock().expect("lock").insert((origin, req), stop_tx);
        self.activity.send_modify(|a| {
            a.started += 1;
            a.running += 1;
        });
        tracing::debug!(job = %self.id.job, task = %self.id.task, origin, req, command, "agent command");
        let launch = Launch {
            dir: self.dir.clone(),
            command_line: join_command_line(&["/bin/sh".into(), "-c".into(), command]),
            env: self.env.clone(),
            max_wall_clock: None,
            cgroup_prefix: 'o',
            rank: None,
        };
        let mode = RunMode { keep_leftovers: false, append_logs: true };
        let o = self.exec.run_in(launch, self.cgroup.as_ref().as_ref(), &mut stop_rx, mode).await;
        self.runs.lock().expect("lock").remove(&(origin, req));
        self.activity.send_modify(|a| a.running -= 1);
        Reply {
            exit_code: o.exit_code,
            error: o.exit_code.is_none().then(|| o.failure.map_or_else(|| "not started".into(), |f| f.message)),
        }
    }

    fn stop_run(&self, origin: u32, req: u64) {
        if let Some(tx) = self.runs.lock().expect("lock").get(&(origin, req)) {
            let _ = tx.send(StopReason::Killed("AgentGone".into()));
        }
    }
}

impl SiteHandle {
    /// The socket the agents on this node connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Follows the commands this node runs (a subtask's daemons ending end its part).
    pub fn activity(&self) -> watch::Receiver<Activity> {
        self.site.activity.subscribe()
    }

    /// Closes the site: no new requests, every command still running here stopped (after
    /// the kill grace), agents still waiting answered with an error, the socket removed.
    pub async fn close(self) {
        SITES.lock().expect("lock").remove(&self.site.id);
        self.accept.abort();
        let _ = self.accept.await;
        let stops: Vec<_> = self.site.runs.lock().expect("lock").values().cloned().collect();
        for tx in stops {
            let _ = tx.send(StopReason::Killed("TaskEnded".into()));
        }
        let mut activity = self.site.activity.subscribe();
        let _ = activity.wait_for(|a| a.running == 0).await;
        self.site.waiting.lock().expect("lock").clear();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A relayed agent message from the head.
pub fn from_head(exec: &Arc<Executor>, relay: AgentRelay) {
    let id = match &relay {
        AgentRelay::Run { id, .. } | AgentRelay::Exited { id, .. } | AgentRelay::Kill { id, .. } => id.clone(),
    };
    let site = SITES.lock().expect("lock").get(&id).cloned();
    match (relay, site) {
        (AgentRelay::Run { id, origin, req, command, .. }, Some(site)) => {
            tokio::spawn(async move {
                let reply = site.run_here(origin, req, command).await;
                let (exit_code, error) = (reply.exit_code, reply.error);
                site.exec.send(LauncherMessage::Agent(AgentRelay::Exited { id, origin, req, exit_code, error }));
            });
        }
        (AgentRelay::Run { id, origin, req, .. }, None) => {
            let error =
                Some(format!("node '{}' runs no instance of this attempt that takes remote commands", exec.node));
            exec.send(LauncherMessage::Agent(AgentRelay::Exited { id, origin, req, exit_code: None, error }));
        }
        (AgentRelay::Exited { req, exit_code, error, .. }, Some(site)) => {
            if let Some(tx) = site.waiting.lock().expect("lock").remove(&req) {
                let _ = tx.send(Reply { exit_code, error });
            }
        }
        (AgentRelay::Kill { origin, req, .. }, Some(site)) => site.stop_run(origin, req),
        (_, None) => {}
    }
}

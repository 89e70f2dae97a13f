//! Running task attempts: directories, environment, cgroup, process group, wall clock, kill.
//!
//! Each attempt is one tokio task that owns its child. The child starts in its own process
//! group and (from `pre_exec`, before `exec`) in its own cgroup, with SIGKILL as its
//! parent-death signal, so nothing it starts outlives it: terminate and wall-clock expiry send
//! SIGTERM to the group and the cgroup, then SIGKILL after the grace period; when the main
//! process exits, whatever it left behind in its cgroup is killed.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gangway_api::cmdline::split_command_line;
use gangway_api::messages::{AttemptId, LauncherMessage, StartTask, TaskFinished};
use gangway_api::{ErrorCategory, TaskFailureInformation, Timestamp};
use tokio::sync::mpsc;

use crate::cgroup::{NodeCgroups, TaskCgroup};
use crate::layout::NodeLayout;
use crate::spawn;
use crate::startup::StartTaskSlot;
use crate::users::TaskUser;

/// The file in a task directory that records when the directory may be removed.
pub const EXPIRY_MARKER: &str = ".gangway-expiry";

/// Why a running attempt is being stopped.
#[derive(Debug, Clone)]
pub enum StopReason {
    /// The head asked (terminate, job ended, node drained).
    Killed(String),
    /// Its wall-clock limit passed.
    WallClock,
    /// The launcher is shutting down.
    Shutdown,
}

/// Where the head's answer to a PMI fence goes.
pub(crate) type FenceReply = tokio::sync::oneshot::Sender<Vec<(String, String)>>;

/// One process to run: a task attempt or the pool's start task.
pub(crate) struct Launch {
    /// Holds `stdout.txt`, `stderr.txt` and the working directory `wd`.
    pub dir: PathBuf,
    /// Split into arguments without a shell.
    pub command_line: String,
    /// Its whole environment (later settings of a variable win).
    pub env: Vec<(String, String)>,
    /// Killed (failure `TaskEnded`) once this has passed.
    pub max_wall_clock: Option<Duration>,
    /// Starts its cgroup's name: `t` for tasks, `s` for the start task.
    pub cgroup_prefix: char,
    /// For an MPI rank: its PMI descriptor and its CPUs.
    pub rank: Option<RankSetup>,
}

/// NUMA nodes (OS numbers) online on this host (node 0 where the kernel does not say).
fn host_numa_nodes() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .ok()
        .and_then(|s| crate::cgroup::parse_cpu_list(s.trim()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| vec![0])
}

/// The failure code of a task the kernel killed for using more memory than it was allocated.
pub const OUT_OF_MEMORY: &str = "OutOfMemory";

/// The failure code of a task whose user this node cannot run it as (no such user here, or a
/// launcher that is not root and the task another user's).
pub const TASK_USER_UNAVAILABLE: &str = "TaskUserUnavailable";

/// What a task's cgroup confines it to (nothing, by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Its cpuset (empty: the node's).
    pub cpus: Vec<u32>,
    /// NUMA nodes (OS numbers) of its cpuset's memory (empty: the node's).
    pub mems: Vec<u32>,
    /// Its memory limit (0: none).
    pub memory_bytes: u64,
    /// The most processes and threads it may have at once (0: no limit).
    pub pids_max: u64,
    /// The node's GPUs (indices) it must not open: every one not in its allocation.
    pub deny_gpus: Vec<u32>,
}

/// The character-device major number of NVIDIA GPUs (`/dev/nvidiaN` is `195:N`).
const NVIDIA_MAJOR: u32 = 195;

/// What makes a process an MPI rank.
#[derive(Debug, Clone)]
pub(crate) struct RankSetup {
    /// The child's end of its PMI-1 socket (`PMI_FD`), kept open across exec (none under PMIx).
    pub pmi_fd: Option<std::os::fd::RawFd>,
    /// CPUs it is bound to (empty: not bound).
    pub cpus: Vec<u32>,
    /// NUMA nodes (OS numbers) its memory comes from (empty: the kernel's default).
    pub mems: Vec<u32>,
}

/// How `run_in` treats what a process leaves behind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunMode {
    /// Leave processes it started in the background running (in its cgroup).
    pub keep_leftovers: bool,
    /// Append to stdout.txt/stderr.txt instead of starting them afresh.
    pub append_logs: bool,
}

/// A process ready to start ([`Executor::prepare`]).
pub(crate) struct Prepared {
    /// The program, resolved on the task's `PATH`.
    pub program: PathBuf,
    /// Its arguments, `argv[0]` included.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub wd: PathBuf,
    /// Its stdin, stdout and stderr.
    pub stdio: [std::fs::File; 3],
    /// Its user, when not the launcher's own.
    pub user: Option<Arc<TaskUser>>,
    /// The variable that gets the process's own pid (a batch script's `SLURM_TASK_PID`).
    pub pid_env: Option<&'static str>,
}

/// How a process ended.
pub(crate) struct Outcome {
    /// Exit code (128+N when killed by signal N); absent when it never started.
    pub exit_code: Option<i32>,
    /// Why it failed beyond its exit code.
    pub failure: Option<TaskFailureInformation>,
    /// When it started.
    pub start_time: Option<Timestamp>,
    /// When it was reaped.
    pub end_time: Timestamp,
    /// Peak memory of its cgroup, when known.
    pub max_rss_bytes: Option<u64>,
}

impl Outcome {
    /// An attempt that never got as far as its process: `code` (usererror) and why.
    pub(crate) fn failed(code: &str, message: String) -> Outcome {
        Outcome {
            exit_code: None,
            failure: Some(TaskFailureInformation { category: ErrorCategory::UserError, code: code.into(), message }),
            start_time: None,
            end_time: Timestamp::now(),
            max_rss_bytes: None,
        }
    }

    /// The report of attempt `id` (of `instance`, for a multi-instance task) that ended so.
    pub(crate) fn into_report(self, id: AttemptId, instance: Option<u32>) -> TaskFinished {
        TaskFinished {
            id,
            exit_code: self.exit_code,
            failure: self.failure,
            start_time: self.start_time,
            end_time: self.end_time,
            max_rss_bytes: self.max_rss_bytes,
            instance,
        }
    }
}

/// Copies an ended attempt's output files (as its user); a failed copy fails an attempt that
/// had not failed otherwise, as `FileUploadFailed` (Azure's file upload error).
pub(crate) async fn upload_outputs(
    dir: &Path,
    files: Vec<gangway_api::outputs::OutputFile>,
    head: crate::outputs::HeadStore,
    o: &mut Outcome,
) {
    let success = o.exit_code == Some(0) && o.failure.is_none();
    let dir = dir.to_path_buf();
    let done = tokio::task::spawn_blocking(move || {
        crate::files::as_owner_of(&dir, || crate::outputs::upload(&dir, &files, success, &head))
            .unwrap_or_else(|e| Err(format!("switching to the task's user: {e}")))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the upload stopped: {e}")));
    if let (Err(message), None) = (done, &o.failure) {
        o.failure = Some(TaskFailureInformation {
            category: ErrorCategory::UserError,
            code: gangway_api::deps::FILE_UPLOAD_CODE.into(),
            message,
        });
    }
}

/// The attempts this launcher runs and the reports the head has not acknowledged.
pub struct Executor {
    pub(crate) layout: NodeLayout,
    pub(crate) node: String,
    pub(crate) account_url: String,
    /// The TLS settings the head is reached with over HTTP (uploaded files, packages, outputs).
    pub(crate) head_tls: std::sync::RwLock<Option<Arc<rustls::ClientConfig>>>,
    /// PMI fences of multi-node MPI ranks waiting for the head's answer.
    pub(crate) fences: Mutex<HashMap<(AttemptId, u32), FenceReply>>,
    /// PMIx direct-modex requests waiting for another instance's answer, by request.
    pub(crate) modex: Mutex<HashMap<(AttemptId, u64), crate::pmi::io::ModexAnswer>>,
    /// The next direct-modex request's number.
    pub(crate) modex_req: std::sync::atomic::AtomicU64,
    /// This node's topology, for placing MPI ranks.
    pub(crate) topology: Option<gangway_topology::model::NodeTopology>,
    /// Primaries of multi-instance attempts waiting for the head's go-ahead.
    pub(crate) go: Mutex<HashMap<AttemptId, tokio::sync::oneshot::Sender<()>>>,
    pub(crate) cgroups: Option<NodeCgroups>,
    /// CPUs and NUMA nodes (OS numbers) this host really has.
    pub(crate) host_cpus: Vec<u32>,
    pub(crate) host_mems: Vec<u32>,
    warned_missing_cpus: std::sync::atomic::AtomicBool,
    warned_memory: std::sync::atomic::AtomicBool,
    /// `--task-pids-max`.
    pub(crate) task_pids_max: u64,
    pub(crate) kill_grace: Duration,
    /// `gangway-node` itself, which supervises task processes (`supervise.rs`); None: task
    /// processes are the launcher's own children and end with it (unit tests).
    pub(crate) supervisor: Option<crate::supervise::Supervisor>,
    /// Supervised units whose records are kept until the head acknowledges their attempt:
    /// each one's name, and whether it is a rank group (which has files of its own).
    pub(crate) units: Mutex<HashMap<AttemptId, (String, bool)>>,
    /// The head's node timeout (from its welcome; 0: not known yet): how long a supervised
    /// task goes on without a launcher.
    pub(crate) node_timeout_ms: std::sync::atomic::AtomicU64,
    running: Mutex<HashMap<AttemptId, mpsc::UnboundedSender<StopReason>>>,
    unacked: Mutex<HashMap<AttemptId, TaskFinished>>,
    /// Task directories to remove when their attempt ends (job deleted meanwhile).
    remove_after: Mutex<Vec<(String, String)>>,
    /// The current connection to the head, if any.
    pub(crate) out: Mutex<Option<mpsc::UnboundedSender<LauncherMessage>>>,
    /// The pool's start task in this process.
    pub(crate) start_task: Mutex<StartTaskSlot>,
    /// Processes running now, by task directory: what a signal from the head reaches.
    pub(crate) signal_targets: Mutex<HashMap<PathBuf, Vec<SignalTarget>>>,
    /// Slurm batch scripts running, by task directory: their output files and working directory.
    pub(crate) batch_io: Mutex<HashMap<PathBuf, gangway_api::messages::BatchScript>>,
    /// The users tasks run as, by task directory (absent: the launcher's own user).
    task_users: Mutex<HashMap<PathBuf, Arc<TaskUser>>>,
    /// Users looked up recently.
    known_users: crate::users::KnownUsers,
    /// Numbers cgroups and supervised units; starts from the clock, so names never repeat
    /// those of an earlier run of the launcher whose tasks it re-adopts.
    pub(crate) seq: std::sync::atomic::AtomicU64,
    /// Starts every cgroup name (a rank group's: its unit's name and `-`, so a restarted
    /// launcher keeps them with the unit).
    pub(crate) name_prefix: String,
    /// Held while an application package is unpacked (each is unpacked once per node).
    pub(crate) package_lock: tokio::sync::Mutex<()>,
}

impl Executor {
    /// An executor for the node `node` rooted at `layout`.
    pub fn new(
        layout: NodeLayout,
        node: String,
        account_url: String,
        cgroups: Option<NodeCgroups>,
        kill_grace: Duration,
    ) -> Executor {
        Executor {
            layout,
            node,
            account_url,
            head_tls: Default::default(),
            cgroups,
            host_cpus: gangway_topology::discover::allowed_cpus(),
            host_mems: host_numa_nodes(),
            warned_missing_cpus: Default::default(),
            warned_memory: Default::default(),
            task_pids_max: 0,
            kill_grace,
            supervisor: None,
            units: Mutex::new(HashMap::new()),
            node_timeout_ms: Default::default(),
            running: Mutex::new(HashMap::new()),
            unacked: Mutex::new(HashMap::new()),
            remove_after: Mutex::new(Vec::new()),
            out: Mutex::new(None),
            start_task: Mutex::new(StartTaskSlot::default()),
            batch_io: Mutex::new(HashMap::new()),
            task_users: Mutex::new(HashMap::new()),
            known_users: Default::default(),
            signal_targets: Mutex::new(HashMap::new()),
            go: Mutex::new(HashMap::new()),
            topology: None,
            fences: Mutex::new(HashMap::new()),
            modex: Mutex::new(HashMap::new()),
            modex_req: std::sync::atomic::AtomicU64::new(0),
            seq: std::sync::atomic::AtomicU64::new(Timestamp::now().0.max(0) as u64),
            name_prefix: String::new(),
            package_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Attempts running now.
    pub fn running_ids(&self) -> Vec<AttemptId> {
        self.running.lock().expect("lock").keys().cloned().collect()
    }

    /// Reports not yet acknowledged.
    pub fn unacked(&self) -> Vec<TaskFinished> {
        self.unacked.lock().expect("lock").values().cloned().collect()
    }

    /// The head has recorded this report.
    pub fn acked(&self, id: &AttemptId) {
        self.unacked.lock().expect("lock").remove(id);
        self.forget_unit(id);
    }

    /// Asks a running attempt to stop.
    pub fn stop(&self, id: &AttemptId, why: StopReason) {
        if let Some(tx) = self.running.lock().expect("lock").get(id) {
            let _ = tx.send(why);
        }
    }

    /// Sends `sig` to every process of a running attempt on this node (`scancel --signal`):
    /// everything in the cgroups of its processes, or their process groups where the launcher
    /// runs without cgroups. Each process gets the signal once: a shell that traps it would
    /// otherwise run its trap twice. Returns how many processes it reached.
    pub fn signal(&self, id: &AttemptId, sig: i32) -> usize {
        if !self.running.lock().expect("lock").contains_key(id) {
            return 0;
        }
        let dir = self.layout.task_dir(&id.job, &id.task);
        let targets = self.signal_targets.lock().expect("lock").get(&dir).cloned().unwrap_or_default();
        let mut pids: Vec<i32> = Vec::new();
        let mut groups: Vec<i32> = Vec::new();
        for t in &targets {
            match &t.cgroup {
                Some(dirs) => pids.extend(crate::cgroup::procs_of_paths(dirs)),
                None => groups.push(t.pgid),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        groups.sort_unstable();
        groups.dedup();
        // SAFETY: plain kill(2); pids from cgroup.procs are positive, groups are our children's.
        let sent = pids.iter().filter(|&&p| p > 0 && unsafe { libc::kill(p, sig) } == 0).count();
        sent + groups.iter().filter(|&&g| g > 0 && unsafe { libc::kill(-g, sig) } == 0).count()
    }

    /// Stops every attempt and the start task (launcher shutdown) and waits until none runs.
    pub async fn stop_all(&self) {
        for tx in self.running.lock().expect("lock").values() {
            let _ = tx.send(StopReason::Shutdown);
        }
        while self.stop_start_task(StopReason::Shutdown) || !self.running.lock().expect("lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes a task's directory now, or when its running attempt ends.
    pub fn remove_task_dir(&self, job: &str, task: &str) {
        let busy = self.running.lock().expect("lock").keys().any(|a| a.job == job && a.task == task);
        if busy {
            self.remove_after.lock().expect("lock").push((job.to_owned(), task.to_owned()));
        } else {
            let _ = std::fs::remove_dir_all(self.layout.task_dir(job, task));
        }
    }

    /// Removes the task directory once its retention time has passed, unless a later
    /// attempt of the same task is using it (each attempt rewrites the expiry marker).
    fn schedule_removal(self: &Arc<Self>, id: &AttemptId, retention: Duration) {
        let dir = self.layout.task_dir(&id.job, &id.task);
        let expiry = Timestamp::now().plus(retention);
        if crate::users::write_fresh(&dir.join(EXPIRY_MARKER), expiry.0.to_string().as_bytes()).is_err() {
            return;
        }
        self.remove_at(dir, expiry);
    }

    pub(crate) fn remove_at(self: &Arc<Self>, dir: std::path::PathBuf, expiry: Timestamp) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut due = expiry;
            loop {
                // Timers may fire a little early: sleep until the marker's time has truly passed.
                tokio::time::sleep(Duration::from_micros(due.micros_since(Timestamp::now()) + 1000)).await;
                let marker =
                    std::fs::read_to_string(dir.join(EXPIRY_MARKER)).ok().and_then(|s| s.trim().parse::<i64>().ok());
                let busy = me.running.lock().expect("lock").keys().any(|a| me.layout.task_dir(&a.job, &a.task) == dir);
                match marker {
                    // A later attempt uses the directory (and schedules its own removal), or it is gone.
                    _ if busy => return,
                    None => return,
                    Some(m) if m > Timestamp::now().0 => due = Timestamp(m),
                    Some(_) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        return;
                    }
                }
            }
        });
    }

    /// Re-arms retention for task directories left by an earlier run of the launcher.
    pub fn resume_retention(self: &Arc<Self>) {
        let Ok(jobs) = std::fs::read_dir(self.layout.root.join("workitems")) else { return };
        for job in jobs.flatten() {
            let Ok(tasks) = std::fs::read_dir(job.path().join("job-1")) else { continue };
            for task in tasks.flatten() {
                let dir = task.path();
                let marker = std::fs::read_to_string(dir.join(EXPIRY_MARKER)).ok().and_then(|s| s.trim().parse().ok());
                if let Some(ms) = marker {
                    self.remove_at(dir, Timestamp(ms));
                }
            }
        }
    }

    pub(crate) fn send(&self, msg: LauncherMessage) {
        if let Some(tx) = self.out.lock().expect("lock").as_ref() {
            let _ = tx.send(msg);
        }
    }

    /// Runs task attempts' processes under supervisors, so they outlive this launcher process.
    pub fn with_supervisor(mut self, supervisor: Option<crate::supervise::Supervisor>) -> Executor {
        self.supervisor = supervisor;
        self
    }

    /// Limits every task's cgroup to `n` processes and threads (0: no limit).
    pub fn with_task_pids_max(mut self, n: u64) -> Executor {
        self.task_pids_max = n;
        self
    }

    /// Places MPI ranks on `topology` (without one, ranks run unbound).
    pub fn with_topology(mut self, topology: Option<gangway_topology::model::NodeTopology>) -> Executor {
        self.layout.has_gpus = topology.as_ref().is_some_and(|t| !t.gpus.is_empty());
        self.topology = topology;
        self
    }

    /// Starts an attempt (a repeated start of a running attempt is ignored).
    pub fn start(self: &Arc<Self>, mut start: StartTask) {
        let Some(rx) = self.claim(&start.id) else { return };
        // A Slurm batch script runs where the application would (the primary of a gang).
        let batch_dir = self.layout.task_dir(&start.id.job, &start.id.task);
        // Its user, and the task directory given to them before anything is put in it.
        let user = self.known_users.resolve(start.user.as_ref()).and_then(|u| match u {
            Some(u) => self.give_task_dir(&batch_dir, u).map(Some),
            None => Ok(None),
        });
        let runs_batch = start.multi_instance.as_ref().is_none_or(|p| p.instance == 0);
        if let Some(b) = if runs_batch && user.is_ok() { crate::batch::prepare(&mut start, &batch_dir) } else { None } {
            self.batch_io.lock().expect("lock").insert(batch_dir.clone(), b);
        }
        if let Ok(Some(u)) = &user {
            // The script the launcher just wrote (fresh: never through a link) is the user's.
            let script = batch_dir.join(crate::batch::SCRIPT_NAME);
            if self.batch_io.lock().expect("lock").contains_key(&batch_dir) {
                if let Err(e) = u.give(&script) {
                    tracing::warn!(path = %script.display(), error = %e, "cannot give the batch script to its user");
                }
            }
            self.task_users.lock().expect("lock").insert(batch_dir.clone(), u.clone());
        }
        let me = self.clone();
        tokio::spawn(async move {
            let instance = start.multi_instance.as_ref().map(|p| p.instance);
            let report = match (user, start.multi_instance.clone(), start.mpi.clone()) {
                (Err(why), _, _) => Outcome::failed(TASK_USER_UNAVAILABLE, why).into_report(start.id.clone(), instance),
                (Ok(_), Some(plan), _) => me.run_instance(start.clone(), plan, rx).await,
                (Ok(_), None, Some(mpi)) if me.supervisor.is_none() => me.run_ranks(start.clone(), mpi, rx).await,
                (Ok(_), None, _) => me.run(&start, rx).await,
            };
            me.attempt_ended(&start, report);
        });
    }

    /// Marks attempt `id` running here; None when it already is (a repeated start).
    pub(crate) fn claim(&self, id: &AttemptId) -> Option<mpsc::UnboundedReceiver<StopReason>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut running = self.running.lock().expect("lock");
        if running.contains_key(id) {
            return None;
        }
        running.insert(id.clone(), tx);
        Some(rx)
    }

    /// An attempt ended here with `report`: its directory's retention starts, what it held
    /// goes, and the report is sent and kept until the head acknowledges it.
    pub(crate) fn attempt_ended(self: &Arc<Self>, start: &StartTask, report: TaskFinished) {
        let id = start.id.clone();
        let batch_dir = self.layout.task_dir(&id.job, &id.task);
        self.schedule_removal(&id, Duration::from_millis(start.retention_ms));
        self.batch_io.lock().expect("lock").remove(&batch_dir);
        self.task_users.lock().expect("lock").remove(&batch_dir);
        self.running.lock().expect("lock").remove(&id);
        let pending: Vec<_> = {
            let mut r = self.remove_after.lock().expect("lock");
            let (now, later) = r.drain(..).partition(|(j, t)| *j == id.job && *t == id.task);
            *r = later;
            now
        };
        for (j, t) in pending {
            let _ = std::fs::remove_dir_all(self.layout.task_dir(&j, &t));
        }
        self.unacked.lock().expect("lock").insert(id, report.clone());
        self.send(LauncherMessage::TaskFinished(report));
    }

    /// Creates `task_dir` (in the launcher's own tree) and gives it to `user`, who makes its
    /// working directory: what an earlier attempt left there stays as it is, and root works
    /// by path only where the user cannot.
    fn give_task_dir(&self, task_dir: &Path, user: TaskUser) -> Result<Arc<TaskUser>, String> {
        let wd = task_dir.join("wd");
        std::fs::create_dir_all(task_dir)
            .and_then(|()| user.give(task_dir))
            .and_then(|()| user.with_permissions(|| std::fs::create_dir_all(&wd)))
            .map_err(|e| format!("giving the task directory {} to user {}: {e}", task_dir.display(), user.name))?;
        Ok(Arc::new(user))
    }

    /// Runs what goes in `dir` (a task directory the launcher already gave its user) as that
    /// user: a rank group's executor, which did not start the attempt.
    pub(crate) fn adopt_user(&self, dir: &Path, user: Option<&gangway_api::messages::RunAs>) -> Result<(), String> {
        if let Some(u) = self.known_users.resolve(user)? {
            self.task_users.lock().expect("lock").insert(dir.to_path_buf(), Arc::new(u));
        }
        Ok(())
    }

    /// The user a process in `dir` (a task directory or one inside it) runs as, if not the
    /// launcher's own.
    pub(crate) fn user_of(&self, dir: &Path) -> Option<Arc<TaskUser>> {
        let users = self.task_users.lock().expect("lock");
        dir.ancestors().find_map(|d| users.get(d).cloned())
    }

    async fn run(
        self: &Arc<Self>,
        start: &StartTask,
        mut stop_rx: mpsc::UnboundedReceiver<StopReason>,
    ) -> TaskFinished {
        let launch = Launch {
            dir: self.layout.task_dir(&start.id.job, &start.id.task),
            command_line: start.command_line.clone(),
            env: self.layout.task_env(start, &self.node, &self.account_url),
            max_wall_clock: start.max_wall_clock_ms.map(Duration::from_millis),
            cgroup_prefix: 't',
            rank: None,
        };
        let limits = self.limits_of(start.allocation.as_ref());
        let o = match (self.fetch_resource_files(start, &launch.dir).await, self.supervisor.clone()) {
            // Managed MPI: the ranks and their PMI server live in a supervised rank group.
            (Ok(()), Some(sup)) if start.mpi.is_some() => self.run_rank_group(start, &limits, &mut stop_rx, &sup).await,
            (Ok(()), Some(sup)) => self.run_supervised(start, launch, &limits, &mut stop_rx, &sup).await,
            (Ok(()), None) => self.run_process_in(launch, &limits, &mut stop_rx).await,
            (Err(failed), _) => failed,
        };
        self.after_process(start, o).await
    }

    /// The report of a plain attempt whose process ended so, once its output files are copied.
    pub(crate) async fn after_process(&self, start: &StartTask, mut o: Outcome) -> TaskFinished {
        if !start.output_files.is_empty() {
            let dir = self.layout.task_dir(&start.id.job, &start.id.task);
            upload_outputs(&dir, start.output_files.clone(), self.head_store(start), &mut o).await;
        }
        o.into_report(start.id.clone(), None)
    }

    /// The head's file store of the attempt's user, for its `uploadedFile` outputs.
    pub(crate) fn head_store(&self, start: &StartTask) -> crate::outputs::HeadStore {
        crate::outputs::HeadStore { head: self.head_link(), owner: start.user.as_ref().map(|u| u.uid) }
    }

    /// How the head is reached over HTTP from this node.
    pub(crate) fn head_link(&self) -> crate::join::HeadLink {
        crate::join::HeadLink { url: self.account_url.clone(), tls: self.head_tls.read().expect("lock").clone() }
    }

    /// Those of `wanted` (CPUs or NUMA nodes of the declared topology) that `host` has: an
    /// emulated node names more than the machine has (warned once); binding to none of them
    /// is not binding at all rather than a failed start.
    pub(crate) fn on_host(&self, wanted: &[u32], host: &[u32]) -> Vec<u32> {
        let kept: Vec<u32> = wanted.iter().copied().filter(|c| host.contains(c)).collect();
        if kept.len() < wanted.len() && !self.warned_missing_cpus.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                node = %self.node,
                "the declared topology names CPUs or NUMA nodes this host does not have; they are left out of bindings"
            );
        }
        kept
    }

    /// What `allocation` confines a task to on this node: its CPUs and their NUMA nodes'
    /// memory, less what this host does not have (a declared topology may name more CPUs
    /// than an emulated node has: warned once, never a failure), and its memory limit.
    pub(crate) fn limits_of(&self, allocation: Option<&gangway_api::NodeAllocation>) -> Limits {
        let pids_max = self.task_pids_max;
        let Some(a) = allocation else { return Limits { pids_max, ..Limits::default() } };
        let mut cpus = self.on_host(&a.cpus, &self.host_cpus);
        let mut mems: Vec<u32> = match &self.topology {
            Some(t) => t
                .cores
                .iter()
                .filter(|c| c.pus.iter().any(|p| cpus.contains(p)))
                .filter_map(|c| t.numa_nodes.get(c.numa as usize).map(|n| n.os_index))
                .filter(|n| self.host_mems.contains(n))
                .collect(),
            None => Vec::new(),
        };
        mems.sort_unstable();
        mems.dedup();
        if cpus.is_empty() {
            // Nothing of it is here: leave the cpuset as the node's rather than empty.
            mems.clear();
        } else if mems.is_empty() {
            mems = self.host_mems.clone();
        }
        cpus.sort_unstable();
        // A task that asked for resources keeps off the GPUs it was not given; a slots-only
        // one (nothing allocated) sees the node as Azure Batch shows it.
        let node_gpus = self.topology.iter().flat_map(|t| &t.gpus).map(|g| g.index).filter(|_| !a.is_empty());
        let deny_gpus = node_gpus.filter(|g| !a.gpus.contains(g)).collect();
        Limits { cpus, mems, memory_bytes: a.memory_mib.saturating_mul(1 << 20), pids_max, deny_gpus }
    }

    /// Runs one process to its end: its directories and log files, its own process group
    /// and cgroup, its wall clock, and a stop when asked.
    pub(crate) async fn run_process(
        self: &Arc<Self>,
        launch: Launch,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
    ) -> Outcome {
        self.run_process_in(launch, &Limits::default(), stop_rx).await
    }

    /// [`Executor::run_process`] in a cgroup confined to `limits`.
    pub(crate) async fn run_process_in(
        self: &Arc<Self>,
        launch: Launch,
        limits: &Limits,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
    ) -> Outcome {
        let cgroup = match self.new_cgroup_on(launch.cgroup_prefix, limits) {
            Ok(c) => c,
            Err(o) => return o,
        };
        let o = self.run_in(launch, cgroup.as_ref(), stop_rx, RunMode::default()).await;
        release(cgroup).await;
        o
    }

    /// A fresh cgroup (None where the launcher runs without cgroups) confined to `limits`: its
    /// cpuset (all of the node's when empty, or when the hierarchy offers no cpuset controller
    /// — ranks' own affinity still binds them), the GPUs it must not open (v1), its process
    /// limit, and its memory limit (not enforced, with one warning, where there is no memory
    /// controller).
    pub(crate) fn new_cgroup_on(&self, prefix: char, limits: &Limits) -> Result<Option<TaskCgroup>, Outcome> {
        self.new_cgroup_named(&self.unit_name(prefix), limits)
    }

    /// [`Executor::new_cgroup_on`] with the cgroup's name given.
    pub(crate) fn new_cgroup_named(&self, name: &str, limits: &Limits) -> Result<Option<TaskCgroup>, Outcome> {
        let Some(cg) = &self.cgroups else { return Ok(None) };
        let devices = !limits.deny_gpus.is_empty() && cg.version() == crate::cgroup::CgroupVersion::V1;
        let made = cg.create_task(name, !limits.cpus.is_empty(), limits.memory_bytes > 0, devices);
        if let Ok(task) = &made {
            if !limits.cpus.is_empty() {
                let set = task.set_cpus(&limits.cpus).and_then(|()| match limits.mems.is_empty() {
                    true => Ok(()),
                    false => task.set_mems(&limits.mems),
                });
                if let Err(e) = set {
                    tracing::warn!(error = %e, "cannot restrict the task's cpuset; ranks are bound by affinity only");
                }
            }
            if devices {
                let denied: Vec<(u32, u32)> = limits.deny_gpus.iter().map(|g| (NVIDIA_MAJOR, *g)).collect();
                if let Err(e) = task.deny_char_devices(&denied) {
                    tracing::warn!(error = %e, "cannot keep the task off the node's other GPUs");
                }
            }
            if limits.pids_max > 0 {
                if let Err(e) = task.set_pids_max(limits.pids_max) {
                    tracing::warn!(error = %e, "cannot limit the task's processes");
                }
            }
            if limits.memory_bytes > 0 {
                if let Err(e) = task.set_memory_limit(limits.memory_bytes) {
                    if !self.warned_memory.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(error = %e, "cannot limit tasks' memory on this node; memory limits are not enforced");
                    }
                }
            }
        }
        made.map(Some).map_err(|e| {
            server_failure(Outcome {
                exit_code: None,
                failure: Some(TaskFailureInformation {
                    category: ErrorCategory::ServerError,
                    code: "CgroupFailed".into(),
                    message: e.to_string(),
                }),
                start_time: None,
                end_time: Timestamp::now(),
                max_rss_bytes: None,
            })
        })
    }

    /// What every process of a task needs before it starts, shared by [`Executor::run_in`]
    /// and supervised processes (supervise.rs): its directories, its output files (opened as
    /// its user), its environment and its program.
    pub(crate) fn prepare(&self, launch: &Launch, mode: RunMode) -> Result<Prepared, Outcome> {
        let fail = |code: &str, message: String| Outcome::failed(code, message);
        let task_dir = &launch.dir;
        let wd = task_dir.join("wd");
        let user = self.user_of(task_dir);
        // A user's task directory is theirs: they make what is missing in it.
        if let Err(e) = crate::users::as_user(user.as_deref(), || std::fs::create_dir_all(&wd)) {
            return Err(server_failure(fail("TaskDirectory", format!("creating {}: {e}", wd.display()))));
        }
        let argv = split_command_line(&launch.command_line).map_err(|e| fail("InvalidCommandLine", e))?;
        let batch = self.batch_io.lock().expect("lock").get(task_dir).cloned();
        // What the task writes is opened with its user's permissions (a path or a symbolic
        // link the user could not open themselves fails), as slurmd opens them.
        let as_user = |open: &(dyn Fn() -> std::io::Result<(std::fs::File, std::fs::File)> + Sync)| {
            crate::users::as_user(user.as_deref(), open)
        };
        let (stdout, stderr) = match &batch {
            // The job's own --output/--error files: a path it cannot open is its user's error.
            Some(b) => {
                as_user(&|| crate::batch::open_outputs(b)).map_err(|e| fail("OutputFileFailed", e.to_string()))?
            }
            None => as_user(&|| {
                Ok((
                    open_log(task_dir, "stdout.txt", mode.append_logs)?,
                    open_log(task_dir, "stderr.txt", mode.append_logs)?,
                ))
            })
            .map_err(|e| server_failure(fail("TaskDirectory", format!("creating output files: {e}"))))?,
        };
        let wd = batch.as_ref().map_or(wd, crate::batch::work_dir);
        let mut env = launch.env.clone();
        if let Some(u) = &user {
            env.extend(u.env());
        }
        let mut env = dedup_env(env);
        // A batch script gets its own pid as SLURM_TASK_PID, written by the child (spawn.rs).
        if batch.is_some() {
            env.retain(|(k, _)| k != crate::batch::TASK_PID_ENV);
        }
        let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| std::ffi::OsString::from(v));
        let program = spawn::resolve_program(&argv[0], path_var.as_deref(), &wd)
            .map_err(|e| fail("CommandNotFound", format!("starting '{}': {e}", argv[0])))?;
        let stdin = devnull_or(&stdout);
        let pid_env = batch.is_some().then_some(crate::batch::TASK_PID_ENV);
        Ok(Prepared { program, argv, env, wd, stdio: [stdin, stdout, stderr], user, pid_env })
    }

    /// Runs one process inside `cgroup` (which the caller creates and releases, so several
    /// processes can share one — a multi-instance task's coordination command and application).
    pub(crate) async fn run_in(
        self: &Arc<Self>,
        launch: Launch,
        cgroup: Option<&TaskCgroup>,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
        mode: RunMode,
    ) -> Outcome {
        let fail = |code: &str, message: String| Outcome::failed(code, message);
        let p = match self.prepare(&launch, mode) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let task_dir = &launch.dir;
        let argv = p.argv.clone();
        let user = p.user.clone();
        // The descriptors in the spec must stay open until the spawn: `p` keeps their owners.
        let stdio = [&p.stdio[0], &p.stdio[1], &p.stdio[2]];
        let spec = match build_spec(&p.program, &argv, &p.env, &p.wd, stdio) {
            Ok(s) => spawn::SpawnSpec { pid_env: p.pid_env, ..s },
            Err(e) => return fail("CommandLaunchFailed", format!("starting '{}': {e}", argv[0])),
        };
        let join_fds = match cgroup.map(TaskCgroup::open_join_fds).transpose() {
            Ok(fds) => fds.unwrap_or_default(),
            Err(e) => return server_failure(fail("CgroupFailed", e.to_string())),
        };
        let spec = spawn::SpawnSpec {
            cgroup_fds: join_fds.iter().map(|f| f.as_raw_fd()).collect(),
            keep_fd: launch.rank.as_ref().and_then(|r| r.pmi_fd),
            cpus: launch.rank.as_ref().map(|r| r.cpus.clone()),
            mems: launch.rank.as_ref().map(|r| r.mems.clone()),
            user: user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone())),
            ..spec
        };
        let started = Timestamp::now();
        let spawned = spawn::spawn(&spec).and_then(spawn::Child::new);
        drop((join_fds, spec, p));
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let code =
                    if e.kind() == std::io::ErrorKind::NotFound { "CommandNotFound" } else { "CommandLaunchFailed" };
                return fail(code, format!("starting '{}': {e}", argv[0]));
            }
        };
        let pgid = Some(child.pid());
        let target = SignalTarget {
            pgid: child.pid(),
            cgroup: cgroup.map(|c| c.paths().into_iter().map(Path::to_path_buf).collect()),
        };
        let _registered = Registered::new(&self.signal_targets, task_dir.clone(), target);
        let deadline = launch.max_wall_clock.map(|d| tokio::time::Instant::now() + d);
        let wall = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut stopped: Option<StopReason> = None;
        let status = tokio::select! {
            s = child.wait() => s,
            _ = wall => { stopped = Some(StopReason::WallClock); self.terminate(&mut child, pgid, cgroup).await }
            Some(why) = stop_rx.recv() => { stopped = Some(why); self.terminate(&mut child, pgid, cgroup).await }
        };
        // Whatever the main process left behind dies with it (unless the caller keeps it: a
        // coordination command's daemons live until the multi-instance task ends).
        if let Some(pg) = pgid.filter(|_| !mode.keep_leftovers) {
            // SAFETY: plain kill(2) on our own child's process group.
            unsafe { libc::kill(-pg, libc::SIGKILL) };
        }
        let max_rss = cgroup.and_then(TaskCgroup::memory_peak).or(status.as_ref().ok().map(|e| e.max_rss_bytes));
        // Only a failed process counts: a child the kernel killed whose parent went on is not
        // the task's end.
        let failed = status.as_ref().is_ok_and(|e| e.code != 0);
        let oom_killed = failed && cgroup.and_then(TaskCgroup::oom_kills).is_some_and(|n| n > 0);
        let end = Timestamp::now();
        let exit_code = status.as_ref().ok().map(|e| e.code);
        let failure = match stopped {
            Some(why) => stop_failure(&why),
            None if oom_killed => Some(oom_failure()),
            None => None,
        };
        Outcome { exit_code, failure, start_time: Some(started), end_time: end, max_rss_bytes: max_rss }
    }

    /// SIGTERM to the process group and cgroup, then SIGKILL after the grace period.
    async fn terminate(
        &self,
        child: &mut spawn::Child,
        pgid: Option<i32>,
        cgroup: Option<&TaskCgroup>,
    ) -> std::io::Result<spawn::Exit> {
        signal_tree(pgid, cgroup, libc::SIGTERM);
        match tokio::time::timeout(self.kill_grace, child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                signal_tree(pgid, cgroup, libc::SIGKILL);
                child.wait().await
            }
        }
    }
}

/// Why a process that was stopped failed.
pub(crate) fn stop_failure(why: &StopReason) -> Option<TaskFailureInformation> {
    Some(match why {
        StopReason::WallClock => TaskFailureInformation {
            category: ErrorCategory::UserError,
            code: "TaskEnded".into(),
            message: "the task exceeded its maximum wall clock time and was killed".into(),
        },
        StopReason::Killed(reason) => TaskFailureInformation {
            category: ErrorCategory::UserError,
            code: reason.clone(),
            message: format!("the task was killed ({reason})"),
        },
        StopReason::Shutdown => TaskFailureInformation {
            category: ErrorCategory::ServerError,
            code: "NodeShutdown".into(),
            message: "the node's launcher shut down while the task ran".into(),
        },
    })
}

/// The failure of a process the kernel's OOM killer ended.
pub(crate) fn oom_failure() -> TaskFailureInformation {
    TaskFailureInformation {
        category: ErrorCategory::UserError,
        code: OUT_OF_MEMORY.into(),
        message: "the task used more memory than it was allocated and the kernel's OOM killer killed it".into(),
    }
}

/// One running process of an attempt, as a signal reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignalTarget {
    /// Its process group (its own pid).
    pub pgid: i32,
    /// Its cgroup's directories, when the launcher uses cgroups.
    pub cgroup: Option<Vec<PathBuf>>,
}

/// Keeps a process in [`Executor::signal_targets`] while it runs (removed on every return path).
pub(crate) struct Registered<'a> {
    map: &'a Mutex<HashMap<PathBuf, Vec<SignalTarget>>>,
    dir: PathBuf,
    target: SignalTarget,
}

impl<'a> Registered<'a> {
    pub(crate) fn new(map: &'a Mutex<HashMap<PathBuf, Vec<SignalTarget>>>, dir: PathBuf, target: SignalTarget) -> Self {
        map.lock().expect("lock").entry(dir.clone()).or_default().push(target.clone());
        Registered { map, dir, target }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().expect("lock");
        if let Some(list) = map.get_mut(&self.dir) {
            if let Some(k) = list.iter().position(|t| *t == self.target) {
                list.swap_remove(k);
            }
            if list.is_empty() {
                map.remove(&self.dir);
            }
        }
    }
}

fn signal_tree(pgid: Option<i32>, cgroup: Option<&TaskCgroup>, sig: i32) {
    if let Some(pg) = pgid.filter(|p| *p > 0) {
        // SAFETY: plain kill(2) on our own child's process group.
        unsafe { libc::kill(-pg, sig) };
    }
    if let Some(cg) = cgroup {
        cg.signal_all(sig);
    }
}

/// Kills what is left in the cgroup and removes it (blocking work, off the async threads).
pub(crate) async fn release(cgroup: Option<TaskCgroup>) {
    if let Some(cg) = cgroup {
        let _ = tokio::task::spawn_blocking(move || drop(cg)).await;
    }
}

fn server_failure(mut f: Outcome) -> Outcome {
    if let Some(fi) = f.failure.as_mut() {
        fi.category = ErrorCategory::ServerError;
    }
    f
}

/// Keeps the last value of each variable (later settings override earlier ones).
fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<_> = env.into_iter().rev().filter(|(k, _)| seen.insert(k.clone())).collect();
    out.reverse();
    out
}

fn devnull_or(fallback: &std::fs::File) -> std::fs::File {
    std::fs::File::open("/dev/null").or_else(|_| fallback.try_clone()).expect("/dev/null or a log file")
}

fn build_spec(
    program: &Path,
    argv: &[String],
    env: &[(String, String)],
    wd: &Path,
    stdio: [&std::fs::File; 3],
) -> std::io::Result<spawn::SpawnSpec> {
    use std::os::unix::ffi::OsStrExt;
    Ok(spawn::SpawnSpec {
        program: spawn::cstring("the program path", program.as_os_str().as_bytes())?,
        argv: argv.iter().map(|a| spawn::cstring("an argument", a)).collect::<Result<_, _>>()?,
        envp: env
            .iter()
            .map(|(k, v)| spawn::cstring("an environment variable", format!("{k}={v}")))
            .collect::<Result<_, _>>()?,
        cwd: spawn::cstring("the working directory", wd.as_os_str().as_bytes())?,
        stdio: [stdio[0].as_raw_fd(), stdio[1].as_raw_fd(), stdio[2].as_raw_fd()],
        cgroup_fds: Vec::new(),
        keep_fd: None,
        cpus: None,
        mems: None,
        pid_env: None,
        user: None,
        outlive_parent: false,
    })
}

fn open_log(dir: &Path, name: &str, append: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(dir.join(name))
}

#[cfg(test)]
#[path = "executor_tests.rs"]
pub(crate) mod tests;

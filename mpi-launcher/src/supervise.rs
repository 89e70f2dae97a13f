//! Tasks that outlive their launcher (see ARCHITECTURE.md, "Tasks that outlive their launcher").
//!
//! A task attempt's process is started through `gangway-node supervise`, a small synchronous
//! process of its own: the launcher hands it the prepared process (program, arguments,
//! environment, user, cgroup, wall-clock deadline) on a socket and its stdin, stdout and
//! stderr as its own, and it starts the task exactly as the launcher would (spawn.rs), waits
//! for it, enforces its deadline, and writes how it ended to `ROOT/running/NAME.exit`. The
//! supervisor has no parent-death signal and is in none of the launcher's cgroups, so a
//! launcher that exits or crashes leaves it and its task running; the task's own parent-death
//! signal ties it to its supervisor, and killing the task's cgroup (a kill, node removal,
//! `gangway down`) ends the supervisor as well.
//!
//! The launcher records each running unit in `ROOT/running/NAME.json` (the attempt, the
//! supervisor's pid and start time, the task's pid, the cgroup) once the task started, and
//! removes the record when the head acknowledges the attempt's report. A restarted launcher
//! reads the records before it sweeps its cgroups: a unit whose supervisor still runs is
//! re-adopted (waited for through a pidfd) and listed as running in the hello; one that ended
//! while the launcher was away is reported from its exit file; one whose supervisor is gone
//! without an exit file (the node rebooted) is left out, and the head requeues it as lost.
//! No record or exit file is synced to disk: they only have to survive the launcher, not the
//! node, whose reboot ends the tasks anyway.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gangway_api::messages::{AttemptId, StartTask};
use gangway_api::{ErrorCategory, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::cgroup::TaskCgroup;
use crate::executor::{release, Executor, Launch, Limits, Outcome, Prepared, RunMode, StopReason};
use crate::spawn;

/// The directory under the node root that holds the records and exit files.
pub const RUNNING_DIR: &str = "running";

/// How task processes' supervisors are started.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// `gangway-supervise`, or `gangway-node` itself.
    pub path: PathBuf,
    /// Arguments before the socket and the unit's name (`supervise` for `gangway-node`).
    pub args: Vec<String>,
}

impl Supervisor {
    /// `gangway-supervise` next to `gangway-node` (`node_bin`), which starts several times
    /// sooner than `gangway-node supervise`, the fallback where it is not installed.
    pub fn beside(node_bin: &Path) -> Supervisor {
        let own = node_bin.with_file_name("gangway-supervise");
        match own.is_file() {
            true => Supervisor { path: own, args: vec!["gangway-supervise".into()] },
            false => Supervisor { path: node_bin.to_path_buf(), args: vec!["gangway-node".into(), "supervise".into()] },
        }
    }
}

/// What the supervisor is handed: everything [`spawn::SpawnSpec`] needs, as data.
#[derive(Debug, Serialize, Deserialize)]
struct SupervisorSpec {
    program: String,
    argv: Vec<String>,
    env: Vec<String>,
    cwd: String,
    /// The task cgroup's directories (joined through their `cgroup.procs`, signalled whole).
    cgroup: Vec<PathBuf>,
    /// The task's user: uid, gid and every group.
    user: Option<(u32, u32, Vec<u32>)>,
    /// The variable set to the task's own pid.
    pid_env: Option<String>,
    /// The wall-clock deadline (microseconds since the epoch).
    deadline: Option<i64>,
    /// Between SIGTERM and SIGKILL when the task is stopped.
    grace_ms: u64,
    /// How long the task goes on without a launcher (the head's node timeout; 0: forever).
    orphan_ms: u64,
    /// Where to write how the task ended.
    exit_file: PathBuf,
}

/// How a supervised task ended, as its supervisor wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExitRecord {
    /// Microseconds since the epoch.
    start: i64,
    end: i64,
    /// Exit code, or 128+N when killed by signal N.
    code: i32,
    max_rss_bytes: u64,
    /// Its deadline passed and the supervisor stopped it.
    wall_clock: bool,
    /// No launcher took it back within the head's node timeout, and the supervisor stopped it.
    #[serde(default)]
    orphaned: bool,
}

/// A running unit, as recorded in `ROOT/running/NAME.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitRecord {
    /// The unit's name (also its cgroup's, when the launcher uses cgroups).
    pub name: String,
    /// The attempt it runs.
    pub start: StartTask,
    /// The supervisor's pid and its start time (clock ticks since boot), against pid reuse.
    pub supervisor: i32,
    pub supervisor_start: u64,
    /// The task's pid, also its process group: 0 in the file (it is written before the task
    /// starts), the supervisor's child when re-adopted.
    pub task: i32,
    /// Whether it has a cgroup of its own named `name`.
    pub cgroup: bool,
    /// When the task started (microseconds since the epoch).
    pub started: i64,
}

/// A unit found at start, from an earlier run of the launcher.
pub struct Found {
    pub record: UnitRecord,
    /// Its supervisor still runs.
    pub alive: bool,
    /// Its exit file is there.
    pub ended: bool,
}

fn record_path(root: &Path, name: &str) -> PathBuf {
    root.join(RUNNING_DIR).join(format!("{name}.json"))
}

fn exit_path(root: &Path, name: &str) -> PathBuf {
    root.join(RUNNING_DIR).join(format!("{name}.exit"))
}

/// Writes `data` to `path` through a temporary file, so a reader sees all of it or nothing.
/// Readable by root only: an attempt's environment may hold secrets.
pub(crate) fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The start time of process `pid` (clock ticks since boot), from `/proc/PID/stat`, while
/// it runs (None once it is gone, or has ended and waits to be reaped).
fn start_time_of(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Field 3 (state): a zombie has ended.
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    // Field 22 (starttime), 19 fields further.
    fields.nth(18)?.parse().ok()
}

/// The first child of process `pid`.
fn child_of(pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// The units an earlier run of the launcher left in `root` (unreadable records are removed).
pub fn found(root: &Path) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(root.join(RUNNING_DIR)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        match path.extension().and_then(|x| x.to_str()) {
            Some("json") => {}
            Some("tmp") => {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            _ => continue,
        }
        let record = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<UnitRecord>(&b).ok());
        let Some(record) = record else {
            tracing::warn!(path = %path.display(), "removing an unreadable record of a running task");
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let alive = start_time_of(record.supervisor) == Some(record.supervisor_start);
        let ended = exit_path(root, &record.name).exists();
        out.push(Found { record, alive, ended });
    }
    out
}

/// Names of the cgroups to keep at start: those of the units found.
pub fn kept_cgroups(found: &[Found]) -> Vec<String> {
    found.iter().filter(|f| f.record.cgroup && (f.alive || f.ended)).map(|f| f.record.name.clone()).collect()
}

/// How the launcher waits for a supervisor: its own child, or one it re-adopted.
enum Waiter {
    /// Our child, and the socket it was handed the task on: it also says there how the task
    /// ended, in case its exit file could not be written (a full disk).
    Child(spawn::Child, Option<Socket>),
    Adopted(AsyncFd<OwnedFd>),
}

/// The launcher's end of a supervisor's socket.
type Socket = tokio::io::BufReader<tokio::net::UnixStream>;

impl Waiter {
    /// A pidfd for `pid` (not our child), checked to still be the recorded process.
    fn adopt(pid: i32, start: u64) -> std::io::Result<Waiter> {
        let gone = || std::io::Error::new(std::io::ErrorKind::NotFound, "the supervisor is gone");
        let owned = pidfd(pid).ok_or_else(gone)?;
        // Checked after opening: the pidfd now pins the process it names.
        if start_time_of(pid) != Some(start) {
            return Err(gone());
        }
        // SAFETY: the AsyncFd owns the only copy of the pidfd, so it stays open while registered.
        Ok(Waiter::Adopted(unsafe { AsyncFd::register(owned) }.map_err(std::io::Error::from)?))
    }

    async fn ended(&mut self) {
        match self {
            Waiter::Child(c, _) => {
                let _ = c.wait().await;
            }
            // A pidfd becomes readable when its process exits.
            Waiter::Adopted(fd) => {
                let _ = fd.readable().await.map(|mut g| g.retain_ready());
            }
        }
    }

    fn signal(&self, sig: i32) {
        match self {
            // SAFETY: kill(2) on our own child, which stays ours (a zombie at worst) until reaped.
            Waiter::Child(c, _) => unsafe {
                libc::kill(c.pid(), sig);
            },
            // SAFETY: pidfd_send_signal(2) on a pidfd we own: never another process.
            Waiter::Adopted(fd) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, fd.get_ref().as_raw_fd(), sig, std::ptr::null::<u8>(), 0);
            },
        }
    }
}

impl Executor {
    /// Runs an attempt's process under a supervisor of its own, in a cgroup confined to
    /// `limits`, to its end.
    pub(crate) async fn run_supervised(
        self: &Arc<Self>,
        start: &StartTask,
        launch: Launch,
        limits: &Limits,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
        supervisor: &Supervisor,
    ) -> Outcome {
        let deadline = launch.max_wall_clock;
        let prepare = |_: &str| self.prepare(&launch, RunMode::default());
        self.supervised(start, prepare, deadline, limits, stop_rx, supervisor).await
    }

    /// Runs the process `prepare` makes (given the unit's name) under a supervisor of its own.
    pub(crate) async fn supervised(
        self: &Arc<Self>,
        start: &StartTask,
        prepare: impl FnOnce(&str) -> Result<Prepared, Outcome>,
        max_wall_clock: Option<std::time::Duration>,
        limits: &Limits,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
        supervisor: &Supervisor,
    ) -> Outcome {
        let name = self.unit_name('t');
        let cgroup = match self.new_cgroup_named(&name, limits) {
            Ok(c) => c,
            Err(o) => return o,
        };
        let deadline = max_wall_clock.map(|d| Timestamp::now().plus(d).0);
        let record = UnitRecord {
            name: name.clone(),
            start: start.clone(),
            supervisor: 0,
            supervisor_start: 0,
            task: 0,
            cgroup: cgroup.is_some(),
            started: 0,
        };
        let started = match prepare(&name) {
            Ok(p) => self.start_supervisor(supervisor, record, p, cgroup.as_ref(), deadline).await,
            Err(o) => Err(o),
        };
        match started {
            Ok((sup, socket, record)) => self.watch_unit(&record, Waiter::Child(sup, socket), cgroup, stop_rx).await,
            Err(o) => {
                self.forget_unit(&start.id);
                release(cgroup).await;
                o
            }
        }
    }

    /// A fresh unit name: unique across launcher restarts (it starts from the clock).
    pub(crate) fn unit_name(&self, prefix: char) -> String {
        format!("{}{prefix}{}", self.name_prefix, self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// Starts the supervisor of a prepared process and records the unit `record` names:
    /// before the supervisor may start the task (a launcher that dies before it handed the
    /// process over leaves a supervisor that exits without starting it, and a record the next
    /// launcher reports as lost), and again with the task's pid once it runs. Returns the
    /// supervisor and the record, or how the task failed to start.
    async fn start_supervisor(
        &self,
        supervisor: &Supervisor,
        mut record: UnitRecord,
        p: Prepared,
        cgroup: Option<&TaskCgroup>,
        deadline: Option<i64>,
    ) -> Result<(spawn::Child, Option<Socket>, UnitRecord), Outcome> {
        let name = record.name.clone();
        use std::os::unix::ffi::OsStrExt;
        let argv0 = p.argv[0].clone();
        let launch_failed = |e: std::io::Error| {
            let code = if e.kind() == std::io::ErrorKind::NotFound { "CommandNotFound" } else { "CommandLaunchFailed" };
            Outcome::failed(code, format!("starting '{argv0}': {e}"))
        };
        let spec = SupervisorSpec {
            program: p.program.to_string_lossy().into_owned(),
            argv: p.argv.clone(),
            env: p.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: p.wd.to_string_lossy().into_owned(),
            cgroup: cgroup.map(|c| c.paths().into_iter().map(Path::to_path_buf).collect()).unwrap_or_default(),
            user: p.user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone())),
            pid_env: p.pid_env.map(str::to_owned),
            deadline,
            grace_ms: self.kill_grace.as_millis() as u64,
            orphan_ms: self.node_timeout_ms.load(std::sync::atomic::Ordering::Relaxed),
            exit_file: exit_path(&self.layout.root, &name),
        };
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| server_error(launch_failed(e)))?;
        let fd = theirs.as_raw_fd();
        let sup_spec = spawn::SpawnSpec {
            program: spawn::cstring("the supervisor's path", supervisor.path.as_os_str().as_bytes())
                .map_err(launch_failed)?,
            argv: supervisor
                .args
                .iter()
                .map(String::as_str)
                .chain([fd.to_string().as_str(), &name])
                .map(|a| spawn::cstring("an argument", a))
                .collect::<Result<_, _>>()
                .map_err(launch_failed)?,
            // Only the node it belongs to, so a look for a node's processes finds it.
            envp: vec![spawn::cstring(
                "the node root",
                format!("AZ_BATCH_NODE_ROOT_DIR={}", self.layout.root.display()),
            )
            .map_err(launch_failed)?],
            cwd: spawn::cstring("/", "/").map_err(launch_failed)?,
            stdio: [p.stdio[0].as_raw_fd(), p.stdio[1].as_raw_fd(), p.stdio[2].as_raw_fd()],
            cgroup_fds: Vec::new(),
            keep_fd: Some(fd),
            cpus: None,
            mems: None,
            pid_env: None,
            user: None,
            outlive_parent: true,
        };
        let sup = spawn::spawn(&sup_spec).and_then(spawn::Child::new).map_err(|e| server_error(launch_failed(e)))?;
        drop((theirs, sup_spec, p.stdio));
        record.supervisor = sup.pid();
        record.supervisor_start = start_time_of(sup.pid()).unwrap_or(0);
        if let Err(e) = self.keep_record(&record) {
            tracing::warn!(error = %e, unit = %name, "cannot record a running task; a launcher restart would lose it");
        }
        let body = serde_json::to_vec(&spec).expect("the spec serializes");
        // The supervisor answers at once: `ok PID` once the task runs, `err ERRNO` if it
        // could not start it.
        let answer = async {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
            ours.set_nonblocking(true)?;
            let mut s = tokio::net::UnixStream::from_std(ours)?;
            s.write_all(&body).await?;
            s.shutdown().await?;
            // One line: whatever else happens to hold the socket cannot keep the answer back.
            let mut answer = String::new();
            let mut s = tokio::io::BufReader::new(s);
            s.read_line(&mut answer).await?;
            Ok::<_, std::io::Error>((answer, s))
        };
        let (answer, socket) = match answer.await {
            Ok((a, s)) => (a, Some(s)),
            Err(_) => (String::new(), None),
        };
        match answer.trim().split_once(' ') {
            // The record keeps no task pid: a launcher that re-adopts the unit asks the kernel.
            Some(("ok", pid)) if pid.parse::<i32>().is_ok() => {
                record.task = pid.parse().expect("checked");
                record.started = Timestamp::now().0;
                Ok((sup, socket, record))
            }
            Some(("err", errno)) => Err(launch_failed(std::io::Error::from_raw_os_error(errno.parse().unwrap_or(0)))),
            _ => {
                let mut sup = sup;
                let _ = sup.wait().await;
                Err(server_error(Outcome::failed(
                    "CommandLaunchFailed",
                    format!("starting '{}': the task's supervisor ended before it started the task", spec.argv[0]),
                )))
            }
        }
    }

    fn keep_record(&self, record: &UnitRecord) -> std::io::Result<()> {
        write_whole(&record_path(&self.layout.root, &record.name), &serde_json::to_vec(record).expect("serializes"))?;
        self.track_unit(record);
        Ok(())
    }

    /// Keeps `record`'s unit until the head acknowledges its attempt.
    fn track_unit(&self, record: &UnitRecord) {
        let rank_group = record.start.mpi.is_some();
        self.units.lock().expect("lock").insert(record.start.id.clone(), (record.name.clone(), rank_group));
    }

    /// The head has the attempt's report: its record and exit file go.
    pub(crate) fn forget_unit(&self, id: &AttemptId) {
        if let Some((name, rank_group)) = self.units.lock().expect("lock").remove(id) {
            let root = &self.layout.root;
            let group_files = rank_group.then(|| crate::rank_group::unit_files(root, &name));
            for f in
                [record_path(root, &name), exit_path(root, &name)].into_iter().chain(group_files.into_iter().flatten())
            {
                let _ = std::fs::remove_file(f);
            }
        }
    }

    /// Waits for a supervised unit to end (asking its supervisor to stop the task when told
    /// to), then reads how it ended and releases its cgroup.
    async fn watch_unit(
        self: &Arc<Self>,
        record: &UnitRecord,
        mut waiter: Waiter,
        cgroup: Option<TaskCgroup>,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
    ) -> Outcome {
        let target = crate::executor::SignalTarget {
            pgid: record.task,
            cgroup: cgroup.as_ref().map(|c| c.paths().into_iter().map(Path::to_path_buf).collect()),
        };
        let dir = self.layout.task_dir(&record.start.id.job, &record.start.id.task);
        let registered = crate::executor::Registered::new(&self.signal_targets, dir, target);
        let mut stopped = None;
        loop {
            tokio::select! {
                _ = waiter.ended() => break,
                Some(why) = stop_rx.recv(), if stopped.is_none() => {
                    // The supervisor stops the task: SIGTERM, its grace, SIGKILL.
                    waiter.signal(libc::SIGTERM);
                    stopped = Some(why);
                }
            }
        }
        drop(registered);
        // What the supervisor said on its socket as it ended: how the task ended, should its
        // exit file be missing.
        let said = match &mut waiter {
            Waiter::Child(_, Some(socket)) => {
                let mut line = String::new();
                let read = tokio::io::AsyncBufReadExt::read_line(socket, &mut line);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), read).await;
                serde_json::from_str::<ExitRecord>(line.trim()).ok()
            }
            _ => None,
        };
        let o = self.unit_outcome(record, cgroup.as_ref(), stopped, said);
        self.release_unit(&record.name, cgroup).await;
        o
    }

    /// Releases a unit's cgroup and those its rank group made (`NAME-…`).
    async fn release_unit(&self, name: &str, cgroup: Option<TaskCgroup>) {
        release(cgroup).await;
        if let Some(cg) = &self.cgroups {
            cg.remove_children_named(&format!("{name}-"));
        }
    }

    /// How a unit ended: its exit file, its cgroup's memory and OOM counts, and why it was
    /// stopped, if it was.
    fn unit_outcome(
        &self,
        record: &UnitRecord,
        cgroup: Option<&TaskCgroup>,
        stopped: Option<StopReason>,
        said: Option<ExitRecord>,
    ) -> Outcome {
        let exit = std::fs::read(exit_path(&self.layout.root, &record.name))
            .ok()
            .and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok())
            .or(said);
        let Some(exit) = exit else {
            // Killed with its cgroup before it could write (a SIGKILL after the grace).
            return match stopped {
                Some(why) => Outcome {
                    exit_code: Some(128 + libc::SIGKILL),
                    failure: crate::executor::stop_failure(&why),
                    start_time: Some(Timestamp(record.started)),
                    end_time: Timestamp::now(),
                    max_rss_bytes: cgroup.and_then(TaskCgroup::memory_peak),
                },
                None => server_error(Outcome::failed(
                    gangway_api::messages::TASK_LOST,
                    "the task's supervisor ended without recording how the task ended".into(),
                )),
            };
        };
        // A rank group's report says how its ranks did.
        let report = std::fs::read(crate::rank_group::report_path(&self.layout.root, &record.name))
            .ok()
            .and_then(|b| serde_json::from_slice::<gangway_api::messages::TaskFinished>(&b).ok());
        let failed = exit.code != 0;
        let max_rss = cgroup.and_then(TaskCgroup::memory_peak).or(Some(exit.max_rss_bytes));
        let oom_killed = failed && cgroup.and_then(TaskCgroup::oom_kills).is_some_and(|n| n > 0);
        if exit.orphaned {
            // The head has called the node lost and requeued the attempt meanwhile (or will).
            return server_error(Outcome {
                exit_code: Some(exit.code),
                start_time: Some(Timestamp(exit.start)),
                end_time: Timestamp(exit.end),
                max_rss_bytes: max_rss,
                ..Outcome::failed(
                    gangway_api::messages::TASK_LOST,
                    "no launcher took the task back within the head's node timeout, so it was stopped".into(),
                )
            });
        }
        let stopped = if exit.wall_clock { Some(StopReason::WallClock) } else { stopped };
        let base = match report {
            Some(r) => Outcome {
                exit_code: r.exit_code,
                failure: r.failure,
                start_time: r.start_time.or(Some(Timestamp(exit.start))),
                end_time: r.end_time,
                max_rss_bytes: r.max_rss_bytes.or(max_rss),
            },
            None => Outcome {
                exit_code: Some(exit.code),
                failure: None,
                start_time: Some(Timestamp(exit.start)),
                end_time: Timestamp(exit.end),
                max_rss_bytes: max_rss,
            },
        };
        match stopped {
            Some(why) => Outcome { failure: crate::executor::stop_failure(&why), ..base },
            None if oom_killed && base.failure.is_none() => {
                Outcome { failure: Some(crate::executor::oom_failure()), ..base }
            }
            None => base,
        }
    }

    /// Takes back the units an earlier run of the launcher left (before the first hello):
    /// a running one is waited for again, an ended one is reported; they are reported, and
    /// their records removed, exactly as if this process had started them.
    pub fn readopt(self: &Arc<Self>, found: Vec<Found>) {
        let t0 = std::time::Instant::now();
        let (mut running, mut ended) = (0, 0);
        for f in found {
            let mut r = f.record;
            if r.task == 0 && f.alive {
                // Recorded before the launcher heard the task's pid: its supervisor's child.
                r.task = child_of(r.supervisor).unwrap_or(0);
            }
            let cgroup = if r.cgroup { self.cgroups.as_ref().and_then(|c| c.adopt_task(&r.name)) } else { None };
            let waiter = if f.alive { Waiter::adopt(r.supervisor, r.supervisor_start).ok() } else { None };
            // The supervisor now watches this launcher (and stops waiting for one).
            if let Some(w) = &waiter {
                w.signal(libc::SIGUSR1);
            }
            if waiter.is_none() && !exit_path(&self.layout.root, &r.name).exists() {
                // Gone without a word (the node rebooted): the head requeues it as lost.
                tracing::warn!(job = %r.start.id.job, task = %r.start.id.task, "a task's supervisor is gone; its attempt is lost");
                let _ = std::fs::remove_file(record_path(&self.layout.root, &r.name));
                drop(cgroup);
                continue;
            }
            let Some(rx) = self.claim(&r.start.id) else { continue };
            self.track_unit(&r);
            if waiter.is_some() {
                running += 1;
            } else {
                ended += 1;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let mut rx = rx;
                let o = match waiter {
                    Some(w) => me.watch_unit(&r, w, cgroup, &mut rx).await,
                    None => {
                        let o = me.unit_outcome(&r, cgroup.as_ref(), None, None);
                        me.release_unit(&r.name, cgroup).await;
                        o
                    }
                };
                let report = me.after_process(&r.start, o).await;
                me.attempt_ended(&r.start, report);
            });
        }
        if running + ended > 0 {
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(running, ended, ms, "re-adopted the tasks an earlier run of the launcher left");
        }
    }
}

fn server_error(mut o: Outcome) -> Outcome {
    if let Some(f) = o.failure.as_mut() {
        f.category = ErrorCategory::ServerError;
    }
    o
}

/// `gangway-node supervise FD NAME`: reads its spec from the socket `FD`, starts the task,
/// answers with its pid, and waits for it. Returns the process's exit status.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        gangway_api::outln!(
            "usage: gangway-supervise FD NAME\n\nOne task process's supervisor, started by gangway-node with the task on the \
             socket FD;\nit runs the task, enforces its wall clock, and outlives a launcher restart."
        );
        return 0;
    }
    let Some(fd) = args.first().and_then(|a| a.to_str()).and_then(|a| a.parse::<RawFd>().ok()) else {
        gangway_api::errln!(
            "gangway-supervise: usage: gangway-supervise FD NAME (started by the launcher; see --help)"
        );
        return 2;
    };
    // SAFETY: the launcher passed this socket as `FD`; nothing else in this process owns it.
    // It was inherited, so it must not be passed on to the task.
    let mut sock = unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        std::os::unix::net::UnixStream::from_raw_fd(fd)
    };
    // The stop request (SIGTERM) and the launcher's terminal's signals arrive on a signalfd.
    let sigfd = match block_signals() {
        Ok(fd) => fd,
        Err(e) => {
            let _ = writeln!(sock, "err {}", e.raw_os_error().unwrap_or(libc::EINVAL));
            return 1;
        }
    };
    let mut body = Vec::new();
    let spec = match sock.read_to_end(&mut body).ok().and_then(|_| serde_json::from_slice::<SupervisorSpec>(&body).ok())
    {
        Some(s) => s,
        None => {
            let _ = writeln!(sock, "err {}", libc::EINVAL);
            return 1;
        }
    };
    let started = Timestamp::now();
    let child = match start_task(&spec) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = writeln!(sock, "err {}", e.raw_os_error().unwrap_or(libc::EINVAL));
            return 1;
        }
    };
    let _ = writeln!(sock, "ok {child}");
    // The task's files are the task's: this process keeps none of them open.
    release_stdio();
    let ended = supervise(&spec, child, &sigfd);
    // Whatever the task left in its process group goes with it (its cgroup is the launcher's).
    // SAFETY: kill(2) on the task's own process group.
    unsafe { libc::kill(-child, libc::SIGKILL) };
    let exit = ExitRecord {
        start: started.0,
        end: Timestamp::now().0,
        code: ended.code,
        max_rss_bytes: ended.max_rss_bytes,
        wall_clock: ended.wall_clock,
        orphaned: ended.orphaned,
    };
    let line = serde_json::to_vec(&exit).expect("serializes");
    let written = write_whole(&spec.exit_file, &line);
    // And to the launcher that started it, if it is still there: it then knows even when the
    // file could not be written (a full disk). A launcher that is gone makes this fail.
    let _ = sock.write_all(&[line.as_slice(), b"\n"].concat());
    i32::from(written.is_err())
}

/// Blocks the signals a supervisor handles and returns a signalfd that receives them.
fn block_signals() -> std::io::Result<OwnedFd> {
    // SAFETY: plain signal-mask and signalfd calls on zeroed, initialized sets.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Points fds 0–2 at /dev/null.
fn release_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for target in 0..3 {
            // SAFETY: dup2(2) onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), target) };
        }
    }
}

fn start_task(spec: &SupervisorSpec) -> std::io::Result<i32> {
    let cgroup_files: Vec<std::fs::File> = spec
        .cgroup
        .iter()
        .map(|d| std::fs::OpenOptions::new().write(true).open(d.join("cgroup.procs")))
        .collect::<Result<_, _>>()?;
    let pid_env: Option<&'static str> = spec.pid_env.clone().map(|s| &*Box::leak(s.into_boxed_str()));
    let s = spawn::SpawnSpec {
        program: spawn::cstring("the program path", &spec.program)?,
        argv: spec.argv.iter().map(|a| spawn::cstring("an argument", a)).collect::<Result<_, _>>()?,
        envp: spec.env.iter().map(|e| spawn::cstring("an environment variable", e)).collect::<Result<_, _>>()?,
        cwd: spawn::cstring("the working directory", &spec.cwd)?,
        stdio: [0, 1, 2],
        cgroup_fds: cgroup_files.iter().map(AsRawFd::as_raw_fd).collect(),
        keep_fd: None,
        cpus: None,
        mems: None,
        pid_env,
        user: spec.user.clone(),
        outlive_parent: false,
    };
    spawn::spawn(&s)
}

/// Signals the task's process group and everything in its cgroup.
fn signal_task(spec: &SupervisorSpec, child: i32, sig: i32) {
    // SAFETY: kill(2) on the task's process group and on the pids of its cgroup.
    unsafe { libc::kill(-child, sig) };
    for pid in crate::cgroup::procs_of_paths(&spec.cgroup) {
        if pid > 0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// A pidfd for process `pid`, or None where it is gone.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2); the result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    // SAFETY: as above.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How a supervised task ended.
struct Ended {
    /// Exit status, or 128+N when killed by signal N.
    code: i32,
    max_rss_bytes: u64,
    /// Its deadline stopped it.
    wall_clock: bool,
    /// No launcher took it back in time.
    orphaned: bool,
}

/// Waits for the task, stopping it when asked (SIGTERM), at its deadline, or when it has had
/// no launcher for `orphan_ms` (the launcher that started it, or the one that re-adopted it
/// and said so with SIGUSR1, is watched through a pidfd).
fn supervise(spec: &SupervisorSpec, child: i32, sigfd: &OwnedFd) -> Ended {
    let task = pidfd(child);
    // SAFETY: getppid(2) cannot fail.
    let mut launcher = pidfd(unsafe { libc::getppid() });
    let mut orphan_since = launcher.is_none().then(|| Timestamp::now().0);
    let grace = spec.grace_ms as i64 * 1000;
    let mut kill_at: Option<i64> = None;
    let (mut wall_clock, mut orphaned) = (false, false);
    loop {
        let now = Timestamp::now().0;
        let orphan_deadline = orphan_since.filter(|_| spec.orphan_ms > 0).map(|t| t + spec.orphan_ms as i64 * 1000);
        if kill_at.is_some_and(|k| now >= k) {
            signal_task(spec, child, libc::SIGKILL);
            kill_at = Some(i64::MAX);
        }
        if kill_at.is_none() {
            let expired = |d: Option<i64>| d.is_some_and(|d| now >= d);
            wall_clock = expired(spec.deadline);
            orphaned = !wall_clock && expired(orphan_deadline);
            if wall_clock || orphaned {
                signal_task(spec, child, libc::SIGTERM);
                kill_at = Some(now + grace);
            }
        }
        let next = match kill_at {
            Some(k) if k != i64::MAX => Some(k),
            Some(_) => None,
            None => [spec.deadline, orphan_deadline].into_iter().flatten().min(),
        };
        // A task whose pidfd could not be opened is looked at every 100 ms.
        let mut timeout_ms = next.map_or(-1, |t| ((t - now).max(0) / 1000 + 1).min(i64::from(i32::MAX)) as i32);
        if task.is_none() && !(0..100).contains(&timeout_ms) {
            timeout_ms = 100;
        }
        let fd_of = |f: &Option<OwnedFd>| f.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let mut fds = [
            libc::pollfd { fd: fd_of(&task), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: fd_of(&launcher), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll(2) on valid descriptors (a negative one is skipped).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        if fds[2].revents & libc::POLLIN != 0 {
            // The launcher is gone: the task goes on, until the head would call the node lost.
            launcher = None;
            orphan_since = Some(Timestamp::now().0);
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // SAFETY: an all-zero siginfo record is valid; reads fill whole records.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading whole siginfo records from our signalfd into `info`.
            while unsafe { libc::read(sigfd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) }
                == size as isize
            {
                match info.ssi_signo as i32 {
                    libc::SIGTERM if kill_at.is_none() => {
                        signal_task(spec, child, libc::SIGTERM);
                        kill_at = Some(Timestamp::now().0 + grace);
                    }
                    // A restarted launcher re-adopted this task: it is the one watched now.
                    libc::SIGUSR1 => {
                        if let Some(fd) = pidfd(info.ssi_pid as i32) {
                            launcher = Some(fd);
                            orphan_since = None;
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut status = 0;
        // SAFETY: rusage is plain data.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4(2) on our own child, non-blocking.
        let r = unsafe { libc::wait4(child, &mut status, libc::WNOHANG, &mut usage) };
        if r == child {
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
            return Ended { code, max_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024, wall_clock, orphaned };
        }
        if r < 0 {
            break;
        }
    }
    Ended { code: 128 + libc::SIGKILL, max_rss_bytes: 0, wall_clock, orphaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_of_a_process_is_read_past_odd_command_names() {
        let me = std::process::id() as i32;
        let t = start_time_of(me).expect("our own stat");
        assert_eq!(start_time_of(me), Some(t), "stable");
        assert!(start_time_of(i32::MAX).is_none());
    }

    #[test]
    fn records_are_found_and_unreadable_ones_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(RUNNING_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.json"), b"{").unwrap();
        std::fs::write(dir.join("half.tmp"), b"{").unwrap();
        let me = std::process::id() as i32;
        let id = AttemptId { job: "j".into(), task: "t".into(), attempt: 2 };
        let start = crate::executor::tests::start(&id, "true");
        let mut record = UnitRecord {
            name: "t5".into(),
            start,
            supervisor: me,
            supervisor_start: start_time_of(me).unwrap(),
            task: me,
            cgroup: true,
            started: 0,
        };
        write_whole(&record_path(root.path(), "t5"), &serde_json::to_vec(&record).unwrap()).unwrap();
        record.name = "t6".into();
        record.supervisor_start += 1; // pid reused by another process
        write_whole(&record_path(root.path(), "t6"), &serde_json::to_vec(&record).unwrap()).unwrap();
        std::fs::write(exit_path(root.path(), "t6"), b"{}").unwrap();
        let mut found = found(root.path());
        found.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        let seen: Vec<_> = found.iter().map(|f| (f.record.name.as_str(), f.alive, f.ended)).collect();
        assert_eq!(seen, [("t5", true, false), ("t6", false, true)]);
        assert_eq!(kept_cgroups(&found), ["t5", "t6"]);
        assert!(!dir.join("bad.json").exists() && !dir.join("half.tmp").exists());
    }
}

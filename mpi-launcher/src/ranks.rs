//! Managed MPI on one node: the launcher starts the ranks itself, each in the task's cgroup,
//! bound to its part of `plan_ranks`'s placement (CPUs by `sched_setaffinity` before exec, GPU
//! and NIC variables in its environment) and connected to the launcher's PMI-1 server over
//! `PMI_FD`. One rank failing (or aborting through PMI) kills every rank and fails the task.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use gangway_api::messages::{StartTask, TaskFinished};
use gangway_api::{MpiSettings, Timestamp};
use gangway_topology::placement::{plan_ranks, Placement, PlacementRequest, RankPlacement};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::executor::{release, Executor, Launch, Limits, Outcome, RankSetup, RunMode, StopReason};
use crate::pmi::{process_mapping, serve_node, FenceExchange, NodeConfig, NodePmi, PmiEvent, RankSocket, SingleNode};

/// Where this node's ranks sit in the job step: node `node_rank` of `nodes`, each with the
/// same number of ranks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepLayout {
    pub node_rank: u32,
    pub nodes: u32,
}

/// A fence exchanged through the head with the other nodes of a multi-node step.
pub(crate) struct HeadFence {
    pub exec: Arc<Executor>,
    pub id: gangway_api::messages::AttemptId,
    pub instance: u32,
    pub epoch: std::sync::atomic::AtomicU32,
    /// Ranks per node: rank R runs on instance R / this.
    pub ranks_per_node: u32,
}

/// The PMIx namespace of an attempt's ranks (the same on every instance).
pub(crate) fn pmix_nspace(id: &gangway_api::messages::AttemptId) -> String {
    format!("gangway.{}.{}.{}", id.job, id.task, id.attempt)
}

impl FenceExchange for HeadFence {
    fn fetch_modex(&self, rank: u32) -> crate::pmi::io::ModexFuture {
        use gangway_api::messages::{LauncherMessage, PmixModex};
        let req = self.exec.modex_req.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.exec.modex.lock().expect("lock").insert((self.id.clone(), req), tx);
        let modex = PmixModex::Request { req, rank, from: self.instance };
        let to = rank / self.ranks_per_node.max(1);
        self.exec.send(LauncherMessage::PmixModex { id: self.id.clone(), to, modex });
        Box::pin(async move { rx.await.ok().flatten() })
    }

    async fn exchange(&self, puts: Vec<(String, String)>) -> Result<Vec<(String, String)>, crate::pmi::io::FenceError> {
        let epoch = self.epoch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.exec.fences.lock().expect("lock").insert((self.id.clone(), epoch), tx);
        self.exec.send(gangway_api::messages::LauncherMessage::PmiFence {
            id: self.id.clone(),
            instance: self.instance,
            epoch,
            puts,
        });
        rx.await.map_err(|_| crate::pmi::io::FenceError::StepEnded)
    }
}

/// A close-on-exec duplicate of `fd` (the rank's child end, kept open until every rank is done).
fn dup_cloexec(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The plan when the node's topology is unknown: ranks unbound, no device variables.
fn unbound(ranks: u32) -> Placement {
    Placement {
        ranks: (0..ranks)
            .map(|rank| RankPlacement {
                rank,
                cpus: Vec::new(),
                cores: Vec::new(),
                numa_nodes: Vec::new(),
                gpus: Vec::new(),
                nics: Vec::new(),
                env: Default::default(),
            })
            .collect(),
    }
}

/// Which MPI a program is linked against, read from the shared-library names in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkedMpi {
    /// Open MPI (`libmpi.so.40`, `libopen-rte`, `libopen-pal`): speaks PMIx only.
    OpenMpi,
    /// MPICH's ABI (`libmpich.so.12`, `libmpi.so.12`: MPICH, Intel MPI, MVAPICH): PMI-1.
    Mpich,
    /// A script, a static or unknown binary, or no program file.
    Unknown,
}

/// Which MPI `program` is linked against.
pub fn linked_mpi(program: &std::path::Path) -> LinkedMpi {
    let Ok(bytes) = std::fs::read(program) else { return LinkedMpi::Unknown };
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    if has(b"libmpi.so.40") || has(b"libopen-rte") || has(b"libopen-pal") {
        LinkedMpi::OpenMpi
    } else if has(b"libmpich.so") || has(b"libmpi.so.12") {
        LinkedMpi::Mpich
    } else {
        LinkedMpi::Unknown
    }
}

impl Executor {
    /// A PMIx direct-modex message from another instance of a running attempt: a request for
    /// one of this node's ranks' data (answered when the library has it), or an answer.
    pub(crate) fn pmix_modex(
        self: &Arc<Self>,
        id: gangway_api::messages::AttemptId,
        modex: gangway_api::messages::PmixModex,
    ) {
        use gangway_api::messages::{LauncherMessage, PmixModex};
        match modex {
            PmixModex::Request { req, rank, from } => {
                let answer = crate::pmix::server::local_modex(&pmix_nspace(&id), rank);
                let me = self.clone();
                tokio::spawn(async move {
                    let data = answer.await.ok().flatten().map(|d| crate::pmix::io::encode(&d));
                    me.send(LauncherMessage::PmixModex { id, to: from, modex: PmixModex::Data { req, data } });
                });
            }
            PmixModex::Data { req, data } => {
                if let Some(tx) = self.modex.lock().expect("lock").remove(&(id, req)) {
                    let _ = tx.send(data.as_deref().and_then(crate::pmix::io::decode));
                }
            }
        }
    }

    /// OS numbers of NUMA nodes given by logical index (what `set_mempolicy` takes).
    pub(crate) fn os_numa_nodes(&self, logical: &[u32]) -> Vec<u32> {
        let Some(t) = &self.topology else { return Vec::new() };
        logical.iter().filter_map(|i| t.numa_nodes.get(*i as usize).map(|n| n.os_index)).collect()
    }

    /// Runs the task's ranks on this node to their end and returns the task's report.
    pub(crate) async fn run_ranks(
        self: &Arc<Self>,
        start: StartTask,
        mpi: MpiSettings,
        mut stop_rx: mpsc::UnboundedReceiver<StopReason>,
    ) -> TaskFinished {
        let single = StepLayout { node_rank: 0, nodes: 1 };
        let o = self.ranks_outcome(&start, &mpi, &mut stop_rx, single, SingleNode).await;
        o.into_report(start.id, None)
    }

    pub(crate) async fn ranks_outcome<F: FenceExchange + Send + Sync + 'static>(
        self: &Arc<Self>,
        start: &StartTask,
        mpi: &MpiSettings,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
        step: StepLayout,
        fence: F,
    ) -> Outcome {
        let dir = self.layout.task_dir(&start.id.job, &start.id.task);
        let wd = dir.join("wd");
        if let Err(e) = crate::users::as_user(self.user_of(&dir).as_deref(), || std::fs::create_dir_all(&wd)) {
            return Outcome::failed("TaskDirectory", format!("creating {}: {e}", dir.display()));
        }
        if let Err(o) = self.fetch_resource_files(start, &dir).await {
            return o;
        }
        // Every rank appends; the attempt starts them afresh.
        for log in ["stdout.txt", "stderr.txt"] {
            let path = dir.join(log);
            // The ranks open them as the task's user: the user makes them.
            if let Err(e) =
                crate::users::as_user(self.user_of(&dir).as_deref(), || crate::users::write_fresh(&path, b""))
            {
                return Outcome::failed("TaskDirectory", format!("creating {log}: {e}"));
            }
        }
        // Open MPI ranks given PMI-1 variables would each start as a singleton of size 1:
        // they are served PMIx instead (or started by mpirun through gangway's agent,
        // openmpi.rs, when the task asks for that).
        let wanted = mpi.implementation.as_deref().unwrap_or("auto");
        let kind = match wanted {
            "auto" => match linked_mpi(&program_of(start, &dir)) {
                LinkedMpi::OpenMpi => "pmix",
                LinkedMpi::Mpich | LinkedMpi::Unknown => "pmi",
            },
            other => other,
        };
        let local = mpi.ranks_per_node;
        let size = local * step.nodes;
        let first = local * step.node_rank;
        let plan = match (PlacementRequest::parse(&mpi.placement_spec()), &self.topology) {
            (Err(e), _) => return Outcome::failed("InvalidPlacement", e.to_string()),
            (Ok(req), Some(t)) => match plan_ranks(&restricted(t, start.allocation.as_ref()), &req) {
                Ok(p) => p,
                Err(e) => {
                    return Outcome::failed(
                        "PlacementFailed",
                        format!("cannot place the ranks on node '{}': {e}", self.node),
                    )
                }
            },
            (Ok(_), None) => unbound(local),
        };
        if kind == "openmpi" {
            let s = crate::openmpi::OpenMpiStep { start, mpi, step, fence, plan, dir };
            return self.openmpi_outcome(s, stop_rx).await;
        }
        let user = self.user_of(&dir);
        let pmix = kind == "pmix";
        if let Err(e) = check_speaks(kind, &program_of(start, &dir)) {
            return Outcome::failed("MpiMismatch", e);
        }
        let mut sockets = Vec::new();
        let mut kept = Vec::new();
        for r in (first..first + local).filter(|_| !pmix) {
            let made = RankSocket::new(r).and_then(|s| dup_cloexec(s.child_fd()).map(|d| (s, d)));
            match made {
                Ok((s, d)) => {
                    sockets.push(s);
                    kept.push(d);
                }
                Err(e) => return Outcome::failed("PmiSetupFailed", format!("making rank {r}'s PMI socket: {e}")),
            }
        }
        let rank_cpus: Vec<Vec<u32>> = plan.ranks.iter().map(|rp| self.on_host(&rp.cpus, &self.host_cpus)).collect();
        // PMIx: the namespace and every local rank's client, registered before any starts.
        let shm = crate::openmpi::shm_dir(&start.id, &dir.join("tmp"));
        // The rank's session directories (`PMIX_TMPDIR`, which the resource manager cleans) and
        // shared-memory segments go when the ranks have.
        let _remove_shm = pmix.then(|| crate::pmix::server::RemoveDir(shm.clone()));
        let _remove_tmp = pmix.then(|| crate::pmix::server::RemoveDir(dir.join("tmp")));
        let mut namespace = None;
        let mut pmix_env = Vec::new();
        if pmix {
            if let Err(e) = crate::users::as_user(user.as_deref(), || std::fs::create_dir_all(&shm)) {
                return Outcome::failed("TaskDirectory", format!("creating {}: {e}", shm.display()));
            }
            let map = crate::pmix::StepMap {
                nspace: pmix_nspace(&start.id),
                job_id: format!("{}.{}", start.id.job, start.id.task),
                hosts: start.multi_instance.as_ref().map_or_else(|| vec![self.node.clone()], |p| p.hosts.clone()),
                rank_nodes: (0..size).map(|r| r / local).collect(),
                node: step.node_rank,
                tmpdir: dir.join("tmp").to_string_lossy().into_owned(),
                cpus: (first..).zip(rank_cpus.iter().cloned()).collect(),
                owner: user.as_ref().map(|u| (u.uid, u.gid)),
            };
            let (uid, gid) = map.owner.unwrap_or_else(crate::pmix::server::own_ids);
            let rdma = self.topology.as_ref().is_some_and(|t| !t.nics.is_empty());
            let registered = crate::pmix::server(&self.layout.root.join("pmix"))
                .map_err(|e| format!("starting the PMIx server: {e}"))
                .and_then(|server| server.register(&map).map_err(|e| e.to_string()))
                .and_then(|ns| {
                    for r in first..first + local {
                        let mut env = ns.client(r, uid, gid).map_err(|e| e.to_string())?;
                        env.extend(crate::openmpi::direct_env(&start.env, rdma, &shm));
                        // Open MPI 4 takes itself for a singleton unless a resource manager it
                        // knows launched it (Slurm's variables, or Flux's job id); Flux's
                        // means nothing else to it. Open MPI 5 asks its PMIx server instead.
                        if !start.env.iter().any(|(k, _)| k == "FLUX_JOB_ID") {
                            env.push(("FLUX_JOB_ID".into(), map.job_id.clone()));
                        }
                        pmix_env.push(env);
                    }
                    Ok(ns)
                });
            match registered {
                Ok(ns) => namespace = Some(ns),
                Err(e) => return Outcome::failed("PmixSetupFailed", e),
            }
        }
        // The task's cpuset is every CPU its ranks are bound to.
        let mut all_cpus: Vec<u32> = plan.ranks.iter().flat_map(|r| r.cpus.iter().copied()).collect();
        all_cpus.sort_unstable();
        all_cpus.dedup();
        let cgroup = match self.new_cgroup_on('r', &self.rank_limits(start, all_cpus)) {
            Ok(c) => Arc::new(c),
            Err(o) => return o,
        };
        let base = self.layout.task_env(start, &self.node, &self.account_url);
        let mut stops = Vec::new();
        let mut ranks = JoinSet::new();
        for (r, (rp, cpus)) in plan.ranks.iter().zip(&rank_cpus).enumerate() {
            use std::os::fd::AsRawFd;
            let pmi_fd = kept.get(r).map(AsRawFd::as_raw_fd);
            let mut env = base.clone();
            env.extend(rp.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let (Some(sock), Some(fd)) = (sockets.get(r), pmi_fd) {
                env.extend(sock.env(size));
                env.push(("PMI_FD".into(), fd.to_string()));
            }
            env.extend(pmix_env.get(r).into_iter().flatten().cloned());
            for (k, v) in [
                ("GANGWAY_RANK", first as usize + r),
                ("GANGWAY_LOCAL_RANK", r),
                ("GANGWAY_NODE_RANK", step.node_rank as usize),
                ("GANGWAY_SIZE", size as usize),
            ] {
                env.push((k.into(), v.to_string()));
            }
            let launch = Launch {
                dir: dir.clone(),
                command_line: start.command_line.clone(),
                env,
                max_wall_clock: start.max_wall_clock_ms.map(Duration::from_millis),
                cgroup_prefix: 'r',
                rank: Some(RankSetup {
                    pmi_fd,
                    cpus: cpus.clone(),
                    mems: self.on_host(&self.os_numa_nodes(&rp.numa_nodes), &self.host_mems),
                }),
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            stops.push(tx);
            let (me, cg) = (self.clone(), cgroup.clone());
            let mode = RunMode { keep_leftovers: false, append_logs: true };
            ranks.spawn(async move { (r, me.run_in(launch, cg.as_ref().as_ref(), &mut rx, mode).await) });
        }
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let unfinished = namespace.as_ref().map(crate::pmix::Namespace::unfinished);
        let server = match namespace.as_mut().and_then(crate::pmix::Namespace::upcalls) {
            Some(upcalls) => {
                tokio::spawn(async move { crate::pmix::serve_namespace(upcalls, &fence, events_tx).await })
            }
            None => {
                let servers: Vec<(u32, OwnedFd)> = sockets.into_iter().map(|s| (s.rank, s.into_server())).collect();
                let pmi = NodePmi::new(NodeConfig {
                    size,
                    local_ranks: (first..first + local).collect(),
                    kvsname: format!("gangway_{}_{}_{}", start.id.job, start.id.task, start.id.attempt),
                    process_mapping: process_mapping(&vec![local; step.nodes as usize]),
                });
                tokio::spawn(async move {
                    if let Err(e) = serve_node(pmi, servers, &fence, events_tx).await {
                        tracing::warn!(error = %e, "PMI server stopped");
                    }
                })
            }
        };
        let mut outcomes: Vec<Option<Outcome>> = (0..local).map(|_| None).collect();
        let mut first_failure: Option<Outcome> = None;
        let mut stopping = false;
        let stop_all = |stops: &[mpsc::UnboundedSender<StopReason>], why: StopReason| {
            for tx in stops {
                let _ = tx.send(why.clone());
            }
        };
        while outcomes.iter().any(Option::is_none) {
            tokio::select! {
                Some(done) = ranks.join_next() => {
                    let Ok((r, mut o)) = done else { continue };
                    // A rank that joined the PMIx job and ended without finalizing leaves its
                    // peers waiting for it: it fails the task like any failing rank.
                    let lost = unfinished.as_ref().is_some_and(|u| u.lock().expect("lock").remove(&(first + r as u32)));
                    if lost && o.failure.is_none() && !stopping {
                        o.failure = Outcome::failed(
                            "MpiRankLost",
                            format!("rank {} ended without finalizing MPI", first + r as u32),
                        )
                        .failure;
                    }
                    let bad = o.exit_code != Some(0) || o.failure.is_some();
                    if bad && first_failure.is_none() && !stopping {
                        first_failure = Some(Outcome {
                            exit_code: o.exit_code,
                            failure: o.failure.clone(),
                            start_time: o.start_time,
                            end_time: o.end_time,
                            max_rss_bytes: o.max_rss_bytes,
                        });
                        stopping = true;
                        stop_all(&stops, StopReason::Killed("RankFailed".into()));
                    }
                    outcomes[r] = Some(o);
                }
                Some(why) = stop_rx.recv(), if !stopping => {
                    stopping = true;
                    stop_all(&stops, why);
                }
                Some(ev) = events.recv() => {
                    if let PmiEvent::Abort { rank, code, .. } = &ev {
                        if first_failure.is_none() {
                            first_failure = Some(Outcome {
                                exit_code: Some(*code),
                                ..Outcome::failed("MpiAbort", format!("rank {rank} called MPI_Abort with code {code}"))
                            });
                            stopping = true;
                            stop_all(&stops, StopReason::Killed("MpiAbort".into()));
                        }
                    }
                }
            }
        }
        drop(kept);
        server.abort();
        drop(namespace);
        release(Arc::into_inner(cgroup).flatten()).await;
        let done: Vec<Outcome> = outcomes.into_iter().flatten().collect();
        if let Some(f) = first_failure {
            return f;
        }
        Outcome {
            exit_code: Some(0),
            failure: None,
            start_time: done.iter().filter_map(|o| o.start_time).min(),
            end_time: done.iter().map(|o| o.end_time).max().unwrap_or_else(Timestamp::now),
            max_rss_bytes: done.iter().filter_map(|o| o.max_rss_bytes).max(),
        }
    }
}

/// The program file of a task's command line (its first word, found on `PATH` or in `wd`).
fn program_of(start: &StartTask, dir: &std::path::Path) -> std::path::PathBuf {
    let wd = dir.join("wd");
    let first = gangway_api::cmdline::split_command_line(&start.command_line)
        .ok()
        .and_then(|argv| argv.first().cloned())
        .unwrap_or_default();
    let path_var = std::env::var_os("PATH");
    let found = crate::spawn::resolve_program(&first, path_var.as_deref(), &wd).unwrap_or_else(|_| first.into());
    wd.join(found)
}

/// Refuses a program that cannot speak the interface its ranks would be served (they would
/// each run as a one-rank job), naming what it speaks.
pub(crate) fn check_speaks(kind: &str, program: &std::path::Path) -> Result<(), String> {
    let pmix = match kind {
        "pmi" => false,
        "pmix" => true,
        _ => return Ok(()),
    };
    match cannot_speak(&program.display().to_string(), linked_mpi(program), pmix) {
        Some(what) if pmix => Err(format!("{what}, but mpi.implementation is pmix: use pmi or auto")),
        Some(what) => Err(format!("{what}, but mpi.implementation is pmi (PMI-1): use pmix, openmpi or auto")),
        None => Ok(()),
    }
}

/// What `program`, linked to `linked`, speaks when that is not the interface it would be
/// served (PMIx with `pmix`, else PMI-1): the start of the refusal both front doors give.
pub(crate) fn cannot_speak(program: &str, linked: LinkedMpi, pmix: bool) -> Option<String> {
    match (linked, pmix) {
        (LinkedMpi::OpenMpi, false) => Some(format!("{program} is linked to Open MPI, which speaks PMIx only")),
        (LinkedMpi::Mpich, true) => {
            Some(format!("{program} is linked to an MPICH-family MPI, which speaks PMI-1 and PMI-2"))
        }
        _ => None,
    }
}

/// The node as ranks of a task with `allocation` see it: only its CPUs and GPUs, so ranks are
/// planned inside the allocation (a slots-only task, given no cores, sees the whole node).
fn restricted<'a>(
    t: &'a gangway_topology::model::NodeTopology,
    allocation: Option<&gangway_api::NodeAllocation>,
) -> std::borrow::Cow<'a, gangway_topology::model::NodeTopology> {
    match allocation.filter(|a| !a.cpus.is_empty()) {
        Some(a) => std::borrow::Cow::Owned(t.restricted(&a.cpus, &a.gpus)),
        None => std::borrow::Cow::Borrowed(t),
    }
}

impl Executor {
    /// The cgroup of a task's ranks: the CPUs they are bound to (inside its allocation) and
    /// the allocation's memory limit.
    pub(crate) fn rank_limits(&self, start: &StartTask, plan_cpus: Vec<u32>) -> Limits {
        let memory_mib = start.allocation.as_ref().map_or(0, |a| a.memory_mib);
        let gpus = start.allocation.as_ref().map_or_else(Vec::new, |a| a.gpus.clone());
        let of_plan = gangway_api::NodeAllocation { cpus: plan_cpus, memory_mib, gpus, ..Default::default() };
        self.limits_of(Some(&of_plan))
    }
}

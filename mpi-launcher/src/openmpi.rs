//! Managed MPI for Open MPI programs: `mpirun` on the primary, its daemons started through
//! gangway's remote-launch agent instead of ssh.
//!
//! Every instance (every node of the gang; the only one for a one-node task) opens an agent
//! [`Site`] (a socket in its task directory, commands run in its cgroup), writes its plan file
//! for `rank-step`, and publishes its placement in a fence through the head — which also
//! guarantees every site is open before `mpirun` starts. The primary then writes a hostfile
//! and a rankfile from everyone's plans and runs `mpirun … gangway-node rank-step -- PROGRAM`
//! in its cgroup with the task's wall clock; its exit code is the task's (Open MPI returns the
//! first non-zero rank exit). `mpirun` is given node names, which it does not find local, so
//! every node's `orted` — the primary's too — is started by that node's launcher through the
//! agent, and the ranks are its children, in the cgroup. Another instance's part is over when
//! the daemons it ran have ended; the head's kill ends it otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gangway_api::messages::StartTask;
use gangway_api::{MpiSettings, Timestamp};
use gangway_topology::placement::Placement;
use tokio::sync::mpsc;

use crate::agent::{Site, SiteHandle, SiteSpec};
use crate::agent_cli::{PLAN_ENV, SOCKET_ENV};
use crate::cgroup::TaskCgroup;
use crate::executor::{release, Executor, Launch, Outcome, RunMode, StopReason};
use crate::openmpi_files::{self as files, MpirunArgs, NodePart};
use crate::pmi::FenceExchange;
use crate::ranks::StepLayout;

/// Transport choices that skip Open MPI's probing of fabrics a node does not have (about
/// 175 ms of every `MPI_Init` on a machine without RDMA); only on nodes without RDMA NICs,
/// and each only when the task does not set it.
const NO_RDMA_DEFAULTS: [(&str, &str); 4] = [
    ("OMPI_MCA_pml", "ob1"),
    ("OMPI_MCA_btl", "self,vader,tcp"),
    ("OMPI_MCA_mtl", "^ofi,psm,psm2"),
    ("OMPI_MCA_osc", "^ucx"),
];

/// What the Open MPI environment is made from.
pub struct OpenMpiEnv<'a> {
    /// The per-instance temporary directory (orted's session directories go there).
    pub tmp: &'a Path,
    /// The agent socket of this node.
    pub socket: &'a Path,
    /// This node's plan file.
    pub plan: &'a Path,
    /// This launcher's executable (the agent and the rank step).
    pub launcher: &'a str,
    /// The task's own variables (job and task settings).
    pub user: &'a [(String, String)],
    /// Whether the node has RDMA NICs (then Open MPI picks its transports itself).
    pub rdma: bool,
    /// Whether the task runs as root (Open MPI refuses root unless told it is meant).
    pub as_root: bool,
}

/// The variables `mpirun`, the daemons and the ranks get on top of the task's environment.
pub fn openmpi_env(e: &OpenMpiEnv) -> Vec<(String, String)> {
    let user_sets = |k: &str| e.user.iter().any(|(n, _)| n == k);
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut env = vec![
        ("OMPI_MCA_plm_rsh_agent".to_owned(), format!("{} rsh-agent", e.launcher)),
        // Tree spawn keeps every orted a child of the agent's shell (no --daemonize), so a
        // launcher sees its daemon end; with no_tree_spawn it would leave the agent at once.
        ("OMPI_MCA_plm_rsh_no_tree_spawn".to_owned(), "0".to_owned()),
        (SOCKET_ENV.to_owned(), s(e.socket)),
        (PLAN_ENV.to_owned(), s(e.plan)),
    ];
    // Only a task that runs as root (its owner is root, or the launcher is not root and runs
    // its own user's) is told that root is meant; a user's task needs nothing.
    if e.as_root {
        env.push(("OMPI_ALLOW_RUN_AS_ROOT".to_owned(), "1".to_owned()));
        env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".to_owned(), "1".to_owned()));
    }
    if !user_sets("TMPDIR") {
        env.push(("TMPDIR".to_owned(), s(e.tmp)));
    }
    if !e.rdma {
        env.extend(transport_defaults(user_sets));
    }
    env
}

/// The transport defaults of a node without RDMA NICs, less those the task sets.
fn transport_defaults(user_sets: impl Fn(&str) -> bool) -> impl Iterator<Item = (String, String)> {
    NO_RDMA_DEFAULTS.iter().filter(move |(k, _)| !user_sets(k)).map(|(k, v)| (k.to_string(), v.to_string()))
}

/// What Open MPI ranks started directly (under PMIx) get on top of the task's environment
/// (`user`): the transport defaults of a node without RDMA NICs and this instance's own
/// shared-memory directory, each unless the task sets it.
pub fn direct_env(user: &[(String, String)], rdma: bool, shm: &Path) -> Vec<(String, String)> {
    let user_sets = |k: &str| user.iter().any(|(n, _)| n == k);
    let mut env = Vec::new();
    if !rdma {
        env.extend(transport_defaults(user_sets));
    }
    if !user_sets("OMPI_MCA_btl_vader_backing_directory") {
        env.push(("OMPI_MCA_btl_vader_backing_directory".to_owned(), shm.to_string_lossy().into_owned()));
    }
    env
}

/// What a node's daemons (and through them its ranks) get on top of [`openmpi_env`]: this
/// node's own directories. `mpirun` must not have these: it forwards every `OMPI_MCA_*` of
/// its environment to all ranks, over the daemons' values.
pub fn daemon_env(e: &OpenMpiEnv, shm: &Path) -> Vec<(String, String)> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut env = vec![
        // Fake hosts on one machine that share session directories hang now and then (notes).
        ("OMPI_MCA_orte_tmpdir_base".to_owned(), s(e.tmp)),
    ];
    // vader names its segments by host name and local rank, so two fake hosts on one machine
    // collide in /dev/shm (ranks crash); each instance gets its own directory.
    if !e.user.iter().any(|(n, _)| n == "OMPI_MCA_btl_vader_backing_directory") {
        env.push(("OMPI_MCA_btl_vader_backing_directory".to_owned(), s(shm)));
    }
    env
}

/// This instance's shared-memory directory: tmpfs when the machine has one (vader's
/// segments are hot memory), named by launcher process and attempt so that no two
/// launchers or attempts share one; under the task's `tmp` otherwise.
pub(crate) fn shm_dir(id: &gangway_api::messages::AttemptId, tmp: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(format!("gangway.{}.{}.{}.{}", std::process::id(), id.job, id.task, id.attempt))
    } else {
        tmp.join("shm")
    }
}

/// Everything an Open MPI instance was given by `ranks_outcome`.
pub(crate) struct OpenMpiStep<'a, F> {
    pub start: &'a StartTask,
    pub mpi: &'a MpiSettings,
    pub step: StepLayout,
    pub fence: F,
    pub plan: Placement,
    pub dir: PathBuf,
}

impl Executor {
    /// Runs this node's part of an Open MPI launch to its end.
    pub(crate) async fn openmpi_outcome<F: FenceExchange + Send + Sync + 'static>(
        self: &Arc<Self>,
        s: OpenMpiStep<'_, F>,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
    ) -> Outcome {
        let tmp = s.dir.join("tmp");
        let shm = shm_dir(&s.start.id, &tmp);
        // Open MPI's session directories go there, made by the task's user.
        let user = self.user_of(&s.dir);
        for d in [&tmp, &shm] {
            if let Err(e) = crate::users::as_user(user.as_deref(), || std::fs::create_dir_all(d)) {
                return Outcome::failed("TaskDirectory", format!("creating {}: {e}", d.display()));
            }
        }
        let mut all_cpus: Vec<u32> = s.plan.ranks.iter().flat_map(|r| r.cpus.iter().copied()).collect();
        all_cpus.sort_unstable();
        all_cpus.dedup();
        let cgroup = match self.new_cgroup_on('o', &self.rank_limits(s.start, all_cpus)) {
            Ok(c) => Arc::new(c),
            Err(o) => return o,
        };
        let o = self.openmpi_in(&s, (&tmp, &shm), &cgroup, stop_rx).await;
        // The site is closed: what still holds the cgroup lets go of it at once.
        let mut cgroup = cgroup;
        for _ in 0..100 {
            match Arc::try_unwrap(cgroup) {
                Ok(cg) => {
                    release(cg).await;
                    break;
                }
                Err(still) => cgroup = still,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&shm);
        o
    }

    async fn openmpi_in<F: FenceExchange + Send + Sync + 'static>(
        self: &Arc<Self>,
        s: &OpenMpiStep<'_, F>,
        (tmp, shm): (&Path, &Path),
        cgroup: &Arc<Option<TaskCgroup>>,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
    ) -> Outcome {
        let started = Timestamp::now();
        let size = s.mpi.ranks_per_node * s.step.nodes;
        let wd = s.dir.join("wd");
        let mems: Vec<Vec<u32>> = s.plan.ranks.iter().map(|r| self.os_numa_nodes(&r.numa_nodes)).collect();
        let plan_path = s.dir.join(".gangway-openmpi-plan.json");
        let plan_text = files::plan_file(&s.plan, &mems, s.step.node_rank, size, &wd.to_string_lossy());
        if let Err(e) = crate::users::write_fresh(&plan_path, plan_text.as_bytes()) {
            return Outcome::failed("TaskDirectory", format!("writing {}: {e}", plan_path.display()));
        }
        let launcher = match std::env::current_exe() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => return Outcome::failed("MpiLaunchFailed", format!("finding gangway-node's own path: {e}")),
        };
        if launcher.contains(char::is_whitespace) || launcher.contains(':') {
            // Open MPI splits plm_rsh_agent at spaces and colons.
            return Outcome::failed(
                "MpiLaunchFailed",
                format!("gangway-node's path {launcher} holds a space or colon; Open MPI cannot run it as its agent"),
            );
        }
        let mut env = self.layout.task_env(s.start, &self.node, &self.account_url);
        let mut aliases = vec![self.node.clone()];
        if let Some(p) = &s.start.multi_instance {
            env.extend(crate::instances::instance_env(p, &s.dir));
            aliases.extend(p.hosts.get(p.instance as usize).cloned());
        }
        let socket = crate::agent::socket_path(&s.dir);
        let rdma = self.topology.as_ref().is_some_and(|t| !t.nics.is_empty());
        // SAFETY: geteuid has no preconditions.
        let as_root = self.user_of(&s.dir).map_or(unsafe { libc::geteuid() } == 0, |u| u.uid == 0);
        let user = &s.start.env;
        let e = OpenMpiEnv { tmp, socket: &socket, plan: &plan_path, launcher: &launcher, user, rdma, as_root };
        env.extend(openmpi_env(&e));
        let mut daemons = env.clone();
        daemons.extend(daemon_env(&e, shm));
        let spec = SiteSpec {
            id: s.start.id.clone(),
            instance: s.step.node_rank,
            aliases,
            dir: s.dir.clone(),
            env: daemons,
            cgroup: cgroup.clone(),
        };
        let site = match Site::open(self, spec) {
            Ok(site) => site,
            Err(e) => return Outcome::failed("MpiLaunchFailed", format!("{e}")),
        };
        let o = self.openmpi_with_site(s, &site, cgroup, env, &launcher, stop_rx).await;
        site.close().await;
        Outcome { start_time: o.start_time.or(Some(started)), ..o }
    }

    async fn openmpi_with_site<F: FenceExchange + Send + Sync + 'static>(
        self: &Arc<Self>,
        s: &OpenMpiStep<'_, F>,
        site: &SiteHandle,
        cgroup: &Arc<Option<TaskCgroup>>,
        env: Vec<(String, String)>,
        launcher: &str,
        stop_rx: &mut mpsc::UnboundedReceiver<StopReason>,
    ) -> Outcome {
        let me = NodePart {
            kind: "openmpi".into(),
            host: self.node.clone(),
            cpus: s.plan.ranks.iter().map(|r| r.cpus.clone()).collect(),
        };
        let puts = vec![(files::plan_key(s.step.node_rank), files::encode_part(&me))];
        let all = tokio::select! {
            r = s.fence.exchange(puts) => match r {
                Ok(all) => all,
                Err(e) => return Outcome::failed("MpiLaunchFailed", format!("exchanging placements: {e}")),
            },
            why = stop_rx.recv() => return crate::instances::stopped_outcome(why.unwrap_or(StopReason::Shutdown), None),
        };
        if s.step.node_rank != 0 {
            // This node's part ends when the daemons mpirun started here have ended.
            let mut activity = site.activity();
            return tokio::select! {
                _ = activity.wait_for(|a| a.started > 0 && a.running == 0) => Outcome {
                    exit_code: Some(0),
                    failure: None,
                    start_time: None,
                    end_time: Timestamp::now(),
                    max_rss_bytes: None,
                },
                why = stop_rx.recv() => crate::instances::stopped_outcome(why.unwrap_or(StopReason::Shutdown), None),
            };
        }
        let parts = match files::gather_parts(&all, s.step.nodes, s.mpi.ranks_per_node) {
            Ok(p) => p,
            Err(e) => return Outcome::failed("MpiLaunchFailed", e.to_string()),
        };
        let hostfile = s.dir.join("openmpi.hostfile");
        let rankfile = s.dir.join("openmpi.rankfile");
        // bind=none plans give every rank all of the node's CPUs: Open MPI need not bind at all.
        let ranks = if s.mpi.bind.as_deref() == Some("none") { None } else { files::rankfile(&parts) };
        let written = crate::users::write_fresh(&hostfile, files::hostfile(&parts).as_bytes())
            .and_then(|()| ranks.as_ref().map_or(Ok(()), |r| crate::users::write_fresh(&rankfile, r.as_bytes())));
        if let Err(e) = written {
            return Outcome::failed("TaskDirectory", format!("writing the hostfile and rankfile: {e}"));
        }
        let program = match gangway_api::cmdline::split_command_line(&s.start.command_line) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => return Outcome::failed("InvalidCommandLine", "the command line is empty".into()),
            Err(e) => return Outcome::failed("InvalidCommandLine", e),
        };
        let mpirun = s.start.env.iter().rev().find(|(k, _)| k == "GANGWAY_MPIRUN").map_or("mpirun", |(_, v)| v);
        let (hostfile, rankfile) = (hostfile.to_string_lossy(), rankfile.to_string_lossy());
        let argv = files::mpirun_argv(&MpirunArgs {
            mpirun,
            hostfile: &hostfile,
            rankfile: ranks.as_ref().map(|_| rankfile.as_ref()),
            ranks_per_node: s.mpi.ranks_per_node,
            nodes: s.step.nodes,
            launcher,
            program: &program,
        });
        tracing::info!(job = %s.start.id.job, task = %s.start.id.task, argv = ?argv, "starting mpirun");
        let launch = Launch {
            dir: s.dir.clone(),
            command_line: files::join_command_line(&argv),
            env,
            max_wall_clock: s.start.max_wall_clock_ms.map(Duration::from_millis),
            cgroup_prefix: 'o',
            rank: None,
        };
        let mode = RunMode { keep_leftovers: false, append_logs: true };
        self.run_in(launch, cgroup.as_ref().as_ref(), stop_rx, mode).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(user: &[(&str, &str)], rdma: bool) -> std::collections::HashMap<String, String> {
        let user: Vec<(String, String)> = user.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        openmpi_env(&OpenMpiEnv {
            tmp: Path::new("/t/tmp"),
            socket: Path::new("/t/.gangway-agent.sock"),
            plan: Path::new("/t/plan.json"),
            launcher: "/bin/gangway-node",
            user: &user,
            rdma,
            as_root: true,
        })
        .into_iter()
        .collect()
    }

    #[test]
    fn the_agent_and_temporary_directories_are_always_gangways() {
        let e = env(&[("OMPI_MCA_plm_rsh_agent", "ssh"), ("TMPDIR", "/scratch")], false);
        assert_eq!(e["OMPI_MCA_plm_rsh_agent"], "/bin/gangway-node rsh-agent");
        assert!(!e.contains_key("OMPI_MCA_orte_tmpdir_base"), "mpirun would forward it to every node");
        assert_eq!(e["OMPI_MCA_plm_rsh_no_tree_spawn"], "0");
        assert_eq!(e[SOCKET_ENV], "/t/.gangway-agent.sock");
        assert_eq!(e[PLAN_ENV], "/t/plan.json");
        // The user's TMPDIR stays theirs (it comes after in the task's environment anyway).
        assert!(!e.contains_key("TMPDIR"));
        assert_eq!(env(&[], false)["TMPDIR"], "/t/tmp");
    }

    #[test]
    fn transports_are_chosen_only_without_rdma_and_only_where_the_user_did_not() {
        let e = env(&[("OMPI_MCA_btl", "self,tcp")], false);
        assert_eq!(e["OMPI_MCA_pml"], "ob1");
        assert!(!e.contains_key("OMPI_MCA_btl"));
        let ib = env(&[], true);
        assert!(NO_RDMA_DEFAULTS.iter().all(|(k, _)| !ib.contains_key(*k)), "{ib:?}");
    }
}

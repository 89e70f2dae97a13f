//! A managed-MPI attempt's ranks outside the launcher: `gangway-node rank-group SPEC`.
//!
//! The ranks of a task's `mpi` section on one node are served PMI-1 or PMIx by the process
//! that starts them. Run by the launcher, they would end with it; so the launcher runs this
//! process instead, under a supervisor like any task process (supervise.rs), and it runs the
//! ranks exactly as the launcher does (`Executor::run_ranks`: placement, binding, cgroup, PMI
//! server), in a cgroup named after its unit (`NAME-r…`, kept with the unit by a restarted
//! launcher). It writes the attempt's report to `ROOT/running/NAME.report`, which the
//! launcher reads when the unit ends. A SIGTERM (the supervisor stopping the task) stops the
//! ranks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gangway_api::messages::{StartTask, TaskFinished};
use serde::{Deserialize, Serialize};

use crate::executor::{Executor, Limits, Outcome, Prepared, StopReason};
use crate::supervise::{Supervisor, RUNNING_DIR};

/// What a rank group is told (`ROOT/running/NAME.group`).
#[derive(Debug, Serialize, Deserialize)]
struct RankGroupSpec {
    /// The attempt (its resource files already fetched by the launcher).
    start: StartTask,
    node: String,
    account_url: String,
    root: PathBuf,
    topology: Option<gangway_topology::model::NodeTopology>,
    /// Whether the launcher uses cgroups (its subtree is found by node name and root).
    cgroups: bool,
    /// The unit's name: the rank group's cgroups start with it.
    unit: String,
    kill_grace_ms: u64,
    task_pids_max: u64,
}

fn spec_path(root: &Path, unit: &str) -> PathBuf {
    root.join(RUNNING_DIR).join(format!("{unit}.group"))
}

/// Where a rank group leaves its attempt's report.
pub(crate) fn report_path(root: &Path, unit: &str) -> PathBuf {
    root.join(RUNNING_DIR).join(format!("{unit}.report"))
}

/// The files a rank group's unit has besides its record and exit file.
pub(crate) fn unit_files(root: &Path, unit: &str) -> [PathBuf; 2] {
    [spec_path(root, unit), report_path(root, unit)]
}

impl Executor {
    /// Runs a managed-MPI attempt's ranks in a supervised rank group.
    pub(crate) async fn run_rank_group(
        self: &Arc<Self>,
        start: &StartTask,
        limits: &Limits,
        stop_rx: &mut tokio::sync::mpsc::UnboundedReceiver<StopReason>,
        supervisor: &Supervisor,
    ) -> Outcome {
        let max_wall_clock = start.max_wall_clock_ms.map(Duration::from_millis);
        let prepare = |unit: &str| self.rank_group_process(start, unit);
        // The unit's own cgroup holds only the rank group: the ranks' cgroup has the limits.
        let unit_limits = Limits { pids_max: limits.pids_max, ..Limits::default() };
        self.supervised(start, prepare, max_wall_clock, &unit_limits, stop_rx, supervisor).await
    }

    /// `gangway-node rank-group SPEC`, as root (it starts the ranks as their user), with its
    /// spec written and its output discarded (the ranks write the task's files themselves).
    fn rank_group_process(&self, start: &StartTask, unit: &str) -> Result<Prepared, Outcome> {
        let failed = |e: String| Outcome::failed("RankGroupFailed", e);
        let me = crate::batch::node_bin().ok_or_else(|| failed("finding gangway-node's own path failed".into()))?;
        let spec = RankGroupSpec {
            start: StartTask { resource_files: Vec::new(), ..start.clone() },
            node: self.node.clone(),
            account_url: self.account_url.clone(),
            root: self.layout.root.clone(),
            topology: self.topology.clone(),
            cgroups: self.cgroups.is_some(),
            unit: unit.to_owned(),
            kill_grace_ms: self.kill_grace.as_millis() as u64,
            task_pids_max: self.task_pids_max,
        };
        let path = spec_path(&self.layout.root, unit);
        crate::supervise::write_whole(&path, &serde_json::to_vec(&spec).expect("serializes"))
            .map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
        let null = || std::fs::File::open("/dev/null").map_err(|e| failed(format!("opening /dev/null: {e}")));
        Ok(Prepared {
            program: PathBuf::from(me),
            argv: vec!["gangway-node".into(), "rank-group".into(), path.to_string_lossy().into_owned()],
            env: vec![("AZ_BATCH_NODE_ROOT_DIR".into(), self.layout.root.to_string_lossy().into_owned())],
            // The task directory is made by the rank group (as the task's user).
            wd: self.layout.root.clone(),
            stdio: [null()?, null()?, null()?],
            user: None,
            pid_env: None,
        })
    }
}

/// `gangway-node rank-group SPEC`: runs the ranks and writes the report; exits with the
/// attempt's exit code (1 when it has none).
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let Some(path) = args.first() else {
        gangway_api::errln!("gangway-node rank-group: usage: gangway-node rank-group SPEC (started by the launcher)");
        return 2;
    };
    let spec = match std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<RankGroupSpec>(&b).ok()) {
        Some(s) => s,
        None => {
            gangway_api::errln!("gangway-node rank-group: {} is not a rank group's spec", path.to_string_lossy());
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return 1,
    };
    let (path, report) = rt.block_on(run(spec));
    let code = report.exit_code.unwrap_or(1);
    let _ = std::fs::write(path, serde_json::to_vec(&report).expect("serializes"));
    code
}

async fn run(spec: RankGroupSpec) -> (PathBuf, TaskFinished) {
    let report = report_path(&spec.root, &spec.unit);
    let id = spec.start.id.clone();
    let fail = |code: &str, why: String| Outcome::failed(code, why).into_report(id.clone(), None);
    let layout = match crate::layout::NodeLayout::create(&spec.root) {
        Ok(l) => l,
        Err(e) => return (report, fail("RankGroupFailed", format!("opening the node root: {e}"))),
    };
    let cgroups = match spec.cgroups {
        true => match crate::cgroup::NodeCgroups::attach(&crate::cgroup_name(&spec.node, &spec.root)) {
            Ok(c) => Some(c),
            Err(e) => return (report, fail("CgroupFailed", e.to_string())),
        },
        false => None,
    };
    let grace = Duration::from_millis(spec.kill_grace_ms);
    let mut exec = Executor::new(layout, spec.node.clone(), spec.account_url.clone(), cgroups, grace)
        .with_topology(spec.topology.clone())
        .with_task_pids_max(spec.task_pids_max);
    exec.name_prefix = format!("{}-", spec.unit);
    let exec = Arc::new(exec);
    let dir = exec.layout.task_dir(&id.job, &id.task);
    if let Err(why) = exec.adopt_user(&dir, spec.start.user.as_ref()) {
        return (report, fail(crate::executor::TASK_USER_UNAVAILABLE, why));
    }
    let Some(mpi) = spec.start.mpi.clone() else {
        return (report, fail("RankGroupFailed", "the attempt has no mpi settings".into()));
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::spawn(async move {
            term.recv().await;
            let _ = tx.send(StopReason::Killed("Stopped".into()));
        });
    }
    (report, exec.run_ranks(spec.start, mpi, rx).await)
}

//! What an `srun` step will be, before anything starts: its nodes and each rank's node (from
//! the job's allocation in the batch environment and srun's options), the environment its
//! tasks inherit (`--export`), which output files srun writes itself, and where
//! `gangway-node` is.

use std::fs::File;

use gangway_api::slurm::expand_counts;
use gangway_api::slurm_patterns::{expand_path, PatternContext, Step};
use gangway_api::slurm_step::NODE_BIN_ENV;
use gangway_topology::hostlist::expand_hostlist;

use crate::step::{env, StepRequest};
use crate::step_layout::{place_tasks, Distribution};

/// Where a step's tasks go.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The step's nodes.
    pub nodes: Vec<String>,
    /// Their CPUs in the job.
    pub cpus: Vec<u32>,
    /// Each rank's node (an index into `nodes`).
    pub rank_nodes: Vec<u32>,
    /// `-m`.
    pub dist: Distribution,
    /// `-c`, or `SRUN_CPUS_PER_TASK`.
    pub cpus_per_task: Option<u32>,
}

/// Plans step `r` of job `job` on the job's allocation (from the batch environment).
pub(crate) fn plan(r: &StepRequest, job: u32) -> Result<Plan, String> {
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
            gangway_api::errln!(
                "srun: Warning: can't run {ntasks} processes on {count} nodes, setting nnodes to {ntasks}"
            );
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
    if nodes.is_empty() {
        return Err(not_available());
    }
    let dist = r.distribution.as_deref().map(Distribution::parse).transpose()?.unwrap_or(Distribution::Block);
    let rank_nodes = place_tasks(ntasks, &capacity, dist);
    // A node the layout gave no task (plane=N can) is not part of the step.
    let used: Vec<usize> = (0..nodes.len()).filter(|n| rank_nodes.contains(&(*n as u32))).collect();
    let renumber = |n: u32| used.iter().position(|u| *u == n as usize).unwrap_or(0) as u32;
    let rank_nodes = rank_nodes.into_iter().map(renumber).collect();
    let nodes = used.iter().map(|n| nodes[*n].clone()).collect();
    let cpus = used.iter().map(|n| cpus[*n]).collect();
    Ok(Plan { nodes, cpus, rank_nodes, dist, cpus_per_task })
}

/// The tasks' environment from srun's per `--export`, read as sbatch reads it: `ALL` (the
/// default) keeps it; `NONE` keeps only the `SLURM_*` variables and what gangway itself needs
/// (`AZ_BATCH_*`, `GANGWAY_*`); a list adds its names (from srun's environment) and
/// `NAME=value`s to those, or to everything when it includes `ALL`.
pub(crate) fn exported_env(export: Option<&str>, all: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    let Some(spec) = export else { return Ok(all) };
    let export = crate::values::export(spec).map_err(|e| e.render("srun"))?;
    let always = |k: &str| k.starts_with("SLURM") || k.starts_with("AZ_BATCH_") || k.starts_with("GANGWAY_");
    Ok(export.apply(all, always))
}

/// `gangway-node`: where the launcher said it is, else next to this program, else on `PATH`.
pub(crate) fn node_bin() -> String {
    env(NODE_BIN_ENV)
        .or_else(|| {
            let me = std::env::current_exe().ok()?;
            let sibling = me.parent()?.join("gangway-node");
            sibling.is_file().then(|| sibling.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "gangway-node".into())
}

/// A fresh random key for a step or an allocation.
pub(crate) fn new_key() -> Result<String, String> {
    gangway_api::common::random_hex(16).map_err(|e| format!("reading /dev/urandom: {e}"))
}

/// The umask, as `SLURM_UMASK` writes it.
pub(crate) fn umask() -> String {
    // SAFETY: umask(2) cannot fail; it is set back at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    format!("{mask:04o}")
}

/// Whether an output pattern names a node or a task (`%t`, `%n`, `%N`, with or without a
/// width): such files are opened by the node parts, the others by srun alone. A backslash
/// turns substitution off, as in [`expand_path`].
pub(crate) fn per_part(pattern: &str) -> bool {
    if pattern.contains('\\') {
        return false;
    }
    let b = pattern.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            match b.get(j) {
                Some(b't' | b'n' | b'N') => return true,
                Some(b'%') => i = j,
                _ => {}
            }
        }
        i += 1;
    }
    false
}

/// What srun knows to name the files it writes itself.
pub(crate) struct PatternNames {
    /// `%j`.
    pub job: u32,
    /// `%s`.
    pub step: u32,
    /// `%x`.
    pub name: String,
    /// `%u`.
    pub user: String,
    /// The step's first node, for a `%N` srun would never see (only per-part patterns have it).
    pub node: String,
}

impl PatternNames {
    /// Opens (truncating) the output and error files srun writes itself: one file when both
    /// name the same path.
    pub fn open_files(&self, out: Option<&str>, err: Option<&str>) -> Result<(Option<File>, Option<File>), String> {
        let cwd = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?.to_string_lossy().into_owned();
        let array = env("SLURM_ARRAY_JOB_ID")
            .and_then(|a| a.parse().ok())
            .zip(env("SLURM_ARRAY_TASK_ID").and_then(|t| t.parse().ok()));
        let ctx = PatternContext {
            job_id: self.job,
            array,
            job_name: &self.name,
            user: &self.user,
            node_name: &self.node,
            node_id: 0,
            task_id: 0,
            step: Step::Id(self.step),
        };
        let path = |p: &str| expand_path(p, &cwd, &ctx);
        let open = |p: &str| File::create(p).map_err(|e| format!("opening {p}: {e}"));
        let out_path = out.map(path);
        let err_path = err.map(path);
        let out_file = out_path.as_deref().map(open).transpose()?;
        let err_file = match (&err_path, &out_path, &out_file) {
            (Some(e), Some(o), Some(f)) if e == o => Some(f.try_clone().map_err(|e| e.to_string())?),
            (Some(e), _, _) => Some(open(e)?),
            (None, _, _) => None,
        };
        Ok((out_file, err_file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_keeps_what_it_names() {
        let all =
            vec![("PATH".to_owned(), "/bin".to_owned()), ("SLURM_JOB_ID".into(), "3".into()), ("X".into(), "1".into())];
        let keys = |e: Vec<(String, String)>| e.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        let export = |spec: Option<&str>| keys(exported_env(spec, all.clone()).unwrap());
        assert_eq!(export(None), ["PATH=/bin", "SLURM_JOB_ID=3", "X=1"]);
        assert_eq!(export(Some("NONE")), ["SLURM_JOB_ID=3"]);
        assert_eq!(export(Some("X,Y=2")), ["SLURM_JOB_ID=3", "X=1", "Y=2"]);
        // A listed value replaces srun's own (the variable appears once).
        assert_eq!(export(Some("ALL,X=9")), ["PATH=/bin", "SLURM_JOB_ID=3", "X=9"]);
        assert!(exported_env(Some("X='open"), all).is_err(), "bad --export is refused as sbatch refuses it");
    }

    #[test]
    fn patterns_naming_a_node_or_task_are_per_part() {
        for p in ["out-%t.txt", "%N.log", "o-%3n", "x-%j-%t"] {
            assert!(per_part(p), "{p}");
        }
        for p in ["out.txt", "slurm-%j.out", "%%t", "a\\%t", "%x-%s"] {
            assert!(!per_part(p), "{p}");
        }
    }
}

//! The per-node launcher: connects out to the head and runs task attempts.
//!
//! - [`connection`]: the control stream to the head (upgrade, hello, reconnect).
//! - [`executor`]: attempts: directories, environment, process group, cgroup, kill, retention.
//! - [`cgroup`]: cgroup v1/v2 containment.
//! - [`layout`]: the Azure Batch directory layout and task environment.
//! - [`files`]: answers to the head's file requests.
//! - [`startup`]: the pool's start task.
//! - [`rank_group`]: a managed-MPI attempt's ranks and PMI server in a supervised process.
//! - [`supervise`]: task processes under supervisors of their own, which outlive the launcher.
//! - [`resource_files`]: fetching a task's resource files before it starts.
//! - [`users`]: tasks as their owners (who, and opening files with their permissions).
//! - [`batch`]: Slurm batch scripts (script file, working directory, `--output` files).
//! - [`pmi`]: a PMI-1 server for direct launch of MPICH ranks.
//! - [`pmix`]: a PMIx server (OpenPMIx) for direct launch of Open MPI ranks.
//! - [`slurm_step`]: `gangway-node slurm-step`, one node's part of an `srun` job step.
//! - [`openmpi`], [`openmpi_files`], [`agent`], [`agent_cli`]: Open MPI ranks through `mpirun`
//!   and gangway's remote-launch agent (`gangway-node rsh-agent`, `gangway-node rank-step`).

pub mod agent;
pub mod agent_cli;
pub mod batch;
pub mod cgroup;
pub mod connection;
pub mod executor;
pub mod files;
pub mod instances;
pub mod join;
pub mod layout;
pub mod openmpi;
pub mod openmpi_files;
pub mod outputs;
pub mod packages;
pub mod pmi;
pub mod pmix;
pub mod pty;
pub mod rank_group;
pub mod ranks;
pub mod resource_files;
pub mod slurm_step;
pub mod spawn;
pub mod startup;
pub mod supervise;
pub mod users;

/// The name of a launcher's cgroup subtree: its node name plus a hash of its root directory,
/// so two launchers with the same name on one host (test clusters, two `gangway up`s) never
/// share (and kill) each other's cgroups, while a restarted launcher finds its own again.
pub fn cgroup_name(node: &str, root: &std::path::Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // FNV-1a: stable across runs and Rust versions, unlike std's hasher.
    let hash = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("{node}-{:08x}", hash as u32)
}

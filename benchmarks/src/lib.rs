//! What the end-to-end benchmark binaries share: an embedded cluster started with
//! `gangway up --detach` and taken down when dropped, and percentiles of samples.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// A `gangway up --detach` cluster next to this binary; dropping it runs `gangway down` and
/// removes its state and node directories.
pub struct LocalCluster {
    gangway: PathBuf,
    /// The head's state directory (`client.json`, the store).
    pub state: PathBuf,
    nodes_dir: Option<PathBuf>,
}

impl LocalCluster {
    /// Starts `nodes` launchers; state in `$TMPDIR/tag`, task directories under `nodes_dir`
    /// when given (else inside the state directory).
    pub fn up(tag: &str, nodes: u32, slots: Option<u32>, nodes_dir: Option<PathBuf>) -> anyhow::Result<LocalCluster> {
        let gangway = std::env::current_exe()?.with_file_name("gangway");
        let state = std::env::temp_dir().join(tag);
        std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        // Built before starting, so a failed start still cleans up on drop.
        let cluster = LocalCluster { gangway, state, nodes_dir };
        let mut up = Command::new(&cluster.gangway);
        up.arg("--state-dir").arg(&cluster.state).args(["up", "--detach", "--nodes", &nodes.to_string()]);
        if let Some(d) = &cluster.nodes_dir {
            up.arg("--nodes-dir").arg(d);
        }
        if let Some(s) = slots {
            up.args(["--slots-per-node", &s.to_string()]);
        }
        if !up.status().context("running gangway up")?.success() {
            bail!("gangway up failed");
        }
        Ok(cluster)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.gangway).arg("--state-dir").arg(&self.state).arg("down").status();
        let _ = std::fs::remove_dir_all(&self.state);
        if let Some(d) = &self.nodes_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The `p` quantile (0..=1) of ascending `sorted` samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The node the scheduler benches schedule on: 64 one-thread cores in 2 NUMA domains,
/// 512 GiB and 8 GPUs (4 per domain).
pub fn gpu_node_inventory() -> std::sync::Arc<gangway_topology::alloc::NodeInventory> {
    use gangway_topology::alloc::{CoreSlot, GpuSlot, NodeInventory};
    std::sync::Arc::new(NodeInventory::new(
        (0..64).map(|c| CoreSlot { pus: vec![c], numa: c / 32 }).collect(),
        512 << 10,
        (0..8).map(|g| GpuSlot { index: g, name: "NVIDIA H100".into(), numa: Some(g / 4) }).collect(),
    ))
}

/// Prints `usage` when the command line asks for help (`-h`, `--help`) and says whether it did.
pub fn wants_help(usage: &str) -> bool {
    let asked = std::env::args().skip(1).any(|a| a == "-h" || a == "--help");
    if asked {
        gangway_api::outln!("{}", usage.trim());
    }
    asked
}

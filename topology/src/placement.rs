//! Per-node rank placement: which CPUs, NUMA domains, GPUs and NIC each local rank gets, and the
//! environment that tells the rank's runtimes (CUDA, UCX, OpenMP) about it.
//!
//! The policy is LLNL mpibind's "memory first":
//! - ranks are split over NUMA domains in whole numbers and never span two domains when they fit
//!   in one (with GPUs wanted, in proportion to the domains' GPUs, else to their cores);
//! - without `cpus-per-rank` a domain's CPUs are shared out evenly; with it, ranks are spread
//!   over L3, then L2 groups before being packed, so each gets as much cache as possible;
//! - SMT siblings go to different ranks only when ranks outnumber cores (`bind=threads` always
//!   hands out PUs);
//! - GPUs come from the rank's domain and, inside it, ranks are spread over the PCIe switches;
//!   the NIC is the one behind the GPU's switch, since UCX would otherwise give every rank the
//!   same equal-distance HCA;
//! - with more ranks than GPUs, equal groups of neighbouring ranks share GPUs.
//!
//! Planning is pure: no I/O, clock or randomness, so the same node and request always give the
//! same plan and `gangway topo --plan` shows exactly what a launch will apply. Work is bounded by
//! the node's size: more ranks than usable PUs is an error, not a search.

mod cpus;
mod devices;
mod fixture;
#[cfg(test)]
mod proptests;
mod request;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[doc(hidden)]
pub use fixture::dgx_like_fixture;
pub use request::{CpuBind, GpuBind, PlacementRequest, RequestParseError, ReserveFrom};

use crate::model::NodeTopology;
use cpus::{CpuView, Share};

/// Where each local rank runs: what [`plan_ranks`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// One entry per rank, in rank order.
    pub ranks: Vec<RankPlacement>,
}

/// One rank's CPUs, memory, devices and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankPlacement {
    /// Local rank, from 0.
    pub rank: u32,
    /// PUs (OS CPU numbers) to bind to, ascending.
    pub cpus: Vec<u32>,
    /// Logical indices of the cores those PUs belong to, ascending.
    pub cores: Vec<u32>,
    /// NUMA domains (logical indices) to take memory from, ascending.
    pub numa_nodes: Vec<u32>,
    /// The rank's own GPUs (CUDA indices), ascending.
    pub gpus: Vec<u32>,
    /// RDMA adapters for the rank's MPI traffic (`mlx5_0`).
    pub nics: Vec<String>,
    /// Variables to set in the rank's environment.
    pub env: BTreeMap<String, String>,
}

/// Why a request cannot be placed on a node; each says what was asked and what the node has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// `ranks` was 0.
    #[error("no ranks requested (ranks must be at least 1)")]
    ZeroRanks,
    /// `cpus_per_rank` was `Some(0)`.
    #[error("cpus-per-rank must be at least 1 (leave it out to share all CPUs evenly)")]
    ZeroCpusPerRank,
    /// Fewer usable PUs than ranks: every rank needs one of its own.
    #[error("needs {ranks} PUs (one per rank), node has {usable} usable{}", reserved_note(.reserved_per_socket))]
    TooManyRanks {
        /// Ranks asked for.
        ranks: u32,
        /// Usable PUs.
        usable: u64,
        /// Cores per package kept free.
        reserved_per_socket: u32,
    },
    /// Not enough usable cores for `ranks × cpus-per-rank`.
    #[error(
        "needs {needed} cores ({ranks} ranks × {cpus_per_rank} cpus-per-rank), node has {usable} usable{}",
        reserved_note(.reserved_per_socket)
    )]
    NotEnoughCores {
        /// Cores needed.
        needed: u64,
        /// Ranks asked for.
        ranks: u32,
        /// Cores per rank asked for.
        cpus_per_rank: u32,
        /// Usable cores.
        usable: u64,
        /// Cores per package kept free.
        reserved_per_socket: u32,
    },
    /// Not enough usable PUs for `ranks × cpus-per-rank` with `bind=threads`.
    #[error(
        "needs {needed} PUs ({ranks} ranks × {cpus_per_rank} cpus-per-rank, bind=threads), node has {usable} usable{}",
        reserved_note(.reserved_per_socket)
    )]
    NotEnoughPus {
        /// PUs needed.
        needed: u64,
        /// Ranks asked for.
        ranks: u32,
        /// PUs per rank asked for.
        cpus_per_rank: u32,
        /// Usable PUs.
        usable: u64,
        /// Cores per package kept free.
        reserved_per_socket: u32,
    },
    /// Not enough GPUs, and they cannot be shared evenly.
    #[error(
        "needs {needed} GPUs, node has {available} ({ranks} ranks × {gpus_per_rank} gpus-per-rank{})",
        sharing_note(*.available, *.gpus_per_rank)
    )]
    NotEnoughGpus {
        /// GPUs needed.
        needed: u64,
        /// Ranks asked for.
        ranks: u32,
        /// GPUs per rank asked for.
        gpus_per_rank: u32,
        /// GPUs on the node.
        available: u64,
    },
}

fn reserved_note(reserved_per_socket: &u32) -> String {
    match reserved_per_socket {
        0 => String::new(),
        n => format!(" ({n} reserved per socket)"),
    }
}

fn sharing_note(available: u64, per_rank: u32) -> String {
    let per_rank = u64::from(per_rank);
    if per_rank > available || available.checked_rem(per_rank) != Some(0) {
        return String::new();
    }
    format!("; GPUs are shared only when ranks are a multiple of {}", available / per_rank)
}

/// Plans where each of `req.ranks` local ranks runs on `node`.
pub fn plan_ranks(node: &NodeTopology, req: &PlacementRequest) -> Result<Placement, PlacementError> {
    if req.ranks == 0 {
        return Err(PlacementError::ZeroRanks);
    }
    if req.cpus_per_rank == Some(0) {
        return Err(PlacementError::ZeroCpusPerRank);
    }
    let view = CpuView::new(node, req.reserve_cores_per_socket, req.reserve_from);
    let weights = devices::gpu_weights(&view, req);
    let shares = cpus::split(&view, req, weights.as_deref())?;
    let share_gpu = devices::ranks_per_gpu(node.gpus.len(), req)?;
    let homes: Vec<u32> = shares.iter().map(|s| s.units.first().map_or(0, |&u| view.unit_numa(u))).collect();
    let gpus = devices::assign_gpus(&view, req.gpus_per_rank as usize, &homes, share_gpu);
    let nics = devices::assign_nics(&view, &homes, &gpus);
    let plan_gpus: BTreeSet<u32> = gpus.iter().flatten().copied().collect();
    let ranks = shares
        .iter()
        .zip(gpus)
        .zip(nics)
        .enumerate()
        .map(|(r, ((share, gpus), nic))| {
            let mut rank = bind_cpus(&view, req.cpu_bind, share);
            rank.rank = r as u32;
            rank.env = rank_env(req, share, &gpus, &plan_gpus, nic);
            rank.gpus = gpus;
            rank.nics = nic.map(|n| n.name.clone()).into_iter().collect();
            rank
        })
        .collect();
    Ok(Placement { ranks })
}

/// The rank's CPUs, cores and domains under `bind` (devices and environment left empty).
fn bind_cpus(view: &CpuView<'_>, bind: CpuBind, share: &Share) -> RankPlacement {
    let mut cpus = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut numa = BTreeSet::new();
    match bind {
        CpuBind::Cores | CpuBind::Threads => {
            for unit in &share.units {
                cpus.extend(view.unit_pus(unit).iter().copied());
                cores.insert(view.node.cores[unit.core].index);
                numa.insert(view.unit_numa(*unit));
            }
        }
        CpuBind::Numa => {
            numa.extend(share.units.iter().map(|&u| view.unit_numa(u)));
            for domain in view.domains.iter().filter(|d| numa.contains(&d.numa)) {
                for &pos in &domain.cores {
                    cpus.extend(view.pus[pos].iter().copied());
                    cores.insert(view.node.cores[pos].index);
                }
            }
        }
        CpuBind::None => {
            // Unbound: the whole node, reserved cores included, as if no plan had been made.
            for (pos, core) in view.node.cores.iter().enumerate() {
                if !view.pus[pos].is_empty() {
                    cpus.extend(view.pus[pos].iter().copied());
                    cores.insert(core.index);
                }
            }
            numa.extend(view.node_domains.iter().copied());
        }
    }
    RankPlacement {
        rank: 0,
        cpus: cpus.into_iter().collect(),
        cores: cores.into_iter().collect(),
        numa_nodes: numa.into_iter().collect(),
        gpus: Vec::new(),
        nics: Vec::new(),
        env: BTreeMap::new(),
    }
}

/// `CUDA_VISIBLE_DEVICES`, `UCX_NET_DEVICES` and the OpenMP variables for one rank.
fn rank_env(
    req: &PlacementRequest,
    share: &Share,
    own: &[u32],
    plan_gpus: &BTreeSet<u32>,
    nic: Option<&crate::model::Nic>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let join = |ids: &mut dyn Iterator<Item = &u32>| ids.map(u32::to_string).collect::<Vec<_>>().join(",");
    if !own.is_empty() {
        match req.gpu_bind {
            GpuBind::Closest => {
                env.insert("CUDA_VISIBLE_DEVICES".into(), join(&mut own.iter()));
            }
            GpuBind::Shared => {
                // The rank's own GPU becomes its device 0, and the others stay reachable for CUDA IPC.
                let mut order = own.iter().chain(plan_gpus.iter().filter(|g| !own.contains(g)));
                env.insert("CUDA_VISIBLE_DEVICES".into(), join(&mut order));
            }
            GpuBind::None => {}
        }
    }
    if let Some(nic) = nic {
        env.insert("UCX_NET_DEVICES".into(), format!("{}:{}", nic.name, devices::ucx_port(nic)));
    }
    if req.omp {
        // The rank's fair share even when bound to a whole domain, so domains are not oversubscribed.
        env.insert("OMP_NUM_THREADS".into(), share.units.len().to_string());
        if matches!(req.cpu_bind, CpuBind::Cores | CpuBind::Threads) {
            let places = if share.units.iter().any(|u| u.pu.is_some()) { "threads" } else { "cores" };
            env.insert("OMP_PLACES".into(), places.into());
            env.insert("OMP_PROC_BIND".into(), "close".into());
        }
    }
    env
}

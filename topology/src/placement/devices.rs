//! The device half of placement: each rank's GPUs, from its own NUMA domain and PCIe switch,
//! and its NIC, from behind its GPU's switch.

use std::collections::BTreeMap;

use super::cpus::{apportion, CpuView};
use super::request::PlacementRequest;
use super::PlacementError;
use crate::model::{GpuDevice, Nic, NicPort};

/// The domain a device is local to: its own, or the node's only one when it has one.
fn local_domain(view: &CpuView<'_>, numa: Option<u32>) -> Option<u32> {
    numa.or(match view.node_domains.as_slice() {
        [only] => Some(*only),
        _ => None,
    })
}

/// GPUs in each usable domain, when ranks want GPUs and the GPUs' domains are known: it steers
/// ranks towards the domains that hold the GPUs.
pub(super) fn gpu_weights(view: &CpuView<'_>, req: &PlacementRequest) -> Option<Vec<u64>> {
    if req.gpus_per_rank == 0 {
        return None;
    }
    let weights: Vec<u64> = view
        .domains
        .iter()
        .map(|d| view.node.gpus.iter().filter(|g| local_domain(view, g.numa) == Some(d.numa)).count() as u64)
        .collect();
    weights.iter().any(|&w| w > 0).then_some(weights)
}

/// How many neighbouring ranks share each GPU: 1 when there are GPUs enough.
pub(super) fn ranks_per_gpu(node_gpus: usize, req: &PlacementRequest) -> Result<usize, PlacementError> {
    let (g, n, ranks) = (u64::from(req.gpus_per_rank), node_gpus as u64, u64::from(req.ranks));
    let needed = ranks * g;
    if needed <= n {
        return Ok(1);
    }
    // Share only when the GPUs split into equal sets, each shared by the same number of ranks,
    // so that no rank gets a busier GPU than its neighbours.
    // (`checked_rem` rather than `is_multiple_of`, which is newer than the workspace's MSRV.)
    if g <= n && n.checked_rem(g) == Some(0) && ranks.checked_rem(n / g) == Some(0) {
        return Ok((ranks / (n / g)) as usize);
    }
    Err(PlacementError::NotEnoughGpus { needed, ranks: req.ranks, gpus_per_rank: req.gpus_per_rank, available: n })
}

/// Each rank's GPUs (CUDA indices, ascending); `homes` is each rank's NUMA domain and `share`
/// what [`ranks_per_gpu`] returned.
pub(super) fn assign_gpus(view: &CpuView<'_>, per_rank: usize, homes: &[u32], share: usize) -> Vec<Vec<u32>> {
    let gpus = &view.node.gpus;
    if per_rank == 0 {
        return vec![Vec::new(); homes.len()];
    }
    let share = share.max(1);
    // A block of `share` neighbouring ranks takes its GPUs together, from its first rank's domain.
    let block_homes: Vec<u32> = homes.iter().step_by(share).copied().collect();
    let mut taken = vec![false; gpus.len()];
    let mut got: Vec<Vec<usize>> = vec![Vec::new(); block_homes.len()];
    let mut by_home: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (block, &home) in block_homes.iter().enumerate() {
        by_home.entry(home).or_default().push(block);
    }
    for (&home, blocks) in &by_home {
        let groups = switch_groups(view, home);
        let local: usize = groups.iter().map(Vec::len).sum();
        let served = blocks.len().min(local / per_rank);
        let sizes: Vec<u64> = groups.iter().map(|s| s.len() as u64).collect();
        let caps: Vec<usize> = groups.iter().map(|s| s.len() / per_rank).collect();
        // Blocks are spread over the domain's PCIe switches so that each can pair with the
        // NIC behind its own switch; when a switch cannot hold a block, they take GPUs in order.
        let picks: Vec<Vec<usize>> = match apportion(served, &sizes, &sizes, &caps) {
            Some(counts) => {
                groups.iter().zip(counts).flat_map(|(s, c)| s.chunks(per_rank).take(c).map(<[usize]>::to_vec)).collect()
            }
            None => groups.concat().chunks(per_rank).take(served).map(<[usize]>::to_vec).collect(),
        };
        for (&block, pick) in blocks.iter().zip(picks) {
            for &p in &pick {
                taken[p] = true;
            }
            got[block] = pick;
        }
    }
    // Blocks their domain could not serve take what is left, local GPUs first.
    for (block, &home) in block_homes.iter().enumerate() {
        if !got[block].is_empty() {
            continue;
        }
        let mut free: Vec<usize> = (0..gpus.len()).filter(|&p| !taken[p]).collect();
        free.sort_by_key(|&p| (local_domain(view, gpus[p].numa) != Some(home), p));
        free.truncate(per_rank);
        for &p in &free {
            taken[p] = true;
        }
        got[block] = free;
    }
    (0..homes.len())
        .map(|r| {
            let mut own: Vec<u32> =
                got.get(r / share).map(|b| b.iter().map(|&p| gpus[p].index).collect()).unwrap_or_default();
            own.sort_unstable();
            own
        })
        .collect()
}

/// The GPUs (positions) local to `home`, grouped by PCIe switch, groups in GPU order.
fn switch_groups(view: &CpuView<'_>, home: u32) -> Vec<Vec<usize>> {
    let mut keys: Vec<Option<&str>> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (p, gpu) in view.node.gpus.iter().enumerate() {
        if local_domain(view, gpu.numa) != Some(home) {
            continue;
        }
        let key = gpu.pcie_switch.as_deref();
        match key.and_then(|k| keys.iter().position(|&other| other == Some(k))) {
            Some(i) => groups[i].push(p),
            None => {
                keys.push(key);
                groups.push(vec![p]);
            }
        }
    }
    groups
}

/// Each rank's NIC: behind its first GPU's switch, else in its GPU's domain, else in its own
/// domain, else any; ranks that would otherwise all pick the same NIC are spread over them.
pub(super) fn assign_nics<'n>(view: &CpuView<'n>, homes: &[u32], gpus: &[Vec<u32>]) -> Vec<Option<&'n Nic>> {
    let all = &view.node.nics;
    let mut nics: Vec<&Nic> = all.iter().filter(|n| nic_usable(n)).collect();
    if nics.is_empty() {
        nics = all.iter().collect();
    }
    let mut totals: BTreeMap<u32, usize> = BTreeMap::new();
    for &home in homes {
        *totals.entry(home).or_default() += 1;
    }
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(homes.len());
    for (r, &home) in homes.iter().enumerate() {
        let pos = seen.entry(home).or_default();
        let in_home: Vec<&Nic> = nics.iter().copied().filter(|n| local_domain(view, n.numa) == Some(home)).collect();
        let pick = gpus
            .get(r)
            .and_then(|own| own.first())
            .and_then(|&i| view.node.gpus.iter().find(|g| g.index == i))
            .and_then(|gpu| nic_for_gpu(view, &nics, gpu))
            .or_else(|| spread_pick(&in_home, *pos, totals.get(&home).copied().unwrap_or(1)))
            .or_else(|| spread_pick(&nics, r, homes.len()));
        *pos += 1;
        out.push(pick);
    }
    out
}

/// The NIC for a GPU: behind the same switch, else in the same domain.
fn nic_for_gpu<'n>(view: &CpuView<'n>, nics: &[&'n Nic], gpu: &GpuDevice) -> Option<&'n Nic> {
    if let Some(switch) = gpu.pcie_switch.as_deref() {
        let behind: Vec<&Nic> = nics.iter().copied().filter(|n| n.pcie_switch.as_deref() == Some(switch)).collect();
        if !behind.is_empty() {
            let pos = view
                .node
                .gpus
                .iter()
                .filter(|g| g.pcie_switch.as_deref() == Some(switch))
                .position(|g| g.index == gpu.index)
                .unwrap_or(0);
            return behind.get(pos % behind.len()).copied();
        }
    }
    let domain = local_domain(view, gpu.numa)?;
    let local: Vec<&Nic> = nics.iter().copied().filter(|n| local_domain(view, n.numa) == Some(domain)).collect();
    let peers: Vec<&GpuDevice> = view.node.gpus.iter().filter(|g| local_domain(view, g.numa) == Some(domain)).collect();
    let pos = peers.iter().position(|g| g.index == gpu.index).unwrap_or(0);
    spread_pick(&local, pos, peers.len())
}

/// The `pos`-th of `total` ranks' share of `nics`: consecutive ranks, same NIC.
fn spread_pick<'n>(nics: &[&'n Nic], pos: usize, total: usize) -> Option<&'n Nic> {
    if total == 0 {
        return None;
    }
    nics.get(pos * nics.len() / total).copied()
}

/// The port UCX should use: the first active one, else 1.
pub(super) fn ucx_port(nic: &Nic) -> u32 {
    nic.ports.iter().find(|p| port_active(p)).map_or(1, |p| p.number)
}

/// Whether a port is up (`ACTIVE`, sysfs's `4: ACTIVE`, or hwloc's `4`).
fn port_active(port: &NicPort) -> bool {
    port.state.as_deref().is_some_and(|s| {
        let s = s.rsplit(':').next().unwrap_or(s).trim();
        s.eq_ignore_ascii_case("ACTIVE") || s == "4"
    })
}

/// A NIC worth choosing: some port up, or nothing known about its ports.
fn nic_usable(nic: &Nic) -> bool {
    nic.ports.is_empty() || nic.ports.iter().any(|p| p.state.is_none() || port_active(p))
}

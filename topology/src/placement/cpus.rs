//! The CPU half of placement: which cores or PUs each rank gets.
//!
//! Ranks are first split over NUMA domains in whole numbers, then inside a domain either share
//! all its CPUs out evenly (no `cpus-per-rank`) or are spread over L3, then L2 groups (then
//! cores, when binding PUs) before being packed, so that each gets as much cache as possible.

use std::collections::{BTreeMap, BTreeSet};

use super::request::{CpuBind, PlacementRequest, ReserveFrom};
use super::PlacementError;
use crate::model::NodeTopology;

/// What a rank is given: a whole core (`pu: None`) or one PU of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unit {
    /// Position of the core in `NodeTopology::cores`.
    pub core: usize,
    /// The PU, when the rank gets less than the whole core.
    pub pu: Option<u32>,
}

/// A NUMA domain's usable cores.
#[derive(Debug)]
pub(super) struct Domain {
    /// Logical NUMA index.
    pub numa: u32,
    /// Positions in `NodeTopology::cores`, in topology order, reserved cores left out.
    pub cores: Vec<usize>,
    /// PUs of those cores.
    pub pus: usize,
}

/// The node as the CPU split sees it: usable cores grouped by NUMA domain.
#[derive(Debug)]
pub(super) struct CpuView<'a> {
    /// The node.
    pub node: &'a NodeTopology,
    /// PUs of each core (by position); a PU listed under two cores counts only for the first,
    /// so that a malformed model cannot make two ranks share a PU.
    pub pus: Vec<Vec<u32>>,
    /// Domains with at least one usable core, ascending.
    pub domains: Vec<Domain>,
    /// Every domain that has a core, reserved or not, ascending.
    pub node_domains: Vec<u32>,
}

/// One rank's CPUs before they become a `RankPlacement`.
#[derive(Debug)]
pub(super) struct Share {
    /// Cores or PUs, in topology order; never empty.
    pub units: Vec<Unit>,
}

/// A level of the cache hierarchy ranks are spread over.
#[derive(Debug, Clone, Copy)]
enum Level {
    L3,
    L2,
    Core,
}

impl<'a> CpuView<'a> {
    /// Groups the node's cores by domain, leaving out `reserve` cores per package.
    pub fn new(node: &'a NodeTopology, reserve: u32, from: ReserveFrom) -> Self {
        let mut seen = BTreeSet::new();
        let pus: Vec<Vec<u32>> =
            node.cores.iter().map(|c| c.pus.iter().copied().filter(|&p| seen.insert(p)).collect()).collect();
        let mut by_package: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (pos, core) in node.cores.iter().enumerate() {
            if !pus[pos].is_empty() {
                by_package.entry(core.package).or_default().push(pos);
            }
        }
        let mut reserved = vec![false; node.cores.len()];
        for cores in by_package.values() {
            let take = (reserve as usize).min(cores.len());
            let picked = match from {
                ReserveFrom::Last => &cores[cores.len() - take..],
                ReserveFrom::First => &cores[..take],
            };
            for &pos in picked {
                reserved[pos] = true;
            }
        }
        let mut domains: BTreeMap<u32, Domain> = BTreeMap::new();
        let mut node_domains = BTreeSet::new();
        for (pos, core) in node.cores.iter().enumerate() {
            if pus[pos].is_empty() {
                continue;
            }
            node_domains.insert(core.numa);
            if !reserved[pos] {
                let d = domains.entry(core.numa).or_insert(Domain { numa: core.numa, cores: Vec::new(), pus: 0 });
                d.cores.push(pos);
                d.pus += pus[pos].len();
            }
        }
        CpuView {
            node,
            pus,
            domains: domains.into_values().collect(),
            node_domains: node_domains.into_iter().collect(),
        }
    }

    /// Usable cores on the node.
    pub fn usable_cores(&self) -> usize {
        self.domains.iter().map(|d| d.cores.len()).sum()
    }

    /// Usable PUs on the node.
    pub fn usable_pus(&self) -> usize {
        self.domains.iter().map(|d| d.pus).sum()
    }

    /// The cores at `positions` as units: whole cores, or each of their PUs.
    fn units(&self, positions: &[usize], pus: bool) -> Vec<Unit> {
        if !pus {
            return positions.iter().map(|&core| Unit { core, pu: None }).collect();
        }
        positions.iter().flat_map(|&core| self.pus[core].iter().map(move |&pu| Unit { core, pu: Some(pu) })).collect()
    }

    /// The PUs a unit stands for.
    pub fn unit_pus<'s>(&'s self, unit: &'s Unit) -> &'s [u32] {
        match &unit.pu {
            Some(pu) => std::slice::from_ref(pu),
            None => &self.pus[unit.core],
        }
    }

    /// The logical NUMA index of a unit.
    pub fn unit_numa(&self, unit: Unit) -> u32 {
        self.node.cores[unit.core].numa
    }

    /// The group a unit belongs to at a cache level (`None`: the level is not described).
    fn group_key(&self, unit: Unit, level: Level) -> Option<usize> {
        let want = match level {
            Level::Core => return Some(unit.core),
            Level::L3 => 3,
            Level::L2 => 2,
        };
        self.node.cores[unit.core]
            .caches
            .iter()
            .map(|&c| c as usize)
            .find(|&c| self.node.caches.get(c).is_some_and(|cache| cache.level == want))
    }
}

/// Splits the node's usable CPUs between `req.ranks` ranks, in rank order.
///
/// `gpu_weights` (one per domain of `view`) steers ranks towards the domains that hold the GPUs.
pub(super) fn split(
    view: &CpuView<'_>,
    req: &PlacementRequest,
    gpu_weights: Option<&[u64]>,
) -> Result<Vec<Share>, PlacementError> {
    let ranks = req.ranks as usize;
    let (cores, pus) = (view.usable_cores(), view.usable_pus());
    let reserved_per_socket = req.reserve_cores_per_socket;
    if ranks > pus {
        return Err(PlacementError::TooManyRanks { ranks: req.ranks, usable: pus as u64, reserved_per_socket });
    }
    // Threads binding hands out PUs; every other binding counts whole cores.
    let threads = req.cpu_bind == CpuBind::Threads;
    if let Some(per_rank) = req.cpus_per_rank {
        let needed = u64::from(req.ranks) * u64::from(per_rank);
        let (ranks, cpus_per_rank) = (req.ranks, per_rank);
        if threads && needed > pus as u64 {
            return Err(PlacementError::NotEnoughPus {
                needed,
                ranks,
                cpus_per_rank,
                usable: pus as u64,
                reserved_per_socket,
            });
        }
        if !threads && needed > cores as u64 {
            return Err(PlacementError::NotEnoughCores {
                needed,
                ranks,
                cpus_per_rank,
                usable: cores as u64,
                reserved_per_socket,
            });
        }
    }
    let per_rank = req.cpus_per_rank.map(|n| n as usize);
    if per_rank.is_none() && ranks < view.domains.len() {
        return Ok(whole_domains(view, ranks, threads));
    }
    let core_weights: Vec<u64> = view.domains.iter().map(|d| d.cores.len() as u64).collect();
    let caps: Vec<usize> = view
        .domains
        .iter()
        .map(|d| match per_rank {
            None => d.pus,
            Some(n) if threads => d.pus / n,
            Some(n) => d.cores.len() / n,
        })
        .collect();
    let primary = gpu_weights.unwrap_or(&core_weights);
    let Some(counts) = apportion(ranks, primary, &core_weights, &caps) else {
        // Ranks too large for any one domain: they span domains, packed in topology order.
        let all: Vec<usize> = view.domains.iter().flat_map(|d| d.cores.iter().copied()).collect();
        let per_rank = per_rank.unwrap_or(1).max(1);
        let units = view.units(&all, threads);
        return Ok(units.chunks(per_rank).take(ranks).map(|u| Share { units: u.to_vec() }).collect());
    };
    let mut out = Vec::with_capacity(ranks);
    for (domain, &k) in view.domains.iter().zip(&counts) {
        if k == 0 {
            continue;
        }
        match per_rank {
            None => {
                // SMT siblings go to different ranks only when the domain has more ranks than cores.
                let units = view.units(&domain.cores, threads || k > domain.cores.len());
                split_even(&units, k, &mut out);
            }
            Some(n) => {
                let units = view.units(&domain.cores, threads);
                let levels: &[Level] =
                    if threads { &[Level::L3, Level::L2, Level::Core] } else { &[Level::L3, Level::L2] };
                spread(view, &units, k, n, levels, &mut out);
            }
        }
    }
    Ok(out.into_iter().map(|units| Share { units }).collect())
}

/// Fewer ranks than domains, no size given: each rank gets whole domains, in whole numbers.
fn whole_domains(view: &CpuView<'_>, ranks: usize, threads: bool) -> Vec<Share> {
    let (base, extra) = (view.domains.len() / ranks, view.domains.len() % ranks);
    let mut next = view.domains.iter();
    (0..ranks)
        .map(|r| {
            let take = base + usize::from(r < extra);
            let cores: Vec<usize> = next.by_ref().take(take).flat_map(|d| d.cores.iter().copied()).collect();
            Share { units: view.units(&cores, threads) }
        })
        .collect()
}

/// Cuts `units` into `k` consecutive runs whose lengths differ by at most one, longer runs first.
fn split_even(units: &[Unit], k: usize, out: &mut Vec<Vec<Unit>>) {
    let (base, extra) = (units.len() / k, units.len() % k);
    let mut rest = units;
    for r in 0..k {
        let (run, tail) = rest.split_at((base + usize::from(r < extra)).min(rest.len()));
        out.push(run.to_vec());
        rest = tail;
    }
}

/// Places `k` ranks of `n` units each in `units`: over the groups of the first level that has
/// several, in proportion to their size, recursively; packed when the groups cannot hold them.
fn spread(view: &CpuView<'_>, units: &[Unit], k: usize, n: usize, levels: &[Level], out: &mut Vec<Vec<Unit>>) {
    if k == 0 {
        return;
    }
    for (i, &level) in levels.iter().enumerate() {
        let groups = group_by(view, units, level);
        if groups.len() < 2 {
            continue;
        }
        let sizes: Vec<u64> = groups.iter().map(|g| g.len() as u64).collect();
        let caps: Vec<usize> = groups.iter().map(|g| g.len() / n).collect();
        if let Some(counts) = apportion(k, &sizes, &sizes, &caps) {
            for (group, c) in groups.iter().zip(counts) {
                spread(view, group, c, n, &levels[i + 1..], out);
            }
            return;
        }
        break;
    }
    out.extend(units.chunks(n).take(k).map(<[Unit]>::to_vec));
}

/// Partitions units by their group at `level`, groups in order of first appearance.
fn group_by(view: &CpuView<'_>, units: &[Unit], level: Level) -> Vec<Vec<Unit>> {
    let mut keys: Vec<Option<usize>> = Vec::new();
    let mut groups: Vec<Vec<Unit>> = Vec::new();
    for &unit in units {
        let key = view.group_key(unit, level);
        match keys.iter().position(|k| *k == key) {
            Some(i) => groups[i].push(unit),
            None => {
                keys.push(key);
                groups.push(vec![unit]);
            }
        }
    }
    groups
}

/// Splits `n` items over bins in proportion to `primary` weights (D'Hondt: each item goes to the
/// bin with the most weight per item it would then hold, ties to the lower bin) without passing
/// `caps`; when every bin with primary weight is full, `secondary` weights decide, then any bin
/// with room. `None` when the caps hold fewer than `n`.
pub(super) fn apportion(n: usize, primary: &[u64], secondary: &[u64], caps: &[usize]) -> Option<Vec<usize>> {
    if caps.iter().sum::<usize>() < n {
        return None;
    }
    let mut counts = vec![0usize; caps.len()];
    for _ in 0..n {
        let pick = best_bin(primary, &counts, caps)
            .or_else(|| best_bin(secondary, &counts, caps))
            .or_else(|| (0..caps.len()).find(|&i| counts[i] < caps[i]))?;
        counts[pick] += 1;
    }
    Some(counts)
}

/// The bin with room and the highest `weight / (count + 1)`, lowest index on ties.
fn best_bin(weights: &[u64], counts: &[usize], caps: &[usize]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, (&count, &cap)) in counts.iter().zip(caps).enumerate() {
        let w = weights.get(i).copied().unwrap_or(0);
        if w == 0 || count >= cap {
            continue;
        }
        // Compare w / (count + 1) against the best's without division.
        let better =
            best.is_none_or(|(b, wb)| u128::from(w) * (counts[b] as u128 + 1) > u128::from(wb) * (count as u128 + 1));
        if better {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

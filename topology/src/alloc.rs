//! Node allocations: which cores, how much memory and which GPUs of one node a task gets.
//!
//! The head keeps a [`NodeInventory`] (what a node has, fixed while its launcher is connected)
//! and a [`NodeFree`] (what is not in any live allocation) per node. [`pick`] chooses a
//! concrete [`Grant`] for a [`Need`]: whole cores (a need in CPUs takes `ceil(cpus / threads
//! per core)` cores, as Slurm's `select/cons_tres` with `CR_Core` does), a memory amount, and
//! GPU indices. Choice, in this order:
//! - GPUs of the requested type (a word of the GPU's name, case-insensitive, `_` and spaces
//!   alike), from one NUMA domain when one has enough, the domain with the fewest such GPUs
//!   free that still fits (best fit keeps full domains whole);
//! - cores from the GPUs' domain first (GPU-to-core affinity), else from one domain that holds
//!   all of them (again best fit), else from the domains with the most free cores first;
//! - within a domain, the lowest free cores in topology order.
//!
//! Pure and cheap: O(cores + GPUs) per pick, no allocation beyond the grant.

use crate::model::NodeTopology;

/// One core as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreSlot {
    /// Its hardware threads (OS CPU numbers).
    pub pus: Vec<u32>,
    /// Its NUMA domain (logical index).
    pub numa: u32,
}

/// One GPU as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSlot {
    /// CUDA index.
    pub index: u32,
    /// Vendor's name (`NVIDIA H100 80GB HBM3`), matched against a requested type.
    pub name: String,
    /// NUMA domain (logical index), when known.
    pub numa: Option<u32>,
}

/// What a node can give out, in allocator terms (fixed once built: see [`NodeInventory::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInventory {
    /// Cores in topology order.
    pub cores: Vec<CoreSlot>,
    /// Memory tasks may be given (physical memory less the node's reserve), MiB.
    pub memory_mib: u64,
    /// GPUs in index order.
    pub gpus: Vec<GpuSlot>,
    /// The most threads any core has (kept: every fit test needs it).
    threads: u32,
}

/// What one node's share of a task needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Need {
    /// CPUs (hardware threads); rounded up to whole cores.
    pub cpus: u32,
    /// Whole cores at least (ranks bound to cores ask in cores).
    pub cores: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// All of the node's memory (Slurm's `--mem=0`): only while none of it is allocated.
    pub all_memory: bool,
    /// GPUs.
    pub gpus: u32,
    /// A word of the GPUs' names (`h100`, `a100`), when the type matters.
    pub gpu_type: Option<String>,
    /// The whole node: every core, all memory and every GPU, and nothing else may share it.
    pub whole: bool,
}

/// What one node gave a task: positions in the inventory's cores, MiB, CUDA indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Positions in [`NodeInventory::cores`], ascending.
    pub cores: Vec<u32>,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// GPU indices, ascending.
    pub gpus: Vec<u32>,
}

/// What is not allocated on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFree {
    cores: Vec<u64>,
    free_cores: u32,
    memory_mib: u64,
    gpus: Vec<bool>,
    free_gpus: u32,
}

/// Why a need can never be met by a node, or by any node of a set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Shortfall {
    /// Too many CPUs.
    #[error("{asked} CPUs on one node, and the largest node has {largest}")]
    Cpus { asked: u32, largest: u32 },
    /// Too much memory.
    #[error("{asked} MiB of memory on one node, and the largest node has {largest} MiB")]
    Memory { asked: u64, largest: u64 },
    /// Too many GPUs (of the type).
    #[error("{asked} GPUs{of_type} on one node, and the largest node has {largest}")]
    Gpus { asked: u32, of_type: String, largest: u32 },
}

/// Whether a GPU named `name` is of `gpu_type`: the type is one of the name's words, or
/// (with `_`/`-` for spaces) a run of them, case-insensitive. No type matches every GPU.
pub fn gpu_of_type(name: &str, gpu_type: Option<&str>) -> bool {
    let Some(t) = gpu_type else { return true };
    let t = t.to_ascii_lowercase();
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.contains(&t) {
        return true;
    }
    let want: Vec<&str> = t.split(['_', '-', ' ']).filter(|w| !w.is_empty()).collect();
    !want.is_empty() && words.windows(want.len()).any(|win| win.iter().zip(&want).all(|(a, b)| a == b))
}

impl NodeInventory {
    /// An inventory of these cores, MiB and GPUs.
    pub fn new(cores: Vec<CoreSlot>, memory_mib: u64, gpus: Vec<GpuSlot>) -> NodeInventory {
        let threads = cores.iter().map(|c| c.pus.len() as u32).max().unwrap_or(1).max(1);
        NodeInventory { cores, memory_mib, gpus, threads }
    }

    /// The inventory of a node described by `topo`, keeping `reserve_mib` for the system.
    pub fn from_topology(topo: &NodeTopology, reserve_mib: u64) -> NodeInventory {
        NodeInventory::new(
            topo.cores.iter().map(|c| CoreSlot { pus: c.pus.clone(), numa: c.numa }).collect(),
            (topo.memory_bytes >> 20).saturating_sub(reserve_mib),
            topo.gpus.iter().map(|g| GpuSlot { index: g.index, name: g.name.clone(), numa: g.numa }).collect(),
        )
    }

    /// The inventory of a node known only by its counts: CPUs `0..cpus`, one thread per
    /// core, one NUMA domain.
    pub fn flat(res: &crate::NodeResources, reserve_mib: u64) -> NodeInventory {
        NodeInventory::new(
            (0..res.cpus).map(|cpu| CoreSlot { pus: vec![cpu], numa: 0 }).collect(),
            (res.memory_bytes >> 20).saturating_sub(reserve_mib),
            res.gpus.iter().map(|g| GpuSlot { index: g.index, name: g.name.clone(), numa: None }).collect(),
        )
    }

    /// Hardware threads per core (the most any core has; 1 for an empty node).
    pub fn threads_per_core(&self) -> u32 {
        self.threads.max(1)
    }

    /// CPUs: every thread of every core.
    pub fn cpu_count(&self) -> u32 {
        self.cores.iter().map(|c| c.pus.len() as u32).sum()
    }

    /// Whole cores `need` takes here.
    pub fn cores_for(&self, need: &Need) -> u32 {
        need.cpus.div_ceil(self.threads_per_core()).max(need.cores)
    }

    /// GPUs of `gpu_type` (all, without a type).
    pub fn gpus_of_type(&self, gpu_type: Option<&str>) -> u32 {
        self.gpus.iter().filter(|g| gpu_of_type(&g.name, gpu_type)).count() as u32
    }

    /// Everything free.
    pub fn all_free(&self) -> NodeFree {
        let mut cores = vec![0u64; self.cores.len().div_ceil(64)];
        for i in 0..self.cores.len() {
            cores[i / 64] |= 1 << (i % 64);
        }
        NodeFree {
            cores,
            free_cores: self.cores.len() as u32,
            memory_mib: self.memory_mib,
            gpus: vec![true; self.gpus.len()],
            free_gpus: self.gpus.len() as u32,
        }
    }

    /// The whole node.
    pub fn whole(&self) -> Grant {
        Grant {
            cores: (0..self.cores.len() as u32).collect(),
            memory_mib: self.memory_mib,
            gpus: self.gpus.iter().map(|g| g.index).collect(),
        }
    }

    /// Why `need` can never be met here (even on an idle node), if it cannot.
    pub fn shortfall(&self, need: &Need) -> Option<Shortfall> {
        if need.whole {
            return None;
        }
        let cpus = self.cpu_count();
        if self.cores_for(need) as usize > self.cores.len() {
            let asked = need.cpus.max(need.cores * self.threads_per_core());
            return Some(Shortfall::Cpus { asked, largest: cpus });
        }
        if need.memory_mib > self.memory_mib {
            return Some(Shortfall::Memory { asked: need.memory_mib, largest: self.memory_mib });
        }
        let gpus = self.gpus_of_type(need.gpu_type.as_deref());
        if need.gpus > gpus {
            let of_type = need.gpu_type.as_ref().map_or_else(String::new, |t| format!(" of type {t}"));
            return Some(Shortfall::Gpus { asked: need.gpus, of_type, largest: gpus });
        }
        None
    }

    /// OS CPU numbers of the cores at `positions`.
    pub fn cpus_of(&self, positions: &[u32]) -> Vec<u32> {
        let mut cpus: Vec<u32> =
            positions.iter().filter_map(|p| self.cores.get(*p as usize)).flat_map(|c| c.pus.iter().copied()).collect();
        cpus.sort_unstable();
        cpus
    }

    /// The grant that OS CPUs `cpus`, `memory_mib` and GPU indices `gpus` (an allocation as
    /// users see it) stand for, when restoring it after a restart: the cores any of `cpus`
    /// belongs to, and the GPUs among `gpus` this node has.
    pub fn grant_of(&self, cpus: &[u32], memory_mib: u64, gpus: &[u32]) -> Grant {
        let cores = (0..self.cores.len() as u32)
            .filter(|p| self.cores[*p as usize].pus.iter().any(|pu| cpus.contains(pu)))
            .collect();
        let mut gpus: Vec<u32> = gpus.iter().copied().filter(|i| self.gpus.iter().any(|g| g.index == *i)).collect();
        gpus.sort_unstable();
        gpus.dedup();
        Grant { cores, memory_mib: memory_mib.min(self.memory_mib), gpus }
    }

    fn gpu_position(&self, index: u32) -> Option<usize> {
        self.gpus.iter().position(|g| g.index == index)
    }
}

impl NodeFree {
    /// Free cores.
    pub fn free_cores(&self) -> u32 {
        self.free_cores
    }

    /// Free memory, MiB.
    pub fn memory_mib(&self) -> u64 {
        self.memory_mib
    }

    /// Free GPUs.
    pub fn free_gpus(&self) -> u32 {
        self.free_gpus
    }

    /// Whether `need` could fit by the counts alone (cores, memory, GPUs of any type): O(1),
    /// a filter before [`pick`], which also places them.
    pub fn could_fit(&self, inv: &NodeInventory, need: &Need) -> bool {
        if need.whole {
            return self.is_idle(inv);
        }
        let memory = if need.all_memory { inv.memory_mib } else { need.memory_mib };
        inv.cores_for(need) <= self.free_cores && memory <= self.memory_mib && need.gpus <= self.free_gpus
    }

    /// Whether nothing is allocated.
    pub fn is_idle(&self, inv: &NodeInventory) -> bool {
        self.free_cores as usize == inv.cores.len()
            && self.memory_mib == inv.memory_mib
            && self.free_gpus as usize == inv.gpus.len()
    }

    fn core_free(&self, i: usize) -> bool {
        self.cores[i / 64] & (1 << (i % 64)) != 0
    }

    /// Takes `grant` (which must be free: a grant already taken, wholly or partly, is refused
    /// and nothing changes).
    pub fn take(&mut self, inv: &NodeInventory, grant: &Grant) -> bool {
        let cores_free = grant.cores.iter().all(|c| (*c as usize) < inv.cores.len() && self.core_free(*c as usize));
        // Checked, then looked up again to take: a take allocates nothing.
        let gpus_free = grant.gpus.iter().all(|g| inv.gpu_position(*g).is_some_and(|p| self.gpus[p]));
        if !cores_free || !gpus_free || grant.memory_mib > self.memory_mib {
            return false;
        }
        // Ascending, so nothing is named twice.
        let ascending = |v: &[u32]| v.windows(2).all(|w| w[0] < w[1]);
        if !ascending(&grant.cores) || !ascending(&grant.gpus) {
            return false;
        }
        for c in &grant.cores {
            let i = *c as usize;
            self.cores[i / 64] &= !(1 << (i % 64));
        }
        self.free_cores -= grant.cores.len() as u32;
        self.memory_mib -= grant.memory_mib;
        for p in grant.gpus.iter().filter_map(|g| inv.gpu_position(*g)) {
            self.gpus[p] = false;
        }
        self.free_gpus -= grant.gpus.len() as u32;
        true
    }

    /// What is free both here and in `other` (two views of one node: cores and GPUs in
    /// both, the smaller memory).
    pub fn intersect(&self, other: &NodeFree) -> NodeFree {
        let cores: Vec<u64> = self.cores.iter().zip(&other.cores).map(|(a, b)| a & b).collect();
        let gpus: Vec<bool> = self.gpus.iter().zip(&other.gpus).map(|(a, b)| *a && *b).collect();
        NodeFree {
            free_cores: cores.iter().map(|w| w.count_ones()).sum(),
            cores,
            memory_mib: self.memory_mib.min(other.memory_mib),
            free_gpus: gpus.iter().filter(|g| **g).count() as u32,
            gpus,
        }
    }

    /// Marks `grant` as not free, whatever of it is free now (the rest is already taken; the
    /// memory goes down by the grant's, to zero at least): a claim on what may still be held.
    pub fn remove(&mut self, inv: &NodeInventory, grant: &Grant) {
        for c in &grant.cores {
            let i = *c as usize;
            if i < inv.cores.len() && self.core_free(i) {
                self.cores[i / 64] &= !(1 << (i % 64));
                self.free_cores -= 1;
            }
        }
        self.memory_mib = self.memory_mib.saturating_sub(grant.memory_mib);
        for g in &grant.gpus {
            if let Some(p) = inv.gpu_position(*g).filter(|p| self.gpus[*p]) {
                self.gpus[p] = false;
                self.free_gpus -= 1;
            }
        }
    }

    /// Gives `grant` back (it must have been taken: anything of it already free is left as it is).
    pub fn give_back(&mut self, inv: &NodeInventory, grant: &Grant) {
        for c in &grant.cores {
            let i = *c as usize;
            if i < inv.cores.len() && !self.core_free(i) {
                self.cores[i / 64] |= 1 << (i % 64);
                self.free_cores += 1;
            }
        }
        self.memory_mib = (self.memory_mib + grant.memory_mib).min(inv.memory_mib);
        for g in &grant.gpus {
            if let Some(p) = inv.gpu_position(*g).filter(|p| !self.gpus[*p]) {
                self.gpus[p] = true;
                self.free_gpus += 1;
            }
        }
    }
}

/// Chooses what `need` gets of what is `free` on a node, or None when it does not fit now.
/// Does not take it (see [`NodeFree::take`]).
pub fn pick(inv: &NodeInventory, free: &NodeFree, need: &Need) -> Option<Grant> {
    if need.whole {
        return free.is_idle(inv).then(|| inv.whole());
    }
    if !free.could_fit(inv, need) {
        return None;
    }
    let cores = inv.cores_for(need);
    let memory_mib = if need.all_memory { inv.memory_mib } else { need.memory_mib };
    // Per-domain counts on the stack: a pick allocates only its result.
    let domain = |numa: u32| (numa as usize).min(MAX_DOMAINS - 1);
    let mut free_in = [0u32; MAX_DOMAINS];
    let mut domains = 0;
    for (i, c) in inv.cores.iter().enumerate() {
        let d = domain(c.numa);
        domains = domains.max(d + 1);
        if free.core_free(i) {
            free_in[d] += 1;
        }
    }
    let mut gpus: Vec<u32> = Vec::with_capacity(need.gpus as usize);
    // Domains the GPUs came from: cores are taken from these first.
    let mut first = Domains::default();
    if need.gpus > 0 {
        let mut usable: Vec<&GpuSlot> = inv
            .gpus
            .iter()
            .enumerate()
            .filter(|(p, g)| free.gpus[*p] && gpu_of_type(&g.name, need.gpu_type.as_deref()))
            .map(|(_, g)| g)
            .collect();
        if (usable.len() as u32) < need.gpus {
            return None;
        }
        let mut gpus_in = [0u32; MAX_DOMAINS];
        for g in usable.iter().filter_map(|g| g.numa) {
            let d = domain(g);
            domains = domains.max(d + 1);
            gpus_in[d] += 1;
        }
        // One domain with the GPUs and the cores; else one with the GPUs; best fit first.
        let fits = |d: usize, with_cores: bool| gpus_in[d] >= need.gpus && (!with_cores || free_in[d] >= cores);
        let home = (0..domains)
            .filter(|d| fits(*d, true))
            .min_by_key(|d| (gpus_in[*d], free_in[*d], *d))
            .or_else(|| (0..domains).filter(|d| fits(*d, false)).min_by_key(|d| (gpus_in[*d], *d)));
        match home {
            Some(h) => usable.sort_by_key(|g| (g.numa.map(domain) != Some(h), g.index)),
            // Spread: the domains with the most such GPUs first, unknown locality last.
            None => {
                usable.sort_by_key(|g| (g.numa.map_or(0, |n| u32::MAX - gpus_in[domain(n)]), g.numa.is_none(), g.index))
            }
        }
        for g in usable.into_iter().take(need.gpus as usize) {
            gpus.push(g.index);
            if let Some(n) = g.numa {
                first.push_new(domain(n));
            }
        }
        gpus.sort_unstable();
    }
    // Domains to take cores from, in order: the GPUs' when they hold the cores, else one
    // that holds them all (best fit), else the fullest first.
    let mut order = Domains::default();
    let in_first: u32 = first.iter().map(|d| free_in[d]).sum();
    if !first.is_empty() && in_first >= cores {
        first.iter().for_each(|d| order.push_new(d));
    } else if let Some(d) = (0..domains).filter(|d| free_in[*d] >= cores).min_by_key(|d| (free_in[*d], *d)) {
        order.push_new(d);
    } else {
        first.iter().for_each(|d| order.push_new(d));
    }
    let mut rest = Domains::default();
    (0..domains).filter(|d| !order.contains(*d)).for_each(|d| rest.push_new(d));
    rest.sort_by_key(|d| (u32::MAX - free_in[d], d));
    rest.iter().for_each(|d| order.push_new(d));
    let mut taken: Vec<u32> = Vec::with_capacity(cores as usize);
    'domains: for d in order.iter() {
        if free_in[d] == 0 {
            continue;
        }
        for (i, c) in inv.cores.iter().enumerate() {
            if taken.len() as u32 == cores {
                break 'domains;
            }
            if domain(c.numa) == d && free.core_free(i) {
                taken.push(i as u32);
            }
        }
    }
    if (taken.len() as u32) < cores {
        return None;
    }
    taken.sort_unstable();
    Some(Grant { cores: taken, memory_mib, gpus })
}

/// NUMA domains told apart when picking (more, which no machine has, count as the last).
const MAX_DOMAINS: usize = 64;

/// A short list of domains, on the stack.
#[derive(Clone, Copy)]
struct Domains {
    list: [u8; MAX_DOMAINS],
    len: usize,
}

impl Default for Domains {
    fn default() -> Domains {
        Domains { list: [0; MAX_DOMAINS], len: 0 }
    }
}

impl Domains {
    fn push_new(&mut self, d: usize) {
        if !self.contains(d) && self.len < MAX_DOMAINS {
            self.list[self.len] = d as u8;
            self.len += 1;
        }
    }

    fn contains(&self, d: usize) -> bool {
        self.list[..self.len].contains(&(d as u8))
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.list[..self.len].iter().map(|d| *d as usize)
    }

    fn sort_by_key<K: Ord>(&mut self, key: impl Fn(usize) -> K) {
        self.list[..self.len].sort_by_key(|d| key(*d as usize));
    }
}

#[cfg(test)]
mod tests;

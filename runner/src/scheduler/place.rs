//! Where a shape goes: the searches of one scheduling pass, over the pool's indexes (free
//! slots; free GPUs then free cores), the nodes freed since a shape was blocked, and the
//! fabric for gangs. They read the state and choose; `Scheduler::hold` takes what they chose.

use std::collections::BTreeSet;

use gangway_topology::alloc::{pick, Grant, Need};

use super::keys::KeyMap;
use super::queue::Shape;
use super::{Fill, NodeKey, NodeState, PoolKey, PoolState, Scheduler, TaskKey, MAX_PROBES};

/// What a placement attempt found.
pub(super) enum Found<T> {
    Placed(T),
    /// Nothing fits now, on any node: the shape is blocked until capacity is freed.
    NoFit,
    /// The search hit its bound: it may fit somewhere not looked at.
    GaveUp,
}

impl<T> Found<T> {
    /// What was placed, made into `f`'s.
    pub(super) fn map<U>(self, f: impl FnOnce(T) -> U) -> Found<U> {
        match self {
            Found::Placed(t) => Found::Placed(f(t)),
            Found::NoFit => Found::NoFit,
            Found::GaveUp => Found::GaveUp,
        }
    }
}

impl Scheduler {
    /// A one-node `shape` (its first task `task`) on node `n` of `pool`, if it fits there now.
    /// The counts are tested before the node's holdings are looked up: most shapes a freed
    /// node is tried for do not fit it.
    pub(super) fn place_on(
        pool: PoolKey,
        n: &NodeState,
        task: TaskKey,
        shape: &Shape,
        need: Option<&Need>,
        all_slots: u32,
    ) -> Option<Grant> {
        let slots = if need.is_some_and(|x| x.whole) { all_slots } else { shape.slots };
        if n.pool != pool || n.index_key().is_none() || n.free < slots {
            return None;
        }
        if need.is_some_and(|need| !n.avail.could_fit(&n.inventory, need)) || n.held.contains_key(&task) {
            return None;
        }
        match need {
            None => Some(Grant::default()),
            Some(need) => pick(&n.inventory, &n.avail, need),
        }
    }

    /// The node `slots` (and `need`) of `task` go to, as the pool's fill type says, and what
    /// it gives. A node where the task still holds something (its previous attempt has not
    /// reported its end) is passed over, and then the search gives up rather than finds no fit.
    pub(super) fn place_one(
        p: &PoolState,
        task: TaskKey,
        slots: u32,
        need: Option<&Need>,
        max_free: u32,
        nodes: &KeyMap<NodeKey, NodeState>,
    ) -> Found<(NodeKey, Grant)> {
        if slots > max_free {
            return Found::NoFit;
        }
        let mut passed_over = false;
        let mut free_of = |k: &NodeKey| {
            let held = nodes[k].held.contains_key(&task);
            passed_over |= held;
            !held
        };
        let Some(need) = need else {
            let found = match p.fill {
                // Most free slots; among equals the lowest node key, for determinism.
                Fill::Spread => spread_order(p.free.range((slots, 0)..)).find(|(_, k)| free_of(k)).copied(),
                Fill::Pack => p.free.range((slots, 0)..).find(|(_, k)| free_of(k)).copied(),
            };
            return match found {
                Some((_, node)) => Found::Placed((node, Grant::default())),
                None if passed_over => Found::GaveUp,
                None => Found::NoFit,
            };
        };
        let mut probes = 0;
        if need.whole {
            for &(_, k) in p.free.range((p.slots_per_node, 0)..) {
                let n = &nodes[&k];
                if !free_of(&k) {
                    continue;
                }
                if let Some(g) = pick(&n.inventory, &n.avail, need) {
                    return Found::Placed((k, g));
                }
                probes += 1;
                if probes >= MAX_PROBES {
                    return Found::GaveUp;
                }
            }
            return if passed_over { Found::GaveUp } else { Found::NoFit };
        }
        // Only nodes with the cores and the GPUs: buckets of at least `need.gpus` free GPUs,
        // each from `least` free cores. Pack: the fewest GPUs free first (keeping GPU nodes
        // for GPU work); Spread: the most.
        let least = need.cpus.div_ceil(p.max_threads.max(1)).max(need.cores);
        let buckets = p.by_gpus.get(need.gpus as usize..).unwrap_or_default();
        let buckets: Box<dyn Iterator<Item = &BTreeSet<(u32, NodeKey)>>> = match p.fill {
            Fill::Spread => Box::new(buckets.iter().rev()),
            Fill::Pack => Box::new(buckets.iter()),
        };
        for bucket in buckets.filter(|b| b.last().is_some_and(|&(most, _)| most >= least)) {
            let range = bucket.range((least, 0)..);
            // Spread: the most free cores first, lowest key among equals; Pack: the fewest.
            let mut order: Box<dyn Iterator<Item = &(u32, NodeKey)>> = match p.fill {
                Fill::Spread => Box::new(spread_order(range)),
                Fill::Pack => Box::new(range),
            };
            for &(_, k) in &mut order {
                let n = &nodes[&k];
                if n.free >= slots && n.avail.could_fit(&n.inventory, need) && free_of(&k) {
                    if let Some(g) = pick(&n.inventory, &n.avail, need) {
                        return Found::Placed((k, g));
                    }
                }
                probes += 1;
                if probes >= MAX_PROBES {
                    return Found::GaveUp;
                }
            }
        }
        if passed_over {
            Found::GaveUp
        } else {
            Found::NoFit
        }
    }

    /// `n` nodes at once, each with `slots` free and `need` met (with no need: whole idle
    /// nodes). On the fabric, the gang `select_gang` finds on the pool's incremental index
    /// (nodes under the lowest common switch, on the fewest leaves); without one, or when
    /// the need does not fit the nodes it picked (a GPU type), the lowest keys that fit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn place_gang(
        p: &mut PoolState,
        pool: PoolKey,
        task: TaskKey,
        n: u32,
        slots: u32,
        need: Option<&Need>,
        nodes: &KeyMap<NodeKey, NodeState>,
        fabric: Option<&gangway_topology::fabric::Fabric>,
    ) -> Found<Vec<(NodeKey, Grant)>> {
        const WHOLE: Need =
            Need { cpus: 0, cores: 0, memory_mib: 0, all_memory: false, gpus: 0, gpu_type: None, whole: true };
        let need = need.unwrap_or(&WHOLE);
        if n == 0 {
            return Found::NoFit;
        }
        let least = if need.whole { p.slots_per_node } else { slots.max(1) };
        // Nodes still held by the task's previous attempt are passed over (and then a miss is
        // not final: they come back when it reports).
        let passed_over = std::cell::Cell::new(false);
        let place = |k: NodeKey| {
            let node = &nodes[&k];
            if node.held.contains_key(&task) {
                passed_over.set(true);
                return None;
            }
            (node.free >= least).then(|| pick(&node.inventory, &node.avail, need)).flatten().map(|g| (k, g))
        };
        if let Some(f) = fabric.filter(|_| p.unplaced == 0) {
            use gangway_topology::gang::{GangRequest, NodeNeed, Resources};
            let cores = need.cpus.div_ceil(p.max_threads.max(1)).max(need.cores);
            let per_node = Resources::new(cores, need.gpus, if need.all_memory { 0 } else { need.memory_mib << 20 });
            let req = GangRequest {
                nodes: n,
                per_node: NodeNeed { resources: per_node, exclusive: need.whole, ..Default::default() },
                max_leaves: None,
            };
            match p.fabric.select(f, pool, nodes, &req) {
                Some(keys) => {
                    if let Some(gang) = keys.iter().map(|k| place(*k)).collect::<Option<Vec<_>>>() {
                        return Found::Placed(gang);
                    }
                }
                // No gang by what the nodes have free: none by node order either.
                None if p.fabric.is_built() => return Found::NoFit,
                None => {}
            }
        }
        let mut fit = Vec::with_capacity(n as usize);
        for &(_, k) in p.free.range((least, 0)..) {
            if let Some(found) = place(k) {
                fit.push(found);
            }
        }
        if fit.len() < n as usize {
            return if passed_over.get() { Found::GaveUp } else { Found::NoFit };
        }
        fit.sort_by_key(|(k, _)| *k);
        fit.truncate(n as usize);
        Found::Placed(fit)
    }
}

/// `range` from its largest key down, the lowest node first among equal counts.
fn spread_order<'a>(
    range: std::collections::btree_set::Range<'a, (u32, NodeKey)>,
) -> impl Iterator<Item = &'a (u32, NodeKey)> + 'a {
    let mut it = range.rev().peekable();
    std::iter::from_fn(move || {
        let &&(count, _) = it.peek()?;
        let same: Vec<&(u32, NodeKey)> = std::iter::from_fn(|| it.next_if(|e| e.0 == count)).collect();
        Some(same.into_iter().rev())
    })
    .flatten()
}

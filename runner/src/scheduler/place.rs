//! Where a shape goes: the searches of one scheduling pass, over the pool's indexes (free
//! slots; free GPUs then free cores), the nodes freed since a shape was blocked, and the
//! fabric for gangs. They read the state and choose; `Scheduler::hold` takes what they chose.
//! Under a reservation ([`Room`]) a task that outlasts its start leaves the claimed resources
//! alone, and one that ends before takes them first.

use std::collections::BTreeSet;

use gangway_topology::alloc::{pick, Grant, Need, NodeFree, NodeInventory};

use super::keys::KeyMap;
use super::queue::Shape;
use super::reserve::{Leaves, Reservation};
use super::{Fill, NodeKey, NodeState, PoolKey, PoolState, Scheduler, TaskKey, Time, MAX_PROBES};

/// What a gang without a need takes on each node.
pub(super) const WHOLE_NODE: Need =
    Need { cpus: 0, cores: 0, memory_mib: 0, all_memory: false, gpus: 0, gpu_type: None, whole: true };

/// What a search must leave for the pool's reservations: a task that ends by a reservation's
/// start may use what it claims (and takes it first); one that outlasts it only what the
/// claim leaves.
pub(super) struct Room<'a> {
    reservations: &'a [Reservation],
    /// When the task would end (None: unknown, it outlasts everything).
    end: Option<Time>,
}

impl<'a> Room<'a> {
    /// No reservation to respect.
    pub const FREE: Room<'static> = Room { reservations: &[], end: None };

    /// Room beside `reservations` for a task that would end at `end`.
    pub fn new(reservations: &'a [Reservation], end: Option<Time>) -> Room<'a> {
        Room { reservations, end }
    }

    /// Whether no reservation constrains the search.
    pub fn is_free(&self) -> bool {
        self.reservations.is_empty()
    }

    /// Whether the task would still run when `r` starts.
    pub fn outlasts(&self, r: &Reservation) -> bool {
        self.end.is_none_or(|e| e > r.start)
    }

    fn outlasted(&self) -> impl Iterator<Item = &'a Reservation> + '_ {
        self.reservations.iter().filter(|r| self.outlasts(r))
    }

    fn ended_before(&self) -> impl Iterator<Item = &'a Reservation> + '_ {
        self.reservations.iter().filter(|r| !self.outlasts(r))
    }

    /// What a task may use of node `k` now: its free slots and resources, less what the
    /// reservations it would outlast claim there; None: nothing.
    fn usable<'n>(&self, k: NodeKey, n: &'n NodeState) -> Option<(u32, std::borrow::Cow<'n, NodeFree>)> {
        use std::borrow::Cow;
        let mut slots = n.free;
        let mut avail = Cow::Borrowed(&n.avail);
        for r in self.outlasted() {
            match r.leaves(k, n) {
                None => {}
                Some(Leaves::Nothing) => return None,
                Some(Leaves::Some(s, free)) => {
                    slots = slots.min(s);
                    avail = Cow::Owned(avail.intersect(&free));
                }
            }
        }
        Some((slots, avail))
    }

    /// What `slots` and `need` get on node `k` (state `n`) now, beside the reservations.
    fn fit_on(&self, k: NodeKey, n: &NodeState, slots: u32, need: Option<&Need>) -> Option<Grant> {
        let (free_slots, avail) = self.usable(k, n)?;
        fit(&n.inventory, free_slots, &avail, slots, need)
    }

    /// The claimed nodes this task should try first (of reservations it ends before).
    fn first(&self) -> impl Iterator<Item = NodeKey> + '_ {
        self.ended_before().flat_map(|r| r.claims.iter().copied())
    }

    /// Whether node `k` is claimed by a reservation this task ends before.
    fn prefers(&self, k: NodeKey) -> bool {
        self.ended_before().any(|r| r.claims(k))
    }

    /// Whether a search over the indexes must pass node `k` over (a reservation the task
    /// outlasts claims it; it is tried after, with what the claims leave).
    fn avoids(&self, k: NodeKey) -> bool {
        self.outlasted().any(|r| r.claims(k))
    }
}

/// What `need` and `slots` get on a node with `free_slots` and `avail` free, if they fit.
pub(super) fn fit(
    inv: &NodeInventory,
    free_slots: u32,
    avail: &NodeFree,
    slots: u32,
    need: Option<&Need>,
) -> Option<Grant> {
    if free_slots < slots {
        return None;
    }
    match need {
        None => Some(Grant::default()),
        Some(need) if !avail.could_fit(inv, need) => None,
        Some(need) => pick(inv, avail, need),
    }
}

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
    /// `shape` (its first task `task`) on the nodes its reservation `claims`, when it fits
    /// there now beside the other reservations (`room`): for a task whose search gave up at
    /// its bound before reaching them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn place_on_claims(
        p: &PoolState,
        pool: PoolKey,
        task: TaskKey,
        shape: &Shape,
        need: Option<&Need>,
        claims: &[NodeKey],
        nodes: &KeyMap<NodeKey, NodeState>,
        room: &Room,
    ) -> Option<super::Decision> {
        let all = p.slots_per_node;
        let Some(n) = shape.gang else {
            return claims.iter().find_map(|&k| {
                let grant = Self::place_on(pool, k, nodes.get(&k)?, task, shape, need, all, room)?;
                Some(super::Decision::Start { task, node: k, grant })
            });
        };
        let need = need.unwrap_or(&WHOLE_NODE);
        let least = if need.whole { all } else { shape.slots.max(1) };
        let gang: Vec<(NodeKey, Grant)> = claims
            .iter()
            .map(|&k| {
                let node = nodes.get(&k).filter(|node| !node.excludes(task))?;
                room.fit_on(k, node, least, Some(need)).map(|g| (k, g))
            })
            .collect::<Option<_>>()?;
        (gang.len() == n as usize).then_some(super::Decision::StartGang { task, nodes: gang })
    }

    /// A one-node `shape` (its first task `task`) on node `n` (key `k`) of `pool`, if it fits
    /// there now. The counts are tested before the node's holdings are looked up: most shapes
    /// a freed node is tried for do not fit it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn place_on(
        pool: PoolKey,
        k: NodeKey,
        n: &NodeState,
        task: TaskKey,
        shape: &Shape,
        need: Option<&Need>,
        all_slots: u32,
        room: &Room,
    ) -> Option<Grant> {
        let slots = if need.is_some_and(|x| x.whole) { all_slots } else { shape.slots };
        if n.pool != pool || n.index_key().is_none() || n.free < slots {
            return None;
        }
        if need.is_some_and(|need| !n.avail.could_fit(&n.inventory, need)) || n.excludes(task) {
            return None;
        }
        room.fit_on(k, n, slots, need)
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
        room: &Room,
    ) -> Found<(NodeKey, Grant)> {
        if slots > max_free {
            return Found::NoFit;
        }
        let whole_slots = if need.is_some_and(|n| n.whole) { p.slots_per_node } else { slots };
        let usable = |k: NodeKey| {
            let n = nodes.get(&k).filter(|n| n.index_key().is_some() && !n.excludes(task))?;
            room.fit_on(k, n, whole_slots, need).map(|g| (k, g))
        };
        // What a reservation claims goes first to a task that gives it back in time.
        if let Some(found) = room.first().find_map(usable) {
            return Found::Placed(found);
        }
        let found = Self::search_one(p, task, slots, need, nodes, room);
        // A claimed node passed over is tried with what the claim leaves.
        match found {
            Found::Placed(_) | Found::NoFit => found,
            Found::GaveUp => room
                .outlasted()
                .flat_map(|r| r.claims.iter().copied())
                .find_map(usable)
                .map_or(Found::GaveUp, Found::Placed),
        }
    }

    /// [`Scheduler::place_one`]'s search of the pool's indexes.
    fn search_one(
        p: &PoolState,
        task: TaskKey,
        slots: u32,
        need: Option<&Need>,
        nodes: &KeyMap<NodeKey, NodeState>,
        room: &Room,
    ) -> Found<(NodeKey, Grant)> {
        let mut passed_over = false;
        let mut free_of = |k: &NodeKey| {
            let skip = nodes[k].excludes(task) || room.avoids(*k);
            passed_over |= skip;
            !skip
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
        room: &Room,
    ) -> Found<Vec<(NodeKey, Grant)>> {
        let need = need.unwrap_or(&WHOLE_NODE);
        if n == 0 {
            return Found::NoFit;
        }
        let least = if need.whole { p.slots_per_node } else { slots.max(1) };
        // Nodes still held by the task's previous attempt are passed over (and then a miss is
        // not final: they come back when it reports).
        let passed_over = std::cell::Cell::new(false);
        let place = |k: NodeKey| {
            let node = &nodes[&k];
            if node.excludes(task) {
                passed_over.set(true);
                return None;
            }
            let found = room.fit_on(k, node, least, Some(need)).map(|g| (k, g));
            if found.is_none() && room.avoids(k) {
                passed_over.set(true);
            }
            found
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
        let candidates = p.free.range((least, 0)..);
        if candidates.clone().nth(n as usize - 1).is_none() {
            // Too few nodes have the slots free.
            return Found::NoFit;
        }
        // Whole nodes are all at the top of the index, in key order: unless claimed nodes go
        // first, the first that fit are the lowest keys.
        let enough = if need.whole && room.ended_before().next().is_none() { n as usize } else { usize::MAX };
        let mut fits = Vec::with_capacity(n as usize);
        for &(_, k) in candidates {
            if let Some(found) = place(k) {
                fits.push(found);
                if fits.len() == enough {
                    break;
                }
            }
        }
        if fits.len() < n as usize {
            return if passed_over.get() { Found::GaveUp } else { Found::NoFit };
        }
        // The lowest keys, those a reservation claims first for a task that ends before it.
        fits.sort_by_key(|(k, _)| (!room.prefers(*k), *k));
        fits.truncate(n as usize);
        Found::Placed(fits)
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

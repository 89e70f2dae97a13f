//! The scheduler core: a sans-I/O state machine, events in, decisions out.
//!
//! It knows pools (slots per node, fill type), nodes (free slots, and what of their cores,
//! memory and GPUs is in no live allocation), the queue of runnable tasks, and what every
//! running task holds on each node; it never touches sockets, files or clocks. The head feeds it
//! events and carries out the [`Decision`]s; tests and the benchmark drive it directly.
//!
//! Resources: a task asks for slots (Azure's `taskSlotsPerNode` count) and, optionally, a
//! [`Need`] per node (CPUs, memory, GPUs, or the whole node). The scheduler picks the concrete
//! cores, memory and GPUs ([`gangway_topology::alloc::pick`]) and keeps them in the node's
//! holdings until the task releases that node: no core or GPU is in two live allocations and
//! memory is never over-committed. A multi-instance task without a need takes whole idle nodes.
//!
//! Policy: within a pool, tasks run in order of job priority (higher first), then job
//! creation order, then task submission order. A task that fits no node right now does not
//! hold up smaller tasks behind it, but the look-past is bounded ([`MAX_LOOKAHEAD`]), and so
//! is the number of nodes a need is tried on ([`MAX_PROBES`]), so a pass costs
//! O(decisions × (log nodes + probes × node size)), never a scan of the whole queue.

mod queue;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use gangway_topology::alloc::{pick, Grant, Need, NodeFree, NodeInventory};
use queue::Queue;
pub use queue::QueueKey;

/// A pool, as the scheduler numbers it.
pub type PoolKey = u32;
/// A node, as the scheduler numbers it.
pub type NodeKey = u32;
/// A task, as the scheduler numbers it (unique for the head's lifetime).
pub type TaskKey = u64;

/// How a pool places tasks on nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The node with the most free slots (or, for a need, the most free cores).
    Spread,
    /// The node with the fewest free slots (or cores) that still fits.
    Pack,
}

/// What a task still holds on a node when it comes back: its slots and its grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The task.
    pub task: TaskKey,
    /// Its slots there.
    pub slots: u32,
    /// Its cores, memory and GPUs there.
    pub grant: Grant,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A pool exists.
    PoolAdded { pool: PoolKey, slots_per_node: u32, fill: Fill },
    /// A pool is gone (it has no nodes).
    PoolRemoved { pool: PoolKey },
    /// A node joined (or came back) with what it has and what the tasks it still runs hold;
    /// `place` is where the fabric (if any) has it.
    NodeUp {
        node: NodeKey,
        pool: PoolKey,
        inventory: Arc<NodeInventory>,
        held: Vec<Held>,
        schedulable: bool,
        place: Option<u32>,
    },
    /// A node went away; its tasks are the head's business (and what they held is forgotten).
    NodeDown { node: NodeKey },
    /// A node's scheduling state changed.
    NodeSchedulable { node: NodeKey, schedulable: bool },
    /// A task became runnable: `slots` and `need` on one node, or (with `gang`) on that many
    /// nodes at once (whole idle nodes when it has no need).
    TaskQueued { task: TaskKey, pool: PoolKey, order: QueueKey, slots: u32, need: Option<Need>, gang: Option<u32> },
    /// A queued task will not run after all (terminated, job deleted).
    TaskWithdrawn { task: TaskKey },
    /// A running task gave back what it held on `node` (a second release is a no-op).
    TaskReleased { task: TaskKey, node: NodeKey },
}

/// What the head must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start `task` on `node` (its slots and `grant` are now taken).
    Start { task: TaskKey, node: NodeKey, grant: Grant },
    /// Start one instance of `task` on each of `nodes`, in instance order (each node's slots
    /// and grant are taken).
    StartGang { task: TaskKey, nodes: Vec<(NodeKey, Grant)> },
}

/// How far past an unplaceable task a pass looks for smaller ones.
pub const MAX_LOOKAHEAD: usize = 64;

/// How many nodes a task with a need is tried on before it counts as not fitting now.
pub const MAX_PROBES: usize = 64;

#[derive(Debug)]
struct PoolState {
    slots_per_node: u32,
    fill: Fill,
    queue: Queue,
    /// (free slots, node) for schedulable nodes with at least one free slot.
    free: BTreeSet<(u32, NodeKey)>,
    /// (free cores, node) for the same nodes.
    by_cores: BTreeSet<(u32, NodeKey)>,
    /// The most threads per core of its nodes (a need's fewest possible cores).
    max_threads: u32,
}

impl PoolState {
    fn unindex(&mut self, node: NodeKey, n: &NodeState) {
        self.free.remove(&(n.free, node));
        self.by_cores.remove(&(n.avail.free_cores(), node));
    }

    fn index(&mut self, node: NodeKey, n: &NodeState) {
        if n.schedulable && n.free > 0 {
            self.free.insert((n.free, node));
            self.by_cores.insert((n.avail.free_cores(), node));
        }
    }
}

#[derive(Debug)]
struct NodeState {
    pool: PoolKey,
    free: u32,
    schedulable: bool,
    /// Its node id in the fabric.
    place: Option<u32>,
    inventory: Arc<NodeInventory>,
    avail: NodeFree,
    /// What each task running here holds.
    held: HashMap<TaskKey, (u32, Grant)>,
}

/// The scheduler core.
#[derive(Debug, Default)]
pub struct Scheduler {
    pools: HashMap<PoolKey, PoolState>,
    nodes: HashMap<NodeKey, NodeState>,
    queued: HashMap<TaskKey, (PoolKey, QueueKey)>,
    /// Needs by shape: a queue entry names its need by number, so it stays small and `Copy`.
    needs: Vec<Need>,
    need_ids: HashMap<Need, u32>,
    /// The switch tree gangs are placed on (fewest switches between their nodes).
    fabric: Option<Arc<gangway_topology::fabric::Fabric>>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Places gangs on `fabric`: nodes under the lowest common switch, on the fewest leaves.
    pub fn with_fabric(fabric: Arc<gangway_topology::fabric::Fabric>) -> Scheduler {
        Scheduler { fabric: Some(fabric), ..Scheduler::default() }
    }

    /// Applies `ev` and appends the decisions it makes possible to `out`.
    pub fn on_event(&mut self, ev: Event, out: &mut Vec<Decision>) {
        match ev {
            Event::PoolAdded { pool, slots_per_node, fill } => {
                let p = PoolState {
                    slots_per_node,
                    fill,
                    queue: Queue::default(),
                    free: BTreeSet::new(),
                    by_cores: BTreeSet::new(),
                    max_threads: 1,
                };
                self.pools.insert(pool, p);
            }
            Event::PoolRemoved { pool } => {
                if let Some(p) = self.pools.remove(&pool) {
                    for (_, task) in p.queue.iter() {
                        self.queued.remove(&task.task);
                    }
                }
            }
            Event::NodeUp { node, pool, inventory, held, schedulable, place } => {
                self.remove_node(node);
                let Some(p) = self.pools.get_mut(&pool) else { return };
                let mut avail = inventory.all_free();
                let mut holdings = HashMap::with_capacity(held.len());
                let mut used = 0u32;
                for h in held {
                    // A grant that overlaps another cannot come from this scheduler; keep
                    // the first and let the second hold its slots only.
                    let grant = if avail.take(&inventory, &h.grant) { h.grant } else { Grant::default() };
                    used = used.saturating_add(h.slots);
                    holdings.insert(h.task, (h.slots, grant));
                }
                p.max_threads = p.max_threads.max(inventory.threads_per_core());
                let free = p.slots_per_node.saturating_sub(used);
                let n = NodeState { pool, free, schedulable, place, inventory, avail, held: holdings };
                p.index(node, &n);
                self.nodes.insert(node, n);
                self.schedule_pool(pool, out);
            }
            Event::NodeDown { node } => self.remove_node(node),
            Event::NodeSchedulable { node, schedulable } => {
                let Some(n) = self.nodes.get_mut(&node) else { return };
                let pool = n.pool;
                let p = self.pools.get_mut(&pool).expect("a node's pool exists");
                p.unindex(node, n);
                n.schedulable = schedulable;
                p.index(node, n);
                self.schedule_pool(pool, out);
            }
            Event::TaskQueued { task, pool, order, slots, need, gang } => {
                let Some(p) = self.pools.get_mut(&pool) else { return };
                let need = need.map(|n| {
                    let next = self.needs.len() as u32;
                    *self.need_ids.entry(n).or_insert_with_key(|n| {
                        self.needs.push(n.clone());
                        next
                    })
                });
                p.queue.push(order, task, slots, need, gang);
                self.queued.insert(task, (pool, order));
                self.schedule_pool(pool, out);
            }
            Event::TaskWithdrawn { task } => {
                if let Some((pool, order)) = self.queued.remove(&task) {
                    if let Some(p) = self.pools.get_mut(&pool) {
                        p.queue.remove(order);
                    }
                }
            }
            Event::TaskReleased { task, node } => {
                let Some(n) = self.nodes.get_mut(&node) else { return };
                let Some((slots, grant)) = n.held.remove(&task) else { return };
                let pool = n.pool;
                let p = self.pools.get_mut(&pool).expect("a node's pool exists");
                p.unindex(node, n);
                n.free = (n.free + slots).min(p.slots_per_node);
                n.avail.give_back(&n.inventory, &grant);
                p.index(node, n);
                self.schedule_pool(pool, out);
            }
        }
    }

    /// Tasks waiting in the queue of `pool`.
    pub fn queued_len(&self, pool: PoolKey) -> usize {
        self.pools.get(&pool).map_or(0, |p| p.queue.len())
    }

    /// Free slots on `node`.
    pub fn free_slots(&self, node: NodeKey) -> Option<u32> {
        self.nodes.get(&node).map(|n| n.free)
    }

    /// What of `node`'s cores, memory and GPUs is in no live allocation.
    pub fn free_resources(&self, node: NodeKey) -> Option<&NodeFree> {
        self.nodes.get(&node).map(|n| &n.avail)
    }

    /// Whether `slots` could ever fit a node of `pool`.
    pub fn fits_pool(&self, pool: PoolKey, slots: u32) -> bool {
        self.pools.get(&pool).is_some_and(|p| slots <= p.slots_per_node)
    }

    fn remove_node(&mut self, node: NodeKey) {
        if let Some(n) = self.nodes.remove(&node) {
            if let Some(p) = self.pools.get_mut(&n.pool) {
                p.unindex(node, &n);
            }
        }
    }

    fn schedule_pool(&mut self, pool: PoolKey, out: &mut Vec<Decision>) {
        let Some(p) = self.pools.get_mut(&pool) else { return };
        let mut cursor = None;
        let mut skipped = 0;
        while let Some(&(max_free, _)) = p.free.last() {
            let Some((order, entry)) = p.queue.next_after(cursor) else { break };
            let need = entry.need.map(|i| &self.needs[i as usize]);
            let placed = match entry.gang {
                Some(n) => Self::place_gang(p, n, entry.slots, need, &self.nodes, self.fabric.as_deref())
                    .map(|nodes| Decision::StartGang { task: entry.task, nodes }),
                None => Self::place_one(p, entry.slots, need, max_free, &self.nodes)
                    .map(|(node, grant)| Decision::Start { task: entry.task, node, grant }),
            };
            let Some(decision) = placed else {
                skipped += 1;
                if skipped >= MAX_LOOKAHEAD {
                    break;
                }
                cursor = Some(order);
                continue;
            };
            p.queue.remove(order);
            self.queued.remove(&entry.task);
            // A whole-node share takes every slot as well.
            let whole = entry.need.is_none_or(|i| self.needs[i as usize].whole);
            let all = p.slots_per_node;
            let slots = |gang: bool| if whole && (gang || entry.need.is_some()) { all } else { entry.slots };
            match &decision {
                Decision::Start { task, node, grant } => {
                    Self::hold(p, &mut self.nodes, *node, *task, slots(false), grant)
                }
                Decision::StartGang { task, nodes } => {
                    for (node, grant) in nodes {
                        Self::hold(p, &mut self.nodes, *node, *task, slots(true), grant);
                    }
                }
            }
            out.push(decision);
        }
    }

    /// Takes `slots` and `grant` on `node` for `task`.
    fn hold(
        p: &mut PoolState,
        nodes: &mut HashMap<NodeKey, NodeState>,
        node: NodeKey,
        task: TaskKey,
        slots: u32,
        grant: &Grant,
    ) {
        let n = nodes.get_mut(&node).expect("placed on a known node");
        p.unindex(node, n);
        n.free -= slots.min(n.free);
        let taken = n.avail.take(&n.inventory, grant);
        debug_assert!(taken, "a placement only picks what is free");
        n.held.insert(task, (slots, grant.clone()));
        p.index(node, n);
    }

    /// The node `slots` (and `need`) go to, as the pool's fill type says, and what it gives.
    fn place_one(
        p: &PoolState,
        slots: u32,
        need: Option<&Need>,
        max_free: u32,
        nodes: &HashMap<NodeKey, NodeState>,
    ) -> Option<(NodeKey, Grant)> {
        if slots > max_free {
            return None;
        }
        let Some(need) = need else {
            let (_, node) = match p.fill {
                // Most free slots; among equals the lowest node key, for determinism.
                Fill::Spread => p.free.range((max_free, 0)..).next().copied(),
                Fill::Pack => p.free.range((slots, 0)..).next().copied(),
            }?;
            return Some((node, Grant::default()));
        };
        if need.whole {
            let idle = p.free.range((p.slots_per_node, 0)..).map(|&(_, k)| k);
            return idle.take(MAX_PROBES).find_map(|k| {
                let n = &nodes[&k];
                pick(&n.inventory, &n.avail, need).map(|g| (k, g))
            });
        }
        let least = need.cpus.div_ceil(p.max_threads.max(1)).max(need.cores);
        let fits = |&(_, k): &(u32, NodeKey)| {
            let n = &nodes[&k];
            if n.free < slots {
                return None;
            }
            pick(&n.inventory, &n.avail, need).map(|g| (k, g))
        };
        match p.fill {
            // Most free cores first, lowest key among equals.
            Fill::Spread => {
                let mut it = p.by_cores.range((least, 0)..).rev().peekable();
                let mut probes = 0;
                while let Some(&(cores, _)) = it.peek() {
                    // Lowest key among the nodes with this many free cores.
                    let mut same: Vec<(u32, NodeKey)> = Vec::new();
                    while let Some(e) = it.next_if(|e| e.0 == *cores) {
                        same.push(*e);
                    }
                    for e in same.iter().rev() {
                        if let Some(found) = fits(e) {
                            return Some(found);
                        }
                        probes += 1;
                        if probes >= MAX_PROBES {
                            return None;
                        }
                    }
                }
                None
            }
            Fill::Pack => p.by_cores.range((least, 0)..).take(MAX_PROBES).find_map(fits),
        }
    }

    /// `n` nodes at once, each with `slots` free and `need` met (with no need: whole idle
    /// nodes): on the fabric, the best gang `select_gang` finds among them; without one (or
    /// for nodes it does not list), lowest keys first.
    fn place_gang(
        p: &PoolState,
        n: u32,
        slots: u32,
        need: Option<&Need>,
        nodes: &HashMap<NodeKey, NodeState>,
        fabric: Option<&gangway_topology::fabric::Fabric>,
    ) -> Option<Vec<(NodeKey, Grant)>> {
        const WHOLE: Need =
            Need { cpus: 0, cores: 0, memory_mib: 0, all_memory: false, gpus: 0, gpu_type: None, whole: true };
        let need = need.unwrap_or(&WHOLE);
        let least = if need.whole { p.slots_per_node } else { slots.max(1) };
        let mut fit: Vec<(NodeKey, Grant)> = p
            .free
            .range((least, 0)..)
            .filter_map(|&(_, k)| {
                let node = &nodes[&k];
                pick(&node.inventory, &node.avail, need).map(|g| (k, g))
            })
            .collect();
        if fit.len() < n as usize || n == 0 {
            return None;
        }
        fit.sort_by_key(|(k, _)| *k);
        let keys: Vec<NodeKey> = fit.iter().map(|(k, _)| *k).collect();
        let chosen: Vec<NodeKey> = match fabric {
            Some(f) if keys.iter().all(|k| nodes[k].place.is_some()) => gang_on_fabric(f, &keys, n, nodes)?,
            _ => keys.into_iter().take(n as usize).collect(),
        };
        let mut grants: HashMap<NodeKey, Grant> = fit.into_iter().collect();
        Some(chosen.into_iter().map(|k| (k, grants.remove(&k).expect("chosen among those that fit"))).collect())
    }

    /// Nodes of `pool` that could ever hold a gang instance (every node, busy or not).
    pub fn pool_node_count(&self, pool: PoolKey) -> usize {
        self.nodes.values().filter(|n| n.pool == pool).count()
    }
}

/// The gang `select_gang` picks among `idle` nodes on `fabric`. Builds the free index for this
/// decision (O(fabric nodes)); gangs are rare next to single tasks, so this is not kept
/// incrementally here (the topology crate's `FreeIndex` can be, when that matters).
fn gang_on_fabric(
    fabric: &gangway_topology::fabric::Fabric,
    idle: &[NodeKey],
    n: u32,
    nodes: &HashMap<NodeKey, NodeState>,
) -> Option<Vec<NodeKey>> {
    use gangway_topology::fabric::NodeId;
    use gangway_topology::gang::{select_gang, FreeIndex, GangRequest, NodeNeed, NodeSpec, Resources};
    let size = fabric.node_count() as usize;
    let one = Resources::new(1, 0, 0);
    let specs = vec![NodeSpec { capacity: one, features: Vec::new() }; size];
    let mut free = vec![Resources::ZERO; size];
    let mut by_place = HashMap::new();
    for k in idle {
        let place = nodes[k].place? as usize;
        if place < size {
            free[place] = one;
            by_place.insert(place as u32, *k);
        }
    }
    let index = FreeIndex::with_free(fabric, &specs, &free).ok()?;
    let req = GangRequest {
        nodes: n,
        per_node: NodeNeed { resources: one, exclusive: true, ..Default::default() },
        max_leaves: None,
    };
    let gang = select_gang(fabric, &index, &req)?;
    gang.nodes().iter().map(|NodeId(id)| by_place.get(id).copied()).collect()
}

#[cfg(test)]
mod tests;

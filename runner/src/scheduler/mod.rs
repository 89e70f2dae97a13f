//! The scheduler core: a sans-I/O state machine, events in, decisions out.
//!
//! It knows pools (slots per node, fill type), nodes (free slots, whether they take work) and
//! the queue of runnable tasks; it never touches sockets, files or clocks. The head feeds it
//! events and carries out the [`Decision`]s; tests and the benchmark drive it directly.
//!
//! Policy: within a pool, tasks run in order of job priority (higher first), then job
//! creation order, then task submission order. A task that fits no node right now does not
//! hold up smaller tasks behind it, but the look-past is bounded ([`MAX_LOOKAHEAD`]) so a pass
//! costs O(decisions × log nodes), never a scan of the whole queue.

mod queue;

use std::collections::{BTreeSet, HashMap};

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
    /// The node with the most free slots.
    Spread,
    /// The node with the fewest free slots that still fits.
    Pack,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A pool exists.
    PoolAdded { pool: PoolKey, slots_per_node: u32, fill: Fill },
    /// A pool is gone (it has no nodes).
    PoolRemoved { pool: PoolKey },
    /// A node joined (or came back) with `used` slots already taken by tasks it still runs;
    /// `place` is where the fabric (if any) has it.
    NodeUp { node: NodeKey, pool: PoolKey, used: u32, schedulable: bool, place: Option<u32> },
    /// A node went away; its tasks are the head's business.
    NodeDown { node: NodeKey },
    /// A node's scheduling state changed.
    NodeSchedulable { node: NodeKey, schedulable: bool },
    /// A task became runnable: `slots` on one node, or (with `gang`) that many whole idle nodes.
    TaskQueued { task: TaskKey, pool: PoolKey, order: QueueKey, slots: u32, gang: Option<u32> },
    /// A queued task will not run after all (terminated, job deleted).
    TaskWithdrawn { task: TaskKey },
    /// A running task released its slots.
    TaskReleased { node: NodeKey, slots: u32 },
}

/// What the head must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start `task` on `node` (its slots are now taken).
    Start { task: TaskKey, node: NodeKey },
    /// Start one instance of `task` on each of `nodes`, in instance order (all their slots are taken).
    StartGang { task: TaskKey, nodes: Vec<NodeKey> },
}

/// How far past an unplaceable task a pass looks for smaller ones.
pub const MAX_LOOKAHEAD: usize = 64;

#[derive(Debug)]
struct PoolState {
    slots_per_node: u32,
    fill: Fill,
    queue: Queue,
    /// (free slots, node) for schedulable nodes with at least one free slot.
    free: BTreeSet<(u32, NodeKey)>,
}

#[derive(Debug)]
struct NodeState {
    pool: PoolKey,
    free: u32,
    schedulable: bool,
    /// Its node id in the fabric.
    place: Option<u32>,
}

/// The scheduler core.
#[derive(Debug, Default)]
pub struct Scheduler {
    pools: HashMap<PoolKey, PoolState>,
    nodes: HashMap<NodeKey, NodeState>,
    queued: HashMap<TaskKey, (PoolKey, QueueKey)>,
    /// The switch tree gangs are placed on (fewest switches between their nodes).
    fabric: Option<std::sync::Arc<gangway_topology::fabric::Fabric>>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Places gangs on `fabric`: nodes under the lowest common switch, on the fewest leaves.
    pub fn with_fabric(fabric: std::sync::Arc<gangway_topology::fabric::Fabric>) -> Scheduler {
        Scheduler { fabric: Some(fabric), ..Scheduler::default() }
    }

    /// Applies `ev` and appends the decisions it makes possible to `out`.
    pub fn on_event(&mut self, ev: Event, out: &mut Vec<Decision>) {
        match ev {
            Event::PoolAdded { pool, slots_per_node, fill } => {
                self.pools
                    .insert(pool, PoolState { slots_per_node, fill, queue: Queue::default(), free: BTreeSet::new() });
            }
            Event::PoolRemoved { pool } => {
                if let Some(p) = self.pools.remove(&pool) {
                    for (_, task) in p.queue.iter() {
                        self.queued.remove(&task.task);
                    }
                }
            }
            Event::NodeUp { node, pool, used, schedulable, place } => {
                self.remove_node(node);
                let Some(p) = self.pools.get_mut(&pool) else { return };
                let free = p.slots_per_node.saturating_sub(used);
                self.nodes.insert(node, NodeState { pool, free, schedulable, place });
                if schedulable && free > 0 {
                    p.free.insert((free, node));
                }
                self.schedule_pool(pool, out);
            }
            Event::NodeDown { node } => self.remove_node(node),
            Event::NodeSchedulable { node, schedulable } => {
                let Some(n) = self.nodes.get_mut(&node) else { return };
                let pool = n.pool;
                let p = self.pools.get_mut(&pool).expect("a node's pool exists");
                p.free.remove(&(n.free, node));
                n.schedulable = schedulable;
                if schedulable && n.free > 0 {
                    p.free.insert((n.free, node));
                }
                self.schedule_pool(pool, out);
            }
            Event::TaskQueued { task, pool, order, slots, gang } => {
                let Some(p) = self.pools.get_mut(&pool) else { return };
                p.queue.push(order, task, slots, gang);
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
            Event::TaskReleased { node, slots } => {
                let Some(n) = self.nodes.get_mut(&node) else { return };
                let pool = n.pool;
                let p = self.pools.get_mut(&pool).expect("a node's pool exists");
                p.free.remove(&(n.free, node));
                n.free = (n.free + slots).min(p.slots_per_node);
                if n.schedulable && n.free > 0 {
                    p.free.insert((n.free, node));
                }
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

    /// Whether `slots` could ever fit a node of `pool`.
    pub fn fits_pool(&self, pool: PoolKey, slots: u32) -> bool {
        self.pools.get(&pool).is_some_and(|p| slots <= p.slots_per_node)
    }

    fn remove_node(&mut self, node: NodeKey) {
        if let Some(n) = self.nodes.remove(&node) {
            if let Some(p) = self.pools.get_mut(&n.pool) {
                p.free.remove(&(n.free, node));
            }
        }
    }

    fn schedule_pool(&mut self, pool: PoolKey, out: &mut Vec<Decision>) {
        let Some(p) = self.pools.get_mut(&pool) else { return };
        let mut cursor = None;
        let mut skipped = 0;
        while let Some(&(max_free, _)) = p.free.last() {
            let Some((order, entry)) = p.queue.next_after(cursor) else { break };
            let placed = match entry.gang {
                Some(n) => Self::place_gang(p, n, &mut self.nodes, self.fabric.as_deref())
                    .map(|nodes| Decision::StartGang { task: entry.task, nodes }),
                None => Self::place_one(p, entry.slots, max_free, &mut self.nodes)
                    .map(|node| Decision::Start { task: entry.task, node }),
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
            out.push(decision);
        }
    }

    /// Takes `slots` on one node as the pool's fill type says.
    fn place_one(
        p: &mut PoolState,
        slots: u32,
        max_free: u32,
        nodes: &mut HashMap<NodeKey, NodeState>,
    ) -> Option<NodeKey> {
        if slots > max_free {
            return None;
        }
        let (free, node) = match p.fill {
            // Most free slots; among equals the lowest node key, for determinism.
            Fill::Spread => p.free.range((max_free, 0)..).next().copied(),
            Fill::Pack => p.free.range((slots, 0)..).next().copied(),
        }?;
        p.free.remove(&(free, node));
        let left = free - slots;
        if left > 0 {
            p.free.insert((left, node));
        }
        nodes.get_mut(&node).expect("free index holds known nodes").free = left;
        Some(node)
    }

    /// Takes `n` whole idle nodes (every slot free): on the fabric, the best gang
    /// `select_gang` finds among them; without one (or for nodes it does not list), lowest keys first.
    fn place_gang(
        p: &mut PoolState,
        n: u32,
        nodes: &mut HashMap<NodeKey, NodeState>,
        fabric: Option<&gangway_topology::fabric::Fabric>,
    ) -> Option<Vec<NodeKey>> {
        let whole = p.slots_per_node;
        let idle: Vec<NodeKey> = p.free.range((whole, 0)..).map(|&(_, node)| node).collect();
        if idle.len() < n as usize || n == 0 {
            return None;
        }
        let chosen = match fabric {
            Some(f) if idle.iter().all(|k| nodes[k].place.is_some()) => gang_on_fabric(f, &idle, n, nodes)?,
            _ => idle.into_iter().take(n as usize).collect(),
        };
        for node in &chosen {
            p.free.remove(&(whole, *node));
            nodes.get_mut(node).expect("free index holds known nodes").free = 0;
        }
        Some(chosen)
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

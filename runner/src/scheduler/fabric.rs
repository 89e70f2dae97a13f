//! A pool's view of the fabric for gangs: what each of its nodes has free, as the topology
//! crate's [`FreeIndex`] (aggregates per switch), kept current on every take and release
//! (O(depth) each) so a gang decision reads it instead of rebuilding it. It is rebuilt, in
//! O(fabric nodes), only after the pool's membership changed (a node joined or left).

use std::collections::HashMap;

use gangway_topology::fabric::{Fabric, NodeId};
use gangway_topology::gang::{select_gang, FreeIndex, GangRequest, NodeSpec, Resources};

use super::{NodeKey, NodeState, PoolKey};

/// What the index counts of a node: its capacity, or what it has free for a gang now (nothing
/// while it takes no tasks).
pub(super) fn capacity(n: &NodeState) -> Resources {
    let inv = &n.inventory;
    Resources::new(inv.cores.len() as u32, inv.gpus.len() as u32, inv.memory_mib << 20)
}

pub(super) fn free(n: &NodeState) -> Resources {
    if n.index_key().is_none() {
        return Resources::ZERO;
    }
    Resources::new(n.avail.free_cores(), n.avail.free_gpus(), n.avail.memory_mib() << 20)
}

/// The index of one pool, or nothing until the next gang decision rebuilds it.
#[derive(Debug, Default)]
pub(super) struct PoolFabric {
    index: Option<FreeIndex>,
    /// Fabric node id → the pool's node there.
    members: HashMap<u32, NodeKey>,
}

impl PoolFabric {
    /// Whether the index exists (a failed rebuild leaves none: gangs then go by node order).
    pub fn is_built(&self) -> bool {
        self.index.is_some()
    }

    /// The pool's nodes changed: rebuild before the next decision.
    pub fn invalidate(&mut self) {
        self.index = None;
    }

    /// `n` (at `place`) now has this free.
    pub fn update(&mut self, place: Option<u32>, n: &NodeState) {
        let (Some(index), Some(place)) = (self.index.as_mut(), place) else { return };
        if index.set_node(NodeId(place), free(n)).is_err() {
            self.index = None;
        }
    }

    /// The nodes `select_gang` picks for `req` among the pool's, by what they have free (the
    /// caller still places the need on each; a GPU type or NUMA shape may not fit).
    pub fn select(
        &mut self,
        fabric: &Fabric,
        pool: PoolKey,
        nodes: &super::keys::KeyMap<NodeKey, NodeState>,
        req: &GangRequest,
    ) -> Option<Vec<NodeKey>> {
        if self.index.is_none() {
            self.rebuild(fabric, pool, nodes);
        }
        let gang = select_gang(fabric, self.index.as_ref()?, req)?;
        gang.nodes().iter().map(|NodeId(id)| self.members.get(id).copied()).collect()
    }

    fn rebuild(&mut self, fabric: &Fabric, pool: PoolKey, nodes: &super::keys::KeyMap<NodeKey, NodeState>) {
        let size = fabric.node_count() as usize;
        let mut specs = vec![NodeSpec::default(); size];
        let mut free_now = vec![Resources::ZERO; size];
        self.members.clear();
        for (k, n) in nodes.iter().filter(|(_, n)| n.pool == pool) {
            let Some(place) = n.place.filter(|p| (*p as usize) < size) else { continue };
            specs[place as usize].capacity = capacity(n);
            free_now[place as usize] = free(n);
            self.members.insert(place, *k);
        }
        self.index = FreeIndex::with_free(fabric, &specs, &free_now).ok();
    }
}

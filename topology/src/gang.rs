//! Gang selection: choosing the N nodes of one allocation on a [`Fabric`].
//!
//! [`select_gang`] picks nodes that each meet a per-node need, preferring, in this order:
//! 1. the lowest common switch (one leaf if possible, else one switch of level 1, …);
//! 2. the fewest leaf switches under it;
//! 3. best fit: among equally good switches the one with the fewest eligible nodes, and below it
//!    the leaves with the fewest eligible nodes that still complete the gang, so that large free
//!    blocks stay whole; within the last leaf, nodes already partly used go first.
//!
//! `max_leaves` (Slurm's `--switches=N`) is a hard limit: no gang rather than more leaves.
//! Criteria 1 and 2 are exact (property tests compare them with a brute-force optimum); 3 is a
//! greedy rule.
//!
//! The decision reads a [`FreeIndex`] that keeps, on every switch, counts of eligible free nodes
//! per node class and the maxima of what partly used nodes have free (Fluxion's pruning filters):
//! subtrees that cannot help are skipped without looking at their nodes.
//!
//! Work per [`select_gang`] call, with S switches, L leaves, C node classes and P nodes per leaf:
//! - O(S·C) to count eligible nodes per leaf, skipping subtrees that cannot help, plus O(P) per
//!   leaf that holds partly used nodes whose free maxima fit the need (only those are scanned);
//! - O(L log L) per level climbed to find the lowest switch and its fewest leaves (switches of
//!   one level cover disjoint leaves), and O(L + k²) for the k leaves chosen;
//! - O(k·P) to read the nodes off the chosen leaves.
//!
//! There is no search beyond that: the cost is bounded by the fabric's size, never by the number
//! of possible gangs.
//!
//! Keeping the index current: [`FreeIndex::set_node`] costs O(depth) for the counts, plus
//! O(P + fanouts on the path) when a partly used node that held a maximum changes;
//! [`FreeIndex::allocate`] and [`FreeIndex::release`] of g nodes cost O(g·depth), plus O(P) per
//! leaf with partly used nodes among them and O(fanout) per switch above whose maxima change.

mod explain;
mod index;
mod select;

pub use explain::explain_unsatisfiable;
pub use index::{FreeIndex, IndexError};
pub use select::select_gang;

use crate::fabric::{Fabric, NodeId, SwitchId};

/// Amounts of the consumable resources of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Cores.
    pub cores: u32,
    /// GPUs.
    pub gpus: u32,
    /// Memory.
    pub memory_bytes: u64,
}

impl Resources {
    /// Nothing.
    pub const ZERO: Resources = Resources { cores: 0, gpus: 0, memory_bytes: 0 };

    /// The given amounts.
    pub const fn new(cores: u32, gpus: u32, memory_bytes: u64) -> Resources {
        Resources { cores, gpus, memory_bytes }
    }

    /// Whether every amount is at most `other`'s.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.cores <= other.cores && self.gpus <= other.gpus && self.memory_bytes <= other.memory_bytes
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        *self == Resources::ZERO
    }

    pub(crate) fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            cores: self.cores.checked_sub(other.cores)?,
            gpus: self.gpus.checked_sub(other.gpus)?,
            memory_bytes: self.memory_bytes.checked_sub(other.memory_bytes)?,
        })
    }

    pub(crate) fn checked_add(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            cores: self.cores.checked_add(other.cores)?,
            gpus: self.gpus.checked_add(other.gpus)?,
            memory_bytes: self.memory_bytes.checked_add(other.memory_bytes)?,
        })
    }

    /// The larger of each amount.
    pub(crate) fn max(&self, other: &Resources) -> Resources {
        Resources {
            cores: self.cores.max(other.cores),
            gpus: self.gpus.max(other.gpus),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
        }
    }

    /// Whether some amount equals `other`'s (so removing `self` may lower a maximum `other`).
    pub(crate) fn touches(&self, other: &Resources) -> bool {
        self.cores == other.cores || self.gpus == other.gpus || self.memory_bytes == other.memory_bytes
    }
}

/// A set of node features, as bits numbered by a [`FreeIndex`] (see [`FreeIndex::feature_set`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// No feature.
    pub const EMPTY: FeatureSet = FeatureSet(0);

    /// The set with the given bits.
    pub const fn from_bits(bits: u64) -> FeatureSet {
        FeatureSet(bits)
    }
    /// Its bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Whether it holds every feature of `other`.
    pub const fn contains(self, other: FeatureSet) -> bool {
        self.0 & other.0 == other.0
    }
    /// Features in either.
    pub const fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }
    /// Whether it is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a node has, fixed for the life of an index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its resources when idle.
    pub capacity: Resources,
    /// Its features (`ib`, `a100`, …).
    pub features: Vec<String>,
}

/// What each node of a gang must offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeNeed {
    /// Free resources taken on each node.
    pub resources: Resources,
    /// Features each node must have.
    pub features: FeatureSet,
    /// Whole idle nodes only; allocating takes everything they have.
    pub exclusive: bool,
}

/// A request for a gang.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GangRequest {
    /// How many nodes.
    pub nodes: u32,
    /// What each must offer.
    pub per_node: NodeNeed,
    /// At most this many leaf switches (Slurm's `--switches=N`); `None` for no limit.
    pub max_leaves: Option<u32>,
}

/// The nodes of one allocation, with what was taken on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gang {
    nodes: Vec<NodeId>,
    per_node: Resources,
    exclusive: bool,
    top_switch: Option<SwitchId>,
    leaf_count: u32,
}

impl Gang {
    /// A gang of the given nodes (say, one recorded before a restart), sorted by id.
    pub fn new(fabric: &Fabric, mut nodes: Vec<NodeId>, per_node: Resources, exclusive: bool) -> Gang {
        nodes.sort_unstable();
        let top_switch = fabric.lowest_common_switch_of(&nodes);
        let mut leaves: Vec<SwitchId> = nodes.iter().filter_map(|&n| fabric.leaf_of(n)).collect();
        leaves.dedup();
        Gang { nodes, per_node, exclusive, top_switch, leaf_count: leaves.len() as u32 }
    }

    /// Its nodes, in id order (which is the fabric's depth-first order).
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }
    /// What was taken on each node (all of it, if exclusive).
    pub fn per_node(&self) -> Resources {
        self.per_node
    }
    /// Whether whole nodes were taken.
    pub fn exclusive(&self) -> bool {
        self.exclusive
    }
    /// The lowest switch above all its nodes; `None` if they span trees.
    pub fn top_switch(&self) -> Option<SwitchId> {
        self.top_switch
    }
    /// How many leaf switches its nodes hang off.
    pub fn leaf_count(&self) -> u32 {
        self.leaf_count
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;

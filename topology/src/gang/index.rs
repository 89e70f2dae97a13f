//! The free-resource index: per-node free resources, and on every switch what its subtree can
//! offer, kept current one node at a time.
//!
//! Nodes fall into classes by what they have (capacity and features), and each node is idle
//! (everything free), busy (nothing free) or partly used. Per switch and class the index counts
//! nodes, idle nodes and partly used nodes; per switch it keeps the largest free amounts of partly
//! used nodes below it. So for a need, the idle nodes that meet it are counted exactly without
//! looking at them, and partly used nodes are looked at only where the maxima say one may fit.

use std::collections::HashMap;

use super::{FeatureSet, Gang, Resources};
use crate::fabric::{Fabric, NodeId};

const NO_PARENT: u32 = u32::MAX;

/// Why the index refused a change; a refused change changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Specs given for a different number of nodes than the fabric has.
    #[error("{given} node specs for a fabric of {nodes} nodes")]
    SpecCount {
        /// Specs given.
        given: usize,
        /// Nodes in the fabric.
        nodes: u32,
    },
    /// More distinct features than a [`FeatureSet`] holds.
    #[error("more than 64 distinct node features")]
    TooManyFeatures,
    /// More distinct (capacity, features) combinations than the index numbers.
    #[error("more than 65536 distinct kinds of node")]
    TooManyClasses,
    /// A feature no node has.
    #[error("no node has feature `{feature}`")]
    UnknownFeature {
        /// The name.
        feature: String,
    },
    /// A node id beyond the fabric.
    #[error("node {node} is not in the fabric")]
    UnknownNode {
        /// The id.
        node: u32,
    },
    /// A gang naming a node twice.
    #[error("node {node} is in the gang twice")]
    DuplicateNode {
        /// The id.
        node: u32,
    },
    /// Free resources above the node's capacity.
    #[error("node {node} cannot have more free than its capacity")]
    FreeExceedsCapacity {
        /// The id.
        node: u32,
    },
    /// Allocating more than a node has free (or a whole node that is not idle).
    #[error("node {node} does not have the free resources to allocate")]
    NotEnoughFree {
        /// The id.
        node: u32,
    },
    /// Releasing what was not allocated: the node would have more free than its capacity.
    #[error("node {node} does not have those resources allocated")]
    NotAllocated {
        /// The id.
        node: u32,
    },
}

/// Node kind: what a node has when idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NodeClass {
    pub capacity: Resources,
    pub features: FeatureSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    Busy,
    Partial,
    Idle,
}

/// Counts over a subtree and a set of classes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub total: u32,
    pub idle: u32,
    pub partial: u32,
}

/// Free resources per node and their aggregates per switch, for one [`Fabric`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeIndex {
    node_count: u32,
    switch_count: u32,
    feature_names: Vec<String>,
    classes: Vec<NodeClass>,
    node_class: Vec<u16>,
    node_free: Vec<Resources>,
    node_leaf: Vec<u32>,
    switch_parent: Vec<u32>,
    /// Switches `[s, switch_end[s])` are `s` and its subtree (pre-order).
    switch_end: Vec<u32>,
    /// Nodes of each switch's subtree: `[switch_nodes[s].0, switch_nodes[s].1)`.
    switch_nodes: Vec<(u32, u32)>,
    /// Per switch and class, at `s * classes + c`.
    total: Vec<u32>,
    idle: Vec<u32>,
    partial: Vec<u32>,
    /// Per switch: the largest free amounts among partly used nodes below (zero if none).
    partial_max: Vec<Resources>,
}

impl FreeIndex {
    /// An index with every node idle; `specs[i]` describes node `i`.
    pub fn new(fabric: &Fabric, specs: &[super::NodeSpec]) -> Result<FreeIndex, IndexError> {
        let free: Vec<Resources> = specs.iter().map(|s| s.capacity).collect();
        FreeIndex::with_free(fabric, specs, &free)
    }

    /// An index with the same spec on every node, all idle.
    pub fn uniform(fabric: &Fabric, spec: &super::NodeSpec) -> Result<FreeIndex, IndexError> {
        FreeIndex::new(fabric, &vec![spec.clone(); fabric.node_count() as usize])
    }

    /// An index built from scratch with the given free resources per node.
    pub fn with_free(fabric: &Fabric, specs: &[super::NodeSpec], free: &[Resources]) -> Result<FreeIndex, IndexError> {
        let nodes = fabric.node_count();
        for given in [specs.len(), free.len()] {
            if given != nodes as usize {
                return Err(IndexError::SpecCount { given, nodes });
            }
        }
        let mut feature_names: Vec<String> = Vec::new();
        let mut feature_bits: HashMap<&str, u64> = HashMap::new();
        let mut class_ids: HashMap<NodeClass, u16> = HashMap::new();
        let mut classes = Vec::new();
        let mut node_class = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if !free[i].fits_in(&spec.capacity) {
                return Err(IndexError::FreeExceedsCapacity { node: i as u32 });
            }
            let mut features = FeatureSet::EMPTY;
            for name in &spec.features {
                let next = feature_names.len();
                let bit = *feature_bits.entry(name.as_str()).or_insert(next as u64);
                if bit as usize == next {
                    if next == 64 {
                        return Err(IndexError::TooManyFeatures);
                    }
                    feature_names.push(name.clone());
                }
                features = features.union(FeatureSet::from_bits(1 << bit));
            }
            let class = NodeClass { capacity: spec.capacity, features };
            let id = match class_ids.get(&class) {
                Some(&id) => id,
                None => {
                    let id = u16::try_from(classes.len()).map_err(|_| IndexError::TooManyClasses)?;
                    class_ids.insert(class, id);
                    classes.push(class);
                    id
                }
            };
            node_class.push(id);
        }
        let switches = fabric.switches();
        let s_count = switches.len();
        let mut index = FreeIndex {
            node_count: nodes,
            switch_count: s_count as u32,
            feature_names,
            node_class,
            node_free: free.to_vec(),
            node_leaf: (0..nodes).map(|n| fabric.leaf_of(NodeId(n)).map_or(NO_PARENT, |l| l.0)).collect(),
            switch_parent: switches.iter().map(|s| s.parent().map_or(NO_PARENT, |p| p.0)).collect(),
            switch_end: switches.iter().map(|s| s.subtree_end).collect(),
            switch_nodes: switches.iter().map(|s| s.nodes).collect(),
            total: vec![0; s_count * classes.len()],
            idle: vec![0; s_count * classes.len()],
            partial: vec![0; s_count * classes.len()],
            partial_max: vec![Resources::ZERO; s_count],
            classes,
        };
        let c_count = index.classes.len();
        for n in 0..nodes as usize {
            let (leaf, class) = (index.node_leaf[n] as usize, index.node_class[n] as usize);
            let at = leaf * c_count + class;
            index.total[at] += 1;
            match index.state(n) {
                NodeState::Idle => index.idle[at] += 1,
                NodeState::Partial => {
                    index.partial[at] += 1;
                    index.partial_max[leaf] = index.partial_max[leaf].max(&index.node_free[n]);
                }
                NodeState::Busy => {}
            }
        }
        // Children follow their parent in pre-order: a reverse walk folds each subtree upward.
        for s in (0..s_count).rev() {
            let p = index.switch_parent[s];
            if p == NO_PARENT {
                continue;
            }
            let (p, s) = (p as usize, s);
            for c in 0..c_count {
                index.total[p * c_count + c] += index.total[s * c_count + c];
                index.idle[p * c_count + c] += index.idle[s * c_count + c];
                index.partial[p * c_count + c] += index.partial[s * c_count + c];
            }
            index.partial_max[p] = index.partial_max[p].max(&index.partial_max[s]);
        }
        Ok(index)
    }

    /// The features with these names; an error names one that no node has.
    pub fn feature_set(&self, names: &[&str]) -> Result<FeatureSet, IndexError> {
        let mut set = FeatureSet::EMPTY;
        for name in names {
            let Some(bit) = self.feature_names.iter().position(|f| f == name) else {
                return Err(IndexError::UnknownFeature { feature: name.to_string() });
            };
            set = set.union(FeatureSet::from_bits(1 << bit));
        }
        Ok(set)
    }

    /// Names of the features in a set.
    pub fn feature_names(&self, set: FeatureSet) -> Vec<&str> {
        (0..self.feature_names.len())
            .filter(|&b| set.bits() >> b & 1 == 1)
            .map(|b| self.feature_names[b].as_str())
            .collect()
    }

    /// What a node has free now.
    pub fn node_free(&self, node: NodeId) -> Option<Resources> {
        self.node_free.get(node.0 as usize).copied()
    }

    /// What a node has when idle.
    pub fn node_capacity(&self, node: NodeId) -> Option<Resources> {
        Some(self.class_of(node.0 as usize)?.capacity)
    }

    /// A node's features.
    pub fn node_features(&self, node: NodeId) -> Option<FeatureSet> {
        Some(self.class_of(node.0 as usize)?.features)
    }

    /// Whether the index was built for this fabric (same number of nodes and switches).
    pub fn matches(&self, fabric: &Fabric) -> bool {
        self.node_count == fabric.node_count() && self.switch_count == fabric.switch_count()
    }

    /// Sets what a node has free (a node going down is set to nothing free).
    pub fn set_node(&mut self, node: NodeId, free: Resources) -> Result<(), IndexError> {
        let n = node.0 as usize;
        let class = self.class_of(n).ok_or(IndexError::UnknownNode { node: node.0 })?;
        if !free.fits_in(&class.capacity) {
            return Err(IndexError::FreeExceedsCapacity { node: node.0 });
        }
        self.update(n, free);
        Ok(())
    }

    /// Takes a gang's resources off its nodes: all or nothing.
    pub fn allocate(&mut self, gang: &Gang) -> Result<(), IndexError> {
        self.check_nodes(gang)?;
        let mut after = Vec::with_capacity(gang.nodes().len());
        for &node in gang.nodes() {
            let n = node.0 as usize;
            let (free, capacity) = (self.node_free[n], self.classes[self.node_class[n] as usize].capacity);
            let new = if gang.exclusive() {
                (free == capacity && gang.per_node().fits_in(&capacity)).then_some(Resources::ZERO)
            } else {
                free.checked_sub(&gang.per_node())
            };
            after.push(new.ok_or(IndexError::NotEnoughFree { node: node.0 })?);
        }
        self.update_many(gang.nodes(), after);
        Ok(())
    }

    /// Gives a gang's resources back to its nodes: all or nothing.
    pub fn release(&mut self, gang: &Gang) -> Result<(), IndexError> {
        self.check_nodes(gang)?;
        let mut after = Vec::with_capacity(gang.nodes().len());
        for &node in gang.nodes() {
            let n = node.0 as usize;
            let (free, capacity) = (self.node_free[n], self.classes[self.node_class[n] as usize].capacity);
            let new = if gang.exclusive() {
                free.is_zero().then_some(capacity)
            } else {
                free.checked_add(&gang.per_node()).filter(|f| f.fits_in(&capacity))
            };
            after.push(new.ok_or(IndexError::NotAllocated { node: node.0 })?);
        }
        self.update_many(gang.nodes(), after);
        Ok(())
    }

    /// Heap memory held by the index, from the capacities of its collections.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.feature_names.capacity() * size_of::<String>()
            + self.feature_names.iter().map(String::capacity).sum::<usize>()
            + self.classes.capacity() * size_of::<NodeClass>()
            + self.node_class.capacity() * size_of::<u16>()
            + self.node_free.capacity() * size_of::<Resources>()
            + self.node_leaf.capacity() * size_of::<u32>()
            + self.switch_parent.capacity() * size_of::<u32>()
            + self.switch_end.capacity() * size_of::<u32>()
            + self.switch_nodes.capacity() * size_of::<(u32, u32)>()
            + (self.total.capacity() + self.idle.capacity() + self.partial.capacity()) * size_of::<u32>()
            + self.partial_max.capacity() * size_of::<Resources>()
    }

    /// Nodes sorted, in range, no duplicates (a [`Gang`] keeps its nodes sorted).
    fn check_nodes(&self, gang: &Gang) -> Result<(), IndexError> {
        let mut previous: Option<u32> = None;
        for &node in gang.nodes() {
            if node.0 >= self.node_count {
                return Err(IndexError::UnknownNode { node: node.0 });
            }
            if previous.is_some_and(|p| p >= node.0) {
                return Err(IndexError::DuplicateNode { node: node.0 });
            }
            previous = Some(node.0);
        }
        Ok(())
    }

    fn class_of(&self, n: usize) -> Option<&NodeClass> {
        self.classes.get(*self.node_class.get(n)? as usize)
    }

    pub(crate) fn state(&self, n: usize) -> NodeState {
        let free = self.node_free[n];
        if free == self.classes[self.node_class[n] as usize].capacity {
            NodeState::Idle
        } else if free.is_zero() {
            NodeState::Busy
        } else {
            NodeState::Partial
        }
    }

    /// Changes one node's free resources and the aggregates on its path to the root:
    /// O(depth) for the counts; the maxima climb only while they change.
    fn update(&mut self, n: usize, free: Resources) {
        let old_free = self.node_free[n];
        let (was_partial, is_partial) = self.update_counts(n, free);
        if was_partial || is_partial {
            let removed = was_partial.then_some(old_free);
            let added = is_partial.then_some(free);
            self.refresh_partial_max(self.node_leaf[n], removed, added);
        }
    }

    /// Changes many nodes (a gang's): the counts node by node, then the maxima once per leaf
    /// that holds a partly used node before or after, and once per switch above whose maxima
    /// changed, so a gang costs O(nodes·depth + dirty leaves·P + dirty switches·fanout).
    fn update_many(&mut self, nodes: &[NodeId], values: Vec<Resources>) {
        let mut dirty = std::collections::BinaryHeap::new();
        for (&node, free) in nodes.iter().zip(values) {
            let n = node.0 as usize;
            let (was_partial, is_partial) = self.update_counts(n, free);
            if was_partial || is_partial {
                dirty.push(self.node_leaf[n]);
            }
        }
        // Pre-order numbers a parent below its children: popping the largest id first settles
        // every child before its parent.
        let mut last = NO_PARENT;
        while let Some(s) = dirty.pop() {
            if s == last {
                continue;
            }
            last = s;
            let new = self.recompute_partial_max(s as usize);
            if new != self.partial_max[s as usize] {
                self.partial_max[s as usize] = new;
                let parent = self.switch_parent[s as usize];
                if parent != NO_PARENT {
                    dirty.push(parent);
                }
            }
        }
    }

    /// Sets a node's free resources and moves it between the idle and partly used counts on
    /// its path; returns whether it was, and is, partly used.
    fn update_counts(&mut self, n: usize, free: Resources) -> (bool, bool) {
        let old_state = self.state(n);
        self.node_free[n] = free;
        let new_state = self.state(n);
        if old_state != new_state {
            let c_count = self.classes.len();
            let class = self.node_class[n] as usize;
            let mut s = self.node_leaf[n];
            while s != NO_PARENT {
                let at = s as usize * c_count + class;
                match old_state {
                    NodeState::Idle => self.idle[at] -= 1,
                    NodeState::Partial => self.partial[at] -= 1,
                    NodeState::Busy => {}
                }
                match new_state {
                    NodeState::Idle => self.idle[at] += 1,
                    NodeState::Partial => self.partial[at] += 1,
                    NodeState::Busy => {}
                }
                s = self.switch_parent[s as usize];
            }
        }
        (old_state == NodeState::Partial, new_state == NodeState::Partial)
    }

    fn refresh_partial_max(&mut self, leaf: u32, removed: Option<Resources>, added: Option<Resources>) {
        let mut s = leaf;
        while s != NO_PARENT {
            let su = s as usize;
            let old = self.partial_max[su];
            let new = if removed.is_some_and(|r| r.touches(&old)) {
                self.recompute_partial_max(su)
            } else {
                added.map_or(old, |a| old.max(&a))
            };
            if new == old {
                break;
            }
            self.partial_max[su] = new;
            s = self.switch_parent[su];
        }
    }

    fn recompute_partial_max(&self, s: usize) -> Resources {
        let mut max = Resources::ZERO;
        if s + 1 == self.switch_end[s] as usize {
            let (first, end) = self.switch_nodes[s];
            for n in first as usize..end as usize {
                if self.state(n) == NodeState::Partial {
                    max = max.max(&self.node_free[n]);
                }
            }
        } else {
            // Children of s in pre-order: s + 1, then each next one where the last one's subtree ends.
            let mut c = s + 1;
            while c < self.switch_end[s] as usize {
                max = max.max(&self.partial_max[c]);
                c = self.switch_end[c] as usize;
            }
        }
        max
    }

    // Read access for the selection.

    pub(crate) fn classes(&self) -> &[NodeClass] {
        &self.classes
    }

    pub(crate) fn class_index(&self, n: usize) -> usize {
        self.node_class[n] as usize
    }

    pub(crate) fn free_of(&self, n: usize) -> Resources {
        self.node_free[n]
    }

    pub(crate) fn partial_max(&self, s: usize) -> Resources {
        self.partial_max[s]
    }

    /// Counts below switch `s` over the classes marked in `eligible`.
    pub(crate) fn tally(&self, s: usize, eligible: &[bool]) -> Tally {
        let c_count = self.classes.len();
        let mut t = Tally::default();
        for (c, _) in eligible.iter().enumerate().filter(|(_, &e)| e) {
            let at = s * c_count + c;
            t.total += self.total[at];
            t.idle += self.idle[at];
            t.partial += self.partial[at];
        }
        t
    }
}

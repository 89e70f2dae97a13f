//! The fabric: the switch tree between nodes, as Slurm's `topology.conf` describes it.
//!
//! A leaf switch (level 0) has nodes; a switch above has switches, and its level is one more than
//! the highest level below it (Slurm's `topology/tree` rule). Several trees may coexist: nodes in
//! different trees share no switch, and a gang never spans them. Blocks (`BlockName=`, Slurm's
//! `topology/block`, used for NVLink domains) are kept alongside the tree.
//!
//! Numbering: switches are numbered in depth-first pre-order (roots in the order they were
//! defined, children in the order they were listed) and nodes in the order of their leaves in that
//! walk. So the switches below a switch, its leaves, and its nodes are each a contiguous range of
//! ids, which is what lets the gang index work on ranges instead of lists.
//!
//! Distance between two nodes is the number of links on the path between them: 0 for the same
//! node, 2 under the same leaf (node–leaf–node), 4 through one switch above the leaves, 6 through
//! two, and so on; `None` when they are in different trees.

mod build;
mod parse;

use std::collections::HashMap;

pub use build::ShapeError;
pub use parse::FabricError;

/// A node's index in a [`Fabric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// A switch's index in a [`Fabric`] (depth-first pre-order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwitchId(pub u32);

/// A block's index in a [`Fabric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

/// One switch of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    name: String,
    level: u32,
    depth: u32,
    parent: Option<SwitchId>,
    children: Vec<SwitchId>,
    link_speed: Option<u64>,
    /// Switches `[self, subtree_end)` are this one and everything below it.
    pub(crate) subtree_end: u32,
    /// Nodes below it: `[nodes.0, nodes.1)`.
    pub(crate) nodes: (u32, u32),
    /// Its leaves, as positions in [`Fabric::leaves`]: `[leaves.0, leaves.1)`.
    pub(crate) leaves: (u32, u32),
}

impl Switch {
    /// Its `SwitchName`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// 0 for a leaf, else one more than the highest switch below it.
    pub fn level(&self) -> u32 {
        self.level
    }
    /// Links between it and the root of its tree.
    pub fn depth(&self) -> u32 {
        self.depth
    }
    /// The switch above it, if any.
    pub fn parent(&self) -> Option<SwitchId> {
        self.parent
    }
    /// The switches right below it, in the order `Switches=` listed them.
    pub fn children(&self) -> &[SwitchId] {
        &self.children
    }
    /// Whether nodes hang off it directly.
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
    /// Its `LinkSpeed=`, if given (Slurm keeps it but does not use it).
    pub fn link_speed(&self) -> Option<u64> {
        self.link_speed
    }
    /// All nodes below it, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (self.nodes.0..self.nodes.1).map(NodeId)
    }
    /// How many nodes are below it.
    pub fn node_count(&self) -> u32 {
        self.nodes.1 - self.nodes.0
    }
}

/// One block (`BlockName=`): a set of nodes with a fast interconnect among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    name: String,
    nodes: Vec<NodeId>,
}

impl Block {
    /// Its `BlockName`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its nodes, in the order `Nodes=` listed them.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }
}

/// The switch tree (or trees) and blocks of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fabric {
    switches: Vec<Switch>,
    roots: Vec<SwitchId>,
    /// Leaf switches in depth-first order.
    leaves: Vec<SwitchId>,
    /// Switches by level, each in id order.
    by_level: Vec<Vec<SwitchId>>,
    node_names: Vec<String>,
    node_leaf: Vec<SwitchId>,
    node_block: Vec<Option<BlockId>>,
    node_ids: HashMap<String, NodeId>,
    switch_ids: HashMap<String, SwitchId>,
    blocks: Vec<Block>,
    block_sizes: Vec<u32>,
}

impl Fabric {
    /// Reads Slurm's `topology.conf` syntax; errors name the line.
    pub fn parse(text: &str) -> Result<Fabric, FabricError> {
        build::from_raw(parse::parse(text)?)
    }

    /// One virtual switch over all nodes, for clusters without a `topology.conf`.
    pub fn flat(node_names: &[String]) -> Result<Fabric, ShapeError> {
        build::flat(node_names)
    }

    /// A synthetic tree: `nodes` nodes, `nodes_per_leaf` under each leaf, then `fanouts[i]`
    /// switches of level `i` under each switch of level `i + 1`, and one root over what is left.
    ///
    /// `fat_tree(10_000, 32, &[16])` is 313 leaves, 20 spines and a core: three levels.
    pub fn fat_tree(nodes: u32, nodes_per_leaf: u32, fanouts: &[u32]) -> Result<Fabric, ShapeError> {
        build::fat_tree(nodes, nodes_per_leaf, fanouts)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> u32 {
        self.node_names.len() as u32
    }
    /// Number of switches.
    pub fn switch_count(&self) -> u32 {
        self.switches.len() as u32
    }
    /// Number of levels (1 + the highest level).
    pub fn levels(&self) -> u32 {
        self.by_level.len() as u32
    }
    /// A node's id by name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.node_ids.get(name).copied()
    }
    /// A node's name.
    pub fn node_name(&self, node: NodeId) -> Option<&str> {
        self.node_names.get(node.0 as usize).map(String::as_str)
    }
    /// A switch's id by name.
    pub fn switch_id(&self, name: &str) -> Option<SwitchId> {
        self.switch_ids.get(name).copied()
    }
    /// A switch.
    pub fn switch(&self, id: SwitchId) -> Option<&Switch> {
        self.switches.get(id.0 as usize)
    }
    /// All switches, in id order.
    pub fn switches(&self) -> &[Switch] {
        &self.switches
    }
    /// Top switches of the trees, in the order they were defined.
    pub fn roots(&self) -> &[SwitchId] {
        &self.roots
    }
    /// Leaf switches, in depth-first order.
    pub fn leaves(&self) -> &[SwitchId] {
        &self.leaves
    }
    /// Switches of one level, in id order.
    pub fn switches_at_level(&self, level: u32) -> &[SwitchId] {
        self.by_level.get(level as usize).map_or(&[], Vec::as_slice)
    }
    /// The leaf switch a node hangs off.
    pub fn leaf_of(&self, node: NodeId) -> Option<SwitchId> {
        self.node_leaf.get(node.0 as usize).copied()
    }
    /// Blocks, in the order they were defined.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    /// The block a node belongs to, if any.
    pub fn block_of(&self, node: NodeId) -> Option<BlockId> {
        self.node_block.get(node.0 as usize).copied().flatten()
    }
    /// `BlockSizes=`, if given.
    pub fn block_sizes(&self) -> &[u32] {
        &self.block_sizes
    }

    /// The lowest switch above both nodes; `None` if they are in different trees or unknown.
    pub fn lowest_common_switch(&self, a: NodeId, b: NodeId) -> Option<SwitchId> {
        self.lowest_common_switch_of(&[a, b])
    }

    /// The lowest switch above all the nodes; `None` if empty, spread over trees, or unknown.
    pub fn lowest_common_switch_of(&self, nodes: &[NodeId]) -> Option<SwitchId> {
        let first = *nodes.first()?;
        let (mut lo, mut hi) = (first.0, first.0);
        for n in nodes {
            if n.0 >= self.node_count() {
                return None;
            }
            lo = lo.min(n.0);
            hi = hi.max(n.0);
        }
        // Node ids below a switch are contiguous, so the first ancestor covering the lowest and
        // highest id covers them all.
        let mut s = self.leaf_of(first)?;
        loop {
            let sw = &self.switches[s.0 as usize];
            if sw.nodes.0 <= lo && hi < sw.nodes.1 {
                return Some(s);
            }
            s = sw.parent?;
        }
    }

    /// Links on the path between two nodes (0 same node, 2 same leaf, 4 via one switch above
    /// the leaves, …); `None` if they are in different trees or unknown.
    pub fn distance(&self, a: NodeId, b: NodeId) -> Option<u32> {
        let top = self.lowest_common_switch(a, b)?;
        if a == b {
            return Some(0);
        }
        let depth = |n: NodeId| self.leaf_of(n).map(|l| self.switches[l.0 as usize].depth);
        let top_depth = self.switches[top.0 as usize].depth;
        Some(depth(a)? - top_depth + depth(b)? - top_depth + 2)
    }

    /// Heap memory held by the fabric, estimated from its collections.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let strings = |v: &[String]| v.iter().map(String::capacity).sum::<usize>();
        let map_entry = size_of::<String>() + size_of::<u32>() + 8;
        self.switches.capacity() * size_of::<Switch>()
            + self.switches.iter().map(|s| s.name.capacity() + s.children.capacity() * 4).sum::<usize>()
            + (self.roots.capacity() + self.leaves.capacity()) * 4
            + self.by_level.iter().map(|l| l.capacity() * 4 + size_of::<Vec<u32>>()).sum::<usize>()
            + self.node_names.capacity() * size_of::<String>()
            + strings(&self.node_names)
            + self.node_leaf.capacity() * 4
            + self.node_block.capacity() * size_of::<Option<BlockId>>()
            + self.node_ids.capacity() * map_entry
            + strings(&self.node_names)
            + self.switch_ids.capacity() * map_entry
            + self.switches.iter().map(|s| s.name.capacity()).sum::<usize>()
            + self.blocks.iter().map(|b| size_of::<Block>() + b.name.capacity() + b.nodes.capacity() * 4).sum::<usize>()
            + self.block_sizes.capacity() * 4
    }
}

#[cfg(test)]
mod tests;

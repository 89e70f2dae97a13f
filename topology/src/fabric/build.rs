//! Turning checked lines (or a synthetic shape) into a numbered tree.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::parse::{FabricError, Raw, RawSwitch};
use super::{Block, BlockId, Fabric, NodeId, Switch, SwitchId};

/// Name of the virtual switch of a flat fabric (and of a `topology.conf` with blocks only).
pub const FLAT_SWITCH: &str = "flat";

/// Why a synthetic or flat fabric could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// `nodes_per_leaf` was 0.
    #[error("nodes_per_leaf must be at least 1")]
    ZeroNodesPerLeaf,
    /// A fanout was 0.
    #[error("the fanout of level {level} must be at least 1")]
    ZeroFanout {
        /// The level of the switches being grouped (1 for spines).
        level: usize,
    },
    /// A tree of no nodes.
    #[error("a fat tree needs at least one node")]
    NoNodes,
    /// The same node name twice in a flat fabric.
    #[error("node `{name}` listed twice")]
    DuplicateNode {
        /// The name.
        name: String,
    },
    /// The shape could not be numbered (too large).
    #[error(transparent)]
    Fabric(#[from] FabricError),
}

pub(crate) fn flat(node_names: &[String]) -> Result<Fabric, ShapeError> {
    if node_names.is_empty() {
        return Ok(Fabric::default());
    }
    let mut seen = HashMap::with_capacity(node_names.len());
    for name in node_names {
        if seen.insert(name.as_str(), ()).is_some() {
            return Err(ShapeError::DuplicateNode { name: name.clone() });
        }
    }
    let leaf = RawSwitch { name: FLAT_SWITCH.to_string(), nodes: node_names.to_vec(), ..RawSwitch::default() };
    Ok(from_raw(Raw { switches: vec![leaf], ..Raw::default() })?)
}

pub(crate) fn fat_tree(nodes: u32, nodes_per_leaf: u32, fanouts: &[u32]) -> Result<Fabric, ShapeError> {
    if nodes_per_leaf == 0 {
        return Err(ShapeError::ZeroNodesPerLeaf);
    }
    if let Some(i) = fanouts.iter().position(|&f| f == 0) {
        return Err(ShapeError::ZeroFanout { level: i + 1 });
    }
    if nodes == 0 {
        return Err(ShapeError::NoNodes);
    }
    let width = nodes.to_string().len();
    let mut switches = Vec::new();
    let mut top = Vec::new();
    for (i, first) in (0..nodes).step_by(nodes_per_leaf as usize).enumerate() {
        let last = first.saturating_add(nodes_per_leaf).min(nodes);
        let name = switch_name(0, i);
        let nodes = (first..last).map(|n| format!("node{:0width$}", n + 1)).collect();
        switches.push(RawSwitch { name: name.clone(), nodes, ..RawSwitch::default() });
        top.push(name);
    }
    let mut level = 1;
    let group_by = |top: Vec<String>, fanout: usize, switches: &mut Vec<RawSwitch>, level: usize| {
        top.chunks(fanout)
            .enumerate()
            .map(|(i, children)| {
                let name = switch_name(level, i);
                switches.push(RawSwitch { name: name.clone(), children: children.to_vec(), ..RawSwitch::default() });
                name
            })
            .collect::<Vec<_>>()
    };
    for &fanout in fanouts {
        if top.len() <= 1 {
            break;
        }
        top = group_by(top, fanout as usize, &mut switches, level);
        level += 1;
    }
    if top.len() > 1 {
        let all = top.len();
        group_by(top, all, &mut switches, level);
    }
    Ok(from_raw(Raw { switches, ..Raw::default() })?)
}

fn switch_name(level: usize, index: usize) -> String {
    match level {
        0 => format!("leaf{}", index + 1),
        1 => format!("spine{}", index + 1),
        2 => format!("core{}", index + 1),
        l => format!("level{l}-{}", index + 1),
    }
}

/// Checks the tree (every name resolves, one parent each, no cycle, a node under one leaf) and
/// numbers it in depth-first pre-order.
pub(crate) fn from_raw(mut raw: Raw) -> Result<Fabric, FabricError> {
    let last_line = raw.switches.iter().map(|s| s.line).chain(raw.blocks.iter().map(|b| b.line)).max().unwrap_or(0);
    check_blocks(&raw)?;
    if raw.switches.is_empty() && !raw.blocks.is_empty() {
        // topology/block without a switch tree: the blocks' nodes under one virtual switch.
        let nodes = raw.blocks.iter().flat_map(|b| b.nodes.iter().cloned()).collect();
        let line = raw.blocks[0].line;
        raw.switches.push(RawSwitch { name: FLAT_SWITCH.to_string(), line, nodes, ..RawSwitch::default() });
    }
    let sw = &raw.switches;
    let count = sw.len();
    let node_total: usize = sw.iter().map(|s| s.nodes.len()).sum();
    if count >= u32::MAX as usize || node_total >= u32::MAX as usize {
        return Err(FabricError::TooLarge { line: last_line, max: u32::MAX - 1 });
    }
    let index: HashMap<&str, usize> = sw.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();

    let mut leaf_of_node: HashMap<&str, usize> = HashMap::with_capacity(node_total);
    for (si, s) in sw.iter().enumerate() {
        for node in &s.nodes {
            match leaf_of_node.entry(node.as_str()) {
                Entry::Vacant(e) => {
                    e.insert(si);
                }
                Entry::Occupied(e) if *e.get() == si => {
                    return Err(FabricError::ListedTwice { line: s.line, name: s.name.clone(), item: node.clone() });
                }
                Entry::Occupied(e) => {
                    let other = &sw[*e.get()];
                    return Err(FabricError::NodeUnderTwoLeaves {
                        line: s.line,
                        node: node.clone(),
                        switch: s.name.clone(),
                        other: other.name.clone(),
                        other_line: other.line,
                    });
                }
            }
        }
    }

    let mut parent: Vec<Option<usize>> = vec![None; count];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (si, s) in sw.iter().enumerate() {
        for child in &s.children {
            let Some(&ci) = index.get(child.as_str()) else {
                return Err(FabricError::UnknownSwitch { line: s.line, switch: s.name.clone(), child: child.clone() });
            };
            if ci == si {
                return Err(FabricError::Cycle { line: s.line, cycle: format!("{0} -> {0}", s.name) });
            }
            match parent[ci] {
                Some(p) if p == si => {
                    return Err(FabricError::ListedTwice { line: s.line, name: s.name.clone(), item: child.clone() })
                }
                Some(p) => {
                    return Err(FabricError::SwitchUnderTwoParents {
                        line: s.line,
                        child: child.clone(),
                        switch: s.name.clone(),
                        other: sw[p].name.clone(),
                        other_line: sw[p].line,
                    })
                }
                None => {}
            }
            parent[ci] = Some(si);
            children[si].push(ci);
        }
    }

    // Pre-order walk with an explicit stack: a file may describe a very deep chain.
    let roots: Vec<usize> = (0..count).filter(|&i| parent[i].is_none()).collect();
    let mut order = Vec::with_capacity(count);
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    while let Some(s) = stack.pop() {
        order.push(s);
        stack.extend(children[s].iter().rev());
    }
    if order.len() < count {
        return Err(cycle_error(sw, &parent, &order));
    }
    let mut new_id = vec![0u32; count];
    for (id, &s) in order.iter().enumerate() {
        new_id[s] = id as u32;
    }

    let switches = order
        .iter()
        .map(|&s| Switch {
            name: sw[s].name.clone(),
            level: 0,
            depth: 0,
            parent: parent[s].map(|p| SwitchId(new_id[p])),
            children: children[s].iter().map(|&c| SwitchId(new_id[c])).collect(),
            link_speed: sw[s].link_speed,
            subtree_end: 0,
            nodes: (0, 0),
            leaves: (0, 0),
        })
        .collect();
    let mut fabric =
        Fabric { switches, roots: roots.iter().map(|&r| SwitchId(new_id[r])).collect(), ..Fabric::default() };
    for (id, &s) in order.iter().enumerate() {
        if let Some(p) = fabric.switches[id].parent {
            fabric.switches[id].depth = fabric.switches[p.0 as usize].depth + 1;
        }
        if sw[s].children.is_empty() {
            let first = fabric.node_names.len() as u32;
            let leaf = SwitchId(id as u32);
            for name in &sw[s].nodes {
                fabric.node_ids.insert(name.clone(), NodeId(fabric.node_names.len() as u32));
                fabric.node_names.push(name.clone());
                fabric.node_leaf.push(leaf);
            }
            let pos = fabric.leaves.len() as u32;
            fabric.leaves.push(leaf);
            let this = &mut fabric.switches[id];
            this.nodes = (first, fabric.node_names.len() as u32);
            this.leaves = (pos, pos + 1);
            this.subtree_end = id as u32 + 1;
        }
    }
    // Children come after their parent in pre-order, so a reverse walk sees them first.
    for id in (0..count).rev() {
        let kids = &fabric.switches[id].children;
        let (Some(first), Some(last)) = (kids.first(), kids.last()) else { continue };
        let (first, last) = (&fabric.switches[first.0 as usize], &fabric.switches[last.0 as usize]);
        let level = kids.iter().map(|k| fabric.switches[k.0 as usize].level).max().unwrap_or(0) + 1;
        let (nodes, leaves, end) = ((first.nodes.0, last.nodes.1), (first.leaves.0, last.leaves.1), last.subtree_end);
        let this = &mut fabric.switches[id];
        this.level = level;
        this.nodes = nodes;
        this.leaves = leaves;
        this.subtree_end = end;
    }
    for (id, s) in fabric.switches.iter().enumerate() {
        let level = s.level as usize;
        if fabric.by_level.len() <= level {
            fabric.by_level.resize(level + 1, Vec::new());
        }
        fabric.by_level[level].push(SwitchId(id as u32));
        fabric.switch_ids.insert(s.name.clone(), SwitchId(id as u32));
    }

    fabric.node_block = vec![None; fabric.node_names.len()];
    for (bi, b) in raw.blocks.iter().enumerate() {
        let mut nodes = Vec::with_capacity(b.nodes.len());
        for name in &b.nodes {
            let Some(id) = fabric.node_id(name) else {
                return Err(FabricError::BlockNodeNotInTree {
                    line: b.line,
                    node: name.clone(),
                    block: b.name.clone(),
                });
            };
            fabric.node_block[id.0 as usize] = Some(BlockId(bi as u32));
            nodes.push(id);
        }
        fabric.blocks.push(Block { name: b.name.clone(), nodes });
    }
    fabric.block_sizes = raw.block_sizes;
    Ok(fabric)
}

fn check_blocks(raw: &Raw) -> Result<(), FabricError> {
    let mut block_of: HashMap<&str, usize> = HashMap::new();
    for (bi, b) in raw.blocks.iter().enumerate() {
        for node in &b.nodes {
            match block_of.entry(node.as_str()) {
                Entry::Vacant(e) => {
                    e.insert(bi);
                }
                Entry::Occupied(e) if *e.get() == bi => {
                    return Err(FabricError::ListedTwice { line: b.line, name: b.name.clone(), item: node.clone() });
                }
                Entry::Occupied(e) => {
                    let other = &raw.blocks[*e.get()];
                    return Err(FabricError::NodeInTwoBlocks {
                        line: b.line,
                        node: node.clone(),
                        block: b.name.clone(),
                        other: other.name.clone(),
                        other_line: other.line,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Every switch not reached from a root has a parent that is not reached either, so following
/// parents from one ends in a loop; that loop is the cycle, named from the top down.
fn cycle_error(sw: &[RawSwitch], parent: &[Option<usize>], reached: &[usize]) -> FabricError {
    let mut seen = vec![false; sw.len()];
    for &r in reached {
        seen[r] = true;
    }
    let Some(start) = (0..sw.len()).find(|&i| !seen[i]) else {
        return FabricError::Cycle { line: 0, cycle: String::new() };
    };
    let mut chain = Vec::new();
    let mut position = vec![usize::MAX; sw.len()];
    let mut s = start;
    while position[s] == usize::MAX {
        position[s] = chain.len();
        chain.push(s);
        match parent[s] {
            Some(p) => s = p,
            None => break,
        }
    }
    let mut cycle: Vec<usize> = chain.get(position[s]..).unwrap_or_default().to_vec();
    cycle.reverse();
    // Start the cycle at the switch defined first, so the message points at the earliest line.
    if let Some(first) = cycle.iter().enumerate().min_by_key(|(_, &c)| c).map(|(i, _)| i) {
        cycle.rotate_left(first);
    }
    let line = cycle.first().map_or(0, |&c| sw[c].line);
    let mut names: Vec<&str> = cycle.iter().map(|&c| sw[c].name.as_str()).collect();
    if let Some(&first) = names.first() {
        names.push(first);
    }
    FabricError::Cycle { line, cycle: names.join(" -> ") }
}

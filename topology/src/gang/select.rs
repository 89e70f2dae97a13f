//! The decision: count eligible nodes per leaf, find the lowest switch that can hold the gang
//! with the fewest leaves, then choose leaves and nodes by best fit.

use super::index::{FreeIndex, NodeState};
use super::{Gang, GangRequest, NodeNeed};
use crate::fabric::{Fabric, NodeId, SwitchId};

/// Eligible nodes per leaf (in [`Fabric::leaves`] order) for one need.
pub(crate) struct LeafCounts {
    pub counts: Vec<u32>,
    /// Per node class: whether a node of it could meet the need when idle.
    pub eligible_classes: Vec<bool>,
}

/// The switch a gang goes under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice {
    pub switch: SwitchId,
    /// The fewest leaves below it that hold the gang.
    pub leaves: u32,
}

/// Chooses the nodes of a gang (see the [module documentation](super)); `None` if no set of
/// nodes meets the request, or if `free` was built for another fabric.
pub fn select_gang(fabric: &Fabric, free: &FreeIndex, request: &GangRequest) -> Option<Gang> {
    if request.nodes == 0 {
        return None;
    }
    let leaf_counts = count_eligible(fabric, free, &request.per_node)?;
    let choice = lowest_switch(fabric, &leaf_counts.counts, request.nodes, request.max_leaves)?;
    pick(fabric, free, request, &leaf_counts, choice)
}

/// Walks the switches in pre-order, skipping every subtree whose aggregates say no node below
/// can meet the need; leaves are counted from their aggregates, and only partly used nodes are
/// looked at, where the maxima allow one to fit.
pub(crate) fn count_eligible(fabric: &Fabric, free: &FreeIndex, need: &NodeNeed) -> Option<LeafCounts> {
    if !free.matches(fabric) {
        return None;
    }
    let eligible_classes: Vec<bool> = free
        .classes()
        .iter()
        .map(|c| need.resources.fits_in(&c.capacity) && c.features.contains(need.features))
        .collect();
    let mut counts = vec![0u32; fabric.leaves().len()];
    if !eligible_classes.contains(&true) {
        return Some(LeafCounts { counts, eligible_classes });
    }
    // With nothing to take, even a busy node meets a shared need.
    let busy_fits = !need.exclusive && need.resources.is_zero();
    let switches = fabric.switches();
    let mut s = 0;
    while s < switches.len() {
        let sw = &switches[s];
        let t = free.tally(s, &eligible_classes);
        let partial_may_fit = !need.exclusive && t.partial > 0 && need.resources.fits_in(&free.partial_max(s));
        let helps = if busy_fits { t.total > 0 } else { t.idle > 0 || partial_may_fit };
        if !helps {
            s = (sw.subtree_end as usize).max(s + 1);
            continue;
        }
        if sw.is_leaf() {
            let count = if busy_fits {
                t.total
            } else if partial_may_fit {
                let (first, end) = sw.nodes;
                t.idle
                    + (first..end)
                        .filter(|&n| {
                            let n = n as usize;
                            free.state(n) == NodeState::Partial && is_eligible(free, n, need, &eligible_classes)
                        })
                        .count() as u32
            } else {
                t.idle
            };
            if let Some(slot) = counts.get_mut(sw.leaves.0 as usize) {
                *slot = count;
            }
        }
        s += 1;
    }
    Some(LeafCounts { counts, eligible_classes })
}

fn is_eligible(free: &FreeIndex, n: usize, need: &NodeNeed, eligible_classes: &[bool]) -> bool {
    eligible_classes[free.class_index(n)]
        && if need.exclusive { free.state(n) == NodeState::Idle } else { need.resources.fits_in(&free.free_of(n)) }
}

/// The lowest level with a switch that holds `n` eligible nodes on at most `max_leaves` leaves;
/// at that level the switch needing the fewest leaves, then the one with the fewest eligible
/// nodes (best fit), then the first.
pub(crate) fn lowest_switch(fabric: &Fabric, counts: &[u32], n: u32, max_leaves: Option<u32>) -> Option<Choice> {
    let mut prefix = Vec::with_capacity(counts.len() + 1);
    prefix.push(0u64);
    for &c in counts {
        prefix.push(prefix[prefix.len() - 1] + c as u64);
    }
    let mut scratch = Vec::new();
    for level in 0..fabric.levels() {
        let mut best: Option<(u32, u64, SwitchId)> = None;
        for &s in fabric.switches_at_level(level) {
            let (a, b) = fabric.switch(s)?.leaves;
            let (a, b) = (a as usize, b as usize);
            let eligible = prefix.get(b)? - prefix.get(a)?;
            if eligible < n as u64 {
                continue;
            }
            let leaves = fewest_leaves(counts.get(a..b)?, n, &mut scratch);
            if max_leaves.is_some_and(|max| leaves > max) {
                continue;
            }
            let key = (leaves, eligible, s);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        if let Some((leaves, _, switch)) = best {
            return Some(Choice { switch, leaves });
        }
    }
    None
}

/// How many of these leaves, largest first, it takes to reach `n` nodes.
pub(crate) fn fewest_leaves(counts: &[u32], n: u32, scratch: &mut Vec<u32>) -> u32 {
    scratch.clear();
    scratch.extend(counts.iter().copied().filter(|&c| c > 0));
    scratch.sort_unstable_by(|a, b| b.cmp(a));
    let mut sum = 0u64;
    for (i, &c) in scratch.iter().enumerate() {
        sum += c as u64;
        if sum >= n as u64 {
            return i as u32 + 1;
        }
    }
    u32::MAX
}

/// Chooses exactly `choice.leaves` leaves below the switch, smallest first: each time, the
/// smallest leaf that, with the largest ones still unchosen, can still complete the gang. Every
/// leaf but the last is taken whole; the last gives what is missing.
fn pick(fabric: &Fabric, free: &FreeIndex, request: &GangRequest, lc: &LeafCounts, choice: Choice) -> Option<Gang> {
    let (a, b) = fabric.switch(choice.switch)?.leaves;
    let mut items: Vec<(u32, u32)> =
        (a..b).filter_map(|p| lc.counts.get(p as usize).filter(|&&c| c > 0).map(|&c| (c, p))).collect();
    items.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    let k = (choice.leaves as usize).min(items.len());
    // prefix[j]: the j largest counts together. Only items at or after the boundary `slots - 1`
    // are ever chosen, so the items before it stay unchosen and prefix stays valid.
    let mut prefix = vec![0u64];
    for item in items.iter().take(k) {
        prefix.push(prefix[prefix.len() - 1] + item.0 as u64);
    }
    let mut chosen_flags = vec![false; items.len()];
    let mut remaining = request.nodes as u64;
    let mut chosen: Vec<(u32, u32)> = Vec::with_capacity(k);
    for slots in (1..=k).rev() {
        if remaining == 0 {
            break;
        }
        let threshold = remaining.saturating_sub(*prefix.get(slots - 1)?);
        let mut j = items.partition_point(|it| it.0 as u64 >= threshold).checked_sub(1)?;
        while *chosen_flags.get(j)? {
            j = j.checked_sub(1)?;
        }
        chosen_flags[j] = true;
        let take = (items[j].0 as u64).min(remaining);
        chosen.push((items[j].1, take as u32));
        remaining -= take;
    }
    if remaining > 0 {
        return None;
    }
    // In leaf order, node ids come out sorted.
    chosen.sort_unstable();
    let need = &request.per_node;
    let mut nodes = Vec::with_capacity(request.nodes as usize);
    for (pos, take) in chosen {
        let (first, end) = fabric.switch(*fabric.leaves().get(pos as usize)?)?.nodes;
        let eligible = (first..end).filter(|&n| is_eligible(free, n as usize, need, &lc.eligible_classes));
        if Some(&take) == lc.counts.get(pos as usize) {
            nodes.extend(eligible.map(NodeId));
        } else {
            // Best fit within the leaf: nodes already in use first, so idle ones stay whole.
            let mut candidates: Vec<(u8, u32)> = eligible.map(|n| (state_rank(free.state(n as usize)), n)).collect();
            candidates.sort_unstable();
            candidates.truncate(take as usize);
            candidates.sort_unstable_by_key(|&(_, n)| n);
            nodes.extend(candidates.into_iter().map(|(_, n)| NodeId(n)));
        }
    }
    Some(Gang {
        nodes,
        per_node: need.resources,
        exclusive: need.exclusive,
        top_switch: Some(choice.switch),
        leaf_count: choice.leaves,
    })
}

fn state_rank(state: NodeState) -> u8 {
    match state {
        NodeState::Busy => 0,
        NodeState::Partial => 1,
        NodeState::Idle => 2,
    }
}

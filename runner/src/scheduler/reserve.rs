//! EASY's reservation: when and where the first task that cannot start will start, from the
//! expected ends of what runs now, and what it leaves for the tasks that would pass it.
//!
//! The finite ends of the pool's holdings are given back, in order, to copies of their nodes'
//! free state until the task fits: on one node (one of those just freed: it fit none before),
//! or, for a gang, on enough nodes (those freed by then first, then those free now). That
//! instant is the reservation's start, what it would take there its claims, and what the
//! claimed nodes would still have spare at that instant is what a task that outlasts the
//! start may use of them now. O(ends walked × node size), and for a gang O(nodes) once more.

use std::sync::Arc;

use gangway_topology::alloc::{Grant, Need, NodeFree, NodeInventory};

use super::keys::KeyMap;
use super::place::{fit, WHOLE_NODE};
use super::queue::Shape;
use super::{NodeKey, NodeState, PoolState, TaskKey, Time};

/// A reservation: when, and what on which nodes.
#[derive(Debug)]
pub(super) struct Reservation {
    /// When it starts (never before the clock).
    pub start: Time,
    /// The nodes it claims, in the order they were chosen.
    pub claims: Vec<NodeKey>,
    /// Per claimed node, what is spare at `start` beside the claim (slots and resources),
    /// less what tasks started since that outlast `start` took there; None when the claim
    /// takes the whole node.
    spare: KeyMap<NodeKey, Option<Spare>>,
}

/// What a claimed node has beside the claim at the reservation's start.
#[derive(Debug)]
struct Spare {
    slots: u32,
    free: NodeFree,
    inventory: Arc<NodeInventory>,
}

/// What a task that outlasts a reservation may use of a node it claims.
pub(super) enum Leaves {
    /// Nothing: the claim takes the whole node.
    Nothing,
    /// These slots and resources.
    Some(u32, NodeFree),
}

impl Reservation {
    /// Whether it claims anything on node `k`.
    pub fn claims(&self, k: NodeKey) -> bool {
        self.spare.contains_key(&k)
    }

    /// What a task that outlasts the start may use of claimed node `k` (state `n`) now; None
    /// when `k` is not claimed.
    pub fn leaves(&self, k: NodeKey, n: &NodeState) -> Option<Leaves> {
        Some(match self.spare.get(&k)? {
            None => Leaves::Nothing,
            Some(s) => Leaves::Some(n.free.min(s.slots), n.avail.intersect(&s.free)),
        })
    }

    /// A task that outlasts the start took `slots` and `grant` on node `k`.
    pub fn took(&mut self, k: NodeKey, slots: u32, grant: &Grant) {
        if let Some(Some(s)) = self.spare.get_mut(&k) {
            s.slots -= slots.min(s.slots);
            let taken = s.free.take(&s.inventory, grant);
            debug_assert!(taken, "what outlasts a reservation takes only what it leaves");
        }
    }
}

/// A task whose holdings end at one instant.
struct Ended {
    task: TaskKey,
    nodes: Vec<NodeKey>,
    slots: u32,
}

/// The tasks of `p` that end at each instant, in order; within an instant the smallest
/// first (fewest nodes, then slots, then key), so a reservation starts once the fewest
/// resources suffice, as EASY's reference simulators break ties.
fn ends_in_order<'a>(
    p: &'a PoolState,
    nodes: &'a KeyMap<NodeKey, NodeState>,
) -> impl Iterator<Item = (Time, Ended)> + 'a {
    let mut ends = p.ends.iter().peekable();
    let mut at = 0;
    let mut instant: Vec<Ended> = Vec::new();
    std::iter::from_fn(move || {
        if instant.is_empty() {
            let &&(next, _, _) = ends.peek()?;
            at = next;
            while let Some(&(_, task, k)) = ends.next_if(|e| e.0 == at) {
                let slots = nodes.get(&k).and_then(|n| n.held.get(&task)).map_or(0, |h| h.slots);
                match instant.last_mut() {
                    Some(e) if e.task == task => {
                        e.nodes.push(k);
                        e.slots += slots;
                    }
                    _ => instant.push(Ended { task, nodes: vec![k], slots }),
                }
            }
            instant.sort_by_key(|e| std::cmp::Reverse((e.nodes.len(), e.slots, e.task)));
        }
        instant.pop().map(|e| (at, e))
    })
}

/// The reservation of `task` (of `shape`, needing `need` per node) in pool `p` at `now`, or
/// None when nothing that ends by a known time makes room for it.
pub(super) fn reserve(
    p: &PoolState,
    nodes: &KeyMap<NodeKey, NodeState>,
    task: TaskKey,
    shape: &Shape,
    need: Option<&Need>,
    now: Time,
) -> Option<Reservation> {
    let all = p.slots_per_node;
    let need = match (need, shape.gang) {
        (None, Some(_)) => Some(&WHOLE_NODE),
        (need, _) => need,
    };
    let whole = need.is_some_and(|n| n.whole);
    let slots = match shape.gang {
        _ if whole => all,
        Some(_) => shape.slots.max(1),
        None => shape.slots,
    };
    let wanted = shape.gang.unwrap_or(1) as usize;
    if whole {
        return reserve_whole(p, nodes, task, wanted, now);
    }
    let fits = |n: &NodeState, free_slots: u32, avail: &NodeFree| {
        if !n.schedulable || n.held.contains_key(&task) {
            return None;
        }
        fit(&n.inventory, free_slots, avail, slots, need)
    };
    // A gang may already have some of its nodes: those that fit now.
    let mut now_fit: KeyMap<NodeKey, Grant> = KeyMap::default();
    let mut now_order: Vec<NodeKey> = Vec::new();
    if shape.gang.is_some() {
        for &(_, k) in p.free.range((slots, 0)..) {
            let n = &nodes[&k];
            if let Some(g) = fits(n, n.free, &n.avail) {
                now_fit.insert(k, g);
                now_order.push(k);
            }
        }
    }
    let mut untouched_fit = now_fit.len();
    // Nodes as they would be, once what ends by then has ended.
    let mut later: KeyMap<NodeKey, (u32, NodeFree)> = KeyMap::default();
    let mut fitting: Vec<(NodeKey, Grant)> = Vec::new();
    let mut fitting_set: KeyMap<NodeKey, ()> = KeyMap::default();
    let mut group: Vec<NodeKey> = Vec::new();
    for (at, Ended { task: ended, nodes: freed, .. }) in ends_in_order(p, nodes) {
        group.clear();
        for k in freed {
            let Some(n) = nodes.get(&k) else { continue };
            let Some(h) = n.held.get(&ended) else { continue };
            let state = later.entry(k).or_insert_with(|| {
                if now_fit.contains_key(&k) {
                    untouched_fit -= 1;
                }
                (n.free, n.avail.clone())
            });
            state.0 = (state.0 + h.slots).min(all);
            state.1.give_back(&n.inventory, &h.grant);
            if !group.contains(&k) {
                group.push(k);
            }
        }
        for &k in &group {
            if fitting_set.contains_key(&k) {
                continue;
            }
            let (free_slots, avail) = &later[&k];
            if let Some(g) = fits(&nodes[&k], *free_slots, avail) {
                fitting.push((k, g));
                fitting_set.insert(k, ());
            }
        }
        if fitting.len() + untouched_fit < wanted {
            continue;
        }
        // Nodes freed by then first, then those free now.
        let mut claims: Vec<(NodeKey, Grant)> = fitting.into_iter().take(wanted).collect();
        for k in now_order.iter().filter(|k| !later.contains_key(k)) {
            if claims.len() == wanted {
                break;
            }
            claims.push((*k, now_fit[k].clone()));
        }
        let mut spare = KeyMap::default();
        for (k, grant) in &claims {
            let n = &nodes[k];
            let (free_slots, mut free) = later.remove(k).unwrap_or_else(|| (n.free, n.avail.clone()));
            let taken = free.take(&n.inventory, grant);
            debug_assert!(taken, "a claim is picked from what is free then");
            let spare_here = Spare { slots: free_slots - slots.min(free_slots), free, inventory: n.inventory.clone() };
            spare.insert(*k, Some(spare_here));
        }
        let claims = claims.into_iter().map(|(k, _)| k).collect();
        return Some(Reservation { start: at.max(now), claims, spare });
    }
    None
}

/// [`reserve`] for a task that takes whole nodes: a node fits once every holding on it has
/// ended, so only holdings are counted (no node state is copied), and a claim leaves nothing.
fn reserve_whole(
    p: &PoolState,
    nodes: &KeyMap<NodeKey, NodeState>,
    task: TaskKey,
    wanted: usize,
    now: Time,
) -> Option<Reservation> {
    let usable = |n: &NodeState| n.schedulable && !n.held.contains_key(&task);
    // Idle nodes never appear among the ends.
    let idle: Vec<NodeKey> = p
        .free
        .range((p.slots_per_node, 0)..)
        .map(|&(_, k)| k)
        .filter(|k| nodes.get(k).is_some_and(|n| n.held.is_empty() && usable(n)))
        .take(wanted)
        .collect();
    let claim = |claims: Vec<NodeKey>, at: Time| {
        let spare = claims.iter().map(|&k| (k, None)).collect();
        Reservation { start: at.max(now), claims, spare }
    };
    if idle.len() == wanted {
        return Some(claim(idle, now));
    }
    let mut left: KeyMap<NodeKey, usize> = KeyMap::default();
    let mut freed: Vec<NodeKey> = Vec::new();
    for (at, ended) in ends_in_order(p, nodes) {
        if freed.len() + idle.len() < wanted {
            for k in ended.nodes {
                let Some(n) = nodes.get(&k).filter(|n| n.held.contains_key(&ended.task)) else { continue };
                let holdings = left.entry(k).or_insert(n.held.len());
                *holdings -= 1;
                if *holdings == 0 && usable(n) {
                    freed.push(k);
                }
            }
        }
        if freed.len() + idle.len() >= wanted {
            return Some(claim(freed.into_iter().chain(idle).take(wanted).collect(), at));
        }
    }
    None
}

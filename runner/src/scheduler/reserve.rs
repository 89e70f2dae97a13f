//! Reservations: when and where a task that cannot start will start, from the expected ends
//! of what runs now, and what it leaves for the tasks that would pass it. EASY keeps one per
//! pool, for its first task that cannot start; conservative backfilling one for each of the
//! first N, each computed with the earlier ones' claims held until they end.
//!
//! The finite ends of the pool's holdings are given back, in order, to copies of their nodes'
//! free state until the task fits: on one node (one of those just freed: it fit none before),
//! or, for a gang, on enough nodes (those freed by then first, then those free now). That
//! instant is the reservation's start, what it would take there its claims, and what the
//! claimed nodes would still have spare at that instant is what a task that outlasts the
//! start may use of them now. O(ends walked × node size), and for a gang O(nodes) once more.
//! An earlier reservation's claims count as held from now until that reservation ends (a
//! pessimistic view: a later reservation never fills the hole before an earlier one starts).

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
    /// When it ends, at the latest (None: its task has no limit).
    pub end: Option<Time>,
    /// The nodes it claims, in the order they were chosen.
    pub claims: Vec<NodeKey>,
    /// Per claimed node, what the claim takes and what is spare beside it at `start`; None:
    /// the whole node, nothing spare.
    spare: KeyMap<NodeKey, Option<Box<Claim>>>,
}

/// What a reservation takes of one node.
#[derive(Debug)]
struct Claim {
    /// Slots and resources; None: the whole node.
    takes: Option<(u32, Grant)>,
    /// What is spare at the start beside the claim (slots and resources), less what tasks
    /// started since that outlast the start took there; None when the claim is the whole node.
    spare: Option<Spare>,
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
        Some(match self.spare.get(&k)?.as_deref().and_then(|c| c.spare.as_ref()) {
            None => Leaves::Nothing,
            Some(s) => Leaves::Some(n.free.min(s.slots), n.avail.intersect(&s.free)),
        })
    }

    /// A task that outlasts the start took `slots` and `grant` on node `k`.
    pub fn took(&mut self, k: NodeKey, slots: u32, grant: &Grant) {
        if let Some(s) = self.spare.get_mut(&k).and_then(|c| c.as_deref_mut()).and_then(|c| c.spare.as_mut()) {
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

/// What frees something at an instant: a running task, or an earlier reservation's claim on
/// one node.
enum Freed {
    Task(Ended),
    Claim(NodeKey),
}

/// The earlier reservations' claims, by node: (until, slots and grant; None: the whole node).
type Prior<'a> = KeyMap<NodeKey, Vec<(Time, Option<&'a (u32, Grant)>)>>;

fn prior_claims(prior: &[Reservation]) -> Prior<'_> {
    let mut by_node: Prior = KeyMap::default();
    for r in prior {
        for (k, c) in &r.spare {
            by_node
                .entry(*k)
                .or_default()
                .push((r.end.unwrap_or(Time::MAX), c.as_deref().and_then(|c| c.takes.as_ref())));
        }
    }
    by_node
}

/// Running tasks' ends and the prior claims' ends, merged in time order (claims first at a tie).
fn frees_in_order<'a>(
    p: &'a PoolState,
    nodes: &'a KeyMap<NodeKey, NodeState>,
    prior: &Prior<'_>,
) -> impl Iterator<Item = (Time, Freed)> + 'a {
    let mut claims: Vec<(Time, NodeKey)> = prior
        .iter()
        .flat_map(|(k, cs)| cs.iter().map(|(until, _)| (*until, *k)))
        .filter(|c| c.0 != Time::MAX)
        .collect();
    claims.sort_unstable();
    let mut claims = claims.into_iter().peekable();
    let mut ends = ends_in_order(p, nodes).peekable();
    std::iter::from_fn(move || match (claims.peek(), ends.peek()) {
        (Some(c), Some(e)) if c.0 <= e.0 => claims.next().map(|(t, k)| (t, Freed::Claim(k))),
        (_, Some(_)) => ends.next().map(|(t, e)| (t, Freed::Task(e))),
        (Some(_), None) => claims.next().map(|(t, k)| (t, Freed::Claim(k))),
        (None, None) => None,
    })
}

/// The reservation of `task` (of `shape`, needing `need` per node) in pool `p` at `now`, with
/// the `prior` reservations' claims held until they end, or None when nothing that ends by a
/// known time makes room for it. Unless it `may_fit_now`, a one-node task is known to fit no
/// node now (a search found none) and the nodes free now are not looked at.
#[allow(clippy::too_many_arguments)]
pub(super) fn reserve(
    p: &PoolState,
    nodes: &KeyMap<NodeKey, NodeState>,
    task: TaskKey,
    shape: &Shape,
    need: Option<&Need>,
    now: Time,
    prior: &[Reservation],
    may_fit_now: bool,
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
    let lasts = |start: Time| shape.limit.map(|l| start.saturating_add(l));
    let prior = prior_claims(prior);
    if whole {
        return reserve_whole(p, nodes, task, wanted, now, &prior, lasts);
    }
    let fits = |n: &NodeState, free_slots: u32, avail: &NodeFree| {
        if !n.schedulable || n.excludes(task) {
            return None;
        }
        fit(&n.inventory, free_slots, avail, slots, need)
    };
    // What fits now: a gang may already have some of its nodes; a one-node task the pass did
    // not place (its search gave up at its bound, or claims kept it out) may start at once.
    let mut now_fit: KeyMap<NodeKey, Grant> = KeyMap::default();
    let mut now_order: Vec<NodeKey> = Vec::new();
    let look_now = if may_fit_now || shape.gang.is_some() { usize::MAX } else { 0 };
    for &(_, k) in p.free.range((slots, 0)..).take(look_now) {
        let n = &nodes[&k];
        let (free_slots, avail) = effective(&prior, all, k, n, n.free, &n.avail, now);
        let Some(g) = fits(n, free_slots, &avail) else { continue };
        if shape.gang.is_none() {
            let spare = std::iter::once((k, claim(n, slots, g, free_slots, avail.into_owned()))).collect();
            return Some(Reservation { start: now, end: lasts(now), claims: vec![k], spare });
        }
        now_fit.insert(k, g);
        now_order.push(k);
    }
    let mut untouched_fit = now_fit.len();
    // Nodes as they would be, once what ends by then has ended.
    let mut later: KeyMap<NodeKey, (u32, NodeFree)> = KeyMap::default();
    let mut fitting: Vec<(NodeKey, Grant)> = Vec::new();
    let mut fitting_set: KeyMap<NodeKey, ()> = KeyMap::default();
    let mut group: Vec<NodeKey> = Vec::new();
    for (at, freed) in frees_in_order(p, nodes, &prior) {
        group.clear();
        let (ended, freed) = match freed {
            Freed::Task(e) => (Some(e.task), e.nodes),
            Freed::Claim(k) => (None, vec![k]),
        };
        for k in freed {
            let Some(n) = nodes.get(&k) else { continue };
            let h = match ended {
                Some(t) => match n.held.get(&t) {
                    Some(h) => Some(h),
                    None => continue,
                },
                None => None,
            };
            let state = later.entry(k).or_insert_with(|| {
                if now_fit.contains_key(&k) {
                    untouched_fit -= 1;
                }
                (n.free, n.avail.clone())
            });
            if let Some(h) = h {
                state.0 = (state.0 + h.slots).min(all);
                state.1.give_back(&n.inventory, &h.grant);
            }
            // A task's nodes are distinct; only a claim's node may already be in the group.
            if ended.is_some() || !group.contains(&k) {
                group.push(k);
            }
        }
        for &k in &group {
            if fitting_set.contains_key(&k) {
                continue;
            }
            let n = &nodes[&k];
            let (free_slots, avail) = &later[&k];
            let (free_slots, avail) = effective(&prior, all, k, n, *free_slots, avail, at);
            if let Some(g) = fits(n, free_slots, &avail) {
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
        let mut keys = Vec::with_capacity(claims.len());
        for (k, grant) in claims {
            let n = &nodes[&k];
            let (free_slots, free) = later.remove(&k).unwrap_or_else(|| (n.free, n.avail.clone()));
            let (free_slots, free) = effective(&prior, all, k, n, free_slots, &free, at);
            spare.insert(k, claim(n, slots, grant, free_slots, free.into_owned()));
            keys.push(k);
        }
        let claims = keys;
        let start = at.max(now);
        return Some(Reservation { start, end: lasts(start), claims, spare });
    }
    None
}

/// A claim of `slots` and `grant` on node `n`, which has `free_slots` and `free` at the
/// reservation's start: what it takes and what it leaves spare.
fn claim(n: &NodeState, slots: u32, grant: Grant, free_slots: u32, mut free: NodeFree) -> Option<Box<Claim>> {
    let taken = free.take(&n.inventory, &grant);
    debug_assert!(taken, "a claim is picked from what is free then");
    let spare = Spare { slots: free_slots - slots.min(free_slots), free, inventory: n.inventory.clone() };
    Some(Box::new(Claim { takes: Some((slots, grant)), spare: Some(spare) }))
}

/// What node `k` (state `n`) has at `at` from `free_slots` and `avail`, less the prior claims
/// still held then.
fn effective<'b>(
    prior: &Prior<'_>,
    all: u32,
    k: NodeKey,
    n: &NodeState,
    mut free_slots: u32,
    avail: &'b NodeFree,
    at: Time,
) -> (u32, std::borrow::Cow<'b, NodeFree>) {
    let mut avail = std::borrow::Cow::Borrowed(avail);
    for (_, takes) in prior.get(&k).into_iter().flatten().filter(|c| c.0 > at) {
        let whole;
        let (claim_slots, grant) = match takes {
            Some((s, g)) => (*s, g),
            None => {
                whole = n.inventory.whole();
                (all, &whole)
            }
        };
        free_slots -= claim_slots.min(free_slots);
        avail.to_mut().remove(&n.inventory, grant);
    }
    (free_slots, avail)
}

/// [`reserve`] for a task that takes whole nodes: a node fits once every holding on it (and
/// every prior claim) has ended, so only those are counted (no node state is copied), and a
/// claim leaves nothing.
fn reserve_whole(
    p: &PoolState,
    nodes: &KeyMap<NodeKey, NodeState>,
    task: TaskKey,
    wanted: usize,
    now: Time,
    prior: &Prior<'_>,
    lasts: impl Fn(Time) -> Option<Time>,
) -> Option<Reservation> {
    let usable = |n: &NodeState| n.schedulable && !n.excludes(task);
    // Idle nodes never appear among the ends.
    let idle: Vec<NodeKey> = p
        .free
        .range((p.slots_per_node, 0)..)
        .map(|&(_, k)| k)
        .filter(|k| !prior.contains_key(k) && nodes.get(k).is_some_and(|n| n.held.is_empty() && usable(n)))
        .take(wanted)
        .collect();
    let claim = |claims: Vec<NodeKey>, at: Time| {
        let spare = claims.iter().map(|&k| (k, None)).collect();
        let start = at.max(now);
        Reservation { start, end: lasts(start), claims, spare }
    };
    if idle.len() == wanted {
        return Some(claim(idle, now));
    }
    let mut left: KeyMap<NodeKey, usize> = KeyMap::default();
    let mut freed: Vec<NodeKey> = Vec::new();
    let holdings = |k: NodeKey, n: &NodeState| n.held.len() + prior.get(&k).map_or(0, Vec::len);
    for (at, what) in frees_in_order(p, nodes, prior) {
        if freed.len() + idle.len() < wanted {
            let (ended, keys) = match what {
                Freed::Task(e) => (Some(e.task), e.nodes),
                Freed::Claim(k) => (None, vec![k]),
            };
            for k in keys {
                let Some(n) = nodes.get(&k).filter(|n| ended.is_none_or(|t| n.held.contains_key(&t))) else {
                    continue;
                };
                let left_here = left.entry(k).or_insert_with(|| holdings(k, n));
                *left_here -= 1;
                if *left_here == 0 && usable(n) {
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

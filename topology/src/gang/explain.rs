//! Saying why a request cannot be met, in terms a user can act on.

use super::index::FreeIndex;
use super::select::{count_eligible, fewest_leaves, lowest_switch};
use super::{GangRequest, NodeNeed, Resources};
use crate::fabric::Fabric;

/// Names what is missing for a request (`needs 512 nodes with 8 free GPUs; 300 are eligible`),
/// or says where it fits if it can be met now.
pub fn explain_unsatisfiable(fabric: &Fabric, free: &FreeIndex, request: &GangRequest) -> String {
    let n = request.nodes;
    let need = &request.per_node;
    if !free.matches(fabric) {
        return format!(
            "the free index was built for another fabric (this one has {} nodes and {} switches)",
            fabric.node_count(),
            fabric.switch_count()
        );
    }
    if n == 0 {
        return "requests no nodes".to_string();
    }
    if request.max_leaves == Some(0) {
        return "allows no leaf switch (--switches=0)".to_string();
    }
    let wanted = describe(n, need, free);
    if fabric.node_count() < n {
        return format!("{wanted}; the fabric has {} nodes", fabric.node_count());
    }
    if let Some(missing) = missing_capability(need, free) {
        return missing;
    }
    let Some(lc) = count_eligible(fabric, free, need) else {
        return "the free index was built for another fabric".to_string();
    };
    let eligible: u64 = lc.counts.iter().map(|&c| c as u64).sum();
    if eligible < n as u64 {
        let capable: u64 =
            fabric.roots().iter().map(|&r| free.tally(r.0 as usize, &lc.eligible_classes).total as u64).sum();
        return if capable < n as u64 {
            format!("{wanted}; {eligible} are eligible, and only {capable} could be even when idle")
        } else {
            format!("{wanted}; {eligible} are eligible ({capable} would be when idle)")
        };
    }
    // Per tree: how many eligible nodes, and how many on the best `max_leaves` leaves.
    let mut scratch = Vec::new();
    let mut best_tree = (0u64, "");
    let mut best_limited = (0u64, "");
    for &root in fabric.roots() {
        let Some(sw) = fabric.switch(root) else { continue };
        let counts = lc.counts.get(sw.leaves.0 as usize..sw.leaves.1 as usize).unwrap_or_default();
        let total: u64 = counts.iter().map(|&c| c as u64).sum();
        if total > best_tree.0 {
            best_tree = (total, sw.name());
        }
        if let Some(max) = request.max_leaves {
            scratch.clear();
            scratch.extend(counts.iter().copied());
            scratch.sort_unstable_by(|a, b| b.cmp(a));
            let top: u64 = scratch.iter().take(max as usize).map(|&c| c as u64).sum();
            if top > best_limited.0 {
                best_limited = (top, sw.name());
            }
        }
    }
    if best_tree.0 < n as u64 {
        return format!(
            "{wanted}; {eligible} are eligible, but at most {} under one top switch (`{}`), and a gang cannot span trees that share no switch",
            best_tree.0, best_tree.1
        );
    }
    if let Some(max) = request.max_leaves {
        if best_limited.0 < n as u64 {
            return format!(
                "{wanted} on at most {max} leaf switch{} (--switches={max}); {eligible} are eligible, but {} {}{}",
                plural_es(max as u64),
                if max == 1 { "the best leaf holds".to_string() } else { format!("the best {max} leaves hold") },
                best_limited.0,
                if best_limited.1.is_empty() { String::new() } else { format!(" (under `{}`)", best_limited.1) },
            );
        }
    }
    match lowest_switch(fabric, &lc.counts, n, request.max_leaves) {
        Some(choice) => {
            let sw = fabric.switch(choice.switch);
            format!(
                "satisfiable now: {n} node{} under `{}` (level {}) on {} leaf switch{}",
                plural(n as u64),
                sw.map_or("?", |s| s.name()),
                sw.map_or(0, |s| s.level()),
                choice.leaves,
                plural_es(choice.leaves as u64)
            )
        }
        None => {
            let leaves = fewest_leaves(&lc.counts, n, &mut scratch);
            format!("{wanted}; {eligible} are eligible, on at least {leaves} leaves")
        }
    }
}

/// Something no node has, whatever is running: too much of a resource, an unknown feature, or
/// no single kind of node with all of it.
fn missing_capability(need: &NodeNeed, free: &FreeIndex) -> Option<String> {
    let classes = free.classes();
    let largest = classes.iter().fold(Resources::ZERO, |m, c| m.max(&c.capacity));
    let r = &need.resources;
    if r.gpus > largest.gpus {
        return Some(format!("needs {} per node; the largest node has {}", count(r.gpus as u64, "GPU"), largest.gpus));
    }
    if r.cores > largest.cores {
        return Some(format!(
            "needs {} per node; the largest node has {}",
            count(r.cores as u64, "core"),
            largest.cores
        ));
    }
    if r.memory_bytes > largest.memory_bytes {
        return Some(format!(
            "needs {} of memory per node; the largest node has {}",
            bytes(r.memory_bytes),
            bytes(largest.memory_bytes)
        ));
    }
    let all = classes.iter().fold(super::FeatureSet::EMPTY, |s, c| s.union(c.features));
    if !all.contains(need.features) {
        let missing = super::FeatureSet::from_bits(need.features.bits() & !all.bits());
        let names = free.feature_names(missing);
        return Some(if names.is_empty() {
            "needs a feature no node has".to_string()
        } else {
            format!(
                "needs feature{} {}; no node has {}",
                plural(names.len() as u64),
                quoted(&names),
                pronoun(names.len())
            )
        });
    }
    if !classes.iter().any(|c| need.resources.fits_in(&c.capacity) && c.features.contains(need.features)) {
        return Some(format!("no node has all of {} at once, even when idle", parts(need, free, true).join(", ")));
    }
    None
}

/// `needs 512 nodes with 8 free GPUs and feature `ib``, or `needs 4 idle nodes with …`.
fn describe(n: u32, need: &NodeNeed, free: &FreeIndex) -> String {
    let kind = if need.exclusive { "idle node" } else { "node" };
    let parts = parts(need, free, need.exclusive);
    let mut out = format!("needs {n} {kind}{}", plural(n as u64));
    if !parts.is_empty() {
        out.push_str(" with ");
        match parts.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                out.push_str(&rest.join(", "));
                out.push_str(" and ");
                out.push_str(last);
            }
            _ => out.push_str(&parts.join("")),
        }
    }
    out
}

fn parts(need: &NodeNeed, free: &FreeIndex, whole: bool) -> Vec<String> {
    let adjective = if whole { "" } else { "free " };
    let r = &need.resources;
    let mut parts = Vec::new();
    if r.gpus > 0 {
        parts.push(format!("{} {adjective}GPU{}", r.gpus, plural(r.gpus as u64)));
    }
    if r.cores > 0 {
        parts.push(format!("{} {adjective}core{}", r.cores, plural(r.cores as u64)));
    }
    if r.memory_bytes > 0 {
        parts.push(format!("{} of {adjective}memory", bytes(r.memory_bytes)));
    }
    let names = free.feature_names(need.features);
    if !names.is_empty() {
        parts.push(format!("feature{} {}", plural(names.len() as u64), quoted(&names)));
    }
    parts
}

fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", plural(n))
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn plural_es(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "es"
    }
}

fn pronoun(n: usize) -> &'static str {
    if n == 1 {
        "it"
    } else {
        "them"
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    // Both are powers of two: a mask tests divisibility.
    if b >= GIB && b & (GIB - 1) == 0 {
        format!("{} GiB", b / GIB)
    } else if b >= MIB && b & (MIB - 1) == 0 {
        format!("{} MiB", b / MIB)
    } else {
        format!("{b} bytes")
    }
}

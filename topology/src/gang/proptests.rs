//! Property tests: the selection against a brute-force optimum on small fabrics, and the
//! incremental index against one rebuilt from scratch.

use proptest::prelude::*;

use super::*;
use crate::fabric::NodeId;

const GIB: u64 = 1 << 30;

/// Two kinds of node: CPU-only and GPU, with or without the `ib` feature.
fn spec(kind: u8) -> NodeSpec {
    let capacity = if kind & 1 == 0 { Resources::new(4, 0, 8 * GIB) } else { Resources::new(8, 2, 16 * GIB) };
    let features = if kind & 2 == 0 { vec![] } else { vec!["ib".to_string()] };
    NodeSpec { capacity, features }
}

/// A small fabric: up to 3 leaves of up to 4 nodes, in one of several shapes.
#[derive(Debug, Clone)]
struct Shape {
    leaf_sizes: Vec<u32>,
    kind: u8,
}

impl Shape {
    fn conf(&self) -> String {
        let mut text = String::new();
        for (i, size) in self.leaf_sizes.iter().enumerate() {
            text.push_str(&format!("SwitchName=l{i} Nodes=l{i}n[1-{size}]\n"));
        }
        let leaves = self.leaf_sizes.len();
        match (self.kind, leaves) {
            // Leaves alone: separate trees.
            (3, _) => {}
            // Two spines under a core.
            (1, 3) => text
                .push_str("SwitchName=s0 Switches=l[0-1]\nSwitchName=s1 Switches=l2\nSwitchName=top Switches=s[0-1]\n"),
            // Irregular: a spine and a leaf under the same top switch.
            (2, 3) => text.push_str("SwitchName=s0 Switches=l[0-1]\nSwitchName=top Switches=s0,l2\n"),
            _ => text.push_str(&format!("SwitchName=top Switches=l[0-{}]\n", leaves - 1)),
        }
        text
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    let size = prop::sample::select(vec![1u32, 2, 3, 4, 4, 4]);
    let leaves = prop::sample::select(vec![1usize, 2, 3, 3, 3]);
    (leaves.prop_flat_map(move |l| prop::collection::vec(size.clone(), l)), 0u8..4)
        .prop_map(|(leaf_sizes, kind)| Shape { leaf_sizes, kind })
}

/// Per node: its kind, and how used it is (0 idle, 1 busy, else partly, with random amounts).
fn nodes(count: usize) -> impl Strategy<Value = Vec<(u8, u8, u32, u32, u64)>> {
    let usage = prop::sample::select(vec![0u8, 0, 0, 0, 1, 2]);
    prop::collection::vec((0u8..4, usage, 0u32..=8, 0u32..=2, 0u64..=16), count)
}

fn state_of(spec: &NodeSpec, usage: u8, cores: u32, gpus: u32, gib: u64) -> Resources {
    match usage {
        0 => spec.capacity,
        1 => Resources::ZERO,
        _ => Resources::new(
            cores.min(spec.capacity.cores),
            gpus.min(spec.capacity.gpus),
            (gib * GIB).min(spec.capacity.memory_bytes),
        ),
    }
}

type RequestParams = (u32, u32, u32, u64, bool, bool, Option<u32>);

fn request_params() -> impl Strategy<Value = RequestParams> {
    // Mostly needs that a good part of the nodes meet, so that most cases have a gang.
    (
        prop::sample::select(vec![1u32, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 12]),
        prop::sample::select(vec![0u32, 0, 1, 2, 4, 8]),
        prop::sample::select(vec![0u32, 0, 0, 0, 1, 2]),
        prop::sample::select(vec![0, 0, 0, 4 * GIB, 16 * GIB]),
        prop::sample::select(vec![false, false, false, true]),
        any::<bool>(),
        prop::option::of(1u32..=3),
    )
}

/// The request, with `ib` as the index numbers it.
fn make_request(params: RequestParams, ib: FeatureSet) -> GangRequest {
    let (nodes, cores, gpus, memory_bytes, with_ib, exclusive, max_leaves) = params;
    GangRequest {
        nodes,
        per_node: NodeNeed {
            resources: Resources { cores, gpus, memory_bytes },
            features: if with_ib { ib } else { FeatureSet::EMPTY },
            exclusive,
        },
        max_leaves,
    }
}

/// Eligibility from first principles, not from the index's aggregates.
fn eligible(spec: &NodeSpec, free: &Resources, need: &NodeNeed, ib: FeatureSet) -> bool {
    let has_ib = spec.features.iter().any(|f| f == "ib");
    if need.features.contains(ib) && !need.features.is_empty() && !has_ib {
        return false;
    }
    if need.exclusive {
        *free == spec.capacity && need.resources.fits_in(&spec.capacity)
    } else {
        need.resources.fits_in(free)
    }
}

/// (top switch level, leaf count) of the best subset, by trying every subset of eligible nodes.
fn brute_force(fabric: &Fabric, candidates: &[NodeId], request: &GangRequest) -> Option<(u32, u32)> {
    let n = request.nodes as usize;
    let mut best: Option<(u32, u32)> = None;
    for mask in 0u32..(1 << candidates.len()) {
        if mask.count_ones() as usize != n {
            continue;
        }
        let subset: Vec<NodeId> = (0..candidates.len()).filter(|i| mask >> i & 1 == 1).map(|i| candidates[i]).collect();
        let Some(top) = fabric.lowest_common_switch_of(&subset) else { continue };
        let mut leaves: Vec<_> = subset.iter().map(|&node| fabric.leaf_of(node)).collect();
        leaves.sort();
        leaves.dedup();
        let leaves = leaves.len() as u32;
        if request.max_leaves.is_some_and(|m| leaves > m) {
            continue;
        }
        let key = (fabric.switch(top).unwrap().level(), leaves);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    best
}

fn build(shape: &Shape, nodes: &[(u8, u8, u32, u32, u64)]) -> (Fabric, Vec<NodeSpec>, Vec<Resources>) {
    let fabric = Fabric::parse(&shape.conf()).unwrap();
    let count = fabric.node_count() as usize;
    let specs: Vec<NodeSpec> = nodes[..count].iter().map(|&(kind, ..)| spec(kind)).collect();
    let free = nodes[..count].iter().zip(&specs).map(|(&(_, usage, c, g, m), s)| state_of(s, usage, c, g, m)).collect();
    (fabric, specs, free)
}

/// A feature set with `ib`, whatever bit the index gave it (or an unused bit if no node has it).
fn ib_of(index: &FreeIndex) -> FeatureSet {
    index.feature_set(&["ib"]).unwrap_or(FeatureSet::from_bits(1 << 63))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn selection_matches_brute_force(
        shape in shape(),
        nodes in nodes(12),
        params in request_params(),
    ) {
        let (fabric, specs, state) = build(&shape, &nodes);
        let index = FreeIndex::with_free(&fabric, &specs, &state).unwrap();
        let ib = ib_of(&index);
        let request = make_request(params, ib);
        let candidates: Vec<NodeId> = (0..fabric.node_count())
            .map(NodeId)
            .filter(|&n| eligible(&specs[n.0 as usize], &state[n.0 as usize], &request.per_node, ib))
            .collect();
        let best = brute_force(&fabric, &candidates, &request);
        let gang = select_gang(&fabric, &index, &request);
        let explanation = explain_unsatisfiable(&fabric, &index, &request);
        prop_assert_eq!(gang.is_some(), best.is_some(), "{:?} vs brute force {:?}\n{}", gang, best, shape.conf());
        prop_assert_eq!(explanation.starts_with("satisfiable now"), gang.is_some(), "{}", explanation);
        if let (Some(gang), Some((level, leaves))) = (gang, best) {
            prop_assert_eq!(gang.nodes().len(), request.nodes as usize);
            for pair in gang.nodes().windows(2) {
                prop_assert!(pair[0] < pair[1], "distinct and sorted: {:?}", gang.nodes());
            }
            for node in gang.nodes() {
                prop_assert!(candidates.contains(node), "{:?} is not eligible", node);
            }
            let top = fabric.lowest_common_switch_of(gang.nodes());
            prop_assert_eq!(gang.top_switch(), top);
            prop_assert_eq!(fabric.switch(top.unwrap()).unwrap().level(), level, "top switch level");
            prop_assert_eq!(gang.leaf_count(), leaves, "leaf count");
            prop_assert_eq!(Gang::new(&fabric, gang.nodes().to_vec(), gang.per_node(), gang.exclusive()), gang);
        }
    }

    #[test]
    fn incremental_index_equals_rebuilt(
        shape in shape(),
        nodes in nodes(12),
        ops in prop::collection::vec(
            (0u8..4, any::<u64>(), 0usize..12, 0u8..4, 0u32..=8, 0u32..=2, 0u64..=16, request_params()),
            1..40,
        ),
    ) {
        let (fabric, specs, mut state) = build(&shape, &nodes);
        let mut index = FreeIndex::with_free(&fabric, &specs, &state).unwrap();
        let ib = ib_of(&index);
        let mut held: Vec<Gang> = Vec::new();
        let count = fabric.node_count() as usize;
        for (op, seed, node, usage, c, g, m, params) in ops {
            let node = node % count;
            match op {
                0 => {
                    if let Some(gang) = select_gang(&fabric, &index, &make_request(params, ib)) {
                        index.allocate(&gang).unwrap();
                        apply(&mut state, &specs, &gang, true);
                        held.push(gang);
                    }
                }
                1 if !held.is_empty() => {
                    let gang = held.remove(seed as usize % held.len());
                    let before = index.clone();
                    match index.release(&gang) {
                        Ok(()) => apply(&mut state, &specs, &gang, false),
                        Err(_) => prop_assert_eq!(&index, &before, "a refused release changes nothing"),
                    }
                }
                2 => {
                    // An arbitrary gang, which the index may refuse.
                    let members: Vec<NodeId> = (0..count).filter(|i| seed >> i & 1 == 1).map(|i| NodeId(i as u32)).collect();
                    let gang = Gang::new(&fabric, members, Resources::new(c % 5, g % 3, m * GIB / 4), seed & (1 << 20) != 0);
                    let before = index.clone();
                    match index.allocate(&gang) {
                        Ok(()) => {
                            apply(&mut state, &specs, &gang, true);
                            held.push(gang);
                        }
                        Err(_) => prop_assert_eq!(&index, &before, "a refused allocation changes nothing"),
                    }
                }
                _ => {
                    let value = state_of(&specs[node], usage, c, g, m);
                    index.set_node(NodeId(node as u32), value).unwrap();
                    state[node] = value;
                }
            }
            let rebuilt = FreeIndex::with_free(&fabric, &specs, &state).unwrap();
            prop_assert_eq!(&index, &rebuilt);
        }
    }
}

/// What allocating (or releasing) a gang does to the model.
fn apply(state: &mut [Resources], specs: &[NodeSpec], gang: &Gang, allocate: bool) {
    for node in gang.nodes() {
        let n = node.0 as usize;
        state[n] = match (gang.exclusive(), allocate) {
            (true, true) => Resources::ZERO,
            (true, false) => specs[n].capacity,
            (false, true) => state[n].checked_sub(&gang.per_node()).unwrap(),
            (false, false) => state[n].checked_add(&gang.per_node()).unwrap(),
        };
    }
}

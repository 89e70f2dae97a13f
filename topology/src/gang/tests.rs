use super::*;
use crate::fabric::NodeId;

const GIB: u64 = 1 << 30;

const TWO_LEAVES: &str = "\
SwitchName=leaf1 Nodes=n[1-4]
SwitchName=leaf2 Nodes=n[5-8]
SwitchName=spine Switches=leaf[1-2]
";

fn gpu_node() -> NodeSpec {
    NodeSpec { capacity: Resources::new(64, 8, 512 * GIB), features: vec!["ib".into()] }
}

fn setup(text: &str) -> (Fabric, FreeIndex) {
    let fabric = Fabric::parse(text).unwrap();
    let free = FreeIndex::uniform(&fabric, &gpu_node()).unwrap();
    (fabric, free)
}

fn id(fabric: &Fabric, name: &str) -> NodeId {
    fabric.node_id(name).unwrap()
}

/// Marks nodes as fully used.
fn make_busy(fabric: &Fabric, free: &mut FreeIndex, names: &[&str]) {
    for name in names {
        free.set_node(id(fabric, name), Resources::ZERO).unwrap();
    }
}

fn whole_nodes(nodes: u32) -> GangRequest {
    GangRequest { nodes, per_node: NodeNeed { exclusive: true, ..NodeNeed::default() }, max_leaves: None }
}

fn names(fabric: &Fabric, gang: &Gang) -> Vec<String> {
    gang.nodes().iter().map(|&n| fabric.node_name(n).unwrap().to_string()).collect()
}

fn switch_name(fabric: &Fabric, gang: &Gang) -> String {
    fabric.switch(gang.top_switch().unwrap()).unwrap().name().to_string()
}

#[test]
fn small_gang_lands_under_one_leaf_the_fullest_one() {
    let (fabric, mut free) = setup(TWO_LEAVES);
    make_busy(&fabric, &mut free, &["n1", "n2"]);
    let gang = select_gang(&fabric, &free, &whole_nodes(2)).unwrap();
    assert_eq!(names(&fabric, &gang), ["n3", "n4"], "best fit: leaf1 is full after it, leaf2 stays whole");
    assert_eq!(switch_name(&fabric, &gang), "leaf1");
    assert_eq!(gang.leaf_count(), 1);
    let gang = select_gang(&fabric, &free, &whole_nodes(3)).unwrap();
    assert_eq!(names(&fabric, &gang), ["n5", "n6", "n7"]);
    assert_eq!(switch_name(&fabric, &gang), "leaf2");
}

#[test]
fn larger_gang_spans_the_spine_on_fewest_leaves() {
    let (fabric, mut free) = setup(TWO_LEAVES);
    make_busy(&fabric, &mut free, &["n1", "n5"]);
    let gang = select_gang(&fabric, &free, &whole_nodes(4)).unwrap();
    assert_eq!(switch_name(&fabric, &gang), "spine");
    assert_eq!(gang.leaf_count(), 2);
    assert_eq!(gang.nodes().len(), 4);
    assert!(select_gang(&fabric, &free, &whole_nodes(7)).is_none());
}

#[test]
fn max_leaves_is_a_hard_limit() {
    let (fabric, mut free) = setup(TWO_LEAVES);
    make_busy(&fabric, &mut free, &["n1", "n5", "n6"]);
    let mut request = whole_nodes(4);
    request.max_leaves = Some(1);
    assert!(select_gang(&fabric, &free, &request).is_none());
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &request),
        "needs 4 idle nodes on at most 1 leaf switch (--switches=1); 5 are eligible, but the best leaf holds 3 (under `spine`)"
    );
    request.max_leaves = Some(2);
    let gang = select_gang(&fabric, &free, &request).unwrap();
    assert_eq!(gang.leaf_count(), 2);
    request.nodes = 3;
    request.max_leaves = Some(1);
    assert_eq!(switch_name(&fabric, &select_gang(&fabric, &free, &request).unwrap()), "leaf1");
}

#[test]
fn best_fit_takes_the_fullest_leaves_and_keeps_large_blocks_whole() {
    let (fabric, mut free) = setup(
        "SwitchName=a Nodes=a[1-4]\nSwitchName=b Nodes=b[1-4]\nSwitchName=c Nodes=c[1-4]\nSwitchName=top Switches=a,b,c\n",
    );
    // Eligible per leaf: a 4, b 2, c 3.
    make_busy(&fabric, &mut free, &["b1", "b2", "c1"]);
    let gang = select_gang(&fabric, &free, &whole_nodes(5)).unwrap();
    assert_eq!(gang.leaf_count(), 2);
    assert_eq!(names(&fabric, &gang), ["b3", "b4", "c2", "c3", "c4"], "leaf a (4 free) stays whole");
}

#[test]
fn among_switches_of_one_level_best_fit_wins() {
    let (fabric, mut free) = setup(
        "SwitchName=a Nodes=a[1-2]\nSwitchName=b Nodes=b[1-2]\nSwitchName=c Nodes=c[1-2]\nSwitchName=d Nodes=d[1-2]\n\
         SwitchName=s1 Switches=a,b\nSwitchName=s2 Switches=c,d\nSwitchName=top Switches=s[1-2]\n",
    );
    make_busy(&fabric, &mut free, &["c1"]);
    // Both spines hold 3 nodes on 2 leaves; s2 has fewer eligible nodes, so s1 stays whole.
    let gang = select_gang(&fabric, &free, &whole_nodes(3)).unwrap();
    assert_eq!(switch_name(&fabric, &gang), "s2");
    assert_eq!(names(&fabric, &gang), ["c2", "d1", "d2"]);
}

#[test]
fn a_gang_never_spans_separate_trees() {
    let (fabric, free) = setup("SwitchName=a Nodes=a[1-2]\nSwitchName=b Nodes=b[1-2]\n");
    assert!(select_gang(&fabric, &free, &whole_nodes(3)).is_none());
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &whole_nodes(3)),
        "needs 3 idle nodes; 4 are eligible, but at most 2 under one top switch (`a`), and a gang cannot span trees that share no switch"
    );
}

#[test]
fn heterogeneous_nodes_gpu_needs_skip_cpu_nodes() {
    let fabric =
        Fabric::parse("SwitchName=cpu Nodes=c[1-4]\nSwitchName=gpu Nodes=g[1-2]\nSwitchName=top Switches=cpu,gpu\n")
            .unwrap();
    let cpu = NodeSpec { capacity: Resources::new(128, 0, 256 * GIB), features: vec![] };
    let specs: Vec<NodeSpec> = (0..6).map(|i| if i < 4 { cpu.clone() } else { gpu_node() }).collect();
    let mut free = FreeIndex::new(&fabric, &specs).unwrap();
    let need = NodeNeed { resources: Resources::new(8, 4, 0), ..NodeNeed::default() };
    let request = GangRequest { nodes: 2, per_node: need, max_leaves: None };
    let gang = select_gang(&fabric, &free, &request).unwrap();
    assert_eq!(names(&fabric, &gang), ["g1", "g2"]);
    free.allocate(&gang).unwrap();
    // Each GPU node has 4 GPUs left: a second gang of the same shape fits on the same nodes.
    assert_eq!(free.node_free(id(&fabric, "g1")), Some(Resources::new(56, 4, 512 * GIB)));
    let again = select_gang(&fabric, &free, &request).unwrap();
    assert_eq!(names(&fabric, &again), ["g1", "g2"]);
    free.allocate(&again).unwrap();
    assert!(select_gang(&fabric, &free, &request).is_none());
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &request),
        "needs 2 nodes with 4 free GPUs and 8 free cores; 0 are eligible (2 would be when idle)"
    );
    // A CPU-only need may use any node; the leaf with fewer eligible nodes goes first.
    let small = GangRequest {
        nodes: 1,
        per_node: NodeNeed { resources: Resources::new(4, 0, 0), ..NodeNeed::default() },
        max_leaves: None,
    };
    assert_eq!(names(&fabric, &select_gang(&fabric, &free, &small).unwrap()), ["g1"], "fewest eligible: the GPU leaf");
    let on_gpu_leaf = GangRequest { nodes: 2, ..small };
    free.set_node(id(&fabric, "c2"), Resources::new(2, 0, GIB)).unwrap();
    let gang = select_gang(&fabric, &free, &on_gpu_leaf).unwrap();
    assert_eq!(names(&fabric, &gang), ["g1", "g2"], "the GPU leaf has exactly two eligible nodes left");
}

#[test]
fn features_are_required() {
    let fabric = Fabric::parse(TWO_LEAVES).unwrap();
    let plain = NodeSpec { capacity: Resources::new(64, 8, 512 * GIB), features: vec!["a100".into()] };
    let specs: Vec<NodeSpec> = (0..8).map(|i| if i % 2 == 0 { gpu_node() } else { plain.clone() }).collect();
    let free = FreeIndex::new(&fabric, &specs).unwrap();
    let ib = free.feature_set(&["ib"]).unwrap();
    let request =
        GangRequest { nodes: 2, per_node: NodeNeed { features: ib, ..NodeNeed::default() }, max_leaves: None };
    let gang = select_gang(&fabric, &free, &request).unwrap();
    assert_eq!(names(&fabric, &gang), ["n1", "n3"]);
    let both = free.feature_set(&["ib", "a100"]).unwrap();
    let request =
        GangRequest { nodes: 1, per_node: NodeNeed { features: both, ..NodeNeed::default() }, max_leaves: None };
    assert!(select_gang(&fabric, &free, &request).is_none());
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &request),
        "no node has all of features `ib`, `a100` at once, even when idle"
    );
    assert_eq!(free.feature_set(&["nvlink"]), Err(IndexError::UnknownFeature { feature: "nvlink".into() }));
}

#[test]
fn explanations_name_what_is_missing() {
    let fabric = Fabric::fat_tree(1000, 32, &[16]).unwrap();
    let mut free = FreeIndex::uniform(&fabric, &gpu_node()).unwrap();
    for n in 0..700 {
        free.set_node(NodeId(n), Resources::ZERO).unwrap();
    }
    let gpus = |g: u32, nodes: u32| GangRequest {
        nodes,
        per_node: NodeNeed { resources: Resources::new(0, g, 0), ..NodeNeed::default() },
        max_leaves: None,
    };
    assert_eq!(explain_unsatisfiable(&fabric, &free, &gpus(9, 1)), "needs 9 GPUs per node; the largest node has 8");
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &gpus(8, 512)),
        "needs 512 nodes with 8 free GPUs; 300 are eligible (1000 would be when idle)"
    );
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &gpus(8, 2000)),
        "needs 2000 nodes with 8 free GPUs; the fabric has 1000 nodes"
    );
    let memory = GangRequest {
        nodes: 1,
        per_node: NodeNeed { resources: Resources::new(0, 0, 600 * GIB), ..NodeNeed::default() },
        max_leaves: None,
    };
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &memory),
        "needs 600 GiB of memory per node; the largest node has 512 GiB"
    );
    assert_eq!(explain_unsatisfiable(&fabric, &free, &gpus(8, 0)), "requests no nodes");
    assert_eq!(
        explain_unsatisfiable(&fabric, &free, &gpus(8, 200)),
        "satisfiable now: 200 nodes under `spine2` (level 1) on 7 leaf switches"
    );
}

#[test]
fn allocate_and_release_are_all_or_nothing() {
    let (fabric, mut free) = setup(TWO_LEAVES);
    let before = free.clone();
    let need = Resources::new(32, 4, GIB);
    let gang = Gang::new(&fabric, vec![NodeId(2), NodeId(0)], need, false);
    assert_eq!(gang.nodes(), &[NodeId(0), NodeId(2)]);
    assert_eq!(free.release(&gang), Err(IndexError::NotAllocated { node: 0 }));
    assert_eq!(free, before);
    free.allocate(&gang).unwrap();
    free.allocate(&gang).unwrap();
    assert_eq!(free.node_free(NodeId(0)), Some(Resources::new(0, 0, 510 * GIB)));
    assert_eq!(free.allocate(&gang), Err(IndexError::NotEnoughFree { node: 0 }));
    let whole = Gang::new(&fabric, vec![NodeId(1), NodeId(2)], Resources::ZERO, true);
    let snapshot = free.clone();
    assert_eq!(free.allocate(&whole), Err(IndexError::NotEnoughFree { node: 2 }), "node 2 is not idle");
    assert_eq!(free, snapshot, "node 1 was not taken either");
    free.release(&gang).unwrap();
    free.release(&gang).unwrap();
    assert_eq!(free, before);
    let twice = Gang::new(&fabric, vec![NodeId(1), NodeId(1)], need, false);
    assert_eq!(free.allocate(&twice), Err(IndexError::DuplicateNode { node: 1 }));
    let outside = Gang::new(&fabric, vec![NodeId(99)], need, false);
    assert_eq!(free.allocate(&outside), Err(IndexError::UnknownNode { node: 99 }));
    assert_eq!(free.set_node(NodeId(0), Resources::new(65, 0, 0)), Err(IndexError::FreeExceedsCapacity { node: 0 }));
    assert_eq!(free, before);
}

#[test]
fn index_refuses_mismatched_specs_and_fabrics() {
    let fabric = Fabric::parse(TWO_LEAVES).unwrap();
    assert_eq!(FreeIndex::new(&fabric, &[gpu_node()]), Err(IndexError::SpecCount { given: 1, nodes: 8 }));
    let many: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
    let spec = NodeSpec { capacity: Resources::new(1, 0, 0), features: many };
    assert_eq!(FreeIndex::uniform(&fabric, &spec), Err(IndexError::TooManyFeatures));
    let other = Fabric::fat_tree(4, 2, &[]).unwrap();
    let free = FreeIndex::uniform(&other, &gpu_node()).unwrap();
    assert!(select_gang(&fabric, &free, &whole_nodes(1)).is_none());
    assert!(explain_unsatisfiable(&fabric, &free, &whole_nodes(1))
        .starts_with("the free index was built for another fabric"));
}

#[test]
fn zero_requests_and_zero_needs() {
    let (fabric, mut free) = setup(TWO_LEAVES);
    assert!(select_gang(&fabric, &free, &whole_nodes(0)).is_none());
    make_busy(&fabric, &mut free, &["n1", "n2", "n3", "n4", "n5"]);
    let nothing = GangRequest { nodes: 4, per_node: NodeNeed::default(), max_leaves: None };
    let gang = select_gang(&fabric, &free, &nothing).unwrap();
    assert_eq!(names(&fabric, &gang), ["n1", "n2", "n3", "n4"], "a shared empty need fits anywhere, busy nodes first");
    let mut request = whole_nodes(1);
    request.max_leaves = Some(0);
    assert!(select_gang(&fabric, &free, &request).is_none());
    assert_eq!(explain_unsatisfiable(&fabric, &free, &request), "allows no leaf switch (--switches=0)");
}

#[test]
fn incremental_updates_match_a_rebuild() {
    let fabric = Fabric::fat_tree(64, 4, &[2, 2]).unwrap();
    let spec = gpu_node();
    let specs = vec![spec.clone(); 64];
    let mut free = FreeIndex::new(&fabric, &specs).unwrap();
    let mut state: Vec<Resources> = vec![spec.capacity; 64];
    for step in 0..200u32 {
        let n = (step * 37 + 11) % 64;
        let value = match step % 4 {
            0 => Resources::ZERO,
            1 => spec.capacity,
            2 => Resources::new(step % 64, step % 8, (step as u64 % 512) * GIB),
            _ => Resources::new(1, 0, 0),
        };
        free.set_node(NodeId(n), value).unwrap();
        state[n as usize] = value;
        assert_eq!(free, FreeIndex::with_free(&fabric, &specs, &state).unwrap(), "after step {step}");
    }
    assert!(free.heap_bytes() > 64 * std::mem::size_of::<Resources>());
}

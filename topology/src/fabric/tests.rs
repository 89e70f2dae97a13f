use proptest::prelude::*;

use super::*;

const TWO_LEVEL: &str = "\
# Two leaves under one spine, and a lone leaf as its own tree.
SwitchName=leaf1 Nodes=node[01-04]
SwitchName=leaf2 Nodes=node[05-08] LinkSpeed=100
SwitchName=spine1 Switches=leaf[1-2]

SwitchName=island Nodes=lone[1-2]   # another tree
";

fn fabric(text: &str) -> Fabric {
    Fabric::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn node(f: &Fabric, name: &str) -> NodeId {
    f.node_id(name).unwrap_or_else(|| panic!("no node {name}"))
}

fn switch_name(f: &Fabric, id: Option<SwitchId>) -> Option<&str> {
    id.and_then(|s| f.switch(s)).map(Switch::name)
}

/// `Fabric::parse(text)` fails with `message`.
fn check_error(text: &str, message: &str) {
    match Fabric::parse(text) {
        Ok(_) => panic!("{text:?} parsed"),
        Err(e) => assert_eq!(e.to_string(), message, "for {text:?}"),
    }
}

#[test]
fn parses_switches_levels_and_nodes() {
    let f = fabric(TWO_LEVEL);
    assert_eq!(f.node_count(), 10);
    assert_eq!(f.switch_count(), 4);
    assert_eq!(f.levels(), 2);
    let names: Vec<&str> = f.switches().iter().map(Switch::name).collect();
    assert_eq!(names, ["spine1", "leaf1", "leaf2", "island"], "depth-first pre-order, roots as defined");
    let spine = f.switch(f.switch_id("spine1").unwrap()).unwrap();
    assert_eq!(spine.level(), 1);
    assert_eq!(spine.node_count(), 8);
    assert_eq!(spine.parent(), None);
    let leaf2 = f.switch(f.switch_id("leaf2").unwrap()).unwrap();
    assert_eq!((leaf2.level(), leaf2.depth(), leaf2.link_speed()), (0, 1, Some(100)));
    assert_eq!(leaf2.parent(), f.switch_id("spine1"));
    assert!(leaf2.is_leaf());
    let leaf_names: Vec<&str> = f.leaves().iter().map(|&l| f.switch(l).unwrap().name()).collect();
    assert_eq!(leaf_names, ["leaf1", "leaf2", "island"]);
    assert_eq!(f.roots().len(), 2);
    assert_eq!(f.node_name(NodeId(0)), Some("node01"));
    assert_eq!(switch_name(&f, f.leaf_of(node(&f, "node06"))), Some("leaf2"));
    assert_eq!(f.switches_at_level(1), &[f.switch_id("spine1").unwrap()]);
}

#[test]
fn distance_counts_links() {
    let f = fabric(TWO_LEVEL);
    let d = |a: &str, b: &str| f.distance(node(&f, a), node(&f, b));
    assert_eq!(d("node01", "node01"), Some(0));
    assert_eq!(d("node01", "node04"), Some(2));
    assert_eq!(d("node01", "node05"), Some(4));
    assert_eq!(d("lone1", "lone2"), Some(2));
    assert_eq!(d("node01", "lone1"), None, "different trees share no switch");
    assert_eq!(f.distance(NodeId(0), NodeId(99)), None);
}

#[test]
fn lowest_common_switch_of_nodes() {
    let f = fabric(TWO_LEVEL);
    let lcs = |names: &[&str]| {
        let ids: Vec<NodeId> = names.iter().map(|n| node(&f, n)).collect();
        switch_name(&f, f.lowest_common_switch_of(&ids)).map(str::to_string)
    };
    assert_eq!(lcs(&["node02"]).as_deref(), Some("leaf1"));
    assert_eq!(lcs(&["node02", "node03"]).as_deref(), Some("leaf1"));
    assert_eq!(lcs(&["node02", "node07", "node03"]).as_deref(), Some("spine1"));
    assert_eq!(lcs(&["node02", "lone1"]), None);
    assert_eq!(lcs(&[]), None);
    assert_eq!(switch_name(&f, f.lowest_common_switch(node(&f, "node05"), node(&f, "node08"))), Some("leaf2"));
}

#[test]
fn irregular_tree_levels_follow_slurm() {
    // A level-2 switch may have a leaf right below it.
    let f = fabric("SwitchName=l1 Nodes=a[1-2]\nSwitchName=l2 Nodes=b[1-2]\nSwitchName=s1 Switches=l1\nSwitchName=top Switches=s1,l2\n");
    let level = |n: &str| f.switch(f.switch_id(n).unwrap()).unwrap().level();
    assert_eq!((level("l1"), level("s1"), level("top"), level("l2")), (0, 1, 2, 0));
    assert_eq!(f.distance(node(&f, "a1"), node(&f, "b1")), Some(5));
}

#[test]
fn syntax_details() {
    let f = fabric("switchname=s1 NODES=\"n[1-2]\"\n  # only a comment\nSwitchName=s2 \\\n  Nodes=m1 # trailing\n");
    assert_eq!(f.node_count(), 3);
    assert_eq!(switch_name(&f, f.leaf_of(node(&f, "m1"))), Some("s2"));
    let f = fabric("SwitchName=s\\#1 Nodes=n1\n");
    assert!(f.switch_id("s#1").is_some());
    assert_eq!(fabric("").node_count(), 0);
}

#[test]
fn blocks_and_block_sizes() {
    let f = fabric(
        "SwitchName=l1 Nodes=g[1-8]\nBlockName=nvl1 Nodes=g[1-4]\nBlockName=nvl2 Nodes=g[5-8]\nBlockSizes=4,8\n",
    );
    assert_eq!(f.blocks().len(), 2);
    assert_eq!(f.blocks()[1].name(), "nvl2");
    assert_eq!(f.block_of(node(&f, "g6")), Some(BlockId(1)));
    assert_eq!(f.block_sizes(), &[4, 8]);
    // Blocks alone: the nodes sit under one virtual switch.
    let f = fabric("BlockName=b1 Nodes=g[1-2]\nBlockName=b2 Nodes=g[3-4]\n");
    assert_eq!(f.node_count(), 4);
    assert_eq!(f.switch_count(), 1);
    assert_eq!(f.distance(node(&f, "g1"), node(&f, "g4")), Some(2));
}

#[test]
fn errors_name_the_line_and_the_problem() {
    check_error(
        "SwitchName=s1 Nodes=n1\n\nSwitchName=s1 Nodes=n2\n",
        "line 3: switch `s1` defined twice (first on line 1)",
    );
    check_error(
        "SwitchName=s1 Nodes=n1 Speed=5\n",
        "line 1: unknown key `Speed` (expected SwitchName, Switches, Nodes, LinkSpeed, BlockName or BlockSizes)",
    );
    check_error(
        "SwitchName=s1 Nodes=n[1-2]\nSwitchName=s2 Nodes=n[2-3]\n",
        "line 2: node `n2` is under two leaf switches: `s2` and `s1` (line 1)",
    );
    check_error(
        "SwitchName=l1 Nodes=n1\nSwitchName=top Switches=l[1-2]\n",
        "line 2: switch `top` references unknown switch `l2`",
    );
    check_error(
        "SwitchName=l1 Nodes=n1\nSwitchName=a Switches=b,l1\nSwitchName=b Switches=a\n",
        "line 2: switches form a cycle: a -> b -> a",
    );
    check_error("SwitchName=a Switches=a\n", "line 1: switches form a cycle: a -> a");
    check_error(
        "SwitchName=l1 Nodes=n1\nSwitchName=a Switches=l1\nSwitchName=b Switches=l1\n",
        "line 3: switch `l1` is under two switches: `b` and `a` (line 2)",
    );
    check_error("SwitchName=a Switches=l1,l1\nSwitchName=l1 Nodes=n1\n", "line 1: `a` lists `l1` twice");
    check_error("SwitchName=l1 Nodes=n[1,1]\n", "line 1: `l1` lists `n1` twice");
    check_error("# header\nSwitchName=l1 Nodes=n[1-3\n", "line 2: Nodes=: unterminated '[' in `n[1-3`");
    check_error("SwitchName=l1\n", "line 1: switch `l1` has neither Nodes= nor Switches=");
    check_error(
        "SwitchName=l1 Nodes=n1 Switches=l2\n",
        "line 1: switch `l1` has both Nodes= and Switches=; a switch is a leaf or above switches, not both",
    );
    check_error(
        "Nodes=n1 SwitchName=l1\n",
        "line 1: a line starts with SwitchName=, BlockName= or BlockSizes=, not `Nodes=`",
    );
    check_error("SwitchName=l1 Nodes=n1 junk\n", "line 1: expected Key=Value, found `junk`");
    check_error("SwitchName=l1 Nodes=\n", "line 1: `Nodes=` has no value");
    check_error("SwitchName=l1 Nodes=n1 nodes=n2\n", "line 1: `nodes=` given twice");
    check_error("SwitchName=l1 Nodes=n1 LinkSpeed=fast\n", "line 1: LinkSpeed `fast` is not a whole number");
    check_error("BlockName=b1 Switches=l1\n", "line 1: `Switches=` does not belong on a BlockName line");
    check_error("BlockSizes=4,x\n", "line 1: BlockSizes `4,x` is not a list of positive whole numbers");
    check_error("BlockSizes=4\nBlockSizes=8\n", "line 2: BlockSizes given twice (first on line 1)");
    check_error("BlockName=b1 Nodes=n1\nBlockName=b1 Nodes=n2\n", "line 2: block `b1` defined twice (first on line 1)");
    check_error(
        "BlockName=b1 Nodes=n[1-2]\nBlockName=b2 Nodes=n2\n",
        "line 2: node `n2` is in two blocks: `b2` and `b1` (line 1)",
    );
    check_error(
        "SwitchName=l1 Nodes=n1\nBlockName=b1 Nodes=n[1-2]\n",
        "line 2: node `n2` of block `b1` is under no leaf switch",
    );
    check_error(
        "SwitchName=l1 \\\n  Nodes=n1 \\\n  Bogus=1\n",
        "line 1: unknown key `Bogus` (expected SwitchName, Switches, Nodes, LinkSpeed, BlockName or BlockSizes)",
    );
}

#[test]
fn fat_tree_of_ten_thousand_nodes_has_three_levels() {
    let f = Fabric::fat_tree(10_000, 32, &[16]).unwrap();
    assert_eq!(f.node_count(), 10_000);
    assert_eq!(f.leaves().len(), 313);
    assert_eq!(f.switches_at_level(1).len(), 20);
    assert_eq!(f.switches_at_level(2).len(), 1);
    assert_eq!(f.levels(), 3);
    assert_eq!(f.roots().len(), 1);
    let first = f.node_id("node00001").unwrap();
    let last = f.node_id("node10000").unwrap();
    assert_eq!(f.distance(first, NodeId(31)), Some(2));
    assert_eq!(f.distance(first, NodeId(32)), Some(4));
    assert_eq!(f.distance(first, last), Some(6));
    assert_eq!(f.switch(f.leaf_of(last).unwrap()).unwrap().node_count(), 10_000 - 312 * 32);
}

#[test]
fn fat_tree_shapes() {
    let f = Fabric::fat_tree(12, 4, &[]).unwrap();
    assert_eq!((f.leaves().len(), f.levels(), f.roots().len()), (3, 2, 1));
    let f = Fabric::fat_tree(3, 4, &[2, 2]).unwrap();
    assert_eq!((f.switch_count(), f.levels()), (1, 1), "one leaf is the whole tree");
    let f = Fabric::fat_tree(64, 2, &[2, 2, 2]).unwrap();
    assert_eq!(f.levels(), 5, "32 leaves, 16, 8, 4, then one root");
    assert_eq!(Fabric::fat_tree(10, 0, &[]), Err(ShapeError::ZeroNodesPerLeaf));
    assert_eq!(Fabric::fat_tree(10, 2, &[4, 0]), Err(ShapeError::ZeroFanout { level: 2 }));
    assert_eq!(Fabric::fat_tree(0, 2, &[]), Err(ShapeError::NoNodes));
}

#[test]
fn flat_fabric_puts_everything_under_one_switch() {
    let names: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    let f = Fabric::flat(&names).unwrap();
    assert_eq!((f.node_count(), f.switch_count(), f.levels()), (5, 1, 1));
    assert_eq!(f.distance(NodeId(0), NodeId(4)), Some(2));
    assert_eq!(f.switch(f.roots()[0]).unwrap().name(), build::FLAT_SWITCH);
    let twice = vec!["a".to_string(), "a".to_string()];
    assert_eq!(Fabric::flat(&twice), Err(ShapeError::DuplicateNode { name: "a".into() }));
    assert_eq!(Fabric::flat(&[]).unwrap().node_count(), 0);
}

#[test]
fn deep_chains_do_not_overflow_the_stack() {
    let mut text = String::from("SwitchName=s0 Nodes=n1\n");
    for i in 1..20_000 {
        text.push_str(&format!("SwitchName=s{i} Switches=s{}\n", i - 1));
    }
    let f = fabric(&text);
    assert_eq!(f.levels(), 20_000);
    assert_eq!(f.distance(NodeId(0), NodeId(0)), Some(0));
}

proptest! {
    #[test]
    fn parse_never_panics(text in "(((SwitchName|Switches|Nodes|BlockName|BlockSizes|LinkSpeed|#)=?[a-c0-3\\[\\],\\-]{0,6}[ \\n\\\\]?){0,12})") {
        let _ = Fabric::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_any_text(text in "\\PC{0,80}") {
        let _ = Fabric::parse(&text);
    }
}

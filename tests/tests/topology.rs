//! Topology end to end: a launcher reports a declared topology, and `gangway topo` shows
//! trees, plans and gangs.

use std::process::Command;

use gangway_tests::{bin, topology_fixture, Cluster, Options};

fn topo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("gangway")).arg("topo").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_launcher_reports_its_declared_topology() {
    let xml = topology_fixture("dgx_like.xml");
    let cluster = Cluster::start(Options { nodes: 1, topology_xml: Some(xml), ..Options::default() });
    let n = cluster.client().get_node("node1").unwrap();
    assert_eq!((n.resources.cpus, n.resources.cores, n.resources.gpus.len()), (64, 32, 8));
    let t = n.topology.expect("topology reported");
    assert_eq!(t.nics.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]);
    assert_eq!(t.gpus[4].numa, Some(1));
}

#[test]
fn topo_shows_trees_plans_and_gangs() {
    let xml = topology_fixture("dgx_like.xml");
    let xml = xml.to_str().unwrap();
    let (code, out, _) = topo(&["--xml", xml]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Package 1")
            && out.contains("NUMA 1 (os 1")
            && out.contains("GPU 7")
            && out.contains("NIC mlx5_3"),
        "{out}"
    );
    let (code, out, err) = topo(&["--xml", xml, "--plan", "ranks=8,gpus-per-rank=1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r7 = &v["ranks"][7];
    assert_eq!(r7["rank"], 7);
    assert_eq!(r7["cpus"], serde_json::json!((56..64).collect::<Vec<u32>>()));
    assert_eq!(
        (r7["gpus"][0].as_u64(), r7["nics"][0].as_str(), r7["numa_nodes"][0].as_u64()),
        (Some(7), Some("mlx5_3"), Some(1))
    );
    assert_eq!(r7["env"]["CUDA_VISIBLE_DEVICES"], "7");
    let (code, _, err) = topo(&["--xml", xml, "--plan", "ranks=9,gpus-per-rank=1"]);
    assert_ne!(code, 0);
    assert!(err.contains("needs 9 GPUs, node has 8"), "{err}");
    let (code, out, _) = topo(&["--synthetic", "pack:2 numa:2 core:8 pu:2"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Machine: 2 packages, 4 NUMA nodes, 32 cores, 64 PUs"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("topology.conf");
    std::fs::write(&conf, "# two leaves\nSwitchName=leaf1 Nodes=n[01-04]\nSwitchName=leaf2 Nodes=n[05-08]\nSwitchName=spine Switches=leaf[1-2]\n").unwrap();
    let conf = conf.to_str().unwrap();
    let (code, out, _) = topo(&["--fabric", conf, "--gang", "nodes=3", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["leaves"], 1, "three nodes fit under one leaf: {out}");
    let (code, _, err) = topo(&["--fabric", conf, "--gang", "nodes=6,max-leaves=1"]);
    assert_ne!(code, 0);
    assert!(err.contains("no gang fits"), "{err}");
    std::fs::write(dir.path().join("bad.conf"), "SwitchName=a Nodes=x[1-2]\nSwitchName=a Nodes=y1\n").unwrap();
    let (code, _, err) = topo(&["--fabric", dir.path().join("bad.conf").to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("line 2"), "{err}");
}

//! hwloc discovery against the shared fixtures, synthetic topologies and the local machine.

use std::collections::HashSet;
use std::path::PathBuf;

use super::devices::{indexed, ports_from_infos, NetDev};
use super::*;
use crate::model::{LinkLayer, NicPort};

/// A file of the fixture tree kept in the repository (`topology/tests/fixtures`, a copy of
/// the shared topologies). Always `Some`: a missing fixture fails the test that needs it.
fn fixture(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    assert!(path.exists(), "fixture {} is missing", path.display());
    Some(path)
}

fn load_fixture(rel: &str) -> Option<NodeTopology> {
    let path = fixture(rel)?;
    Some(from_xml_file(&path).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

/// Counts a fixture must give: packages, NUMA nodes, cores, PUs, L2, L3, GPUs, NICs.
type Counts = (usize, usize, usize, usize, usize, usize, usize, usize);

fn counts(t: &NodeTopology) -> Counts {
    let level = |l| t.caches.iter().filter(|c| c.level == l).count();
    (t.packages.len(), t.numa_nodes.len(), t.cores.len(), t.pu_count(), level(2), level(3), t.gpus.len(), t.nics.len())
}

/// What every model must satisfy, whatever the machine.
fn check_invariants(name: &str, t: &NodeTopology) {
    let mut pus = HashSet::new();
    for (i, c) in t.cores.iter().enumerate() {
        assert_eq!(c.index as usize, i, "{name}: core order");
        assert!((c.numa as usize) < t.numa_nodes.len(), "{name}: core {i} NUMA {}", c.numa);
        assert!((c.package as usize) < t.packages.len(), "{name}: core {i} package");
        assert!(!c.pus.is_empty(), "{name}: core {i} has no PU");
        assert!(c.pus.iter().all(|p| pus.insert(*p)), "{name}: a PU is in two cores");
        assert!(c.caches.iter().all(|&k| t.caches[k as usize].cores.contains(&c.index)), "{name}: core {i} caches");
    }
    for n in &t.numa_nodes {
        assert!(n.cores.iter().all(|&c| t.cores[c as usize].numa == n.index), "{name}: NUMA {} cores", n.index);
        assert!(t.packages[n.package as usize].numa_nodes.contains(&n.index), "{name}: NUMA {} package", n.index);
    }
    let numa_core_total: usize = t.numa_nodes.iter().map(|n| n.cores.len()).sum();
    assert_eq!(numa_core_total, t.cores.len(), "{name}: every core in one NUMA node");
    assert!(t.caches.iter().all(|c| c.size_bytes > 0 && !c.cores.is_empty()), "{name}: caches");
    let indices: Vec<u32> = t.gpus.iter().map(|g| g.index).collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{name}: GPU indices {indices:?}");
    for g in &t.gpus {
        assert_eq!(g.pci_bus_id.len(), 12, "{name}: GPU bus id {}", g.pci_bus_id);
        assert!(g.numa.is_none_or(|n| (n as usize) < t.numa_nodes.len()), "{name}: GPU NUMA");
        assert!(!g.nvlink_peers.contains(&g.index), "{name}: GPU {} is its own peer", g.index);
    }
    assert!(t.memory_bytes > 0, "{name}: memory");
}

#[test]
fn hwloc_fixture_counts() {
    // Counts as the XML files have them (192em64t-24n8c2t: 24 nodes × 8 cores × 2 threads).
    #[rustfmt::skip]
    let table: [(&str, Counts); 10] = [
        ("dgx_like.xml",                                (2, 2, 32, 64, 0, 2, 8, 4)),
        ("h100-vm/h100-vm.xml",                         (1, 1, 16, 16, 16, 1, 1, 0)),
        ("vm_topology.xml",                             (1, 1, 2, 2, 2, 1, 0, 0)),
        ("hwloc-tests/192em64t-24n8c2t.xml",            (24, 24, 192, 384, 192, 24, 0, 1)),
        // Three Tesla M2070s (10de:06d2) with no cuda/nvml devices: found by the PCI fallback.
        ("hwloc-tests/24em64t-2n6c2t-pci.xml",          (2, 2, 12, 24, 12, 2, 3, 1)),
        ("hwloc-tests/32em64t-2n8c2t-pci-normalio.xml", (2, 2, 16, 32, 16, 2, 1, 1)),
        ("hwloc-tests/32em64t-2n8c2t-pci-wholeio.xml",  (2, 2, 16, 32, 16, 2, 1, 1)),
        ("hwloc-tests/96em64t-4n4d3ca2co-pci.xml",      (16, 4, 96, 96, 48, 16, 0, 0)),
        ("hwloc-tests/nvidiaDGX2.xml",                  (2, 2, 4, 4, 4, 2, 16, 0)),
        ("hwloc-tests/power8gpudistances.xml",          (2, 2, 8, 16, 0, 8, 4, 0)),
    ];
    let mut failures = Vec::new();
    for (rel, want) in table {
        let Some(t) = load_fixture(rel) else { return };
        check_invariants(rel, &t);
        assert!(t.source.starts_with("xml:") && t.source.ends_with(rel), "{rel}: source {}", t.source);
        if counts(&t) != want {
            failures.push(format!("{rel}: got {:?}, want {want:?}", counts(&t)));
        }
    }
    assert!(failures.is_empty(), "(packages, numa, cores, pus, l2, l3, gpus, nics):\n{}", failures.join("\n"));
}

#[test]
fn hwloc_dgx_like_locality() {
    let Some(t) = load_fixture("dgx_like.xml") else { return };
    let numa0_pus: Vec<u32> = t.numa_nodes[0].cores.iter().flat_map(|&c| t.cores[c as usize].pus.clone()).collect();
    assert_eq!(numa0_pus, (0..32).collect::<Vec<_>>());
    assert_eq!(t.cores[0].pus, vec![0, 1], "first thread first");
    assert_eq!(t.numa_nodes[1].os_index, 1);
    assert_eq!(t.numa_nodes[1].memory_bytes, 1 << 30);
    assert_eq!(t.packages[1].numa_nodes, vec![1]);
    assert_eq!(t.caches[0].cores, (0..16).collect::<Vec<_>>());
    assert_eq!(t.caches[0].size_bytes, 16 << 20);

    let gpus: Vec<(u32, &str, Option<u32>, Option<&str>)> =
        t.gpus.iter().map(|g| (g.index, g.pci_bus_id.as_str(), g.numa, g.pcie_switch.as_deref())).collect();
    #[rustfmt::skip]
    assert_eq!(gpus, vec![
        (0, "0000:11:00.0", Some(0), Some("0000:10:01.0")),
        (1, "0000:12:00.0", Some(0), Some("0000:10:01.0")),
        (2, "0000:21:00.0", Some(0), Some("0000:10:02.0")),
        (3, "0000:22:00.0", Some(0), Some("0000:10:02.0")),
        (4, "0000:91:00.0", Some(1), Some("0000:90:01.0")),
        (5, "0000:92:00.0", Some(1), Some("0000:90:01.0")),
        (6, "0000:a1:00.0", Some(1), Some("0000:90:02.0")),
        (7, "0000:a2:00.0", Some(1), Some("0000:90:02.0")),
    ]);
    let g3 = &t.gpus[3];
    assert_eq!(g3.name, "NVIDIA H100 80GB HBM3");
    assert_eq!(g3.uuid.as_deref(), Some("GPU-00000000-0000-0000-0000-000000000003"));
    assert!(t.gpus.iter().all(|g| g.nvlink_peers.is_empty()));

    type Located<'a> = (&'a str, Option<&'a str>, Option<u32>, Option<&'a str>);
    let nics: Vec<Located<'_>> =
        t.nics.iter().map(|n| (n.name.as_str(), n.pci_bus_id.as_deref(), n.numa, n.pcie_switch.as_deref())).collect();
    #[rustfmt::skip]
    assert_eq!(nics, vec![
        ("mlx5_0", Some("0000:13:00.0"), Some(0), Some("0000:10:01.0")),
        ("mlx5_1", Some("0000:23:00.0"), Some(0), Some("0000:10:02.0")),
        ("mlx5_2", Some("0000:93:00.0"), Some(1), Some("0000:90:01.0")),
        ("mlx5_3", Some("0000:a3:00.0"), Some(1), Some("0000:90:02.0")),
    ]);
    let active_ib = NicPort { number: 1, link_layer: LinkLayer::InfiniBand, state: Some("ACTIVE".to_owned()) };
    assert!(t.nics.iter().all(|n| n.ports == vec![active_ib.clone()]));
    assert_eq!(t.resources().gpus.len(), 8);
}

#[test]
fn hwloc_h100_vm_gpu_from_pci_fallback() {
    let Some(t) = load_fixture("h100-vm/h100-vm.xml") else { return };
    let g = &t.gpus[0];
    assert_eq!((g.index, g.pci_bus_id.as_str(), g.numa, g.pcie_switch.as_deref()), (0, "0000:00:06.0", Some(0), None));
    // Named by the OpenCL device hwloc could not tie to the PCI device (the only NVIDIA one).
    assert_eq!(g.name, "NVIDIA H100 80GB HBM3");
    assert_eq!(g.memory_bytes, Some(83_024_896 * 1024));
    assert_eq!(g.uuid, None);
    assert!(t.cores.iter().all(|c| c.pus.len() == 1));
}

#[test]
fn hwloc_nvlink_from_distance_matrices() {
    if let Some(t) = load_fixture("hwloc-tests/power8gpudistances.xml") {
        let peers: Vec<Vec<u32>> = t.gpus.iter().map(|g| g.nvlink_peers.clone()).collect();
        assert_eq!(peers, vec![vec![1], vec![0], vec![3], vec![2]]);
        assert_eq!(t.gpus[0].memory_bytes, Some(16_671_616 * 1024));
        let numa: Vec<Option<u32>> = t.gpus.iter().map(|g| g.numa).collect();
        assert_eq!(numa, vec![Some(0), Some(0), Some(1), Some(1)]);
    }
    if let Some(t) = load_fixture("hwloc-tests/nvidiaDGX2.xml") {
        // nvmlN only (no cudaN): indices from NVML names; all 16 on the NVSwitch fabric.
        assert_eq!(t.gpus.iter().map(|g| g.index).collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
        for g in &t.gpus {
            let want: Vec<u32> = (0..16).filter(|&p| p != g.index).collect();
            assert_eq!(g.nvlink_peers, want, "GPU {}", g.index);
            assert_eq!(g.numa, Some(g.index / 8));
        }
        assert_eq!(t.gpus[0].name, "Tesla V100-SXM3-32GB-H");
        assert_eq!(t.gpus[0].uuid.as_deref(), Some("GPU-d3977428-7a30-086b-2e20-5c1eeed647c6"));
    }
}

#[test]
fn hwloc_nic_ports_from_fixtures() {
    let port = |link_layer, state: Option<&str>| NicPort { number: 1, link_layer, state: state.map(str::to_owned) };
    #[rustfmt::skip]
    let table = [
        ("hwloc-tests/32em64t-2n8c2t-pci-normalio.xml", "mlx5_0", vec![port(LinkLayer::InfiniBand, Some("ACTIVE"))]),
        ("hwloc-tests/192em64t-24n8c2t.xml", "mlx4_0", vec![port(LinkLayer::InfiniBand, None)]),
        // ib0 and eth2 with no port numbers: which is which is not known, so no ports.
        ("hwloc-tests/24em64t-2n6c2t-pci.xml", "mlx4_0", vec![]),
    ];
    for (rel, name, ports) in table {
        let Some(t) = load_fixture(rel) else { return };
        assert_eq!(t.nics[0].name, name, "{rel}");
        assert_eq!(t.nics[0].ports, ports, "{rel}");
        assert!(t.nics[0].pci_bus_id.is_some(), "{rel}");
    }
}

#[test]
fn hwloc_ports_from_infos() {
    let infos = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let netdev = |name: &str, port: Option<&str>, octets: usize| NetDev {
        name: name.to_owned(),
        port: port.map(str::to_owned),
        address: Some(vec!["00"; octets].join(":")),
    };
    let p = |number, link_layer, state: Option<&str>| NicPort { number, link_layer, state: state.map(str::to_owned) };
    use LinkLayer::{Ethernet, InfiniBand, Unknown};
    type Case = (Vec<(String, String)>, Vec<NetDev>, Vec<NicPort>);
    let cases: Vec<Case> = vec![
        // Dual-port RoCE: Ethernet interfaces numbered by their Port info; LID 0.
        (
            infos(&[("Port1State", "4"), ("Port1LID", "0x0"), ("Port2State", "1"), ("Port2LID", "0")]),
            vec![netdev("ens1f0np0", Some("1"), 6), netdev("ens1f1np1", Some("2"), 6)],
            vec![p(1, Ethernet, Some("ACTIVE")), p(2, Ethernet, Some("DOWN"))],
        ),
        // No interface at all: a non-zero LID means InfiniBand.
        (infos(&[("Port1State", "4"), ("Port1LID", "0x1a")]), vec![], vec![p(1, InfiniBand, Some("ACTIVE"))]),
        (infos(&[("Port1State", "1"), ("Port1LID", "0")]), vec![], vec![p(1, Unknown, Some("DOWN"))]),
        // One interface, no port infos: it is port 1.
        (vec![], vec![netdev("ib0", None, 20)], vec![p(1, InfiniBand, None)]),
        (infos(&[("NodeGUID", "0000:0000:0000:0001")]), vec![], vec![]),
    ];
    for (infos, netdevs, want) in cases {
        assert_eq!(ports_from_infos(&infos, &netdevs), want, "{infos:?}");
    }
}

#[test]
fn hwloc_small_parsers() {
    assert_eq!(indexed("cuda12", "cuda"), Some(12));
    assert_eq!(indexed("cuda", "cuda"), None);
    assert_eq!(indexed("cudax1", "cuda"), None);
    assert_eq!(indexed("mlx5_0", "mlx5_"), Some(0));
    assert_eq!(ib_port_state("4: ACTIVE"), "ACTIVE");
    assert_eq!(ib_port_state("4"), "ACTIVE");
    assert_eq!(ib_port_state("7"), "7");
    let mut names = vec!["mlx5_10", "mlx5_2", "mlx4_0", "mlx5_0"];
    names.sort_by_key(|n| natural_key(n));
    assert_eq!(names, vec!["mlx4_0", "mlx5_0", "mlx5_2", "mlx5_10"]);
}

#[test]
fn hwloc_synthetic_topologies() {
    for desc in ["pack:2 numa:2 core:8 pu:2", "package:2 numa:2 core:8 pu:2"] {
        let t = from_synthetic(desc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counts(&t), (2, 4, 32, 64, 0, 0, 0, 0), "{desc}");
        assert_eq!(t.source, format!("synthetic:{desc}"));
        assert_eq!(t.packages[1].numa_nodes, vec![2, 3]);
        assert_eq!(t.numa_nodes[3].cores, (24..32).collect::<Vec<_>>());
        check_invariants(desc, &t);
    }
    let t = from_synthetic("pack:1 l3:2 l2:2 core:2 pu:1").expect("caches");
    assert_eq!(counts(&t), (1, 1, 8, 8, 4, 2, 0, 0));
    assert_eq!(t.cores[5].caches, vec![2, 5]);
}

#[test]
fn hwloc_bad_inputs_name_the_problem() {
    for desc in ["pack:2 core:2", "bogus:3", "", "pack:x pu:2", "pack:2\0pu:2"] {
        let err = from_synthetic(desc).expect_err(desc).to_string();
        assert!(err.contains(&format!("{desc:?}")) && err.contains("synthetic"), "{err}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("empty.xml", "", "empty"),
        ("text.xml", "this is not xml", "no <topology> element"),
        ("cut.xml", "<?xml version=\"1.0\"?>\n<topology version=\"2.0\">\n<object type=\"Machine\">", "truncated"),
        ("bad.xml", "<topology version=\"2.0\"><object type=\"Banana\"/></topology>", "hwloc_topology_load failed"),
    ];
    for (file, contents, why) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, contents).expect("write");
        let err = from_xml_file(&path).expect_err(file).to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains(why), "{err}");
        assert!(from_xml_str(contents).expect_err(file).to_string().contains("<string>"));
    }
    let missing = dir.path().join("missing.xml");
    let err = from_xml_file(&missing).expect_err("missing");
    assert!(matches!(err, DiscoveryError::ReadXml { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.xml"), "{err}");
}

#[test]
fn hwloc_local_machine() {
    let t = from_local().expect("local topology");
    check_invariants("local", &t);
    assert!(!t.cores.is_empty());
    let allowed = crate::discover::allowed_cpus().len();
    let online = std::thread::available_parallelism().map_or(0, |n| n.get());
    assert!(
        t.pu_count() == allowed || t.pu_count() == online,
        "{} PUs; allowed {allowed}, online {online}",
        t.pu_count()
    );
    let full = discover_local().expect("discover_local");
    assert_eq!(full.cores, t.cores);
    assert!(full.gpus.len() >= t.gpus.len());
}

//! Node models built by hand, for tests and benches, so they do not depend on hwloc.

use crate::model::{Cache, Core, GpuDevice, LinkLayer, Nic, NicPort, NodeTopology, NumaNode, Package};

/// How a made-up node numbers its PUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PuNumbering {
    /// Core `i`'s PUs are `i·t … i·t+t-1` (hwloc's synthetic topologies, `dgx_like.xml`).
    Packed,
    /// PU `j` of core `i` is `i + j·cores` (Linux on most x86 servers).
    #[cfg_attr(not(test), allow(dead_code))] // only the tests build such nodes
    Interleaved,
}

/// The shape of a made-up node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Sockets.
    pub packages: u32,
    /// NUMA domains per socket.
    pub numa_per_package: u32,
    /// L3 caches per NUMA domain.
    pub l3_per_numa: u32,
    /// Cores per L3.
    pub cores_per_l3: u32,
    /// PUs per core.
    pub pus_per_core: u32,
    /// Whether each core has its own L2.
    pub l2_per_core: bool,
    /// PU numbering.
    pub numbering: PuNumbering,
}

/// A node of `shape` with no GPUs or NICs.
pub(crate) fn synthetic(shape: Shape) -> NodeTopology {
    let numa_count = shape.packages * shape.numa_per_package;
    let cores_per_numa = shape.l3_per_numa * shape.cores_per_l3;
    let core_count = numa_count * cores_per_numa;
    let mut node = NodeTopology {
        source: "synthetic".into(),
        memory_bytes: u64::from(numa_count) << 30,
        ..NodeTopology::default()
    };
    for package in 0..shape.packages {
        let numa: Vec<u32> = (0..shape.numa_per_package).map(|n| package * shape.numa_per_package + n).collect();
        node.packages.push(Package { index: package, numa_nodes: numa });
    }
    for numa in 0..numa_count {
        let package = numa / shape.numa_per_package;
        let cores = (numa * cores_per_numa..(numa + 1) * cores_per_numa).collect();
        node.numa_nodes.push(NumaNode { index: numa, os_index: numa, package, memory_bytes: 1 << 30, cores });
        for l3 in 0..shape.l3_per_numa {
            let first = numa * cores_per_numa + l3 * shape.cores_per_l3;
            let cores: Vec<u32> = (first..first + shape.cores_per_l3).collect();
            let l3_index = node.caches.len() as u32;
            node.caches.push(Cache { level: 3, size_bytes: 16 << 20, cores: cores.clone() });
            for index in cores {
                let mut caches = vec![l3_index];
                if shape.l2_per_core {
                    caches.push(node.caches.len() as u32);
                    node.caches.push(Cache { level: 2, size_bytes: 1 << 20, cores: vec![index] });
                }
                let pus = (0..shape.pus_per_core)
                    .map(|j| match shape.numbering {
                        PuNumbering::Packed => index * shape.pus_per_core + j,
                        PuNumbering::Interleaved => index + j * core_count,
                    })
                    .collect();
                node.cores.push(Core { index, package, numa, pus, caches });
            }
        }
    }
    node
}

/// The `dgx_like.xml` test node: 2 packages × 16 cores × 2 PUs (core `i` has PUs `2i`, `2i+1`),
/// one NUMA domain and one 16 MiB L3 per package, and four PCIe switches each holding two H100s
/// and one ConnectX-6 (`cuda0,1`+`mlx5_0`, `cuda2,3`+`mlx5_1` on NUMA 0; `cuda4,5`+`mlx5_2`,
/// `cuda6,7`+`mlx5_3` on NUMA 1).
#[doc(hidden)]
pub fn dgx_like_fixture() -> NodeTopology {
    let mut node = synthetic(Shape {
        packages: 2,
        numa_per_package: 1,
        l3_per_numa: 1,
        cores_per_l3: 16,
        pus_per_core: 2,
        l2_per_core: false,
        numbering: PuNumbering::Packed,
    });
    node.source = "xml:dgx_like.xml".into();
    // (switch bus id, its two GPUs' bus ids, its HCA's bus id, NUMA domain), as in the XML.
    let switches = [
        ("0000:10:01.0", ["0000:11:00.0", "0000:12:00.0"], "0000:13:00.0", 0),
        ("0000:10:02.0", ["0000:21:00.0", "0000:22:00.0"], "0000:23:00.0", 0),
        ("0000:90:01.0", ["0000:91:00.0", "0000:92:00.0"], "0000:93:00.0", 1),
        ("0000:90:02.0", ["0000:a1:00.0", "0000:a2:00.0"], "0000:a3:00.0", 1),
    ];
    for (s, (switch, gpus, nic, numa)) in switches.into_iter().enumerate() {
        for bus_id in gpus {
            let index = node.gpus.len() as u32;
            node.gpus.push(GpuDevice {
                index,
                name: "NVIDIA H100 80GB HBM3".into(),
                uuid: Some(format!("GPU-00000000-0000-0000-0000-{index:012}")),
                pci_bus_id: bus_id.into(),
                memory_bytes: None,
                numa: Some(numa),
                pcie_switch: Some(switch.into()),
                nvlink_peers: Vec::new(),
            });
        }
        node.nics.push(Nic {
            name: format!("mlx5_{s}"),
            // The XML gives Port1State=4 (active) and a LID, which only InfiniBand ports have.
            ports: vec![NicPort { number: 1, link_layer: LinkLayer::InfiniBand, state: Some("ACTIVE".into()) }],
            pci_bus_id: Some(nic.into()),
            numa: Some(numa),
            pcie_switch: Some(switch.into()),
        });
    }
    node
}

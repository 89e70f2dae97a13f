//! The node model: what a node is made of, as placement needs to see it.
//!
//! Indices: `Core::index` and `NumaNode::index` are logical (0..n in topology order, like
//! hwloc's L#); `pus` hold operating-system CPU numbers (hwloc's P#), which is what
//! `sched_setaffinity`, cpusets and `taskset` take. Locality of devices is given as the NUMA
//! node and the PCIe switch (the bridge they hang under) they are attached to.

use serde::{Deserialize, Serialize};

/// A whole node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTopology {
    /// Where the model came from (`local`, `xml:PATH`, `synthetic:STR`).
    pub source: String,
    /// Sockets.
    pub packages: Vec<Package>,
    /// NUMA domains, in index order.
    pub numa_nodes: Vec<NumaNode>,
    /// Physical cores, in topology order (package, then NUMA node, then core).
    pub cores: Vec<Core>,
    /// CPU caches (L2 and L3; what placement uses to keep cache per rank high).
    pub caches: Vec<Cache>,
    /// GPUs, in CUDA index order.
    pub gpus: Vec<GpuDevice>,
    /// Network adapters for MPI traffic (InfiniBand and RoCE HCAs).
    pub nics: Vec<Nic>,
    /// Total memory.
    pub memory_bytes: u64,
}

/// A socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Logical index.
    pub index: u32,
    /// NUMA nodes in it.
    pub numa_nodes: Vec<u32>,
}

/// A NUMA domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNode {
    /// Logical index.
    pub index: u32,
    /// OS number (what `set_mempolicy` and `/sys/devices/system/node/nodeN` use).
    pub os_index: u32,
    /// Its package.
    pub package: u32,
    /// Local memory.
    pub memory_bytes: u64,
    /// Cores (logical indices) in it.
    pub cores: Vec<u32>,
}

/// A physical core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Core {
    /// Logical index.
    pub index: u32,
    /// Its package.
    pub package: u32,
    /// Its NUMA node (logical index).
    pub numa: u32,
    /// Its hardware threads (OS CPU numbers), first thread first.
    pub pus: Vec<u32>,
    /// The L2 and L3 caches (indices into `NodeTopology::caches`) it shares, when known.
    pub caches: Vec<u32>,
}

/// A cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// 1, 2 or 3.
    pub level: u8,
    /// Bytes.
    pub size_bytes: u64,
    /// Cores (logical indices) sharing it.
    pub cores: Vec<u32>,
}

/// A GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// CUDA index (order of PCI bus ids).
    pub index: u32,
    /// Vendor's name for it.
    pub name: String,
    /// `GPU-…` UUID when known.
    pub uuid: Option<String>,
    /// PCI bus id, `0000:11:00.0`.
    pub pci_bus_id: String,
    /// Device memory, when known.
    pub memory_bytes: Option<u64>,
    /// NUMA node (logical index) it is attached to, when known.
    pub numa: Option<u32>,
    /// Bus id of the PCIe switch (bridge) it sits under, when there is one below the host bridge.
    pub pcie_switch: Option<String>,
    /// GPUs (indices) it has NVLink to.
    pub nvlink_peers: Vec<u32>,
}

/// What a network adapter's port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkLayer {
    /// InfiniBand.
    InfiniBand,
    /// RDMA over Converged Ethernet.
    Ethernet,
    /// Not known (hwloc XML without port details).
    Unknown,
}

/// A port of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicPort {
    /// Port number (1-based, as `UCX_NET_DEVICES=mlx5_0:1` names it).
    pub number: u32,
    /// Link layer.
    pub link_layer: LinkLayer,
    /// `ACTIVE`, `DOWN`, … when known.
    pub state: Option<String>,
}

/// An RDMA network adapter (`mlx5_0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Device name, `mlx5_0`.
    pub name: String,
    /// Its ports.
    pub ports: Vec<NicPort>,
    /// PCI bus id.
    pub pci_bus_id: Option<String>,
    /// NUMA node (logical index), when known.
    pub numa: Option<u32>,
    /// Bus id of the PCIe switch it sits under.
    pub pcie_switch: Option<String>,
}

impl NodeTopology {
    /// Number of hardware threads.
    pub fn pu_count(&self) -> usize {
        self.cores.iter().map(|c| c.pus.len()).sum()
    }

    /// The node as a task allocated `cpus` (OS numbers) and `gpus` (indices) sees it: other
    /// threads and GPUs are gone, cores left without threads stay (placement skips them), so
    /// indices and NUMA numbering are unchanged.
    pub fn restricted(&self, cpus: &[u32], gpus: &[u32]) -> NodeTopology {
        let mut t = self.clone();
        for c in &mut t.cores {
            c.pus.retain(|p| cpus.contains(p));
        }
        t.gpus.retain(|g| gpus.contains(&g.index));
        t
    }

    /// The inventory the head schedules with.
    pub fn resources(&self) -> crate::NodeResources {
        crate::NodeResources {
            cpus: self.pu_count() as u32,
            cores: self.cores.len() as u32,
            memory_bytes: self.memory_bytes,
            memory_reserve_bytes: 0,
            gpus: self
                .gpus
                .iter()
                .map(|g| crate::Gpu {
                    index: g.index,
                    name: g.name.clone(),
                    uuid: g.uuid.clone().unwrap_or_default(),
                    pci_bus_id: g.pci_bus_id.clone(),
                })
                .collect(),
        }
    }
}

//! GPUs, RDMA NICs and NVLink from hwloc's I/O objects (PCI devices, bridges, OS devices).

use std::collections::{BTreeSet, HashMap};

use hwlocality::object::attributes::{ObjectAttributes, PCIDeviceAttributes, UpstreamAttributes};
use hwlocality::object::types::{BridgeType, OSDeviceType, ObjectType};
use hwlocality::object::TopologyObject;
use hwlocality::Topology;

use super::CpuModel;
use crate::model::{GpuDevice, LinkLayer, Nic, NicPort};

/// NVIDIA's PCI vendor id.
const NVIDIA_VENDOR: u16 = 0x10de;

fn pci_attrs(obj: &TopologyObject) -> Option<&PCIDeviceAttributes> {
    match obj.attributes()? {
        ObjectAttributes::PCIDevice(pci) => Some(pci),
        _ => None,
    }
}

fn bus_id(pci: &PCIDeviceAttributes) -> String {
    format!("{:04x}:{:02x}:{:02x}.{:x}", pci.domain(), pci.bus_id(), pci.bus_device(), pci.function())
}

/// The PCI device an OS device belongs to (its parent, when that is one).
fn pci_parent(osdev: &TopologyObject) -> Option<&TopologyObject> {
    osdev.parent().filter(|p| p.object_type() == ObjectType::PCIDevice)
}

/// Bus id of the outermost PCI-to-PCI bridge between `dev` and its host bridge. Devices behind
/// one PCIe switch (or one root port) share it; the nearest bridge would not do, since each
/// device sits on its own downstream port of the switch.
fn pcie_switch(dev: &TopologyObject) -> Option<String> {
    let mut outermost = None;
    for ancestor in dev.ancestors() {
        let Some(ObjectAttributes::Bridge(bridge)) = ancestor.attributes() else { break };
        if bridge.upstream_type() == BridgeType::Host {
            return outermost;
        }
        if let Some(UpstreamAttributes::PCI(pci)) = bridge.upstream_attributes() {
            outermost = Some(bus_id(pci));
        }
    }
    // No host bridge above: the tree is not one we understand, so claim no switch.
    None
}

fn info(obj: &TopologyObject, key: &str) -> Option<String> {
    obj.info(key).map(|v| v.to_string_lossy().into_owned())
}

fn name(obj: &TopologyObject) -> String {
    obj.name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `N` for names of the form `{prefix}N` (`cuda3` → 3).
pub(super) fn indexed(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the `cudaN`/`nvmlN` OS devices of one GPU say about it.
#[derive(Default)]
struct GpuFacts<'t> {
    cuda: Option<u32>,
    nvml: Option<u32>,
    pci: Option<&'t TopologyObject>,
    osdevs: Vec<&'t TopologyObject>,
}

pub(super) fn gpus(topo: &Topology, cpu: &CpuModel<'_>) -> Vec<GpuDevice> {
    // cudaN and nvmlN of one GPU sit under the same PCI device: group by it.
    let mut facts: Vec<GpuFacts<'_>> = Vec::new();
    let mut by_key: HashMap<u64, usize> = HashMap::new();
    for dev in topo.os_devices() {
        let n = name(dev);
        let (cuda, nvml) = (indexed(&n, "cuda"), indexed(&n, "nvml"));
        if cuda.is_none() && nvml.is_none() {
            continue;
        }
        let pci = pci_parent(dev);
        let key = pci.unwrap_or(dev).global_persistent_index();
        let slot = *by_key.entry(key).or_insert_with(|| {
            facts.push(GpuFacts { pci, ..GpuFacts::default() });
            facts.len() - 1
        });
        let f = &mut facts[slot];
        f.cuda = f.cuda.or(cuda);
        f.nvml = f.nvml.or(nvml);
        f.osdevs.push(dev);
    }
    if facts.is_empty() {
        // No CUDA/NVML plugin ran (the usual case on a machine where hwloc was built without
        // them): every NVIDIA display or 3D controller is a GPU, numbered in bus order the way
        // CUDA and NVML number them by default.
        let mut pcis: Vec<&TopologyObject> = topo
            .pci_devices()
            .filter(|d| {
                pci_attrs(d).is_some_and(|p| p.vendor_id() == NVIDIA_VENDOR && matches!(p.class_id(), 0x0300 | 0x0302))
            })
            .collect();
        pcis.sort_by_key(|d| pci_attrs(d).map(bus_id));
        // OS devices of other backends (OpenCL) that hwloc could not tie to a PCI device: on a
        // node whose GPUs are all alike they still name them.
        let loose: Vec<&TopologyObject> = topo
            .os_devices()
            .filter(|d| pci_parent(d).is_none() && info(d, "GPUVendor").is_some_and(|v| v.contains("NVIDIA")))
            .collect();
        let models: BTreeSet<Option<String>> = loose.iter().map(|d| info(d, "GPUModel")).collect();
        let alike = if models.len() == 1 { loose.first().copied() } else { None };
        facts = pcis
            .into_iter()
            .map(|d| {
                let osdevs = d.io_children().chain(alike).collect();
                GpuFacts { pci: Some(d), osdevs, ..GpuFacts::default() }
            })
            .collect();
    }
    // Sort by the CUDA index, else NVML's, else the bus id.
    facts.sort_by_key(|f| (f.cuda.or(f.nvml).unwrap_or(u32::MAX), f.pci.and_then(pci_attrs).map(bus_id)));

    let from_osdevs = |f: &GpuFacts<'_>, key: &str| f.osdevs.iter().find_map(|d| info(d, key));
    let mut gpus: Vec<GpuDevice> = facts
        .iter()
        .enumerate()
        .map(|(pos, f)| {
            let pci = f.pci.and_then(pci_attrs);
            let name = from_osdevs(f, "GPUModel")
                .or_else(|| f.pci.and_then(|d| info(d, "PCIDevice")))
                .or_else(|| pci.map(|p| format!("NVIDIA device {:04x}:{:04x}", p.vendor_id(), p.device_id())))
                .unwrap_or_else(|| "NVIDIA GPU".to_owned());
            let memory_kib = from_osdevs(f, "CUDAGlobalMemorySize")
                .or_else(|| from_osdevs(f, "OpenCLGlobalMemorySize"))
                .and_then(|m| m.trim().parse::<u64>().ok());
            let located = f.pci.or_else(|| f.osdevs.first().copied());
            GpuDevice {
                index: f.cuda.or(f.nvml).unwrap_or(pos as u32),
                name,
                uuid: from_osdevs(f, "NVIDIAUUID"),
                pci_bus_id: pci.map(bus_id).unwrap_or_default(),
                memory_bytes: memory_kib.map(|k| k * 1024),
                numa: located.and_then(|d| cpu.locality(d)),
                pcie_switch: f.pci.and_then(pcie_switch),
                nvlink_peers: Vec::new(),
            }
        })
        .collect();
    add_nvlink_peers(topo, &facts, &mut gpus);
    gpus
}

/// NVLink peers from hwloc's `NVLinkBandwidth` matrix (filled by its NVML plugin): GPUs linked
/// directly are peers, and so are all GPUs linked to NVSwitches. The matrix only has GPU–switch
/// links, but a node's NVSwitches form one fabric (DGX-2 joins its two baseboards through them).
fn add_nvlink_peers(topo: &Topology, facts: &[GpuFacts<'_>], gpus: &mut [GpuDevice]) {
    let Ok(matrices) = topo.distances_with_name("NVLinkBandwidth") else { return };
    let mut gpu_of: HashMap<u64, usize> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        for obj in f.osdevs.iter().copied().chain(f.pci) {
            gpu_of.insert(obj.global_persistent_index(), i);
        }
    }
    let mut peers: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); gpus.len()];
    let mut on_fabric: BTreeSet<usize> = BTreeSet::new();
    for matrix in matrices {
        // GPU (by position in `gpus`), NVSwitch (`Some(None)`), or anything else (a CPU).
        let nodes: Vec<Option<Option<usize>>> = matrix
            .objects()
            .map(|obj| {
                let obj = obj?;
                match gpu_of.get(&obj.global_persistent_index()) {
                    Some(&g) => Some(Some(g)),
                    None if obj.object_type() == ObjectType::PCIDevice => Some(None),
                    None => None,
                }
            })
            .collect();
        for ((a, b), bandwidth) in matrix.enumerate_distances() {
            if a == b || bandwidth == 0 {
                continue;
            }
            match (nodes.get(a).copied().flatten(), nodes.get(b).copied().flatten()) {
                (Some(Some(x)), Some(Some(y))) => {
                    peers[x].insert(y);
                    peers[y].insert(x);
                }
                (Some(Some(g)), Some(None)) | (Some(None), Some(Some(g))) => {
                    on_fabric.insert(g);
                }
                _ => {}
            }
        }
    }
    for &g in &on_fabric {
        peers[g].extend(on_fabric.iter().filter(|&&p| p != g));
    }
    let index: Vec<u32> = gpus.iter().map(|g| g.index).collect();
    for (gpu, mine) in gpus.iter_mut().zip(peers) {
        gpu.nvlink_peers = mine.into_iter().map(|p| index[p]).collect();
        gpu.nvlink_peers.sort_unstable();
    }
}

pub(super) fn nics(topo: &Topology, cpu: &CpuModel<'_>) -> Vec<Nic> {
    let is_rdma = |d: &TopologyObject| {
        let n = name(d);
        matches!(d.attributes(), Some(ObjectAttributes::OSDevice(o)) if o.device_type() == OSDeviceType::OpenFabrics)
            || indexed(&n, "mlx5_").is_some()
            || indexed(&n, "mlx4_").is_some()
    };
    let mut nics: Vec<Nic> = topo
        .os_devices()
        .filter(|d| is_rdma(d))
        .map(|dev| {
            let pci = pci_parent(dev);
            // The kernel's network interfaces of the same adapter (ib0, ens1f0) tell the link layer.
            let netdevs: Vec<&TopologyObject> = pci
                .map(|p| {
                    p.io_children()
                        .filter(|c| {
                            matches!(c.attributes(), Some(ObjectAttributes::OSDevice(o)) if o.device_type() == OSDeviceType::Network)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let infos: Vec<(String, String)> = dev
                .infos()
                .iter()
                .map(|i| (i.name().to_string_lossy().into_owned(), i.value().to_string_lossy().into_owned()))
                .collect();
            let netdevs: Vec<NetDev> =
                netdevs.iter().map(|d| NetDev { name: name(d), port: info(d, "Port"), address: info(d, "Address") }).collect();
            Nic {
                name: name(dev),
                ports: ports_from_infos(&infos, &netdevs),
                pci_bus_id: pci.and_then(pci_attrs).map(bus_id),
                numa: cpu.locality(pci.unwrap_or(dev)),
                pcie_switch: pci.and_then(pcie_switch),
            }
        })
        .collect();
    nics.sort_by_key(|n| natural_key(&n.name));
    nics
}

/// Orders `mlx5_2` before `mlx5_10`.
pub(crate) fn natural_key(name: &str) -> (String, u64) {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    (stem.to_owned(), name[stem.len()..].parse().unwrap_or(0))
}

/// A network interface of an RDMA adapter, as hwloc describes it.
pub(super) struct NetDev {
    pub(super) name: String,
    pub(super) port: Option<String>,
    pub(super) address: Option<String>,
}

impl NetDev {
    /// IPoIB interfaces are `ibN` with 20-byte addresses; Ethernet ones have 6-byte MACs.
    fn link_layer(&self) -> LinkLayer {
        let octets = self.address.as_deref().map_or(0, |a| a.split(':').count());
        if self.name.starts_with("ib") || octets == 20 {
            LinkLayer::InfiniBand
        } else if octets == 6 {
            LinkLayer::Ethernet
        } else {
            LinkLayer::Unknown
        }
    }
}

/// Ports from the OpenFabrics device's `Port<N>State`/`Port<N>LID`/… infos and the `Port`
/// info of its network interfaces.
pub(super) fn ports_from_infos(infos: &[(String, String)], netdevs: &[NetDev]) -> Vec<NicPort> {
    let mut numbers: Vec<u32> = infos
        .iter()
        .filter_map(|(k, _)| {
            let rest = k.strip_prefix("Port")?;
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            rest[..digits].parse().ok()
        })
        .chain(netdevs.iter().filter_map(|d| d.port.as_deref()?.trim().parse().ok()))
        .collect();
    if numbers.is_empty() && netdevs.len() == 1 {
        numbers.push(1);
    }
    numbers.sort_unstable();
    numbers.dedup();
    let lookup = |key: String| infos.iter().find(|(k, _)| *k == key).map(|(_, v)| v.trim().to_owned());
    let single = numbers.len() == 1 && netdevs.len() == 1;
    numbers
        .iter()
        .map(|&number| {
            let netdev = netdevs
                .iter()
                .find(|d| d.port.as_deref().and_then(|p| p.trim().parse().ok()) == Some(number))
                .or(if single { netdevs.first() } else { None });
            let lid = lookup(format!("Port{number}LID")).and_then(|l| parse_int(&l));
            let link_layer = match netdev.map(NetDev::link_layer) {
                Some(l) if l != LinkLayer::Unknown => l,
                // Only InfiniBand hands out LIDs; a zero LID says nothing (a port that is down).
                _ if lid.is_some_and(|l| l > 0) => LinkLayer::InfiniBand,
                _ => LinkLayer::Unknown,
            };
            let state = lookup(format!("Port{number}State")).map(|s| ib_port_state(&s));
            NicPort { number, link_layer, state }
        })
        .collect()
}

fn parse_int(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// hwloc stores the verbs port state number (`ibv_port_state`); sysfs says `4: ACTIVE`.
pub(crate) fn ib_port_state(raw: &str) -> String {
    let raw = raw.trim();
    let name = raw.split_once(':').map_or(raw, |(_, n)| n.trim());
    match name {
        "0" => "NOP",
        "1" => "DOWN",
        "2" => "INIT",
        "3" => "ARMED",
        "4" => "ACTIVE",
        "5" => "ACTIVE_DEFER",
        other => other,
    }
    .to_owned()
}

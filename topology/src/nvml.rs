//! GPU details from NVML, merged into a topology hwloc read.
//!
//! hwloc only names GPUs when it was built with its CUDA/NVML plugins; elsewhere it sees a bare
//! PCI device. NVML, when the driver is there, knows the marketing name, UUID, memory, NUMA
//! locality and NVLink wiring. The merge is by PCI bus id and is kept apart from the NVML
//! calls so that it can be tested on machines without a GPU.

use std::collections::{BTreeSet, HashMap};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use crate::model::{GpuDevice, NodeTopology};
use crate::sysfs;

/// NVLink slots NVML may report per GPU (`NVML_NVLINK_MAX_LINKS` in the NVML this wrapper
/// binds); asking past a GPU's own count answers `InvalidArg`.
const MAX_NVLINKS: u32 = 18;

/// NVML cannot be used here (no driver, no library, no permission): normal on CPU nodes.
#[derive(Debug, thiserror::Error)]
#[error("NVML unavailable: {0}")]
pub struct NvmlUnavailable(#[source] pub NvmlError);

/// One GPU as NVML describes it.
#[derive(Debug, Clone, Default, PartialEq)]
struct NvmlGpu {
    index: u32,
    name: String,
    uuid: Option<String>,
    /// Normalised (`0000:11:00.0`).
    pci_bus_id: String,
    memory_bytes: Option<u64>,
    /// NUMA OS index, from NVML or the PCI device's sysfs entry.
    numa_os_index: Option<u32>,
    /// CPUs (OS numbers) NVML calls local to the GPU.
    cpu_affinity: Vec<u32>,
    /// Normalised bus ids at the far end of active NVLinks (GPUs or NVSwitches).
    nvlink_remotes: Vec<String>,
}

/// Reads every GPU NVML sees and merges it into `topo.gpus` (by PCI bus id, adding GPUs hwloc
/// missed). Returns how many GPUs NVML described.
pub fn enrich_with_nvml(topo: &mut NodeTopology) -> Result<usize, NvmlUnavailable> {
    let nvml = Nvml::init().map_err(NvmlUnavailable)?;
    let count = nvml.device_count().map_err(NvmlUnavailable)?;
    let max_cpu = topo.cores.iter().flat_map(|c| c.pus.iter().copied()).max().unwrap_or(0);
    let words = (max_cpu as usize / std::os::raw::c_ulong::BITS as usize) + 1;
    // A GPU NVML cannot describe (fallen off the bus, no permission) is left as hwloc saw it.
    let gpus: Vec<NvmlGpu> = (0..count).filter_map(|i| read_gpu(&nvml, i, words).ok()).collect();
    let described = gpus.len();
    merge_gpus(topo, gpus);
    Ok(described)
}

fn read_gpu(nvml: &Nvml, i: u32, cpu_words: usize) -> Result<NvmlGpu, NvmlError> {
    let device = nvml.device_by_index(i)?;
    let pci_bus_id = normalize_bus_id(&device.pci_info()?.bus_id);
    // nvmlDeviceGetNumaNodeId is NotSupported on many systems (the H100 VM among them);
    // the kernel's view of the PCI device is the next best source.
    let numa_os_index =
        device.numa_node_id().ok().or_else(|| sysfs::pci_numa_node(&sysfs::pci_devices_root(), &pci_bus_id));
    let cpu_affinity = device.cpu_affinity(cpu_words).map(|words| cpus_from_mask(&words)).unwrap_or_default();
    Ok(NvmlGpu {
        index: device.index().unwrap_or(i),
        name: device.name()?,
        uuid: device.uuid().ok(),
        pci_bus_id,
        memory_bytes: device.memory_info().ok().map(|m| m.total),
        numa_os_index,
        cpu_affinity,
        nvlink_remotes: nvlink_remotes(&device),
    })
}

fn nvlink_remotes(device: &Device<'_>) -> Vec<String> {
    let mut remotes = Vec::new();
    for link in 0..MAX_NVLINKS {
        let link = device.link_wrapper_for(link);
        match link.is_active() {
            Ok(true) => {}
            Ok(false) => continue,
            // NotSupported (no NVLink on this GPU) or InvalidArg (past its last link).
            Err(_) => break,
        }
        // nvml-wrapper's remote_device_type() always answers Unknown (it reads into a
        // temporary), so GPU or switch is decided later by matching the bus id against GPUs.
        if let Ok(pci) = link.remote_pci_info() {
            remotes.push(normalize_bus_id(&pci.bus_id));
        }
    }
    remotes
}

/// CPU numbers set in NVML's affinity mask (array of `unsigned long`, lowest CPU first).
fn cpus_from_mask(words: &[std::os::raw::c_ulong]) -> Vec<u32> {
    let bits = std::os::raw::c_ulong::BITS;
    let mut cpus = Vec::new();
    for (w, &word) in words.iter().enumerate() {
        for b in 0..bits {
            if word >> b & 1 == 1 {
                cpus.push(w as u32 * bits + b);
            }
        }
    }
    cpus
}

/// Puts PCI bus ids in one form: lower case, a 4-digit domain unless it needs more.
/// NVML says `00000000:01:00.0`, hwloc and sysfs `0000:01:00.0`, some tools `01:00.0`.
pub fn normalize_bus_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    let (domain, rest) = match id.matches(':').count() {
        2 => id.split_once(':').unwrap_or(("0", &id)),
        _ => ("0", id.as_str()),
    };
    let domain = domain.trim_start_matches('0');
    format!("{domain:0>4}:{rest}")
}

fn merge_gpus(topo: &mut NodeTopology, found: Vec<NvmlGpu>) {
    for g in &found {
        let numa = numa_for(topo, g);
        let existing = topo.gpus.iter_mut().find(|t| normalize_bus_id(&t.pci_bus_id) == g.pci_bus_id);
        match existing {
            Some(t) => {
                if !g.name.is_empty() {
                    t.name.clone_from(&g.name);
                }
                t.uuid = g.uuid.clone().or(t.uuid.take());
                t.memory_bytes = g.memory_bytes.or(t.memory_bytes);
                t.numa = numa.or(t.numa);
            }
            None => {
                // Keep NVML's index unless hwloc already gave it to another GPU.
                let taken = topo.gpus.iter().any(|t| t.index == g.index);
                let index = if taken { topo.gpus.iter().map(|t| t.index + 1).max().unwrap_or(0) } else { g.index };
                topo.gpus.push(GpuDevice {
                    index,
                    name: g.name.clone(),
                    uuid: g.uuid.clone(),
                    pci_bus_id: g.pci_bus_id.clone(),
                    memory_bytes: g.memory_bytes,
                    numa,
                    pcie_switch: None,
                    nvlink_peers: Vec::new(),
                });
            }
        }
    }
    topo.gpus.sort_by_key(|t| t.index);
    merge_nvlinks(topo, &found);
}

/// NUMA node (logical) of a GPU: NVML's or sysfs's answer, else the one node holding all the
/// CPUs NVML calls local (an affinity spanning several nodes says nothing).
fn numa_for(topo: &NodeTopology, g: &NvmlGpu) -> Option<u32> {
    if let Some(n) = g.numa_os_index.and_then(|os| sysfs::numa_logical(topo, Some(os))) {
        return Some(n);
    }
    let numa_of_cpu: HashMap<u32, u32> = topo.cores.iter().flat_map(|c| c.pus.iter().map(|&p| (p, c.numa))).collect();
    let nodes: BTreeSet<u32> = g.cpu_affinity.iter().filter_map(|c| numa_of_cpu.get(c).copied()).collect();
    match nodes.len() {
        1 => nodes.first().copied(),
        _ => sysfs::numa_logical(topo, None),
    }
}

/// NVLink peers from NVML: a remote that is one of our GPUs is a direct peer; any other remote
/// is an NVSwitch, and all GPUs on switches are peers of each other.
fn merge_nvlinks(topo: &mut NodeTopology, found: &[NvmlGpu]) {
    let index_of: HashMap<String, u32> = topo.gpus.iter().map(|t| (normalize_bus_id(&t.pci_bus_id), t.index)).collect();
    let mut peers: HashMap<u32, BTreeSet<u32>> = HashMap::new();
    let mut on_switch: BTreeSet<u32> = BTreeSet::new();
    for g in found {
        let Some(&me) = index_of.get(&g.pci_bus_id) else { continue };
        for remote in &g.nvlink_remotes {
            match index_of.get(remote) {
                Some(&peer) if peer != me => {
                    peers.entry(me).or_default().insert(peer);
                    peers.entry(peer).or_default().insert(me);
                }
                Some(_) => {}
                None => {
                    on_switch.insert(me);
                }
            }
        }
    }
    for &me in &on_switch {
        peers.entry(me).or_default().extend(on_switch.iter().filter(|&&p| p != me));
    }
    for t in &mut topo.gpus {
        if let Some(p) = peers.get(&t.index) {
            let all: BTreeSet<u32> = t.nvlink_peers.iter().copied().chain(p.iter().copied()).collect();
            t.nvlink_peers = all.into_iter().collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Core, NumaNode};

    #[test]
    fn nvml_bus_id_normalisation() {
        for (raw, want) in [
            ("00000000:01:00.0", "0000:01:00.0"),
            ("00000000:A1:00.0", "0000:a1:00.0"),
            ("0000:a1:00.0", "0000:a1:00.0"),
            ("01:00.0", "0000:01:00.0"),
            ("00010000:01:00.0", "10000:01:00.0"),
            ("0001:3B:00.0", "0001:3b:00.0"),
            (" 00000000:00:06.0\n", "0000:00:06.0"),
        ] {
            assert_eq!(normalize_bus_id(raw), want, "{raw}");
        }
    }

    #[test]
    fn nvml_cpu_mask() {
        assert_eq!(cpus_from_mask(&[0b1011, 1]), vec![0, 1, 3, std::os::raw::c_ulong::BITS]);
        assert!(cpus_from_mask(&[]).is_empty());
    }

    /// Two NUMA nodes, CPUs 0–3 on node 0 (OS 0) and 4–7 on node 1 (OS 1), one core per CPU.
    fn node_with(gpus: Vec<GpuDevice>) -> NodeTopology {
        let cores = (0..8).map(|i| Core { index: i, package: 0, numa: i / 4, pus: vec![i], caches: vec![] }).collect();
        let numa = |i: u32| NumaNode { index: i, os_index: i, package: 0, memory_bytes: 0, cores: vec![] };
        NodeTopology { numa_nodes: vec![numa(0), numa(1)], cores, gpus, ..NodeTopology::default() }
    }

    fn hwloc_gpu(index: u32, bus: &str) -> GpuDevice {
        GpuDevice {
            index,
            name: "GH100 [H100 SXM5 80GB]".to_owned(),
            uuid: None,
            pci_bus_id: bus.to_owned(),
            memory_bytes: None,
            numa: None,
            pcie_switch: Some("0000:10:01.0".to_owned()),
            nvlink_peers: vec![],
        }
    }

    fn nvml_gpu(index: u32, bus: &str) -> NvmlGpu {
        NvmlGpu {
            index,
            name: "NVIDIA H100 80GB HBM3".to_owned(),
            uuid: Some(format!("GPU-{index}")),
            pci_bus_id: normalize_bus_id(bus),
            memory_bytes: Some(80 << 30),
            ..NvmlGpu::default()
        }
    }

    #[test]
    fn nvml_merges_by_bus_id_keeping_hwloc_locality() {
        let mut topo = node_with(vec![hwloc_gpu(0, "0000:A1:00.0")]);
        let mut g = nvml_gpu(0, "00000000:A1:00.0");
        g.numa_os_index = Some(1);
        merge_gpus(&mut topo, vec![g]);
        assert_eq!(topo.gpus.len(), 1);
        let t = &topo.gpus[0];
        assert_eq!(t.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(t.uuid.as_deref(), Some("GPU-0"));
        assert_eq!(t.memory_bytes, Some(80 << 30));
        assert_eq!(t.numa, Some(1));
        assert_eq!(t.pcie_switch.as_deref(), Some("0000:10:01.0"));
    }

    #[test]
    fn nvml_adds_missing_gpus_with_free_indices() {
        let mut topo = node_with(vec![hwloc_gpu(0, "0000:11:00.0")]);
        let mut added = nvml_gpu(0, "00000000:12:00.0");
        added.cpu_affinity = vec![4, 5, 6, 7];
        let mut spanning = nvml_gpu(2, "00000000:13:00.0");
        spanning.cpu_affinity = (0..8).collect();
        merge_gpus(&mut topo, vec![nvml_gpu(0, "00000000:11:00.0"), added, spanning]);
        let got: Vec<(u32, &str, Option<u32>)> =
            topo.gpus.iter().map(|g| (g.index, g.pci_bus_id.as_str(), g.numa)).collect();
        // Index 0 belongs to the GPU hwloc saw, so NVML's second "0" becomes 1; an affinity
        // over both nodes gives no NUMA node.
        assert_eq!(got, vec![(0, "0000:11:00.0", None), (1, "0000:12:00.0", Some(1)), (2, "0000:13:00.0", None)]);
    }

    #[test]
    fn nvml_single_numa_node_is_everyones() {
        let mut topo = node_with(vec![]);
        topo.numa_nodes.truncate(1);
        merge_gpus(&mut topo, vec![nvml_gpu(0, "00000000:00:06.0")]);
        assert_eq!(topo.gpus[0].numa, Some(0));
    }

    #[test]
    fn nvml_nvlink_peers_direct_and_through_switches() {
        let buses = ["0000:11:00.0", "0000:12:00.0", "0000:21:00.0", "0000:22:00.0"];
        let mut topo = node_with(buses.iter().enumerate().map(|(i, b)| hwloc_gpu(i as u32, b)).collect());
        let mut found: Vec<NvmlGpu> = buses.iter().enumerate().map(|(i, b)| nvml_gpu(i as u32, b)).collect();
        // 0 and 1 are bridged directly; 2 and 3 hang on an NVSwitch (a bus id that is no GPU).
        found[0].nvlink_remotes = vec!["0000:12:00.0".to_owned()];
        found[2].nvlink_remotes = vec!["0000:c1:00.0".to_owned(), "0000:c1:00.0".to_owned()];
        found[3].nvlink_remotes = vec!["0000:c2:00.0".to_owned()];
        merge_gpus(&mut topo, found);
        let peers: Vec<Vec<u32>> = topo.gpus.iter().map(|g| g.nvlink_peers.clone()).collect();
        assert_eq!(peers, vec![vec![1], vec![0], vec![3], vec![2]]);
    }

    #[test]
    fn nvml_absent_library_is_an_error_not_a_panic() {
        // On machines without the driver this is the normal path; with one it must still work.
        let mut topo = node_with(vec![]);
        match enrich_with_nvml(&mut topo) {
            Ok(n) => assert_eq!(n, topo.gpus.len()),
            Err(NvmlUnavailable(_)) => assert!(topo.gpus.is_empty()),
        }
    }
}

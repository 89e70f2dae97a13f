//! Node discovery through hwloc: the local machine, XML exports and synthetic descriptions.
//!
//! hwloc gives the CPU side (packages, NUMA nodes, cores, caches) and, with I/O discovery on,
//! the PCI tree and the OS devices hanging off it, from which GPUs (`cudaN`/`nvmlN`) and RDMA
//! NICs (`mlx5_N`) are read with their locality. [`discover_local`] then lets NVML and sysfs
//! fill in what hwloc's plugins did not see.

use std::path::{Path, PathBuf};

use hwlocality::bitmap::BitmapRef;
use hwlocality::cpu::cpuset::CpuSet;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::ObjectType;
use hwlocality::object::TopologyObject;
use hwlocality::topology::builder::TypeFilter;
use hwlocality::Topology;

use crate::model::{Cache, Core, NodeTopology, NumaNode, Package};

/// Why hwloc could not give a topology.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// hwloc failed on the local machine.
    #[error("reading the local topology with hwloc: {message}")]
    Local {
        /// What hwloc(ality) said.
        message: String,
    },
    /// The XML file could not be read.
    #[error("reading topology XML {path}")]
    ReadXml {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// hwloc rejected the XML.
    #[error("hwloc rejected topology XML {origin}: {message}")]
    Xml {
        /// The file, or `<string>`.
        origin: String,
        /// What hwloc(ality) said.
        message: String,
    },
    /// hwloc rejected the synthetic description.
    #[error(
        "hwloc rejected synthetic topology {description:?}: {message} (expected e.g. \"pack:2 numa:2 core:8 pu:2\")"
    )]
    Synthetic {
        /// The description as given.
        description: String,
        /// What hwloc(ality) said.
        message: String,
    },
}

/// Where a topology is read from.
enum Source<'a> {
    Local,
    Xml { origin: &'a str, xml: &'a str },
    Synthetic(&'a str),
}

impl Source<'_> {
    /// Wraps a failure in the error variant that names this source.
    fn error(&self, message: String) -> DiscoveryError {
        match self {
            Source::Local => DiscoveryError::Local { message },
            Source::Xml { origin, xml } => {
                let message = match xml_hint(xml) {
                    Some(hint) => format!("{message}: {hint}"),
                    None => format!("{message} (HWLOC_XML_VERBOSE=1 makes hwloc print why on stderr)"),
                };
                DiscoveryError::Xml { origin: (*origin).to_owned(), message }
            }
            Source::Synthetic(d) => DiscoveryError::Synthetic { description: (*d).to_owned(), message },
        }
    }
}

/// hwloc keeps its parser's complaints to itself (stderr, and only with `HWLOC_XML_VERBOSE`);
/// the commonest mistakes are worth naming here.
fn xml_hint(xml: &str) -> Option<&'static str> {
    let xml = xml.trim();
    if xml.is_empty() {
        Some("the document is empty")
    } else if !xml.contains("<topology") {
        Some("no <topology> element: not an hwloc XML export (lstopo --of xml)")
    } else if !xml.contains("</topology>") {
        Some("no </topology>: the document is truncated")
    } else {
        None
    }
}

/// Reads the local machine (CPUs this process may use, memory, PCI and OS devices).
pub fn from_local() -> Result<NodeTopology, DiscoveryError> {
    let topo = load(&Source::Local)?;
    Ok(build_model(&topo, "local".to_owned()))
}

/// Reads an hwloc XML export (`lstopo --of xml`).
pub fn from_xml_file(path: &Path) -> Result<NodeTopology, DiscoveryError> {
    // Read the file ourselves: an I/O error then names the file and its cause, and hwloc only
    // ever sees a buffer (its file entry point reports less).
    let xml =
        std::fs::read_to_string(path).map_err(|source| DiscoveryError::ReadXml { path: path.to_owned(), source })?;
    let origin = path.display().to_string();
    let topo = load(&Source::Xml { origin: &origin, xml: &xml })?;
    Ok(build_model(&topo, format!("xml:{origin}")))
}

/// Reads an hwloc XML export held in memory.
pub fn from_xml_str(xml: &str) -> Result<NodeTopology, DiscoveryError> {
    let topo = load(&Source::Xml { origin: "<string>", xml })?;
    Ok(build_model(&topo, "xml:<string>".to_owned()))
}

/// Builds a made-up node from an hwloc synthetic description (`pack:2 numa:2 core:8 pu:2`).
pub fn from_synthetic(desc: &str) -> Result<NodeTopology, DiscoveryError> {
    let topo = load(&Source::Synthetic(desc))?;
    Ok(build_model(&topo, format!("synthetic:{desc}")))
}

/// The local node as completely as this machine can tell: hwloc, then NVML for GPUs (when the
/// driver is there), then `/sys/class/infiniband` for NIC ports.
pub fn discover_local() -> Result<NodeTopology, DiscoveryError> {
    let mut topo = from_local()?;
    // No NVIDIA driver is the normal case on CPU nodes: nothing to report.
    let _ = crate::nvml::enrich_with_nvml(&mut topo);
    crate::sysfs::enrich_nics(&mut topo, Path::new("/sys/class/infiniband"));
    Ok(topo)
}

fn load(source: &Source<'_>) -> Result<Topology, DiscoveryError> {
    // hwlocality answers an errno it does not expect with `unreachable!`; a malformed input
    // must come back as an error, never as a panic, so the whole load is guarded.
    let attempt = std::panic::catch_unwind(|| load_unguarded(source));
    attempt.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("hwlocality panicked");
        Err(source.error(what.to_owned()))
    })
}

fn load_unguarded(source: &Source<'_>) -> Result<Topology, DiscoveryError> {
    let err = |e: &dyn std::fmt::Display| source.error(e.to_string());
    let mut builder = Topology::builder();
    builder = match source {
        Source::Local => builder,
        Source::Xml { xml, .. } => builder.from_xml(xml).map_err(|e| err(&e))?,
        Source::Synthetic(desc) => builder.from_synthetic(desc).map_err(|e| err(&e))?,
    };
    // Without I/O objects hwloc drops the PCI tree, and with it GPU and NIC locality. On a live
    // machine only the important ones (GPUs, NICs, storage and the bridges above them) are worth
    // the time; an XML file is taken whole.
    let io = if matches!(source, Source::Local) { TypeFilter::KeepImportant } else { TypeFilter::KeepAll };
    builder = builder.with_io_type_filter(io).map_err(|e| err(&e))?;
    builder.build().map_err(|e| {
        let cause = e.errno.map_or_else(|| "no errno".to_owned(), |n| n.to_string());
        source.error(format!("{} failed: {cause}", e.api))
    })
}

fn build_model(topo: &Topology, source: String) -> NodeTopology {
    let cpu = CpuModel::new(topo);
    let gpus = devices::gpus(topo, &cpu);
    let nics = devices::nics(topo, &cpu);
    NodeTopology {
        source,
        packages: cpu.packages,
        numa_nodes: cpu.numa_nodes,
        cores: cpu.cores,
        caches: cpu.caches,
        gpus,
        nics,
        memory_bytes: topo.root_object().total_memory(),
    }
}

/// The CPU side of the model, plus the cpusets needed to place I/O devices on it.
struct CpuModel<'t> {
    packages: Vec<Package>,
    numa_nodes: Vec<NumaNode>,
    cores: Vec<Core>,
    caches: Vec<Cache>,
    numa_sets: Vec<Option<BitmapRef<'t, CpuSet>>>,
}

impl<'t> CpuModel<'t> {
    fn new(topo: &'t Topology) -> Self {
        let package_objs: Vec<&TopologyObject> = topo.objects_with_type(ObjectType::Package).collect();
        let numa_objs: Vec<&TopologyObject> = topo.objects_with_type(ObjectType::NUMANode).collect();
        let numa_sets: Vec<_> = numa_objs.iter().map(|n| n.cpuset().filter(|s| !s.is_empty())).collect();
        let package_of = |obj: &TopologyObject| -> u32 {
            let by_ancestor = obj.first_ancestor_with_type(ObjectType::Package);
            // A NUMA node attached above the packages (or a CPU-less one) has no package
            // ancestor: take the first package sharing CPUs with it.
            let by_cpus = || {
                let set = obj.cpuset()?;
                package_objs.iter().find(|p| p.cpuset().is_some_and(|ps| ps.intersects(set)))
            };
            by_ancestor.or_else(|| by_cpus().copied()).map_or(0, |p| p.logical_index() as u32)
        };

        // Cores are hwloc's Core objects; a topology without that level (some synthetic ones)
        // gets one core per PU so that placement still has something to count.
        let mut core_objs: Vec<&TopologyObject> = topo.objects_with_type(ObjectType::Core).collect();
        let pus_are_cores = core_objs.is_empty();
        if pus_are_cores {
            core_objs = topo.objects_with_type(ObjectType::PU).collect();
        }
        let mut pus_of: Vec<Vec<u32>> = vec![Vec::new(); core_objs.len()];
        for (i, pu) in topo.objects_with_type(ObjectType::PU).enumerate() {
            let core = if pus_are_cores {
                Some(i)
            } else {
                pu.first_ancestor_with_type(ObjectType::Core).map(TopologyObject::logical_index)
            };
            if let (Some(slot), Some(os)) = (core.and_then(|c| pus_of.get_mut(c)), pu.os_index()) {
                slot.push(os as u32);
            }
        }
        let mut cores: Vec<Core> = core_objs
            .iter()
            .zip(pus_of)
            .enumerate()
            .map(|(i, (obj, pus))| Core {
                index: i as u32,
                package: package_of(obj),
                numa: obj.cpuset().and_then(|s| numa_containing(&numa_sets, s)).unwrap_or(0),
                pus,
                caches: Vec::new(),
            })
            .collect();

        let mut caches = Vec::new();
        for (level, ty) in [(2u8, ObjectType::L2Cache), (3, ObjectType::L3Cache)] {
            for obj in topo.objects_with_type(ty) {
                let Some(set) = obj.cpuset() else { continue };
                let size_bytes = match obj.attributes() {
                    Some(ObjectAttributes::Cache(c)) => c.size().map_or(0, |s| s.get()),
                    _ => 0,
                };
                let index = caches.len() as u32;
                let members: Vec<u32> = core_objs
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.cpuset().is_some_and(|cs| set.intersects(cs)))
                    .map(|(i, _)| i as u32)
                    .collect();
                for &m in &members {
                    cores[m as usize].caches.push(index);
                }
                caches.push(Cache { level, size_bytes, cores: members });
            }
        }

        let numa_nodes: Vec<NumaNode> = numa_objs
            .iter()
            .enumerate()
            .map(|(i, obj)| NumaNode {
                index: i as u32,
                os_index: obj.os_index().unwrap_or(i) as u32,
                package: package_of(obj),
                memory_bytes: match obj.attributes() {
                    Some(ObjectAttributes::NUMANode(n)) => n.local_memory().map_or(0, |m| m.get()),
                    _ => 0,
                },
                cores: cores.iter().filter(|c| c.numa == i as u32).map(|c| c.index).collect(),
            })
            .collect();
        // A NUMA node spanning several packages (attached to a Group above them) is listed
        // by each of them, though it names only the first as its own.
        let shares_cpus = |p: usize, n: usize| {
            let ps = package_objs.get(p).and_then(|p| p.cpuset());
            ps.zip(numa_sets[n]).is_some_and(|(ps, ns)| ps.intersects(ns))
        };
        let packages = (0..package_objs.len().max(1))
            .map(|p| Package {
                index: p as u32,
                numa_nodes: numa_nodes
                    .iter()
                    .filter(|n| n.package == p as u32 || shares_cpus(p, n.index as usize))
                    .map(|n| n.index)
                    .collect(),
            })
            .collect();
        CpuModel { packages, numa_nodes, cores, caches, numa_sets }
    }

    /// The NUMA node an I/O object is local to: the one whose CPUs cover the CPUs of the
    /// object's first non-I/O ancestor. I/O attached above several NUMA nodes has none.
    fn locality(&self, io: &TopologyObject) -> Option<u32> {
        let set = io.first_non_io_ancestor()?.cpuset()?;
        numa_containing(&self.numa_sets, set)
    }
}

fn numa_containing(numa_sets: &[Option<BitmapRef<'_, CpuSet>>], set: BitmapRef<'_, CpuSet>) -> Option<u32> {
    if set.is_empty() {
        return None;
    }
    numa_sets.iter().position(|n| n.is_some_and(|n| n.includes(set))).map(|i| i as u32)
}

mod devices;
#[cfg(test)]
mod tests;

pub(crate) use devices::{ib_port_state, natural_key};

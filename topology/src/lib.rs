//! The hardware model of a node and its discovery.
//!
//! For now the model is the inventory a launcher reports when it registers: CPUs, cores,
//! memory and GPUs, read from `/proc` and `/sys` without any library. The placement model
//! (packages, NUMA, caches, PCI locality through hwloc) grows here too; planning code in this
//! crate does no I/O, and discovery is kept in [`discover`].

pub mod alloc;
pub mod discover;
pub mod fabric;
pub mod gang;
pub mod hostlist;
pub mod hwloc;
pub mod ids;
pub mod model;
pub mod nvml;
pub mod placement;
pub mod sysfs;

use serde::{Deserialize, Serialize};

/// What a node offers to tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResources {
    /// Logical CPUs (hardware threads) this launcher may use.
    pub cpus: u32,
    /// Physical cores among them.
    pub cores: u32,
    /// Physical memory.
    pub memory_bytes: u64,
    /// Memory kept for the system and the launcher: never allocated to tasks.
    #[serde(default)]
    pub memory_reserve_bytes: u64,
    /// GPUs, in index order.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// Index as CUDA numbers it.
    pub index: u32,
    /// Marketing name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// PCI bus id (`0000:01:00.0`).
    pub pci_bus_id: String,
}

//! What Linux sysfs says about RDMA ports and PCI locality, where hwloc is silent.
//!
//! hwloc's XML rarely carries a port's link layer, and its OpenFabrics devices need the
//! `linux:io` backend; `/sys/class/infiniband/<dev>/ports/<n>/` always has both. Every reader
//! takes the sysfs root as a parameter so tests can point it at a fake tree.

use std::fs;
use std::path::{Path, PathBuf};

use crate::model::{LinkLayer, Nic, NicPort, NodeTopology};

/// Ports of every RDMA device under `root` (normally `/sys/class/infiniband`), devices in
/// natural name order, ports by number. A missing or unreadable root gives an empty list.
pub fn infiniband_ports(root: &Path) -> Vec<(String, Vec<NicPort>)> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut devices: Vec<(String, Vec<NicPort>)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let ports = device_ports(&e.path().join("ports"));
            Some((name, ports))
        })
        .collect();
    devices.sort_by_key(|d| crate::hwloc::natural_key(&d.0));
    devices
}

fn device_ports(dir: &Path) -> Vec<NicPort> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut ports: Vec<NicPort> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let number: u32 = e.file_name().to_str()?.parse().ok()?;
            let read = |f: &str| fs::read_to_string(e.path().join(f)).ok().map(|s| s.trim().to_owned());
            let link_layer = match read("link_layer").as_deref() {
                Some(l) if l.eq_ignore_ascii_case("infiniband") => LinkLayer::InfiniBand,
                Some(l) if l.eq_ignore_ascii_case("ethernet") => LinkLayer::Ethernet,
                _ => LinkLayer::Unknown,
            };
            let state = read("state").filter(|s| !s.is_empty()).map(|s| crate::hwloc::ib_port_state(&s));
            Some(NicPort { number, link_layer, state })
        })
        .collect();
    ports.sort_by_key(|p| p.number);
    ports
}

/// Fills the ports of the NICs in `topo` from `root` (`/sys/class/infiniband`), and adds the
/// RDMA devices hwloc did not report, with their PCI bus id, NUMA node and PCIe switch.
pub fn enrich_nics(topo: &mut NodeTopology, root: &Path) {
    for (name, ports) in infiniband_ports(root) {
        if let Some(nic) = topo.nics.iter_mut().find(|n| n.name == name) {
            // sysfs is read live; hwloc's infos may come from an old XML.
            if !ports.is_empty() {
                nic.ports = ports;
            }
            continue;
        }
        let device = fs::canonicalize(root.join(&name).join("device")).ok();
        let chain = device.as_deref().map(pci_chain).unwrap_or_default();
        let numa = device.as_deref().and_then(|d| numa_os_index(&d.join("numa_node")));
        topo.nics.push(Nic {
            name,
            ports,
            pci_bus_id: chain.last().cloned(),
            numa: numa_logical(topo, numa),
            // Like hwloc's answer: the outermost bridge below the host bridge, if any.
            pcie_switch: (chain.len() >= 2).then(|| chain[0].clone()),
        });
    }
    topo.nics.sort_by_key(|n| crate::hwloc::natural_key(&n.name));
}

/// The NUMA node (OS index) sysfs gives a PCI device, from `<pci_root>/<bus id>/numa_node`
/// (`pci_root` normally `/sys/bus/pci/devices`). `-1` (no locality) and errors give `None`.
pub fn pci_numa_node(pci_root: &Path, bus_id: &str) -> Option<u32> {
    numa_os_index(&pci_root.join(bus_id.to_ascii_lowercase()).join("numa_node"))
}

fn numa_os_index(file: &Path) -> Option<u32> {
    fs::read_to_string(file).ok()?.trim().parse::<i64>().ok().and_then(|n| u32::try_from(n).ok())
}

/// Maps a NUMA OS index to the model's logical index. With a single NUMA node every device is
/// local to it, which also covers VMs whose sysfs says `-1`.
pub(crate) fn numa_logical(topo: &NodeTopology, os_index: Option<u32>) -> Option<u32> {
    match os_index {
        Some(os) => topo.numa_nodes.iter().find(|n| n.os_index == os).map(|n| n.index),
        None if topo.numa_nodes.len() == 1 => Some(topo.numa_nodes[0].index),
        None => None,
    }
}

/// PCI bus ids along a canonical sysfs device path, host side first:
/// `/sys/devices/pci0000:00/0000:00:01.0/0000:13:00.0` → `["0000:00:01.0", "0000:13:00.0"]`.
fn pci_chain(device: &Path) -> Vec<String> {
    device
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter(|c| is_bus_id(c))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `dddd:bb:dd.f` (the domain may be longer on some hypervisors).
fn is_bus_id(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split([':', '.']).collect();
    matches!(parts.as_slice(), [d, b, dev, f]
        if d.len() >= 4 && d.bytes().all(|c| c.is_ascii_hexdigit()) && hex(b, 2) && hex(dev, 2) && hex(f, 1))
}

/// Default location of `pci_numa_node`'s tree.
pub fn pci_devices_root() -> PathBuf {
    PathBuf::from("/sys/bus/pci/devices")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NumaNode;

    /// Writes `files` (path, contents) under a fresh temporary directory.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, contents) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, contents).expect("write");
        }
        dir
    }

    fn port(number: u32, link_layer: LinkLayer, state: &str) -> NicPort {
        NicPort { number, link_layer, state: Some(state.to_owned()) }
    }

    fn two_numa() -> NodeTopology {
        let numa = |index, os_index| NumaNode { index, os_index, package: 0, memory_bytes: 0, cores: vec![] };
        NodeTopology { numa_nodes: vec![numa(0, 0), numa(1, 1)], ..NodeTopology::default() }
    }

    #[test]
    fn sysfs_reads_ports_states_and_link_layers() {
        let dir = tree(&[
            ("mlx5_10/ports/1/state", "4: ACTIVE\n"),
            ("mlx5_10/ports/1/link_layer", "InfiniBand\n"),
            ("mlx5_2/ports/2/state", "1: DOWN\n"),
            ("mlx5_2/ports/2/link_layer", "Ethernet\n"),
            ("mlx5_2/ports/1/state", "4: ACTIVE\n"),
            ("mlx5_2/ports/1/link_layer", "InfiniBand\n"),
            ("mlx5_3/ports/1/state", "2: INIT\n"),
        ]);
        let ports = infiniband_ports(dir.path());
        assert_eq!(
            ports,
            vec![
                (
                    "mlx5_2".to_owned(),
                    vec![port(1, LinkLayer::InfiniBand, "ACTIVE"), port(2, LinkLayer::Ethernet, "DOWN")]
                ),
                ("mlx5_3".to_owned(), vec![port(1, LinkLayer::Unknown, "INIT")]),
                ("mlx5_10".to_owned(), vec![port(1, LinkLayer::InfiniBand, "ACTIVE")]),
            ]
        );
    }

    #[test]
    fn sysfs_missing_root_is_empty() {
        assert!(infiniband_ports(Path::new("/nonexistent/sys/class/infiniband")).is_empty());
    }

    #[test]
    fn sysfs_enrich_fills_known_nics_and_adds_missing_ones() {
        let dir = tree(&[
            ("ib/mlx5_0/ports/1/state", "4: ACTIVE"),
            ("ib/mlx5_0/ports/1/link_layer", "InfiniBand"),
            ("ib/mlx5_1/ports/1/state", "4: ACTIVE"),
            ("ib/mlx5_1/ports/1/link_layer", "Ethernet"),
            ("devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0/numa_node", "1\n"),
        ]);
        let device = dir.path().join("devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0");
        std::os::unix::fs::symlink(&device, dir.path().join("ib/mlx5_1/device")).expect("symlink");
        let mut topo = two_numa();
        topo.nics.push(Nic {
            name: "mlx5_0".to_owned(),
            ports: vec![NicPort { number: 1, link_layer: LinkLayer::Unknown, state: None }],
            pci_bus_id: Some("0000:13:00.0".to_owned()),
            numa: Some(0),
            pcie_switch: Some("0000:10:01.0".to_owned()),
        });
        enrich_nics(&mut topo, &dir.path().join("ib"));
        assert_eq!(topo.nics.len(), 2);
        assert_eq!(topo.nics[0].ports, vec![port(1, LinkLayer::InfiniBand, "ACTIVE")]);
        assert_eq!(topo.nics[0].pcie_switch.as_deref(), Some("0000:10:01.0"));
        let added = &topo.nics[1];
        assert_eq!(added.name, "mlx5_1");
        assert_eq!(added.ports, vec![port(1, LinkLayer::Ethernet, "ACTIVE")]);
        assert_eq!(added.pci_bus_id.as_deref(), Some("0000:82:00.0"));
        assert_eq!(added.pcie_switch.as_deref(), Some("0000:80:01.0"));
        assert_eq!(added.numa, Some(1));
    }

    #[test]
    fn sysfs_pci_numa_node() {
        let dir = tree(&[("0000:a1:00.0/numa_node", "1\n"), ("0000:00:06.0/numa_node", "-1\n")]);
        assert_eq!(pci_numa_node(dir.path(), "0000:A1:00.0"), Some(1));
        assert_eq!(pci_numa_node(dir.path(), "0000:00:06.0"), None);
        assert_eq!(pci_numa_node(dir.path(), "0000:ff:00.0"), None);
        let topo = two_numa();
        assert_eq!(numa_logical(&topo, Some(1)), Some(1));
        assert_eq!(numa_logical(&topo, None), None);
    }

    #[test]
    fn sysfs_bus_id_shape() {
        for (s, ok) in [("0000:13:00.0", true), ("10000:13:00.0", true), ("pci0000:00", false), ("13:00.0", false)] {
            assert_eq!(is_bus_id(s), ok, "{s}");
        }
    }
}

//! Discovery of the local node's resources from `/proc` and `/sys`.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use crate::{Gpu, NodeResources};

/// Reads the local node: CPUs this process may run on, cores, memory, NVIDIA GPUs.
pub fn local_resources() -> NodeResources {
    let cpus = allowed_cpus();
    let cores = count_cores(&cpus).max(1);
    NodeResources {
        cpus: (cpus.len() as u32).max(1),
        cores,
        memory_bytes: total_memory_bytes().unwrap_or(0),
        memory_reserve_bytes: 0,
        gpus: nvidia_gpus(Path::new("/proc/driver/nvidia/gpus")),
    }
}

/// CPU ids from this process's `Cpus_allowed_list`.
pub fn allowed_cpus() -> Vec<u32> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| parse_cpu_list(list.trim()))
        .unwrap_or_else(|| (0..std::thread::available_parallelism().map_or(1, |n| n.get() as u32)).collect())
}

/// Parses the kernel's CPU list format (`0-3,8,10-11`).
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn count_cores(cpus: &[u32]) -> u32 {
    let mut seen = HashSet::new();
    for cpu in cpus {
        let base = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let core = fs::read_to_string(format!("{base}/core_id")).unwrap_or_else(|_| cpu.to_string());
        let pkg = fs::read_to_string(format!("{base}/physical_package_id")).unwrap_or_default();
        seen.insert((pkg.trim().to_owned(), core.trim().to_owned()));
    }
    seen.len() as u32
}

fn total_memory_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 =
        meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// GPUs the NVIDIA driver lists under `/proc/driver/nvidia/gpus/<bus id>/information`.
/// Absent on machines without the driver, which is normal.
pub fn nvidia_gpus(dir: &Path) -> Vec<Gpu> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut gpus: Vec<Gpu> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let info = fs::read_to_string(e.path().join("information")).ok()?;
            let field = |key: &str| {
                info.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim_start_matches(':').trim().to_owned())
            };
            Some(Gpu {
                index: field("Device Minor").and_then(|m| m.parse().ok()).unwrap_or(0),
                name: field("Model").unwrap_or_default(),
                uuid: field("GPU UUID").unwrap_or_default(),
                pci_bus_id: field("Bus Location").unwrap_or_else(|| e.file_name().to_string_lossy().into_owned()),
            })
        })
        .collect();
    // CUDA's default order is by PCI bus id.
    gpus.sort_by(|a, b| a.pci_bus_id.cmp(&b.pci_bus_id));
    for (i, g) in gpus.iter_mut().enumerate() {
        g.index = i as u32;
    }
    gpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn local_node_has_cpus_and_memory() {
        let r = local_resources();
        assert!(r.cpus >= 1 && r.cores >= 1 && r.cores <= r.cpus);
        assert!(r.memory_bytes > 0);
    }

    #[test]
    fn nvidia_proc_files_are_read_in_bus_order() {
        let dir = std::env::temp_dir().join(format!("gangway-gpus-{}", std::process::id()));
        for (bus, uuid) in [("0000:81:00.0", "GPU-b"), ("0000:01:00.0", "GPU-a")] {
            let d = dir.join(bus);
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join("information"),
                format!("Model: \t\t NVIDIA H100\nGPU UUID: \t {uuid}\nBus Location: \t {bus}\nDevice Minor: \t 0\n"),
            )
            .unwrap();
        }
        let gpus = nvidia_gpus(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!((gpus[0].index, gpus[0].uuid.as_str(), gpus[0].name.as_str()), (0, "GPU-a", "NVIDIA H100"));
        assert_eq!((gpus[1].index, gpus[1].pci_bus_id.as_str()), (1, "0000:81:00.0"));
        assert!(nvidia_gpus(Path::new("/nonexistent")).is_empty());
    }
}

//! Placement invariants over random small nodes and requests.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::fixture::{synthetic, PuNumbering, Shape};
use super::*;
use crate::model::{GpuDevice, LinkLayer, Nic, NicPort};

fn arb_node() -> impl Strategy<Value = NodeTopology> {
    let shape = (1u32..=2, 1u32..=2, 1u32..=2, 1u32..=4, 1u32..=2, any::<bool>(), any::<bool>());
    // GPU: (NUMA domain, switch); a domain past the node's, or switch 0, means unknown.
    let gpus = prop::collection::vec((0u32..5, 0u32..3), 0..7);
    // NIC: (NUMA domain, switch, port state: none / active / down).
    let nics = prop::collection::vec((0u32..5, 0u32..3, 0u8..3), 0..4);
    (shape, gpus, nics).prop_map(|((packages, numa, l3, cores, pus, l2, interleaved), gpus, nics)| {
        let numbering = if interleaved { PuNumbering::Interleaved } else { PuNumbering::Packed };
        let mut node = synthetic(Shape {
            packages,
            numa_per_package: numa,
            l3_per_numa: l3,
            cores_per_l3: cores,
            pus_per_core: pus,
            l2_per_core: l2,
            numbering,
        });
        let domains = packages * numa;
        for (i, (numa, switch)) in gpus.into_iter().enumerate() {
            node.gpus.push(GpuDevice {
                index: i as u32,
                name: "GPU".into(),
                uuid: None,
                pci_bus_id: format!("0000:{i:02x}:00.0"),
                memory_bytes: None,
                numa: (numa < domains).then_some(numa),
                pcie_switch: (switch > 0).then(|| format!("sw{switch}")),
                nvlink_peers: Vec::new(),
            });
        }
        for (i, (numa, switch, state)) in nics.into_iter().enumerate() {
            let state = [None, Some("ACTIVE"), Some("DOWN")][state as usize].map(String::from);
            node.nics.push(Nic {
                name: format!("mlx5_{i}"),
                ports: vec![NicPort { number: 1, link_layer: LinkLayer::InfiniBand, state }],
                pci_bus_id: None,
                numa: (numa < domains).then_some(numa),
                pcie_switch: (switch > 0).then(|| format!("sw{switch}")),
            });
        }
        node
    })
}

fn arb_request() -> impl Strategy<Value = PlacementRequest> {
    let binds = prop_oneof![Just(CpuBind::Cores), Just(CpuBind::Threads), Just(CpuBind::Numa), Just(CpuBind::None)];
    let gpu_binds = prop_oneof![Just(GpuBind::Closest), Just(GpuBind::Shared), Just(GpuBind::None)];
    let from = prop_oneof![Just(ReserveFrom::Last), Just(ReserveFrom::First)];
    // Mostly requests that fit, so that most cases check a plan rather than an error.
    let gpus = prop_oneof![3 => Just(0u32), 2 => Just(1), 1 => 2u32..=3];
    (1u32..=10, prop::option::of(1u32..=3), gpus, binds, gpu_binds, 0u32..=2, from, any::<bool>()).prop_map(
        |(ranks, cpus_per_rank, gpus_per_rank, cpu_bind, gpu_bind, reserve, reserve_from, omp)| PlacementRequest {
            ranks,
            cpus_per_rank,
            gpus_per_rank,
            cpu_bind,
            gpu_bind,
            reserve_cores_per_socket: reserve,
            reserve_from,
            omp,
        },
    )
}

/// Usable cores (positions) per NUMA domain, worked out independently of the planner.
fn usable(node: &NodeTopology, req: &PlacementRequest) -> BTreeMap<u32, Vec<usize>> {
    let mut by_package: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (pos, core) in node.cores.iter().enumerate() {
        by_package.entry(core.package).or_default().push(pos);
    }
    let mut reserved = BTreeSet::new();
    for cores in by_package.values() {
        let n = (req.reserve_cores_per_socket as usize).min(cores.len());
        let picked = match req.reserve_from {
            ReserveFrom::Last => &cores[cores.len() - n..],
            ReserveFrom::First => &cores[..n],
        };
        reserved.extend(picked.iter().copied());
    }
    let mut out: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (pos, core) in node.cores.iter().enumerate() {
        if !reserved.contains(&pos) {
            out.entry(core.numa).or_default().push(pos);
        }
    }
    out
}

fn check_invariants(node: &NodeTopology, req: &PlacementRequest) {
    let result = plan_ranks(node, req);
    assert_eq!(result, plan_ranks(node, req), "same input, same plan");
    let domains = usable(node, req);
    let pus_of = |cores: &[usize]| -> usize { cores.iter().map(|&c| node.cores[c].pus.len()).sum() };
    let (cores, pus): (usize, usize) =
        (domains.values().map(Vec::len).sum(), domains.values().map(|c| pus_of(c)).sum());
    let threads = req.cpu_bind == CpuBind::Threads;
    let (ranks, g, n) = (u64::from(req.ranks), u64::from(req.gpus_per_rank), node.gpus.len() as u64);
    let share = if ranks * g <= n {
        Some(1)
    } else if g <= n && n.checked_rem(g) == Some(0) && ranks.checked_rem(n / g) == Some(0) {
        Some(ranks / (n / g))
    } else {
        None
    };
    let cpu_fits = match req.cpus_per_rank {
        _ if ranks > pus as u64 => false,
        Some(d) if threads => ranks * u64::from(d) <= pus as u64,
        Some(d) => ranks * u64::from(d) <= cores as u64,
        None => true,
    };
    let placement = match result {
        Err(e) => {
            assert!(!cpu_fits || share.is_none(), "{req}: unexpected error {e}");
            return;
        }
        Ok(p) => p,
    };
    assert!(cpu_fits && share.is_some(), "{req}: should have failed");
    assert_eq!(placement.ranks.len(), req.ranks as usize);
    let all_pus: BTreeSet<u32> = node.cores.iter().flat_map(|c| c.pus.iter().copied()).collect();
    let usable_pus: BTreeSet<u32> =
        domains.values().flatten().flat_map(|&c| node.cores[c].pus.iter().copied()).collect();
    let core_of: BTreeMap<u32, &crate::model::Core> =
        node.cores.iter().flat_map(|c| c.pus.iter().map(move |&p| (p, c))).collect();
    // Whether every rank fits inside one domain.
    let fits_one = match req.cpus_per_rank {
        None => req.ranks as usize >= domains.len(),
        Some(d) => {
            let per = |c: &Vec<usize>| if threads { pus_of(c) } else { c.len() } / d as usize;
            domains.values().map(per).sum::<usize>() >= req.ranks as usize
        }
    };
    let mut used = BTreeSet::new();
    let mut gpu_users: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, r) in placement.ranks.iter().enumerate() {
        assert_eq!(r.rank as usize, i);
        assert!(!r.cpus.is_empty() && r.cpus.windows(2).all(|w| w[0] < w[1]), "{req}: {r:?}");
        assert!(r.cpus.iter().all(|p| all_pus.contains(p)));
        let cores_of_cpus: BTreeSet<u32> = r.cpus.iter().map(|p| core_of[p].index).collect();
        assert_eq!(r.cores, cores_of_cpus.into_iter().collect::<Vec<_>>(), "{req}");
        let numa_of_cpus: BTreeSet<u32> = r.cpus.iter().map(|p| core_of[p].numa).collect();
        assert_eq!(r.numa_nodes, numa_of_cpus.into_iter().collect::<Vec<_>>(), "{req}: cpus inside numa_nodes");
        match req.cpu_bind {
            CpuBind::Cores | CpuBind::Threads => {
                for &p in &r.cpus {
                    assert!(used.insert(p), "{req}: PU {p} given twice");
                    assert!(usable_pus.contains(&p), "{req}: reserved PU {p} used");
                }
                if fits_one {
                    assert_eq!(r.numa_nodes.len(), 1, "{req}: rank {i} spans domains");
                }
                match req.cpus_per_rank {
                    Some(d) if threads => assert_eq!(r.cpus.len(), d as usize),
                    Some(d) => assert_eq!(r.cores.len(), d as usize),
                    None => {}
                }
            }
            CpuBind::Numa => {
                let whole: BTreeSet<u32> = r
                    .numa_nodes
                    .iter()
                    .flat_map(|d| domains[d].iter().flat_map(|&c| node.cores[c].pus.iter().copied()))
                    .collect();
                assert_eq!(r.cpus, whole.into_iter().collect::<Vec<_>>());
                if fits_one {
                    assert_eq!(r.numa_nodes.len(), 1, "{req}: rank {i} spans domains");
                }
            }
            CpuBind::None => assert_eq!(r.cpus, all_pus.iter().copied().collect::<Vec<_>>()),
        }
        assert_eq!(r.gpus.len() as u64, g, "{req}");
        assert!(r.gpus.windows(2).all(|w| w[0] < w[1]), "{req}: GPU twice in a rank");
        assert!(r.gpus.iter().all(|&x| (x as usize) < node.gpus.len()), "{req}: invalid GPU");
        for &x in &r.gpus {
            *gpu_users.entry(x).or_default() += 1;
        }
        let cuda = r.env.get("CUDA_VISIBLE_DEVICES");
        assert_eq!(cuda.is_some(), g > 0 && req.gpu_bind != GpuBind::None, "{req}");
        if req.gpu_bind == GpuBind::Closest && g > 0 {
            let own: Vec<String> = r.gpus.iter().map(u32::to_string).collect();
            assert_eq!(cuda.map(String::as_str), Some(own.join(",").as_str()));
        }
        assert_eq!(r.nics.len(), usize::from(!node.nics.is_empty()));
        assert_eq!(r.env.contains_key("UCX_NET_DEVICES"), !node.nics.is_empty());
        assert_eq!(r.env.contains_key("OMP_NUM_THREADS"), req.omp);
    }
    if let Some(share) = share.filter(|_| g > 0) {
        assert!(gpu_users.values().all(|&u| u == share), "{req}: GPU users {gpu_users:?}, want {share} each");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn placement_invariants(node in arb_node(), req in arb_request()) {
        check_invariants(&node, &req);
    }

    #[test]
    fn requests_round_trip_through_text(req in arb_request()) {
        prop_assert_eq!(PlacementRequest::parse(&req.to_string()), Ok(req));
    }

    #[test]
    fn parsing_never_panics(s in "[a-z=,0-9 -]{0,40}") {
        let _ = PlacementRequest::parse(&s);
    }

    #[test]
    fn parsing_key_values_never_panics(
        items in prop::collection::vec(("(ranks|cpus-per-rank|gpus-per-rank|bind|gpu-bind|omp|x)", "[a-z0-9-]{0,6}"), 0..6)
    ) {
        let s: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = PlacementRequest::parse(&s.join(","));
    }
}

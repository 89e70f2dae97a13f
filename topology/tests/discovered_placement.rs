//! Placement on topologies as discovery reads them (not hand-built models): the dgx_like
//! fixture through hwloc gives the reference plans, and bad input is refused by name.

use std::path::{Path, PathBuf};

use gangway_topology::hwloc::{from_synthetic, from_xml_file, from_xml_str};
use gangway_topology::placement::{dgx_like_fixture, plan_ranks, PlacementRequest};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

#[test]
fn dgx_like_from_xml_plans_like_the_reference() {
    let xml = from_xml_file(&fixture("dgx_like.xml")).unwrap();
    for spec in [
        "ranks=8,gpus-per-rank=1",
        "ranks=8,gpus-per-rank=1,gpu-bind=shared",
        "ranks=16,gpus-per-rank=1,reserve-cores-per-socket=1,reserve-from=first",
        "ranks=2",
        "ranks=4,bind=numa",
    ] {
        let req = PlacementRequest::parse(spec).unwrap();
        let from_xml = plan_ranks(&xml, &req).unwrap();
        let by_hand = plan_ranks(&dgx_like_fixture(), &req).unwrap();
        assert_eq!(from_xml, by_hand, "{spec}");
    }
    // The reference's first and last rows for 8 ranks × 1 GPU.
    let p = plan_ranks(&xml, &PlacementRequest::parse("ranks=8,gpus-per-rank=1").unwrap()).unwrap();
    assert_eq!(
        (p.ranks[0].cpus.clone(), p.ranks[0].gpus.clone(), p.ranks[0].nics.clone()),
        ((0..8).collect(), vec![0], vec!["mlx5_0".to_string()])
    );
    assert_eq!(
        (p.ranks[7].cpus.clone(), p.ranks[7].gpus.clone(), p.ranks[7].nics.clone()),
        ((56..64).collect(), vec![7], vec!["mlx5_3".to_string()])
    );
    assert_eq!(p.ranks[7].env["UCX_NET_DEVICES"], "mlx5_3:1");
    let shared =
        plan_ranks(&xml, &PlacementRequest::parse("ranks=8,gpus-per-rank=1,gpu-bind=shared").unwrap()).unwrap();
    assert_eq!(shared.ranks[7].env["CUDA_VISIBLE_DEVICES"], "7,0,1,2,3,4,5,6");
}

#[test]
fn synthetic_and_bad_input() {
    let t = from_synthetic("pack:2 numa:2 core:8 pu:2").unwrap();
    assert_eq!((t.packages.len(), t.numa_nodes.len(), t.cores.len(), t.pu_count()), (2, 4, 32, 64));
    let p = plan_ranks(&t, &PlacementRequest::parse("ranks=4").unwrap()).unwrap();
    for (i, r) in p.ranks.iter().enumerate() {
        assert_eq!(r.numa_nodes, vec![i as u32], "one rank per NUMA domain");
    }
    let err = from_synthetic("pack:two").unwrap_err().to_string();
    assert!(err.contains("pack:two"), "{err}");
    let err = from_xml_str("<topology><object").unwrap_err().to_string();
    assert!(!err.is_empty());
    let err = PlacementRequest::parse("ranks=8,bind=socket").unwrap_err().to_string();
    assert!(err.contains("bind") && err.contains("cores"), "{err}");
}

//! Placement specified by examples: one `check` per case, node models built by hand.

use super::fixture::{synthetic, PuNumbering, Shape};
use super::*;

/// The 2-core, 1-NUMA development VM (`vm_topology.xml`): one PU per core, an L2 per core.
fn vm() -> NodeTopology {
    synthetic(Shape {
        packages: 1,
        numa_per_package: 1,
        l3_per_numa: 1,
        cores_per_l3: 2,
        pus_per_core: 1,
        l2_per_core: true,
        numbering: PuNumbering::Packed,
    })
}

/// 2 sockets × 4 cores × 2 PUs numbered the Linux way (core `i` has PUs `i` and `i+8`).
fn two_socket_smt() -> NodeTopology {
    synthetic(Shape {
        packages: 2,
        numa_per_package: 1,
        l3_per_numa: 1,
        cores_per_l3: 4,
        pus_per_core: 2,
        l2_per_core: true,
        numbering: PuNumbering::Interleaved,
    })
}

/// One NUMA domain with two L3s of four cores each (a chiplet CPU).
fn two_l3() -> NodeTopology {
    synthetic(Shape {
        packages: 1,
        numa_per_package: 1,
        l3_per_numa: 2,
        cores_per_l3: 4,
        pus_per_core: 1,
        l2_per_core: true,
        numbering: PuNumbering::Packed,
    })
}

fn plan(node: &NodeTopology, spec: &str) -> Placement {
    let req = PlacementRequest::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    plan_ranks(node, &req).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// `0-3,8,10-11`, or `-` for none.
fn ranges(ids: &[u32]) -> String {
    match crate::ids::compress_ids(ids) {
        r if r.is_empty() => "-".into(),
        r => r,
    }
}

fn row(r: &RankPlacement) -> String {
    let nics = if r.nics.is_empty() { "-".to_string() } else { r.nics.join(",") };
    format!(
        "{}: cpus {} cores {} numa {} gpus {} nics {}",
        r.rank,
        ranges(&r.cpus),
        ranges(&r.cores),
        ranges(&r.numa_nodes),
        ranges(&r.gpus),
        nics
    )
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim_end).map(str::trim_start).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Each rank as `rank: cpus … cores … numa … gpus … nics …`.
fn check(node: &NodeTopology, spec: &str, expect: &str) {
    let got: Vec<String> = plan(node, spec).ranks.iter().map(row).collect();
    assert_eq!(got, lines(expect), "{spec}");
}

/// One rank's environment as `K=V K=V`, in name order.
fn check_env(node: &NodeTopology, spec: &str, rank: usize, expect: &str) {
    let placement = plan(node, spec);
    let got: Vec<String> = placement.ranks[rank].env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(got.join(" "), expect, "{spec} rank {rank}");
}

fn check_err(node: &NodeTopology, spec: &str, expect: &str) {
    let req = PlacementRequest::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    match plan_ranks(node, &req) {
        Ok(p) => panic!("{spec}: expected an error, got {p:?}"),
        Err(e) => assert_eq!(e.to_string(), expect, "{spec}"),
    }
}

/// The table of `placement_dgx_like_*.txt`: GPU, its bus id, NIC, GPU–NIC path, cores, cpuset, NUMA.
fn fixture_table(node: &NodeTopology, spec: &str) -> Vec<String> {
    plan(node, spec)
        .ranks
        .iter()
        .map(|r| {
            let gpu = node.gpus.iter().find(|g| Some(&g.index) == r.gpus.first()).expect("a GPU per rank");
            let nic = node.nics.iter().find(|n| Some(&n.name) == r.nics.first()).expect("a NIC per rank");
            let path = match () {
                _ if gpu.pcie_switch.is_some() && gpu.pcie_switch == nic.pcie_switch => "PIX",
                _ if gpu.numa == nic.numa => "NODE",
                _ => "SYS",
            };
            let line = format!(
                "{:<5}{:<9}{:<14}{:<9}{:<6}{:<11}{:<23}{:<4}",
                r.rank,
                format!("cuda{}", gpu.index),
                gpu.pci_bus_id,
                nic.name,
                path,
                ranges(&r.cores),
                ranges(&r.cpus),
                ranges(&r.numa_nodes)
            );
            line.trim_end().to_string()
        })
        .collect()
}

#[test]
fn dgx_like_8_ranks_match_the_reference_plan() {
    // Rows of /work/shared/topologies/placement_dgx_like_8.txt.
    let expect = "
        0    cuda0    0000:11:00.0  mlx5_0   PIX   0-3        0-7                    0
        1    cuda1    0000:12:00.0  mlx5_0   PIX   4-7        8-15                   0
        2    cuda2    0000:21:00.0  mlx5_1   PIX   8-11       16-23                  0
        3    cuda3    0000:22:00.0  mlx5_1   PIX   12-15      24-31                  0
        4    cuda4    0000:91:00.0  mlx5_2   PIX   16-19      32-39                  1
        5    cuda5    0000:92:00.0  mlx5_2   PIX   20-23      40-47                  1
        6    cuda6    0000:a1:00.0  mlx5_3   PIX   24-27      48-55                  1
        7    cuda7    0000:a2:00.0  mlx5_3   PIX   28-31      56-63                  1";
    let node = dgx_like_fixture();
    assert_eq!(fixture_table(&node, "ranks=8,gpus-per-rank=1"), lines(expect));
    let omp = "OMP_NUM_THREADS=4 OMP_PLACES=cores OMP_PROC_BIND=close";
    let shared = "ranks=8,gpus-per-rank=1,gpu-bind=shared";
    let strict = "ranks=8,gpus-per-rank=1,gpu-bind=closest";
    check_env(&node, shared, 0, &format!("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 {omp} UCX_NET_DEVICES=mlx5_0:1"));
    check_env(&node, strict, 0, &format!("CUDA_VISIBLE_DEVICES=0 {omp} UCX_NET_DEVICES=mlx5_0:1"));
    check_env(&node, shared, 7, &format!("CUDA_VISIBLE_DEVICES=7,0,1,2,3,4,5,6 {omp} UCX_NET_DEVICES=mlx5_3:1"));
    check_env(&node, strict, 7, &format!("CUDA_VISIBLE_DEVICES=7 {omp} UCX_NET_DEVICES=mlx5_3:1"));
}

#[test]
fn dgx_like_16_ranks_share_gpus_two_by_two() {
    // Rows of /work/shared/topologies/placement_dgx_like_16.txt, which keeps core 0 of each
    // package free: that is `reserve-from=first`.
    let expect = "
        0    cuda0    0000:11:00.0  mlx5_0   PIX   1-2        2-5                    0
        1    cuda0    0000:11:00.0  mlx5_0   PIX   3-4        6-9                    0
        2    cuda1    0000:12:00.0  mlx5_0   PIX   5-6        10-13                  0
        3    cuda1    0000:12:00.0  mlx5_0   PIX   7-8        14-17                  0
        4    cuda2    0000:21:00.0  mlx5_1   PIX   9-10       18-21                  0
        5    cuda2    0000:21:00.0  mlx5_1   PIX   11-12      22-25                  0
        6    cuda3    0000:22:00.0  mlx5_1   PIX   13-14      26-29                  0
        7    cuda3    0000:22:00.0  mlx5_1   PIX   15         30-31                  0
        8    cuda4    0000:91:00.0  mlx5_2   PIX   17-18      34-37                  1
        9    cuda4    0000:91:00.0  mlx5_2   PIX   19-20      38-41                  1
        10   cuda5    0000:92:00.0  mlx5_2   PIX   21-22      42-45                  1
        11   cuda5    0000:92:00.0  mlx5_2   PIX   23-24      46-49                  1
        12   cuda6    0000:a1:00.0  mlx5_3   PIX   25-26      50-53                  1
        13   cuda6    0000:a1:00.0  mlx5_3   PIX   27-28      54-57                  1
        14   cuda7    0000:a2:00.0  mlx5_3   PIX   29-30      58-61                  1
        15   cuda7    0000:a2:00.0  mlx5_3   PIX   31         62-63                  1";
    let node = dgx_like_fixture();
    let spec = "ranks=16,gpus-per-rank=1,reserve-cores-per-socket=1,reserve-from=first";
    assert_eq!(fixture_table(&node, spec), lines(expect));
    let shared = format!("{spec},gpu-bind=shared");
    let omp = |n| format!("OMP_NUM_THREADS={n} OMP_PLACES=cores OMP_PROC_BIND=close");
    check_env(&node, &shared, 0, &format!("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 {} UCX_NET_DEVICES=mlx5_0:1", omp(2)));
    check_env(&node, spec, 0, &format!("CUDA_VISIBLE_DEVICES=0 {} UCX_NET_DEVICES=mlx5_0:1", omp(2)));
    check_env(&node, &shared, 15, &format!("CUDA_VISIBLE_DEVICES=7,0,1,2,3,4,5,6 {} UCX_NET_DEVICES=mlx5_3:1", omp(1)));
    check_env(&node, spec, 15, &format!("CUDA_VISIBLE_DEVICES=7 {} UCX_NET_DEVICES=mlx5_3:1", omp(1)));
}

#[test]
fn dgx_like_gpus_and_nics() {
    let node = dgx_like_fixture();
    // Without a reservation 16 ranks get two cores each.
    let p = plan(&node, "ranks=16,gpus-per-rank=1");
    assert_eq!(row(&p.ranks[0]), "0: cpus 0-3 cores 0-1 numa 0 gpus 0 nics mlx5_0");
    assert_eq!(row(&p.ranks[15]), "15: cpus 60-63 cores 30-31 numa 1 gpus 7 nics mlx5_3");
    // One rank takes both domains; its devices come from the first.
    check(&node, "ranks=1,gpus-per-rank=1", "0: cpus 0-63 cores 0-31 numa 0-1 gpus 0 nics mlx5_0");
    // Two ranks in a domain go to different PCIe switches, each with its own NIC.
    check(
        &node,
        "ranks=3,gpus-per-rank=1",
        "0: cpus 0-15 cores 0-7 numa 0 gpus 0 nics mlx5_0
         1: cpus 16-31 cores 8-15 numa 0 gpus 2 nics mlx5_1
         2: cpus 32-63 cores 16-31 numa 1 gpus 4 nics mlx5_2",
    );
    check(
        &node,
        "ranks=2,gpus-per-rank=4",
        "0: cpus 0-31 cores 0-15 numa 0 gpus 0-3 nics mlx5_0
         1: cpus 32-63 cores 16-31 numa 1 gpus 4-7 nics mlx5_2",
    );
    // 8 ranks × 2 GPUs on 8 GPUs: neighbouring ranks share a pair.
    let p = plan(&node, "ranks=8,gpus-per-rank=2");
    let gpus: Vec<String> = p.ranks.iter().map(|r| ranges(&r.gpus)).collect();
    assert_eq!(gpus, ["0-1", "0-1", "2-3", "2-3", "4-5", "4-5", "6-7", "6-7"]);
    // Without GPUs, ranks of a domain still spread over its NICs.
    let nics: Vec<String> = plan(&node, "ranks=8").ranks.iter().map(|r| r.nics.join(",")).collect();
    assert_eq!(nics, ["mlx5_0", "mlx5_0", "mlx5_1", "mlx5_1", "mlx5_2", "mlx5_2", "mlx5_3", "mlx5_3"]);
    let omp = "OMP_NUM_THREADS=4 OMP_PLACES=cores OMP_PROC_BIND=close";
    check_env(&node, "ranks=8", 0, &format!("{omp} UCX_NET_DEVICES=mlx5_0:1"));
    check_env(&node, "ranks=8,gpus-per-rank=0,gpu-bind=shared", 0, &format!("{omp} UCX_NET_DEVICES=mlx5_0:1"));
    check_env(&node, "ranks=8,gpus-per-rank=1,gpu-bind=none", 1, &format!("{omp} UCX_NET_DEVICES=mlx5_0:1"));
    check_env(&node, "ranks=8,gpus-per-rank=1,omp=false", 2, "CUDA_VISIBLE_DEVICES=2 UCX_NET_DEVICES=mlx5_1:1");
}

#[test]
fn errors_say_what_is_needed_and_what_the_node_has() {
    let node = dgx_like_fixture();
    let multiple = "GPUs are shared only when ranks are a multiple of 8";
    check_err(
        &node,
        "ranks=9,gpus-per-rank=1",
        &format!("needs 9 GPUs, node has 8 (9 ranks × 1 gpus-per-rank; {multiple})"),
    );
    check_err(&node, "ranks=1,gpus-per-rank=9", "needs 9 GPUs, node has 8 (1 ranks × 9 gpus-per-rank)");
    check_err(&node, "ranks=2,cpus-per-rank=20", "needs 40 cores (2 ranks × 20 cpus-per-rank), node has 32 usable");
    check_err(
        &node,
        "ranks=8,cpus-per-rank=4,reserve-cores-per-socket=2",
        "needs 32 cores (8 ranks × 4 cpus-per-rank), node has 28 usable (2 reserved per socket)",
    );
    check_err(
        &node,
        "ranks=8,cpus-per-rank=8,bind=threads,reserve-cores-per-socket=1",
        "needs 64 PUs (8 ranks × 8 cpus-per-rank, bind=threads), node has 60 usable (1 reserved per socket)",
    );
    check_err(&node, "ranks=65", "needs 65 PUs (one per rank), node has 64 usable");
    let err = |req: PlacementRequest| plan_ranks(&node, &req).map(|_| ()).unwrap_err().to_string();
    assert_eq!(err(PlacementRequest::new(0)), "no ranks requested (ranks must be at least 1)");
    let zero_cpus = PlacementRequest { cpus_per_rank: Some(0), ..PlacementRequest::new(1) };
    assert_eq!(err(zero_cpus), "cpus-per-rank must be at least 1 (leave it out to share all CPUs evenly)");
    // An empty model is not a panic.
    let empty = NodeTopology::default();
    assert!(plan_ranks(&empty, &PlacementRequest::new(1)).is_err());
}

#[test]
fn small_vm() {
    let node = vm();
    check(&node, "ranks=1", "0: cpus 0-1 cores 0-1 numa 0 gpus - nics -");
    check(&node, "ranks=2", "0: cpus 0 cores 0 numa 0 gpus - nics -\n1: cpus 1 cores 1 numa 0 gpus - nics -");
    check(
        &node,
        "ranks=2,cpus-per-rank=1,bind=threads",
        "0: cpus 0 cores 0 numa 0 gpus - nics -\n1: cpus 1 cores 1 numa 0 gpus - nics -",
    );
    check_env(&node, "ranks=2", 1, "OMP_NUM_THREADS=1 OMP_PLACES=cores OMP_PROC_BIND=close");
    // No SMT to fall back on: more ranks than PUs is an error rather than oversubscription.
    check_err(&node, "ranks=4", "needs 4 PUs (one per rank), node has 2 usable");
    check_err(&node, "ranks=3,bind=threads", "needs 3 PUs (one per rank), node has 2 usable");
    check_err(
        &node,
        "ranks=1,cpus-per-rank=2,reserve-cores-per-socket=1",
        "needs 2 cores (1 ranks × 2 cpus-per-rank), node has 1 usable (1 reserved per socket)",
    );
}

#[test]
fn smt_siblings_only_when_ranks_outnumber_cores() {
    let node = two_socket_smt();
    let p = plan(&node, "ranks=8");
    assert_eq!(row(&p.ranks[0]), "0: cpus 0,8 cores 0 numa 0 gpus - nics -");
    assert_eq!(row(&p.ranks[7]), "7: cpus 7,15 cores 7 numa 1 gpus - nics -");
    check(
        &node,
        "ranks=12",
        "0: cpus 0,8 cores 0 numa 0 gpus - nics -
         1: cpus 1,9 cores 1 numa 0 gpus - nics -
         2: cpus 2 cores 2 numa 0 gpus - nics -
         3: cpus 10 cores 2 numa 0 gpus - nics -
         4: cpus 3 cores 3 numa 0 gpus - nics -
         5: cpus 11 cores 3 numa 0 gpus - nics -
         6: cpus 4,12 cores 4 numa 1 gpus - nics -
         7: cpus 5,13 cores 5 numa 1 gpus - nics -
         8: cpus 6 cores 6 numa 1 gpus - nics -
         9: cpus 14 cores 6 numa 1 gpus - nics -
         10: cpus 7 cores 7 numa 1 gpus - nics -
         11: cpus 15 cores 7 numa 1 gpus - nics -",
    );
    check_env(&node, "ranks=12", 0, "OMP_NUM_THREADS=2 OMP_PLACES=threads OMP_PROC_BIND=close");
    check_env(&node, "ranks=12", 3, "OMP_NUM_THREADS=1 OMP_PLACES=threads OMP_PROC_BIND=close");
    // bind=threads hands out single PUs, one core each before siblings.
    let p = plan(&node, "ranks=4,cpus-per-rank=1,bind=threads");
    let cpus: Vec<String> = p.ranks.iter().map(|r| ranges(&r.cpus)).collect();
    assert_eq!(cpus, ["0", "1", "4", "5"]);
    check_env(
        &node,
        "ranks=4,cpus-per-rank=2,bind=threads",
        0,
        "OMP_NUM_THREADS=2 OMP_PLACES=threads OMP_PROC_BIND=close",
    );
    check_err(&node, "ranks=17", "needs 17 PUs (one per rank), node has 16 usable");
}

#[test]
fn ranks_spread_over_caches_before_packing() {
    let node = two_l3();
    check(
        &node,
        "ranks=2,cpus-per-rank=2",
        "0: cpus 0-1 cores 0-1 numa 0 gpus - nics -\n1: cpus 4-5 cores 4-5 numa 0 gpus - nics -",
    );
    check(
        &node,
        "ranks=2,cpus-per-rank=3",
        "0: cpus 0-2 cores 0-2 numa 0 gpus - nics -\n1: cpus 4-6 cores 4-6 numa 0 gpus - nics -",
    );
    check(
        &node,
        "ranks=3,cpus-per-rank=2",
        "0: cpus 0-1 cores 0-1 numa 0 gpus - nics -
         1: cpus 2-3 cores 2-3 numa 0 gpus - nics -
         2: cpus 4-5 cores 4-5 numa 0 gpus - nics -",
    );
    // Too big for one L3: packed.
    check(&node, "ranks=1,cpus-per-rank=6", "0: cpus 0-5 cores 0-5 numa 0 gpus - nics -");
    // Too big for one domain: spans domains.
    check(&dgx_like_fixture(), "ranks=1,cpus-per-rank=20", "0: cpus 0-39 cores 0-19 numa 0-1 gpus - nics mlx5_0");
}

#[test]
fn reserved_cores_are_left_out() {
    let node = dgx_like_fixture();
    check(
        &node,
        "ranks=2,reserve-cores-per-socket=2",
        "0: cpus 0-27 cores 0-13 numa 0 gpus - nics mlx5_0
         1: cpus 32-59 cores 16-29 numa 1 gpus - nics mlx5_2",
    );
    check(
        &node,
        "ranks=2,cpus-per-rank=4,reserve-cores-per-socket=2,reserve-from=first",
        "0: cpus 4-11 cores 2-5 numa 0 gpus - nics mlx5_0
         1: cpus 36-43 cores 18-21 numa 1 gpus - nics mlx5_2",
    );
}

#[test]
fn bind_numa_and_none() {
    let node = dgx_like_fixture();
    check(
        &node,
        "ranks=4,gpus-per-rank=1,bind=numa",
        "0: cpus 0-31 cores 0-15 numa 0 gpus 0 nics mlx5_0
         1: cpus 0-31 cores 0-15 numa 0 gpus 2 nics mlx5_1
         2: cpus 32-63 cores 16-31 numa 1 gpus 4 nics mlx5_2
         3: cpus 32-63 cores 16-31 numa 1 gpus 6 nics mlx5_3",
    );
    // Whole domains without OMP_PLACES: threads float inside the rank's share.
    check_env(
        &node,
        "ranks=4,gpus-per-rank=1,bind=numa",
        1,
        "CUDA_VISIBLE_DEVICES=2 OMP_NUM_THREADS=8 UCX_NET_DEVICES=mlx5_1:1",
    );
    check(
        &node,
        "ranks=2,gpus-per-rank=1,bind=none,reserve-cores-per-socket=1",
        "0: cpus 0-63 cores 0-31 numa 0-1 gpus 0 nics mlx5_0
         1: cpus 0-63 cores 0-31 numa 0-1 gpus 4 nics mlx5_2",
    );
    check_env(
        &node,
        "ranks=2,gpus-per-rank=1,bind=none",
        1,
        "CUDA_VISIBLE_DEVICES=4 OMP_NUM_THREADS=16 UCX_NET_DEVICES=mlx5_2:1",
    );
}

#[test]
fn placement_serialises_as_the_cli_prints_it() {
    let json = serde_json::to_string(&plan(&vm(), "ranks=1,omp=false")).expect("serialises");
    assert_eq!(
        json,
        r#"{"ranks":[{"rank":0,"cpus":[0,1],"cores":[0,1],"numa_nodes":[0],"gpus":[],"nics":[],"env":{}}]}"#
    );
}

/// The request's canonical text, or the parse error.
fn check_parse(spec: &str, expect: &str) {
    let got = match PlacementRequest::parse(spec) {
        Ok(req) => req.to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(got, expect, "{spec}");
}

#[test]
fn parsing_requests() {
    let tail = "reserve-cores-per-socket=0,reserve-from=last,omp=true";
    check_parse(
        "ranks=8,gpus-per-rank=1,cpus-per-rank=4,bind=cores,gpu-bind=closest",
        &format!("ranks=8,cpus-per-rank=4,gpus-per-rank=1,bind=cores,gpu-bind=closest,{tail}"),
    );
    check_parse(
        " ranks = 2 , bind=threads ,",
        &format!("ranks=2,cpus-per-rank=all,gpus-per-rank=0,bind=threads,gpu-bind=closest,{tail}"),
    );
    check_parse(
        "ranks=16,reserve-cores-per-socket=1,reserve-from=first,omp=false,gpu-bind=shared,cpus-per-rank=all",
        "ranks=16,cpus-per-rank=all,gpus-per-rank=0,bind=cores,gpu-bind=shared,reserve-cores-per-socket=1,reserve-from=first,omp=false",
    );
    check_parse("ranks=8,bind=socket", "bad value `socket` for `bind` (accepted: cores, threads, numa, none)");
    check_parse("ranks=8,gpu-bind=strict", "bad value `strict` for `gpu-bind` (accepted: closest, shared, none)");
    check_parse("ranks=x", "bad value `x` for `ranks` (accepted: an integer ≥ 1)");
    check_parse("ranks=0", "bad value `0` for `ranks` (accepted: an integer ≥ 1)");
    check_parse("ranks=8,cpus-per-rank=0", "bad value `0` for `cpus-per-rank` (accepted: an integer ≥ 1, or all)");
    check_parse("ranks=8,gpus-per-rank=-1", "bad value `-1` for `gpus-per-rank` (accepted: an integer ≥ 0)");
    check_parse("ranks=8,omp=yes", "bad value `yes` for `omp` (accepted: true, false)");
    check_parse("ranks=8,reserve-from=middle", "bad value `middle` for `reserve-from` (accepted: last, first)");
    let keys = "ranks, cpus-per-rank, gpus-per-rank, bind, gpu-bind, reserve-cores-per-socket, reserve-from, omp";
    check_parse("ranks=8,color=red", &format!("unknown key `color` (accepted: {keys})"));
    check_parse("ranks=8,cores", &format!("`cores` is not key=value (accepted keys: {keys})"));
    check_parse("ranks=8,ranks=2", "`ranks` is given twice");
    check_parse("gpus-per-rank=1", "`ranks` is required (e.g. ranks=8)");
    check_parse("", "`ranks` is required (e.g. ranks=8)");
}

#[test]
fn requests_deserialise_with_defaults() {
    let req: PlacementRequest =
        serde_json::from_str(r#"{"ranks":8,"gpus_per_rank":1,"cpu_bind":"threads","gpu_bind":"shared"}"#)
            .expect("parses");
    assert_eq!(req.to_string(), "ranks=8,cpus-per-rank=all,gpus-per-rank=1,bind=threads,gpu-bind=shared,reserve-cores-per-socket=0,reserve-from=last,omp=true");
    assert!(serde_json::from_str::<PlacementRequest>(r#"{"ranks":8,"cpus":4}"#).is_err());
}

use proptest::prelude::*;

use super::*;
use crate::placement::dgx_like_fixture;

/// dgx_like: 2 NUMA domains of 16 cores × 2 threads, GPUs 0-3 on NUMA 0, 4-7 on NUMA 1.
fn dgx() -> NodeInventory {
    NodeInventory::from_topology(&dgx_like_fixture(), 0)
}

fn need(cpus: u32, memory_mib: u64, gpus: u32) -> Need {
    Need { cpus, memory_mib, gpus, ..Need::default() }
}

fn take(inv: &NodeInventory, free: &mut NodeFree, n: &Need) -> Option<Grant> {
    let g = pick(inv, free, n)?;
    assert!(free.take(inv, &g), "a pick is always free: {g:?}");
    Some(g)
}

#[test]
fn cpus_round_up_to_whole_cores() {
    let inv = dgx();
    assert_eq!(inv.threads_per_core(), 2);
    let g = pick(&inv, &inv.all_free(), &need(3, 0, 0)).unwrap();
    assert_eq!(g.cores.len(), 2);
    assert_eq!(inv.cpus_of(&g.cores).len(), 4);
}

#[test]
fn eight_one_gpu_needs_get_eight_gpus_with_cores_of_their_domain() {
    let inv = dgx();
    let mut free = inv.all_free();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let g = take(&inv, &mut free, &need(4, 128, 1)).unwrap();
        let gpu = &inv.gpus[g.gpus[0] as usize];
        for c in &g.cores {
            assert_eq!(Some(inv.cores[*c as usize].numa), gpu.numa, "cores from GPU {}'s domain: {g:?}", gpu.index);
        }
        seen.push(g.gpus[0]);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    assert_eq!(pick(&inv, &free, &need(1, 0, 1)), None, "no ninth GPU");
    assert!(pick(&inv, &free, &need(1, 0, 0)).is_some(), "cores are left");
}

#[test]
fn a_need_that_fits_one_domain_stays_in_it() {
    let inv = dgx();
    let mut free = inv.all_free();
    // 10 cores from domain 0, then 8 cores must come from one domain, the fuller one (best fit).
    take(&inv, &mut free, &need(20, 0, 0)).unwrap();
    let g = take(&inv, &mut free, &need(8, 0, 0)).unwrap();
    let domains: Vec<u32> = g.cores.iter().map(|c| inv.cores[*c as usize].numa).collect();
    assert!(domains.iter().all(|d| *d == 0), "best fit: domain 0's 6 free cores, not domain 1's 16: {domains:?}");
    // The 18 cores left span both domains.
    let g = take(&inv, &mut free, &need(36, 0, 0)).unwrap();
    assert_eq!(g.cores.len(), 18);
    assert_eq!(free.free_cores(), 0);
}

#[test]
fn gpus_of_one_domain_when_they_fit() {
    let inv = dgx();
    let g = pick(&inv, &inv.all_free(), &need(2, 0, 4)).unwrap();
    assert_eq!(g.gpus, vec![0, 1, 2, 3]);
    let mut free = inv.all_free();
    take(&inv, &mut free, &need(2, 0, 1)).unwrap();
    // 4 GPUs: domain 1 still has all four.
    assert_eq!(pick(&inv, &free, &need(2, 0, 4)).unwrap().gpus, vec![4, 5, 6, 7]);
}

#[test]
fn whole_needs_an_idle_node() {
    let inv = dgx();
    let mut free = inv.all_free();
    let whole = Need { whole: true, ..Need::default() };
    let g = pick(&inv, &free, &whole).unwrap();
    assert_eq!((g.cores.len(), g.gpus.len()), (32, 8));
    take(&inv, &mut free, &need(1, 0, 0)).unwrap();
    assert_eq!(pick(&inv, &free, &whole), None);
}

#[test]
fn memory_is_never_overcommitted() {
    let mut inv = dgx();
    inv.memory_mib = 1000;
    let mut free = inv.all_free();
    take(&inv, &mut free, &need(1, 600, 0)).unwrap();
    assert_eq!(pick(&inv, &free, &need(1, 600, 0)), None);
    assert!(take(&inv, &mut free, &need(1, 400, 0)).is_some());
}

#[test]
fn gpu_types_match_words_and_underscored_runs() {
    for (name, ty, want) in [
        ("NVIDIA H100 80GB HBM3", "h100", true),
        ("NVIDIA H100 80GB HBM3", "a100", false),
        ("NVIDIA RTX A4000", "nvidia_rtx_a4000", true),
        ("NVIDIA RTX A4000", "rtx_a4000", true),
        ("NVIDIA RTX A4000", "rtx_a40", false),
        ("Tesla V100-SXM2-32GB", "v100", true),
    ] {
        assert_eq!(gpu_of_type(name, Some(ty)), want, "{name} / {ty}");
    }
    assert!(gpu_of_type("anything", None));
}

#[test]
fn shortfall_names_the_resource_and_the_largest_node() {
    let inv = dgx();
    let big = Need { gpus: 9, ..Need::default() };
    assert_eq!(inv.shortfall(&big).unwrap().to_string(), "9 GPUs on one node, and the largest node has 8");
    let typed = Need { gpus: 1, gpu_type: Some("a100".into()), ..Need::default() };
    assert!(inv.shortfall(&typed).unwrap().to_string().contains("of type a100"));
    assert!(matches!(inv.shortfall(&need(65, 0, 0)), Some(Shortfall::Cpus { largest: 64, .. })));
    assert_eq!(inv.shortfall(&need(64, 0, 0)), None);
}

#[test]
fn a_grant_round_trips_through_what_users_see() {
    let inv = dgx();
    let g = pick(&inv, &inv.all_free(), &need(6, 512, 2)).unwrap();
    let cpus = inv.cpus_of(&g.cores);
    assert_eq!(cpus.len(), 6);
    assert_eq!(inv.grant_of(&cpus, g.memory_mib, &g.gpus), g);
}

#[test]
fn taking_a_taken_grant_is_refused_and_changes_nothing() {
    let inv = dgx();
    let mut free = inv.all_free();
    let g = take(&inv, &mut free, &need(2, 10, 1)).unwrap();
    let before = free.clone();
    assert!(!free.take(&inv, &g));
    assert_eq!(free, before);
}

#[derive(Debug, Clone)]
enum Op {
    Submit(u32, u64, u32),
    Release(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (0u32..40, 0u64..1500, 0u32..5).prop_map(|(c, m, g)| Op::Submit(c, m, g)),
            (0usize..64).prop_map(Op::Release),
        ],
        1..200,
    )
}

proptest! {
    /// Random submit/release sequences never give a core or GPU twice nor over-commit memory,
    /// and giving everything back restores an idle node.
    #[test]
    fn no_core_or_gpu_is_ever_in_two_live_grants(ops in ops()) {
        let inv = dgx();
        let mut free = inv.all_free();
        let mut live: Vec<Grant> = Vec::new();
        for op in ops {
            match op {
                Op::Submit(c, m, g) => {
                    if let Some(grant) = take(&inv, &mut free, &need(c, m, g)) {
                        prop_assert_eq!(grant.cores.len() as u32, inv.cores_for(&need(c, 0, 0)));
                        prop_assert_eq!(grant.gpus.len() as u32, g);
                        live.push(grant);
                    }
                }
                Op::Release(i) if !live.is_empty() => {
                    let grant = live.swap_remove(i % live.len());
                    free.give_back(&inv, &grant);
                }
                Op::Release(_) => {}
            }
            let mut cores: Vec<u32> = live.iter().flat_map(|g| g.cores.iter().copied()).collect();
            let mut gpus: Vec<u32> = live.iter().flat_map(|g| g.gpus.iter().copied()).collect();
            let (nc, ng) = (cores.len(), gpus.len());
            cores.sort_unstable();
            cores.dedup();
            gpus.sort_unstable();
            gpus.dedup();
            prop_assert_eq!(cores.len(), nc, "a core in two grants");
            prop_assert_eq!(gpus.len(), ng, "a GPU in two grants");
            let mem: u64 = live.iter().map(|g| g.memory_mib).sum();
            prop_assert!(mem <= inv.memory_mib);
            prop_assert_eq!(free.memory_mib(), inv.memory_mib - mem);
            prop_assert_eq!(free.free_cores() as usize, inv.cores.len() - nc);
        }
        for g in live.drain(..) {
            free.give_back(&inv, &g);
        }
        prop_assert!(free.is_idle(&inv));
    }
}

use std::path::PathBuf;

use super::*;
use crate::scheduler::Backfill;

/// The Lublin windows of `shared/traces/README.md` (RLScheduler's sequences).
const LUBLIN_WINDOWS: [usize; 10] = [1981, 2756, 4299, 8850, 3316, 2714, 5228, 7762, 4022, 7085];

fn trace(name: &str) -> swf::Trace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benchmarks/traces").join(name);
    swf::Trace::open(&path).unwrap()
}

fn policy(backfill: Backfill) -> Policy {
    Policy::classic(backfill)
}

/// The mean over the Lublin windows of each window's average bounded slowdown.
fn lublin(name: &str, backfill: Backfill) -> f64 {
    lublin_with(name, policy(backfill)).0
}

/// The mean over the Lublin windows of each window's average bounded slowdown, and the longest
/// wait in any window, under `policy`.
fn lublin_with(name: &str, policy: Policy) -> (f64, u64) {
    let t = trace(name);
    let machine = Machine { nodes: t.max_nodes.unwrap() as u32, cores_per_node: 1, gpus_per_node: 0 };
    let windows: Vec<Metrics> = LUBLIN_WINDOWS
        .iter()
        .map(|&start| {
            let ran = replay(&t.jobs[start..start + 1024], machine, policy, None).unwrap();
            metrics(&ran, machine.procs())
        })
        .collect();
    let bsld = windows.iter().map(|m| m.avg_bsld).sum::<f64>() / LUBLIN_WINDOWS.len() as f64;
    (bsld, windows.iter().map(|m| m.max_wait).max().unwrap())
}

fn two_places(x: f64) -> String {
    format!("{x:.2}")
}

#[test]
fn fcfs_reproduces_the_reference_on_the_lublin_windows() {
    assert_eq!(two_places(lublin("lublin_256.swf.gz", Backfill::Fcfs)), "7273.77");
    assert_eq!(two_places(lublin("lublin_256_new2.swf.gz", Backfill::Fcfs)), "7842.47");
}

/// The longest waits under EASY (seconds): on the Lublin-1 and -2 windows, and on KTH.
const EASY_MAX_WAIT: [u64; 3] = [352_104, 283_744, 262_194];

#[test]
fn easy_reproduces_the_reference_on_lublin_1() {
    let (bsld, max_wait) = lublin_with("lublin_256.swf.gz", policy(Backfill::Easy));
    assert_eq!((two_places(bsld), max_wait), ("271.40".into(), EASY_MAX_WAIT[0]));
}

#[test]
fn easy_reproduces_the_reference_on_lublin_2() {
    let (bsld, max_wait) = lublin_with("lublin_256_new2.swf.gz", policy(Backfill::Easy));
    assert_eq!((two_places(bsld), max_wait), ("222.25".into(), EASY_MAX_WAIT[1]));
}

/// The default policy's goals (issue 13): average bounded slowdown below RLScheduler's best
/// published (Lublin-1 ≤ 58, Lublin-2 ≤ 91), ≤ 0.6 × EASY on KTH, and no wait longer than
/// 1.5 × the longest under EASY on the same trace.
#[test]
fn the_default_policy_beats_easy_and_rlscheduler_on_lublin_1() {
    let (bsld, max_wait) = lublin_with("lublin_256.swf.gz", Policy::default());
    assert_eq!(two_places(bsld), "54.34");
    assert!(bsld <= 58.0 && max_wait as f64 <= 1.5 * EASY_MAX_WAIT[0] as f64, "{bsld} {max_wait}");
}

#[test]
fn the_default_policy_beats_easy_and_rlscheduler_on_lublin_2() {
    let (bsld, max_wait) = lublin_with("lublin_256_new2.swf.gz", Policy::default());
    assert_eq!(two_places(bsld), "78.96");
    assert!(bsld <= 91.0 && max_wait as f64 <= 1.5 * EASY_MAX_WAIT[1] as f64, "{bsld} {max_wait}");
}

#[test]
fn the_default_policy_is_below_six_tenths_of_easy_on_kth() {
    let t = trace("KTH-SP2-1996-2.1-cln.swf.gz");
    let machine = Machine { nodes: 100, cores_per_node: 1, gpus_per_node: 0 };
    let m = metrics(&replay(&t.jobs, machine, Policy::default(), None).unwrap(), machine.procs());
    assert_eq!(two_places(m.avg_bsld), "52.89");
    assert!(m.avg_bsld <= 0.6 * 90.57, "{}", m.avg_bsld);
    assert!(m.max_wait as f64 <= 1.5 * EASY_MAX_WAIT[2] as f64, "{}", m.max_wait);
}

#[test]
fn easy_reproduces_the_reference_on_the_whole_kth_trace() {
    let t = trace("KTH-SP2-1996-2.1-cln.swf.gz");
    assert_eq!(t.skipped_total(), 1, "the job without a processor count");
    let machine = Machine { nodes: 100, cores_per_node: 1, gpus_per_node: 0 };
    let m = metrics(&replay(&t.jobs, machine, policy(Backfill::Easy), None).unwrap(), machine.procs());
    assert_eq!((m.jobs, two_places(m.avg_bsld), m.avg_wait.round()), (28_475, "90.57".into(), 6889.0));
    assert_eq!(m.max_wait, EASY_MAX_WAIT[2]);
}

#[test]
fn fair_share_in_the_simulator_reorders_users_as_the_head_would() {
    // The first 2,000 KTH jobs: fair share between its users changes who waits.
    let t = trace("KTH-SP2-1996-2.1-cln.swf.gz");
    let machine = Machine { nodes: 100, cores_per_node: 1, gpus_per_node: 0 };
    let jobs = &t.jobs[..2000];
    let plain = replay(jobs, machine, Policy::default(), None).unwrap();
    let weights = Some(crate::scheduler::fair::Weights::fair_share());
    let fair = replay_weighted(jobs, machine, Policy::default(), None, weights).unwrap();
    assert_eq!(plain.len(), fair.len());
    let starts = |r: &[Ran]| r.iter().map(|x| x.start).collect::<Vec<_>>();
    assert_ne!(starts(&plain), starts(&fair), "fair share changed nothing");
}

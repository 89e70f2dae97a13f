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
    Policy { backfill, max_examined: usize::MAX }
}

/// The mean over the Lublin windows of each window's average bounded slowdown.
fn lublin(name: &str, backfill: Backfill) -> f64 {
    let t = trace(name);
    let machine = Machine { nodes: t.max_nodes.unwrap() as u32, cores_per_node: 1, gpus_per_node: 0 };
    let total: f64 = LUBLIN_WINDOWS
        .iter()
        .map(|&start| {
            let ran = replay(&t.jobs[start..start + 1024], machine, policy(backfill), None).unwrap();
            metrics(&ran, machine.procs()).avg_bsld
        })
        .sum();
    total / LUBLIN_WINDOWS.len() as f64
}

fn two_places(x: f64) -> String {
    format!("{x:.2}")
}

#[test]
fn fcfs_reproduces_the_reference_on_the_lublin_windows() {
    assert_eq!(two_places(lublin("lublin_256.swf.gz", Backfill::Fcfs)), "7273.77");
    assert_eq!(two_places(lublin("lublin_256_new2.swf.gz", Backfill::Fcfs)), "7842.47");
}

#[test]
fn easy_reproduces_the_reference_on_lublin_1() {
    assert_eq!(two_places(lublin("lublin_256.swf.gz", Backfill::Easy)), "271.40");
}

#[test]
fn easy_reproduces_the_reference_on_lublin_2() {
    assert_eq!(two_places(lublin("lublin_256_new2.swf.gz", Backfill::Easy)), "222.25");
}

#[test]
fn easy_reproduces_the_reference_on_the_whole_kth_trace() {
    let t = trace("KTH-SP2-1996-2.1-cln.swf.gz");
    assert_eq!(t.skipped_total(), 1, "the job without a processor count");
    let machine = Machine { nodes: 100, cores_per_node: 1, gpus_per_node: 0 };
    let m = metrics(&replay(&t.jobs, machine, policy(Backfill::Easy), None).unwrap(), machine.procs());
    assert_eq!((m.jobs, two_places(m.avg_bsld), m.avg_wait.round()), (28_475, "90.57".into(), 6889.0));
}

//! `gangway sim` as a user runs it: a small trace whose schedules are known by hand, bad
//! lines skipped and counted, bad windows and policies refused with a clear message.

use std::path::Path;
use std::process::Command;

use gangway_tests::bin;

fn sim(trace: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("gangway")).arg("sim").arg("--trace").arg(trace).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Four one-processor nodes. Job 2 (4 processors) waits for job 1; job 3 ends before job 2's
/// reservation (t = 100) and backfills at once under EASY; job 4 would outlast it and waits.
const TRACE: &str = "; MaxNodes: 4\n; MaxProcs: 4\n\
    1 0 -1 100 2 -1 -1 2 100 -1 1 1 1 1 1 1 -1 -1\n\
    2 1 -1 50 4 -1 -1 4 50 -1 1 1 1 1 1 1 -1 -1\n\
    this line is not a job\n\
    3 2 -1 90 2 -1 -1 2 90 -1 1 1 1 1 1 1 -1 -1\n\
    4 3 -1 200 1 -1 -1 1 200 -1 1 1 1 1 1 1 -1 -1\n\
    5 4 -1 -1 1 -1 -1 1 200 -1 1 1 1 1 1 1 -1 -1\n\
    6 5 -1 10 9 -1 -1 9 10 -1 1 1 1 1 1 1 -1 -1\n";

fn report(policy: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("small.swf");
    std::fs::write(&trace, TRACE).unwrap();
    let mut args = vec!["--policy", policy, "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = sim(&trace, &args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn easy_backfills_what_ends_before_the_reservation_and_fcfs_does_not() {
    let easy = report("easy", &[]);
    let w = &easy["windows"][0];
    // Starts: 0, 100, 2 (backfilled), 150: waits 0, 99, 0, 147.
    assert_eq!(w["jobs"], 4);
    assert_eq!(w["avgWait"], 61.5);
    assert_eq!(w["maxWait"], 147);
    assert_eq!(w["makespan"], 350);
    // Conservative reserves for jobs 2 and 4 alike here: the same schedule.
    let conservative = report("conservative", &["--reservations", "2"]);
    assert_eq!(conservative["windows"], easy["windows"]);
    let fcfs = report("fcfs", &[]);
    // Starts: 0, 100, 150, 150: waits 0, 99, 148, 147.
    assert_eq!(fcfs["windows"][0]["maxWait"], 148);
    assert_eq!(fcfs["windows"][0]["avgWait"], 98.5);
    // The bad lines are counted by reason, the job larger than the machine too.
    let skipped = &easy["skipped"];
    assert_eq!(skipped["not 18 fields"], 1);
    assert_eq!(skipped["missing or negative run time"], 1);
    assert_eq!(skipped["larger than the machine"], 1);
    assert_eq!((easy["nodes"].as_u64(), easy["coresPerNode"].as_u64()), (Some(4), Some(1)));
}

#[test]
fn windows_replay_on_an_empty_machine_and_are_averaged() {
    let r = report("easy", &["--window", "1:3", "--window", "0:1"]);
    assert_eq!(r["windows"][0]["start"], 1);
    // Alone from job 2 on: job 2 at 1, job 3 at 51 (it fits beside nothing), job 4 at 51.
    assert_eq!(r["windows"][0]["maxWait"], 49);
    assert_eq!(r["windows"][1]["avgWait"], 0.0);
    assert_eq!(r["overall"]["jobs"], 4);
    assert_eq!(r["overall"]["maxWait"], 49);
}

#[test]
fn bad_requests_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("small.swf");
    std::fs::write(&trace, TRACE).unwrap();
    for (args, says) in [
        (&["--window", "3:2"][..], "--window 3:2 is outside the trace: it has 4 jobs"),
        (&["--window", "x"][..], "expected START:COUNT"),
        (&["--policy", "sjf"][..], "unknown policy \"sjf\""),
        (&["--nodes", "0"][..], "--nodes must be at least 1"),
        (&["--reservations", "2"][..], "--reservations goes with --policy conservative"),
        (&["--policy", "conservative", "--reservations", "65"][..], "between 1 and 64"),
    ] {
        let (code, _, err) = sim(&trace, args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, _, err) = sim(&dir.path().join("absent.swf"), &[]);
    assert_ne!(code, 0);
    assert!(err.contains("absent.swf"), "{err}");
}

#[test]
fn a_fabric_gives_the_nodes_and_places_gangs_on_its_switch_tree() {
    let dir = tempfile::tempdir().unwrap();
    let fabric = dir.path().join("topology.conf");
    std::fs::write(
        &fabric,
        "SwitchName=leaf1 Nodes=n[1-2]\nSwitchName=leaf2 Nodes=n[3-4]\nSwitchName=spine Switches=leaf[1-2]\n",
    )
    .unwrap();
    let fabric = fabric.to_str().unwrap();
    let on_fabric = report("easy", &["--fabric", fabric]);
    let plain = report("easy", &[]);
    assert_eq!(on_fabric["nodes"], 4);
    assert_eq!(on_fabric["windows"], plain["windows"], "the same schedule on four nodes under two switches");
    let trace = dir.path().join("small.swf");
    std::fs::write(&trace, TRACE).unwrap();
    let (code, _, err) = sim(&trace, &["--fabric", fabric, "--nodes", "8"]);
    assert_ne!(code, 0);
    assert!(err.contains("--nodes 8 is more than the fabric's 4 nodes"), "{err}");
}

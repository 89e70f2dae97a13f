use super::*;
use crate::format::fixtures::{node, pool, running, NOW};
use gangway_api::{NodeState, SchedulingState};

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn cluster() -> (Vec<Pool>, Vec<ComputeNode>, Vec<SlurmJob>) {
    let pools = vec![pool("default", 4), pool("gpu", 1), pool("empty", 1)];
    let mut drained = node("node06", "default", NodeState::Offline, 0);
    drained.scheduling_state = SchedulingState::Disabled;
    let mut draining = node("node07", "default", NodeState::Running, 1);
    draining.scheduling_state = SchedulingState::Disabled;
    let nodes = vec![
        node("node02", "default", NodeState::Running, 2),
        node("node01", "default", NodeState::Idle, 0),
        node("node03", "default", NodeState::Running, 4),
        node("node04", "default", NodeState::Idle, 0),
        node("node05", "default", NodeState::Unusable, 0),
        drained,
        draining,
        node("g1", "gpu", NodeState::Idle, 0),
    ];
    (pools, nodes, vec![running(11, &["node02"], 60)])
}

fn sinfo(line: &str) -> Output {
    let (pools, nodes, jobs) = cluster();
    match parse_sinfo_args(&args(line)) {
        Ok(o) => render_sinfo(&pools, &nodes, &jobs, &o, NOW),
        Err(e) => e,
    }
}

fn check(line: &str, expected: &str) {
    let out = sinfo(line);
    assert_eq!(out.stdout, expected, "sinfo {line}\nstderr: {}", out.stderr);
    assert_eq!(out.code, 0);
}

#[test]
fn default_view_groups_nodes_by_state() {
    check(
        "",
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST
default*     up   infinite      1  down* node05
default*     up   infinite      1   drng node07
default*     up   infinite      1  drain node06
default*     up   infinite      1    mix node02
default*     up   infinite      1  alloc node03
default*     up   infinite      2   idle node[01,04]
gpu          up   infinite      1   idle g1
empty        up   infinite      0    n/a 
",
    );
}

#[test]
fn node_oriented_long() {
    check(
        "-N -l -p gpu,default -n node0[1-3]",
        "Mon Nov 23 09:40:00 2026
NODELIST   NODES PARTITION       STATE CPUS    S:C:T MEMORY TMP_DISK WEIGHT AVAIL_FE REASON              
node01         1  default*        IDLE    4    1:2:2   8192        0      1   (null) none                
node02         1  default*       MIXED    4    1:2:2   8192        0      1   (null) none                
node03         1  default*   ALLOCATED    4    1:2:2   8192        0      1   (null) none                
",
    );
    check("-N -h -n g1", "g1             1       gpu idle  \n");
}

#[test]
fn formats_and_filters() {
    check("-h -o %P|%D|%t|%N -t idle", "default*|2|idle|node[01,04]\ngpu|1|idle|g1\n");
    check(
        "-h -o %R,%T,%c,%m,%C -p default -t mix,alloc",
        "default,MIXED,4,8192,2/2/0/4\ndefault,ALLOCATED,4,8192,4/0/0/4\n",
    );
    check("-h -o %D -t down", "1\n");
    check("-s -p default", "PARTITION AVAIL  TIMELIMIT   NODES(A/I/O/T)  NODELIST\ndefault*     up   infinite          3/2/2/7  node[01-07]\n");
    check(
        "-R -h",
        "Not responding       root      2026-11-23T08:00:00 node05\nscheduling disabled  root      2026-11-23T08:00:00 node[06-07]\n",
    );
    check("-h -o %P%%", "default*\ngpu\nempty\n");
}

#[test]
fn bad_command_lines() {
    assert_eq!(
        sinfo("--foo").stderr,
        "sinfo: unrecognized option '--foo'\nTry \"sinfo --help\" for more information\n"
    );
    assert_eq!(sinfo("-t bogus").stderr, "sinfo: error: Invalid node state specified: bogus\n");
    assert_eq!(sinfo("-o %Q -h").stderr, "sinfo: error: Invalid node format specification: Q\n");
}

proptest::proptest! {
    #[test]
    fn never_panics(line in proptest::collection::vec("(-[a-zA-Z]{1,2}|--[a-z]{1,9}|%[.#0-9]{0,3}[a-zA-Z]|[a-z0-9,\\[\\]-]{1,8})", 0..6)) {
        let _ = sinfo(&line.join(" "));
    }
}

#[test]
fn big_format_shows_allocated_cpus_memory_and_gpus() {
    let mut n = node("g1", "gpu", NodeState::Running, 1);
    n.resources.gpus = (0..4)
        .map(|index| gangway_topology::Gpu {
            index,
            name: "NVIDIA H100".into(),
            uuid: String::new(),
            pci_bus_id: String::new(),
        })
        .collect();
    n.allocated = gangway_api::NodeUsage { cpus: 2, memory_mib: 2048, gpus: vec![1, 2] };
    let idle = node("c1", "gpu", NodeState::Idle, 0);
    let o = parse_sinfo_args(&args("-N -O NodeList:8,CPUsState,AllocMem:.9,GresUsed")).unwrap();
    let out = render_sinfo(&[pool("gpu", 4)], &[n, idle], &[], &o, NOW);
    let expected = [
        "NODELISTCPUS(A/I/O/T)        ALLOCMEMGRES_USED           ",
        "c1      0/4/0/4                     0(null)              ",
        "g1      2/2/0/4                  2048gpu:2(IDX:1-2)      ",
    ];
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected, "{}", out.stderr);
    let bad = parse_sinfo_args(&args("-O NodeList,Bogus")).unwrap_err();
    assert!(bad.stderr.contains("Invalid node format specification: Bogus"), "{}", bad.stderr);
}

//! The Slurm front door against Slurm 22.05 itself. `tests/fixtures/slurm-differential.txt`
//! holds a real Slurm's answer to some two hundred `sbatch` option combinations that scripts
//! use (node, task, CPU, memory, array, time, output and mail forms), recorded once by
//! `scripts/slurm-differential.py` from the Slurm peer (partition `debug`: 4 nodes of 16 CPUs
//! and 16 GiB, `DefMemPerCPU=128`). Here a cluster of the same shape takes the same
//! submissions, held, and `scontrol show job`'s core fields must be Slurm's, but for the
//! differences kept on purpose ([`known`], listed in the README).

use gangway_api::PoolAddParameter;
use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{Cluster, Options};

const FIXTURE: &str = include_str!("../fixtures/slurm-differential.txt");
/// `squeue -o` of the held submissions (`%i` with the job's id written as ID).
const SQUEUE_FIXTURE: &str = include_str!("../fixtures/slurm-differential-squeue.txt");
/// The batch environment of jobs that ran: the sizes and memory variables scripts read.
const ENV_FIXTURE: &str = include_str!("../fixtures/slurm-differential-env.txt");
/// GPU requests, recorded with 8 GPUs a node: only the fields that show the request.
const GPU_FIXTURE: &str = include_str!("../fixtures/slurm-differential-gpus.txt");

/// Why a difference in `field` for `case` is kept (the README lists these): all are Slurm's
/// estimates for a held job it has not placed, for requests it could not place as asked.
fn known(case: &str, field: &str) -> Option<&'static str> {
    let words: Vec<&str> = case.split_whitespace().collect();
    let value = |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).copied();
    let ntasks = value("-n").and_then(|n| n.parse::<u32>().ok());
    let range = value("-N").is_some_and(|n| n.contains('-'));
    let nodes = value("-N").and_then(|n| n.split('-').next_back()?.parse::<u32>().ok());
    let per_node = words.contains(&"--ntasks-per-node=2");
    let counts = matches!(field, "NumCPUs" | "TRES" | "NumNodes");
    if per_node && counts && ntasks.is_some_and(|n| nodes.is_none_or(|m| n > 2 * m)) {
        return Some("more tasks than --ntasks-per-node allows on the nodes asked for: Slurm counts -n");
    }
    if range && counts {
        return Some("a node range: Slurm's TRES counts the range's lower end as given");
    }
    if value("-N").is_none() && value("-c").is_some() && field == "NumNodes" {
        return Some("-c without -N: Slurm's held estimate of the node count");
    }
    if field == "accepted" && ntasks == Some(33) && value("-c") == Some("8") {
        return Some("more memory on a node than it has: Slurm checks only once the hold is released");
    }
    None
}

fn fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for word in text.split_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            if !out.iter().any(|(seen, _)| seen == k) {
                out.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    out
}

/// Submits each case of `fixture` held to `door` and compares; returns (cases, identical,
/// differences not `known`).
fn compare(
    door: &SlurmFrontDoor,
    fixture: &str,
    known: impl Fn(&str, &str) -> Option<&'static str>,
) -> (usize, usize, Vec<String>) {
    let (mut cases, mut identical, mut differences) = (0, 0, Vec::new());
    for line in fixture.lines() {
        let (case, want) = line.split_once('\t').expect("CASE\\tANSWER");
        cases += 1;
        let mut args = vec!["--parsable", "--hold", "-p", "debug"];
        args.extend(case.split_whitespace());
        args.extend(["--wrap", "true"]);
        let out = door.run("sbatch", &args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        if let Some(code) = want.strip_prefix("REFUSED ") {
            match out.status.code() {
                Some(c) if c.to_string() == code => identical += 1,
                c => differences.push(format!("{case:?}: Slurm refuses it (exit {code}), gangway exits {c:?}: {said}")),
            }
            continue;
        }
        if !out.status.success() {
            if known(case, "accepted").is_none() {
                differences.push(format!("{case:?}: Slurm accepts it, gangway refuses it: {said}"));
            }
            continue;
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let show = door.run("scontrol", &["show", "job", &id]);
        let got = fields(&String::from_utf8_lossy(&show.stdout));
        let mut same = true;
        for (k, v) in fields(want) {
            let mine = got.iter().find(|(g, _)| *g == k).map_or("", |(_, g)| g.as_str());
            if mine != v {
                same = false;
                if known(case, &k).is_none() {
                    differences.push(format!("{case:?}: {k}: Slurm {v:?}, gangway {mine:?}"));
                }
            }
        }
        identical += usize::from(same);
    }
    (cases, identical, differences)
}

/// The cluster the fixtures were recorded on: partition `debug`, 4 nodes of 16 CPUs and 16 GiB,
/// 128 MiB per CPU by default.
fn peer_shaped() -> Cluster {
    let pool = PoolAddParameter {
        id: "debug".into(),
        task_slots_per_node: Some(16),
        default_memory_per_cpu_mib: Some(128),
        enable_inter_node_communication: true,
        ..Default::default()
    };
    Cluster::start(Options {
        nodes: 4,
        synthetic: Some("numa:1(memory=17179869184) core:16 pu:1".into()),
        pool: Some(pool),
        ..Options::default()
    })
}

#[test]
fn squeue_shows_held_submissions_as_slurm_22_05_does() {
    let cluster = peer_shaped();
    let door = SlurmFrontDoor::new(cluster.config.clone());
    let (mut identical, mut differences) = (0, Vec::new());
    for line in SQUEUE_FIXTURE.lines() {
        let (case, want) = line.split_once('\t').expect("CASE\\tANSWER");
        let mut args = vec!["--parsable", "--hold", "-p", "debug"];
        args.extend(case.split_whitespace());
        args.extend(["--wrap", "true"]);
        let submitted = door.run("sbatch", &args);
        if !submitted.status.success() {
            if known(case, "accepted").is_none() {
                differences.push(format!("{case:?}: Slurm accepts it, gangway refuses it"));
            }
            continue;
        }
        let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
        let out = door.run("squeue", &["-h", "-j", &id, "-o", "%i|%t|%l|%D|%C|%m|%R|%c|%E|%b|%h"]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (first, rest) = text.split_once('|').unwrap_or((&text, ""));
        // An array's pending elements show under its id, which is gangway's first element's.
        let got = format!("{}|{rest}", first.replacen(&id, "ID", 1));
        let wanted: Vec<&str> = want.split('|').collect();
        let mine: Vec<&str> = got.split('|').collect();
        // %D of a held job is squeue's own estimate (not scontrol's NumNodes: `-N 1 -n 33` is 3
        // there), and %C of the held estimates the scontrol test classifies as known.
        let estimate = |i: usize| i == 3 || (i == 4 && known(case, "NumCPUs").is_some());
        let differs: Vec<usize> =
            (0..wanted.len().max(mine.len())).filter(|i| wanted.get(*i) != mine.get(*i) && !estimate(*i)).collect();
        if differs.is_empty() {
            identical += 1;
        } else {
            differences.push(format!("{case:?}:\n  Slurm   {want}\n  gangway {got}"));
        }
    }
    let cases = SQUEUE_FIXTURE.lines().count();
    eprintln!("{identical} of {cases} squeue lines identical");
    assert!(differences.is_empty(), "{} difference(s):\n{}", differences.len(), differences.join("\n"));
}

#[test]
fn batch_jobs_see_the_environment_slurm_22_05_gives_them() {
    let cluster = peer_shaped();
    let door = SlurmFrontDoor::new(cluster.config.clone());
    let names = [
        "SLURM_NTASKS",
        "SLURM_NPROCS",
        "SLURM_NNODES",
        "SLURM_JOB_NUM_NODES",
        "SLURM_CPUS_ON_NODE",
        "SLURM_TASKS_PER_NODE",
        "SLURM_JOB_CPUS_PER_NODE",
        "SLURM_CPUS_PER_TASK",
        "SLURM_NTASKS_PER_NODE",
        "SLURM_MEM_PER_CPU",
        "SLURM_MEM_PER_NODE",
    ];
    let wrap = format!("env | grep -E '^({})=' | sort", names.join("|"));
    // Submitted together (they fit the cluster at once), then read as they end.
    let mut jobs = Vec::new();
    for (i, line) in ENV_FIXTURE.lines().enumerate() {
        let (case, want) = line.split_once('\t').expect("CASE\\tANSWER");
        let out = format!("env-{i}.out");
        let mut args = vec!["-p", "debug", "-o", &out];
        args.extend(case.split_whitespace());
        args.extend(["--wrap", &wrap]);
        let id = door.sbatch(&args);
        // One at a time: Slurm's answers are for an idle cluster (where each job packs its nodes).
        door.wait_end(id, std::time::Duration::from_secs(60));
        jobs.push((case, want, out));
    }
    let mut differences = Vec::new();
    for (case, want, out) in &jobs {
        let got = door.read(out).lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        if got != *want {
            differences.push(format!("{case:?}:\n  Slurm   {want}\n  gangway {got}"));
        }
    }
    eprintln!("{} of {} environments identical", jobs.len() - differences.len(), jobs.len());
    assert!(differences.is_empty(), "{} difference(s):\n{}", differences.len(), differences.join("\n"));
}

#[test]
fn gpu_requests_show_as_slurm_22_05_shows_them() {
    let pool = PoolAddParameter {
        id: "debug".into(),
        task_slots_per_node: Some(64),
        enable_inter_node_communication: true,
        ..Default::default()
    };
    let xml = gangway_tests::topology_fixture("dgx_like.xml");
    let cluster = Cluster::start(Options { nodes: 2, topology_xml: Some(xml), pool: Some(pool), ..Options::default() });
    let door = SlurmFrontDoor::new(cluster.config.clone());
    // More GPUs on a node than it has: refused at once (Slurm checks a held job at its
    // release).
    let known = |case: &str, field: &str| match (case, field) {
        ("--gpus=9" | "--gres=gpu:9", "accepted") => Some("checked at submission"),
        _ => None,
    };
    let (cases, identical, differences) = compare(&door, GPU_FIXTURE, known);
    eprintln!("{identical} of {cases} GPU cases identical");
    assert!(differences.is_empty(), "{} difference(s):\n{}", differences.len(), differences.join("\n"));
}

#[test]
fn held_submissions_resolve_and_show_as_slurm_22_05_does() {
    let cluster = peer_shaped();
    let door = SlurmFrontDoor::new(cluster.config.clone());
    let (cases, identical, differences) = compare(&door, FIXTURE, known);
    eprintln!("{identical} of {cases} cases identical");
    // The known differences stay few: most cases match field for field.
    assert!(identical * 100 >= cases * 75, "{identical} of {cases} cases identical");
    assert!(differences.is_empty(), "{} difference(s):\n{}", differences.len(), differences.join("\n"));
}

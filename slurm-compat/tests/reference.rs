//! The reference job scripts (copies of `shared/reference/slurm-22.05/job-*.sh` and
//! `collect*.sh` in `tests/fixtures/`), resolved and compared with how Slurm 22.05 read them:
//! the environments it gave them (`case-*.env`, `mn-*.env`), the files it wrote
//! (`patterns.txt`) and `scontrol show job` (`case-e-scontrol-show-job.txt`).
//!
//! Each script is resolved under the name it was submitted with (`collect.sh` wrote `e.sh`,
//! then kept it as `job-e.sh`), since the default job name is the script's file name.

use std::collections::BTreeMap;

use gangway_slurm::patterns::{expand_path, expand_pattern, PatternContext, Step};
use gangway_slurm::{resolve_source, Resolved};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Resolves fixture `file` as if submitted as `submitted_as` with command-line `args`.
fn resolve_fixture(file: &str, submitted_as: &str, args: &[&str]) -> Resolved {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    resolve_source(Some((submitted_as, &fixture(file))), &args)
        .unwrap_or_else(|e| panic!("{file}: {}", e.render("sbatch")))
}

fn env(file: &str) -> BTreeMap<String, String> {
    fixture(file).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The variables Slurm derives from the job description, checked against a captured
/// environment: names present exactly when Slurm sets them, values equal.
fn check_env(job: &Resolved, env_file: &str) {
    let env = env(env_file);
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("SLURM_JOB_NAME"), Some(job.name.as_str()), "{env_file}: SLURM_JOB_NAME");
    assert_eq!(get("SLURM_JOB_NUM_NODES"), Some(job.nodes.min.to_string().as_str()), "{env_file}: nodes");
    let ntasks = job.submit.ntasks_given.then(|| job.ntasks.to_string());
    assert_eq!(get("SLURM_NTASKS"), ntasks.as_deref(), "{env_file}: SLURM_NTASKS");
    assert_eq!(get("SLURM_NPROCS"), ntasks.as_deref(), "{env_file}: SLURM_NPROCS");
    let cpus = job.submit.cpus_given.then(|| job.cpus_per_task.to_string());
    assert_eq!(get("SLURM_CPUS_PER_TASK"), cpus.as_deref(), "{env_file}: SLURM_CPUS_PER_TASK");
    let per_node = job.ntasks_per_node.map(|n| n.to_string());
    assert_eq!(get("SLURM_NTASKS_PER_NODE"), per_node.as_deref(), "{env_file}: SLURM_NTASKS_PER_NODE");
    let dependency = job.dependencies.as_ref().map(|d| d.to_string());
    assert_eq!(get("SLURM_JOB_DEPENDENCY"), dependency.as_deref(), "{env_file}: SLURM_JOB_DEPENDENCY");
    match &job.array {
        None => assert!(!env.keys().any(|k| k.starts_with("SLURM_ARRAY_")), "{env_file}: array variables"),
        Some(array) => {
            assert_eq!(get("SLURM_ARRAY_TASK_COUNT"), Some(array.indices.len().to_string().as_str()));
            assert_eq!(get("SLURM_ARRAY_TASK_MIN"), Some(array.min().to_string().as_str()));
            assert_eq!(get("SLURM_ARRAY_TASK_MAX"), Some(array.max().to_string().as_str()));
            assert_eq!(get("SLURM_ARRAY_TASK_STEP"), Some(array.step().to_string().as_str()));
        }
    }
    assert!(!env.keys().any(|k| k.starts_with("SBATCH_")), "no SBATCH_* variable in a batch environment");
}

/// The context of the batch step of reference job `job_id` on host `vm`.
fn batch(job_id: u32, name: &str) -> PatternContext<'_> {
    PatternContext {
        job_id,
        array: None,
        job_name: name,
        user: "root",
        node_name: "vm",
        node_id: 0,
        task_id: 0,
        step: Step::Batch,
    }
}

#[test]
fn job_a_plain() {
    let job = resolve_fixture("job-a.sh", "a.sh", &[]);
    assert_eq!((job.nodes.min, job.nodes.max, job.ntasks, job.cpus_per_task), (1, None, 1, 1));
    assert_eq!((job.time_limit_s, job.array.as_ref(), job.gpus.as_ref(), job.mem_mb), (None, None, None, None));
    assert_eq!(job.output, "slurm-%j.out");
    assert_eq!(job.error, job.output);
    assert!(job.warnings.is_empty(), "{:?}", job.warnings);
    check_env(&job, "case-a-plain.env");
    assert_eq!(expand_pattern(&job.output, &batch(16, &job.name)), "slurm-16.out");
}

#[test]
fn job_b_ntasks4() {
    let job = resolve_fixture("job-b.sh", "b.sh", &[]);
    assert_eq!((job.nodes.min, job.nodes.max, job.ntasks, job.cpus_per_task), (1, Some(1), 4, 1));
    check_env(&job, "case-b-ntasks4.env");
}

#[test]
fn job_c_array() {
    let job = resolve_fixture("job-c.sh", "c.sh", &[]);
    let array = job.array.as_ref().expect("an array");
    assert_eq!((array.indices.as_slice(), array.max_running), (&[1, 2, 3][..], None));
    assert_eq!(job.output, "slurm-%A_%a.out");
    check_env(&job, "case-c-array-18_1.env");
    // Array 18's tasks 1..3 ran as jobs 21, 20, 19 (task 1's environment shows job 21).
    for (task, job_id) in [(1, 21), (2, 20), (3, 19)] {
        let ctx = PatternContext { array: Some((18, task)), ..batch(job_id, &job.name) };
        assert_eq!(expand_pattern(&job.output, &ctx), format!("slurm-18_{task}.out"));
    }
}

#[test]
fn job_d_two_tasks() {
    let job = resolve_fixture("job-d.sh", "d.sh", &[]);
    assert_eq!((job.nodes.min, job.ntasks), (1, 2));
    check_env(&job, "case-d-batch-parent.env");
}

#[test]
fn job_e_matches_scontrol_show_job() {
    let job = resolve_fixture("job-e.sh", "e.sh", &[]);
    check_env(&job, "case-e-named-dep.env");
    let shown: BTreeMap<String, String> = fixture("case-e-scontrol-show-job.txt")
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let field = |k: &str| shown.get(k).map(String::as_str).unwrap_or_else(|| panic!("no {k} in scontrol output"));
    assert_eq!(field("JobName"), job.name);
    assert_eq!(field("NumNodes"), job.nodes.min.to_string());
    assert_eq!(field("NumTasks"), job.ntasks.to_string());
    assert_eq!(field("CPUs/Task"), job.cpus_per_task.to_string());
    assert_eq!(field("TimeLimit"), "UNLIMITED");
    assert_eq!(job.time_limit_s, None);
    let ctx = batch(23, &job.name);
    assert_eq!(field("StdOut"), expand_path(&job.output, field("WorkDir"), &ctx));
    assert_eq!(field("StdErr"), expand_path(&job.error, field("WorkDir"), &ctx));
    assert_eq!(field("Command"), format!("{}/e.sh", field("WorkDir")));
    assert_eq!(job.chdir, None, "WorkDir is the submission directory");
    assert_eq!(job.dependencies.as_ref().map(|d| d.to_string()).as_deref(), Some("afterok:16"));
}

#[test]
fn job_mn1_nodes_and_tasks_per_node() {
    let job = resolve_fixture("job-mn1.sh", "mn1.sh", &[]);
    assert_eq!((job.nodes.min, job.nodes.max, job.ntasks, job.ntasks_per_node), (4, Some(4), 8, Some(2)));
    assert_eq!(job.output, "/srv/slurm-peer/refwork-mn/mn1.out");
    check_env(&job, "mn-batch-N4-tpn2.env");
}

#[test]
fn job_mn2_uneven() {
    let job = resolve_fixture("job-mn2.sh", "mn2.sh", &[]);
    assert_eq!((job.nodes.min, job.nodes.max, job.ntasks), (2, Some(2), 5));
    check_env(&job, "mn-uneven-N2-n5.env");
}

/// `job-p.sh` with each command line `collect.sh` gave it, against the files Slurm wrote.
#[test]
fn job_p_output_patterns() {
    let listing: Vec<String> = fixture("patterns.txt")
        .lines()
        .take_while(|l| !l.starts_with("---"))
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    let mut produced = Vec::new();
    // P1 = job 24.
    let job = resolve_fixture(
        "job-p.sh",
        "p.sh",
        &["--output=pat-j%j-J%J-x%x-N%N-n%n-u%u-s%s-t%t-pct%%.out", "--error=pat-err-%j.err"],
    );
    assert_eq!((job.name.as_str(), job.ntasks), ("patjob", 2));
    produced.push(expand_pattern(&job.output, &batch(24, &job.name)));
    produced.push(expand_pattern(&job.error, &batch(24, &job.name)));
    // P2 = array 25, tasks 1 and 2 ran as jobs 28 and 25.
    let job = resolve_fixture("job-p.sh", "p.sh", &["--array=1-2", "--output=patarr-A%A-a%a-j%j-x%x.out"]);
    assert_eq!(job.error, job.output, "stderr goes to the output file");
    for (task, job_id) in [(1, 28), (2, 25)] {
        produced
            .push(expand_pattern(&job.output, &PatternContext { array: Some((25, task)), ..batch(job_id, &job.name) }));
    }
    // P3 = array 26 of one task, 5.
    let job = resolve_fixture("job-p.sh", "p.sh", &["--array=5", "--output=patarr-pad-%3a-%5j.out"]);
    produced.push(expand_pattern(&job.output, &PatternContext { array: Some((26, 5)), ..batch(26, &job.name) }));
    // P4 = job 27: a backslash turns substitution off.
    let job = resolve_fixture("job-p.sh", "p.sh", &["--output=%x\\%j-escaped.out"]);
    produced.push(expand_pattern(&job.output, &batch(27, &job.name)));
    // The srun steps inside jobs 24..28: two tasks on node 0 (vm), step 0.
    for job_id in 24..=28 {
        for task_id in 0..2 {
            let ctx = PatternContext { task_id, step: Step::Id(0), ..batch(job_id, "patjob") };
            produced.push(expand_pattern("step-%j.%s.t%t.n%n.N%N.out", &ctx));
        }
    }
    // Default names of jobs a (16), b (17), c (array 18), d (19), e (23).
    produced.push(expand_pattern("slurm-%j.out", &batch(16, "a.sh")));
    produced.push(expand_pattern("slurm-%j.out", &batch(17, "b.sh")));
    for (task, job_id) in [(1, 21), (2, 20), (3, 19)] {
        produced.push(expand_pattern(
            "slurm-%A_%a.out",
            &PatternContext { array: Some((18, task)), ..batch(job_id, "c.sh") },
        ));
    }
    produced.push(expand_pattern("slurm-%j.out", &batch(19, "d.sh")));
    produced.push(expand_pattern("slurm-%j.out", &batch(23, "refjob")));
    produced.sort();
    produced.dedup();
    let mut listed = listing.clone();
    listed.sort();
    assert_eq!(produced, listed);
}

/// The collection scripts have no directives of their own; the `#SBATCH` lines in their here
/// documents come after the first command, so Slurm ignores them, and we say so.
#[test]
fn collect_scripts() {
    for (file, heredoc_directives) in [("collect.sh", 10), ("collect-multinode.sh", 6), ("collect-gpu.sh", 0)] {
        let job = resolve_fixture(file, file, &[]);
        assert_eq!(job.name, file);
        assert_eq!((job.nodes.min, job.ntasks, job.time_limit_s), (1, 1, None), "{file}");
        assert_eq!(job.output, "slurm-%j.out");
        let ignored = job.warnings.iter().filter(|w| w.contains("after the first command")).count();
        assert_eq!(ignored, heredoc_directives, "{file}: {:?}", job.warnings);
    }
}

/// Every reference script, with every job-level option the issue lists added on the command
/// line, still resolves, and the command line wins.
#[test]
fn command_line_overrides_every_script() {
    for (file, name) in [("job-b.sh", "b.sh"), ("job-e.sh", "e.sh"), ("job-mn1.sh", "mn1.sh"), ("job-mn2.sh", "mn2.sh")]
    {
        let job =
            resolve_fixture(file, name, &["-N", "3", "--ntasks=6", "-J", "override", "-o", "o.txt", "--time=1:00:00"]);
        assert_eq!((job.nodes.min, job.nodes.max, job.ntasks), (3, Some(3), 6), "{file}");
        assert_eq!((job.name.as_str(), job.output.as_str(), job.time_limit_s), ("override", "o.txt", Some(3600)));
    }
}

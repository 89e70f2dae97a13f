//! Slurm's front door on a real cluster: sbatch through the `gangway-slurm` binary, the
//! reference batch scripts of `shared/reference/slurm-22.05/` (copies in
//! `slurm-compat/tests/fixtures/`) with their `SLURM_*` environment and output file names,
//! dependencies, holds, cancels, requeues, bad input, and job ids across a head restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use gangway_api::slurm::{SlurmJob, SlurmJobState};
use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{bin, wait_for, Cluster, Options};

/// The reference fixtures.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../slurm-compat/tests/fixtures").join(name)
}

/// A cluster plus a work directory the scripts write into (the reference's
/// `/srv/slurm-peer/refwork`), with `sbatch`, `srun`, … shims on the `PATH` jobs inherit.
struct Slurm {
    cluster: Cluster,
    door: SlurmFrontDoor,
}

impl Slurm {
    fn start(nodes: usize, slots: u32) -> Slurm {
        // Jobs get real CPUs: nodes of `slots` cores, declared where this host has fewer.
        let host = gangway_topology::discover::allowed_cpus().len() as u32;
        let synthetic = (slots > host).then(|| format!("pack:1 core:{slots} pu:1"));
        let cluster = Cluster::start(Options { nodes, slots, synthetic, ..Options::default() });
        let door = SlurmFrontDoor::new(cluster.config.clone());
        Slurm { cluster, door }
    }

    fn work(&self) -> &Path {
        self.door.work()
    }

    /// Runs `gangway-slurm COMMAND ARGS…` in the work directory against this cluster.
    fn run(&self, command: &str, args: &[&str]) -> Output {
        self.door.run(command, args)
    }

    /// `sbatch --parsable ARGS…`: the job id.
    fn sbatch(&self, args: &[&str]) -> u64 {
        self.door.sbatch(args)
    }

    /// A reference script copied into the work directory under `name`, its `/srv/…` paths
    /// pointing there and `edit` applied.
    fn script(&self, fixture_name: &str, name: &str, edit: impl Fn(String) -> String) -> String {
        let text = std::fs::read_to_string(fixture(fixture_name)).expect("fixture");
        let text = edit(text.replace("/srv/slurm-peer/refwork", &self.work().to_string_lossy()));
        std::fs::write(self.work().join(name), text).expect("writing the script");
        name.to_owned()
    }

    fn jobs(&self) -> Vec<SlurmJob> {
        self.cluster.client().slurm_jobs().expect("GET /slurm/jobs").jobs
    }

    fn job(&self, id: u64) -> SlurmJob {
        self.cluster.client().slurm_job(id).expect("GET /slurm/jobs/{id}")
    }

    /// Waits for job `id` to end.
    fn wait_end(&self, id: u64) -> SlurmJob {
        self.door.wait_end(id, Duration::from_secs(30))
    }

    /// Waits until job `id` is pending for `reason`.
    fn wait_pending(&self, id: u64, reason: &str) -> SlurmJob {
        let mut c = self.cluster.client();
        wait_for(Duration::from_secs(30), &format!("job {id} to be pending ({reason})"), || {
            c.slurm_job(id).ok().filter(|j| j.state == SlurmJobState::Pending && j.reason == reason)
        })
    }

    fn wait_state(&self, id: u64, state: SlurmJobState) -> SlurmJob {
        let mut c = self.cluster.client();
        wait_for(Duration::from_secs(30), &format!("job {id} to be {state:?}"), || {
            c.slurm_job(id).ok().filter(|j| j.state == state)
        })
    }
}

/// `NAME=value` lines.
fn read_env(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Variables whose values depend on the site, the job ids or the node: checked by relation.
const SITE_VALUES: [&str; 19] = [
    "SLURMD_NODENAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_CLUSTER_NAME",
    "SLURM_CONF",
    "SLURM_JOBID",
    "SLURM_JOB_ID",
    "SLURM_JOB_DEPENDENCY",
    "SLURM_JOB_GID",
    "SLURM_JOB_UID",
    "SLURM_JOB_USER",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_JOB_PARTITION",
    "SLURM_SUBMIT_DIR",
    "SLURM_SUBMIT_HOST",
    "SLURM_TASK_PID",
    "SLURM_TOPOLOGY_ADDR",
    "SLURM_WORKING_CLUSTER",
    "SLURM_MEM_PER_CPU",
];

/// Compares a gangway batch environment with the reference's: the same `SLURM_*` names
/// (except `SLURM_MEM_PER_CPU`, which the reference has from its site's `DefMemPerCPU`;
/// gangway exports it only for `--mem-per-cpu`), the same values where they do not depend
/// on the site, and the site-dependent ones consistent with the job.
fn check_env(ours: &BTreeMap<String, String>, reference: &BTreeMap<String, String>, job: &SlurmJob, work: &Path) {
    let names = |m: &BTreeMap<String, String>| -> Vec<String> {
        m.keys().filter(|k| k.starts_with("SLURM") && *k != "SLURM_MEM_PER_CPU").cloned().collect()
    };
    assert_eq!(names(ours), names(reference), "SLURM_* variable names");
    for (k, v) in reference.iter().filter(|(k, _)| !SITE_VALUES.contains(&k.as_str())) {
        assert_eq!(ours.get(k), Some(v), "{k}");
    }
    let get = |k: &str| ours.get(k).map(String::as_str).unwrap_or_default();
    let node = &job.nodes[0];
    assert_eq!(get("SLURM_JOB_ID"), job.job_id.to_string());
    assert_eq!(get("SLURM_JOBID"), job.job_id.to_string());
    for k in ["SLURMD_NODENAME", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_TOPOLOGY_ADDR"] {
        assert_eq!(get(k), node, "{k}");
    }
    assert_eq!(get("SLURM_JOB_PARTITION"), "default");
    assert_eq!(get("SLURM_SUBMIT_DIR"), work.to_string_lossy());
    assert_eq!(get("SLURM_JOB_USER"), job.user);
    assert_eq!(get("SLURM_JOB_UID"), job.uid.to_string());
    assert_eq!(get("SLURM_JOB_GID"), job.gid.to_string());
    assert!(get("SLURM_TASK_PID").parse::<u32>().is_ok(), "SLURM_TASK_PID is a pid");
    let wc: Vec<&str> = get("SLURM_WORKING_CLUSTER").split(':').collect();
    assert_eq!((wc.len(), wc[0], wc[3], wc[4]), (5, "gangway", "9728", "109"), "SLURM_WORKING_CLUSTER");
}

#[test]
fn reference_scripts_get_the_reference_environment() {
    let s = Slurm::start(2, 4);
    let a = s.sbatch(&[&s.script("job-a.sh", "a.sh", |t| t)]);
    let b = s.sbatch(&[&s.script("job-b.sh", "b.sh", |t| t)]);
    let c = s.sbatch(&[&s.script("job-c.sh", "c.sh", |t| t)]);
    let e_script = s.script("job-e.sh", "e.sh", |t| t.replace("afterok:16", &format!("afterok:{a}")));
    let e = s.sbatch(&[&e_script]);
    let all: Vec<SlurmJob> = s.jobs();
    let elements: Vec<&SlurmJob> = all.iter().filter(|j| j.array_job_id == Some(c)).collect();
    assert_eq!(elements.len(), 3, "array elements are jobs as soon as it is submitted");
    for id in [a, b, e] {
        assert_eq!(s.wait_end(id).state, SlurmJobState::Completed, "job {id}");
    }
    let elements: Vec<SlurmJob> = elements.iter().map(|j| s.wait_end(j.job_id)).collect();
    let work = s.work();

    let ja = s.job(a);
    check_env(&read_env(&work.join("case-a-plain.env")), &read_env(&fixture("case-a-plain.env")), &ja, work);
    check_env(&read_env(&work.join("case-b-ntasks4.env")), &read_env(&fixture("case-b-ntasks4.env")), &s.job(b), work);
    let je = s.job(e);
    let env_e = read_env(&work.join("case-e-named-dep.env"));
    check_env(&env_e, &read_env(&fixture("case-e-named-dep.env")), &je, work);
    assert_eq!(env_e["SLURM_JOB_DEPENDENCY"], format!("afterok:{a}"));
    assert!(je.start_time.unwrap() >= ja.end_time.unwrap(), "afterok waited for its job");

    // The array: elements 1..3 of array `c`, the last keeping its id, the others their own.
    let reference_c = read_env(&fixture("case-c-array-18_1.env"));
    let mut ids = Vec::new();
    for el in &elements {
        let i = el.array_task_id.unwrap();
        let env = read_env(&work.join(format!("case-c-array-{c}_{i}.env")));
        let mut reference = reference_c.clone();
        reference.insert("SLURM_ARRAY_TASK_ID".into(), i.to_string());
        check_env(&env, &reference, el, work);
        assert_eq!(env["SLURM_ARRAY_JOB_ID"], c.to_string());
        assert_eq!(env["SLURM_ARRAY_TASK_ID"], i.to_string());
        ids.push((i, el.job_id));
    }
    ids.sort();
    assert_eq!(ids[2], (3, c), "the last element keeps the array's id");
    assert!(ids[0].1 != ids[1].1 && ids[0].1 != c && ids[1].1 != c, "{ids:?}");

    // Default output files, in the submit directory; e's --output=slurm-%j.out.
    for name in
        [format!("slurm-{a}.out"), format!("slurm-{b}.out"), format!("slurm-{c}_1.out"), format!("slurm-{c}_3.out")]
    {
        assert_eq!(std::fs::read_to_string(work.join(&name)).unwrap_or_else(|_| panic!("{name}")), "");
    }
    let out_e = std::fs::read_to_string(work.join(format!("slurm-{e}.out"))).unwrap();
    assert_eq!(out_e, format!("hello from stdout of job {e}\n"));
}

#[test]
fn srun_steps_on_the_batch_host() {
    let s = Slurm::start(1, 2);
    let d = s.sbatch(&[&s.script("job-d.sh", "d.sh", |t| t)]);
    let job = s.wait_end(d);
    assert_eq!(job.state, SlurmJobState::Completed);
    let work = s.work();
    check_env(
        &read_env(&work.join("case-d-batch-parent.env")),
        &read_env(&fixture("case-d-batch-parent.env")),
        &job,
        work,
    );
    let reference = read_env(&fixture("case-d-srun-step.task1.env"));
    for t in 0..2u32 {
        let env = read_env(&work.join(format!("case-d-srun-step.task{t}.env")));
        let mut reference = reference.clone();
        // Site values: srun's sockets (gangway has none) and the umask.
        for k in [
            "SLURM_SRUN_COMM_PORT",
            "SLURM_STEP_LAUNCHER_PORT",
            "SLURM_LAUNCH_NODE_IPADDR",
            "SLURM_SRUN_COMM_HOST",
            "SLURM_UMASK",
        ] {
            reference.insert(k.into(), env.get(k).cloned().unwrap_or_else(|| panic!("{k} missing")));
        }
        reference.insert("SLURM_STEP_NODELIST".into(), job.nodes[0].clone());
        reference.insert("SLURM_PROCID".into(), t.to_string());
        reference.insert("SLURM_LOCALID".into(), t.to_string());
        check_env(&env, &reference, &job, work);
        assert_eq!(env["SLURM_STEP_NODELIST"], job.nodes[0]);
        assert_eq!(env["SLURM_STEP_ID"], "0", "the first srun is step 0");
    }
    let label = std::fs::read_to_string(work.join("case-d-srun-label.txt")).unwrap();
    let mut lines: Vec<&str> = label.lines().collect();
    lines.sort();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    assert_eq!(lines, [format!("0: {host}"), format!("1: {host}")], "labels as in case-d-srun-label.txt");
    // Outside a job srun first gets an allocation (a job of its own), as Slurm's does.
    let out = s.run("srun", &["-n2", "sh", "-c", "echo $SLURM_PROCID $SLURM_STEP_NUM_TASKS $SLURM_JOB_NAME"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["0 2 sh", "1 2 sh"]);
}

#[test]
fn output_file_patterns_match_the_reference() {
    let s = Slurm::start(2, 2);
    let p = s.script("job-p.sh", "p.sh", |t| t);
    let p1 = s.sbatch(&["--output=pat-j%j-J%J-x%x-N%N-n%n-u%u-s%s-t%t-pct%%.out", "--error=pat-err-%j.err", &p]);
    let p2 = s.sbatch(&["--array=1-2", "--output=patarr-A%A-a%a-j%j-x%x.out", &p]);
    let p3 = s.sbatch(&["--array=5", "--output=patarr-pad-%3a-%5j.out", &p]);
    let p4 = s.sbatch(&["--output=%x\\%j-escaped.out", &p]);
    let jobs: Vec<SlurmJob> = s.jobs();
    let el =
        |a: u64, i: u32| jobs.iter().find(|j| j.array_job_id == Some(a) && j.array_task_id == Some(i)).unwrap().job_id;
    let (p2_1, p2_2, p3_5) = (el(p2, 1), el(p2, 2), el(p3, 5));
    assert_eq!((p2_2, p3_5), (p2, p3), "the last element keeps the array's id");
    for id in [p1, p2_1, p2_2, p3_5, p4] {
        assert_eq!(s.wait_end(id).state, SlurmJobState::Completed);
    }
    let node = &s.job(p1).nodes[0];
    let user = &s.job(p1).user;
    let both = "stdout-line\nstderr-line\n";
    let expected = [
        (format!("pat-j{p1}-J{p1}-xpatjob-N{node}-n0-u{user}-sbatch-t0-pct%.out"), "stdout-line\n"),
        (format!("pat-err-{p1}.err"), "stderr-line\n"),
        (format!("patarr-A{p2}-a1-j{p2_1}-xpatjob.out"), both),
        (format!("patarr-A{p2}-a2-j{p2}-xpatjob.out"), both),
        (format!("patarr-pad-005-{p3:05}.out"), both),
        ("%x%j-escaped.out".to_owned(), both),
    ];
    let steps: Vec<(String, &str)> = [p1, p2_1, p2_2, p3_5, p4]
        .iter()
        .flat_map(|j| {
            let node = s.job(*j).nodes[0].clone();
            (0..2).map(move |t| (format!("step-{j}.0.t{t}.n0.N{node}.out"), "step-line\n"))
        })
        .collect();
    let expected: Vec<(String, &str)> = expected.into_iter().chain(steps).collect();
    let mut produced: Vec<String> = std::fs::read_dir(s.work())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "p.sh")
        .collect();
    produced.sort();
    let mut names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(produced, names);
    for (name, content) in expected {
        assert_eq!(std::fs::read_to_string(s.work().join(&name)).unwrap(), content, "{name}");
    }
    assert_eq!(s.job(p1).std_err, s.work().join(format!("pat-err-{p1}.err")).to_string_lossy());
}

#[test]
fn dependencies_gate_jobs() {
    let s = Slurm::start(2, 2);
    let failing = s.sbatch(&["--hold", "--wrap=exit 3"]);
    let never = s.sbatch(&[&format!("--dependency=afterok:{failing}"), "--wrap=true"]);
    // Waiting: each condition not met yet, as Slurm shows it; then the parent runs.
    assert_eq!(s.job(never).dependency, Some(format!("afterok:{failing}(unfulfilled)")));
    assert!(s.run("scontrol", &["release", &failing.to_string()]).status.success());
    let any = s.sbatch(&["-d", &format!("afterany:{failing}"), "--wrap=true"]);
    let notok = s.sbatch(&[&format!("--dependency=afternotok:{failing}"), "--wrap=true"]);
    let either = s.sbatch(&[&format!("--dependency=afterok:{failing}?afterany:{failing}"), "--wrap=true"]);
    let killed = s.sbatch(&[&format!("--dependency=afterok:{failing}"), "--kill-on-invalid-dep=yes", "--wrap=true"]);
    assert_eq!(s.wait_end(failing).state, SlurmJobState::Failed);
    let k = s.wait_end(killed);
    assert_eq!((k.state, k.reason.as_str()), (SlurmJobState::Cancelled, "DependencyNeverSatisfied"));
    assert!(k.start_time.is_none(), "a killed dependent never ran");
    assert_eq!(s.wait_end(failing).exit_code, Some(3));
    for id in [any, notok, either] {
        assert_eq!(s.wait_end(id).state, SlurmJobState::Completed, "job {id}");
    }
    let n = s.wait_pending(never, "DependencyNeverSatisfied");
    assert_eq!(n.dependency, Some(format!("afterok:{failing}(failed)")), "as Slurm shows it");

    // singleton: the second job of a name waits for the first to end.
    let first = s.sbatch(&["-J", "single", "--wrap=sleep 1"]);
    let second = s.sbatch(&["-J", "single", "--dependency=singleton", "--wrap=true"]);
    s.wait_pending(second, "Dependency");
    let (a, b) = (s.wait_end(first), s.wait_end(second));
    assert_eq!(b.state, SlurmJobState::Completed);
    assert!(b.start_time.unwrap() >= a.end_time.unwrap(), "singleton waited");

    // after: starts once its job has started.
    let long = s.sbatch(&["--wrap=sleep 2"]);
    let after = s.sbatch(&[&format!("--dependency=after:{long}"), "--wrap=true"]);
    assert_eq!(s.wait_end(after).state, SlurmJobState::Completed);
    assert!(!s.job(long).state.is_finished(), "after: did not wait for the end");
}

#[test]
fn array_running_limit_is_kept() {
    let s = Slurm::start(2, 2);
    let array = s.sbatch(&["--array=1-6%2", "--wrap=sleep 0.3"]);
    let ids: Vec<u64> = s.jobs().iter().filter(|j| j.array_job_id == Some(array)).map(|j| j.job_id).collect();
    assert_eq!(ids.len(), 6);
    let pending = wait_for(Duration::from_secs(30), "elements waiting on the array limit", || {
        let jobs = s.jobs();
        let limited = jobs.iter().filter(|j| j.reason == "JobArrayTaskLimit").count();
        (limited > 0).then_some(limited)
    });
    assert!(pending <= 4, "{pending}");
    let ended: Vec<SlurmJob> = ids.iter().map(|id| s.wait_end(*id)).collect();
    // Four nodes' worth of slots, but never more than two elements at once.
    // At each element's start, count the elements running (started, not yet ended).
    for j in &ended {
        let t = j.start_time.unwrap();
        let running = ended.iter().filter(|k| k.start_time.unwrap() <= t && k.end_time.unwrap() > t).count();
        assert!(running <= 2, "{running} elements ran at once");
    }
}

#[test]
fn refused_submissions_queue_nothing() {
    let s = Slurm::start(1, 2);
    let first = s.sbatch(&["--wrap=true"]);
    // Slurm's words and exit codes: 255 for a mistake sbatch finds in its options, 1 for what
    // the controller refuses.
    let cases: [(&[&str], &str, i32); 6] = [
        (&["-p", "nosuch", "--wrap=true"], "invalid partition specified: nosuch", 1),
        (&["--time=abc", "--wrap=true"], "sbatch: error: Invalid --time specification", 255),
        (&["--nodes=0", "--wrap=true"], "Batch job submission failed: Node count specification invalid", 1),
        (&["--array=5-1", "--wrap=true"], "Batch job submission failed: Invalid job array specification", 1),
        (&["--bogus", "--wrap=true"], "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\"", 255),
        (&["--mem=999999999", "--wrap=true"], "sbatch: error: Memory specification can not be satisfied\n", 1),
    ];
    for (args, message, code) in cases {
        let out = s.run("sbatch", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let malformed = s.work().join("bad.sh");
    std::fs::write(&malformed, "#!/bin/bash\n#SBATCH --time=abc\ntrue\n").unwrap();
    assert!(!s.run("sbatch", &["bad.sh"]).status.success());
    assert_eq!(s.jobs().len(), 1, "nothing was queued");
    assert_eq!(s.sbatch(&["--wrap=true"]), first + 1, "refusals use no job id");
    assert_eq!(s.cluster.client().list_jobs(&Default::default()).unwrap().len(), 2);
    // A dependency on a job that does not exist is accepted and met, as in Slurm 22.05.
    let id = s.sbatch(&["--dependency=afterok:99999", "--wrap=true"]);
    assert_eq!(s.wait_end(id).state, gangway_api::slurm::SlurmJobState::Completed);
    // More CPUs on one node than the partition's nodes have waits for bigger nodes.
    let big = s.sbatch(&["-N1", "-n", "8", "--wrap=true"]);
    let job = s.cluster.client().slurm_job(big).unwrap();
    assert_eq!((job.state, job.reason.as_str()), (gangway_api::slurm::SlurmJobState::Pending, "PartitionConfig"));
}

#[test]
fn hold_release_cancel_and_requeue() {
    let s = Slurm::start(2, 2);
    let held = s.sbatch(&["-H", "--wrap=true"]);
    assert!(s.wait_pending(held, "JobHeldUser").held);
    assert!(s.run("scontrol", &["release", &held.to_string()]).status.success());
    assert_eq!(s.wait_end(held).state, SlurmJobState::Completed);

    // A pending job held and released goes back to waiting for its dependency.
    let blocker = s.sbatch(&["--wrap=sleep 30"]);
    let waiting = s.sbatch(&[&format!("--dependency=afterany:{blocker}"), "--wrap=true"]);
    s.wait_pending(waiting, "Dependency");
    assert!(s.run("scontrol", &["hold", &waiting.to_string()]).status.success());
    s.wait_pending(waiting, "JobHeldUser");
    let out = s.run("scontrol", &["update", &format!("JobId={waiting}"), "TimeLimit=1:00"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.job(waiting).time_limit_s, Some(60));
    assert!(s.run("scontrol", &["release", &waiting.to_string()]).status.success());
    s.wait_pending(waiting, "Dependency");
    let refused = s.run("scontrol", &["hold", &blocker.to_string()]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Job is no longer pending execution"));

    // scancel a running job: cancelled, and its dependant may go.
    s.wait_state(blocker, SlurmJobState::Running);
    assert!(s.run("scancel", &[&blocker.to_string()]).status.success());
    let b = s.wait_end(blocker);
    assert_eq!((b.state, b.signal), (SlurmJobState::Cancelled, Some(15)));
    assert_eq!(s.wait_end(waiting).state, SlurmJobState::Completed);

    // Array elements, by N_i and by filter.
    let array = s.sbatch(&["--array=1-3", "-H", "-J", "arr", "--wrap=true"]);
    assert!(s.run("scancel", &[&format!("{array}_2")]).status.success());
    let jobs = s.jobs();
    let state =
        |i: u32| jobs.iter().find(|j| j.array_job_id == Some(array) && j.array_task_id == Some(i)).unwrap().state;
    assert_eq!(
        (state(1), state(2), state(3)),
        (SlurmJobState::Pending, SlurmJobState::Cancelled, SlurmJobState::Pending)
    );
    assert!(s.run("scancel", &["-n", "arr", "-t", "PENDING"]).status.success());
    assert!(s.jobs().iter().filter(|j| j.array_job_id == Some(array)).all(|j| j.state == SlurmJobState::Cancelled));
    let unknown = s.run("scancel", &["99999"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Invalid job id specified"));

    // Requeue an ended job: it runs again, counted as a restart.
    let again = s.sbatch(&["--wrap=echo run >> runs.txt"]);
    s.wait_end(again);
    assert!(s.run("scontrol", &["requeue", &again.to_string()]).status.success());
    wait_for(Duration::from_secs(30), "the requeued job to run again", || {
        let j = s.job(again);
        (j.state == SlurmJobState::Completed && j.restarts == 1).then_some(())
    });
    assert_eq!(std::fs::read_to_string(s.work().join("runs.txt")).unwrap(), "run\nrun\n");
}

#[test]
fn wait_test_only_begin_and_multi_node() {
    let s = Slurm::start(2, 2);
    let out = s.run("sbatch", &["-W", "--wrap=exit 3"]);
    assert_eq!(out.status.code(), Some(3), "-W exits with the job's exit code");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Submitted batch job "));

    let before = s.jobs().len();
    let out = s.run("sbatch", &["--test-only", "-n", "2", "--wrap=true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("to start at") && stderr.contains("using 2 processors"),
        "{stderr}"
    );
    assert!(stderr.contains("in partition default"), "{stderr}");
    assert_eq!(s.jobs().len(), before, "--test-only queues nothing");

    let later = s.sbatch(&["--begin=now+2", "--wrap=true"]);
    s.wait_pending(later, "BeginTime");
    let j = s.wait_end(later);
    // --begin is whole seconds (as in Slurm): now+2 is at least one second after the submit.
    assert!(j.start_time.unwrap().millis_since(j.submit_time) >= 1_000, "ran before its begin time");

    let mn = s.sbatch(&["-N2", "--ntasks-per-node=2", "--output=mn.out", "--wrap=env | grep ^SLURM | sort > mn.env"]);
    assert_eq!(s.wait_end(mn).state, SlurmJobState::Completed);
    let env = read_env(&s.work().join("mn.env"));
    let reference = read_env(&fixture("mn-batch-N4-tpn2.env"));
    let names =
        |m: &BTreeMap<String, String>| m.keys().filter(|k| *k != "SLURM_MEM_PER_CPU").cloned().collect::<Vec<_>>();
    assert_eq!(names(&env), names(&reference));
    for (k, v) in [
        ("SLURM_JOB_NODELIST", "node[1-2]"),
        ("SLURM_TASKS_PER_NODE", "2(x2)"),
        ("SLURM_JOB_CPUS_PER_NODE", "2(x2)"),
        ("SLURM_NNODES", "2"),
        ("SLURM_NTASKS", "4"),
        ("SLURM_NTASKS_PER_NODE", "2"),
        ("SLURM_CPUS_ON_NODE", "2"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    // The script runs on the gang's primary, the first node of the allocation.
    assert_eq!(env["SLURMD_NODENAME"], s.job(mn).nodes[0]);
}

#[test]
fn requeue_a_running_job_export_and_chdir() {
    let s = Slurm::start(1, 2);
    // Requeue while running: killed, queued again, runs to the end the second time.
    let script = "if [ -e first ]; then echo second >> log; else touch first; echo first >> log; sleep 30; fi";
    let id = s.sbatch(&["--wrap", script]);
    wait_for(Duration::from_secs(30), "the first run", || s.work().join("first").exists().then_some(()));
    s.wait_state(id, SlurmJobState::Running);
    let out = s.run("scontrol", &["requeue", &id.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(Duration::from_secs(30), "the requeued run", || {
        let j = s.job(id);
        (j.state == SlurmJobState::Completed && j.restarts == 1).then_some(())
    });
    assert_eq!(std::fs::read_to_string(s.work().join("log")).unwrap(), "first\nsecond\n");

    // --export=NONE,VAR=value: only the listed variable comes from the submitter; -D moves
    // the working directory, and relative output paths with it.
    std::fs::create_dir(s.work().join("sub")).unwrap();
    let cmd = "echo \"$PWD ${FROM_SUBMIT-unset} ${LISTED-unset} $SLURM_SUBMIT_DIR\"";
    let none = Command::new(bin("gangway-slurm"))
        .args(["sbatch", "--parsable", "--export=NONE,LISTED=yes", "-D", "sub", "-o", "none.out", "--wrap", cmd])
        .current_dir(s.work())
        .env("GANGWAY_STATE_DIR", s.cluster.state_dir())
        .env("FROM_SUBMIT", "here")
        .output()
        .unwrap();
    let none: u64 = String::from_utf8_lossy(&none.stdout).trim().parse().unwrap();
    s.wait_end(none);
    let sub = s.work().join("sub");
    let text = std::fs::read_to_string(sub.join("none.out")).unwrap();
    assert_eq!(text, format!("{} unset yes {}\n", sub.display(), s.work().display()));
    let all = Command::new(bin("gangway-slurm"))
        .args(["sbatch", "--parsable", "-o", "all.out", "--wrap", cmd])
        .current_dir(s.work())
        .env("GANGWAY_STATE_DIR", s.cluster.state_dir())
        .env("FROM_SUBMIT", "here")
        .output()
        .unwrap();
    let all: u64 = String::from_utf8_lossy(&all.stdout).trim().parse().unwrap();
    s.wait_end(all);
    let text = std::fs::read_to_string(s.work().join("all.out")).unwrap();
    assert_eq!(text, format!("{} here unset {}\n", s.work().display(), s.work().display()));

    // A script on standard input is named `sbatch`, as in Slurm.
    let mut child = Command::new(bin("gangway-slurm"))
        .args(["sbatch", "--parsable"])
        .current_dir(s.work())
        .env("GANGWAY_STATE_DIR", s.cluster.state_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"#!/bin/sh\n#SBATCH -J piped\ntrue\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let piped: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(s.wait_end(piped).name, "piped");
}

#[test]
fn job_ids_and_holds_survive_a_head_restart() {
    let mut s = Slurm::start(1, 2);
    let a = s.sbatch(&["--wrap=true"]);
    let held = s.sbatch(&["-H", "-J", "kept", "--wrap=true"]);
    s.wait_end(a);
    s.cluster.kill_head();
    s.cluster.start_head();
    s.cluster.wait_idle(1);
    let j = s.wait_pending(held, "JobHeldUser");
    assert_eq!(j.name, "kept");
    assert_eq!(s.job(a).state, SlurmJobState::Completed);
    let next = s.sbatch(&["--wrap=true"]);
    assert_eq!(next, held + 1, "ids go on from where they were");
    // Even when the newest job is gone, its id is not handed out again.
    s.cluster.client().delete_job(&next.to_string()).unwrap();
    s.cluster.kill_head();
    s.cluster.start_head();
    s.cluster.wait_idle(1);
    assert_eq!(s.sbatch(&["--wrap=true"]), next + 1);
    assert!(s.run("scontrol", &["release", &held.to_string()]).status.success());
    assert_eq!(s.wait_end(held).state, SlurmJobState::Completed);
}

#[test]
fn scancel_signal_reaches_a_running_batch_script() {
    let s = Slurm::start(2, 2);
    // The trap is installed before `ready` is written; `sleep` (in the same cgroup) dies of
    // the signal too, which only ends one nap early.
    let script =
        "#!/bin/sh\ntrap 'echo got USR1 >> signals.txt' USR1\necho up > ready\nwhile true; do sleep 0.2; done\n";
    std::fs::write(s.work().join("trap.sh"), script).expect("writing the script");
    // -N2: a gang, so the signal goes to both instances (the script runs on the primary).
    let id = s.sbatch(&["-N2", "trap.sh"]);
    s.wait_state(id, SlurmJobState::Running);
    wait_for(Duration::from_secs(30), "the script to install its trap", || {
        s.work().join("ready").exists().then_some(())
    });

    let out = s.run("scancel", &["--signal=USR1", &id.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let signals = s.work().join("signals.txt");
    wait_for(Duration::from_secs(30), "the trap to run", || {
        std::fs::read_to_string(&signals).ok().filter(|t| t.contains("got USR1"))
    });
    let out = s.run("scancel", &["-s", "SIGUSR1", &id.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(Duration::from_secs(30), "the trap to run again", || {
        std::fs::read_to_string(&signals).ok().filter(|t| t.matches("got USR1").count() == 2)
    });

    // An unknown signal sends nothing; a pending job is not signalled and stays pending.
    let out = s.run("scancel", &["--signal=USR3", &id.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown job signal: USR3"));
    let held = s.sbatch(&["-H", "--wrap=true"]);
    let out = s.run("scancel", &["-s", "USR1", &held.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Job is pending execution"), "{out:?}");
    assert!(s.wait_pending(held, "JobHeldUser").held);

    // The signalled job kept running; a plain scancel ends it.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.job(id).state, SlurmJobState::Running);
    assert_eq!(std::fs::read_to_string(&signals).unwrap().matches("got USR1").count(), 2, "each process once");
    assert!(s.run("scancel", &[&id.to_string(), &held.to_string()]).status.success());
    assert_eq!(s.wait_end(id).state, SlurmJobState::Cancelled);
    assert_eq!(s.wait_end(held).state, SlurmJobState::Cancelled);
}

#[test]
fn a_job_larger_than_its_partition_waits_with_partition_node_limit() {
    let s = Slurm::start(1, 2);
    let out = s.run("sbatch", &["--parsable", "-N", "3", "-o", "/dev/null", "--comment=big one", "--wrap", "true"]);
    assert!(out.status.success(), "Slurm queues it: {}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let q = s.run("squeue", &["-h", "-j", &id, "-o", "%t %r %k"]);
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "PD PartitionNodeLimit big one");
    assert!(s.run("scancel", &[&id]).status.success());
}

#[test]
fn max_array_size_is_the_sites() {
    let s = Slurm::start(1, 2);
    // The default, Slurm's 1001: index 1001 is refused by the head, in Slurm's words.
    let out = s.run("sbatch", &["--array=1001", "-o", "/dev/null", "--wrap", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Batch job submission failed: Invalid job array specification"), "{err}");
    assert!(err.contains("MaxArraySize (1001)"), "{err}");
}

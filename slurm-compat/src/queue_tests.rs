use super::*;
use crate::format::fixtures::{at, ended, job, running, step, NOW};
use gangway_api::slurm::SlurmJobState::*;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// squeue's output for the command line `line` over `jobs` (at `NOW`, run by uid 1000).
fn squeue(jobs: &[SlurmJob], line: &str) -> Output {
    match parse_squeue_args(&args(line), 1000) {
        Ok(o) => render_squeue(jobs, &o, NOW),
        Err(e) => e,
    }
}

fn check(jobs: &[SlurmJob], line: &str, expected: &str) {
    let out = squeue(jobs, line);
    assert_eq!(out.stdout, expected, "squeue {line}\nstderr: {}", out.stderr);
    assert_eq!(out.code, 0, "squeue {line}");
}

fn check_err(jobs: &[SlurmJob], line: &str, expected: &str) {
    let out = squeue(jobs, line);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.code), ("", expected, 1), "squeue {line}");
}

fn queue() -> Vec<SlurmJob> {
    let mut long = running(12, &["node01", "node02", "node03"], 3725);
    long.name = "a-very-long-job-name".into();
    long.user = "someverylonguser".into();
    let mut held = job(14);
    held.reason = "JobHeldUser".into();
    held.held = true;
    vec![
        running(11, &["node04"], 65),
        long,
        job(13),
        held,
        ended(10, &["node01"], 30, 60, Completed, 0),
        ended(9, &["node01"], 30, 900, Failed, 1),
    ]
}

#[test]
fn default_columns() {
    check(
        &queue(),
        "",
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)
                13   default   job.sh    alice PD       0:00      1 (Priority)
                14   default   job.sh    alice PD       0:00      1 (JobHeldUser)
                11   default   job.sh    alice  R       1:05      1 node04
                12   default a-very-l somevery  R    1:02:05      3 node[01-03]
",
    );
}

#[test]
fn no_header_and_formats() {
    let jobs = queue();
    check(&jobs, "-h -j 11", "                11   default   job.sh    alice  R       1:05      1 node04\n");
    check(&jobs, "-h -o %i,%t -j 11", "11,R\n");
    check(&jobs, "-h -j 12 -o %T|%N|%D|%C", "RUNNING|node[01-03]|3|1\n");
    check(&jobs, "--noheader --format=%i:%u:%U:%P:%j -j 13", "13:alice:1000:default:job.sh\n");
    check(&jobs, "-h -o %.5i| -j 13", "   13|\n");
    check(&jobs, "-h -o %-5i| -j 13", "%-5i|\n"); // squeue has no '-' flag: an invalid field
    check(&jobs, "-h -o %5i| -j 13", "13   |\n");
    check(&jobs, "-h -o %l/%L/%M -j 11", "1:00:00/58:55/1:05\n");
    check(&jobs, "-h -o %S|%V|%e -j 11", "2026-11-23T09:38:55|2026-11-23T09:30:00|2026-11-23T10:38:55\n");
    check(&jobs, "-h -o %S|%e|%r|%R -j 13", "N/A|N/A|Priority|(Priority)\n");
    check(&jobs, "-h -o %a|%q|%E|%f|%Z|%o -j 13", "(null)|(null)|(null)|(null)|/home/alice|/home/alice/job.sh\n");
    check(&jobs, "-o %i -j 13", "JOBID\n13\n");
    check(&jobs, "-o id=%.4i -j 13", "id=JOBI\nid=  13\n"); // headers are cut too
}

#[test]
fn long_listing_has_a_date_line() {
    check(
        &queue(),
        "-l -j 11",
        "Mon Nov 23 09:40:00 2026
             JOBID PARTITION     NAME     USER    STATE       TIME TIME_LIMI  NODES NODELIST(REASON)
                11   default   job.sh    alice  RUNNING       1:05   1:00:00      1 node04
",
    );
}

#[test]
fn capital_o_fields() {
    let jobs = queue();
    check(
        &jobs,
        "-O jobid,state,name -j 11",
        "JOBID               STATE               NAME                \n11                  RUNNING             job.sh              \n",
    );
    check(&jobs, "-h -O JobID:.5,StateCompact:4|,UserName: -j 11", "   11R   |alice\n");
    check(&jobs, "-h -O jobarrayid:6,stdout:30 -j 11", "11    /home/alice/slurm-11.out      \n");
    let out = squeue(&jobs, "-h -O bogus:3 -j 11");
    assert_eq!(out.stderr, "squeue: error: Invalid job format specification: bogus\n");
}

#[test]
fn filters() {
    let jobs = queue();
    check(&jobs, "-h -o %i -t PD", "13\n14\n");
    check(&jobs, "-h -o %i -t running", "11\n12\n");
    check(&jobs, "-h -o %i -t CD,F", "10\n"); // job 9 ended 15 min ago: gone (MinJobAge)
    check(&jobs, "-h -o %i:%t --states=all", "13:PD\n14:PD\n11:R\n12:R\n10:CD\n");
    check(&jobs, "-h -o %i -u someverylonguser", "12\n");
    check(&jobs, "-h -o %i -u 1000 -t PD", "13\n14\n");
    check(&jobs, "-h -o %i --me -t R", "11\n12\n");
    check(&jobs, "-h -o %i -j 11,13,99", "13\n11\n");
    check(&jobs, "-h -o %i -p nope", "");
    check(&jobs, "-h -o %i -p default -t R", "11\n12\n");
    check(&jobs, "-h -o %i -n job.sh -t R", "11\n");
    check(&jobs, "-h -o %i -w node02", "12\n");
    check(&jobs, "-h -o %i -w node[03-04]", "11\n12\n");
    check(&jobs, "-h -o %i -A acct", "");
    check(&jobs, "-h -j 13 -o %i", "13\n");
    check(&jobs, "-h -o %i -j 13 -t R", ""); // known but filtered: no error
}

#[test]
fn ended_jobs_and_unknown_ids() {
    let jobs = queue();
    // Ended a minute ago: still known, but only listed when asked for by state.
    check(&jobs, "-h -j 10", "");
    check(&jobs, "-h -j 10 -t all -o %i,%T", "10,COMPLETED\n");
    // Ended 15 minutes ago, or never existed: slurmctld has forgotten it.
    check_err(&jobs, "-j 9", "slurm_load_jobs error: Invalid job id specified\n");
    check_err(&jobs, "-h -j 999999", "slurm_load_jobs error: Invalid job id specified\n");
    check(&jobs, "-h -j 999998,999999", ""); // several ids: just a filter
}

#[test]
fn arrays_fold_while_pending() {
    let mut jobs = Vec::new();
    for t in [1, 2, 3, 5] {
        let mut j = job(100 + u64::from(t));
        j.array_job_id = Some(100);
        j.array_task_id = Some(t);
        jobs.push(j);
    }
    let mut r = running(110, &["node01"], 10);
    r.array_job_id = Some(100);
    r.array_task_id = Some(0);
    jobs.push(r);
    check(&jobs, "-h -o %i|%K|%A|%F|%t", "100_[1-3,5]|1-3,5|101|100|PD\n100_0|0|110|100|R\n");
    check(&jobs, "-h -r -o %i -t PD", "100_1\n100_2\n100_3\n100_5\n");
    check(&jobs, "-h -o %i -j 100_2", "100_2\n"); // only the named element passes the filter
    check(&jobs, "-h -r -o %i -j 100_2", "100_2\n");
    check(&jobs, "-h -o %i -j 110", "100_0\n");
    assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
    assert_eq!(ranges(&[]), "");
}

#[test]
fn json() {
    let out = squeue(&queue(), "--json -j 11");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let jobs = doc["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["job_id"], 11);
    assert_eq!(jobs[0]["job_state"], "RUNNING");
    assert_eq!(jobs[0]["name"], "job.sh");
    assert_eq!(jobs[0]["nodes"], "node04");
    assert_eq!(jobs[0]["time_limit"], 60);
    assert_eq!(jobs[0]["start_time"], at(-65).0 / 1_000_000);
}

#[test]
fn bad_command_lines() {
    let jobs = queue();
    check_err(&jobs, "--foo", "squeue: unrecognized option '--foo'\nTry \"squeue --help\" for more information\n");
    check_err(&jobs, "-Z", "squeue: invalid option -- 'Z'\nTry \"squeue --help\" for more information\n");
    check_err(&jobs, "-t bogus", "squeue: error: Invalid job state specified: bogus\nsqueue: error: Valid job states include: PENDING,RUNNING,COMPLETED,FAILED,CANCELLED,TIMEOUT,NODE_FAIL,COMPLETING,SUSPENDED,BOOT_FAIL,DEADLINE,OUT_OF_MEMORY,PREEMPTED,CONFIGURING,RESIZING,REQUEUED,REQUEUE_FED,REQUEUE_HOLD,REVOKED,SPECIAL_EXIT\n");
    check_err(&jobs, "-j abc", "squeue: error: Invalid job id: abc\n");
    check_err(&jobs, "-o %i -O jobid", "squeue: error: -O (--Format) is incompatible with -o (--format)\n");
    check_err(
        &jobs,
        "-l -o %i",
        "squeue: fatal: Options -o(--format) and -l(--long) are mutually exclusive. Please remove one and retry.\n",
    );
    check_err(&jobs, "extra", "squeue: error: Unrecognized option: extra\n");
    check_err(&jobs, "-i 5", "squeue: error: --iterate is not supported by gangway's squeue\n");
    // `-j` alone takes the next word as its list, as squeue does.
    check(&jobs, "-h -o %i -j 11", "11\n");
    check(&jobs, "-h -o %i --jobs 11", "11\n");
    assert_eq!(squeue(&jobs, "--help").code, 0);
}

proptest::proptest! {
    #[test]
    fn never_panics(line in proptest::collection::vec("(-[a-zA-Z]|--[a-z]{1,8}|%[.0-9]{0,3}[a-zA-Z]|[a-z0-9,_]{1,6})", 0..6)) {
        let _ = squeue(&queue(), &line.join(" "));
    }
}

#[test]
fn steps_list_the_running_sruns() {
    let mut j = running(12, &["node01", "node02"], 100);

    let both = ["node01", "node02"];
    j.steps = vec![step(0, "hostname", &both, 4, 90, Some((10, 0))), step(1, "solver", &both, 4, 65, None)];
    let header = "         STEPID     NAME PARTITION     USER      TIME NODELIST\n";
    let row = "           12.1   solver   default    alice      1:05 node[01-02]\n";
    check(&[j.clone()], "-s", &format!("{header}{row}"));
    check(&[j.clone()], "-h --steps=12.1", row);
    check(&[j.clone()], "-h -s 12.0", "");
    check_err(
        &[j],
        "-s -o %i",
        "squeue: error: -s (--steps) prints squeue's step columns only; -o, -O and --json are not supported with it\n",
    );
}

#[test]
fn start_lists_pending_jobs_by_planned_start() {
    let mut planned = job(15);
    planned.reason = "Resources".into();
    planned.planned_start = Some(at(3600));
    planned.sched_nodes = vec!["node01".into(), "node02".into(), "node03".into(), "node04".into()];
    let mut jobs = queue();
    jobs.push(planned);
    check(
        &jobs,
        "--start",
        "             JOBID PARTITION     NAME     USER ST          START_TIME  NODES SCHEDNODES           NODELIST(REASON)
                15   default   job.sh    alice PD 2026-11-23T10:40:00      1 node[01-04]          (Resources)
                13   default   job.sh    alice PD                 N/A      1 (null)               (Priority)
                14   default   job.sh    alice PD                 N/A      1 (null)               (JobHeldUser)
",
    );
    check(
        &jobs,
        "--start -h -o %i|%S|%e|%Y",
        "15|2026-11-23T10:40:00|2026-11-23T11:40:00|node[01-04]\n13|N/A|N/A|(null)\n14|N/A|N/A|(null)\n",
    );
    // Sorted by start time, still.
    check(&jobs, "--start -t R -h -o %i", "12\n11\n");
}

use super::*;
use crate::format::fixtures::{at, ended, job, running, step, NOW};
use gangway_api::slurm::SlurmJobState::*;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// sacct's output for `line` over `jobs`, run by `uid` at `NOW`.
fn sacct_as(jobs: &[SlurmJob], line: &str, uid: u32) -> Output {
    match parse_sacct_args(&args(line), NOW) {
        Ok(o) => render_sacct(jobs, &o, uid, NOW),
        Err(e) => e,
    }
}

fn check(jobs: &[SlurmJob], line: &str, expected: &str) {
    let out = sacct_as(jobs, line, 1000);
    assert_eq!(out.stdout, expected, "sacct {line}\nstderr: {}", out.stderr);
    assert_eq!(out.code, 0);
}

fn check_err(line: &str, expected: &str) {
    let out = sacct_as(&[], line, 1000);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.code), ("", expected, 1), "sacct {line}");
}

fn history() -> Vec<SlurmJob> {
    let mut cancelled = ended(22, &["node01"], 5, 100, Cancelled, 0);
    cancelled.signal = Some(15);
    let mut failed = ended(21, &["node01", "node02"], 125, 200, Failed, 3);
    failed.num_cpus = 8;
    failed.name = "a-rather-long-name".into();
    failed.max_rss_kib = Some(2156);
    let mut other = ended(30, &["node03"], 1, 50, Completed, 0);
    other.user = "bob".into();
    other.uid = 1001;
    let mut yesterday = ended(5, &["node01"], 60, 40_000, Completed, 0);
    yesterday.submit_time = at(-41_000);
    yesterday.eligible_time = Some(at(-41_000));
    vec![
        ended(20, &["node01"], 65, 300, Completed, 0),
        failed,
        cancelled,
        running(23, &["node02"], 30),
        job(24),
        other,
        yesterday,
    ]
}

#[test]
fn default_columns_with_batch_steps() {
    check(
        &history(),
        "",
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode 
------------ ---------- ---------- ---------- ---------- ---------- -------- 
20               job.sh    default                     1  COMPLETED      0:0 
20.batch          batch                                1  COMPLETED      0:0 
21           a-rather-+    default                     8     FAILED      3:0 
21.batch          batch                                8     FAILED      3:0 
22               job.sh    default                     1 CANCELLED+     0:15 
22.batch          batch                                1  CANCELLED     0:15 
23               job.sh    default                     1    RUNNING      0:0 
23.batch          batch                                1    RUNNING      0:0 
24               job.sh    default                     0    PENDING      0:0 
",
    );
}

#[test]
fn parsable_forms_scripts_use() {
    let jobs = history();
    check(&jobs, "-n -P -X --format=JobID,State,ExitCode -j 20", "20|COMPLETED|0:0\n");
    check(&jobs, "-n -p -X --format=JobID,State,ExitCode -j 20", "20|COMPLETED|0:0|\n");
    check(&jobs, "-P -X -o jobid,state -j 22", "JobID|State\n22|CANCELLED by 1000\n");
    check(&jobs, "-nPX --format=JobID,State -j 22", "22|CANCELLED by 1000\n");
    check(
        &jobs,
        "-n -P --format=JobID,JobName,State,ExitCode -j 21",
        "21|a-rather-long-name|FAILED|3:0\n21.batch|batch|FAILED|3:0\n",
    );
    check(&jobs, "-n -P -X --delimiter=, --format=JobID,NNodes,NodeList -j 21", "21,2,node[01-02]\n");
    check(&jobs, "-n -P -X -b -j 21", "21|FAILED|3:0\n");
    check(&jobs, "-n -P -X -j 20 --format=Elapsed,ElapsedRaw,Timelimit,TimelimitRaw", "00:01:05|65|01:00:00|60\n");
    check(
        &jobs,
        "-n -P -X -j 20 --format=Submit,Start,End,Eligible",
        "2026-11-23T09:30:00|2026-11-23T09:33:55|2026-11-23T09:35:00|2026-11-23T09:30:00\n",
    );
    check(
        &jobs,
        "-n -P -X -j 24 --format=Start,End,NodeList,Elapsed,State",
        "Unknown|Unknown|None assigned|00:00:00|PENDING\n",
    );
    check(&jobs, "-n -P -j 21 --format=JobID,MaxRSS", "21|\n21.batch|2.11M\n");
    check(
        &jobs,
        "-n -P -X -j 21 --format=User,UID,GID,Account,QOS,ReqMem,AllocCPUS,ReqNodes,WorkDir",
        "alice|1000|1000||normal|0|8|2|/home/alice\n",
    );
    check(&jobs, "-n -P -X -j 23 --format=End,Elapsed", "Unknown|00:00:30\n");
}

#[test]
fn field_names_and_widths() {
    let jobs = history();
    check(
        &jobs,
        "-X -j 21 --format=JobName%20,State%-8",
        "             JobName State    \n-------------------- -------- \n  a-rather-long-name FAILED   \n",
    );
    check(&jobs, "-n -X -j 21 -o jobid%4,exit", "  21      3:0 \n"); // a %N width right-justifies, as in sacct
    check(&jobs, "-n -P -X -j 21 --format=JOBIDRAW,jobname,STATE", "21|a-rather-long-name|FAILED\n");
    // Prefixes match the first field in sacct's table order.
    check(&jobs, "-n -P -X -j 20 --format=elap,Time", "00:01:05|01:00:00\n");
    check_err("--format=Bogus", "sacct: error: Invalid field requested: \"Bogus\"\n");
    check_err("--format=JobID%x", "sacct: error: Invalid field requested: \"JobID%x\"\n");
}

#[test]
fn which_jobs() {
    let jobs = history();
    // Default: today's jobs of the caller (not bob's, not yesterday's).
    check(&jobs, "-n -P -X -o jobid", "20\n21\n22\n23\n24\n");
    check(&jobs, "-n -P -X -o jobid -a", "20\n21\n22\n23\n24\n30\n");
    assert_eq!(sacct_as(&jobs, "-n -P -X -o jobid", 0).stdout, "20\n21\n22\n23\n24\n30\n"); // root sees all
    check(&jobs, "-n -P -X -o jobid -u bob", "30\n");
    check(&jobs, "-n -P -X -o jobid -j 5", "5\n"); // -j: no time window
    check(&jobs, "-n -P -X -o jobid -S 2026-11-22 -E now", "5\n20\n21\n22\n23\n24\n");
    check(&jobs, "-n -P -X -o jobid -S now-3minutes", "22\n23\n24\n"); // ended before: out
    check(&jobs, "-n -P -X -o jobid -s CD,CA", "20\n22\n");
    check(&jobs, "-n -P -X -o jobid --state=failed", "21\n");
    check(&jobs, "-n -P -X -o jobid -r nope", "");
    check(&jobs, "-n -P -X -o jobid --name job.sh -s R,PD", "23\n24\n");
    check(&jobs, "-n -P -X -o jobid -j 999", ""); // unknown: nothing, no error
}

#[test]
fn arrays() {
    let mut e = ended(41, &["node01"], 5, 10, Completed, 0);
    e.array_job_id = Some(40);
    e.array_task_id = Some(1);
    check(&[e.clone()], "-n -P -o jobid,jobidraw -j 40", "40_1|41\n40_1.batch|41.batch\n");
    check(&[e.clone()], "-n -P -X -o jobid -j 40_1", "40_1\n");
    // The last element keeps the array's own id, as in Slurm; elements still list by index.
    let mut last = job(40);
    last.array_job_id = Some(40);
    last.array_task_id = Some(2);
    check(&[last, e], "-n -P -X -o jobid,jobidraw -j 40", "40_1|41\n40_2|40\n");
}

#[test]
fn bad_command_lines() {
    check_err("--foo", "sacct: unrecognized option '--foo'\nTry \"sacct --help\" for more information\n");
    check_err("-S yesterdayish", "sacct: error: Invalid time specification: yesterdayish\n");
    check_err("-s bogus", "sacct: error: Invalid job state specified: bogus\nsacct: error: Valid job states include: PENDING,RUNNING,COMPLETED,FAILED,CANCELLED,TIMEOUT,NODE_FAIL,COMPLETING,SUSPENDED,BOOT_FAIL,DEADLINE,OUT_OF_MEMORY,PREEMPTED,CONFIGURING,RESIZING,REQUEUED,REQUEUE_FED,REQUEUE_HOLD,REVOKED,SPECIAL_EXIT\n");
    check_err("-j x", "sacct: error: Invalid job id: x\n");
    check_err("stray", "sacct: error: Unknown arguments: stray\n");
}

proptest::proptest! {
    #[test]
    fn never_panics(line in proptest::collection::vec("(-[a-zA-Z]{1,3}|--[a-z]{1,9}|[A-Za-z]{1,8}(%-?[0-9]{1,3})?|now-[0-9]h)", 0..6)) {
        let _ = sacct_as(&history(), &line.join(" "), 1000);
    }

    /// Any field list of known names with widths prints lines exactly as wide as the widths say.
    #[test]
    fn widths_hold(fields in proptest::collection::vec((proptest::sample::select(vec!["JobID", "JobName", "State", "ExitCode", "Elapsed", "NodeList", "Start"]), -30i32..30), 1..6)) {
        let list: Vec<String> = fields.iter().map(|(n, w)| if *w == 0 { n.to_string() } else { format!("{n}%{w}") }).collect();
        let o = parse_sacct_args(&args(&format!("-X -a --format={}", list.join(","))), NOW).unwrap();
        let out = render_sacct(&history(), &o, 1000, NOW);
        let width: usize = o.fields.iter().map(|f| f.width.unsigned_abs() as usize + 1).sum();
        for line in out.stdout.lines() {
            proptest::prop_assert_eq!(line.chars().count(), width);
        }
    }
}

#[test]
fn srun_steps_follow_the_batch_step() {
    let mut j = ended(21, &["node01", "node02"], 125, 200, Failed, 3);
    let mut solver = step(1, "solver", &["node02"], 1, 310, Some((110, 3)));
    solver.cpus = 2;
    j.steps = vec![step(0, "hostname", &["node01", "node02"], 4, 320, Some((2, 0))), solver];
    check(
        &[j.clone()],
        "-n -P -j 21 --format=JobID,JobName,State,ExitCode,NNodes,NodeList,NTasks,AllocCPUS,Elapsed",
        "21|job.sh|FAILED|3:0|2|node[01-02]||1|00:02:05\n\
         21.batch|batch|FAILED|3:0|1|node01|1|1|00:02:05\n\
         21.0|hostname|COMPLETED|0:0|2|node[01-02]|4|4|00:00:02\n\
         21.1|solver|FAILED|3:0|1|node02|1|2|00:01:50\n",
    );
    check(&[j], "-n -P -X -j 21 --format=JobID", "21\n");
}

#[test]
fn duplicates_show_a_requeued_jobs_earlier_runs_first() {
    let mut requeued = ended(20, &["node02"], 65, 300, Completed, 0);
    requeued.restarts = 1;
    requeued.earlier_runs = vec![gangway_api::slurm::SlurmRun {
        state: NodeFail,
        start_time: Some(at(-400)),
        end_time: Some(at(-390)),
        nodes: vec!["node01".into()],
        exit_code: None,
    }];
    let jobs = vec![requeued];
    let line = "-n -P -X --format=JobID,State,NodeList,Restarts -j 20";
    check(&jobs, line, "20|COMPLETED|node02|1\n");
    check(&jobs, &format!("-D {line}"), "20|NODE_FAIL|node01|1\n20|COMPLETED|node02|1\n");
}

//! Slurm's read commands on a real cluster: jobs submitted with `sbatch`, then read back
//! with `squeue`, `sacct`, `sinfo` and `scontrol show` through the `gangway-slurm` binary,
//! with the `-o`/`--format` strings scripts use to parse them, and Slurm's errors.

use std::process::{Command, Output};
use std::time::Duration;

use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{bin, wait_for, Cluster, Options};

/// A two-node cluster (pool `default`, 2 slots a node) and a directory to submit from.
struct Slurm {
    /// Kept for its lifetime: dropping it stops the cluster.
    _cluster: Cluster,
    door: SlurmFrontDoor,
}

impl Slurm {
    fn start() -> Slurm {
        let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
        let door = SlurmFrontDoor::new(cluster.config.clone());
        Slurm { _cluster: cluster, door }
    }

    /// `gangway-slurm COMMAND ARGS…` against this cluster.
    fn run(&self, command: &str, args: &[&str]) -> Output {
        self.door.run(command, args)
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, command: &str, args: &[&str]) -> String {
        let out = self.run(command, args);
        assert!(out.status.success(), "{command} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sbatch --parsable ARGS…`: the job id, as scripts read it.
    fn sbatch(&self, args: &[&str]) -> String {
        let mut all = vec!["--parsable", "-o", "/dev/null"];
        all.extend_from_slice(args);
        self.ok("sbatch", &all).trim().to_string()
    }

    /// Polls `squeue -h -o %T -j ID` until it prints `state`.
    fn wait_state(&self, id: &str, state: &str) {
        wait_for(Duration::from_secs(30), &format!("job {id} to be {state}"), || {
            (self.ok("squeue", &["-h", "-o", "%T", "-j", id]).trim() == state).then_some(())
        });
    }

    /// The reference scripts' wait: `while squeue -h -j ID | grep -q .; do sleep; done`.
    fn wait_gone(&self, id: &str) {
        wait_for(Duration::from_secs(30), &format!("job {id} to leave the queue"), || {
            self.ok("squeue", &["-h", "-j", id]).is_empty().then_some(())
        });
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn squeue_and_sacct_parse_with_the_formats_scripts_use() {
    let s = Slurm::start();
    let long = s.sbatch(&["-J", "a-long-job-name", "--wrap", "sleep 60"]);
    let failing = s.sbatch(&["--wrap", "exit 3"]);
    let fine = s.sbatch(&["--wrap", "true"]);
    s.wait_state(&long, "RUNNING");
    s.wait_gone(&failing);
    s.wait_gone(&fine);

    // squeue: one-field formats, the default columns, JSON.
    assert_eq!(s.ok("squeue", &["-h", "-o", "%i,%t", "-j", &long]), format!("{long},R\n"));
    assert_eq!(
        s.ok("squeue", &["--noheader", "--format=%i %j %u %P", "-j", &long]).split(' ').nth(1),
        Some("a-long-job-name")
    );
    let table = s.ok("squeue", &[]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)")
    );
    let row = lines.next().expect("a row for the running job");
    assert!(row.starts_with(&format!("{long:>18}   default a-long-j ")), "{row:?}");
    assert!(row.contains("  R ") && (row.ends_with(" node1") || row.ends_with(" node2")), "{row:?}");
    assert_eq!(lines.next(), None, "ended jobs are not listed: {table}");
    let json: serde_json::Value = serde_json::from_str(&s.ok("squeue", &["--json", "-j", &long])).expect("json");
    assert_eq!(json["jobs"][0]["job_state"], "RUNNING");
    assert_eq!(json["jobs"][0]["job_id"].to_string(), long);
    // Ended jobs are known for a while, and shown when asked for by state.
    assert_eq!(s.ok("squeue", &["-h", "-t", "all", "-o", "%i %T", "-j", &fine]), format!("{fine} COMPLETED\n"));

    // sacct: the parsable forms, the batch step line, widths.
    let sacct = |id: &str| s.ok("sacct", &["-n", "-P", "-X", "--format=JobID,State,ExitCode", "-j", id]);
    assert_eq!(sacct(&failing), format!("{failing}|FAILED|3:0\n"));
    assert_eq!(sacct(&fine), format!("{fine}|COMPLETED|0:0\n"));
    assert_eq!(
        s.ok("sacct", &["-n", "-P", "--format=JobID,JobName,State", "-j", &fine]),
        format!("{fine}|wrap|COMPLETED\n{fine}.batch|batch|COMPLETED\n")
    );
    assert_eq!(s.ok("sacct", &["-n", "-p", "-X", "-o", "jobid,nnodes", "-j", &fine]), format!("{fine}|1|\n"));
    let wide = s.ok("sacct", &["-X", "--format=JobID,JobName%20,State", "-j", &long]);
    let expected = format!(
        "{:<12} {:>20} {:>10} \n{} {} {} \n{long:<12} {:>20} {:>10} \n",
        "JobID",
        "JobName",
        "State",
        "-".repeat(12),
        "-".repeat(20),
        "-".repeat(10),
        "a-long-job-name",
        "RUNNING"
    );
    assert_eq!(wide, expected);
    let elapsed = s.ok("sacct", &["-n", "-P", "-X", "--format=Elapsed,Start,End", "-j", &fine]);
    let fields: Vec<&str> = elapsed.trim().split('|').collect();
    assert_eq!(fields.len(), 3, "{elapsed}");
    assert!(fields[0].len() == 8 && fields[0].starts_with("00:00:"), "{elapsed}");
    assert!(fields[1].len() == 19 && fields[1].contains('T'), "{elapsed}");

    // scancel, then the state scripts see.
    s.ok("scancel", &[&long]);
    s.wait_gone(&long);
    let cancelled = s.ok("sacct", &["-n", "-P", "-X", "-o", "State", "-j", &long]);
    assert!(cancelled.starts_with("CANCELLED by "), "{cancelled}");

    // Slurm's errors.
    let unknown = s.run("squeue", &["-h", "-j", "999999"]);
    assert_eq!(
        (unknown.status.code(), stderr(&unknown)),
        (Some(1), "slurm_load_jobs error: Invalid job id specified\n".into())
    );
    let bad = s.run("squeue", &["--foo"]);
    assert_eq!(
        (bad.status.code(), stderr(&bad)),
        (Some(1), "squeue: unrecognized option '--foo'\nTry \"squeue --help\" for more information\n".into())
    );
    assert_eq!(s.ok("sacct", &["-n", "-P", "-X", "-j", "999999"]), "");
}

#[test]
fn sinfo_and_scontrol_show() {
    let s = Slurm::start();
    let id = s.sbatch(&["--wrap", "true"]);
    s.wait_gone(&id);

    assert_eq!(s.ok("sinfo", &["-h", "-o", "%P %D %t"]), "default* 2 idle\n");
    assert_eq!(s.ok("sinfo", &["-N", "-h", "-o", "%N %T"]), "node1 IDLE\nnode2 IDLE\n");
    let table = s.ok("sinfo", &[]);
    assert_eq!(table.lines().next(), Some("PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST"));
    assert_eq!(table.lines().nth(1), Some("default*     up   infinite      2   idle node[1-2]"));
    let long = s.ok("sinfo", &["-N", "-l"]);
    assert_eq!(
        long.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).as_deref(),
        Some("NODELIST NODES PARTITION STATE CPUS S:C:T MEMORY TMP_DISK WEIGHT AVAIL_FE REASON")
    );

    let job = s.ok("scontrol", &["show", "job", &id]);
    assert!(job.starts_with(&format!("JobId={id} JobName=wrap\n")), "{job}");
    assert!(job.contains("\n   JobState=COMPLETED Reason=None Dependency=(null)\n"), "{job}");
    assert!(job.contains(" ExitCode=0:0\n"), "{job}");
    let one = s.ok("scontrol", &["-o", "show", "job", &id]);
    assert_eq!(one.lines().count(), 1);
    let node = s.ok("scontrol", &["show", "node", "node1"]);
    assert!(node.starts_with("NodeName=node1 "), "{node}");
    assert!(node.contains("\n   State=IDLE "), "{node}");
    let part = s.ok("scontrol", &["show", "partition", "default"]);
    assert!(part.starts_with("PartitionName=default\n"), "{part}");
    assert!(part.contains("\n   Nodes=node[1-2]\n"), "{part}");

    let unknown = s.run("scontrol", &["show", "job", "999999"]);
    assert_eq!(
        (unknown.status.code(), stderr(&unknown)),
        (Some(1), "slurm_load_jobs error: Invalid job id specified\n".into())
    );
    let unknown = s.run("scontrol", &["show", "node", "nope"]);
    assert_eq!((unknown.status.code(), stderr(&unknown)), (Some(1), "Node nope not found\n".into()));
    // The hostlist commands still work without asking the head.
    assert_eq!(s.ok("scontrol", &["show", "hostnames", "n[1-2]"]), "n1\nn2\n");
}

#[test]
fn gangway_slurm_runs_the_slurm_commands_with_their_exit_codes() {
    let run = |args: &[&str]| Command::new(bin("gangway")).arg("slurm").args(args).output().expect("gangway slurm");
    let out = run(&["scontrol", "show", "hostlist", "n1,n2,n3,n7"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n[1-3,7]\n");
    let out = run(&["squeue", "--foo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("squeue: unrecognized option '--foo'"));
    // Slurm 22.05's words and exit codes for mistakes on the command line (read off a real
    // one): sbatch, srun and salloc exit 255, the query and control commands 1.
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["srun", "--foo", "true"],
            255,
            "srun: unrecognized option '--foo'\nTry \"srun --help\" for more information\n",
        ),
        (
            &["salloc", "--foo"],
            255,
            "salloc: unrecognized option '--foo'\nTry \"salloc --help\" for more information\n",
        ),
        (
            &["sbatch", "--foo", "--wrap", "true"],
            255,
            "sbatch: unrecognized option '--foo'\nTry \"sbatch --help\" for more information\n",
        ),
        (
            &["scancel", "--foo"],
            1,
            "scancel: unrecognized option '--foo'\nTry \"scancel --help\" for more information\n",
        ),
        (&["scontrol", "bogus"], 1, "invalid keyword: bogus\n"),
        (&["scontrol", "show", "bogus"], 1, "invalid entity:bogus for keyword:show \n"),
    ];
    for (args, code, said) in cases {
        let out = run(args);
        assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stderr).as_ref()), (Some(code), said), "{args:?}");
    }
}

#[test]
fn srun_outside_an_allocation_gets_one_and_relays_the_step() {
    let s = Slurm::start();
    let out = s.run("srun", &["-n", "2", "-l", "-J", "outside", "sh", "-c", "echo out $SLURM_PROCID; echo err >&2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["0: out 0", "1: out 1"]);
    assert_eq!(stderr(&out).lines().filter(|l| l.ends_with("err")).count(), 2, "{}", stderr(&out));
    // The allocation was a job of its own, named by -J, and it ends (srun returns with the
    // step; the allocation is given back a moment later).
    let ended = || {
        let acct = s.ok("sacct", &["-n", "-P", "-X", "--format=JobName,State,ExitCode"]);
        acct.lines().any(|l| l == "outside|COMPLETED|0:0").then_some(())
    };
    wait_for(Duration::from_secs(20), "the allocation to end", ended);
    // The step's exit code is srun's; the relay files are gone.
    let out = s.run("srun", &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(s.door.work())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".gangway-srun"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Refused allocations say so and queue nothing.
    let out = s.run("srun", &["-p", "nosuch", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("srun: error:"), "{}", stderr(&out));
}

#[test]
fn a_job_past_min_job_age_leaves_squeue_and_scontrol_but_stays_in_sacct_across_a_restart() {
    let head_args = vec!["--min-job-age".into(), "1s".into()];
    let mut cluster = Cluster::start(Options { nodes: 1, head_args, ..Options::default() });
    let door = SlurmFrontDoor::new(cluster.config.clone());
    let id = door.sbatch(&["-o", "/dev/null", "--wrap", "true"]);
    door.wait_end(id, Duration::from_secs(30));
    let mut c = cluster.client();
    // Purged from the head: scontrol says what Slurm says, squeue no longer lists it.
    wait_for(Duration::from_secs(20), "the job to be purged", || c.slurm_job(id).is_err().then_some(()));
    let show = door.run("scontrol", &["show", "job", &id.to_string()]);
    assert!(!show.status.success());
    assert!(String::from_utf8_lossy(&show.stderr).contains("Invalid job id specified"), "{}", stderr(&show));
    let queue = door.run("squeue", &["-h", "-t", "all", "-o", "%i"]);
    assert!(!String::from_utf8_lossy(&queue.stdout).lines().any(|l| l.trim() == id.to_string()));
    assert_eq!(c.get_job(&id.to_string()).unwrap_err().status(), Some(404), "it left the head's memory");
    // sacct finds it in the store's history, before and after a head restart.
    for when in ["purged", "after a restart"] {
        let acct = door.run("sacct", &["-n", "-X", "-P", "-o", "JobID,State,ExitCode", "-j", &id.to_string()]);
        assert_eq!(
            String::from_utf8_lossy(&acct.stdout).trim(),
            format!("{id}|COMPLETED|0:0"),
            "{when}: {}",
            stderr(&acct)
        );
        if when == "purged" {
            cluster.kill_head();
            cluster.start_head();
        }
    }
}

//! Priority and fairness on a real cluster: fair share between real users (an admin submits
//! for them with `sbatch --uid`), Slurm's limits on running jobs with their pending reason, and
//! what `sprio`, `sshare` and `squeue` show.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::users::TestUser;
use gangway_tests::{wait_for, Cluster, Options};

fn text(out: &std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-node, one-slot cluster (jobs run one at a time) with `head_args`.
fn serial_cluster(head_args: &[&str]) -> (Cluster, SlurmFrontDoor) {
    let cluster = Cluster::start(Options {
        nodes: 1,
        slots: 1,
        head_args: head_args.iter().map(|a| a.to_string()).collect(),
        ..Options::default()
    });
    // Users' tasks pass through the test's directory to their task directories.
    std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    (cluster, slurm)
}

#[test]
fn the_user_who_used_less_runs_first_and_sprio_and_sshare_show_why() {
    let (alice, bob) = (TestUser::create("fa"), TestUser::create("fb"));
    let (mut cluster, slurm) = serial_cluster(&[
        "--priority",
        "PriorityCalcPeriod=1s",
        "--priority",
        "PriorityWeightFairshare=10000",
        "--priority",
        "PriorityWeightAge=1000",
    ]);
    let as_user = |user: &TestUser, wrap: &str| {
        slurm.sbatch(&["--uid", &user.name, "-D", "/tmp", "-o", "/dev/null", "--wrap", wrap])
    };
    let a = as_user(&alice, "sleep 3");
    wait_for(Duration::from_secs(10), "alice's first job to start", || {
        let q = text(&slurm.run("squeue", &["-h", "-j", &a.to_string(), "-o", "%t"]));
        (q.trim() == "R").then_some(())
    });
    // Alice's second job is older than Bob's, and both wait for the node.
    let b = as_user(&alice, "true");
    let c = as_user(&bob, "true");
    // Once priorities are recalculated with Alice's usage, Bob's job ranks first.
    let rows = wait_for(Duration::from_secs(10), "sprio to rank bob's job first", || {
        let out = text(&slurm.run("sprio", &["-h", "-o", "%i %u %Y %F"]));
        let rows: Vec<Vec<String>> = out.lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
        let prio = |id: u64| rows.iter().find(|r| r[0] == id.to_string()).map(|r| r[2].parse::<i64>().unwrap());
        (prio(c)? > prio(b)?).then_some(rows)
    });
    let row_of = |id: u64| rows.iter().find(|r| r[0] == id.to_string()).unwrap().clone();
    assert_eq!(row_of(b)[1], alice.name);
    assert_eq!(row_of(c)[1], bob.name);
    assert!(row_of(c)[3].parse::<i64>().unwrap() > row_of(b)[3].parse::<i64>().unwrap(), "{rows:?}");
    let header = text(&slurm.run("sprio", &[]));
    assert!(header.starts_with("          JOBID PARTITION   PRIORITY        AGE  FAIRSHARE\n"), "{header}");
    // sshare -a: both users under the default account, Alice with usage and the smaller factor.
    let shares = text(&slurm.run("sshare", &["-a", "-P", "-h"]));
    let user_row = |name: &str| -> Vec<String> {
        let line = shares.lines().find(|l| l.split('|').nth(1) == Some(name)).unwrap_or_else(|| panic!("{shares}"));
        line.split('|').map(String::from).collect()
    };
    let (ra, rb) = (user_row(&alice.name), user_row(&bob.name));
    assert_eq!(ra[0], "default");
    assert!(ra[4].parse::<u64>().unwrap() >= 1, "alice used the node for a second or more: {shares}");
    assert_eq!(rb[4], "0");
    assert!(ra[6].parse::<f64>().unwrap() < rb[6].parse::<f64>().unwrap(), "{shares}");
    // A user sees only their own usage (and the accounts'), whatever -a says.
    let as_alice = std::process::Command::new(gangway_tests::bin("gangway-slurm"))
        .args(["sshare", "-a", "-P", "-h"])
        .uid(alice.uid)
        .gid(alice.gid)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("GANGWAY_STATE_DIR", cluster.state_dir())
        .current_dir("/")
        .output()
        .unwrap();
    let mine = text(&as_alice);
    assert!(mine.contains(&alice.name) && !mine.contains(&bob.name), "{mine}");
    // The node runs Bob's job before Alice's second.
    let (jb, jc) = (slurm.wait_end(b, Duration::from_secs(20)), slurm.wait_end(c, Duration::from_secs(20)));
    assert!(jc.start_time.unwrap() <= jb.start_time.unwrap(), "bob's job started first: {jc:?} {jb:?}");
    // Usage outlives the head: it is stored with every recalculation.
    std::thread::sleep(Duration::from_millis(1500));
    cluster.kill_head();
    cluster.start_head();
    let after = text(&slurm.run("sshare", &["-a", "-P", "-h", "-u", &alice.name]));
    let usage: u64 =
        after.lines().find_map(|l| l.split('|').nth(4).filter(|_| l.contains(&alice.name))).unwrap().parse().unwrap();
    assert!(usage >= 1, "alice's usage after a head restart: {after}");
}

#[test]
fn a_user_at_max_jobs_waits_with_slurms_reason_and_nice_lowers_priority() {
    let (_cluster, slurm) = serial_cluster(&["--limit", "MaxJobsPerUser=1"]);
    // Two slots' worth of work would run at once on a bigger node; here the limit is what holds.
    let first = slurm.sbatch(&["-o", "/dev/null", "--wrap", "sleep 2"]);
    let second = slurm.sbatch(&["-o", "/dev/null", "--nice=50", "--wrap", "true"]);
    let reason = wait_for(Duration::from_secs(10), "the second job's reason", || {
        let q = text(&slurm.run("squeue", &["-h", "-j", &second.to_string(), "-o", "%r %y"]));
        (!q.trim().is_empty()).then(|| q.trim().to_owned())
    });
    // One slot: the second job waits for the node and for the limit; the limit is named.
    assert_eq!(reason, "QOSMaxJobsPerUserLimit 50");
    let show = text(&slurm.run("scontrol", &["show", "job", &second.to_string()]));
    assert!(show.contains(" Nice=50 "), "{show}");
    assert!(show.contains("Reason=QOSMaxJobsPerUserLimit"), "{show}");
    slurm.wait_end(first, Duration::from_secs(20));
    let done = slurm.wait_end(second, Duration::from_secs(20));
    assert!(done.start_time.is_some());
    // A negative nice is an admin's: root may.
    let neg = slurm.run("sbatch", &["--parsable", "-o", "/dev/null", "--nice=-5", "--wrap", "true"]);
    assert!(neg.status.success(), "{}", String::from_utf8_lossy(&neg.stderr));
}

#[test]
fn bad_priority_and_limit_settings_are_refused_by_name() {
    let head = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new(gangway_tests::bin("gangway"))
            .arg("--state-dir")
            .arg(dir.path())
            .arg("head")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    for (args, words) in [
        (["--priority", "PriorityWeightAgee=5"], "unknown priority setting 'PriorityWeightAgee'"),
        (["--priority", "PriorityMaxAge=soon"], "PriorityMaxAge=soon: expected minutes"),
        (["--limit", "MaxTRESPerUser=cpu=x"], "MaxTRESPerUser=x: expected a whole number"),
        (["--limit", "MaxTRESPerUser=mem=4"], "unknown TRES 'mem'"),
        (["--share", "physics=0"], "shares must be a positive number"),
    ] {
        let out = head(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
    }
}

//! Users and ownership, with real Unix users (`useradd`, removed after): a user reaches the
//! head through its Unix socket with no secret file, the kernel names them, their jobs are
//! theirs, and another user can neither change them nor submit in their name.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use gangway_api::slurm::SlurmJobState;
use gangway_api::Owner;
use gangway_tests::users::TestUser;
use gangway_tests::{bin, Cluster, Options};

/// Runs `program ARGS…` as `user`, with only the head's state directory to find it by (its
/// `client.json` is the admin's; the user falls back to the socket there).
fn run_as(user: &TestUser, state: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(bin(program))
        .args(args)
        .uid(user.uid)
        .gid(user.gid)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("GANGWAY_STATE_DIR", state)
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("running {program} as {}: {e}", user.name))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sbatch --parsable --hold ARGS… --wrap true` as `user`: the job id.
fn sbatch_held(user: &TestUser, state: &Path, args: &[&str]) -> Result<u64, String> {
    let mut all = vec!["sbatch", "--parsable", "--hold"];
    all.extend_from_slice(args);
    all.extend(["--wrap", "true"]);
    let out = run_as(user, state, "gangway-slurm", &all);
    if !out.status.success() {
        return Err(stderr(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().expect("sbatch --parsable prints the id"))
}

#[test]
fn users_reach_the_head_by_its_socket_and_change_only_their_own_jobs() {
    let alice = TestUser::create("a");
    let bob = TestUser::create("b");
    let c = Cluster::start(Options { nodes: 1, ..Options::default() });
    // The test's temporary directory is root's alone; the head's state directory in it is
    // open to be passed through (0711), its secrets are not.
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let state = c.state_dir();
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o711);
    for private in ["client.json", "admin.token", "cluster.secret", "state.db"] {
        let mode = std::fs::metadata(state.join(private)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{private} is the head's alone");
    }
    let mut admin = c.client();

    // Alice submits through the socket; the job is hers.
    let job = sbatch_held(&alice, &state, &[]).expect("alice submits");
    let owner = admin.get_job(&job.to_string()).unwrap().owner;
    assert_eq!(owner, Some(Owner { uid: alice.uid, name: alice.name.clone() }));

    // Bob can see it, but not cancel, release or terminate it.
    let out = run_as(&bob, &state, "gangway-slurm", &["squeue", "-h", "-o", "%i %u"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{job} {}", alice.name));
    let out = run_as(&bob, &state, "gangway-slurm", &["scancel", &job.to_string()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("scancel: error: Kill job error on job id {job}: Access/permission denied")),
        "{}",
        stderr(&out)
    );
    let out = run_as(&bob, &state, "gangway-slurm", &["scontrol", "release", &job.to_string()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("Access/permission denied for job {job}")), "{}", stderr(&out));
    let out = run_as(&bob, &state, "gangway", &["job", "terminate", &job.to_string()]);
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(why.contains(&format!("not the owner of job {job} (it is {}'s)", alice.name)), "{why}");
    // Filters alone pass over another user's jobs without an error.
    let out = run_as(&bob, &state, "gangway-slurm", &["scancel", "-t", "PD"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let held = admin.slurm_job(job).unwrap();
    assert_eq!(held.state, SlurmJobState::Pending, "nothing bob did changed alice's job");

    // Bob sees that the job is alice's, not what it runs; she sees all of it.
    let show = |user: &TestUser| {
        let out = run_as(user, &state, "gangway", &["--json", "job", "show", &job.to_string()]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("job JSON")
    };
    let (hers, his) = (show(&alice), show(&bob));
    assert_eq!(hers["slurm"]["request"]["script"], "#!/bin/sh\n# This script was created by sbatch --wrap.\n\ntrue\n");
    assert_eq!(his["owner"]["name"], alice.name.as_str());
    assert_eq!(his["slurm"]["request"]["script"], "");
    assert!(hers["slurm"]["request"]["env"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(his["slurm"]["request"]["env"].as_array().is_some_and(|e| e.is_empty()));
    let out = run_as(&bob, &state, "gangway", &["task", "logs", &job.to_string(), "batch"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("only its owner or an admin may read its files"), "{}", stderr(&out));

    // Accounting is private: bob's sacct shows none of alice's jobs, even with -a; hers does.
    let sacct = |user: &TestUser| {
        let out = run_as(user, &state, "gangway-slurm", &["sacct", "-a", "-X", "-n", "-o", "JobID%20"]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(sacct(&alice), vec![job.to_string()]);
    assert!(sacct(&bob).is_empty(), "{:?}", sacct(&bob));

    // Nor can bob submit as alice; only an admin may name another user.
    let err = sbatch_held(&bob, &state, &["--uid", &alice.name]).expect_err("bob cannot submit as alice");
    assert!(err.contains("Batch job submission failed: Invalid user id"), "{err}");
    let err = sbatch_held(&bob, &state, &["--gid", &alice.gid.to_string()]).expect_err("nor in her group");
    assert!(err.contains("Invalid group id"), "{err}");
    assert_eq!(admin.slurm_jobs().unwrap().jobs.len(), 1, "a refused submission queues nothing");
    let out = run_as(&bob, &state, "gangway", &["pool", "delete", "default"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("only an admin may delete pools"), "{}", stderr(&out));

    // Root, an admin, submits in alice's name; alice cancels her own jobs.
    let root = Command::new(bin("gangway-slurm"))
        .args(["sbatch", "--parsable", "--hold", "--uid", &alice.name, "--wrap", "true"])
        .env("GANGWAY_URL", &c.config.url)
        .env("GANGWAY_TOKEN", &c.config.token)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(root.status.success(), "{}", stderr(&root));
    let second: u64 = String::from_utf8_lossy(&root.stdout).trim().parse().unwrap();
    assert_eq!(admin.get_job(&second.to_string()).unwrap().owner.map(|o| o.uid), Some(alice.uid));
    let out = run_as(&alice, &state, "gangway-slurm", &["scancel", &job.to_string(), &second.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in [job, second] {
        assert_eq!(admin.slurm_job(id).unwrap().state, SlurmJobState::Cancelled);
    }
}

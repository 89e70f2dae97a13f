//! Users and ownership, with real Unix users (`useradd`, removed after): a user reaches the
//! head through its Unix socket with no secret file, the kernel names them, their jobs are
//! theirs, and another user can neither change them nor submit in their name.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use gangway_api::slurm::SlurmJobState;
use gangway_api::{JobAddParameter, MpiSettings, Owner, TaskAddParameter, TaskState, UserIdentity};
use gangway_tests::users::TestUser;
use gangway_tests::{bin, Cluster, Options};

/// `program` set to run as `user` (their uid and group, none of the test's environment but
/// `PATH`), in `/`.
fn command_as(user: &TestUser, program: &str) -> Command {
    let mut c = Command::new(bin(program));
    c.uid(user.uid).gid(user.gid).env_clear().env("PATH", "/usr/bin:/bin").current_dir("/");
    c
}

/// Runs `program ARGS…` as `user`, with only the head's state directory to find it by (its
/// `client.json` is the admin's; the user falls back to the socket there).
fn run_as(user: &TestUser, state: &Path, program: &str, args: &[&str]) -> Output {
    command_as(user, program)
        .args(args)
        .env("GANGWAY_STATE_DIR", state)
        .output()
        .unwrap_or_else(|e| panic!("running {program} as {}: {e}", user.name))
}

/// A one-node cluster whose head users can reach: the test's temporary directory is root's
/// alone, so it is opened to be passed through (0711), as the head's state directory in it is.
fn users_cluster(opts: Options) -> (Cluster, std::path::PathBuf) {
    let c = Cluster::start(Options { nodes: 1, ..opts });
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let state = c.state_dir();
    (c, state)
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
    let (c, state) = users_cluster(Options::default());
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
        .env("GANGWAY_CA", c.config.ca.as_ref().unwrap())
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

/// A directory `user` owns (mode 0700) inside a fresh temporary directory others may pass.
fn home_for(user: &TestUser) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("gangway-user").tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn tasks_run_as_their_owner_and_open_files_with_the_owners_permissions() {
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;
    let alice = TestUser::create("c");
    let (c, state) = users_cluster(Options::default());
    let mut admin = c.client();
    let home = home_for(&alice);
    let own = home.path().join("own");
    // Root's: a directory alice cannot enter and a file she cannot write.
    let secret_dir = home.path().join("root-only");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::set_permissions(&secret_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut watcher = c.client();
    let mut ended = |id: u64| {
        gangway_tests::wait_for(Duration::from_secs(30), &format!("job {id} to end"), || {
            watcher.slurm_job(id).ok().filter(|j| j.state.is_finished())
        })
    };

    // A batch job runs as alice, with her login variables, and its output file is hers.
    let out = own.join("out.txt");
    let script = "id -u; id -g; echo \"$HOME $USER $LOGNAME\"; touch made-here";
    let args = ["--parsable", "-o", out.to_str().unwrap(), "-D", own.to_str().unwrap(), "--wrap", script];
    let run = run_as(&alice, &state, "gangway-slurm", &[&["sbatch"][..], &args[..]].concat());
    assert!(run.status.success(), "{}", stderr(&run));
    let job: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    assert_eq!(ended(job).state, SlurmJobState::Completed);
    let home_dir = gangway_api::users::passwd_entry(alice.uid).unwrap().home;
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, format!("{}\n{}\n{home_dir} {n} {n}\n", alice.uid, alice.gid, n = alice.name));
    for made in [&out, &own.join("made-here")] {
        let meta = std::fs::metadata(made).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (alice.uid, alice.gid), "{} is alice's", made.display());
    }

    // Her job's steps run as her too (srun finds the head through its socket).
    let out2 = own.join("steps.txt");
    let srun = format!("{} srun -n 2 id -u", bin("gangway-slurm").display());
    let args =
        ["sbatch", "--parsable", "-n", "2", "-o", out2.to_str().unwrap(), "-D", own.to_str().unwrap(), "--wrap", &srun];
    let run = run_as(&alice, &state, "gangway-slurm", &args);
    assert!(run.status.success(), "{}", stderr(&run));
    let job: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    let state_of = ended(job).state;
    let text = std::fs::read_to_string(&out2).unwrap();
    assert_eq!(state_of, SlurmJobState::Completed, "{text}");
    assert_eq!(text, format!("{0}\n{0}\n", alice.uid));

    // Her --output cannot name a file she may not write, nor -D a directory she may not
    // enter: the job fails and the file is untouched.
    let tries: [&[&str]; 2] = [&["-o", secret.to_str().unwrap()], &["-D", secret_dir.to_str().unwrap()]];
    for extra in tries {
        let mut all = vec!["sbatch", "--parsable"];
        all.extend_from_slice(extra);
        if extra[0] == "-D" {
            all.extend(["-o", out.to_str().unwrap()]);
        }
        all.extend(["--wrap", "echo overwritten"]);
        let run = run_as(&alice, &state, "gangway-slurm", &all);
        assert!(run.status.success(), "{}", stderr(&run));
        let id: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
        assert_eq!(ended(id).state, SlurmJobState::Failed, "{extra:?}");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s3cret\n");
    }

    // An Azure task of hers runs as her too; its task files are hers.
    let run = run_as(&alice, &state, "gangway", &["submit", "--job", "aj", "--wait", "--", "id", "-u"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let task = admin.list_tasks("aj", &Default::default()).unwrap().into_iter().next().expect("the task");
    let logs = run_as(&alice, &state, "gangway", &["task", "logs", "aj", &task.id]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout).trim(), alice.uid.to_string(), "{}", stderr(&logs));
    // Her task directory is read as her when its files are asked for: a file in it she could
    // not read herself (root's, 0600) is not served, to anyone.
    let task_dir = c.node_root(0).join("workitems/aj/job-1").join(&task.id);
    std::fs::write(task_dir.join("roots"), "root's\n").unwrap();
    std::fs::set_permissions(task_dir.join("roots"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let refused = admin.get_task_file("aj", &task.id, "roots", 0).unwrap_err().to_string();
    assert!(refused.contains("Permission denied"), "{refused}");
    assert_eq!(admin.get_task_file("aj", &task.id, "stdout.txt", 0).unwrap(), format!("{}\n", alice.uid).into_bytes());

    // Azure's userIdentity: an admin may run a task as alice, or as root (an admin auto-user);
    // alice may name only herself, and may not elevate.
    let admin_submit = |extra: &[&str]| {
        let out = Command::new(bin("gangway"))
            .args(["submit", "--wait"])
            .args(extra)
            .args(["--", "id", "-u"])
            .env("GANGWAY_STATE_DIR", &state)
            .env_remove("GANGWAY_URL")
            .env_remove("GANGWAY_CA")
            .env_remove("GANGWAY_SOCKET")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    admin_submit(&["--job", "ua", "--user", &alice.name]);
    admin_submit(&["--job", "ur", "--elevated"]);
    for (job, uid) in [("ua", alice.uid), ("ur", 0)] {
        let task = admin.list_tasks(job, &Default::default()).unwrap().into_iter().next().expect("the task");
        let run_as = task.run_as.as_ref().map(|o| o.uid);
        assert_eq!(run_as, Some(uid), "{job}");
        let logs = Command::new(bin("gangway"))
            .args(["task", "logs", job, &task.id])
            .env("GANGWAY_STATE_DIR", &state)
            .env_remove("GANGWAY_URL")
            .env_remove("GANGWAY_CA")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&logs.stdout).trim(), uid.to_string(), "{job}");
    }
    let run = run_as(&alice, &state, "gangway", &["submit", "--job", "ub", "--user", "root", "--", "true"]);
    assert!(!run.status.success());
    let why = stderr(&run);
    assert!(why.contains(&format!("{} may not run tasks as root", alice.name)), "{why}");
    let run = run_as(&alice, &state, "gangway", &["submit", "--job", "uc", "--elevated", "--", "true"]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("only an admin may run tasks with autoUser.elevationLevel admin"),
        "{}",
        stderr(&run)
    );
    let run =
        run_as(&alice, &state, "gangway", &["submit", "--job", "ud", "--user", &alice.name, "--wait", "--", "true"]);
    assert!(run.status.success(), "alice may name herself: {}", stderr(&run));

    // A file she stored reaches her task: the node runs her work, so it may fetch it.
    use std::os::unix::fs::PermissionsExt;
    let share = tempfile::tempdir().unwrap();
    std::fs::set_permissions(share.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let local = share.path().join("mine.txt");
    std::fs::write(&local, "alice's data\n").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = run_as(&alice, &state, "gangway", &["file", "put", &local.display().to_string()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let run = run_as(
        &alice,
        &state,
        "gangway",
        &["submit", "--job", "uf", "--file", "mine.txt", "--wait", "--", "cat", "mine.txt"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let task = admin.list_tasks("uf", &Default::default()).unwrap().into_iter().next().expect("the task");
    let logs = run_as(&alice, &state, "gangway", &["task", "logs", "uf", &task.id]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "alice's data\n", "{:?}", task.execution_info);

    // Open MPI's mpirun, its daemons and its ranks run as her, with no leave to run as root.
    let args = ["submit", "--job", "ao", "--ranks-per-node", "2", "--mpi", "openmpi", "--wait", "--"];
    let run = run_as(
        &alice,
        &state,
        "gangway",
        &[&args[..], &["sh", "-c", "id -u; env | grep -c '^OMPI_ALLOW_RUN_AS_ROOT' || true"]].concat(),
    );
    let task = admin.list_tasks("ao", &Default::default()).unwrap().into_iter().next().expect("the task");
    let logs = run_as(&alice, &state, "gangway", &["task", "logs", "ao", &task.id]);
    let out = String::from_utf8_lossy(&logs.stdout).into_owned();
    let errs = run_as(&alice, &state, "gangway", &["task", "logs", "ao", &task.id, "--stderr"]);
    let errs = String::from_utf8_lossy(&errs.stdout).into_owned();
    assert!(run.status.success(), "{}\n{out}\n{errs}\n{:?}", stderr(&run), task.execution_info);
    let uid = alice.uid.to_string();
    assert_eq!(out.lines().filter(|l| *l == uid).count(), 2, "{out}");
    assert_eq!(out.lines().filter(|l| *l == "0").count(), 2, "no OMPI_ALLOW_RUN_AS_ROOT: {out}");

    // So do the ranks of her MPI task, each appending to the task's output.
    let args = ["submit", "--job", "am", "--ranks-per-node", "2", "--wait", "--", "sh", "-c", "id -u"];
    let run = run_as(&alice, &state, "gangway", &args);
    assert!(run.status.success(), "{}", stderr(&run));
    let task = admin.list_tasks("am", &Default::default()).unwrap().into_iter().next().expect("the task");
    let logs = run_as(&alice, &state, "gangway", &["task", "logs", "am", &task.id]);
    let uid = alice.uid.to_string();
    assert_eq!(String::from_utf8_lossy(&logs.stdout).lines().collect::<Vec<_>>(), [&uid, &uid], "{}", stderr(&logs));
}

/// Runs `program ARGS…` as `user` over TCP with an API token only (as from another machine).
fn run_with_token(user: &TestUser, (url, ca): (&str, &Path), token: &str, program: &str, args: &[&str]) -> Output {
    command_as(user, program)
        .args(args)
        .env("GANGWAY_URL", url)
        .env("GANGWAY_CA", ca)
        .env("GANGWAY_TOKEN", token)
        .output()
        .unwrap_or_else(|e| panic!("running {program} as {}: {e}", user.name))
}

#[test]
fn api_tokens_act_as_their_owner_until_revoked_or_expired() {
    let alice = TestUser::create("d");
    let bob = TestUser::create("e");
    let (mut c, state) = users_cluster(Options::default());
    let url = c.config.url.clone();
    let ca = c.config.ca.clone().unwrap();
    let mut admin = c.client();

    // Alice makes a token through the socket; it is shown once and stored only hashed.
    let made = run_as(&alice, &state, "gangway", &["token", "create", "--name", "laptop"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let token = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert!(token.starts_with("gwt_"), "{token}");
    let secret = token.rsplit('_').next().unwrap().to_owned();
    let db = std::fs::read(state.join("state.db")).unwrap();
    let wal = std::fs::read(state.join("state.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is not stored");
    }

    // Over TCP, the token is alice: her submission is hers; it cannot submit as bob.
    let run = run_with_token(
        &alice,
        (&url, &ca),
        &token,
        "gangway-slurm",
        &["sbatch", "--parsable", "--hold", "--wrap", "true"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let job: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    assert_eq!(admin.get_job(&job.to_string()).unwrap().owner.map(|o| o.uid), Some(alice.uid));
    let run = run_with_token(&bob, (&url, &ca), &token, "gangway-slurm", &["sbatch", "--hold", "--wrap", "true"]);
    assert!(
        stderr(&run).contains("Invalid user id"),
        "bob holding alice's token still submits as alice: {}",
        stderr(&run)
    );

    // Application packages are the admins' to upload: alice's token may read, not write.
    let mut as_alice = gangway_api::client::Client::new(&gangway_api::client::ClientConfig {
        url: url.clone(),
        token: token.clone(),
        socket: None,
        munge: None,
        ca: Some(ca.clone()),
    })
    .unwrap();
    // Join tokens are the admins' to make.
    let r = as_alice.raw("POST", "/jointokens", Some(b"{}"), &[]).unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = as_alice.raw("PUT", "/applications/tool/versions/1", Some(&[0x1f, 0x8b, 0, 0][..]), &[]).unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("only an admin may upload application packages"));
    assert_eq!(as_alice.raw("GET", "/applications", None, &[]).unwrap().status, 200);

    // Tokens survive a head restart.
    c.kill_head();
    c.start_head();
    let mut admin = c.client();
    let run = run_with_token(&alice, (&url, &ca), &token, "gangway", &["job", "list"]);
    assert!(run.status.success(), "{}", stderr(&run));

    // Bob sees no token of hers and cannot revoke it; she can, and then it is refused.
    let id = admin.list_tokens().unwrap().into_iter().find(|t| t.owner.uid == alice.uid).expect("listed for admins").id;
    let listed = run_as(&bob, &state, "gangway", &["token", "list"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&id), "bob's list shows only his own");
    let out = run_as(&bob, &state, "gangway", &["token", "revoke", &id]);
    assert!(!out.status.success() && stderr(&out).contains(&format!("you have no token '{id}'")), "{}", stderr(&out));
    let listed = run_as(&alice, &state, "gangway", &["token", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("laptop"), "{}", stderr(&listed));
    let out = run_as(&alice, &state, "gangway", &["token", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_with_token(&alice, (&url, &ca), &token, "gangway", &["job", "list"]);
    assert!(stderr(&run).contains("the bearer token is not valid for this cluster"), "{}", stderr(&run));

    // A token with an expiry stops working then.
    let made = run_as(&alice, &state, "gangway", &["token", "create", "--expires", "1s"]);
    let short = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let run = run_with_token(&alice, (&url, &ca), &short, "gangway", &["job", "list"]);
    assert!(run.status.success(), "{}", stderr(&run));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = run_with_token(&alice, (&url, &ca), &short, "gangway", &["job", "list"]);
    assert!(stderr(&run).contains("token expired"), "{}", stderr(&run));
    let out = run_as(&alice, &state, "gangway", &["token", "create", "--expires", "0s"]);
    assert!(stderr(&out).contains("expiresIn must be a positive, finite duration"), "{}", stderr(&out));
}

#[test]
fn munge_credentials_name_the_user_once_and_forged_or_replayed_ones_are_refused() {
    let alice = TestUser::create("f");
    let munged = gangway_tests::users::Munged::start();
    let socket = munged.socket().to_string_lossy().into_owned();
    let opts = Options { nodes: 1, head_args: vec!["--munge-socket".into(), socket.clone()], ..Options::default() };
    let c = Cluster::start(opts);
    let mut admin = c.client();

    // Over TCP with no token, sbatch gets a MUNGE credential for each request: the job is alice's.
    let run = command_as(&alice, "gangway-slurm")
        .args(["sbatch", "--parsable", "--hold", "--wrap", "true"])
        .env("GANGWAY_URL", &c.config.url)
        .env("GANGWAY_CA", c.config.ca.as_ref().unwrap())
        .env("GANGWAY_MUNGE_SOCKET", &socket)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let job: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    assert_eq!(admin.get_job(&job.to_string()).unwrap().owner.map(|o| o.uid), Some(alice.uid));

    // A credential is good once; a forged one never.
    let cred = gangway_api::client::munge_credential(&socket).unwrap();
    let mut http = gangway_tests::tls::http(&c.config);
    let header = format!("Munge {cred}");
    let first = http.request("GET", "/jobs", &[("Authorization", &header)], None).unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let again = http.request("GET", "/jobs", &[("Authorization", &header)], None).unwrap();
    assert_eq!(again.status, 401);
    assert!(again.text().contains("MUNGE credential refused: Replayed credential"), "{}", again.text());
    let forged = http.request("GET", "/jobs", &[("Authorization", "Munge MUNGE:AAAAforged:")], None).unwrap();
    assert_eq!(forged.status, 401);
    assert!(forged.text().contains("MUNGE credential refused"), "{}", forged.text());
}

#[test]
fn stored_files_are_their_uploaders_and_tasks_get_only_their_users() {
    let alice = TestUser::create("g");
    let bob = TestUser::create("h");
    let (c, state) = users_cluster(Options::default());
    let mut admin = c.client();
    // Alice stores a file through the socket (she cannot read the head's store directly).
    let home = home_for(&alice);
    let local = home.path().join("own/data.txt");
    std::fs::write(&local, "alice's data\n").unwrap();
    std::os::unix::fs::chown(&local, Some(alice.uid), Some(alice.gid)).unwrap();
    let put = run_as(&alice, &state, "gangway", &["file", "put", local.to_str().unwrap()]);
    assert!(put.status.success(), "{}", stderr(&put));
    let listed = |user: &TestUser| {
        String::from_utf8_lossy(&run_as(user, &state, "gangway", &["file", "list"]).stdout).into_owned()
    };
    assert!(listed(&alice).contains("data.txt"));
    assert!(!listed(&bob).contains("data.txt"), "bob lists only his own files");
    assert!(admin.list_files().unwrap().is_empty(), "the admin's files are the head user's");
    let get = run_as(&bob, &state, "gangway", &["file", "delete", "data.txt"]);
    assert!(!get.status.success() && stderr(&get).contains("no file named 'data.txt'"), "{}", stderr(&get));

    // Her task gets it; bob's task naming the same file finds none of his.
    let run = run_as(
        &alice,
        &state,
        "gangway",
        &["submit", "--job", "fa", "--file", "data.txt", "--wait", "--", "cat", "data.txt"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let task = admin.list_tasks("fa", &Default::default()).unwrap().into_iter().next().unwrap();
    let logs = run_as(&alice, &state, "gangway", &["task", "logs", "fa", &task.id]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "alice's data\n");
    let run = run_as(
        &bob,
        &state,
        "gangway",
        &["submit", "--job", "fb", "--file", "data.txt", "--wait", "--", "cat", "data.txt"],
    );
    assert!(!run.status.success());
    let task = admin.list_tasks("fb", &Default::default()).unwrap().into_iter().next().unwrap();
    let failure = task.execution_info.failure_info.expect("bob's task failed");
    assert!(failure.message.contains("no file named 'data.txt' has been uploaded"), "{}", failure.message);
}

#[test]
fn a_job_gets_its_own_credential_instead_of_its_submitters_and_it_ends_with_the_job() {
    let c = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut admin = c.client();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out.txt");
    let srun = format!("{} srun -n 1 true", bin("gangway-slurm").display());
    // It may not outlive the job by making a token of its own.
    let mint = format!("{} token create 2>&1 | tail -1", bin("gangway").display());
    let script = format!("echo $GANGWAY_TOKEN; {srun}; {mint}");
    // Submitted with the admin token in the environment, which sbatch exports to the job.
    let run = Command::new(bin("gangway-slurm"))
        .args(["sbatch", "--parsable", "-o", out.to_str().unwrap(), "--wrap", &script])
        .env("GANGWAY_URL", &c.config.url)
        .env("GANGWAY_CA", c.config.ca.as_ref().unwrap())
        .env("GANGWAY_TOKEN", &c.config.token)
        .env_remove("GANGWAY_STATE_DIR")
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let job: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    let ended = gangway_tests::wait_for(std::time::Duration::from_secs(30), "the job to end", || {
        admin.slurm_job(job).ok().filter(|j| j.state.is_finished())
    });
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(ended.state, SlurmJobState::Completed, "its srun used the job's credential: {text}");
    let token = text.lines().next().unwrap_or_default().to_owned();
    assert!(token.starts_with(&format!("gwj_{job}_")), "{token}");
    assert!(text.contains("a job credential cannot create tokens"), "{text}");
    // What the head stored of the job holds no credential of the submitter's.
    let stored = admin.get_job(&job.to_string()).unwrap().slurm.unwrap().request.env;
    assert!(stored.iter().all(|(k, _)| k != "GANGWAY_TOKEN"), "{stored:?}");
    assert!(stored.iter().any(|(k, _)| k == "GANGWAY_URL"), "the rest of the environment stays");
    // The job's credential ended with it; a forged one never worked.
    let mut http = gangway_tests::tls::http(&c.config);
    let bearer = format!("Bearer {token}");
    let after = http.request("GET", "/jobs", &[("Authorization", &bearer)], None).unwrap();
    assert_eq!(after.status, 401);
    assert!(after.text().contains(&format!("job credential expired: job {job} has ended")), "{}", after.text());
    let forged = format!("Bearer gwj_{job}_{}", "0".repeat(64));
    let forged = http.request("GET", "/jobs", &[("Authorization", &forged)], None).unwrap();
    assert_eq!(forged.status, 401);
    assert!(forged.text().contains("the bearer token is not valid"), "{}", forged.text());
}

#[test]
fn munge_authenticated_sbatch_from_another_namespace_host() {
    use gangway_tests::netns::{available, NetCluster, NetOptions};
    assert!(available(), "the namespace tests need root and iproute2");
    let alice = TestUser::create("i");
    let munged = gangway_tests::users::Munged::start();
    let socket = munged.socket().to_string_lossy().into_owned();
    let opts = NetOptions { hosts: 1, head_args: vec!["--munge-socket".into(), socket.clone()], ..Default::default() };
    let cluster = NetCluster::start(opts);
    let ns = cluster.hosts[0].netns.clone();
    // sbatch on host1, as alice, over the network to the head, with only a MUNGE credential.
    let run = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["--setgid", &alice.gid.to_string(), "--setuid", &alice.uid.to_string(), "--"])
        .arg(bin("gangway-slurm"))
        .args(["sbatch", "--parsable", "--hold", "--wrap", "true"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("GANGWAY_URL", &cluster.config.url)
        .env("GANGWAY_CA", cluster.config.ca.as_ref().unwrap())
        .env("GANGWAY_MUNGE_SOCKET", &socket)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let job: u64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap();
    let owner = cluster.client().get_job(&job.to_string()).unwrap().owner;
    assert_eq!(owner, Some(Owner { uid: alice.uid, name: alice.name.clone() }));
}

#[test]
fn with_private_data_jobs_other_users_jobs_are_not_there_at_all() {
    let alice = TestUser::create("j");
    let bob = TestUser::create("k");
    let opts = Options { head_args: vec!["--private-data".into(), "jobs".into()], ..Options::default() };
    let (c, state) = users_cluster(opts);
    let job = sbatch_held(&alice, &state, &[]).expect("alice submits").to_string();
    let squeue = |user: &TestUser| {
        let out = run_as(user, &state, "gangway-slurm", &["squeue", "-h", "-o", "%i"]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(squeue(&alice), job);
    assert_eq!(squeue(&bob), "", "bob's squeue lists none of alice's jobs");
    let show = run_as(&bob, &state, "gangway-slurm", &["scontrol", "show", "job", &job]);
    assert!(!show.status.success() && stderr(&show).contains("Invalid job id specified"), "{}", stderr(&show));
    let rest = run_as(&bob, &state, "gangway", &["job", "show", &job]);
    assert!(
        !rest.status.success() && stderr(&rest).contains(&format!("job '{job}' does not exist")),
        "{}",
        stderr(&rest)
    );
    assert_eq!(c.client().list_jobs(&Default::default()).unwrap().len(), 1, "admins see every job");
}

#[test]
fn a_users_open_mpi_ranks_run_as_the_user_under_the_launchers_pmix_server() {
    use std::time::Duration;
    let alice = TestUser::create("k");
    let (c, _state) = users_cluster(Options { slots: 2, ..Options::default() });
    let mut admin = c.client();
    let home = home_for(&alice);
    // The program is root's and readable by all, in a directory alice may pass.
    let ranks = gangway_tests::compile_openmpi_ranks(home.path()).display().to_string();
    admin.add_job(&JobAddParameter { id: "mpi".into(), ..Default::default() }).unwrap();
    let task = TaskAddParameter {
        id: "ranks".into(),
        // Through a shell (so pmix is named) that says who runs it.
        command_line: format!("/bin/sh -c 'id -u; exec {ranks}'"),
        user_identity: Some(UserIdentity { user_name: Some(alice.name.clone()), auto_user: None }),
        mpi: Some(MpiSettings { ranks_per_node: 2, implementation: Some("pmix".into()), ..Default::default() }),
        ..Default::default()
    };
    admin.add_task("mpi", &task).unwrap();
    let t = gangway_tests::wait_for(Duration::from_secs(60), "the ranks to end", || {
        admin.get_task("mpi", "ranks").ok().filter(|t| t.state == TaskState::Completed)
    });
    let out = String::from_utf8(admin.get_task_file("mpi", "ranks", "stdout.txt", 0).unwrap()).unwrap();
    let err = String::from_utf8(admin.get_task_file("mpi", "ranks", "stderr.txt", 0).unwrap()).unwrap();
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{out}{err}", t.execution_info);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let uid = alice.uid.to_string();
    let want = [uid.as_str(), &uid, "rank=0 size=2 sum=3 local=2 host=node1", "rank=1 size=2 sum=3 local=2 host=node1"];
    assert_eq!(lines, want, "{err}");
}

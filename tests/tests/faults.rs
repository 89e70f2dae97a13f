//! Faults without loss: mutating calls carry a request id and are done once; clients wait
//! out a head restart instead of failing (issue 18, first part).

use std::time::Duration;

use gangway_api::client::REQUEST_ID_HEADER;
use gangway_api::JobAddParameter;
use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{Cluster, Options};

/// A held Slurm submission as sbatch sends one.
fn submission(name: &str) -> Vec<u8> {
    format!(
        r#"{{"name":"{name}","uid":0,"gid":0,"user":"root","script":"true","workDir":"/","submitDir":"/",
            "submitHost":"h","output":"o","nodes":1,"ntasks":1,"cpusPerTask":1,"hold":true}}"#
    )
    .into_bytes()
}

#[test]
fn a_repeated_request_id_gets_the_first_answer_and_a_misused_one_is_refused() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    let id = gangway_api::client::new_request_id();
    let post = |c: &mut gangway_api::client::Client, body: &[u8], id: &str| {
        c.raw("POST", "/slurm/jobs", Some(body), &[(REQUEST_ID_HEADER, id)]).unwrap()
    };
    let first = post(&mut c, &submission("a"), &id);
    assert_eq!(first.status, 200, "{}", first.text());
    let again = post(&mut c, &submission("a"), &id);
    assert_eq!((again.status, again.text()), (200, first.text()), "the repeat gets the first answer");
    assert_eq!(c.slurm_jobs().unwrap().jobs.len(), 1, "and no second job");

    let other = post(&mut c, &submission("b"), &id);
    assert_eq!(other.status, 409, "{}", other.text());
    assert!(other.text().contains(&format!("{REQUEST_ID_HEADER} {id} was already used for a different request")));
    let bad = post(&mut c, &submission("b"), "not-an-id");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("'not-an-id' is not a request id"), "{}", bad.text());
    assert_eq!(c.slurm_jobs().unwrap().jobs.len(), 1, "refused requests change nothing");

    // Azure's calls too: a repeated job add is the same add (not JobExists).
    let job = serde_json::to_vec(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    let id = gangway_api::client::new_request_id();
    let first = c.raw("POST", "/jobs", Some(&job), &[(REQUEST_ID_HEADER, &id)]).unwrap();
    let again = c.raw("POST", "/jobs", Some(&job), &[(REQUEST_ID_HEADER, &id)]).unwrap();
    assert_eq!((first.status, again.status), (201, 201), "{}", again.text());

    // A task collection's per-task results are remembered with the tasks they added.
    let tasks = serde_json::json!({"value": [{"id": "a", "commandLine": "true"}, {"id": "a", "commandLine": "true"}]});
    let tasks = serde_json::to_vec(&tasks).unwrap();
    let tid = gangway_api::client::new_request_id();
    let first = c.raw("POST", "/jobs/j/addtaskcollection", Some(&tasks), &[(REQUEST_ID_HEADER, &tid)]).unwrap();
    let again = c.raw("POST", "/jobs/j/addtaskcollection", Some(&tasks), &[(REQUEST_ID_HEADER, &tid)]).unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.text().contains("\"success\"") && first.text().contains("appears twice"), "{}", first.text());
    assert_eq!((again.status, again.text()), (200, first.text()), "not TaskExists the second time");

    // Ids are remembered durably: after a restart the repeat still gets the first answer.
    let mut cluster = cluster;
    cluster.kill_head();
    cluster.start_head();
    let mut c = cluster.client();
    let replay = c.raw("POST", "/jobs", Some(&job), &[(REQUEST_ID_HEADER, &id)]).unwrap();
    assert_eq!(replay.status, 201, "{}", replay.text());
}

#[test]
fn sbatch_waits_out_a_head_restart_and_no_submission_is_lost_or_doubled() {
    let mut cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let slurm = std::sync::Arc::new(SlurmFrontDoor::new(cluster.config.clone()));
    let n = 24;
    let submitters: Vec<_> = (0..n)
        .map(|i| {
            let slurm = slurm.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20 * i as u64));
                let name = format!("s{i}");
                slurm.run("sbatch", &["--parsable", "--hold", "-J", &name, "--wrap", "true"])
            })
        })
        .collect();
    // The head dies in the middle of the flood and is back 300 ms later.
    std::thread::sleep(Duration::from_millis(150));
    cluster.kill_head();
    std::thread::sleep(Duration::from_millis(300));
    cluster.start_head();
    let mut ids = Vec::new();
    for s in submitters {
        let out = s.join().unwrap();
        assert!(out.status.success(), "an sbatch failed: {}", String::from_utf8_lossy(&out.stderr));
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every sbatch got its own job: {ids:?}");
    let mut c = cluster.client();
    let mut names: Vec<String> = c.slurm_jobs().unwrap().jobs.into_iter().map(|j| j.name).collect();
    names.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    want.sort();
    assert_eq!(names, want, "each submission is queued exactly once");
}

/// Runs `bin ARGS…` with its standard output and error on `/dev/full` (every write fails with
/// ENOSPC) and no head to reach; returns how it ended.
fn with_full_output(bin: &str, args: &[&str]) -> std::process::ExitStatus {
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    std::process::Command::new(gangway_tests::bin(bin))
        .args(args)
        .env("GANGWAY_URL", "https://127.0.0.1:9")
        .env("GANGWAY_TOKEN", "x")
        .env("GANGWAY_MESSAGE_TIMEOUT", "0")
        .env_remove("GANGWAY_STATE_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(full())
        .stderr(full())
        .status()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"))
}

#[test]
fn writing_to_a_full_disk_crashes_no_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root").display().to_string();
    let cases: [(&str, &[&str]); 7] = [
        ("gangway-slurm", &["squeue"]),
        ("gangway-slurm", &["sbatch", "--bogus-option"]),
        ("gangway-slurm", &["scontrol", "bogus"]),
        ("gangway", &["job", "list"]),
        ("gangway-node", &["slurm-step"]),
        ("gangway-supervise", &["not-a-socket"]),
        ("gangway-node", &["--head", "https://127.0.0.1:9", "--name", "n", "--root", &root]),
    ];
    for (bin, args) in cases {
        let status = with_full_output(bin, args);
        // A panic (a failed println!) exits 101; a signal has no code.
        assert!(status.code().is_some_and(|c| c != 101 && c != 0), "{bin} {args:?} ended {status:?}");
    }
}

/// A tmpfs mounted on a directory for the test's life (unmounted even on failure).
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`3m`, `64k`) on `dir`; None where this machine cannot.
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "gangway-full-test"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: this machine cannot mount a tmpfs");
        }
        mounted.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Fills it up with one file.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        while std::io::Write::write_all(&mut f, &[0u8; 64 << 10]).is_ok() {}
    }
}

#[test]
fn a_full_state_disk_refuses_changes_keeps_reads_and_resumes_when_space_returns() {
    if !nix_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mut cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    // The head's state moves onto a 3 MiB tmpfs.
    cluster.kill_head();
    let state = cluster.state_dir();
    let saved = cluster.dir.path().join("state.saved");
    std::fs::rename(&state, &saved).unwrap();
    std::fs::create_dir(&state).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&state, "3m") else { return };
    let copied = std::process::Command::new("cp").arg("-a").arg(format!("{}/.", saved.display())).arg(&state).status();
    assert!(copied.unwrap().success());
    cluster.start_head();
    let mut c = cluster.client().with_retry(Duration::ZERO);
    c.add_job(&JobAddParameter { id: "before".into(), ..Default::default() }).unwrap();

    let filler = state.join("filler");
    tmpfs.fill();
    let job = |id: &str| serde_json::to_vec(&JobAddParameter { id: id.into(), ..Default::default() }).unwrap();
    // The first change that cannot be made durable waits (the head's commit retries); the
    // ones after it are refused at once, naming the cause, and change nothing. (Another
    // commit, a node's, may fail first: then this one is refused and its client retries it,
    // as clients do, until space returns; either way it is done once.)
    let mut waiting = cluster.client();
    let stuck =
        std::thread::spawn(move || waiting.add_job(&JobAddParameter { id: "stuck".into(), ..Default::default() }));
    // Its commit fails at once; a moment later the head knows why.
    std::thread::sleep(Duration::from_secs(1));
    let refused = gangway_tests::wait_for(Duration::from_secs(20), "a change to be refused", || {
        let r = c.raw("POST", "/jobs", Some(&job("refused")), &[]).unwrap();
        (r.status == 503).then_some(r)
    });
    assert!(refused.text().contains("the head cannot write its state"), "{}", refused.text());
    // Reads go on.
    let jobs: Vec<String> = c.list_jobs(&Default::default()).unwrap().into_iter().map(|j| j.id).collect();
    assert!(jobs.contains(&"before".to_owned()), "{jobs:?}");
    assert!(!jobs.contains(&"refused".to_owned()), "a refused change is not made: {jobs:?}");

    // Space returns: the waiting change becomes durable and new ones are taken again.
    std::fs::remove_file(&filler).unwrap();
    let mut c = cluster.client();
    gangway_tests::wait_for(Duration::from_secs(20), "writes to resume", || {
        c.add_job(&JobAddParameter { id: "after".into(), ..Default::default() }).ok()
    });
    assert!(stuck.join().unwrap().is_ok(), "the waiting change is answered once it is durable");
    // A restart shows what was made durable: nothing lost, nothing refused there.
    cluster.kill_head();
    cluster.start_head();
    let mut c = cluster.client();
    let mut jobs: Vec<String> = c.list_jobs(&Default::default()).unwrap().into_iter().map(|j| j.id).collect();
    jobs.sort();
    assert_eq!(jobs, ["after", "before", "stuck"], "the waiting change was kept, the refused one never made");
    cluster.kill_head();
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Waits until `path` exists.
fn wait_file(path: &std::path::Path) {
    gangway_tests::wait_for(Duration::from_secs(30), &format!("{} to exist", path.display()), || {
        path.exists().then_some(())
    });
}

/// Whether the launcher's log says it re-adopted tasks at least `n` times, within 20 s.
fn wait_readopted(cluster: &Cluster, n: usize) {
    let log = cluster.dir.path().join("node1.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("re-adopted").count() >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the restarted launcher re-adopted nothing:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tasks_outlive_a_killed_or_upgraded_launcher_and_end_exactly_once() {
    use gangway_api::slurm::SlurmJobState;
    use gangway_api::{IsoDuration, MpiSettings, TaskAddParameter, TaskConstraints, TaskState};
    // Eight declared cores: the batch job's, the MPI task's and the plain tasks' all fit at once.
    let synthetic = Some("pack:1 numa:1(memory=16GB) core:8 pu:1".to_owned());
    let mut cluster = Cluster::start(Options { nodes: 1, slots: 6, synthetic, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let work = slurm.work().to_path_buf();
    gangway_tests::compile_openmpi_ranks(&work);
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "keep".into(), ..Default::default() }).unwrap();
    // A plain task with output on both sides of the restarts and a real exit code.
    let plain = format!(
        "/bin/sh -c 'echo before; echo ran >> {w}/plain.runs; while [ ! -e {w}/go2 ]; do sleep 0.05; done; \
         echo after; echo err >&2; exit 7'",
        w = work.display()
    );
    // A wall-clock limit, enforced whether or not a launcher is there when it passes.
    let limited = TaskAddParameter {
        id: "limited".into(),
        command_line: format!("/bin/sh -c 'echo ran >> {}/limited.runs; exec sleep 60'", work.display()),
        constraints: Some(TaskConstraints {
            max_wall_clock_time: Some(IsoDuration(Duration::from_secs(4))),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Managed MPI: two Open MPI ranks served PMIx by their rank group, across both restarts.
    let ranks = TaskAddParameter {
        id: "ranks".into(),
        command_line: format!("{w}/ranks-ompi wait {w}/go2", w = work.display()),
        // One core per rank (without a CPU count the ranks would take the whole node).
        mpi: Some(MpiSettings { ranks_per_node: 2, cpus_per_rank: Some(1), ..Default::default() }),
        ..Default::default()
    };
    // One that ends while no launcher is there: its end is read from its exit file.
    let away = format!(
        "/bin/sh -c 'echo ran >> {w}/away.runs; while [ ! -e {w}/go0 ]; do sleep 0.05; done; echo bye; exit 4'",
        w = work.display()
    );
    let tasks = vec![
        TaskAddParameter { id: "plain".into(), command_line: plain, ..Default::default() },
        TaskAddParameter { id: "away".into(), command_line: away, ..Default::default() },
        limited,
        ranks,
    ];
    c.add_task_collection("keep", tasks).unwrap();
    // A batch job: an srun step runs across a SIGKILL of the launcher, an Open MPI step (PMIx,
    // served by the step's node part) across an upgrade (SIGUSR2), and a step after both.
    let text = "#!/bin/sh\n\
        echo ran >> batch.runs\n\
        srun -n2 sh -c 'echo step $SLURM_PROCID; touch step.$SLURM_PROCID; while [ ! -e go1 ]; do sleep 0.05; done' > step.txt\n\
        srun --mpi=pmix -n2 ./ranks-ompi wait go2 > mpi.txt 2> mpi.err; echo \"mpi=$?\"\n\
        srun -n2 sh -c 'echo after $SLURM_PROCID' > after.txt\n\
        exit 5\n";
    std::fs::write(work.join("job.sh"), text).unwrap();
    let id = slurm.sbatch(&["-n2", "-o", "job.out", "job.sh"]);
    wait_file(&work.join("plain.runs"));
    wait_file(&work.join("limited.runs"));
    wait_file(&work.join("step.1"));
    let ranks_out = cluster.node_root(0).join("workitems/keep/job-1/ranks/stdout.txt");
    for _ in 0..300 {
        if std::fs::read_to_string(&ranks_out).is_ok_and(|o| o.lines().count() == 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = c.get_task("keep", "ranks").unwrap();
    let err = std::fs::read_to_string(ranks_out.with_file_name("stderr.txt")).unwrap_or_default();
    let out = std::fs::read_to_string(&ranks_out).unwrap_or_default();
    assert_eq!(
        out.lines().count(),
        2,
        "the MPI task's ranks did not print: {:?} {:?}\n{out}{err}",
        t.state,
        t.execution_info
    );

    wait_file(&work.join("away.runs"));

    cluster.kill_node(0);
    let exits = || {
        let dir = cluster.node_root(0).join(gangway_launcher::supervise::RUNNING_DIR);
        std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "exit")).count()
    };
    let root = format!("AZ_BATCH_NODE_ROOT_DIR={}", cluster.node_root(0).display());
    let supervisors = || {
        let procs = gangway_tests::processes_with_env(std::slice::from_ref(&root));
        procs.iter().filter(|p| p.contains(": gangway-supervise ")).count()
    };
    let before = supervisors();
    std::fs::write(work.join("go0"), "").unwrap();
    gangway_tests::wait_for(Duration::from_secs(10), "the task to end while no launcher runs", || {
        (exits() == 1 && supervisors() == before - 1).then_some(())
    });
    cluster.start_node(0);
    wait_readopted(&cluster, 1);
    let log = gangway_tests::strip_ansi(&std::fs::read_to_string(cluster.dir.path().join("node1.log")).unwrap());
    assert!(log.contains("ended=1"), "the restarted launcher reported the task that ended meanwhile: {log}");
    std::fs::write(work.join("go1"), "").unwrap();
    gangway_tests::wait_for(Duration::from_secs(30), "both ranks to print", || {
        (std::fs::read_to_string(work.join("mpi.txt")).ok()?.lines().count() == 2).then_some(())
    });
    // An upgrade: the launcher leaves, its tasks stay, the next one takes them back.
    let mut old = cluster.nodes[0].take().unwrap();
    // SAFETY: kill(2) on the launcher this test started.
    unsafe { libc::kill(old.id() as i32, libc::SIGUSR2) };
    assert_eq!(old.wait().unwrap().code(), Some(0), "a launcher that hands over exits 0");
    cluster.start_node(0);
    wait_readopted(&cluster, 2);
    std::fs::write(work.join("go2"), "").unwrap();

    let job = slurm.wait_end(id, Duration::from_secs(60));
    let out = slurm.read("job.out");
    assert_eq!((job.state, job.exit_code, job.restarts), (SlurmJobState::Failed, Some(5), 0), "{out}");
    assert_eq!(slurm.read("batch.runs"), "ran\n", "the batch script ran once");
    assert_eq!(slurm.sorted_lines("step.txt"), ["step 0", "step 1"]);
    assert!(out.contains("mpi=0\n"), "{out}\n{}", slurm.read("mpi.err"));
    let ranks: Vec<String> = (0..2).map(|r| format!("rank={r} size=2 sum=3 local=2 host=node1")).collect();
    assert_eq!(slurm.sorted_lines("mpi.txt"), ranks, "{}", slurm.read("mpi.err"));
    assert_eq!(slurm.sorted_lines("after.txt"), ["after 0", "after 1"]);

    let done = |c: &mut gangway_api::client::Client, task: &str| {
        gangway_tests::wait_for(Duration::from_secs(30), &format!("task {task} to complete"), || {
            c.get_task("keep", task).ok().filter(|t| t.state == TaskState::Completed)
        })
    };
    let t = done(&mut c, "plain");
    assert_eq!((t.execution_info.exit_code, t.execution_info.requeue_count), (Some(7), 0), "{:?}", t.execution_info);
    assert_eq!(slurm.read("plain.runs"), "ran\n");
    let (_, stdout, _) = cluster.cli(&["task", "logs", "keep", "plain"]);
    assert_eq!(stdout, "before\nafter\n");
    let (_, stderr, _) = cluster.cli(&["task", "logs", "keep", "plain", "--stderr"]);
    assert_eq!(stderr, "err\n");
    let t = done(&mut c, "ranks");
    let (_, stdout, stderr) = cluster.cli(&["task", "logs", "keep", "ranks"]);
    assert_eq!((t.execution_info.exit_code, t.execution_info.requeue_count), (Some(0), 0), "{stdout}{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["rank=0 size=2 sum=3 local=2 host=node1", "rank=1 size=2 sum=3 local=2 host=node1"]);
    let t = done(&mut c, "away");
    assert_eq!((t.execution_info.exit_code, t.execution_info.requeue_count), (Some(4), 0), "{:?}", t.execution_info);
    assert_eq!(slurm.read("away.runs"), "ran\n");
    assert_eq!(cluster.cli(&["task", "logs", "keep", "away"]).1, "bye\n");
    let t = done(&mut c, "limited");
    let failure = t.execution_info.failure_info.as_ref().map(|f| f.code.as_str());
    assert_eq!((failure, t.execution_info.requeue_count), (Some("TaskEnded"), 0), "{:?}", t.execution_info);
    assert_eq!(slurm.read("limited.runs"), "ran\n");

    // Every report was acknowledged: no record of a running task is kept, nothing is left.
    let running = cluster.node_root(0).join(gangway_launcher::supervise::RUNNING_DIR);
    gangway_tests::wait_for(Duration::from_secs(10), "the records to go", || {
        let left = std::fs::read_dir(&running).map(|d| d.count()).unwrap_or(0);
        (left == 0).then_some(())
    });
    gangway_tests::assert_nothing_left(&[("node1".to_owned(), cluster.node_root(0))]);
}

#[test]
fn a_task_whose_launcher_never_returns_stops_when_the_head_calls_its_node_lost() {
    use gangway_api::{TaskAddParameter, TaskState};
    let mut cluster = Cluster::start(Options { nodes: 2, slots: 1, ..Options::default() });
    let work = tempfile::tempdir().unwrap();
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "orphan".into(), ..Default::default() }).unwrap();
    let command_line = format!("/bin/sh -c 'echo ran >> {}/runs; exec sleep 60'", work.path().display());
    c.add_task("orphan", &TaskAddParameter { id: "long".into(), command_line, ..Default::default() }).unwrap();
    wait_file(&work.path().join("runs"));
    let first = c.get_task("orphan", "long").unwrap().node_info.unwrap().node_id;
    let (k, other) = if first == "node1" { (0, "node2") } else { (1, "node1") };
    cluster.kill_node(k);
    // The head calls the node lost after its node timeout (2 s) and runs the task elsewhere…
    let t = gangway_tests::wait_for(Duration::from_secs(20), "the task to run again elsewhere", || {
        let t = c.get_task("orphan", "long").ok()?;
        (t.state == TaskState::Running && t.node_info.as_ref()?.node_id == other).then_some(t)
    });
    assert_eq!(t.execution_info.requeue_count, 1);
    // …and the supervisor, with no launcher for as long, has stopped the first copy.
    let root = format!("AZ_BATCH_NODE_ROOT_DIR={}", cluster.node_root(k).display());
    let mut left = Vec::new();
    let gone = (0..100).any(|_| {
        left = gangway_tests::processes_with_env(std::slice::from_ref(&root));
        std::thread::sleep(Duration::from_millis(50));
        left.is_empty()
    });
    assert!(gone, "the lost node's task still runs beside its requeued copy: {left:?}");
    c.terminate_job("orphan", None).unwrap();
}

#[test]
fn a_join_repeated_with_its_request_id_gets_the_same_certificate_and_spends_the_token_once() {
    use gangway_api::tokens::JoinTokenAddParameter;
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let mut c = cluster.client();
    let token = c.create_join_token(&JoinTokenAddParameter { uses: Some(1), ..Default::default() }).unwrap();
    let secret = token.token.expect("the secret is in the answer");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public_key = gangway_api::sha256::hex(key.public_key_raw());
    let body = serde_json::to_vec(&gangway_api::tokens::NodeJoinParameter { name: "late".into(), public_key }).unwrap();
    let auth = format!("Bearer {secret}");
    let id = gangway_api::client::new_request_id();
    let join = |id: &str| {
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json"), (REQUEST_ID_HEADER, id)];
        gangway_tests::tls::http(&cluster.config).request("POST", "/nodes/join", &headers, Some(&body)).unwrap()
    };
    let first = join(&id);
    assert_eq!(first.status, 201, "{}", first.text());
    let again = join(&id);
    assert_eq!((again.status, again.text()), (201, first.text()), "the lost answer, given again");
    let other = join(&gangway_api::client::new_request_id());
    assert_eq!(other.status, 401, "a new request spends the token again: {}", other.text());
}

#[test]
fn a_launcher_whose_records_cannot_be_written_still_reports_each_end_once() {
    use gangway_api::{TaskAddParameter, TaskState};
    if !nix_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    // The launcher's records and its supervisors' exit files go to a full 64 KiB tmpfs.
    let running = cluster.node_root(0).join(gangway_launcher::supervise::RUNNING_DIR);
    let Some(tmpfs) = Tmpfs::mount(&running, "64k") else { return };
    tmpfs.fill();
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "full".into(), ..Default::default() }).unwrap();
    let command_line = "/bin/sh -c 'echo out; exit 3'".to_owned();
    c.add_task("full", &TaskAddParameter { id: "t".into(), command_line, ..Default::default() }).unwrap();
    let t = gangway_tests::wait_for(Duration::from_secs(20), "the task to complete", || {
        c.get_task("full", "t").ok().filter(|t| t.state == TaskState::Completed)
    });
    // Its supervisor said how it ended on its socket: the real exit code, not a lost attempt.
    let info = &t.execution_info;
    assert_eq!((info.exit_code, info.requeue_count), (Some(3), 0), "{info:?}");
    assert_eq!(info.failure_info.as_ref().map(|f| f.code.as_str()), Some("FailureExitCode"));
    let (_, out, _) = cluster.cli(&["task", "logs", "full", "t"]);
    assert_eq!(out, "out\n");
    let log = std::fs::read_to_string(cluster.dir.path().join("node1.log")).unwrap();
    assert!(log.contains("cannot record a running task"), "the launcher says it could not record it");
}

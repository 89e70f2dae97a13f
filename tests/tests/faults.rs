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
    let cases: [(&str, &[&str]); 6] = [
        ("gangway-slurm", &["squeue"]),
        ("gangway-slurm", &["sbatch", "--bogus-option"]),
        ("gangway-slurm", &["scontrol", "bogus"]),
        ("gangway", &["job", "list"]),
        ("gangway-node", &["slurm-step"]),
        ("gangway-node", &["--head", "https://127.0.0.1:9", "--name", "n", "--root", &root]),
    ];
    for (bin, args) in cases {
        let status = with_full_output(bin, args);
        // A panic (a failed println!) exits 101; a signal has no code.
        assert!(status.code().is_some_and(|c| c != 101 && c != 0), "{bin} {args:?} ended {status:?}");
    }
}

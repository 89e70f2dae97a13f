//! The `gangway-slurm` binary: `parse`, `scontrol show hostnames|hostlist`, `install-shims` and
//! the multi-call dispatch by program name.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gangway-slurm");

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    Command::new(program).args(args).env_remove("SLURM_JOB_NODELIST").output().expect("running gangway-slurm")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn parse_prints_the_job_as_json() {
    let out = run(BIN, &["parse", &fixture("job-e.sh")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(job["name"], "refjob");
    assert_eq!(job["output"], "slurm-%j.out");
    assert_eq!(job["dependencies"]["conditions"][0]["type"], "afterok");
    assert_eq!(job["nodes"]["min"], 1);

    let out = run(BIN, &["parse", &fixture("job-mn1.sh"), "-N", "2", "--time=30"]);
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((job["nodes"]["min"].as_u64(), job["time_limit_s"].as_u64()), (Some(2), Some(1800)));

    // A whole sbatch command line, when the first word is an option.
    let out = run(BIN, &["parse", "-J", "w", "--wrap=hostname"]);
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(job["name"], "w");
    let out = run(BIN, &["parse", "-n", "3", &fixture("job-a.sh"), "arg1"]);
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((job["ntasks"].as_u64(), job["name"].as_str()), (Some(3), Some("job-a.sh")));
}

#[test]
fn parse_errors_are_slurms() {
    for (args, first_line) in [
        (&["--bogus"][..], "sbatch: unrecognized option '--bogus'"),
        (&["--time=abc"], "sbatch: error: Invalid --time specification"),
        (&["--nodes=0"], "sbatch: error: \"0\" is not a valid node count"),
        (&["--array=5-1"], "sbatch: error: Batch job submission failed: Invalid job array specification"),
    ] {
        let path = fixture("job-a.sh");
        let mut argv = vec!["parse", path.as_str()];
        argv.extend_from_slice(args);
        let out = run(BIN, &argv);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out).lines().next(), Some(first_line), "{args:?}");
        assert!(stdout(&out).is_empty());
    }
    let out = run(BIN, &["parse", "/nonexistent/job.sh"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("sbatch: error: Unable to open file /nonexistent/job.sh"));
    let out = run(BIN, &["parse", &fixture("job-a.sh"), "--time=1:2:3:4"]);
    assert!(stderr(&out).contains("(Invalid time limit specification `1:2:3:4`"), "{}", stderr(&out));
}

/// `hostlist-examples.txt`: each `$ scontrol show …` line and the output under it.
#[test]
fn scontrol_matches_the_reference_examples() {
    let text = std::fs::read_to_string(fixture("hostlist-examples.txt")).unwrap();
    let mut cases = 0;
    for block in text.split("$ ").filter(|b| !b.is_empty()) {
        let (command, expected) = block.split_once('\n').unwrap();
        let words: Vec<String> = command.split_whitespace().map(|w| w.trim_matches('"').to_string()).collect();
        assert_eq!(words[0], "scontrol");
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = run(BIN, &args);
        assert_eq!(format!("{}{}", stderr(&out), stdout(&out)), expected, "{command}");
        assert_eq!(out.status.success(), !expected.contains("Invalid hostlist"), "{command}");
        cases += 1;
    }
    assert_eq!(cases, 11);
}

#[test]
fn scontrol_takes_the_job_nodelist_by_default() {
    let out =
        Command::new(BIN).args(["scontrol", "show", "hostnames"]).env("SLURM_JOB_NODELIST", "n[1-2]").output().unwrap();
    assert_eq!(stdout(&out), "n1\nn2\n");
    let out = run(BIN, &["scontrol", "show", "hostnames"]);
    assert_eq!(out.status.code(), Some(1));
    // `show job` needs a cluster; with none it says so, as scontrol does without a controller.
    let nowhere = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["scontrol", "show", "job", "12"])
        .env("GANGWAY_STATE_DIR", nowhere.path())
        .env_remove("GANGWAY_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("scontrol: error: no cluster found"), "{}", stderr(&out));
}

#[test]
fn install_shims_makes_a_multi_call_binary() {
    let dir = tempfile::tempdir().unwrap();
    let shims = dir.path().join("bin");
    let out = run(BIN, &["install-shims", shims.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for command in ["sbatch", "srun", "salloc", "squeue", "scancel", "sinfo", "scontrol", "sacct"] {
        let link = shims.join(command);
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{command}");
        assert_eq!(std::fs::canonicalize(&link).unwrap(), std::fs::canonicalize(BIN).unwrap());
    }
    let out = run(shims.join("scontrol"), &["show", "hostlist", "n1,n2,n3"]);
    assert_eq!(stdout(&out), "n[1-3]\n");
    // The query commands answer to their own names (they need a cluster, and there is none).
    let nowhere = tempfile::tempdir().unwrap();
    for command in ["squeue", "sacct", "sinfo"] {
        let out = Command::new(shims.join(command))
            .env("GANGWAY_STATE_DIR", nowhere.path())
            .env_remove("GANGWAY_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(stderr(&out).starts_with(&format!("{command}: error: no cluster found")), "{}", stderr(&out));
    }
    // Running it again replaces the links; a regular file is left alone.
    assert!(run(BIN, &["install-shims", shims.to_str().unwrap()]).status.success());
    std::fs::remove_file(shims.join("sinfo")).unwrap();
    std::fs::write(shims.join("sinfo"), "mine").unwrap();
    let out = run(BIN, &["install-shims", shims.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(shims.join("sinfo")).unwrap(), "mine");
    assert!(Path::new(&shims).join("sbatch").exists());
}

#[test]
fn dispatch() {
    // Without a cluster, salloc says so once, like every command that needs one.
    let out = run(BIN, &["salloc", "hostname"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("salloc: error: no cluster found"), "{}", stderr(&out));
    let out = run(BIN, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("gangway-slurm: unknown command `frobnicate`"));
    let out = run(BIN, &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(BIN, &["--help"]);
    assert!(out.status.success() && stdout(&out).contains("install-shims DIR"));
}

#[test]
fn sbatch_keeps_gangways_own_warnings_for_verbose() {
    // No cluster: the submission fails after the warnings would have been printed.
    let sbatch = |extra: &[&str]| {
        let mut c = std::process::Command::new(BIN);
        c.arg("sbatch").args(extra).args(["--mail-type=END", "-N", "4", "-n", "2", "--wrap", "true"]);
        c.env("GANGWAY_URL", "http://127.0.0.1:9").env("GANGWAY_TOKEN", "x").env_remove("GANGWAY_STATE_DIR");
        String::from_utf8_lossy(&c.output().unwrap().stderr).into_owned()
    };
    let quiet = sbatch(&[]);
    // Slurm's own warning is printed; gangway's note about --mail-type is not, as Slurm prints nothing.
    assert!(quiet.contains("sbatch: warning: can't run 2 processes on 4 nodes, setting nnodes to 2"), "{quiet}");
    assert!(!quiet.contains("--mail-type"), "{quiet}");
    let verbose = sbatch(&["-v"]);
    assert!(verbose.contains("sbatch: warning: --mail-type is recorded, but gangway sends no mail"), "{verbose}");
}

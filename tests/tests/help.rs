//! `--help` on every binary: a usage text and exit 0, never an error or a backtrace.

use std::process::Command;

use gangway_tests::bin;

#[test]
fn every_binary_answers_help() {
    let binaries = [
        "gangway",
        "gangway-node",
        "gangway-supervise",
        "gangway-slurm",
        "gangway-e2e-bench",
        "gangway-sbatch-bench",
        "gangway-launcher-load",
        "gangway-mpi-launch-bench",
        "gangway-multinode-bench",
        "gangway-deps-bench",
        "gangway-readopt-bench",
    ];
    for b in binaries {
        let out = Command::new(bin(b)).arg("--help").env("RUST_BACKTRACE", "1").output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{b} --help: {:?}\n{stdout}{stderr}", out.status);
        assert!(stdout.len() > 40, "{b} --help printed no usage: {stdout:?}");
        assert!(!stderr.contains("Backtrace") && !stderr.contains("Error"), "{b} --help: {stderr}");
    }
}

#[test]
fn install_shims_takes_help_as_help_not_as_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        |arg: &str| Command::new(bin("gangway-slurm")).args(["install-shims", arg]).current_dir(dir.path()).output();
    let help = run("--help").unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("usage: gangway-slurm install-shims DIR"));
    let bad = run("-x").unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option -x"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no directory was made");
}

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

#[test]
fn bash_completes_gangways_commands_and_options_from_the_script_it_prints() {
    let script = Command::new(bin("gangway")).args(["completions", "bash"]).output().unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gangway.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    // What bash offers after `gangway jo<TAB>` and `gangway job --st<TAB>`, through the script.
    let complete = |words: &str| {
        let line = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _gangway gangway \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        let out = Command::new("bash").args(["-c", &line]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete("gangway jo"), "job");
    assert_eq!(complete("gangway job --st"), "--state-dir");
    assert!(complete("gangway ''").split_whitespace().any(|w| w == "completions"));
    for shell in ["zsh", "fish"] {
        let out = Command::new(bin("gangway")).args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("state-dir") && text.contains("submit"), "{shell}: {text}");
    }
    let bad = Command::new(bin("gangway")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid value 'tcsh'"));
}

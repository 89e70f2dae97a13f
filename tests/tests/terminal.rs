//! Long waits on a terminal: `sbatch -W` and `gangway wait` keep a status line up to date on a
//! pseudo-terminal (`script` gives them one) and erase it at the end; off a terminal they print
//! nothing of it.

use gangway_tests::slurm::SlurmFrontDoor;
use gangway_tests::{bin, Cluster, Options};

#[test]
fn long_waits_keep_a_status_line_on_a_terminal_only() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() });
    let slurm = SlurmFrontDoor::new(cluster.config.clone());
    let on_terminal = |line: String| {
        let out = slurm.command("script").args(["-qec", &line, "/dev/null"]).output().expect("script (util-linux)");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let sbatch = format!("{} sbatch -W --wrap 'sleep 2.5'", bin("gangway-slurm").display());
    let (code, text) = on_terminal(sbatch);
    assert_eq!(code, Some(0), "{text:?}");
    assert!(text.contains("sbatch: job ") && text.contains(" is RUNNING ("), "a status line: {text:?}");
    assert!(text.contains("\r\x1b[K"), "erased at the end: {text:?}");

    let mut c = cluster.client();
    c.add_job(&gangway_api::JobAddParameter { id: "w".into(), ..Default::default() }).unwrap();
    let task = gangway_api::TaskAddParameter { id: "t".into(), command_line: "sleep 2.5".into(), ..Default::default() };
    c.add_task("w", &task).unwrap();
    let (code, text) = on_terminal(format!("{} wait w", bin("gangway").display()));
    assert_eq!(code, Some(0), "{text:?}");
    assert!(text.contains("gangway: waiting for job w: 0 waiting, 1 running, 0 done ("), "{text:?}");

    // Off a terminal: the answer only.
    let plain = slurm.run("sbatch", &["-W", "--wrap", "sleep 1.5"]);
    assert!(plain.status.success());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(!err.contains(" is RUNNING") && !err.contains('\r'), "{err:?}");
}

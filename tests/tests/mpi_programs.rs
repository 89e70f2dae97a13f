//! The MPI programs in `benchmarks/mpi` (a separate cargo project), built through
//! `scripts/build-mpi.sh` for each MPI and run with two ranks by that MPI's own launcher.
//!
//! Nothing here skips: a missing MPI, a failed build or a launcher that does not start is a
//! failure. The first build of each flavour takes about 40 s on two cores; later ones are
//! incremental (target/mpi-<flavour>/).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Builds the programs for `flavor` and returns the directory holding them.
fn build(flavor: &str) -> PathBuf {
    let script = repo_root().join("scripts/build-mpi.sh");
    let out = Command::new("timeout").arg("600").arg(&script).arg(flavor).output().expect("running build-mpi.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/build-mpi.sh {flavor} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(stdout.lines().last().expect("build-mpi.sh names the binaries' directory").trim());
    assert!(dir.join("mpi-probe").is_file() && dir.join("mpi-bench").is_file(), "no binaries in {}", dir.display());
    dir
}

/// Runs `launcher` (with a minute's limit) and returns the JSON lines it printed.
fn run_json(mut launcher: Command) -> Vec<Value> {
    let shown = format!("{launcher:?}");
    let out = launcher.output().unwrap_or_else(|e| panic!("starting {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{shown}: not JSON ({e}): {line}")))
        .collect()
}

/// Two rank lines in rank order, each with this machine's CPUs, then the allreduce of rank+1.
fn check_two_ranks(lines: &[Value], pmi_rank_set: bool) {
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let our_host = lines[0]["host"].clone();
    for (rank, line) in lines[..2].iter().enumerate() {
        assert_eq!(line["rank"], rank, "{line}");
        assert_eq!(line["size"], 2, "{line}");
        assert_eq!((&line["local_rank"], &line["local_size"]), (&Value::from(rank), &Value::from(2)), "{line}");
        assert_eq!(line["host"], our_host, "{line}");
        let cpus = line["cpus"].as_array().unwrap_or_else(|| panic!("no CPU list: {line}"));
        assert!(!cpus.is_empty() && cpus.contains(&line["cpu"]), "{line}");
        assert!(line["numa_node"].is_u64(), "{line}");
        assert!(line["mempolicy"]["mode"].is_string(), "{line}");
        if pmi_rank_set {
            assert_eq!(line["env"]["PMI_RANK"], rank.to_string(), "{line}");
        }
    }
    assert_eq!(lines[2], serde_json::json!({ "allreduce_sum": 3 }));
}

fn timed(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["60", program]);
    c
}

#[test]
fn mpi_probe_under_open_mpi() {
    let dir = build("openmpi");
    let mut mpirun = timed("mpirun.openmpi");
    mpirun
        .args(["-np", "2", "--oversubscribe", "--bind-to", "none"])
        .arg(dir.join("mpi-probe"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    check_two_ranks(&run_json(mpirun), false);
}

#[test]
fn mpi_probe_under_mpich() {
    let dir = build("mpich");
    let mut mpiexec = timed("mpiexec.mpich");
    mpiexec.args(["-n", "2"]).arg(dir.join("mpi-probe"));
    check_two_ranks(&run_json(mpiexec), true);
}

#[test]
fn mpi_bench_measures_every_size_under_mpich() {
    let dir = build("mpich");
    let mut mpiexec = timed("mpiexec.mpich");
    mpiexec.args(["-n", "2"]).arg(dir.join("mpi-bench")).args(["--iterations", "3"]);
    let lines = run_json(mpiexec);
    for test in ["pingpong", "allreduce"] {
        let sizes: Vec<u64> =
            lines.iter().filter(|l| l["test"] == test).map(|l| l["bytes"].as_u64().unwrap()).collect();
        assert_eq!(sizes, (0..=11).map(|k| 1u64 << (2 * k)).collect::<Vec<_>>(), "{test}: {lines:#?}");
    }
    assert!(lines.iter().filter(|l| l["test"] == "pingpong").all(|l| l["latency_us"].as_f64().unwrap() > 0.0));
}

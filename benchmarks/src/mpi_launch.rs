//! MPI launch overhead on the namespace cluster (needs root): a trivial MPI program (MPI_Init,
//! an allreduce, MPI_Finalize) on 1×2, 2×2 and 4×2 ranks, built for MPICH and for Open MPI.
//! MPICH: started by gangway (its launchers over PMI-1) and by `mpiexec.hydra` run by hand.
//! Open MPI: started by gangway directly (each launcher's PMIx server, `auto`), by gangway
//! through `mpirun` (`mpi.implementation=openmpi`: daemons through gangway's agent and the
//! head), and by Open MPI's `mpirun` run by hand with ssh replaced by a trivial agent.
//! srun: inside a batch job of the same nodes, `srun -N… -n…` of the Open MPI hello (PMIx) and
//! of the MPICH hello (PMI-1), launch to exit as the job's script times it.
//! The hand-run launchers' agents start their daemons in each host's namespace with
//! `ip netns exec` (Open MPI's with the per-host TMPDIR and shared-memory directory that fake
//! hosts on one machine need). Median wall time of each; gangway's is submit → completed as
//! seen by the REST API.
//!
//! `cargo build --release -p gangway-benchmarks --bins && sudo target/release/gangway-mpi-launch-bench [--runs 10]`
//! (`GANGWAY_BENCH_NO_HYDRA=1` / `GANGWAY_BENCH_NO_OPENMPI=1` leave those columns out.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::*;
use gangway_tests::netns::{available, NetCluster, NetOptions};

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The MPICH hello compiled again with Open MPI's wrapper.
fn compile_open_mpi_hello(dir: &Path) -> anyhow::Result<PathBuf> {
    let exe = dir.join("hello-openmpi");
    let out = Command::new("mpicc.openmpi")
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("hello.c"))
        .output()
        .context("running mpicc.openmpi (scripts/deps.sh installs libopenmpi-dev)")?;
    if !out.status.success() {
        bail!("mpicc.openmpi failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(exe)
}

fn write_script(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Runs `cmd` (with a 20 s limit) and returns its wall time in ms.
fn timed_run(mut cmd: Command, what: &str) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(ms)
}

/// Submits one managed MPI task (`implementation` as `mpi.implementation`) and returns
/// submit → completed in ms.
fn gangway_run(
    c: &mut gangway_api::client::Client,
    id: &str,
    exe: &Path,
    nodes: u32,
    implementation: Option<&str>,
) -> anyhow::Result<f64> {
    let task = TaskAddParameter {
        id: id.into(),
        command_line: exe.display().to_string(),
        multi_instance_settings: (nodes > 1)
            .then(|| MultiInstanceSettings { number_of_instances: nodes, ..Default::default() }),
        mpi: Some(MpiSettings {
            ranks_per_node: 2,
            implementation: implementation.map(str::to_owned),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    c.add_task("launch", &task)?;
    loop {
        let t = c.get_task("launch", id)?;
        if t.state == TaskState::Completed {
            if t.execution_info.exit_code != Some(0) {
                bail!("gangway run of {} failed: {:?}", exe.display(), t.execution_info);
            }
            return Ok(t0.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Runs one batch job on `nodes` nodes whose script times `runs` sruns of `-N nodes -n 2·nodes
/// PROGRAM` for each program; returns each program's launch → exit times in ms.
fn srun_runs(
    slurm: &gangway_tests::slurm::SlurmFrontDoor,
    nodes: u32,
    runs: usize,
    programs: &[&Path],
) -> anyhow::Result<Vec<Vec<f64>>> {
    let np = 2 * nodes;
    let mut script = String::from(
        "#!/bin/sh\nexport OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_mtl=^ofi,psm,psm2 OMPI_MCA_osc=^ucx\n",
    );
    for (k, p) in programs.iter().enumerate() {
        script.push_str(&format!(
            "for i in $(seq {runs}); do t0=$(date +%s%N); srun -N{nodes} -n{np} {} > /dev/null || exit 1; \
             t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )) >> times-{nodes}-{k}.txt; done\n",
            p.display()
        ));
    }
    let name = format!("srun-bench-{nodes}.sh");
    std::fs::write(slurm.work().join(&name), script)?;
    let out =
        slurm.run("sbatch", &["--parsable", &format!("-N{nodes}"), "--ntasks-per-node=2", "-o", "bench.out", &name]);
    if !out.status.success() {
        bail!("sbatch failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let id: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().context("sbatch's job id")?;
    let job = slurm.wait_end(id, Duration::from_secs(600));
    if job.state != gangway_api::slurm::SlurmJobState::Completed {
        bail!("the srun job ended {:?}: {}", job.state, std::fs::read_to_string(slurm.work().join("bench.out"))?);
    }
    (0..programs.len())
        .map(|k| {
            let text = std::fs::read_to_string(slurm.work().join(format!("times-{nodes}-{k}.txt")))?;
            Ok(text.lines().filter_map(|l| l.trim().parse::<f64>().ok()).map(|us| us / 1000.0).collect())
        })
        .collect()
}

/// `--help`: this file's header.
const USAGE: &str = r#"MPI launch overhead on the namespace cluster (needs root): a trivial MPI program (MPI_Init,
an allreduce, MPI_Finalize) on 1×2, 2×2 and 4×2 ranks, built for MPICH and for Open MPI.
MPICH: started by gangway (its launchers over PMI-1) and by `mpiexec.hydra` run by hand.
Open MPI: started by gangway directly (each launcher's PMIx server, `auto`), by gangway
through `mpirun` (`mpi.implementation=openmpi`: daemons through gangway's agent and the
head), and by Open MPI's `mpirun` run by hand with ssh replaced by a trivial agent.
srun: inside a batch job of the same nodes, `srun -N… -n…` of the Open MPI hello (PMIx) and
of the MPICH hello (PMI-1), launch to exit as the job's script times it.
The hand-run launchers' agents start their daemons in each host's namespace with
`ip netns exec` (Open MPI's with the per-host TMPDIR and shared-memory directory that fake
hosts on one machine need). Median wall time of each; gangway's is submit → completed as
seen by the REST API.

`cargo build --release -p gangway-benchmarks --bins && sudo target/release/gangway-mpi-launch-bench [--runs 10]`
(`GANGWAY_BENCH_NO_HYDRA=1` / `GANGWAY_BENCH_NO_OPENMPI=1` leave those columns out.)"#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let mut runs = 10usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--runs" => runs = it.next().context("--runs needs a value")?.parse()?,
            other => bail!("unknown option {other} (accepted: --runs N)"),
        }
    }
    if !available() {
        bail!("the namespace cluster needs root and iproute2");
    }
    let with_hydra = std::env::var_os("GANGWAY_BENCH_NO_HYDRA").is_none();
    let with_openmpi = std::env::var_os("GANGWAY_BENCH_NO_OPENMPI").is_none();
    let cluster = NetCluster::start(NetOptions { hosts: 4, slots: 2, ..Default::default() });
    let dir = cluster.dir.path();
    let exe = gangway_tests::compile_mpich_hello(dir);
    let ompi_exe = if with_openmpi { Some(compile_open_mpi_hello(dir)?) } else { None };
    let mut case = String::new();
    for h in &cluster.hosts {
        case.push_str(&format!("  {}) ns={} ;;\n", h.address, h.netns));
    }
    // hydra's launcher: `agent [-x] HOST WORDS…` runs the words (meant for a shell, as ssh
    // would) in HOST's namespace.
    let agent = dir.join("netns-agent");
    write_script(
        &agent,
        &format!("#!/bin/sh\n[ \"$1\" = -x ] && shift\nhost=$1; shift\ncase $host in\n{case}  *) echo \"unknown host $host\" >&2; exit 1 ;;\nesac\nexec ip netns exec $ns sh -c \"$*\"\n"),
    )?;
    // Open MPI's: the same, with the directories each fake host needs of its own.
    let ompi_agent = dir.join("netns-ompi-agent");
    let shm = format!("/dev/shm/gangway-bench-{}", std::process::id());
    write_script(
        &ompi_agent,
        &format!(
            "#!/bin/sh\nhost=$1; shift\ncase $host in\n{case}  *) echo \"unknown host $host\" >&2; exit 1 ;;\nesac\n\
             d={}/ompi-$host; mkdir -p $d {shm}/$host\n\
             exec ip netns exec $ns env TMPDIR=$d OMPI_MCA_orte_tmpdir_base=$d OMPI_MCA_btl_vader_backing_directory={shm}/$host sh -c \"$*\"\n",
            dir.display()
        ),
    )?;
    let bridge = cluster.bridge_name();
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "launch".into(), ..Default::default() })?;
    let slurm = gangway_tests::slurm::SlurmFrontDoor::new(cluster.config.clone());
    println!(
        "{:<6} {:>10} {:>15} {:>14} {:>16} {:>13} {:>12} {:>12}",
        "RANKS", "gangway", "mpiexec.hydra", "gangway pmix", "gangway mpirun", "hand mpirun", "srun pmix", "srun pmi1"
    );
    let mut n = 0;
    let result = (|| -> anyhow::Result<()> {
        for nodes in [1u32, 2, 4] {
            let (mut ours, mut hydra, mut ours_ompi, mut mpirun) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut ours_mpirun = Vec::new();
            let hosts: Vec<&str> = cluster.hosts[..nodes as usize].iter().map(|h| h.address.as_str()).collect();
            let np = (2 * nodes).to_string();
            for _ in 0..runs {
                n += 1;
                ours.push(gangway_run(&mut c, &format!("t{n}"), &exe, nodes, None)?);
                if with_hydra {
                    let mut cmd = Command::new("timeout");
                    cmd.args(["20", "mpiexec.hydra", "-launcher", "ssh", "-launcher-exec"])
                        .arg(&agent)
                        .args(["-iface", &bridge, "-hosts", &hosts.join(","), "-ppn", "2", "-n", &np])
                        .arg(&exe);
                    hydra.push(timed_run(cmd, "mpiexec.hydra")?);
                }
                let Some(ompi_exe) = &ompi_exe else { continue };
                ours_ompi.push(gangway_run(&mut c, &format!("o{n}"), ompi_exe, nodes, Some("pmix"))?);
                ours_mpirun.push(gangway_run(&mut c, &format!("m{n}"), ompi_exe, nodes, Some("openmpi"))?);
                let slots: Vec<String> = hosts.iter().map(|h| format!("{h}:2")).collect();
                let mut cmd = Command::new("timeout");
                cmd.args(["20", "mpirun", "--mca", "plm_rsh_agent"])
                    .arg(&ompi_agent)
                    .args(["--host", &slots.join(","), "--map-by", "ppr:2:node", "--bind-to", "none", "-np", &np])
                    .arg(ompi_exe)
                    // The same transports gangway chooses on nodes without RDMA NICs.
                    .envs([
                        ("OMPI_MCA_pml", "ob1"),
                        ("OMPI_MCA_btl", "self,vader,tcp"),
                        ("OMPI_MCA_mtl", "^ofi,psm,psm2"),
                        ("OMPI_MCA_osc", "^ucx"),
                        ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
                        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                    ]);
                mpirun.push(timed_run(cmd, "mpirun")?);
            }
            let mut programs = vec![exe.as_path()];
            programs.extend(ompi_exe.as_deref());
            let mut sruns = srun_runs(&slurm, nodes, runs, &programs)?;
            let srun_pmix = if sruns.len() > 1 { sruns.pop().unwrap_or_default() } else { Vec::new() };
            let srun_pmi1 = sruns.pop().unwrap_or_default();
            println!(
                "{:<6} {:>10.1} {:>15.1} {:>14.1} {:>16.1} {:>13.1} {:>12.1} {:>12.1}",
                format!("{nodes}x2"),
                median(ours),
                median(hydra),
                median(ours_ompi),
                median(ours_mpirun),
                median(mpirun),
                median(srun_pmix),
                median(srun_pmi1)
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&shm);
    result
}

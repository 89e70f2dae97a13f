//! MPI launch overhead on the namespace cluster (needs root): a trivial MPICH program (MPI_Init,
//! an allreduce, MPI_Finalize) on 1×2, 2×2 and 4×2 ranks, started by gangway (its launchers
//! over PMI-1) and by `mpiexec.hydra` run by hand on the same namespace hosts (its proxies
//! started in each host's namespace by an `ip netns exec` agent). Median wall time of each.
//!
//! `cargo build --release --bins && sudo target/release/gangway-mpi-launch-bench [--runs 10]`

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::*;
use gangway_tests::netns::{available, NetCluster, NetOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
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
    let cluster = NetCluster::start(NetOptions { hosts: 4, slots: 2, ..Default::default() });
    let exe = gangway_tests::compile_mpich_hello(cluster.dir.path());
    // hydra's launcher: `agent [-x] HOST WORDS…` runs the words (meant for a shell, as ssh
    // would) in HOST's namespace.
    let agent = cluster.dir.path().join("netns-agent");
    let mut map = String::new();
    for h in &cluster.hosts {
        map.push_str(&format!("  {}) ns={} ;;\n", h.address, h.netns));
    }
    std::fs::write(
        &agent,
        format!("#!/bin/sh\n[ \"$1\" = -x ] && shift\nhost=$1; shift\ncase $host in\n{map}  *) echo \"unknown host $host\" >&2; exit 1 ;;\nesac\nexec ip netns exec $ns sh -c \"$*\"\n"),
    )?;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755))?;
    let bridge = cluster.bridge_name();
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "launch".into(), ..Default::default() })?;
    println!("{:<6} {:>14} {:>16}", "RANKS", "gangway (ms)", "mpiexec.hydra (ms)");
    let mut n = 0;
    for nodes in [1u32, 2, 4] {
        let mut ours = Vec::new();
        let mut hydra = Vec::new();
        for _ in 0..runs {
            n += 1;
            let id = format!("t{n}");
            let task = TaskAddParameter {
                id: id.clone(),
                command_line: exe.display().to_string(),
                multi_instance_settings: (nodes > 1)
                    .then(|| MultiInstanceSettings { number_of_instances: nodes, ..Default::default() }),
                mpi: Some(MpiSettings { ranks_per_node: 2, ..Default::default() }),
                ..Default::default()
            };
            let t0 = Instant::now();
            c.add_task("launch", &task)?;
            loop {
                let t = c.get_task("launch", &id)?;
                if t.state == TaskState::Completed {
                    if t.execution_info.exit_code != Some(0) {
                        bail!("gangway run failed: {:?}", t.execution_info);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            ours.push(t0.elapsed().as_secs_f64() * 1000.0);
            let hosts: Vec<&str> = cluster.hosts[..nodes as usize].iter().map(|h| h.address.as_str()).collect();
            if std::env::var_os("GANGWAY_BENCH_NO_HYDRA").is_some() {
                hydra.push(0.0);
                continue;
            }
            let t0 = Instant::now();
            let out = Command::new("timeout")
                .arg("20")
                .arg("mpiexec.hydra")
                .args(["-launcher", "ssh", "-launcher-exec"])
                .arg(&agent)
                .args(["-iface", &bridge, "-hosts", &hosts.join(","), "-ppn", "2", "-n", &(2 * nodes).to_string()])
                .arg(&exe)
                .output()?;
            hydra.push(t0.elapsed().as_secs_f64() * 1000.0);
            if !out.status.success() {
                bail!("mpiexec.hydra failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        println!("{:<6} {:>14.1} {:>16.1}", format!("{nodes}x2"), median(ours), median(hydra));
    }
    Ok(())
}

//! Direct launch of a real MPICH program through gangway's PMI-1 server: no `mpiexec`, the
//! ranks get a socket as `PMI_FD` and talk to `serve_node`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use gangway_launcher::pmi::{inherit_fd, process_mapping, serve_node, NodeConfig, NodePmi, RankSocket, SingleNode};

const HELLO_C: &str = r#"
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, sum, one;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    one = rank + 1;
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank=%d size=%d sum=%d\n", rank, size, sum);
    MPI_Finalize();
    return 0;
}
"#;

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.is_file())
}

fn compile_hello(dir: &Path) -> PathBuf {
    let mpicc = find_in_path("mpicc.mpich")
        .expect("mpicc.mpich is not installed: run scripts/deps.sh (it installs mpich and libmpich-dev)");
    let src = dir.join("hello.c");
    let exe = dir.join("hello");
    std::fs::write(&src, HELLO_C).unwrap();
    let out = Command::new(mpicc).arg("-o").arg(&exe).arg(&src).output().expect("running mpicc.mpich");
    assert!(out.status.success(), "mpicc.mpich failed: {}", String::from_utf8_lossy(&out.stderr));
    exe
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmi_direct_launch_of_two_mpich_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_hello(dir.path());
    let size = 2;
    let sockets: Vec<RankSocket> = (0..size).map(|r| RankSocket::new(r).unwrap()).collect();
    let mut children = Vec::new();
    for s in &sockets {
        let mut cmd = Command::new(&exe);
        // A PMI_PORT or PMI_ID from the test's own environment would send MPICH elsewhere.
        cmd.env_remove("PMI_PORT").env_remove("PMI_ID").envs(s.env(size));
        cmd.current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let fd = s.child_fd();
        // SAFETY: the closure only calls fcntl, which is async-signal-safe.
        unsafe { cmd.pre_exec(move || inherit_fd(fd)) };
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true); // no rank outlives a failed test
        children.push(cmd.spawn().expect("spawning the MPI program"));
    }
    // The children hold their ends now; closing ours lets the server see each rank's EOF.
    let servers: Vec<_> = sockets.into_iter().map(|s| (s.rank, s.into_server())).collect();
    let pmi = NodePmi::new(NodeConfig {
        size,
        local_ranks: (0..size).collect(),
        kvsname: "gangway_test_kvs".into(),
        process_mapping: process_mapping(&[size]),
    });
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let waits = futures_join(children);
    let (served, outputs) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(serve_node(pmi, servers, &SingleNode, events_tx), waits)
    })
    .await
    .expect("the MPI ranks finished within 60 s");
    served.expect("PMI server");
    for (rank, out) in outputs.into_iter().enumerate() {
        let out = out.expect("waiting for a rank");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rank {rank} exited with {}: {stdout}{stderr}", out.status);
        assert_eq!(stdout.trim(), format!("rank={rank} size=2 sum=3"), "rank {rank}; stderr: {stderr}");
    }
    assert!(events.recv().await.is_none(), "no abort, lost rank or protocol error");
}

/// Waits for every child, collecting their output.
async fn futures_join(children: Vec<tokio::process::Child>) -> Vec<std::io::Result<std::process::Output>> {
    let handles: Vec<_> = children.into_iter().map(|c| tokio::spawn(c.wait_with_output())).collect();
    let mut outs = Vec::new();
    for h in handles {
        outs.push(h.await.expect("wait task"));
    }
    outs
}

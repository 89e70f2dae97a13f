//! A test cluster of real processes: one `gangway head` and N `gangway-node` launchers on
//! loopback, each with its own root directory in a temporary directory. Everything is torn
//! down on drop (launchers first, so they kill their tasks and remove their cgroups), also
//! when a test fails.
//!
//! The binaries are not built here: run `cargo build --bins` first (the README's test
//! command does); they are found next to the test executable's `deps/` directory.

pub mod fuzz;
pub mod netns;
pub mod slurm;
pub mod tls;
pub mod users;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gangway_api::client::{Client, ClientConfig};
use gangway_api::{NodeState, PoolAddParameter};

/// Path of a workspace binary (`gangway`, `gangway-node`): next to the running executable
/// (a benchmark in target/release) or one level up (a test in target/debug/deps).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let here = exe.parent().expect("executable directory");
    let candidates = [here.join(name), here.parent().map(|p| p.join(name)).unwrap_or_default()];
    let found = candidates.iter().find(|p| p.is_file() && p.file_name() != exe.file_name());
    let path = found.cloned().unwrap_or_else(|| candidates[1].clone());
    assert!(path.exists(), "{} is missing: run `cargo build --bins` before the tests", path.display());
    path
}

/// Polls `f` every few milliseconds until it returns Some, or panics after `timeout` naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(100));
    }
}

/// Starts `gangway head` with its state in `dir/state` and its log in `dir/head.log`, and
/// waits for its `client.json`.
pub fn spawn_head(dir: &Path, listen: &str, slots: u32, node_timeout: &str, heartbeat: &str) -> (Child, ClientConfig) {
    spawn_head_with(dir, listen, slots, node_timeout, heartbeat, &[])
}

/// [`spawn_head`] with extra arguments for `gangway head` (such as `--fabric FILE`).
pub fn spawn_head_with(
    dir: &Path,
    listen: &str,
    slots: u32,
    node_timeout: &str,
    heartbeat: &str,
    extra: &[&std::ffi::OsStr],
) -> (Child, ClientConfig) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let _ = std::fs::remove_file(state.join("client.json"));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("head.log")).expect("log");
    let child = Command::new(bin("gangway"))
        .args(["head", "--state-dir"])
        .arg(&state)
        .args(["--listen", listen, "--default-slots", &slots.to_string()])
        .args(["--node-timeout", node_timeout, "--heartbeat", heartbeat, "--log-level", "debug"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("starting gangway head");
    let config =
        wait_for(Duration::from_secs(20), "the head's client.json", || ClientConfig::from_state_dir(&state).ok());
    (child, config)
}

/// What a launcher of the head `config` (state in `state`) needs to join the cluster: the
/// CA's certificate and a join token (one file for every launcher of a test, made once).
pub fn join_args(state: &Path, config: &ClientConfig) -> Vec<std::ffi::OsString> {
    let token = state.join("join.token");
    if !token.exists() {
        Client::new(config).expect("client").write_join_token(10_000, &token).expect("making a join token");
    }
    let ca = config.ca.clone().expect("client.json names the CA");
    vec!["--ca".into(), ca.into_os_string(), "--join-token-file".into(), token.into_os_string()]
}

/// Stops launchers the way an operator would (SIGTERM, so they kill their tasks and remove
/// their cgroups), then SIGKILLs any that did not exit within 15 s.
pub fn stop_launchers(children: Vec<Child>) {
    for c in &children {
        // SAFETY: kill(2) on a child we started.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    }
    for mut c in children {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Launchers (node1…nodeN).
    pub nodes: usize,
    /// Slots per node of the default pool.
    pub slots: u32,
    /// Head's node-lost timeout.
    pub node_timeout: &'static str,
    /// Launcher heartbeat.
    pub heartbeat: &'static str,
    /// Launcher kill grace.
    pub kill_grace: &'static str,
    /// A declared hwloc XML topology for every launcher (`--topology-xml`).
    pub topology_xml: Option<PathBuf>,
    /// A declared hwloc synthetic topology for every launcher (`--synthetic`).
    pub synthetic: Option<String>,
    /// Every launcher's `--task-pids-max`.
    pub task_pids_max: Option<u64>,
    /// A pool to create before the launchers start, and for them to join (instead of `default`).
    pub pool: Option<PoolAddParameter>,
    /// More arguments for `gangway head` (such as `--munge-socket PATH`).
    pub head_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: 2,
            slots: 2,
            node_timeout: "2s",
            heartbeat: "300ms",
            kill_grace: "1s",
            topology_xml: None,
            synthetic: None,
            task_pids_max: None,
            pool: None,
            head_args: Vec::new(),
        }
    }
}

/// A running test cluster.
pub struct Cluster {
    /// Holds the state directory and every node root.
    pub dir: tempfile::TempDir,
    /// The head process.
    pub head: Option<Child>,
    /// Launcher processes by index (node1 is 0).
    pub nodes: Vec<Option<Child>>,
    /// The head's URL and admin token.
    pub config: ClientConfig,
    opts: Options,
    listen: String,
}

impl Cluster {
    /// Starts a head and `opts.nodes` launchers and waits until every node is idle.
    pub fn start(opts: Options) -> Cluster {
        let dir = tempfile::Builder::new().prefix("gangway-test").tempdir().expect("temp dir");
        let mut c = Cluster {
            dir,
            head: None,
            nodes: Vec::new(),
            config: ClientConfig { url: String::new(), token: String::new(), socket: None, munge: None, ca: None },
            opts: opts.clone(),
            listen: "127.0.0.1:0".into(),
        };
        c.start_head();
        if let Some(p) = &opts.pool {
            c.client().add_pool(p).expect("creating the test pool");
        }
        for i in 0..opts.nodes {
            let child = c.spawn_node(i);
            c.nodes.push(Some(child));
        }
        if opts.pool.is_some() {
            c.wait_settled(opts.nodes);
        } else {
            c.wait_idle(opts.nodes);
        }
        c
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A node's root directory.
    pub fn node_root(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}", i + 1))
    }

    /// Starts (or restarts, on the same port) the head.
    pub fn start_head(&mut self) {
        let extra: Vec<&std::ffi::OsStr> = self.opts.head_args.iter().map(std::ffi::OsStr::new).collect();
        let o = &self.opts;
        let (child, config) =
            spawn_head_with(self.dir.path(), &self.listen, o.slots, o.node_timeout, o.heartbeat, &extra);
        self.head = Some(child);
        self.config = config;
        self.listen = self.config.url.trim_start_matches("https://").to_owned();
    }

    /// SIGKILLs the head.
    pub fn kill_head(&mut self) {
        if let Some(mut h) = self.head.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }

    fn spawn_node(&self, i: usize) -> Child {
        let name = format!("node{}", i + 1);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log");
        let mut cmd = Command::new(bin("gangway-node"));
        cmd.args(["--head", &self.config.url])
            .args(join_args(&self.state_dir(), &self.config))
            .args(["--name", &name, "--root"])
            .arg(self.node_root(i))
            .args(["--kill-grace", self.opts.kill_grace, "--log-level", "debug"]);
        if let Some(p) = &self.opts.pool {
            cmd.args(["--pool", &p.id]);
        }
        if let Some(x) = &self.opts.topology_xml {
            cmd.arg("--topology-xml").arg(x);
        }
        if let Some(s) = &self.opts.synthetic {
            cmd.args(["--synthetic", s]);
        }
        if let Some(n) = self.opts.task_pids_max {
            cmd.args(["--task-pids-max", &n.to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting gangway-node")
    }

    /// (Re)starts launcher `i`.
    pub fn start_node(&mut self, i: usize) {
        let child = self.spawn_node(i);
        self.nodes[i] = Some(child);
    }

    /// SIGKILLs launcher `i`. Its plain tasks and batch scripts go on under their supervisors
    /// (a restarted launcher takes them back); multi-instance and managed-MPI work dies with it.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut n) = self.nodes[i].take() {
            let _ = n.kill();
            let _ = n.wait();
        }
    }

    /// A client with the admin token.
    pub fn client(&self) -> Client {
        Client::new(&self.config).expect("client")
    }

    /// Waits until at least `n` nodes are idle.
    pub fn wait_idle(&self, n: usize) {
        let mut c = self.client();
        wait_for(Duration::from_secs(20), "nodes to become idle", || {
            let nodes = c.list_nodes(None).ok()?;
            (nodes.iter().filter(|x| x.state == NodeState::Idle).count() >= n).then_some(())
        });
    }

    /// Waits until at least `n` nodes have joined and are past their start task (or failed it).
    pub fn wait_settled(&self, n: usize) {
        let mut c = self.client();
        wait_for(Duration::from_secs(20), "nodes to finish their start task", || {
            let nodes = c.list_nodes(None).ok()?;
            let settled = |s: NodeState| !matches!(s, NodeState::Starting | NodeState::WaitingForStartTask);
            (nodes.iter().filter(|x| settled(x.state)).count() >= n).then_some(())
        });
    }

    /// Runs the `gangway` CLI against this cluster; returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("gangway"))
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .env_remove("GANGWAY_URL")
            .env_remove("GANGWAY_TOKEN")
            .output()
            .expect("running gangway");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The head's log so far (for assertion messages).
    pub fn head_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("head.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_launchers(self.nodes.iter_mut().filter_map(Option::take).collect());
        self.kill_head();
        for i in 0..self.nodes.len() {
            remove_node_cgroups(&format!("node{}", i + 1), &self.node_root(i));
        }
    }
}

/// `text` without its terminal colour sequences (`ESC [ … m`), as logs written by a process
/// that took its output for a terminal carry them.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits (up to 15 s) until no task cgroup under any of these launchers and no process of a
/// task of these nodes (or a task's supervisor) is left, and fails naming what is.
pub fn assert_nothing_left(nodes: &[(String, PathBuf)]) {
    let roots: Vec<String> = nodes.iter().map(|(_, r)| format!("AZ_BATCH_NODE_ROOT_DIR={}", r.display())).collect();
    let left = || [task_cgroups_left(nodes), processes_with_env(&roots)].concat();
    let deadline = Instant::now() + Duration::from_secs(15);
    let last = loop {
        let last = left();
        if last.is_empty() || Instant::now() > deadline {
            break last;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(last.is_empty(), "left behind: {last:#?}");
}

/// Removes (killing what is inside) the cgroups a launcher for `node` at `root` made: a
/// launcher a test SIGKILLed and never restarted cannot do it itself.
pub fn remove_node_cgroups(node: &str, root: &Path) {
    if root.exists() {
        // Creating reuses the directories after killing their contents; dropping removes them.
        drop(gangway_launcher::cgroup::NodeCgroups::create(&gangway_launcher::cgroup_name(node, root)));
    }
}

/// A topology fixture kept in the repository (`topology/tests/fixtures`).
pub fn topology_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology/tests/fixtures").join(rel)
}

/// Cgroup directories a launcher left behind (there should be none once it stopped).
pub fn leftover_cgroups(node: &str, root: &Path) -> Vec<PathBuf> {
    let node = gangway_launcher::cgroup_name(node, root);
    let mut out = Vec::new();
    for root in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpuset",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/devices",
        "/sys/fs/cgroup/unified",
    ] {
        let p = Path::new(root).join(format!("gangway.{node}"));
        if p.exists() {
            out.push(p);
        }
    }
    out
}

/// Task cgroups still under the launcher cgroups of `nodes` (name, root): none once every
/// task has ended and been cleaned up.
pub fn task_cgroups_left(nodes: &[(String, PathBuf)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, root) in nodes {
        for node_cg in leftover_cgroups(name, root) {
            let children = std::fs::read_dir(&node_cg).into_iter().flatten().flatten().map(|e| e.path());
            found.extend(children.filter(|p| p.is_dir()).map(|p| format!("cgroup {}", p.display())));
        }
    }
    found
}

/// Processes whose environment holds one of `vars` (each `NAME=value`), as `pid: cmdline`.
pub fn processes_with_env(vars: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(env) = std::fs::read(p.path().join("environ")) else { continue };
        if String::from_utf8_lossy(&env).split('\0').any(|v| vars.iter().any(|d| v == d)) {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            found.push(format!("{:?}: {}", p.file_name(), String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    found
}

/// An MPI program (C, MPICH) whose ranks print `rank=R size=S sum=T` (T = the allreduce of
/// rank+1), compiled into `dir`. Panics, naming scripts/deps.sh, when MPICH is missing.
pub fn compile_mpich_hello(dir: &Path) -> PathBuf {
    compile_hello(dir, "mpicc.mpich", "hello")
}

/// The same program built against Open MPI, as `hello-ompi`.
pub fn compile_openmpi_hello(dir: &Path) -> PathBuf {
    compile_hello(dir, "mpicc.openmpi", "hello-ompi")
}

/// An Open MPI program that prints its rank, the world's size, an allreduce, how many ranks
/// share its node (from PMIx's locality) and its node's name; `abort` makes rank 1 call
/// `MPI_Abort(…, 7)` and `die` makes rank 1 exit without finalizing, after the allreduce;
/// `wait FILE` makes every rank wait for FILE to exist before it finalizes.
const OMPI_RANKS_C: &str = "#include <mpi.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
    #include <unistd.h>\n\
    static const char *host(void) {\n\
        const char *h = getenv(\"SLURMD_NODENAME\");\n\
        return h ? h : getenv(\"AZ_BATCH_NODE_ID\");\n\
    }\n\
    int main(int argc, char **argv) {\n\
        int rank, size, sum, one, local;\n\
        MPI_Comm node;\n\
        MPI_Init(&argc, &argv);\n\
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n\
        MPI_Comm_size(MPI_COMM_WORLD, &size);\n\
        one = rank + 1;\n\
        MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n\
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);\n\
        MPI_Comm_size(node, &local);\n\
        printf(\"rank=%d size=%d sum=%d local=%d host=%s\\n\", rank, size, sum, local, host());\n\
        fflush(stdout);\n\
        if (argc > 1 && rank == 1 && !strcmp(argv[1], \"abort\")) MPI_Abort(MPI_COMM_WORLD, 7);\n\
        if (argc > 1 && rank == 1 && !strcmp(argv[1], \"die\")) _exit(3);\n\
        if (argc > 2 && !strcmp(argv[1], \"wait\")) while (access(argv[2], F_OK) != 0) usleep(20000);\n\
        if (argc > 1) MPI_Barrier(MPI_COMM_WORLD);\n\
        MPI_Finalize();\n\
        return 0;\n\
    }\n";

/// [`OMPI_RANKS_C`] compiled against Open MPI as `dir/ranks-ompi`.
pub fn compile_openmpi_ranks(dir: &Path) -> PathBuf {
    compile_mpi(dir, "mpicc.openmpi", "ranks-ompi", OMPI_RANKS_C)
}

fn compile_hello(dir: &Path, compiler: &str, name: &str) -> PathBuf {
    compile_mpi(dir, compiler, name, HELLO_C)
}

const HELLO_C: &str = "#include <mpi.h>\n#include <stdio.h>\n\
        int main(int argc, char **argv) {\n\
            int rank, size, sum, one;\n\
            MPI_Init(&argc, &argv);\n\
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n\
            MPI_Comm_size(MPI_COMM_WORLD, &size);\n\
            one = rank + 1;\n\
            MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n\
            printf(\"rank=%d size=%d sum=%d\\n\", rank, size, sum);\n\
            MPI_Finalize();\n\
            return 0;\n\
        }\n";

fn compile_mpi(dir: &Path, compiler: &str, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, source).expect("writing the MPI program");
    let out = Command::new(compiler).arg("-o").arg(&exe).arg(&src).output().unwrap_or_else(|e| {
        panic!("{compiler} cannot run ({e}): run scripts/deps.sh (it installs MPICH and Open MPI with their headers)")
    });
    assert!(out.status.success(), "{compiler} failed: {}", String::from_utf8_lossy(&out.stderr));
    exe
}

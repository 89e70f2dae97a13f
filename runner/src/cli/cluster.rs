//! `gangway up`, `gangway down` and `gangway head`: an embedded cluster on this machine.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::client::{Client, ClientConfig};
use gangway_api::NodeState;
use serde::{Deserialize, Serialize};

/// The processes of a cluster started by `gangway up` (`DIR/cluster.pids`).
#[derive(Debug, Serialize, Deserialize)]
struct Pids {
    head: i32,
    nodes: Vec<i32>,
    /// The launchers' root directories, removed by `gangway down`.
    #[serde(default)]
    node_roots: Vec<PathBuf>,
    /// `--nodes-dir`, removed by `gangway down` when that leaves it empty.
    #[serde(default)]
    nodes_dir: Option<PathBuf>,
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding the gangway binary")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!("{} not found next to {}; build it with `cargo build --bins`", name, me.display());
    }
    Ok(path)
}

/// `gangway slurm COMMAND ARGS…`: becomes `gangway-slurm COMMAND ARGS…` (exec, so its exit
/// status and signals are the command's own), pointed at this cluster's state directory.
pub fn slurm(args: &[String], state_dir: Option<&Path>) -> anyhow::Result<i32> {
    let mut cmd = Command::new(sibling_binary("gangway-slurm")?);
    cmd.args(args);
    if let Some(dir) = state_dir {
        cmd.env("GANGWAY_STATE_DIR", dir);
    }
    Err(anyhow::Error::new(cmd.exec()).context("running gangway-slurm"))
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    let f = std::fs::File::create(dir.join(name)).with_context(|| format!("creating {}", dir.join(name).display()))?;
    Ok(Stdio::from(f))
}

fn spawn(mut cmd: Command, detach: bool) -> anyhow::Result<i32> {
    // SAFETY: the hooks call only setsid/prctl, which are async-signal-safe.
    unsafe {
        if detach {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        } else {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let child = cmd.stdin(Stdio::null()).spawn().with_context(|| format!("starting {cmd:?}"))?;
    Ok(child.id() as i32)
}

/// Options of `gangway up`.
pub struct UpOptions {
    /// Launchers to start.
    pub nodes: u32,
    /// Where the cluster keeps its state.
    pub state_dir: PathBuf,
    /// Return once the nodes are idle.
    pub detach: bool,
    /// Task slots per node of the default pool.
    pub slots_per_node: u32,
    /// Node-lost timeout passed to the head.
    pub node_timeout: String,
    /// Address for the head to listen on.
    pub listen: String,
    /// Where the node root directories go (default: STATE_DIR/nodes).
    pub nodes_dir: Option<PathBuf>,
    /// A topology every node declares instead of this machine's: `--topology-xml FILE` or
    /// `--synthetic STR`, as `gangway-node` takes them.
    pub topology: Option<(&'static str, std::ffi::OsString)>,
    /// Memory (MiB) each node keeps for itself.
    pub memory_reserve: u64,
}

/// Starts the head and N launchers; waits until every node is idle.
pub fn up(o: UpOptions) -> anyhow::Result<()> {
    let dir = &o.state_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pids_path = dir.join("cluster.pids");
    if let Ok(text) = std::fs::read_to_string(&pids_path) {
        if let Ok(p) = serde_json::from_str::<Pids>(&text) {
            if alive(p.head) {
                bail!(
                    "a cluster is already running from {} (head pid {}); stop it with `gangway down`",
                    dir.display(),
                    p.head
                );
            }
        }
    }
    let _ = std::fs::remove_file(dir.join("client.json"));
    let exe = std::env::current_exe().context("finding the gangway binary")?;
    let mut head = Command::new(&exe);
    head.args(["head", "--state-dir"])
        .arg(dir)
        .args([
            "--listen",
            &o.listen,
            "--default-slots",
            &o.slots_per_node.to_string(),
            "--node-timeout",
            &o.node_timeout,
        ])
        .stdout(log_file(dir, "head.log")?)
        .stderr(log_file(dir, "head.log")?);
    let head_pid = spawn(head, o.detach)?;
    let nodes_dir = o.nodes_dir.clone().unwrap_or_else(|| dir.join("nodes"));
    let mut pids =
        Pids { head: head_pid, nodes: Vec::new(), node_roots: Vec::new(), nodes_dir: Some(nodes_dir.clone()) };
    let result = (|| {
        let config = wait_for_head(dir, head_pid)?;
        let node_bin = sibling_binary("gangway-node")?;
        // The launchers join with one token for all of them (nodes that joined before keep
        // their certificates).
        let token_file = dir.join("join.token");
        Client::new(&config)?.write_join_token(o.nodes, &token_file)?;
        let ca = config.ca.clone().context("the head's client.json names no CA")?;
        for i in 1..=o.nodes {
            let name = format!("node{i}");
            let mut cmd = Command::new(&node_bin);
            cmd.args(["--head", &config.url, "--ca"])
                .arg(&ca)
                .arg("--join-token-file")
                .arg(&token_file)
                .args(["--name", &name, "--memory-reserve", &o.memory_reserve.to_string(), "--root"])
                .arg(nodes_dir.join(&name))
                .stdout(log_file(dir, &format!("{name}.log"))?)
                .stderr(log_file(dir, &format!("{name}.log"))?);
            if let Some((flag, value)) = &o.topology {
                cmd.arg(flag).arg(value);
            }
            pids.nodes.push(spawn(cmd, o.detach)?);
            pids.node_roots.push(nodes_dir.join(&name));
        }
        std::fs::write(&pids_path, serde_json::to_vec(&pids)?).context("writing cluster.pids")?;
        wait_for_nodes(&config, o.nodes, &pids)?;
        Ok::<_, anyhow::Error>(config)
    })();
    let config = match result {
        Ok(c) => c,
        Err(e) => {
            stop(&pids);
            let _ = std::fs::remove_file(&pids_path);
            return Err(e);
        }
    };
    gangway_api::errln!("gangway: cluster up at {} with {} node(s); state in {}", config.url, o.nodes, dir.display());
    if o.detach {
        return Ok(());
    }
    gangway_api::errln!("gangway: press Ctrl-C to stop it");
    wait_for_signal();
    stop(&pids);
    let _ = std::fs::remove_file(&pids_path);
    Ok(())
}

fn wait_for_head(dir: &Path, pid: i32) -> anyhow::Result<ClientConfig> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = ClientConfig::from_state_dir(dir) {
            return Ok(c);
        }
        if !alive(pid) {
            let log = std::fs::read_to_string(dir.join("head.log")).unwrap_or_default();
            bail!("the head exited during start-up:\n{log}");
        }
        if Instant::now() > deadline {
            bail!("the head did not start within 30 s (see {})", dir.join("head.log").display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_for_nodes(config: &ClientConfig, n: u32, pids: &Pids) -> anyhow::Result<()> {
    let mut client = Client::new(config)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = client.list_nodes(None)?;
        let idle = nodes.iter().filter(|x| x.state == NodeState::Idle).count() as u32;
        if idle >= n {
            return Ok(());
        }
        if let Some(dead) = pids.nodes.iter().position(|p| !alive(*p)) {
            bail!("launcher node{} exited during start-up (see its log in the state directory)", dead + 1);
        }
        if Instant::now() > deadline {
            bail!("only {idle} of {n} nodes became idle within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_for_signal() {
    // SAFETY: standard sigwait on a blocked set; no handlers involved.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}

fn terminate(pid: i32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    // SAFETY: kill(2) on a process this cluster started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        // Reap it if it is our child; harmless otherwise.
        // SAFETY: non-blocking waitpid on one pid.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
}

fn stop(pids: &Pids) {
    // Launchers first: they kill their tasks and remove their cgroups.
    for &p in &pids.nodes {
        // SAFETY: kill(2) on a process this cluster started.
        if alive(p) {
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
    }
    for &p in &pids.nodes {
        terminate(p, Duration::from_secs(15));
    }
    terminate(pids.head, Duration::from_secs(10));
}

/// `gangway down`: stops the cluster that `gangway up --detach` started from `dir`.
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let pids_path = dir.join("cluster.pids");
    let text = std::fs::read_to_string(&pids_path)
        .with_context(|| format!("no cluster was started from {} (no cluster.pids)", dir.display()))?;
    let pids: Pids = serde_json::from_str(&text).with_context(|| format!("{} is not valid", pids_path.display()))?;
    stop(&pids);
    // The launchers' directories go with them (their tasks' files included), and the
    // `--nodes-dir` with them when nothing else is in it.
    for root in &pids.node_roots {
        if let Err(e) = std::fs::remove_dir_all(root) {
            if e.kind() != std::io::ErrorKind::NotFound {
                gangway_api::errln!("gangway: removing {}: {e}", root.display());
            }
        }
    }
    if let Some(d) = &pids.nodes_dir {
        let _ = std::fs::remove_dir(d);
    }
    std::fs::remove_file(&pids_path).with_context(|| format!("removing {}", pids_path.display()))?;
    gangway_api::errln!("gangway: cluster in {} stopped", dir.display());
    Ok(())
}

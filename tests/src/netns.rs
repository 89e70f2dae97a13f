//! A multi-host test cluster on one machine: K Linux network namespaces joined by veth pairs to
//! a bridge, one `gangway-node` per namespace with its own address, node name, root directory
//! and (optionally) declared topology, and the head outside them on the bridge's address.
//!
//! Each cluster reserves its own /24 (10.201.N.0/24) with an exclusive lock file, so clusters
//! in parallel test processes never collide; everything it creates is removed on drop, also
//! when the test fails. Needs root (CAP_NET_ADMIN) and iproute2.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gangway_api::client::{Client, ClientConfig};
use gangway_api::NodeState;

use crate::{bin, spawn_head_with, stop_launchers, wait_for};

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether namespaces can be made here (root with iproute2).
pub fn available() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// Options for a namespace cluster.
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// Number of hosts (namespaces), one launcher each.
    pub hosts: usize,
    /// Slots per node of the default pool.
    pub slots: u32,
    /// Head's node-lost timeout.
    pub node_timeout: &'static str,
    /// Launcher heartbeat.
    pub heartbeat: &'static str,
    /// Declared topology per host (None: the machine's own).
    pub topology_xml: Option<PathBuf>,
    /// A topology.conf for the head (`--fabric`).
    pub fabric: Option<PathBuf>,
    /// More arguments for `gangway head` (such as `--munge-socket PATH`).
    pub head_args: Vec<String>,
}

impl Default for NetOptions {
    fn default() -> NetOptions {
        NetOptions {
            hosts: 2,
            slots: 1,
            node_timeout: "2s",
            heartbeat: "300ms",
            topology_xml: None,
            fabric: None,
            head_args: Vec::new(),
        }
    }
}

/// One namespace host.
pub struct Host {
    /// Namespace name.
    pub netns: String,
    /// Node name (`host1`…).
    pub name: String,
    /// Its address on the bridge.
    pub address: String,
    /// Host-side veth (set it down to cut the link).
    pub veth: String,
    /// Its launcher, when running.
    pub launcher: Option<Child>,
}

/// A running namespace cluster.
pub struct NetCluster {
    /// Temporary directory: state and node roots.
    pub dir: tempfile::TempDir,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// The head process.
    pub head: Option<Child>,
    /// URL and token.
    pub config: ClientConfig,
    bridge: String,
    subnet: u8,
    opts: NetOptions,
    _lock: File,
}

fn reserve_subnet() -> (u8, File) {
    for n in 1..=250u8 {
        let path = std::env::temp_dir().join(format!("gangway-netns-10.201.{n}.lock"));
        let Ok(f) = File::create(&path) else { continue };
        // SAFETY: flock(2) on a file we own; released when the File is dropped.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return (n, f);
        }
    }
    panic!("no free 10.201.N.0/24 test subnet (250 in use?)");
}

impl NetCluster {
    /// Creates the namespaces and bridge, starts the head and one launcher per host, and waits
    /// until every node is idle.
    pub fn start(opts: NetOptions) -> NetCluster {
        let (subnet, lock) = reserve_subnet();
        let dir = tempfile::Builder::new().prefix("gangway-netns").tempdir().expect("temp dir");
        let bridge = format!("gwbr{subnet}");
        let mut c = NetCluster {
            dir,
            hosts: Vec::new(),
            head: None,
            config: ClientConfig { url: String::new(), token: String::new(), socket: None, munge: None, ca: None },
            bridge: bridge.clone(),
            subnet,
            opts: opts.clone(),
            _lock: lock,
        };
        // Leftovers of a crashed earlier run with the same subnet go first.
        c.teardown_network();
        ip(&["link", "add", &bridge, "type", "bridge"]).expect("creating the bridge");
        ip(&["addr", "add", &format!("10.201.{subnet}.1/24"), "dev", &bridge]).expect("bridge address");
        ip(&["link", "set", &bridge, "up"]).expect("bridge up");
        for k in 0..opts.hosts {
            let netns = format!("gw{subnet}h{}", k + 1);
            let veth = format!("gw{subnet}v{}", k + 1);
            let peer = format!("gw{subnet}p{}", k + 1);
            let address = format!("10.201.{subnet}.{}", k + 11);
            ip(&["netns", "add", &netns]).expect("netns add");
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]).expect("veth");
            ip(&["link", "set", &peer, "netns", &netns]).expect("move veth");
            ip(&["link", "set", &veth, "master", &bridge]).expect("attach veth");
            ip(&["link", "set", &veth, "up"]).expect("veth up");
            ip(&["-n", &netns, "link", "set", &peer, "name", "eth0"]).expect("rename");
            ip(&["-n", &netns, "addr", "add", &format!("{address}/24"), "dev", "eth0"]).expect("addr");
            ip(&["-n", &netns, "link", "set", "eth0", "up"]).expect("eth0 up");
            ip(&["-n", &netns, "link", "set", "lo", "up"]).expect("lo up");
            c.hosts.push(Host { netns, name: format!("host{}", k + 1), address, veth, launcher: None });
        }
        c.start_head();
        for k in 0..opts.hosts {
            c.start_launcher(k);
        }
        c.wait_idle(opts.hosts);
        c
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Root directory of host `k`.
    pub fn root(&self, k: usize) -> PathBuf {
        self.dir.path().join(&self.hosts[k].name)
    }

    /// Starts the head on the bridge address (outside every namespace).
    pub fn start_head(&mut self) {
        let listen = match self.config.url.strip_prefix("https://") {
            Some(addr) => addr.to_owned(),
            None => format!("10.201.{}.1:0", self.subnet),
        };
        let mut extra: Vec<&std::ffi::OsStr> = match &self.opts.fabric {
            Some(f) => vec!["--fabric".as_ref(), f.as_os_str()],
            None => Vec::new(),
        };
        extra.extend(self.opts.head_args.iter().map(std::ffi::OsStr::new));
        let (child, config) = spawn_head_with(
            self.dir.path(),
            &listen,
            self.opts.slots,
            self.opts.node_timeout,
            self.opts.heartbeat,
            &extra,
        );
        self.head = Some(child);
        self.config = config;
    }

    /// SIGKILLs the head.
    pub fn kill_head(&mut self) {
        if let Some(mut h) = self.head.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }

    /// Starts the launcher of host `k` inside its namespace.
    pub fn start_launcher(&mut self, k: usize) {
        let root = self.root(k);
        let h = &self.hosts[k];
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", h.name)))
            .expect("log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &h.netns])
            .arg(bin("gangway-node"))
            .args(["--head", &self.config.url])
            .args(crate::join_args(&self.state_dir(), &self.config))
            .args(["--name", &h.name, "--address", &h.address, "--root"])
            .arg(&root)
            .args(["--kill-grace", "1s", "--log-level", "debug"]);
        if let Some(x) = &self.opts.topology_xml {
            cmd.arg("--topology-xml").arg(x);
        }
        let child =
            cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).spawn().expect("ip netns exec");
        self.hosts[k].launcher = Some(child);
    }

    /// SIGKILLs the launcher of host `k` (`ip netns exec` execs it, so the pid is the launcher's).
    pub fn kill_launcher(&mut self, k: usize) {
        if let Some(mut c) = self.hosts[k].launcher.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Cuts (false) or restores (true) host `k`'s link to the bridge.
    pub fn set_link(&self, k: usize, up: bool) {
        ip(&["link", "set", &self.hosts[k].veth, if up { "up" } else { "down" }]).expect("ip link set");
    }

    /// A client with the admin token.
    pub fn client(&self) -> Client {
        Client::new(&self.config).expect("client")
    }

    /// Waits until at least `n` nodes are idle.
    pub fn wait_idle(&self, n: usize) {
        let mut c = self.client();
        wait_for(Duration::from_secs(30), "namespace nodes to become idle", || {
            let nodes = c.list_nodes(None).ok()?;
            (nodes.iter().filter(|x| x.state == NodeState::Idle).count() >= n).then_some(())
        });
    }

    /// The head's log (for assertion messages).
    pub fn head_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("head.log")).unwrap_or_default()
    }

    fn teardown_network(&self) {
        for k in 1..=16 {
            let _ = ip(&["netns", "del", &format!("gw{}h{k}", self.subnet)]);
            let _ = ip(&["link", "del", &format!("gw{}v{k}", self.subnet)]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }

    /// The bridge joining the hosts (its address is the head's).
    pub fn bridge_name(&self) -> String {
        self.bridge.clone()
    }

    /// Whether the namespaces of this cluster still exist (for tests of the teardown itself).
    pub fn netns_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.netns.clone()).collect()
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        stop_launchers(self.hosts.iter_mut().filter_map(|h| h.launcher.take()).collect());
        self.kill_head();
        for k in 0..self.hosts.len() {
            crate::remove_node_cgroups(&self.hosts[k].name, &self.root(k));
        }
        self.teardown_network();
    }
}

/// Whether a namespace exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

//! Nodes and partitions in Slurm's terms, for `sinfo` and `scontrol show node|partition`:
//! a partition is a gangway pool, and a node's Slurm state is derived from its gangway state,
//! its scheduling state and how busy it is.
//!
//! State mapping (compact / long / `scontrol` form):
//!
//! | gangway node                                  | Slurm                                  |
//! |-----------------------------------------------|----------------------------------------|
//! | `idle`, scheduling enabled                    | `idle` / `IDLE`                        |
//! | `running`, some CPUs or slots free            | `mix` / `MIXED`                        |
//! | `running`, every slot (or CPU) taken          | `alloc` / `ALLOCATED`                  |
//! | scheduling disabled (`offline`, or `idle`)     | `drain` / `DRAINED` / `IDLE+DRAIN`     |
//! | scheduling disabled with tasks still running  | `drng` / `DRAINING` / `MIXED+DRAIN`    |
//! | `leavingpool`                                 | `drng` or `drain`, as above            |
//! | `starting`, `waitingforstarttask`             | `pow_up` / `POWERING_UP`               |
//! | `starttaskfailed`                             | `down` / `DOWN` (reason: start task)   |
//! | `unusable` (lost past `--node-timeout`)       | `down*` / `DOWN` / `DOWN+NOT_RESPONDING` |
//! | `unknown` (connection lost, not yet timed out) | the busy state with `*` (`idle*`, `mix*`) |
//!
//! `*` is Slurm's "not responding" mark. CPUs allocated on a node are the CPUs of the running
//! Slurm jobs placed on it (a job's CPUs spread evenly over its nodes), at least what the
//! node's busy slots stand for.

use gangway_api::slurm::{SlurmJob, SlurmJobState};
use gangway_api::{ComputeNode, NodeState, Pool, SchedulingState};

/// The pool sbatch uses without `-p`: Slurm's default partition, marked `*` by sinfo.
pub const DEFAULT_PARTITION: &str = "default";

/// A node's state in Slurm's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlurmNodeState {
    /// The base state.
    pub base: Base,
    /// Not responding (`*`).
    pub no_respond: bool,
}

/// Slurm's base node states gangway produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `idle`.
    Idle,
    /// `mix`.
    Mixed,
    /// `alloc`.
    Allocated,
    /// `drain` (drained, nothing running).
    Drained,
    /// `drng` (draining, jobs still running).
    Draining,
    /// `down`.
    Down,
    /// `pow_up`.
    PoweringUp,
}

impl SlurmNodeState {
    /// sinfo's `%t`: `idle`, `mix*`, …
    pub fn compact(self) -> String {
        let s = match self.base {
            Base::Idle => "idle",
            Base::Mixed => "mix",
            Base::Allocated => "alloc",
            Base::Drained => "drain",
            Base::Draining => "drng",
            Base::Down => "down",
            Base::PoweringUp => "pow_up",
        };
        if self.no_respond {
            format!("{s}*")
        } else {
            s.to_string()
        }
    }

    /// sinfo's `%T`: `IDLE`, `MIXED*`, …
    pub fn long(self) -> String {
        let s = match self.base {
            Base::Idle => "IDLE",
            Base::Mixed => "MIXED",
            Base::Allocated => "ALLOCATED",
            Base::Drained => "DRAINED",
            Base::Draining => "DRAINING",
            Base::Down => "DOWN",
            Base::PoweringUp => "POWERING_UP",
        };
        if self.no_respond {
            format!("{s}*")
        } else {
            s.to_string()
        }
    }

    /// `scontrol show node`'s `State=`: `IDLE`, `MIXED+DRAIN`, `DOWN+NOT_RESPONDING`, …
    pub fn scontrol(self, busy: Base) -> String {
        let s = match self.base {
            Base::Drained => "IDLE+DRAIN".to_string(),
            Base::Draining => format!("{}+DRAIN", if busy == Base::Allocated { "ALLOCATED" } else { "MIXED" }),
            _ => self.long(),
        };
        let s = s.trim_end_matches('*').to_string();
        if self.no_respond {
            s + "+NOT_RESPONDING"
        } else {
            s
        }
    }

    /// Whether a `-t` word (compact or long, any case) names this state.
    pub fn is_named(self, word: &str) -> bool {
        let w = word.to_ascii_lowercase();
        let names: &[&str] = match self.base {
            Base::Idle => &["idle"],
            Base::Mixed => &["mix", "mixed"],
            Base::Allocated => &["alloc", "allocated"],
            Base::Drained => &["drain", "drained"],
            Base::Draining => &["drng", "draining", "drain"],
            Base::Down => &["down"],
            Base::PoweringUp => &["pow_up", "powering_up", "powered_up"],
        };
        names.contains(&w.as_str()) || (self.no_respond && (w == "no_respond" || w == "not_responding"))
    }
}

/// Every node state word `sinfo -t` takes.
pub const NODE_STATE_WORDS: [&str; 20] = [
    "alloc",
    "allocated",
    "cloud",
    "comp",
    "completing",
    "down",
    "drain",
    "drained",
    "draining",
    "drng",
    "fail",
    "failing",
    "future",
    "idle",
    "maint",
    "mix",
    "mixed",
    "no_respond",
    "pow_up",
    "unk",
];

/// A node as sinfo and scontrol see it.
#[derive(Debug, Clone)]
pub struct NodeView<'a> {
    /// The node.
    pub node: &'a ComputeNode,
    /// Its Slurm state.
    pub state: SlurmNodeState,
    /// How busy it is, ignoring drain and responsiveness (`Idle`, `Mixed`, `Allocated`).
    pub busy: Base,
    /// CPUs allocated to running jobs.
    pub alloc_cpus: u32,
    /// Why it is down or drained (`none` otherwise).
    pub reason: &'static str,
}

/// CPUs the node has, as Slurm counts them (logical CPUs).
pub fn cpus(node: &ComputeNode) -> u32 {
    node.resources.cpus.max(1)
}

/// Sockets, cores per socket and threads per core.
pub fn sct(node: &ComputeNode) -> (u32, u32, u32) {
    let sockets = node.topology.as_ref().map_or(1, |t| t.packages.len() as u32).max(1);
    let cores = node.resources.cores.max(1);
    let threads = (cpus(node) / cores).max(1);
    ((sockets), (cores / sockets).max(1), threads)
}

/// Memory in MiB (Slurm's `RealMemory`).
pub fn memory_mb(node: &ComputeNode) -> u64 {
    node.resources.memory_bytes / (1024 * 1024)
}

/// The Slurm view of `node` in `pool` (for its slot count), given the head's Slurm jobs.
pub fn view<'a>(node: &'a ComputeNode, pool: Option<&Pool>, jobs: &[SlurmJob]) -> NodeView<'a> {
    let total = cpus(node);
    let from_jobs: u32 = jobs
        .iter()
        .filter(|j| matches!(j.state, SlurmJobState::Running | SlurmJobState::Completing))
        .filter(|j| j.nodes.contains(&node.id))
        .map(|j| j.num_cpus.div_ceil(j.nodes.len().max(1) as u32))
        .sum();
    let slots = pool.map_or(1, |p| p.task_slots_per_node.max(1));
    let from_slots = (u64::from(total) * u64::from(node.running_task_slots_count) / u64::from(slots)) as u32;
    // Allocated cores' CPUs; slots-only tasks hold a share of the node's CPUs by their slots.
    let alloc_cpus = node.allocated.cpus.max(from_jobs).max(from_slots).min(total);
    let full = alloc_cpus >= total || node.running_task_slots_count >= slots;
    let busy = if full {
        Base::Allocated
    } else if alloc_cpus > 0 || node.running_task_slots_count > 0 {
        Base::Mixed
    } else {
        Base::Idle
    };
    let disabled = node.scheduling_state == SchedulingState::Disabled;
    let draining = if busy == Base::Idle { Base::Drained } else { Base::Draining };
    let (base, no_respond, reason) = match node.state {
        NodeState::Unusable => (Base::Down, true, "Not responding"),
        NodeState::StartTaskFailed => (Base::Down, false, "start task failed"),
        NodeState::Starting | NodeState::WaitingForStartTask => (Base::PoweringUp, false, "none"),
        NodeState::LeavingPool => (draining, false, "being removed"),
        NodeState::Offline => (draining, false, "scheduling disabled"),
        NodeState::Unknown => (if disabled { draining } else { busy }, true, "Not responding"),
        NodeState::Idle | NodeState::Running if disabled => (draining, false, "scheduling disabled"),
        NodeState::Idle | NodeState::Running => (busy, false, "none"),
    };
    NodeView { node, state: SlurmNodeState { base, no_respond }, busy, alloc_cpus, reason }
}

/// One partition: its pool (if the head has it) and its nodes' views, nodes sorted by name.
#[derive(Debug, Clone)]
pub struct PartitionView<'a> {
    /// The partition's name.
    pub name: String,
    /// Its pool.
    pub pool: Option<&'a Pool>,
    /// Its nodes.
    pub nodes: Vec<NodeView<'a>>,
}

impl PartitionView<'_> {
    /// Its `MaxTime` and `DefaultTime` in seconds (None: unlimited / none).
    pub fn time_limits(&self) -> (Option<u64>, Option<u64>) {
        let secs = |d: Option<gangway_api::IsoDuration>| d.map(|d| d.0.as_secs());
        self.pool.map_or((None, None), |p| (secs(p.max_time_limit), secs(p.default_time_limit)))
    }

    /// sinfo's `%P`: the name, `*` after the default partition's.
    pub fn display_name(&self) -> String {
        if self.name == DEFAULT_PARTITION {
            format!("{}*", self.name)
        } else {
            self.name.clone()
        }
    }

    /// `up`, or `down` while its pool is being deleted.
    pub fn avail(&self) -> &'static str {
        match self.pool.map(|p| p.state) {
            Some(gangway_api::PoolState::Deleting) => "down",
            _ => "up",
        }
    }
}

/// The partitions (pools in the head's order, then any pool only nodes name) with their nodes.
pub fn partitions<'a>(pools: &'a [Pool], nodes: &'a [ComputeNode], jobs: &[SlurmJob]) -> Vec<PartitionView<'a>> {
    let mut names: Vec<String> = pools.iter().map(|p| p.id.clone()).collect();
    for n in nodes {
        if !names.contains(&n.pool_id) {
            names.push(n.pool_id.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let pool = pools.iter().find(|p| p.id == name);
            let mut members: Vec<&ComputeNode> = nodes.iter().filter(|n| n.pool_id == name).collect();
            members.sort_by_key(|n| natural(&n.id));
            let nodes = members.into_iter().map(|n| view(n, pool, jobs)).collect();
            PartitionView { name, pool, nodes }
        })
        .collect()
}

/// A sort key that orders `node2` before `node10`, as Slurm's node table usually is.
fn natural(name: &str) -> (String, u64, String) {
    let digits_at = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, digits) = name.split_at(digits_at);
    (stem.to_string(), digits.parse().unwrap_or(0), name.to_string())
}

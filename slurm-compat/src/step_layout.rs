//! Where the tasks of an `srun` step go, and the environment each node's tasks get — pure
//! functions of the request and the job's allocation (`SLURM_JOB_NODELIST`,
//! `SLURM_JOB_CPUS_PER_NODE`), checked against `mn-distribution.txt` and the `mn-step-*.env`
//! captures of the reference.

use gangway_api::slurm::compress_counts;

/// `-m/--distribution`: the order in which ranks fill the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Consecutive ranks on a node (the default).
    Block,
    /// Ranks dealt to the nodes one at a time.
    Cyclic,
    /// Ranks dealt to the nodes `N` at a time.
    Plane(u32),
}

impl Distribution {
    /// Reads `block`, `cyclic`, `plane=N`; a second level (`block:cyclic`) and `,Pack`/
    /// `,NoPack` only order CPUs within a node and are accepted.
    pub fn parse(spec: &str) -> Result<Distribution, String> {
        let first = spec.split([':', ',']).next().unwrap_or("");
        match first {
            "block" | "*" | "" => Ok(Distribution::Block),
            "cyclic" => Ok(Distribution::Cyclic),
            "arbitrary" => Err("--distribution=arbitrary is not supported by gangway".into()),
            _ => match first.strip_prefix("plane=").and_then(|n| n.parse::<u32>().ok()).filter(|n| *n > 0) {
                Some(n) => Ok(Distribution::Plane(n)),
                None => Err(format!(
                    "invalid --distribution '{spec}': expected block, cyclic or plane=<size>, optionally followed by :<cpu order>"
                )),
            },
        }
    }

    /// `SLURM_DISTRIBUTION`.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Block => "block",
            Distribution::Cyclic => "cyclic",
            Distribution::Plane(_) => "plane",
        }
    }
}

/// Each rank's node (an index into `capacity`), dealing tasks level by level as Slurm's
/// step layout does: a node takes tasks only up to its `capacity` (the tasks its CPUs hold)
/// until every node is full, and then all of them take more.
pub fn place_tasks(ntasks: u32, capacity: &[u32], dist: Distribution) -> Vec<u32> {
    let chunk = match dist {
        Distribution::Plane(p) => p,
        Distribution::Block | Distribution::Cyclic => 1,
    };
    let mut used = vec![0u32; capacity.len()];
    let mut order = Vec::with_capacity(ntasks as usize);
    let mut oversubscribe = false;
    while (order.len() as u32) < ntasks && !capacity.is_empty() {
        let mut placed = false;
        for (node, cap) in capacity.iter().enumerate() {
            let left = ntasks - order.len() as u32;
            let room = if oversubscribe { u32::MAX } else { cap.saturating_sub(used[node]) };
            let k = chunk.min(room).min(left);
            if k > 0 {
                used[node] += k;
                order.extend(std::iter::repeat_n(node as u32, k as usize));
                placed = true;
            }
        }
        oversubscribe |= !placed;
    }
    match dist {
        // Block keeps the counts and gives each node consecutive ranks.
        Distribution::Block => {
            (0u32..).zip(&used).flat_map(|(node, &n)| std::iter::repeat_n(node, n as usize)).collect()
        }
        Distribution::Cyclic | Distribution::Plane(_) => order,
    }
}

/// The ranks of each node, from each rank's node.
pub fn ranks_by_node(rank_nodes: &[u32], nodes: usize) -> Vec<Vec<u32>> {
    let mut by = vec![Vec::new(); nodes];
    for (rank, &node) in (0u32..).zip(rank_nodes) {
        by[node as usize].push(rank);
    }
    by
}

/// What the whole step looks like, for its environment.
#[derive(Debug, Clone)]
pub struct StepShape<'a> {
    /// The step's id.
    pub step: u32,
    /// Its nodes' names.
    pub nodes: &'a [String],
    /// Its nodes' CPUs.
    pub cpus: &'a [u32],
    /// Its nodes' ranks.
    pub ranks: &'a [Vec<u32>],
    /// The distribution.
    pub dist: Distribution,
    /// `-c`, when given.
    pub cpus_per_task: Option<u32>,
    /// srun's address, for the tasks' `SLURM_SRUN_COMM_*`.
    pub host: &'a str,
    /// srun's port.
    pub port: u16,
    /// The user's umask, as `0022`.
    pub umask: &'a str,
}

/// The variables srun sets over its own environment for node `i`'s tasks (`SLURM_PROCID`,
/// `SLURM_LOCALID`, `SLURM_GTIDS` and `SLURM_TASK_PID` are the node part's).
pub fn step_env(s: &StepShape<'_>, i: usize) -> Vec<(String, String)> {
    let ntasks: usize = s.ranks.iter().map(Vec::len).sum();
    let counts: Vec<u32> = s.ranks.iter().map(|r| r.len() as u32).collect();
    let nodelist = gangway_topology::hostlist::compress_hostlist(s.nodes);
    let job_cpus = std::env::var("SLURM_JOB_CPUS_PER_NODE").unwrap_or_else(|_| compress_counts(s.cpus));
    let mut env: Vec<(&str, String)> = vec![
        ("SLURMD_NODENAME", s.nodes[i].clone()),
        ("SLURM_CPUS_ON_NODE", s.cpus[i].to_string()),
        ("SLURM_DISTRIBUTION", s.dist.name().into()),
        ("SLURM_JOB_CPUS_PER_NODE_PACK_GROUP_0", job_cpus),
        ("SLURM_LAUNCH_NODE_IPADDR", s.host.into()),
        ("SLURM_NNODES", s.nodes.len().to_string()),
        ("SLURM_NODEID", i.to_string()),
        ("SLURM_NODELIST", nodelist.clone()),
        ("SLURM_NPROCS", ntasks.to_string()),
        ("SLURM_NTASKS", ntasks.to_string()),
        ("SLURM_SRUN_COMM_HOST", s.host.into()),
        ("SLURM_SRUN_COMM_PORT", s.port.to_string()),
        ("SLURM_STEPID", s.step.to_string()),
        ("SLURM_STEP_ID", s.step.to_string()),
        ("SLURM_STEP_LAUNCHER_PORT", s.port.to_string()),
        ("SLURM_STEP_NODELIST", nodelist),
        ("SLURM_STEP_NUM_NODES", s.nodes.len().to_string()),
        ("SLURM_STEP_NUM_TASKS", ntasks.to_string()),
        ("SLURM_STEP_TASKS_PER_NODE", compress_counts(&counts)),
        ("SLURM_TASKS_PER_NODE", compress_counts(&counts)),
        ("SLURM_TOPOLOGY_ADDR", s.nodes[i].clone()),
        ("SLURM_UMASK", s.umask.into()),
    ];
    if let Some(c) = s.cpus_per_task {
        env.push(("SLURM_CPUS_PER_TASK", c.to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ranks: &[u32]) -> Vec<&'static str> {
        ranks.iter().map(|n| ["node01", "node02", "node03", "node04"][*n as usize]).collect()
    }

    #[test]
    fn distributions_match_the_reference() {
        // mn-distribution.txt: --nodes=2 --ntasks=5, the job got 4 CPUs on node01 and 1 on node02.
        let cap = [4, 1];
        let block = place_tasks(5, &cap, Distribution::Block);
        assert_eq!(names(&block), ["node01", "node01", "node01", "node01", "node02"]);
        let cyclic = place_tasks(5, &cap, Distribution::Cyclic);
        assert_eq!(names(&cyclic), ["node01", "node02", "node01", "node01", "node01"]);
        let plane = place_tasks(5, &cap, Distribution::Plane(3));
        assert_eq!(names(&plane), ["node01", "node01", "node01", "node02", "node01"]);
        // srun -n2 -N2 --ntasks-per-node=1: capacity 1 per node.
        assert_eq!(place_tasks(2, &[1, 1], Distribution::Block), [0, 1]);
        // mn-step-N4-n8: 2 per node, task 5 on node03.
        let even = place_tasks(8, &[2, 2, 2, 2], Distribution::Block);
        assert_eq!(even, [0, 0, 1, 1, 2, 2, 3, 3]);
        // Beyond every node's CPUs the nodes take turns.
        assert_eq!(place_tasks(5, &[1, 1], Distribution::Block), [0, 0, 0, 1, 1]);
    }

    #[test]
    fn distribution_names_parse() {
        assert_eq!(Distribution::parse("block:cyclic"), Ok(Distribution::Block));
        assert_eq!(Distribution::parse("cyclic,Pack"), Ok(Distribution::Cyclic));
        assert_eq!(Distribution::parse("plane=3"), Ok(Distribution::Plane(3)));
        assert!(Distribution::parse("plane=0").is_err());
        assert!(Distribution::parse("sideways").is_err());
    }

    #[test]
    fn step_environment_as_in_mn_step() {
        let nodes: Vec<String> = (1..=4).map(|i| format!("node0{i}")).collect();
        let ranks = ranks_by_node(&place_tasks(8, &[2; 4], Distribution::Block), 4);
        let shape = StepShape {
            step: 0,
            nodes: &nodes,
            cpus: &[2; 4],
            ranks: &ranks,
            dist: Distribution::Block,
            cpus_per_task: None,
            host: "10.0.0.1",
            port: 42319,
            umask: "0022",
        };
        let env: std::collections::HashMap<String, String> = step_env(&shape, 2).into_iter().collect();
        for (k, v) in [
            ("SLURMD_NODENAME", "node03"),
            ("SLURM_NODEID", "2"),
            ("SLURM_STEP_NODELIST", "node[01-04]"),
            ("SLURM_STEP_TASKS_PER_NODE", "2(x4)"),
            ("SLURM_STEP_NUM_TASKS", "8"),
            ("SLURM_STEP_NUM_NODES", "4"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_CPUS_ON_NODE", "2"),
            ("SLURM_DISTRIBUTION", "block"),
        ] {
            assert_eq!(env[k], v, "{k}");
        }
        assert_eq!(ranks[2], [4, 5]);
    }
}

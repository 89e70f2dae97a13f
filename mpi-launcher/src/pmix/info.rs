//! What a PMIx namespace tells its ranks, as plain data: the job-level keys, this node's keys
//! and one array per rank, built from the step's map. Pure, so what Open MPI will read is
//! tested without the library; [`super::server`] hands it to `PMIx_server_register_nspace`.

/// A value of one key, typed as `pmix_common.h` documents the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    U32(u32),
    U16(u16),
    Bool(bool),
    /// `pmix_rank_t`.
    Rank(u32),
    /// A nested array of keys (`PMIX_PROC_DATA`).
    Infos(Vec<(&'static str, Value)>),
}

/// Where every rank of a step runs, as this node sees it.
#[derive(Debug, Clone, Default)]
pub struct StepMap {
    /// The namespace (the same on every node of the step).
    pub nspace: String,
    /// The job id shown to ranks (`PMIX_JOBID`), e.g. Slurm's `job.step`.
    pub job_id: String,
    /// The step's host names, by node index.
    pub hosts: Vec<String>,
    /// The node index of every rank, by rank.
    pub rank_nodes: Vec<u32>,
    /// This node's index.
    pub node: u32,
    /// The step's temporary directory on this node (`PMIX_TMPDIR`, `PMIX_NSDIR`).
    pub tmpdir: String,
    /// Each local rank's CPUs (OS numbers), where it is bound: `(rank, cpus)`.
    pub cpus: Vec<(u32, Vec<u32>)>,
    /// The user and group the ranks run as, where not the server's own.
    pub owner: Option<(u32, u32)>,
}

impl StepMap {
    /// The ranks on node `node`, in order.
    pub fn ranks_on(&self, node: u32) -> Vec<u32> {
        (0..self.rank_nodes.len() as u32).filter(|r| self.rank_nodes[*r as usize] == node).collect()
    }

    /// This node's ranks.
    pub fn local_ranks(&self) -> Vec<u32> {
        self.ranks_on(self.node)
    }

    /// `PMIx_generate_regex`'s input: the host names, comma-separated, by node index.
    pub fn node_list(&self) -> String {
        self.hosts.join(",")
    }

    /// `PMIx_generate_ppn`'s input: each node's ranks, comma-separated, nodes separated by `;`.
    pub fn ppn(&self) -> String {
        (0..self.hosts.len() as u32).map(|n| join(&self.ranks_on(n))).collect::<Vec<_>>().join(";")
    }
}

fn join(ranks: &[u32]) -> String {
    ranks.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// `hwloc:LIST`, the form of a cpuset string that `PMIx_Parse_cpuset_string` reads and Open
/// MPI 5 takes as `PMIX_CPUSET` ("this rank is bound").
pub fn cpuset_string(cpus: &[u32]) -> String {
    format!("hwloc:{}", join(cpus))
}

/// The namespace's keys. `node_map` and `proc_map` are the library's encodings of
/// [`StepMap::node_list`] and [`StepMap::ppn`]; `locality` gives a local rank's locality
/// string from its CPUs where the library can make one.
pub fn namespace_info(
    map: &StepMap,
    node_map: String,
    proc_map: String,
    locality: &dyn Fn(&[u32]) -> Option<String>,
) -> Vec<(&'static str, Value)> {
    let size = map.rank_nodes.len() as u32;
    let local = map.local_ranks();
    let mut info = vec![
        ("pmix.jobid", Value::Str(map.job_id.clone())),
        ("pmix.spawned", Value::Bool(false)),
        ("pmix.univ.size", Value::U32(size)),
        ("pmix.job.size", Value::U32(size)),
        ("pmix.max.size", Value::U32(size)),
        ("pmix.app.size", Value::U32(size)),
        ("pmix.job.napps", Value::U32(1)),
        ("pmix.appnum", Value::U32(0)),
        ("pmix.aldr", Value::Rank(0)),
        ("pmix.num.nodes", Value::U32(map.hosts.len() as u32)),
        ("pmix.tmpdir", Value::Str(map.tmpdir.clone())),
        ("pmix.nsdir", Value::Str(map.tmpdir.clone())),
        ("pmix.tdir.rmclean", Value::Bool(true)),
        ("pmix.nmap", Value::Str(node_map)),
        ("pmix.pmap", Value::Str(proc_map)),
        ("pmix.local.size", Value::U32(local.len() as u32)),
        ("pmix.node.size", Value::U32(local.len() as u32)),
        ("pmix.lpeers", Value::Str(join(&local))),
    ];
    if let Some(first) = local.first() {
        info.push(("pmix.lldr", Value::Rank(*first)));
    }
    // The library gives the namespace's shared-memory store to its owner.
    if let Some((uid, gid)) = map.owner {
        info.push(("pmix.euid", Value::U32(uid)));
        info.push(("pmix.egid", Value::U32(gid)));
    }
    for rank in 0..size {
        let node = map.rank_nodes[rank as usize];
        let mut proc = vec![
            ("pmix.rank", Value::Rank(rank)),
            ("pmix.appnum", Value::U32(0)),
            ("pmix.grank", Value::Rank(rank)),
            ("pmix.apprank", Value::Rank(rank)),
            ("pmix.nodeid", Value::U32(node)),
            ("pmix.hname", Value::Str(map.hosts[node as usize].clone())),
        ];
        if let Some(local_rank) = local.iter().position(|r| *r == rank) {
            proc.push(("pmix.lrank", Value::U16(local_rank as u16)));
            proc.push(("pmix.nrank", Value::U16(local_rank as u16)));
            let cpus = map.cpus.iter().find(|(r, _)| *r == rank).map(|(_, c)| c.as_slice()).unwrap_or_default();
            if !cpus.is_empty() {
                proc.push(("pmix.cpuset", Value::Str(cpuset_string(cpus))));
                if let Some(l) = locality(cpus) {
                    proc.push(("pmix.locstr", Value::Str(l)));
                }
            }
        }
        info.push(("pmix.pdata", Value::Infos(proc)));
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> StepMap {
        StepMap {
            nspace: "gangway.7.0".into(),
            job_id: "7.0".into(),
            hosts: vec!["n1".into(), "n2".into()],
            rank_nodes: vec![0, 0, 1, 1, 1],
            node: 1,
            tmpdir: "/tmp/x".into(),
            cpus: vec![(3, vec![2, 3])],
            owner: Some((1000, 100)),
        }
    }

    fn get<'a>(info: &'a [(&'static str, Value)], key: &str) -> Vec<&'a Value> {
        info.iter().filter(|(k, _)| *k == key).map(|(_, v)| v).collect()
    }

    #[test]
    fn maps_name_every_node_and_rank_in_order() {
        let m = map();
        assert_eq!(m.node_list(), "n1,n2");
        assert_eq!(m.ppn(), "0,1;2,3,4");
        assert_eq!(m.local_ranks(), [2, 3, 4]);
        assert_eq!(cpuset_string(&[0, 1, 5]), "hwloc:0,1,5");
    }

    #[test]
    fn namespace_carries_what_open_mpi_needs_for_the_local_node() {
        let m = map();
        let info = namespace_info(&m, "NM".into(), "PM".into(), &|c| Some(format!("L{}", c.len())));
        assert_eq!(get(&info, "pmix.job.size"), [&Value::U32(5)]);
        assert_eq!(get(&info, "pmix.max.size"), [&Value::U32(5)]);
        assert_eq!(get(&info, "pmix.local.size"), [&Value::U32(3)]);
        assert_eq!(get(&info, "pmix.lpeers"), [&Value::Str("2,3,4".into())]);
        assert_eq!(get(&info, "pmix.lldr"), [&Value::Rank(2)]);
        assert_eq!(get(&info, "pmix.num.nodes"), [&Value::U32(2)]);
        assert_eq!(get(&info, "pmix.nmap"), [&Value::Str("NM".into())]);
        assert_eq!(get(&info, "pmix.euid"), [&Value::U32(1000)]);
        let procs = get(&info, "pmix.pdata");
        assert_eq!(procs.len(), 5, "one array per rank of the step");
        let Value::Infos(r0) = procs[0] else { panic!() };
        assert_eq!(r0[0], ("pmix.rank", Value::Rank(0)), "each array starts with the rank");
        assert!(get(r0, "pmix.lrank").is_empty(), "a remote rank has no local rank here");
        assert_eq!(get(r0, "pmix.hname"), [&Value::Str("n1".into())]);
        let Value::Infos(r3) = procs[3] else { panic!() };
        assert_eq!(get(r3, "pmix.lrank"), [&Value::U16(1)]);
        assert_eq!(get(r3, "pmix.nrank"), [&Value::U16(1)]);
        assert_eq!(get(r3, "pmix.nodeid"), [&Value::U32(1)]);
        assert_eq!(get(r3, "pmix.cpuset"), [&Value::Str("hwloc:2,3".into())]);
        assert_eq!(get(r3, "pmix.locstr"), [&Value::Str("L2".into())]);
        let Value::Infos(r4) = procs[4] else { panic!() };
        assert!(get(r4, "pmix.cpuset").is_empty(), "an unbound rank has no cpuset");
    }
}

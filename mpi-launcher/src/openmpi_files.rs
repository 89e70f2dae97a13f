//! The files and words of an Open MPI launch, as pure functions of the placement plans: each
//! node's plan as it travels to the primary (one fence put per node), the `mpirun` hostfile
//! and rankfile, the `mpirun` command line, the plan file each node's `rank-step` reads, and
//! the agent's word handling. No I/O here, so all of it is tested with data.

use gangway_topology::placement::Placement;

/// The fence key under which node `node_rank` publishes its part.
pub fn plan_key(node_rank: u32) -> String {
    format!("gangway-openmpi-{node_rank}")
}

/// One node's part of the launch, as the primary needs it for the hostfile and rankfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePart {
    /// How this node decided to start the ranks (`openmpi`, or `pmi` when its inspection disagreed).
    pub kind: String,
    /// The name `mpirun` is given for it (the node name; the head maps it back to the instance).
    pub host: String,
    /// Each local rank's CPUs (OS numbers), empty when the rank is not bound.
    pub cpus: Vec<Vec<u32>>,
}

/// Why the parts gathered from the nodes cannot make one launch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartsError {
    /// A node's put is missing or unreadable.
    #[error("node {node_rank} did not publish its Open MPI placement (got: {got})")]
    Missing {
        /// Which node.
        node_rank: u32,
        /// What arrived instead.
        got: String,
    },
    /// Nodes inspected the program differently (a different binary on each node).
    #[error(
        "node {node_rank} ('{host}') starts the ranks as '{kind}', the primary as 'openmpi': \
         the program differs between nodes; set mpi.implementation explicitly"
    )]
    Disagree {
        /// Which node.
        node_rank: u32,
        /// Its name.
        host: String,
        /// What it decided.
        kind: String,
    },
    /// A node placed a different number of ranks.
    #[error("node {node_rank} placed {got} ranks, expected {want}")]
    RankCount {
        /// Which node.
        node_rank: u32,
        /// Ranks it placed.
        got: usize,
        /// Ranks per node of the task.
        want: usize,
    },
}

/// The fence value for this node: `KIND HOST CPUS;CPUS;…` (`-` for an unbound rank).
pub fn encode_part(part: &NodePart) -> String {
    let ranks: Vec<String> =
        part.cpus.iter().map(|c| if c.is_empty() { "-".to_owned() } else { cpu_list(c) }).collect();
    format!("{} {} {}", part.kind, part.host, ranks.join(";"))
}

/// Reads [`encode_part`]'s output back.
pub fn decode_part(value: &str) -> Option<NodePart> {
    let mut it = value.splitn(3, ' ');
    let (kind, host, ranks) = (it.next()?, it.next()?, it.next()?);
    let cpus = ranks
        .split(';')
        .map(|r| {
            if r == "-" {
                Some(Vec::new())
            } else {
                r.split(',').map(|c| c.parse().ok()).collect::<Option<Vec<u32>>>()
            }
        })
        .collect::<Option<Vec<_>>>()?;
    Some(NodePart { kind: kind.to_owned(), host: host.to_owned(), cpus })
}

/// Every node's part in node order, from the fence's puts, checked to make one launch.
pub fn gather_parts(puts: &[(String, String)], nodes: u32, ranks_per_node: u32) -> Result<Vec<NodePart>, PartsError> {
    (0..nodes)
        .map(|n| {
            let key = plan_key(n);
            let value = puts.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
            let part = value.and_then(decode_part).ok_or_else(|| PartsError::Missing {
                node_rank: n,
                got: value.unwrap_or("nothing").chars().take(80).collect(),
            })?;
            if part.kind != "openmpi" {
                return Err(PartsError::Disagree { node_rank: n, host: part.host, kind: part.kind });
            }
            if part.cpus.len() != ranks_per_node as usize {
                let (got, want) = (part.cpus.len(), ranks_per_node as usize);
                return Err(PartsError::RankCount { node_rank: n, got, want });
            }
            Ok(part)
        })
        .collect()
}

/// `0,1,2,5` (ascending, as the plan gives them); Open MPI's rankfile takes commas.
pub fn cpu_list(cpus: &[u32]) -> String {
    cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The hostfile: every node with as many slots as it has ranks.
pub fn hostfile(parts: &[NodePart]) -> String {
    parts.iter().map(|p| format!("{} slots={}\n", p.host, p.cpus.len())).collect()
}

/// The rankfile binding rank `n*K + i` to node n's plan for local rank i, with physical
/// (OS) PU numbers; None when some rank is unbound (then `--bind-to none`, and each rank's
/// own step applies what its node planned).
pub fn rankfile(parts: &[NodePart]) -> Option<String> {
    if parts.iter().flat_map(|p| &p.cpus).any(Vec::is_empty) {
        return None;
    }
    let mut out = String::new();
    let mut rank = 0;
    for p in parts {
        for cpus in &p.cpus {
            out.push_str(&format!("rank {rank}={} slot={}\n", p.host, cpu_list(cpus)));
            rank += 1;
        }
    }
    Some(out)
}

/// Where `mpirun`'s inputs are and what it starts.
pub struct MpirunArgs<'a> {
    /// `mpirun` (or the task's `GANGWAY_MPIRUN`).
    pub mpirun: &'a str,
    /// The hostfile's path.
    pub hostfile: &'a str,
    /// The rankfile's path, when the ranks are bound.
    pub rankfile: Option<&'a str>,
    /// Ranks per node.
    pub ranks_per_node: u32,
    /// Nodes.
    pub nodes: u32,
    /// This launcher's executable (it is also the rank step).
    pub launcher: &'a str,
    /// The task's program and arguments.
    pub program: &'a [String],
}

/// The `mpirun` argument vector: every rank runs `gangway-node rank-step -- PROGRAM ARGS`.
pub fn mpirun_argv(a: &MpirunArgs) -> Vec<String> {
    let mut argv: Vec<String> = vec![a.mpirun.into(), "--hostfile".into(), a.hostfile.into()];
    match a.rankfile {
        // Physical numbers are what the plan holds; hwthreads so a slot is one PU, not a core.
        Some(rf) => argv.extend(
            ["--rankfile", rf, "--use-hwthread-cpus", "--mca", "rmaps_rank_file_physical", "1"].map(String::from),
        ),
        None => argv.extend([
            "--map-by".into(),
            format!("ppr:{}:node", a.ranks_per_node),
            "--bind-to".into(),
            "none".into(),
        ]),
    }
    argv.extend(["-np".into(), (a.ranks_per_node * a.nodes).to_string()]);
    argv.extend([a.launcher.into(), "rank-step".into(), "--".into()]);
    argv.extend(a.program.iter().cloned());
    argv
}

/// Quotes `words` so that `gangway_api::cmdline::split_command_line` gives them back.
pub fn join_command_line(words: &[String]) -> String {
    words.iter().map(|w| format!("'{}'", w.replace('\'', r"'\''"))).collect::<Vec<_>>().join(" ")
}

/// The plan file a node's `rank-step` reads: the node's place in the job and each local
/// rank's CPUs, NUMA nodes (OS numbers, for the memory policy) and environment.
pub fn plan_file(placement: &Placement, mems: &[Vec<u32>], node_rank: u32, size: u32, wd: &str) -> String {
    let ranks: Vec<serde_json::Value> = placement
        .ranks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            serde_json::json!({
                "cpus": r.cpus,
                "mems": mems.get(i).cloned().unwrap_or_default(),
                "env": r.env,
            })
        })
        .collect();
    serde_json::json!({ "node_rank": node_rank, "size": size, "wd": wd, "ranks": ranks }).to_string()
}

/// Why the agent's words cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentWordsError {
    /// No host.
    #[error("usage: gangway-node rsh-agent [ssh options] HOST COMMAND...: no host given")]
    NoHost,
    /// A host but nothing to run (ssh would open a login shell; gangway runs commands only).
    #[error("gangway-node rsh-agent: nothing to run on '{0}' (an interactive shell is not offered)")]
    NoCommand(String),
    /// An ssh option that takes a value came last.
    #[error("gangway-node rsh-agent: option {0} needs a value")]
    MissingValue(String),
}

/// The host and the command an rsh-style agent is asked to run: ssh's own options before
/// the host are accepted and ignored (Hydra passes `-x`), the remaining words are joined with
/// spaces, as sshd joins them before handing them to the shell.
pub fn agent_words(args: &[String]) -> Result<(String, String), AgentWordsError> {
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-') && a.len() > 1) {
        // ssh options that take a value, either attached (`-p22`) or as the next word.
        let with_value = matches!(&a[..2], "-b" | "-c" | "-E" | "-F" | "-i" | "-l" | "-o" | "-p" | "-J" | "-S");
        if with_value && a.len() == 2 {
            if args.get(i + 1).is_none() {
                return Err(AgentWordsError::MissingValue(a.clone()));
            }
            i += 1;
        }
        i += 1;
    }
    let host = args.get(i).ok_or(AgentWordsError::NoHost)?;
    let command = args[i + 1..].join(" ");
    if command.trim().is_empty() {
        return Err(AgentWordsError::NoCommand(host.clone()));
    }
    Ok((host.clone(), command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(host: &str, cpus: &[&[u32]]) -> NodePart {
        NodePart { kind: "openmpi".into(), host: host.into(), cpus: cpus.iter().map(|c| c.to_vec()).collect() }
    }

    #[test]
    fn parts_travel_through_the_fence_unchanged() {
        for p in [part("host1", &[&[0, 1], &[2, 3]]), part("n-2", &[&[], &[5]]), part("a", &[&[7]])] {
            assert_eq!(decode_part(&encode_part(&p)), Some(p.clone()), "{}", encode_part(&p));
        }
        assert_eq!(encode_part(&part("host1", &[&[0, 1], &[]])), "openmpi host1 0,1;-");
        assert_eq!(decode_part("openmpi host1 0,x"), None);
        assert_eq!(decode_part("openmpi"), None);
    }

    #[test]
    fn parts_are_gathered_in_node_order_and_checked() {
        let puts = vec![
            (plan_key(1), encode_part(&part("host2", &[&[0], &[1]]))),
            ("-bcast-1-0".into(), "x".into()),
            (plan_key(0), encode_part(&part("host1", &[&[0], &[1]]))),
        ];
        let parts = gather_parts(&puts, 2, 2).unwrap();
        assert_eq!(parts.iter().map(|p| p.host.as_str()).collect::<Vec<_>>(), ["host1", "host2"]);
        assert!(matches!(gather_parts(&puts, 3, 2), Err(PartsError::Missing { node_rank: 2, .. })));
        assert!(matches!(gather_parts(&puts, 2, 3), Err(PartsError::RankCount { node_rank: 0, got: 2, want: 3 })));
        let pmi = vec![(plan_key(0), "pmi host1 0".to_owned())];
        let err = gather_parts(&pmi, 1, 1).unwrap_err();
        assert!(err.to_string().contains("mpi.implementation"), "{err}");
    }

    #[test]
    fn hostfile_and_rankfile_follow_the_plans() {
        let parts = [part("host1", &[&[0, 16], &[1, 17]]), part("host2", &[&[2], &[3]])];
        assert_eq!(hostfile(&parts), "host1 slots=2\nhost2 slots=2\n");
        assert_eq!(
            rankfile(&parts).unwrap(),
            "rank 0=host1 slot=0,16\nrank 1=host1 slot=1,17\nrank 2=host2 slot=2\nrank 3=host2 slot=3\n"
        );
        // One unbound rank anywhere: no rankfile, so no binding from Open MPI at all.
        assert_eq!(rankfile(&[part("host1", &[&[0]]), part("host2", &[&[]])]), None);
    }

    #[test]
    fn mpirun_binds_by_rankfile_or_not_at_all() {
        let program = vec!["./app".to_owned(), "a b".to_owned()];
        let mut a = MpirunArgs {
            mpirun: "mpirun",
            hostfile: "/t/hostfile",
            rankfile: Some("/t/rankfile"),
            ranks_per_node: 2,
            nodes: 2,
            launcher: "/bin/gangway-node",
            program: &program,
        };
        assert_eq!(
            mpirun_argv(&a).join(" "),
            "mpirun --hostfile /t/hostfile --rankfile /t/rankfile --use-hwthread-cpus --mca rmaps_rank_file_physical 1 \
             -np 4 /bin/gangway-node rank-step -- ./app a b"
        );
        a.rankfile = None;
        assert_eq!(
            mpirun_argv(&a).join(" "),
            "mpirun --hostfile /t/hostfile --map-by ppr:2:node --bind-to none -np 4 /bin/gangway-node rank-step -- ./app a b"
        );
    }

    #[test]
    fn command_lines_round_trip_through_the_splitter() {
        for words in [vec!["a", "b c", "it's", "\"q\"", "$HOME", "\\x", ""], vec!["''", "'"]] {
            let words: Vec<String> = words.into_iter().map(String::from).collect();
            let line = join_command_line(&words);
            assert_eq!(gangway_api::cmdline::split_command_line(&line).unwrap(), words, "{line}");
        }
    }

    fn check_words(args: &[&str], expected: Result<(&str, &str), AgentWordsError>) {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let got = agent_words(&args);
        assert_eq!(got, expected.map(|(h, c)| (h.to_owned(), c.to_owned())), "{args:?}");
    }

    #[test]
    fn agent_words_are_joined_as_sshd_joins_them() {
        // What Open MPI 4.1 passes: the host, then words meant for a shell (note the leading space).
        check_words(
            &["host2", " orted", "-mca", "ess", "\"env\"", "-mca", "orte_hnp_uri", "\"1.0;tcp://10.0.0.1:5\""],
            Ok(("host2", " orted -mca ess \"env\" -mca orte_hnp_uri \"1.0;tcp://10.0.0.1:5\"")),
        );
        // Hydra's ssh launcher passes -x first; other ssh options are skipped with their values.
        check_words(
            &["-x", "n1", "/usr/bin/hydra_pmi_proxy", "--control-port", "h:1"],
            Ok(("n1", "/usr/bin/hydra_pmi_proxy --control-port h:1")),
        );
        check_words(&["-p", "22", "-oBatchMode=yes", "-l", "me", "n1", "true"], Ok(("n1", "true")));
        check_words(&["-p22", "n1", "echo", "a;", "echo b"], Ok(("n1", "echo a; echo b")));
        check_words(&[], Err(AgentWordsError::NoHost));
        check_words(&["-x"], Err(AgentWordsError::NoHost));
        check_words(&["n1"], Err(AgentWordsError::NoCommand("n1".into())));
        check_words(&["n1", " "], Err(AgentWordsError::NoCommand("n1".into())));
        check_words(&["-l"], Err(AgentWordsError::MissingValue("-l".into())));
    }
}

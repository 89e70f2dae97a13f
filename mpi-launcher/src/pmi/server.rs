//! `NodePmi`: the PMI-1 server of one job step on one node, as a sans-I/O state machine.
//!
//! The driver (`io.rs`) feeds it lines from the local ranks and carries out the [`Action`]s it
//! returns; tests feed it requests directly. It never blocks and never panics on what ranks send.
//!
//! Visibility follows PMI-1: a `put` becomes visible to `get` only after the next `barrier`
//! (the "commit + barrier" that MPICH does before every read of another rank's key), so a fence is
//! the only point where this node's puts are exchanged with the other nodes. The simple servers
//! (Hydra, flux-core) also answer from the committed KVS only.

use std::collections::{BTreeMap, HashMap};

use super::wire::{parse_request, Request, Response, KEYLEN_MAX, VALLEN_MAX};

/// A key and its value.
pub type KvPair = (String, String);

/// The key MPICH reads to learn which ranks share a node (shared-memory transport).
pub const PROCESS_MAPPING_KEY: &str = "PMI_process_mapping";

/// What the driver must do after feeding the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `response` to local rank `rank`.
    Reply { rank: u32, response: Response },
    /// Every local rank entered the barrier: exchange `puts` (this node's puts since the last
    /// fence) job-wide, then call [`NodePmi::fence_done`] with everyone's puts.
    Fence { puts: Vec<KvPair> },
    /// A rank called `PMI_Abort`: the task must fail with `code`.
    Abort { rank: u32, code: i32, msg: Option<String> },
    /// A rank's connection closed before `finalize`: it died or exited without MPI_Finalize.
    RankLost { rank: u32 },
    /// A rank sent something that is not PMI-1; its connection should be closed.
    ProtocolError { rank: u32, error: String },
}

/// Misuse of the server by its driver (not by ranks, whose errors become [`Action`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodePmiError {
    /// `fence_done`/`fence_failed` without a fence in flight.
    #[error("no PMI fence is in progress")]
    NoFence,
    /// A request from a rank this node does not run.
    #[error("rank {rank} is not a local rank of this node")]
    NotLocal { rank: u32 },
}

/// What this node's server needs to know about the job step.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Ranks in the whole job step (`PMI_SIZE`).
    pub size: u32,
    /// Global ranks that run on this node.
    pub local_ranks: Vec<u32>,
    /// The job step's KVS name, the same on every node.
    pub kvsname: String,
    /// `PMI_process_mapping`, the same on every node (see [`process_mapping`]).
    pub process_mapping: String,
}

#[derive(Debug, Default)]
struct RankState {
    in_barrier: bool,
    /// Inside an `mcmd=spawn` … `endcmd` block whose lines are swallowed.
    in_mcmd: bool,
    finalized: bool,
    closed: bool,
}

/// The PMI-1 server of one job step on one node.
#[derive(Debug)]
pub struct NodePmi {
    config: NodeConfig,
    ranks: BTreeMap<u32, RankState>,
    kvs: HashMap<String, String>,
    /// This node's puts since the last fence, in order (a later put of a key wins).
    pending: Vec<KvPair>,
    fence_in_flight: bool,
}

impl NodePmi {
    /// A server for `config.local_ranks`, none of which has connected yet.
    pub fn new(config: NodeConfig) -> Self {
        let ranks = config.local_ranks.iter().map(|r| (*r, RankState::default())).collect();
        NodePmi { config, ranks, kvs: HashMap::new(), pending: Vec::new(), fence_in_flight: false }
    }

    /// The configuration this server was made with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Whether every local rank has finalized or closed its connection.
    pub fn all_done(&self) -> bool {
        self.ranks.values().all(|r| r.finalized || r.closed)
    }

    /// Handles one raw line from `rank`, including the lines of an `mcmd=spawn` block.
    pub fn handle_line(&mut self, rank: u32, line: &[u8], out: &mut Vec<Action>) -> Result<(), NodePmiError> {
        let state = self.ranks.get_mut(&rank).ok_or(NodePmiError::NotLocal { rank })?;
        if state.in_mcmd {
            // spawn's attributes come one per line until `endcmd`; only then is a reply due.
            if line.strip_suffix(b"\n").unwrap_or(line) == b"endcmd" {
                state.in_mcmd = false;
                out.push(Action::Reply { rank, response: Response::SpawnRefused });
            }
            return Ok(());
        }
        match parse_request(line) {
            Ok(req) => self.handle(rank, req, out),
            Err(e) => {
                out.push(Action::ProtocolError { rank, error: e.to_string() });
                Ok(())
            }
        }
    }

    /// Handles one request from local rank `rank`.
    pub fn handle(&mut self, rank: u32, req: Request, out: &mut Vec<Action>) -> Result<(), NodePmiError> {
        let size = self.config.size;
        let state = self.ranks.get_mut(&rank).ok_or(NodePmiError::NotLocal { rank })?;
        let reply = |response| Action::Reply { rank, response };
        match req {
            // PMI-2 speaks another wire format; refusing makes MPICH fail loudly instead of hanging.
            Request::Init { pmi_version, .. } => out.push(reply(Response::Init { ok: pmi_version == 1 })),
            Request::GetMaxes => out.push(reply(Response::Maxes)),
            Request::GetAppnum => out.push(reply(Response::Appnum(0))),
            Request::GetMyKvsname => out.push(reply(Response::MyKvsname(self.config.kvsname.clone()))),
            Request::GetUniverseSize => out.push(reply(Response::UniverseSize(size))),
            Request::Get { kvsname, key } => {
                let result = if kvsname.is_some_and(|k| k != self.config.kvsname) {
                    Err("unknown_kvsname")
                } else if key == PROCESS_MAPPING_KEY {
                    Ok(self.config.process_mapping.clone())
                } else {
                    self.kvs.get(&key).cloned().ok_or("key_not_found")
                };
                out.push(reply(Response::GetResult(result)));
            }
            Request::Put { kvsname, key, value } => {
                let result = if kvsname.is_some_and(|k| k != self.config.kvsname) {
                    Err("unknown_kvsname")
                } else if key.is_empty() || key.len() > KEYLEN_MAX {
                    Err("invalid_key_length")
                } else if value.len() > VALLEN_MAX {
                    Err("invalid_val_length")
                } else {
                    self.pending.push((key, value));
                    Ok(())
                };
                out.push(reply(Response::PutResult(result)));
            }
            Request::BarrierIn => {
                if state.in_barrier {
                    out.push(Action::ProtocolError { rank, error: "barrier_in while already in the barrier".into() });
                    return Ok(());
                }
                state.in_barrier = true;
                if self.ranks.values().all(|r| r.in_barrier) {
                    self.fence_in_flight = true;
                    out.push(Action::Fence { puts: std::mem::take(&mut self.pending) });
                }
            }
            Request::Finalize => {
                state.finalized = true;
                out.push(reply(Response::FinalizeAck));
            }
            Request::Abort { exitcode, message } => out.push(Action::Abort { rank, code: exitcode, msg: message }),
            Request::NameService(op) => out.push(reply(Response::NameRefused(op))),
            Request::SpawnBegin => state.in_mcmd = true,
        }
        Ok(())
    }

    /// `rank`'s connection closed; reports [`Action::RankLost`] unless it had finalized.
    pub fn closed(&mut self, rank: u32, out: &mut Vec<Action>) -> Result<(), NodePmiError> {
        let state = self.ranks.get_mut(&rank).ok_or(NodePmiError::NotLocal { rank })?;
        if !state.closed && !state.finalized {
            out.push(Action::RankLost { rank });
        }
        state.closed = true;
        Ok(())
    }

    /// The job-wide exchange finished: `all_puts` (every node's puts of this fence, this
    /// node's included) become visible, and every local rank is released with `barrier_out`.
    pub fn fence_done(&mut self, all_puts: Vec<KvPair>, out: &mut Vec<Action>) -> Result<(), NodePmiError> {
        self.release(true, out)?;
        self.kvs.extend(all_puts);
        Ok(())
    }

    /// The job-wide exchange failed: the local ranks are released with `barrier_out rc=-1`,
    /// which makes MPI_Init fail in every rank rather than hang.
    pub fn fence_failed(&mut self, out: &mut Vec<Action>) -> Result<(), NodePmiError> {
        self.release(false, out)
    }

    fn release(&mut self, ok: bool, out: &mut Vec<Action>) -> Result<(), NodePmiError> {
        if !self.fence_in_flight {
            return Err(NodePmiError::NoFence);
        }
        self.fence_in_flight = false;
        for (rank, state) in &mut self.ranks {
            state.in_barrier = false;
            if !state.closed {
                out.push(Action::Reply { rank: *rank, response: Response::BarrierOut { ok } });
            }
        }
        Ok(())
    }
}

/// `PMI_process_mapping` for a block distribution: node `i` runs `ranks_per_node[i]`
/// consecutive ranks. Runs of nodes with the same count become one `(first_node,nodes,ranks)`
/// triple, as Hydra writes it: 2 nodes × 2 ranks → `(vector,(0,2,2))`. Nodes with no ranks
/// are left out (and take no node id), since MPICH only groups ranks by node id.
pub fn process_mapping(ranks_per_node: &[u32]) -> String {
    let rank_nodes: Vec<u32> = (0u32..)
        .zip(ranks_per_node.iter().filter(|c| **c > 0))
        .flat_map(|(node, &count)| std::iter::repeat_n(node, count as usize))
        .collect();
    process_mapping_of(&rank_nodes)
}

/// `PMI_process_mapping` for any distribution, from each rank's node: every run of ranks on
/// one node is a `(node,1,ranks)` triple, and consecutive nodes with equal runs merge
/// (`[0,1,0,0]` → `(vector,(0,2,1),(0,1,2))`). The vector covers every rank once, so MPICH
/// never repeats it.
pub fn process_mapping_of(rank_nodes: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &node in rank_nodes {
        match runs.last_mut() {
            Some((n, count)) if *n == node => *count += 1,
            _ => runs.push((node, 1)),
        }
    }
    let mut blocks: Vec<(u32, u32, u32)> = Vec::new();
    for (node, count) in runs {
        match blocks.last_mut() {
            Some((first, nodes, ranks)) if *ranks == count && *first + *nodes == node => *nodes += 1,
            _ => blocks.push((node, 1, count)),
        }
    }
    let mut s = String::from("(vector");
    for (first, nodes, ranks) in blocks {
        s.push_str(&format!(",({first},{nodes},{ranks})"));
    }
    s.push(')');
    s
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

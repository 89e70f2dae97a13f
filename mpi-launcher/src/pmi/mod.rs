//! A PMI-1 ("simple" wire protocol) server, for launching MPICH ranks directly — without
//! `mpiexec` — the way Slurm's `srun` and Flux's job shell do.
//!
//! - [`wire`]: parsing requests and formatting replies.
//! - [`server`]: [`server::NodePmi`], the sans-I/O per-node state machine (KVS, barriers turned
//!   into job-wide fences, aborts and lost ranks).
//! - [`io`]: the tokio driver over one socket pair per local rank, and [`io::FenceExchange`].
//!
//! Used by managed MPI (`ranks.rs`) and by srun's step parts (`slurm_step.rs`).

pub mod io;
pub mod server;
pub mod wire;

pub use io::{inherit_fd, serve_node, FenceExchange, PmiEvent, RankSocket, SingleNode};
pub use server::{process_mapping, process_mapping_of, Action, NodeConfig, NodePmi};

//! A PMIx server for direct launch of Open MPI (and any PMIx client) ranks, on OpenPMIx
//! (Debian's `libpmix-dev` 4.2), the library Slurm, Flux and PRRTE embed.
//!
//! - [`ffi`]: the hand-written declarations of the library calls used (all raw types).
//! - [`info`]: the namespace's keys as plain data (pure, tested without the library).
//! - [`server`]: the safe API — one server per process, a [`server::Namespace`] per step, each
//!   rank's client registration and fork environment, upcalls as [`server::Upcall`]s.
//! - [`io`]: serving a namespace's upcalls over the step's fence exchange.

pub mod ffi;
pub mod info;
pub mod io;
pub mod server;

pub use info::StepMap;
pub use io::serve_namespace;
pub use server::{server, Namespace, PmixError, Server, Upcall};

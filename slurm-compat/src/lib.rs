//! Slurm's front door for gangway: sbatch's options and `#SBATCH` lines, time limits, job
//! arrays, dependencies and output file patterns read exactly as Slurm 22.05 reads them
//! (checked against `shared/reference/slurm-22.05/`), and the multi-call `gangway-slurm`
//! binary that answers to `sbatch`, `srun`, `squeue`, `scancel`, `sinfo`, `scontrol`, `sacct`
//! and `salloc`.
//!
//! Layout:
//! - [`resolve`](mod@resolve): a script plus a command line → [`Resolved`], the job they ask for
//!   (what `gangway-slurm parse` prints). It drives `getopt` (glibc's `getopt_long`
//!   rules), `script` (the `#SBATCH` reader), `options` (sbatch's option table and how each
//!   option applies), `values` (readers for single option values) and `gpus`.
//! - [`time`](mod@time), [`begin`], [`array`](mod@array), [`dependency`], [`patterns`]: the value grammars, each
//!   usable on its own.
//! - [`scontrol`]: `scontrol show hostnames|hostlist`, on `gangway_topology::hostlist`.
//! - The read commands, each a pure formatter from the head's data plus parsed options to the
//!   text Slurm 22.05 prints (columns, widths, time and exit-code spellings, errors):
//!   [`queue`] (`squeue`, with [`queue_fields`]), [`acct`] (`sacct`), [`info`] (`sinfo`, node
//!   states mapped in [`nodes`]), [`show`] (`scontrol show job|node|partition`), sharing
//!   [`format`] (`%`-formats, padding, times, state/user/job-id lists).
//! - The commands that run things: [`submit`] (sbatch), [`step`] with [`step_layout`] and
//!   [`step_hub`] (srun inside a job: the step's hub over the job's nodes; [`multi_prog`] reads
//!   `--multi-prog` files; [`terminal`] is srun's own terminal under `--pty`), [`salloc`] with
//!   [`salloc_holder`] and [`allocate`] (allocations held for a command, and srun outside one).
//!
//! Everything in the parsers and formatters is pure (no clocks, no environment) except
//! [`resolve()`], which reads the script file. Nothing panics on any input: every malformed
//! value is a [`SlurmError`] worded as sbatch words it ([`SlurmError::render`]).

pub mod acct;
mod acct_time;
pub mod allocate;
pub mod array;
pub mod begin;
pub mod cancel;
pub mod cluster;
pub mod control;
pub mod dependency;
mod error;
pub mod fairshare;
pub mod format;
mod getopt;
mod gpus;
pub mod info;
pub mod multi_prog;
pub mod nodes;
mod options;
pub mod patterns;
pub mod query;
pub mod queue;
pub mod queue_fields;
pub mod resolve;
pub mod salloc;
pub mod salloc_holder;
pub mod scontrol;
mod script;
pub mod show;
pub mod step;
pub mod step_events;
pub mod step_hub;
pub mod step_layout;
pub mod step_plan;
pub mod submit;
pub mod terminal;
pub mod time;
mod values;

pub use error::{ScriptProblem, SlurmError};
pub use getopt::GetoptError;
pub use gpus::GpuRequest;
pub use resolve::{
    options_end, resolve, resolve_command_line, resolve_source, split_command_line, CommandLine, MemoryRequest,
    NodeRange, Resolved, SubmitOptions,
};
pub use values::{Export, ExportMode, ExportVar, SignalSpec, Switches};

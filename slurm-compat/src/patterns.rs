//! Output and error file name patterns (`--output`, `--error`, `srun --output`), as slurmd's
//! `fname_create` expands them.
//!
//! The expander lives in `gangway_api::slurm_patterns` because the head expands a batch
//! job's patterns when it starts the job (it alone knows the job id and the first node) and
//! the head does not depend on this crate; this module is the front door's name for it.

pub use gangway_api::slurm_patterns::*;

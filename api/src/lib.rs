//! gangway's wire types and its typed client.
//!
//! Only this crate defines what crosses a process boundary: the REST resources (Azure Batch's
//! shapes and camelCase names), the head↔launcher messages, and the client the CLI, the Slurm
//! front door and the benchmarks use. Internal state elsewhere does not derive `Serialize`.

pub mod apps;
pub mod client;
pub mod cmdline;
pub mod common;
pub mod deps;
pub mod files;
pub mod http;
pub mod job;
pub mod messages;
pub mod node;
pub mod out;
pub mod outputs;
pub mod pool;
pub mod schedule;
pub mod sha256;
pub mod slurm;
pub mod slurm_bind;
pub mod slurm_patterns;
pub mod slurm_step;
pub mod task;
pub mod time;
pub mod tls;
pub mod tokens;
pub mod users;

pub use apps::*;
pub use common::{EnvironmentSetting, ErrorBody, ListResponse};
pub use deps::*;
pub use files::UploadedFile;
pub use job::*;
pub use node::*;
pub use outputs::*;
pub use pool::*;
pub use schedule::*;
pub use task::*;
pub use time::{IsoDuration, Timestamp};

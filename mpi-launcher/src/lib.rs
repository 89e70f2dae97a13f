//! The per-node launcher: connects out to the head and runs task attempts.
//!
//! - [`connection`]: the control stream to the head (upgrade, hello, reconnect).
//! - [`executor`]: attempts: directories, environment, process group, cgroup, kill, retention.
//! - [`cgroup`]: cgroup v1/v2 containment.
//! - [`layout`]: the Azure Batch directory layout and task environment.
//! - [`files`]: answers to the head's file requests.

pub mod cgroup;
pub mod connection;
pub mod executor;
pub mod files;
pub mod layout;

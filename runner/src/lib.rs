//! The head node and the `gangway` CLI.
//!
//! - [`scheduler`]: the sans-I/O scheduler core (events in, decisions out).
//! - [`store`]: the durable state store (SQLite, group commit).
//! - [`head`]: the REST API, launcher connections and the state they change.
//! - [`histogram`]: the histograms `/metrics` shows.
//! - `cli` (in the binary): the `gangway` command.

pub mod head;
pub mod histogram;
pub mod scheduler;
pub mod sim;
pub mod store;

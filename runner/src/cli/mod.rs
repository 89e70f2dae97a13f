//! The `gangway` command line.

pub mod cluster;
pub mod commands;
pub mod file;
pub mod schedule;
pub mod sim;
pub mod table;
pub mod token;
pub mod topo;

//! Shared helpers for gangway's MPI programs.

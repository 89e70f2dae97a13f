#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every unit and integration test.
# Integration tests start real `gangway head` / `gangway-node` processes (built first) and use
# real cgroups, so run as root for the cgroup checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

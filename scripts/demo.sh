#!/usr/bin/env bash
# The main job: an embedded two-node cluster runs a job whose tasks spread over both nodes,
# shows where each task ran and what it printed, then stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bins
G=target/release/gangway
STATE=$(mktemp -d /tmp/gangway-demo.XXXXXX)
export GANGWAY_STATE_DIR=$STATE
cleanup() { $G down >/dev/null 2>&1 || true; rm -rf "$STATE"; }
trap cleanup EXIT

$G up --nodes 2 --detach
echo; $G node list
JOB=$($G submit --name demo --tasks 6 -- /bin/sh -c 'echo "task $AZ_BATCH_TASK_ID ran on $AZ_BATCH_NODE_ID in $AZ_BATCH_TASK_WORKING_DIR"; sleep 1')
echo; echo "submitted job $JOB (6 tasks); waiting for it"
$G wait "$JOB"
echo; $G task list "$JOB"
echo; echo "per-node placement:"
$G --json task list "$JOB" | grep -o '"nodeId": *"[^"]*"' | sort | uniq -c | sed 's/"nodeId": *//'
echo; echo "task output:"
for t in 1 2 3 4 5 6; do $G task logs "$JOB" "$t"; done
echo; $G job show "$JOB"

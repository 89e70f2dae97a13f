#!/usr/bin/env bash
# The main job: an embedded two-node cluster runs a job whose tasks spread over both nodes,
# then a 2-node × 2-rank MPI job (mpi-probe, then mpi-bench) whose ranks gangway starts itself
# over PMI-1, pinned to their placement; it prints the placement and the measured latency.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bins
MPI_BIN=$(scripts/build-mpi.sh mpich | tail -n 1)
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
$G --json task list "$JOB" | python3 -c 'import collections, json, sys
for node, n in sorted(collections.Counter(t["nodeInfo"]["nodeId"] for t in json.load(sys.stdin)).items()):
    print(f"{n:7d} {node}")'
echo; echo "task output:"
for t in 1 2 3 4 5 6; do $G task logs "$JOB" "$t"; done
echo; $G job show "$JOB"

echo; echo "MPI: 2 nodes x 2 ranks of mpi-probe (MPICH, launched by gangway over PMI-1, no mpiexec)"
PROBE=$($G submit --nodes 2 --ranks-per-node 2 --wait -- "$MPI_BIN/mpi-probe")
$G task logs "$PROBE" 1 | scripts/mpi-report.py probe
echo; echo "MPI: mpi-bench (ping-pong between ranks 0 and 1 on the first node)"
BENCH=$($G submit --nodes 2 --ranks-per-node 2 --wait -- "$MPI_BIN/mpi-bench" --iterations 200)
$G task logs "$BENCH" 1 | scripts/mpi-report.py bench

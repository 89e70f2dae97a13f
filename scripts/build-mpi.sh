#!/usr/bin/env bash
# Builds gangway's MPI programs (benchmarks/mpi: mpi-probe, mpi-bench) against one MPI.
#   scripts/build-mpi.sh [openmpi|mpich]     (default openmpi)
# Installs what is missing, then builds (release) into target/mpi-<flavor>/: mpi-sys does not
# rebuild when MPICC changes, so each MPI has its own target directory. The last line printed
# on stdout is the directory holding the binaries.
set -euo pipefail
flavor="${1:-openmpi}"
case "$flavor" in
  openmpi) need=(libclang-dev openmpi-bin libopenmpi-dev); mpicc=mpicc ;;
  mpich) need=(libclang-dev mpich libmpich-dev); mpicc=mpicc.mpich ;;
  *) echo "usage: $0 [openmpi|mpich]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh" "${need[@]}"
# Debian's `mpicc` alternative may point at MPICH when both are installed; Open MPI's own
# wrapper is mpicc.openmpi.
if [ "$flavor" = openmpi ] && command -v mpicc.openmpi >/dev/null; then mpicc=mpicc.openmpi; fi
target="$root/target/mpi-$flavor"
MPICC="$mpicc" CARGO_TARGET_DIR="$target" \
  cargo build --release --manifest-path "$root/benchmarks/mpi/Cargo.toml" >&2
echo "gangway: mpi-probe and mpi-bench for $flavor ($mpicc) are in:" >&2
echo "$target/release"

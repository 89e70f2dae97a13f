#!/usr/bin/env bash
# Installs the Debian packages gangway needs to build and test, when they are missing.
set -euo pipefail
# Extra packages may be named on the command line (scripts/build-mpi.sh does).
need=("$@" gcc pkg-config libsqlite3-dev libhwloc-dev libpmix-dev python3-prometheus-client libudev-dev iproute2 procps mpich libmpich-dev libclang-dev openmpi-bin libopenmpi-dev curl openssl python3 munge unzip)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "gangway: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "gangway: cargo is required (https://rustup.rs)" >&2; exit 1; }

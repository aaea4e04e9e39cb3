#!/usr/bin/env bash
# Installs everything, builds, and runs the whole test suite (unit and integration) with CTest.
# Integration suites mount real FUSE filesystems and start real servers on loopback; they need
# root and /dev/fuse and skip, saying why, where those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
bash tools/install-test-servers.sh
bash tools/build.sh
cd build
# Unit tests in parallel; integration suites one at a time (they mount and bind ports).
ctest --output-on-failure -L unit -j"$(nproc)"
ctest --output-on-failure -L integration

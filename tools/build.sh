#!/usr/bin/env bash
# Configures and builds cachefs into build/ (Release with debug info), using every core.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CACHEFS_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"

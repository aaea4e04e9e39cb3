#!/usr/bin/env bash
# Configures and builds cachefs (Release with debug info) using every core: into build/, or into
# the directory given as the first argument with the remaining arguments passed on to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CACHEFS_CMAKE_ARGS:-} "${@:2}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

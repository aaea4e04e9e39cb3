#!/usr/bin/env bash
# Installs everything, builds, and runs the whole test suite (unit and integration) with CTest,
# then the unit tests and the integration suites again built with AddressSanitizer and
# UndefinedBehaviorSanitizer.
# Integration suites mount real FUSE filesystems and start real servers on loopback; they need
# root and /dev/fuse and skip, saying why, where those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
bash tools/install-test-servers.sh
bash tools/build.sh
# Unit tests in parallel; integration suites one at a time (they mount and bind ports).
ctest --test-dir build --output-on-failure -L unit -j"$(nproc)"
ctest --test-dir build --output-on-failure -L integration

# A separate tree, so build/ stays the plain one that benchmarks and the demo use. A UBSan
# finding aborts its test (-fno-sanitize-recover); the ASan options turn on checks that are off
# by default: stack use after return and the order of dynamic initialisation across files.
bash tools/build.sh build-asan -DCACHEFS_SANITIZE=address,undefined -DCACHEFS_BUILD_BENCH=OFF
asan_options=detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -L unit -j"$(nproc)"
# The integration suites with the sanitized daemons, except p2p: there gRPC's threads outlive
# main() and LeakSanitizer reports the OpenSSL state they still hold. Daemons run in the
# background, where an exit code is not always checked, so every report goes to a file and any
# report fails the run.
reports=$(mktemp -d)
ASAN_OPTIONS=$asan_options:log_path=$reports/asan \
  UBSAN_OPTIONS=print_stacktrace=1:log_path=$reports/ubsan \
  ctest --test-dir build-asan --output-on-failure -L integration -E '^integration_p2p$'
if compgen -G "$reports/*" >/dev/null; then
  cat "$reports"/*
  echo "test.sh: sanitizer reports above" >&2
  exit 1
fi
rm -rf "$reports"

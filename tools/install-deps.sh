#!/usr/bin/env bash
# Installs everything cachefs needs to build, test and benchmark on Debian 12 (run as root).
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake pkg-config git clang-format
  libfuse3-dev fuse3 libssl-dev libboost-dev libboost-system-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libcurl4-openssl-dev liblz4-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev libcli11-dev
)
# Real peers the tests and benchmarks run against.
TEST_PACKAGES=(
  gocryptfs bindfs nginx-light python3 python3-botocore attr psmisc iproute2 curl
  procps util-linux openssl python3-pytest nodejs rclone s3fs
  python3-cryptography
)

missing=()
for p in "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The S3 test server (s3rver) comes from npm; Debian's nodejs/npm where none is installed.
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi

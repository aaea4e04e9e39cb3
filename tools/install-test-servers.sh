#!/usr/bin/env bash
# Installs the npm test servers (s3rver) into tests/servers/node_modules from the committed
# package.json / package-lock.json. Idempotent; run by the origin integration tests when the
# servers are missing, and by CI after tools/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../tests/servers"
if [[ -f node_modules/s3rver/bin/s3rver.js && -f node_modules/ali-oss/package.json ]]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  # Debian's nodejs ships npm separately (NodeSource builds include it).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
fi
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

#!/usr/bin/env bash
# Cold sequential read of an encrypted model over a shaped link, cachefs against the stacked
# pairs that deployments use today, over the same link:
#   - S3 API (s3rver): cachefs (s3://) against s3fs + gocryptfs. s3fs is what ossfs (the OSS
#     FUSE client in Alibaba's confidential-AI stack) is a fork of: the representative baseline.
#   - HTTP (nginx): cachefs (http://) against rclone mount (HTTP remote) + gocryptfs.
#
# The link: a private network namespace whose loopback is shaped with tc netem (rate RATE,
# delay RTT/2 each way, so one RTT per round trip). On kernels without sch_netem the link is
# bench/origins/link_emulator.cc: one relay in front of nginx and one in front of s3rver, each
# with the same rate and RTT and a TCP-like window (the runs take turns, so each has the whole
# link). The servers, the daemons and the readers all run inside that namespace, so no traffic
# leaves it and only 127.0.0.1 is ever addressed.
#
# Usage (root; needs gocryptfs, nginx, rclone, s3fs, fuse3, iproute2, python3-botocore, node and
# s3rver (tools/install-test-servers.sh); the cachefs build):
#   bench/origins/run.sh [--size-mib 2048] [--rate 2gbit] [--rtt-ms 5] [--budget-mib 512]
#                        [--cachefs BIN] [--origin-cat BIN] [--workdir DIR] [--keep]
# Prints the link rate, MB/s of each, % of the link, the ratios, and cachefs's peak RSS, and
# checks the targets (cachefs >= 90% of the link over both APIs, >= 3x s3fs + gocryptfs, RSS
# <= 256 MiB + budget); exits 1 when one is missed. The ratio to rclone + gocryptfs is printed
# but not a target (rclone reads sequentially in large, growing ranges and nearly fills the
# link too). CACHEFS_BENCH_NETNS names the namespace (default cachefs-bench) for side-by-side runs.
set -euo pipefail
trap 'echo "run.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

SIZE_MIB=2048
RATE=2gbit
RTT_MS=5
BUDGET_MIB=512
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${CACHEFS_BUILD_DIR:-$ROOT/build}"
CACHEFS="${CACHEFS_BIN:-$BUILD/tools/cachefs/cachefs}"
ORIGIN_CAT="${ORIGIN_CAT:-$BUILD/tests/integration/origins/origin_cat}"
WORKDIR=/var/tmp/cachefs-bench-origins
KEEP=0
NETNS=${CACHEFS_BENCH_NETNS:-cachefs-bench}  # another name for concurrent runs
while (($#)); do
  case "$1" in
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --rtt-ms) RTT_MS=$2; shift 2 ;;
    --budget-mib) BUDGET_MIB=$2; shift 2 ;;
    --cachefs) CACHEFS=$2; shift 2 ;;
    --origin-cat) ORIGIN_CAT=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --inside) INSIDE=1; shift ;;
    --emulate) EMULATE=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

CACHEFS=$(readlink -f "$CACHEFS")
ORIGIN_CAT=$(readlink -f "$ORIGIN_CAT")

if [[ -z "${INSIDE:-}" ]]; then
  [[ $EUID -eq 0 ]] || { echo "run as root (network namespace, tc, mounts)" >&2; exit 2; }
  for bin in "$CACHEFS" "$ORIGIN_CAT"; do
    [[ -x "$bin" ]] || { echo "missing $bin (build cachefs first)" >&2; exit 2; }
  done
  [[ -f "$ROOT/tests/servers/node_modules/s3rver/bin/s3rver.js" ]] ||
    { echo "missing s3rver (tools/install-test-servers.sh)" >&2; exit 2; }
  for tool in gocryptfs nginx rclone s3fs node python3 tc ip fusermount3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (tools/install-deps.sh)" >&2; exit 2; }
  done
  ip netns del "$NETNS" 2>/dev/null || true
  ip netns add "$NETNS"
  trap 'ip netns del "$NETNS" 2>/dev/null || true' EXIT
  ip -n "$NETNS" link set lo up
  # Every packet crosses lo once per direction: half the RTT each way; the rate caps both.
  EMULATE_FLAG=
  if ! ip netns exec "$NETNS" tc qdisc add dev lo root netem \
      delay "$(awk "BEGIN{print $RTT_MS/2}")ms" rate "$RATE" limit 100000 2>/dev/null; then
    echo "note: no sch_netem in this kernel: the link is bench/origins/link_emulator" >&2
    EMULATE_FLAG=--emulate
  fi
  # One `ip netns exec` for everything: it also gives a private mount namespace, so the
  # mounts below are seen by the readers below and by nothing else.
  ip netns exec "$NETNS" "$0" --inside --size-mib "$SIZE_MIB" --rate "$RATE" --rtt-ms "$RTT_MS" \
    --budget-mib "$BUDGET_MIB" --cachefs "$CACHEFS" --origin-cat "$ORIGIN_CAT" \
    --workdir "$WORKDIR" $( ((KEEP)) && echo --keep) $EMULATE_FLAG || exit $?
  exit 0
fi

# ---- inside the namespace ----
mkdir -p "$WORKDIR"
cd "$WORKDIR"
PASS=$WORKDIR/pass.txt
CIPHER=$WORKDIR/cipher
MNT=$WORKDIR/mnt
RCLONE_MNT=$WORKDIR/rclone
STACK_MNT=$WORKDIR/stacked
S3FS_MNT=$WORKDIR/s3fs
S3FS_TMP=$WORKDIR/s3fs-tmp
PIDS=()
cleanup() {
  for m in "$MNT" "$STACK_MNT" "$RCLONE_MNT" "$S3FS_MNT" "$WORKDIR/plain"; do
    mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ((KEEP)) || rm -rf "$WORKDIR"
}
trap cleanup EXIT
mkdir -p "$MNT" "$RCLONE_MNT" "$STACK_MNT" "$S3FS_MNT"

echo benchpass > "$PASS"
chmod 600 "$PASS"
MODEL_BYTES=$((SIZE_MIB << 20))
if [[ ! -f "$CIPHER/gocryptfs.conf" || "$(cat "$WORKDIR/size" 2>/dev/null)" != "$SIZE_MIB" ]]; then
  rm -rf "$CIPHER" "$WORKDIR/s3-size"
  mkdir -p "$CIPHER"
  gocryptfs -q -init -scryptn 10 -passfile "$PASS" "$CIPHER"
  PLAIN=$WORKDIR/plain
  mkdir -p "$PLAIN"
  gocryptfs -q -passfile "$PASS" "$CIPHER" "$PLAIN"
  # Incompressible bytes, fast: AES-CTR keystream of zeros.
  # (head ends the pipe early on purpose: no pipefail here.)
  (set +o pipefail; openssl enc -aes-128-ctr -pass pass:seed -nosalt -pbkdf2 </dev/zero \
    2>/dev/null | head -c "$MODEL_BYTES" >"$PLAIN/model.safetensors")
  sha256sum "$PLAIN/model.safetensors" | cut -d' ' -f1 >"$WORKDIR/sha256"
  fusermount3 -u "$PLAIN"
  rmdir "$PLAIN"
  echo "$SIZE_MIB" >"$WORKDIR/size"
fi
"$ORIGIN_CAT" manifest "file://$CIPHER" >"$CIPHER/cachefs-manifest.json"
CIPHER_FILE=$(find "$CIPHER" -type f -size +1M | head -1)

PORT=8089
cat >"$WORKDIR/nginx.conf" <<EOF
user root;
daemon off;
worker_processes 2;
pid $WORKDIR/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORKDIR; proxy_temp_path $WORKDIR; fastcgi_temp_path $WORKDIR;
  uwsgi_temp_path $WORKDIR; scgi_temp_path $WORKDIR;
  server {
    listen 127.0.0.1:$PORT;
    root $CIPHER;
    location / { autoindex on; }
  }
}
EOF
nginx -e stderr -p "$WORKDIR" -c "$WORKDIR/nginx.conf" &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

LINK_BYTES=$(awk -v r="$RATE" 'BEGIN{n=r+0; u=tolower(r); gsub(/[0-9.]/,"",u);
  m = (u=="gbit") ? 1e9 : (u=="mbit") ? 1e6 : (u=="kbit") ? 1e3 : 1; printf "%.0f", n*m/8}')
LINK_MBPS=$(awk "BEGIN{printf \"%.1f\", $LINK_BYTES / 1e6}")
if [[ -n "${EMULATE:-}" ]]; then
  g++ -O2 -std=c++20 -pthread "$ROOT/bench/origins/link_emulator.cc" -o "$WORKDIR/link_emulator"
  "$WORKDIR/link_emulator" 8088 "$PORT" "$LINK_BYTES" "$RTT_MS" >"$WORKDIR/link.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q READY "$WORKDIR/link.log" && break; sleep 0.1; done
  PORT=8088
fi

# s3rver (npm) with bucket "models", the ciphertext under prefix cipher/ (uploaded straight to
# s3rver, not through the relay). It makes continuation tokens with DES: Node 20 needs the legacy provider.
S3_PORT=8091
S3_DATA=$WORKDIR/s3rver-data
[[ "$(cat "$WORKDIR/s3-size" 2>/dev/null)" == "$SIZE_MIB" ]] || rm -rf "$S3_DATA" "$WORKDIR/s3-size"
mkdir -p "$S3_DATA"
node --openssl-legacy-provider "$ROOT/tests/servers/node_modules/s3rver/bin/s3rver.js" \
  -d "$S3_DATA" -a 127.0.0.1 -p "$S3_PORT" --silent --configure-bucket models \
  >"$WORKDIR/s3rver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
if [[ ! -f "$WORKDIR/s3-size" ]]; then
  python3 - "http://127.0.0.1:$S3_PORT" "$CIPHER" <<'PY'
import os, sys, time
import botocore.session
from botocore.config import Config
endpoint, root = sys.argv[1], sys.argv[2]
s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url=endpoint, region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, read_timeout=600))
for _ in range(100):
    try:
        s3.head_bucket(Bucket="models")
        break
    except Exception:
        time.sleep(0.1)
s3.put_object(Bucket="models", Key="cipher/", Body=b"")  # a directory marker, as s3fs makes
for dirpath, _, files in os.walk(root):
    for name in files:
        if name == "cachefs-manifest.json":
            continue  # the S3 origin lists the bucket
        path = os.path.join(dirpath, name)
        with open(path, "rb") as body:
            s3.put_object(Bucket="models", Key="cipher/" + os.path.relpath(path, root), Body=body)
PY
  echo "$SIZE_MIB" >"$WORKDIR/s3-size"
fi
if [[ -n "${EMULATE:-}" ]]; then
  "$WORKDIR/link_emulator" 8090 "$S3_PORT" "$LINK_BYTES" "$RTT_MS" >"$WORKDIR/link-s3.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q READY "$WORKDIR/link-s3.log" && break; sleep 0.1; done
  S3_PORT=8090
fi

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
mbps() { awk "BEGIN{printf \"%.1f\", $1 / ($3 - $2) / 1e6}"; }

# What one plain HTTP stream gets over the same link (ciphertext from page cache).
cat "$CIPHER_FILE" >/dev/null
t0=$(now); curl -s -o /dev/null "http://127.0.0.1:$PORT/${CIPHER_FILE#$CIPHER/}"; t1=$(now)
CURL_MBPS=$(mbps "$(stat -c %s "$CIPHER_FILE")" "$t0" "$t1")

# timed_read NAME FILE: a cold read of FILE (page cache dropped), then a check of its bytes;
# sets READ_MBPS. The check comes after the timed pass: hashing on 2 cores would slow the reader
# it measures.
timed_read() {
  local name=$1 file=$2 t0 t1 sum
  drop
  t0=$(now)
  dd if="$file" of=/dev/null bs=1M status=none
  t1=$(now)
  READ_MBPS=$(mbps "$MODEL_BYTES" "$t0" "$t1")
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  [[ "$sum" == "$(cat "$WORKDIR/sha256")" ]] || { echo "$name returned wrong bytes" >&2; exit 1; }
}

peak_rss_mib() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$1/status"; }

# --- cachefs, cold (empty memory cache, no disk tier, page cache dropped) ---
# cachefs_run NAME ORIGIN [FLAGS...]: sets CACHEFS_MBPS and CACHEFS_RSS.
cachefs_run() {
  local name=$1 origin=$2
  shift 2
  "$CACHEFS" mount --foreground --insecure-allow-non-tee --passfile "$PASS" \
    --memory-budget "${BUDGET_MIB}MiB" "$@" "$origin" "$MNT" >"$WORKDIR/cachefs-$name.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  for _ in $(seq 300); do grep -q " at $MNT: " "$WORKDIR/cachefs-$name.log" && break; sleep 0.1; done
  mountpoint -q "$MNT" || { cat "$WORKDIR/cachefs-$name.log"; exit 1; }
  timed_read "cachefs ($name)" "$MNT/model.safetensors"
  CACHEFS_MBPS=$READ_MBPS
  CACHEFS_RSS=$(peak_rss_mib "$pid")
  fusermount3 -u "$MNT"
  wait "$pid" || true
  echo "cachefs ($name): $CACHEFS_MBPS MB/s, peak RSS $CACHEFS_RSS MiB"
}
cachefs_run http "http://127.0.0.1:$PORT/"
HTTP_MBPS=$CACHEFS_MBPS
HTTP_RSS=$CACHEFS_RSS
cachefs_run s3 "s3://models/cipher" --endpoint "http://127.0.0.1:$S3_PORT" --path-style
S3_MBPS=$CACHEFS_MBPS
S3_RSS=$CACHEFS_RSS
CACHEFS_RSS=$((HTTP_RSS > S3_RSS ? HTTP_RSS : S3_RSS))

# --- s3fs (Debian defaults: no use_cache, so no disk cache kept) + gocryptfs on top, cold ---
# Only what it takes to reach s3rver: url, path-style requests, the key file, read-only. Its
# temporary files (the open file's data) go to a fresh private directory.
echo "S3RVER:S3RVER" >"$WORKDIR/s3fs.passwd"
chmod 600 "$WORKDIR/s3fs.passwd"
rm -rf "$S3FS_TMP"
mkdir -p "$S3FS_TMP"
s3fs models:/cipher "$S3FS_MNT" -o ro -o "url=http://127.0.0.1:$S3_PORT" \
  -o use_path_request_style -o "passwd_file=$WORKDIR/s3fs.passwd" -o "tmpdir=$S3FS_TMP" \
  -o "logfile=$WORKDIR/s3fs.log"
for _ in $(seq 300); do mountpoint -q "$S3FS_MNT" && break; sleep 0.1; done
gocryptfs -q -ro -passfile "$PASS" "$S3FS_MNT" "$STACK_MNT"
timed_read "s3fs + gocryptfs" "$STACK_MNT/model.safetensors"
S3FS_MBPS=$READ_MBPS
fusermount3 -u "$STACK_MNT"
fusermount3 -u "$S3FS_MNT"
rm -rf "$S3FS_TMP"
echo "s3fs + gocryptfs: $S3FS_MBPS MB/s"

# --- rclone mount (HTTP remote) + gocryptfs on top, cold ---
rclone mount ":http:" "$RCLONE_MNT" --http-url "http://127.0.0.1:$PORT/" --read-only \
  --vfs-cache-mode off --daemon-wait 30s >"$WORKDIR/rclone.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do mountpoint -q "$RCLONE_MNT" && break; sleep 0.1; done
gocryptfs -q -ro -passfile "$PASS" "$RCLONE_MNT" "$STACK_MNT"
timed_read "rclone + gocryptfs" "$STACK_MNT/model.safetensors"
STACK_MBPS=$READ_MBPS
fusermount3 -u "$STACK_MNT"
fusermount3 -u "$RCLONE_MNT"

PCT=$(awk "BEGIN{printf \"%.0f\", 100 * $HTTP_MBPS / $LINK_MBPS}")
RATIO=$(awk "BEGIN{printf \"%.2f\", $HTTP_MBPS / $STACK_MBPS}")
S3_PCT=$(awk "BEGIN{printf \"%.0f\", 100 * $S3_MBPS / $LINK_MBPS}")
S3_RATIO=$(awk "BEGIN{printf \"%.2f\", $S3_MBPS / $S3FS_MBPS}")
RSS_LIMIT=$((256 + BUDGET_MIB))
echo "link: $RATE, RTT ${RTT_MS} ms ($([[ -n "${EMULATE:-}" ]] && echo link_emulator || echo netem))" \
  "= $LINK_MBPS MB/s; one curl stream: $CURL_MBPS MB/s"
echo "model: $SIZE_MIB MiB plaintext, cold sequential read (dd bs=1M, page cache dropped)"
echo "cachefs (HTTP origin, budget ${BUDGET_MIB} MiB): $HTTP_MBPS MB/s = $PCT% of link," \
  "peak RSS $HTTP_RSS MiB (limit $RSS_LIMIT MiB)"
echo "rclone mount + gocryptfs: $STACK_MBPS MB/s"
echo "ratio cachefs (HTTP) / rclone + gocryptfs: ${RATIO}x (not a target)"
echo "cachefs (S3 origin, budget ${BUDGET_MIB} MiB): $S3_MBPS MB/s = $S3_PCT% of link," \
  "peak RSS $S3_RSS MiB (limit $RSS_LIMIT MiB)"
echo "s3fs + gocryptfs: $S3FS_MBPS MB/s"
echo "ratio cachefs (S3) / s3fs + gocryptfs: ${S3_RATIO}x"
ok=1
awk "BEGIN{exit !($PCT >= 90)}" || { echo "MISS: HTTP origin below 90% of the link"; ok=0; }
awk "BEGIN{exit !($S3_PCT >= 90)}" || { echo "MISS: S3 origin below 90% of the link"; ok=0; }
awk "BEGIN{exit !($S3_RATIO >= 3)}" || { echo "MISS: less than 3x s3fs + gocryptfs"; ok=0; }
((CACHEFS_RSS <= RSS_LIMIT)) || { echo "MISS: RSS above 256 MiB + budget"; ok=0; }
if ((ok)); then
  echo "all targets met"
else
  exit 1  # a missed target, reported above
fi

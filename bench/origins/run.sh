#!/usr/bin/env bash
# Cold sequential read of an encrypted model over a shaped link: cachefs (HTTP origin) against
# the stacked pair rclone mount (HTTP remote) + gocryptfs, over the same link.
#
# The link: a private network namespace whose loopback is shaped with tc netem (rate RATE,
# delay RTT/2 each way, so one RTT per round trip). On kernels without sch_netem the link is
# bench/origins/link_emulator.cc, a relay in front of nginx with the same rate and RTT and a
# TCP-like window. nginx, both daemons and the readers all run inside that namespace, so no
# traffic leaves it and only 127.0.0.1 is ever addressed.
#
# Usage (root; needs gocryptfs, nginx, rclone, fuse3, iproute2; the cachefs build):
#   bench/origins/run.sh [--size-mib 2048] [--rate 2gbit] [--rtt-ms 5] [--budget-mib 512]
#                        [--cachefs BIN] [--origin-cat BIN] [--workdir DIR] [--keep]
# Prints the link rate, MB/s of each, % of the link, the ratio, and cachefs's peak RSS, and
# checks the targets (>= 90% of the link, >= 3x the stacked pair, RSS <= 256 MiB + budget);
# exits 1 when one is missed.
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
NETNS=cachefs-bench
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
  for tool in gocryptfs nginx rclone tc ip fusermount3; do
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
PIDS=()
cleanup() {
  for m in "$MNT" "$STACK_MNT" "$RCLONE_MNT" "$WORKDIR/plain"; do
    mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ((KEEP)) || rm -rf "$WORKDIR"
}
trap cleanup EXIT
mkdir -p "$MNT" "$RCLONE_MNT" "$STACK_MNT"

echo benchpass > "$PASS"
chmod 600 "$PASS"
MODEL_BYTES=$((SIZE_MIB << 20))
if [[ ! -f "$CIPHER/gocryptfs.conf" || "$(cat "$WORKDIR/size" 2>/dev/null)" != "$SIZE_MIB" ]]; then
  rm -rf "$CIPHER"
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

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
mbps() { awk "BEGIN{printf \"%.1f\", $1 / ($3 - $2) / 1e6}"; }

# What one plain HTTP stream gets over the same link (ciphertext from page cache).
cat "$CIPHER_FILE" >/dev/null
t0=$(now); curl -s -o /dev/null "http://127.0.0.1:$PORT/${CIPHER_FILE#$CIPHER/}"; t1=$(now)
CURL_MBPS=$(mbps "$(stat -c %s "$CIPHER_FILE")" "$t0" "$t1")

peak_rss_mib() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$1/status"; }

# --- cachefs, cold (empty memory cache, no disk tier, page cache dropped) ---
"$CACHEFS" mount --foreground --insecure-allow-non-tee --passfile "$PASS" \
  --memory-budget "${BUDGET_MIB}MiB" "http://127.0.0.1:$PORT/" "$MNT" >"$WORKDIR/cachefs.log" 2>&1 &
CACHEFS_PID=$!
PIDS+=($CACHEFS_PID)
for _ in $(seq 300); do grep -q " at $MNT: " "$WORKDIR/cachefs.log" && break; sleep 0.1; done
mountpoint -q "$MNT" || { cat "$WORKDIR/cachefs.log"; exit 1; }
drop
t0=$(now)
dd if="$MNT/model.safetensors" of=/dev/null bs=1M status=none
t1=$(now)
CACHEFS_MBPS=$(mbps "$MODEL_BYTES" "$t0" "$t1")
CACHEFS_RSS=$(peak_rss_mib "$CACHEFS_PID")
# Checked after the timed pass (hashing on 2 cores would slow the reader it measures).
SUM=$(sha256sum "$MNT/model.safetensors" | cut -d' ' -f1)
[[ "$SUM" == "$(cat "$WORKDIR/sha256")" ]] || { echo "cachefs returned wrong bytes" >&2; exit 1; }
fusermount3 -u "$MNT"
wait "$CACHEFS_PID" || true
echo "cachefs: $CACHEFS_MBPS MB/s, peak RSS $CACHEFS_RSS MiB"

# --- rclone mount (HTTP remote) + gocryptfs on top, cold ---
rclone mount ":http:" "$RCLONE_MNT" --http-url "http://127.0.0.1:$PORT/" --read-only \
  --vfs-cache-mode off --daemon-wait 30s >"$WORKDIR/rclone.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do mountpoint -q "$RCLONE_MNT" && break; sleep 0.1; done
gocryptfs -q -ro -passfile "$PASS" "$RCLONE_MNT" "$STACK_MNT"
drop
t0=$(now)
dd if="$STACK_MNT/model.safetensors" of=/dev/null bs=1M status=none
t1=$(now)
STACK_MBPS=$(mbps "$MODEL_BYTES" "$t0" "$t1")
SUM=$(sha256sum "$STACK_MNT/model.safetensors" | cut -d' ' -f1)
[[ "$SUM" == "$(cat "$WORKDIR/sha256")" ]] || { echo "stacked pair returned wrong bytes" >&2; exit 1; }
fusermount3 -u "$STACK_MNT"
fusermount3 -u "$RCLONE_MNT"

PCT=$(awk "BEGIN{printf \"%.0f\", 100 * $CACHEFS_MBPS / $LINK_MBPS}")
RATIO=$(awk "BEGIN{printf \"%.2f\", $CACHEFS_MBPS / $STACK_MBPS}")
RSS_LIMIT=$((256 + BUDGET_MIB))
echo "link: $RATE, RTT ${RTT_MS} ms ($([[ -n "${EMULATE:-}" ]] && echo link_emulator || echo netem))" \
  "= $LINK_MBPS MB/s; one curl stream: $CURL_MBPS MB/s"
echo "model: $SIZE_MIB MiB plaintext, cold sequential read (dd bs=1M, page cache dropped)"
echo "cachefs (HTTP origin, budget ${BUDGET_MIB} MiB): $CACHEFS_MBPS MB/s = $PCT% of link," \
  "peak RSS $CACHEFS_RSS MiB (limit $RSS_LIMIT MiB)"
echo "rclone mount + gocryptfs: $STACK_MBPS MB/s"
echo "ratio cachefs / stacked: ${RATIO}x"
ok=1
awk "BEGIN{exit !($PCT >= 90)}" || { echo "MISS: below 90% of the link"; ok=0; }
awk "BEGIN{exit !($RATIO >= 3)}" || { echo "MISS: less than 3x the stacked pair"; ok=0; }
((CACHEFS_RSS <= RSS_LIMIT)) || { echo "MISS: RSS above 256 MiB + budget"; ok=0; }
if ((ok)); then
  echo "all targets met"
else
  exit 1  # a missed target, reported above
fi

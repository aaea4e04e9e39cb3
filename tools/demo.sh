#!/usr/bin/env bash
# Installs everything, builds, makes a small gocryptfs-encrypted "model" with the real
# gocryptfs, mounts it read-only at /tmp/model with cachefs, then lists and checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
bash tools/build.sh
CACHEFS=$PWD/build/tools/cachefs/cachefs

demo=/var/tmp/cachefs-demo
model=/tmp/model
if mountpoint -q "$model"; then
  fusermount3 -u "$model"
fi
rm -rf "$demo"
mkdir -p "$demo/plain" "$demo/cipher" "$demo/write"
umask 077
printf 'demo-password\n' >"$demo/password"

echo "== making a small model and encrypting it with gocryptfs $(gocryptfs --version | cut -d' ' -f2)"
head -c 48M /dev/urandom >"$demo/plain/model-00001-of-00002.safetensors"
head -c 16M /dev/urandom >"$demo/plain/model-00002-of-00002.safetensors"
printf '{"architectures": ["DemoForCausalLM"], "hidden_size": 1024}\n' >"$demo/plain/config.json"
printf '{"eos_token": "</s>"}\n' >"$demo/plain/tokenizer_config.json"
gocryptfs -q -init -passfile "$demo/password" "$demo/cipher"
gocryptfs -q -passfile "$demo/password" "$demo/cipher" "$demo/write"
cp "$demo/plain/"* "$demo/write/"
fusermount3 -u "$demo/write"
echo "ciphertext objects:"
ls -l "$demo/cipher"

echo
echo "== mounting with cachefs at $model"
# This machine is not a TDX guest, so plaintext export must be allowed explicitly.
"$CACHEFS" mount --insecure-allow-non-tee --passfile "$demo/password" "$demo/cipher" "$model"
ls -l "$model"

echo
echo "== checking every file against the plaintext"
(cd "$demo/plain" && sha256sum -- *) >"$demo/SHA256SUMS"
(cd "$model" && sha256sum --check "$demo/SHA256SUMS")
python3 - "$model/model-00001-of-00002.safetensors" "$demo/plain/model-00001-of-00002.safetensors" <<'PY'
import mmap, sys
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    m = mmap.mmap(a.fileno(), 0, prot=mmap.PROT_READ)
    assert m[:] == b.read(), "mmap view differs"
print("mmap view of model-00001-of-00002.safetensors: OK")
PY
echo
echo "The model stays mounted at $model. Unmount with: fusermount3 -u $model"

"""End to end: `cachefs mount` from s3rver (S3 API) and from nginx (HTTP + manifest), the
plaintext compared with the tree gocryptfs 2.3 wrote, cold and with a warm disk cache."""

import os
import shutil
import tempfile

import pytest

from cachefs_testlib import (CACHEFS, CachefsMount, deterministic_bytes, gocryptfs_mount,
                             require_fuse, tree_snapshot, write_passfile)
from conftest import clean_env, run_origin_cat, s3_env

MIB = 1 << 20


def model_tree(root):
    def put(rel, data):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    put("config.json", b'{"architectures": ["Qwen2ForCausalLM"]}\n')
    put("model-00001-of-00002.safetensors", deterministic_bytes("shard1", 20 * MIB + 4097))
    put("model-00002-of-00002.safetensors", deterministic_bytes("shard2", 3 * MIB + 1))
    put("tokenizer/vocab.txt", b"a\nb\n" * 1000)
    put("empty.bin", b"")
    put("x" * 200 + ".txt", b"long name\n")  # a gocryptfs long-name companion


def contents(root):
    """The tree without permission bits: object stores keep none (cachefs serves 0444/0555)."""
    return {rel: entry[:3] for rel, entry in tree_snapshot(root).items()}


@pytest.fixture(scope="module")
def volume():
    require_fuse()
    if not shutil.which(CACHEFS) and not os.path.exists(CACHEFS):
        pytest.skip("the cachefs binary is not built (CACHEFS_BIN)")
    work = tempfile.mkdtemp(prefix="cachefs-origins-")
    passfile = write_passfile(work)
    reference = os.path.join(work, "reference")
    os.makedirs(reference)
    model_tree(reference)
    cipher = os.path.join(work, "cipher")
    with gocryptfs_mount(cipher, passfile) as plain:
        model_tree(plain)
    yield {"work": work, "passfile": passfile, "reference": reference, "cipher": cipher}
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def mountpoint(volume):
    path = tempfile.mkdtemp(prefix="mnt-", dir=volume["work"])
    yield path
    if os.path.isdir(path):
        os.rmdir(path)


def upload(client, bucket, prefix, root):
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            key = prefix + os.path.relpath(path, root)
            with open(path, "rb") as f:
                client.put_object(Bucket=bucket, Key=key, Body=f.read())


def test_mount_from_s3(volume, s3rver, mountpoint, tmp_path):
    upload(s3rver["client"], "models", "e2e/", volume["cipher"])
    args = ["--passfile", volume["passfile"], "--endpoint", s3rver["endpoint"], "--part-size",
            "1MiB", "--cache-dir", str(tmp_path / "cache")]
    with CachefsMount("s3://models/e2e/", mountpoint, args, env=s3_env()) as mount:
        assert contents(mountpoint) == contents(volume["reference"])
        assert " error " not in mount.output()
    # Again with the disk cache warm.
    with CachefsMount("s3://models/e2e/", mountpoint, args, env=s3_env()):
        assert contents(mountpoint) == contents(volume["reference"])


def test_mount_from_http_manifest(volume, nginx, tree, mountpoint):
    # Publish the ciphertext below nginx's root with a manifest beside it.
    site = os.path.join(tree["root"], "site")
    shutil.copytree(volume["cipher"], site, symlinks=True)
    manifest = run_origin_cat("manifest", "file://" + site).stdout
    with open(os.path.join(site, "cachefs-manifest.json"), "wb") as f:
        f.write(manifest)
    args = ["--passfile", volume["passfile"], "--part-size", "1MiB"]
    with CachefsMount(nginx["url"] + "site/", mountpoint, args, env=clean_env()):
        assert contents(mountpoint) == contents(volume["reference"])

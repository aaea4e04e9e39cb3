"""Every gocryptfs 2.3 -init variant, written by the real gocryptfs and read back by cachefs."""

import os
import subprocess
import tempfile

import pytest

from cachefs_testlib import (CachefsMount, deterministic_bytes, require_fuse, tree_snapshot,
                             unexpected_log_lines, write_passfile)

VARIANTS = {
    "default": [],
    "plaintextnames": ["-plaintextnames"],
    "deterministic-names": ["-deterministic-names"],
    "xchacha": ["-xchacha"],
    "aessiv": ["-aessiv"],
    "raw64-off": ["-raw64=false"],
    "longnamemax-62": ["-longnamemax", "62"],
    "no-hkdf": ["-hkdf=false"],
}


def small_tree(root):
    def put(rel, data):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    for size in (0, 1, 4096, 4097, 300000):
        put(f"f{size}", deterministic_bytes(f"m{size}", size))
    # Around the long-name threshold of the default (175/176) and of -longnamemax 62 (30/31).
    for length in (30, 31, 47, 48, 175, 176, 255):
        put("n" * length, deterministic_bytes(str(length), 33))
    put("sub/dir/inner.bin", deterministic_bytes("inner", 8192 * 3 + 5))
    os.symlink("sub/dir/inner.bin", os.path.join(root, "link"))
    with open(os.path.join(root, "holes"), "wb") as f:
        f.truncate(5 * 4096)
        f.seek(2 * 4096 + 7)
        f.write(b"middle")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_reads_back(variant, workdir):
    require_fuse()
    base = tempfile.mkdtemp(prefix=f"variant-{variant}-", dir=workdir)
    passfile = write_passfile(base)
    cipher = os.path.join(base, "cipher")
    os.makedirs(cipher)
    subprocess.run(["gocryptfs", "-q", "-init", "-passfile", passfile, "-scryptn", "10",
                    *VARIANTS[variant], cipher], check=True)
    plain = os.path.join(base, "plain")
    os.makedirs(plain)
    subprocess.run(["gocryptfs", "-q", "-passfile", passfile, cipher, plain], check=True)
    try:
        small_tree(plain)
        want = tree_snapshot(plain)
    finally:
        subprocess.run(["fusermount3", "-u", plain], check=True)
    mnt = os.path.join(base, "mnt")
    os.makedirs(mnt)
    with CachefsMount(cipher, mnt, ["--passfile", passfile]) as mount:
        assert tree_snapshot(mnt) == want
        assert unexpected_log_lines(mount.output()) == []

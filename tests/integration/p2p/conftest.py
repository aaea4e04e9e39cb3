"""Fixtures for the sharing-group suite: namespaces, two gocryptfs volumes behind nginx."""

import hashlib
import os
import random
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import cachefs_testlib as testlib  # noqa: E402
import p2p_net  # noqa: E402

MIB = 1 << 20


def build_model(root):
    """A small model: two random shards, a sparse file (ciphertext holes), small files."""
    os.makedirs(os.path.join(root, "model"), exist_ok=True)
    rng = random.Random(5)
    for name, size in (("model-00001-of-00002.safetensors", 40 * MIB + 4321),
                       ("model-00002-of-00002.safetensors", 24 * MIB)):
        with open(os.path.join(root, "model", name), "wb") as f:
            f.write(rng.randbytes(size))
    with open(os.path.join(root, "model", "sparse.bin"), "wb") as f:
        f.truncate(32 * MIB)
        f.seek(17 * MIB + 5)
        f.write(b"data in the middle of holes")
    with open(os.path.join(root, "config.json"), "w") as f:
        f.write('{"architectures": ["Test"]}\n')


def digests(root):
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="session")
def world():
    testlib.require_fuse()
    for tool in ("ip", "nsenter", "gocryptfs", "nginx"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            pytest.skip(tool + " is not installed")
    work = tempfile.mkdtemp(prefix="p2p-world-")
    passfile = testlib.write_passfile(work)
    served = os.path.join(work, "served")
    volumes = {}
    for name in ("model", "other"):
        cipher = os.path.join(served, name)
        with testlib.gocryptfs_mount(cipher, passfile) as plain:
            build_model(plain)
            volumes[name] = digests(plain)
        p2p_net.write_manifest(cipher)
    topology = p2p_net.Topology(nodes=5)
    nginx = None
    try:
        nginx = p2p_net.Nginx(topology, served)
        yield {
            "topology": topology,
            "nginx": nginx,
            "passfile": passfile,
            "work": work,
            "url": nginx.url + "model/",
            "other_url": nginx.url + "other/",
            "digests": volumes["model"],
            "other_digests": volumes["other"],
            "cipher_bytes": p2p_net.ciphertext_bytes(os.path.join(served, "model")),
        }
    finally:
        if nginx:
            nginx.stop()
        topology.close()
        shutil.rmtree(work, ignore_errors=True)

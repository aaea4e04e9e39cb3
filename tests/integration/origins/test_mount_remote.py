"""End to end: `cachefs mount` from s3rver (S3 API) and from nginx (HTTP + manifest), the
plaintext compared with the tree gocryptfs 2.3 wrote, cold and with a warm disk cache."""

import os
import shutil
import tempfile

import pytest

from cachefs_testlib import CACHEFS, CachefsMount, encrypt_tree, require_fuse, write_passfile
from conftest import clean_env, contents, model_tree, run_origin_cat, s3_env, upload


@pytest.fixture(scope="module")
def volume():
    require_fuse()
    if not shutil.which(CACHEFS) and not os.path.exists(CACHEFS):
        pytest.skip("the cachefs binary is not built (CACHEFS_BIN)")
    work = tempfile.mkdtemp(prefix="cachefs-origins-")
    passfile = write_passfile(work)
    reference = os.path.join(work, "reference")
    cipher = os.path.join(work, "cipher")
    encrypt_tree(cipher, passfile, model_tree, reference)
    yield {"work": work, "passfile": passfile, "reference": reference, "cipher": cipher}
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def mountpoint(volume):
    path = tempfile.mkdtemp(prefix="mnt-", dir=volume["work"])
    yield path
    if os.path.isdir(path):
        os.rmdir(path)


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

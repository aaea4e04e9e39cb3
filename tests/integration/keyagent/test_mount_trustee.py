"""`cachefs mount` getting its key from the KBS test double end to end, and leaving no mount
behind when Trustee refuses or fails."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from cachefs_testlib import (CachefsMount, deterministic_bytes, encrypt_tree, is_mounted,
                             require_fuse, write_files, write_passfile)
from conftest import KEY_ID, RESOURCE, free_port, kbs_double

CACHEFS = os.environ.get("CACHEFS_BIN", "")
CACHEFSCTL = os.environ.get("CACHEFSCTL_BIN", "")
PASSWORD = "trustee-released-password-7Qa"
FILES = {"hello.txt": b"hello from a Trustee-keyed mount\n",
         "model/weights.bin": deterministic_bytes("weights", 3 * 1024 * 1024 + 17)}


@pytest.fixture(scope="module")
def volume():
    if not CACHEFS or not os.path.exists(CACHEFS):
        pytest.skip("the cachefs binary is not built (CACHEFS_BIN)")
    require_fuse()
    workdir = tempfile.mkdtemp(prefix="keyagent-mount-")
    passfile = write_passfile(workdir, PASSWORD)
    cipher = os.path.join(workdir, "cipher")
    encrypt_tree(cipher, passfile, lambda root: write_files(root, FILES))
    yield workdir, cipher
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def mountpoint(volume):
    path = tempfile.mkdtemp(prefix="mnt-", dir=volume[0])
    yield path
    if is_mounted(path):
        subprocess.run(["umount", "-l", path], check=False)
    if os.path.isdir(path):
        os.rmdir(path)


def trustee_flags(url, *extra):
    return ["--trustee-url", url, "--key-id", KEY_ID, "--attester", "sample", *extra]


def test_mount_gets_its_key_from_trustee(volume, mountpoint):
    _, cipher = volume
    socket = os.path.join(os.path.dirname(mountpoint), "control.sock")
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        with CachefsMount(cipher, mountpoint,
                          args=trustee_flags(kbs.url, "--control-socket", socket)) as mount:
            for rel, data in FILES.items():
                with open(os.path.join(mountpoint, rel), "rb") as f:
                    assert f.read() == data, rel
            if CACHEFSCTL:
                status = subprocess.run([CACHEFSCTL, "--socket", socket, "status", "--json"],
                                        capture_output=True, text=True, timeout=30)
                assert status.returncode == 0, status.stderr
                key = json.loads(status.stdout)["key"]
                assert key["attestation"]["tee_type"] == "sample"
                assert key["attestation"]["token_expires_unix"] > time.time()
                assert abs(key["attestation"]["attested_unix"] - time.time()) < 300
                assert PASSWORD not in status.stdout
            output = mount.output()
            assert f"key from trustee {kbs.url} key {KEY_ID}" in output, output
            assert PASSWORD not in output
            assert mount.stop() == 0
        assert kbs.stats()["resource_ok"] == 1
    assert not is_mounted(mountpoint)


def run_failed_mount(cipher, mountpoint, flags):
    result = subprocess.run([CACHEFS, "mount", "--foreground", "--insecure-allow-non-tee",
                             *flags, cipher, mountpoint], capture_output=True, text=True,
                            timeout=120)
    return result.returncode, result.stdout + result.stderr


MOUNT_FAILURES = [
    (["--deny-policy"], "policy denied"),
    (["--wrong-nonce"], "rejected the attestation"),
    (["--tamper-evidence"], "report_data mismatch"),
    (["--expired-token"], "did not accept the attestation token"),
    (["--malformed-json", "attest"], "/attest reply is not valid JSON"),
    (["--malformed-jwe"], "JWE authentication failed"),
    (["--missing"], "no such resource"),
]


@pytest.mark.parametrize("switches,fragment", MOUNT_FAILURES,
                         ids=[" ".join(f[0]) for f in MOUNT_FAILURES])
def test_refused_key_leaves_no_mount(volume, mountpoint, switches, fragment):
    _, cipher = volume
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}", *switches) as kbs:
        rc, output = run_failed_mount(cipher, mountpoint, trustee_flags(kbs.url, "--key-retries",
                                                                         "0"))
    assert rc != 0, output
    assert not is_mounted(mountpoint)
    errors = [line for line in output.splitlines() if line.startswith("cachefs: ")]
    assert len(errors) == 1, output
    assert fragment in errors[0], output
    assert PASSWORD not in output


def test_unreachable_trustee_leaves_no_mount(volume, mountpoint):
    _, cipher = volume
    url = f"http://127.0.0.1:{free_port()}/api"
    rc, output = run_failed_mount(cipher, mountpoint, trustee_flags(url, "--key-retries", "1"))
    assert rc != 0, output
    assert not is_mounted(mountpoint)
    errors = [line for line in output.splitlines() if line.startswith("cachefs: ")]
    assert len(errors) == 1 and "gave up after 2 attempts" in errors[0], output


def test_wrong_key_from_trustee_leaves_no_mount(volume, mountpoint):
    _, cipher = volume
    with kbs_double("--resource", f"{RESOURCE}=not-the-password") as kbs:
        rc, output = run_failed_mount(cipher, mountpoint, trustee_flags(kbs.url))
    assert rc != 0, output
    assert not is_mounted(mountpoint)
    assert "not-the-password" not in output

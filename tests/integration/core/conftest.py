import os
import shutil
import tempfile

import pytest

from cachefs_testlib import edge_case_tree, encrypt_tree, require_fuse, write_passfile


@pytest.fixture(scope="session")
def workdir():
    path = tempfile.mkdtemp(prefix="cachefs-it-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def edge_volume(workdir):
    """(cipher dir, reference plaintext dir, passfile): the §12 edge-case tree written through
    the real gocryptfs 2.3, and the same tree written to a plain directory."""
    require_fuse()
    passfile = write_passfile(workdir)
    reference = os.path.join(workdir, "reference")
    cipher = os.path.join(workdir, "cipher")
    encrypt_tree(cipher, passfile, edge_case_tree, reference)
    return cipher, reference, passfile


@pytest.fixture
def mountpoint(workdir):
    path = tempfile.mkdtemp(prefix="mnt-", dir=workdir)
    yield path
    if os.path.isdir(path):
        os.rmdir(path)

"""Fixtures for the control-plane suite: a gocryptfs tree written by the real gocryptfs and
cachefs mounts of it with a control socket (and optionally /metrics)."""

import atexit
import functools
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from cachefs_testlib import (CachefsMount, deterministic_bytes, encrypt_tree, nginx_server,
                             require_fuse, write_files, write_passfile)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CACHEFS_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "../../..")))
BUILD_DIR = os.environ.get("CACHEFS_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
CACHEFSCTL = os.environ.get("CACHEFSCTL_BIN",
                            os.path.join(BUILD_DIR, "tools/cachefsctl/cachefsctl"))
CONTROL_PROBE = os.environ.get("CONTROL_PROBE",
                               os.path.join(BUILD_DIR, "tests/integration/control/control_probe"))
DEPLOY_DIR = os.path.join(SOURCE_DIR, "deploy")
MIB = 1 << 20

FILES = {
    "model/model-00001-of-00002.safetensors": deterministic_bytes("shard1", 24 * MIB + 5),
    "model/model-00002-of-00002.safetensors": deterministic_bytes("shard2", 9 * MIB + 4097),
    "model/config.json": b'{"architectures": ["Tiny"]}\n',
    "README.md": b"tiny model\n",
    "empty": b"",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """A gocryptfs 2.3 cipher directory holding FILES, and its password file."""
    require_fuse()
    root = tmp_path_factory.mktemp("control-tree")
    password = write_passfile(str(root))
    cipher = str(root / "cipher")
    encrypt_tree(cipher, password, lambda root: write_files(root, FILES))
    return {"cipher": cipher, "password": password, "root": str(root)}


@functools.lru_cache(maxsize=None)
def ctl_for_others():
    """A copy of cachefsctl that another user can run: the build tree may sit in a directory
    only root can enter (a checkout under `mktemp -d` is 0700)."""
    directory = tempfile.mkdtemp(prefix="cachefsctl-")
    atexit.register(shutil.rmtree, directory, True)
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "cachefsctl")
    shutil.copy(CACHEFSCTL, path)
    os.chmod(path, 0o755)
    return path


def ctl(*args, mountpoint=None, socket_path=None, timeout=60, user=None, check=None, env=None):
    cmd = [ctl_for_others() if user else CACHEFSCTL]
    if socket_path:
        cmd += ["--socket", socket_path]
    elif mountpoint:
        cmd += ["--mountpoint", mountpoint]
    cmd += [str(a) for a in args]
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check is not None:
        assert proc.returncode == check, (cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


class Mount:
    """A foreground cachefs mount of the tree with its own control socket."""

    def __init__(self, tree, extra=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="cachefs-control-")
        self.mountpoint = os.path.join(self.dir, "mnt")
        os.mkdir(self.mountpoint)
        self.socket = os.path.join(self.dir, "control.sock")
        self.mount = CachefsMount(tree["cipher"], self.mountpoint,
                                  ["--passfile", tree["password"], "--control-socket",
                                   self.socket, *extra], env=env)

    def ctl(self, *args, **kwargs):
        return ctl(*args, socket_path=self.socket, **kwargs)

    def output(self):
        return self.mount.output()

    def close(self):
        code = self.mount.stop()
        self.mount.__exit__(None, None, None)
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


@pytest.fixture
def mounted(tree):
    m = Mount(tree)
    yield m
    m.close()


@pytest.fixture(scope="session")
def http_origin(tree, tmp_path_factory):
    """nginx serving a copy of the cipher tree with the cachefs-manifest.json that
    `cachefsctl manifest` writes: a remote origin, so mounts have memory and disk tiers."""
    root = tmp_path_factory.mktemp("http-origin")
    served = str(root / "model")
    shutil.copytree(tree["cipher"], served)
    subprocess.run([CACHEFSCTL, "manifest", served, "-o",
                    os.path.join(served, "cachefs-manifest.json")], check=True)
    port = free_port()
    # /slow/ serves the same files at 2 MB/s per connection: a warm-up slow enough to interrupt.
    with nginx_server(root, port, "listen 127.0.0.1:%d; root %s; location / { } "
                      "location /slow/ { alias %s/; limit_rate 2m; }" % (port, root, root)):
        yield "http://127.0.0.1:%d/model/" % port

"""Shared helpers for the integration suites: real gocryptfs trees, real cachefs mounts."""

import contextlib
import hashlib
import os
import random
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

CACHEFS = os.environ.get("CACHEFS_BIN", "cachefs")
FIXTURES = os.environ.get("CACHEFS_FIXTURES_DIR", "")
PASSWORD = "cachefs-test-password"


def require_fuse():
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is absent on this machine: FUSE mounts cannot be tested here")
    if os.geteuid() != 0:
        pytest.skip("integration mounts run as root (they set the bdi readahead and umount2)")


def deterministic_bytes(seed, size):
    return random.Random(seed).randbytes(size)


def write_passfile(directory, password=PASSWORD):
    path = os.path.join(directory, "password.txt")
    with open(path, "w") as f:
        f.write(password + "\n")
    os.chmod(path, 0o600)
    return path


def is_mounted(path, prefix=()):
    return subprocess.run([*prefix, "mountpoint", "-q", path]).returncode == 0


def wait_until(predicate, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@contextlib.contextmanager
def gocryptfs_mount(cipher, password_file, scryptn=10):
    """Creates (if needed) and mounts a gocryptfs volume with the real gocryptfs; yields the
    plaintext directory to write into."""
    if not os.path.exists(os.path.join(cipher, "gocryptfs.conf")):
        os.makedirs(cipher, exist_ok=True)
        subprocess.run(["gocryptfs", "-q", "-init", "-passfile", password_file, "-scryptn",
                        str(scryptn), cipher], check=True)
    plain = tempfile.mkdtemp(prefix="gocryptfs-plain-")
    subprocess.run(["gocryptfs", "-q", "-passfile", password_file, cipher, plain], check=True)
    try:
        yield plain
    finally:
        subprocess.run(["fusermount3", "-u", plain], check=True)
        os.rmdir(plain)


def encrypt_tree(cipher, password_file, build, reference=None):
    """Runs `build(root)` through a gocryptfs mount of `cipher` (created if needed) and, when
    `reference` is given, on that plain directory too, so that both hold the same plaintext."""
    if reference is not None:
        os.makedirs(reference, exist_ok=True)
        build(reference)
    with gocryptfs_mount(cipher, password_file) as plain:
        build(plain)


def write_files(root, files):
    """Writes {relative path: bytes} below `root`, making directories as needed."""
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def edge_case_tree(root):
    """The tree of gocryptfs-format.md §12: block-boundary sizes, holes, long names around the
    threshold, unicode, symlinks, deep and wide directories."""
    def put(rel, data):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    for size in (0, 1, 4095, 4096, 4097, 8192, 12288, 1048576, 1048593):
        put(f"sizes/file_{size}", deterministic_bytes(f"size{size}", size))
    # Sparse: truncate to 20 MiB (all holes), then 21 bytes at 10 MiB + 100.
    sparse = os.path.join(root, "sparse_truncated")
    with open(sparse, "wb") as f:
        f.truncate(20 * 1024 * 1024)
        f.seek(10 * 1024 * 1024 + 100)
        f.write(b"written into the hole")
    with open(os.path.join(root, "sparse_gap"), "wb") as f:
        f.write(b"A")
        f.seek(12293)
        f.write(b"Z")
    for length in (175, 176, 255):
        name = ("n%d_" % length).ljust(length, "x")
        put(name, deterministic_bytes(name, 100))
    long_dir = "d" * 208
    put(os.path.join(long_dir, "inside.txt"), b"inside a long-named directory\n")
    os.symlink("sizes/file_1", os.path.join(root, "s" * 205))
    os.symlink("file_4096x", os.path.join(root, "rel_link"))
    os.symlink("/etc/hostname", os.path.join(root, "abs_link"))
    os.symlink("t" * 1000, os.path.join(root, "long_target_link"))
    put("dir1/dir2/dir3/deep.txt", b"deep\n")
    os.makedirs(os.path.join(root, "empty_dir"))
    put(".hidden", b"hidden\n")
    put("ünïcödé €.txt", "unicode content ✓\n".encode())
    put("name with spaces.txt", b"spaces\n")
    deep = os.path.join(root, "deep")
    for level in range(40):
        deep = os.path.join(deep, f"l{level}")
    os.makedirs(deep)
    put(os.path.join(deep, "bottom.txt"), b"bottom\n")
    for i in range(1500):
        put(f"wide/f{i:04d}", f"{i}\n".encode())
    put("model/model.safetensors", deterministic_bytes("model", 24 * 1024 * 1024 + 123))


def tree_snapshot(root):
    """(relative path -> (kind, size, sha256 or link target, permission bits)) for a tree."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", st.st_size, os.readlink(path), None)
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", None, None, stat.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                result[rel] = ("file", st.st_size, digest.hexdigest(), stat.S_IMODE(st.st_mode))
    return result


class CachefsMount:
    """A cachefs daemon in the foreground, with its stderr captured for checks. `prefix` runs
    the daemon, the mount check and the unmount under a command such as nsenter (another
    mount namespace: the mount is then visible only there)."""

    def __init__(self, origin, mountpoint, args=(), env=None, prefix=()):
        self.origin = origin
        self.mountpoint = mountpoint
        self.prefix = list(prefix)
        self.log_path = tempfile.mktemp(prefix="cachefs-log-")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [*self.prefix, CACHEFS, "mount", "--foreground", "--insecure-allow-non-tee", *args,
             origin, mountpoint], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        # Ready is announced by the "mounted ORIGIN at MOUNTPOINT" line; `mountpoint -q` alone
        # would also accept a stale mount still sitting there.
        ready = f" at {mountpoint}: "
        ok = wait_until(lambda: ready in self.output() or self.proc.poll() is not None, 60)
        if not ok or not is_mounted(mountpoint, self.prefix) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"cachefs did not mount: {self.output()}")

    def output(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=None):
        """Unmounts (fusermount3 -u, or a signal) and returns the daemon's exit code."""
        if self.proc.poll() is None:
            if sig is None:
                subprocess.run([*self.prefix, "fusermount3", "-u", self.mountpoint], check=False)
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                subprocess.run([*self.prefix, "umount", "-l", self.mountpoint], check=False)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.log.close()
        os.unlink(self.log_path)


def unexpected_log_lines(output, allowed=()):
    """Lines at warn or error level that no test announced: libfuse's test suite fails on these
    too."""
    lines = []
    for line in output.splitlines():
        if " warn " in line or " error " in line or "fuse:" in line:
            if not any(pattern in line for pattern in allowed):
                lines.append(line)
    return lines


def run_cachefs(*args, timeout=120):
    return subprocess.run([CACHEFS, *args], capture_output=True, text=True, timeout=timeout)


def wait_port(port, proc, timeout=30):
    """Waits until something accepts connections on 127.0.0.1:`port`; fails when `proc`
    exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


@contextlib.contextmanager
def nginx_server(conf_dir, port, server, access_log="off"):
    """Runs nginx as a static server on 127.0.0.1:`port`: `server` holds the directives inside
    its server block besides `listen`. Its pid, temp files and config live in `conf_dir`.
    Yields the process once it accepts connections."""
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx_bin):
        pytest.skip("nginx is not installed (tools/install-deps.sh installs nginx-light)")
    conf_dir = str(conf_dir)
    user = "user root;" if os.geteuid() == 0 else ""
    temp_paths = "".join(f"  {kind}_temp_path {conf_dir};\n" for kind in (
        "client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = os.path.join(conf_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""{user}
daemon off;
worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 256; }}
http {{
  access_log {access_log};
{temp_paths}  server {{
    {server}
  }}
}}
""")
    proc = subprocess.Popen([nginx_bin, "-e", "stderr", "-p", conf_dir, "-c", conf],
                            stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)

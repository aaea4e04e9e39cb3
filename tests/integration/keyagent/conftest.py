"""Fixtures for the key agent suite: the KBS and CDH test doubles and the probe binary."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
import json

import pytest

PROBE = os.environ.get("KEYAGENT_PROBE", "keyagent_probe")
DOUBLES = os.environ.get("KBS_DOUBLE_DIR",
                         os.path.join(os.path.dirname(__file__), "..", "..", "kbs_double"))
PYTHON = "/usr/bin/python3"
KEY_ID = "kbs:///default/aliyun/model-decryption-key"
RESOURCE = "default/aliyun/model-decryption-key"


class Double:
    def __init__(self, proc, url, port):
        self.proc = proc
        self.url = url
        self.port = port

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/double/stats",
                                    timeout=10) as r:
            return json.load(r)


@contextlib.contextmanager
def kbs_double(*args, prefix="/api", scheme="http"):
    """Runs kbs_double.py with `args`; yields a Double whose url includes `prefix`."""
    cmd = [PYTHON, os.path.join(DOUBLES, "kbs_double.py"), "--port", "0"]
    if prefix:
        cmd += ["--prefix", prefix]
    proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE, stderr=sys.stderr,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), f"kbs double did not start: {line!r}"
        port = int(line.split()[1])
        yield Double(proc, f"{scheme}://127.0.0.1:{port}{prefix}", port)
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def cdh_double(*args):
    directory = tempfile.mkdtemp(prefix="cdh-double-")
    path = os.path.join(directory, "cdh.sock")
    proc = subprocess.Popen([PYTHON, os.path.join(DOUBLES, "cdh_double.py"), "--socket", path,
                             *args], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), f"cdh double did not start: {line!r}"
        yield path
    finally:
        proc.terminate()
        proc.wait(10)
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(*args, mode="obtain", timeout=120):
    """Runs keyagent_probe; returns (exit code, stdout, stderr)."""
    result = subprocess.run([PROBE, mode, *args], capture_output=True, text=True,
                            timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin")})
    return result.returncode, result.stdout, result.stderr


def trustee_args(url, *extra):
    return ["--trustee-url", url, "--key-id", KEY_ID, "--attester", "sample",
            "--insecure-allow-non-tee", "--key-retries", "0", *extra]

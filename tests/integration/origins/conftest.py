"""Fixtures for the origin suite: a test tree, s3rver, nginx and the fault proxy, all on
127.0.0.1, started here and stopped at the end of the session; and a network namespace with its
own /etc/hosts for the tests that need host names (virtual-hosted addressing)."""

import concurrent.futures
import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from cachefs_testlib import deterministic_bytes, nginx_server, tree_snapshot, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CACHEFS_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "../../..")))
BUILD_DIR = os.environ.get("CACHEFS_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
ORIGIN_CAT = os.environ.get("ORIGIN_CAT",
                            os.path.join(BUILD_DIR, "tests/integration/origins/origin_cat"))
SERVERS_DIR = os.path.join(SOURCE_DIR, "tests/servers")
S3RVER_JS = os.path.join(SERVERS_DIR, "node_modules/s3rver/bin/s3rver.js")
ALI_OSS = os.path.join(SERVERS_DIR, "node_modules/ali-oss/package.json")
MANY_OBJECTS = 1100
MIB = 1 << 20


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith(("AWS_", "OSS_",
                                                                      "ALIBABA_CLOUD_"))}
    env.update(extra)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Result:
    def __init__(self, proc, stats_path):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode(errors="replace")
        self.stats = {}
        if stats_path and os.path.exists(stats_path):
            with open(stats_path) as f:
                self.stats = json.load(f)


def run_origin_cat(*args, env=None, timeout=300, check=True, prefix=()):
    """Runs origin_cat (under `prefix`, e.g. NetnsSandbox.prefix) and returns its Result."""
    stats = tempfile.mktemp(prefix="origin-stats-", suffix=".json")
    cmd = [*prefix, ORIGIN_CAT, "--stats", stats] + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env or clean_env())
    result = Result(proc, stats)
    if os.path.exists(stats):
        os.unlink(stats)
    if check and result.returncode != 0:
        raise AssertionError("origin_cat %s failed (%d): %s" % (args, result.returncode,
                                                                result.stderr))
    return result


def listing(result):
    """origin_cat list output: key -> (kind, size, etag)."""
    rows = {}
    for line in result.stdout.decode().splitlines():
        kind, size, etag, key = line.split("\t")
        rows[key] = (kind, int(size), etag)
    return rows


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """A stand-in ciphertext tree: sizes around chunk boundaries, nested directories."""
    root = tmp_path_factory.mktemp("tree")
    rng = random.Random(3)
    files = {
        "gocryptfs.conf": rng.randbytes(300),
        "big.bin": rng.randbytes(24 * MIB + 12345),
        "exact.bin": rng.randbytes(4 * MIB),
        "empty": b"",
        "dir/a": rng.randbytes(5000),
        "dir/sub/b": rng.randbytes(MIB + 1),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {"root": str(root), "files": files}


def s3rver_command(data, port, *options):
    """s3rver serving directory `data` on 127.0.0.1:`port` (0: any; it prints "S3rver listening
    on 127.0.0.1:PORT")."""
    # s3rver makes continuation tokens with DES, which Node 20 only has in the legacy provider.
    return ["node", "--openssl-legacy-provider", S3RVER_JS, "-d", str(data), "-a", "127.0.0.1",
            "-p", str(port), "--silent", *options]


@pytest.fixture(scope="session")
def s3rver(tree, tmp_path_factory):
    """s3rver (npm) with bucket "models": the tree under prefix model/, MANY_OBJECTS small
    objects under model/many/ and a directory marker model/marker/."""
    if not os.path.exists(S3RVER_JS) or not os.path.exists(ALI_OSS):
        subprocess.run(["bash", os.path.join(SOURCE_DIR, "tools/install-test-servers.sh")],
                       check=True)
    import botocore.session
    from botocore.config import Config

    data = tmp_path_factory.mktemp("s3rver")
    port = free_port()
    proc = subprocess.Popen(s3rver_command(data, port, "--configure-bucket", "models"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env())
    try:
        wait_port(port, proc)
        endpoint = "http://127.0.0.1:%d" % port
        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="S3RVER",
            aws_secret_access_key="S3RVER",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
        for i in range(100):
            try:
                client.head_bucket(Bucket="models")
                break
            except Exception:
                time.sleep(0.1)
        puts = [("model/" + rel, body) for rel, body in tree["files"].items()]
        puts.append(("model/marker/", b""))
        puts += [("model/many/obj-%05d" % i, b"x%d" % i) for i in range(MANY_OBJECTS)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kv: client.put_object(Bucket="models", Key=kv[0], Body=kv[1]),
                          puts))
        yield {"endpoint": endpoint, "client": client, "proc": proc, "data": str(data)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def model_tree(root):
    """A small model: safetensors shards over several chunks, a tokenizer, an empty file and a
    long name."""
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


def upload(client, bucket, prefix, root):
    """PUTs every regular file below `root` as prefix + its relative path."""
    puts = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            key = prefix + os.path.relpath(path, root)
            with open(path, "rb") as f:
                puts.append((key, f.read()))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), puts))


def s3_env():
    return clean_env(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER")


@pytest.fixture(scope="session")
def nginx(tree, tmp_path_factory):
    """nginx serving the tree with a cachefs-manifest.json written by origin_cat manifest."""
    manifest = run_origin_cat("manifest", "file://" + tree["root"]).stdout
    with open(os.path.join(tree["root"], "cachefs-manifest.json"), "wb") as f:
        f.write(manifest)
    conf_dir = tmp_path_factory.mktemp("nginx")
    port = free_port()
    access_log = str(conf_dir / "access.log")
    with nginx_server(conf_dir, port, "listen 127.0.0.1:%d; root %s; location / { }" %
                      (port, tree["root"]), access_log=access_log):
        yield {"url": "http://127.0.0.1:%d/" % port, "port": port, "access_log": access_log}


@pytest.fixture(scope="session")
def nginx_tls(tree, nginx, tmp_path_factory):
    """The same tree over HTTPS with a self-signed certificate for 127.0.0.1 (after the nginx
    fixture, so the manifest exists)."""
    conf_dir = tmp_path_factory.mktemp("nginx-tls")
    cert, key = conf_dir / "cert.pem", conf_dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    with nginx_server(conf_dir, port, "listen 127.0.0.1:%d ssl; ssl_certificate %s; "
                      "ssl_certificate_key %s; root %s; location / { }" %
                      (port, cert, key, tree["root"])):
        yield {"url": "https://127.0.0.1:%d/" % port, "ca": str(cert)}


class LoggingProxy:
    """A proxy process that prints "READY <port>" once listening and logs one JSON event per
    line to `log`. `prefix` runs it elsewhere (NetnsSandbox.prefix)."""

    def __init__(self, cmd, log, env=None, prefix=()):
        self.log = log
        self.proc = subprocess.Popen([*prefix, *cmd], stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "READY", line
        self.port = int(line[1])

    def events(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

class FaultProxy(LoggingProxy):
    def __init__(self, upstream_port, log, *args):
        super().__init__([sys.executable, os.path.join(HERE, "fault_proxy.py"), "--upstream",
                          "127.0.0.1:%d" % upstream_port, "--log", log] + list(args), log)
        self.url = "http://127.0.0.1:%d/" % self.port


@pytest.fixture
def fault_proxy(nginx, tmp_path):
    """Starts proxies in front of nginx, or of another port with upstream=PORT."""
    proxies = []

    def start(*args, upstream=None):
        proxy = FaultProxy(upstream or nginx["port"],
                           str(tmp_path / ("proxy%d.log" % len(proxies))), *args)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


class OssVerifyProxy(LoggingProxy):
    """tests/servers/oss_verify_proxy.js: checks OSS V1/V4 signatures with ali-oss's code.
    With `endpoint_host` it also takes BUCKET.<endpoint_host> as virtual-hosted."""

    def __init__(self, upstream_port, log, ak, sk, region, token=None, endpoint_host=None,
                 port=0, prefix=()):
        cmd = ["node", os.path.join(SERVERS_DIR, "oss_verify_proxy.js"), "--upstream",
               "127.0.0.1:%d" % upstream_port, "--ak", ak, "--sk", sk, "--region", region,
               "--port", str(port), "--log", log]
        if token:
            cmd += ["--token", token]
        if endpoint_host:
            cmd += ["--endpoint-host", endpoint_host]
        super().__init__(cmd, log, env=clean_env(), prefix=prefix)
        self.endpoint = "http://127.0.0.1:%d" % self.port


@pytest.fixture
def oss_proxy(s3rver, tmp_path):
    proxies = []

    def start(**kwargs):
        port = int(s3rver["endpoint"].rsplit(":", 1)[1])
        proxy = OssVerifyProxy(port, str(tmp_path / ("oss%d.log" % len(proxies))), **kwargs)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class NetnsSandbox:
    """A network namespace of its own (loopback only) where `names` resolve to 127.0.0.1,
    without touching the machine's /etc/hosts: `ip netns exec` bind-mounts
    /etc/netns/NAME/hosts over /etc/hosts in a private mount namespace. One holder process
    keeps that mount namespace; `prefix` (nsenter into the holder's network and mount
    namespaces) runs a command there, so servers, clients and a FUSE mount made by one of them
    all see each other. This process sees such a mount under `root` + its path.
    Skips the test when it cannot be made (not root, no ip/nsenter, no netns support)."""

    _PREFIX = "cachefs-test-"
    _counter = itertools.count()

    def __init__(self, names):
        if os.geteuid() != 0:
            pytest.skip("needs root to create a network namespace (ip netns add)")
        for tool in ("ip", "nsenter"):
            if shutil.which(tool) is None:
                pytest.skip(tool + " is not installed: no network namespace for host names")
        self._remove_stale()
        self.name = "%s%d-%d" % (self._PREFIX, os.getpid(), next(self._counter))
        self.etc = os.path.join("/etc/netns", self.name)
        self._made_etc_netns = not os.path.exists("/etc/netns")
        self.holder = None
        added = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if added.returncode != 0:
            pytest.skip("cannot create a network namespace here: " + added.stderr.strip())
        try:
            os.makedirs(self.etc)
            with open(os.path.join(self.etc, "hosts"), "w") as f:
                f.write("".join("127.0.0.1 %s\n" % n for n in ["localhost", *names]))
            self.holder = subprocess.Popen(
                ["ip", "netns", "exec", self.name, "sh", "-c",
                 "ip link set lo up && echo ready && exec sleep infinity"],
                stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
            assert self.holder.stdout.readline().strip() == "ready", "netns holder failed"
        except BaseException:
            self.close()
            raise
        self.prefix = ["nsenter", "--target", str(self.holder.pid), "--net", "--mount"]
        self.root = "/proc/%d/root" % self.holder.pid

    def close(self):
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)
        if self._made_etc_netns:
            with contextlib.suppress(OSError):
                os.rmdir("/etc/netns")

    @classmethod
    def _remove_stale(cls):
        """Namespaces left by a test process that was killed before its teardown."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.split() else ""
            if not name.startswith(cls._PREFIX):
                continue
            pid = name[len(cls._PREFIX):].split("-")[0]
            if pid.isdigit() and not os.path.exists("/proc/" + pid):
                subprocess.run(["ip", "netns", "delete", name], capture_output=True)
                shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)

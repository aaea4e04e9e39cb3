"""Fixtures for the origin suite: a test tree, s3rver, nginx and the fault proxy, all on
127.0.0.1, started here and stopped at the end of the session."""

import concurrent.futures
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from cachefs_testlib import nginx_server, wait_port

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


def run_origin_cat(*args, env=None, timeout=300, check=True):
    stats = tempfile.mktemp(prefix="origin-stats-", suffix=".json")
    cmd = [ORIGIN_CAT, "--stats", stats] + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env or clean_env())
    result = Result(proc, stats)
    if os.path.exists(stats):
        os.unlink(stats)
    if check and result.returncode != 0:
        raise AssertionError("origin_cat %s failed (%d): %s" % (args, result.returncode,
                                                                result.stderr))
    return result


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
    # s3rver makes continuation tokens with DES, which Node 20 only has in the legacy provider.
    proc = subprocess.Popen(["node", "--openssl-legacy-provider", S3RVER_JS, "-d", str(data), "-a", "127.0.0.1", "-p",
                             str(port), "--silent", "--configure-bucket", "models"],
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
        yield {"endpoint": endpoint, "client": client, "proc": proc}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
    line to `log`."""

    def __init__(self, cmd, log, env=None):
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
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
    """tests/servers/oss_verify_proxy.js: checks OSS V1/V4 signatures with ali-oss's code."""

    def __init__(self, upstream_port, log, ak, sk, region, token=None):
        cmd = ["node", os.path.join(SERVERS_DIR, "oss_verify_proxy.js"), "--upstream",
               "127.0.0.1:%d" % upstream_port, "--ak", ak, "--sk", sk, "--region", region,
               "--log", log]
        if token:
            cmd += ["--token", token]
        super().__init__(cmd, log, env=clean_env())
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

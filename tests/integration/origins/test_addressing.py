"""Virtual-hosted and path-style addressing, checked on the wire.

Real endpoints have names: s3://bucket with --endpoint s3.<region>... goes to
bucket.<endpoint>, and OSS endpoints too. These tests run in a network namespace of their own
(NetnsSandbox) whose /etc/hosts maps the names below to its 127.0.0.1, with a second s3rver
there that takes <bucket>.s3.cachefs.test as virtual-hosted, the botocore SigV4 checker
(fault_proxy.py --verify-sigv4) and the ali-oss OSS checker (oss_verify_proxy.js) in front of
it, on port 80 (443 for HTTPS) like a real endpoint, and origin_cat or a real cachefs mount as
the client. Every test asserts the Host header and path the checker received, not only that
the bytes came back."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from cachefs_testlib import CACHEFS, CachefsMount, encrypt_tree, require_fuse, write_passfile
from conftest import (HERE, MANY_OBJECTS, MIB, LoggingProxy, NetnsSandbox, OssVerifyProxy,
                      clean_env, contents, listing, model_tree, run_origin_cat, s3_env,
                      s3rver_command, upload)

S3_HOST = "s3.cachefs.test"
OSS_HOST = "oss-cn-beijing.cachefs.test"  # the region (cn-beijing) comes from the name
BUCKET = "models"
DOTTED = "my.models"  # a bucket name with dots
PART = ["--part-size", str(MIB)]
OSS_AK, OSS_SK = "LTAI5tVHOST", "oss/vhost+secret=="
WIDE = 1050  # files in one directory of the mounted volume: its listing takes two pages


@pytest.fixture(scope="module")
def sandbox():
    box = NetnsSandbox([S3_HOST, BUCKET + "." + S3_HOST, DOTTED + "." + S3_HOST, OSS_HOST,
                        BUCKET + "." + OSS_HOST])
    yield box
    box.close()


@pytest.fixture(scope="module")
def sandbox_s3rver(sandbox, s3rver):
    """An s3rver in the sandbox over the session s3rver's directory (the same bucket and
    objects) that reads the bucket from a Host <bucket>.s3.cachefs.test (--service-endpoint)
    and from the path otherwise (--no-vhost-buckets: no other Host names a bucket). Yields its
    port."""
    proc = subprocess.Popen(
        sandbox.prefix + s3rver_command(s3rver["data"], 0, "--service-endpoint", "cachefs.test",
                                        "--no-vhost-buckets"),
        stdout=subprocess.PIPE, text=True, env=clean_env())
    try:
        port = None
        for line in proc.stdout:
            if line.startswith("S3rver listening on"):
                port = int(line.rsplit(":", 1)[1])
                break
        assert port, "s3rver did not start in the sandbox (exit %s)" % proc.poll()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def proxies(sandbox, sandbox_s3rver, tmp_path):
    """Starts checking proxies in the sandbox in front of its s3rver: sigv4(port, tls=None)
    and oss(port, token=None)."""
    started = []

    def log():
        return str(tmp_path / ("proxy%d.log" % len(started)))

    def sigv4(port=0, tls=None):
        path = log()
        cmd = [sys.executable, os.path.join(HERE, "fault_proxy.py"), "--upstream",
               "127.0.0.1:%d" % sandbox_s3rver, "--faults", "", "--verify-sigv4",
               "S3RVER:S3RVER:us-east-1", "--port", str(port), "--log", path]
        if tls:
            cmd += ["--tls", "%s:%s" % tls]
        proxy = LoggingProxy(cmd, path, prefix=sandbox.prefix)
        started.append(proxy)
        return proxy

    def oss(port=0, token=None):
        proxy = OssVerifyProxy(sandbox_s3rver, log(), OSS_AK, OSS_SK, "cn-beijing", token=token,
                               endpoint_host=OSS_HOST, port=port, prefix=sandbox.prefix)
        started.append(proxy)
        return proxy

    yield sigv4, oss
    for proxy in started:
        proxy.stop()


def oss_env(token=None, secret=OSS_SK):
    env = clean_env(OSS_ACCESS_KEY_ID=OSS_AK, OSS_ACCESS_KEY_SECRET=secret)
    if token:
        env["OSS_SESSION_TOKEN"] = token
    return env


def hosts(events):
    return {e["host"] for e in events}


def s3_lists(events, path):
    """The ListObjectsV2 requests the SigV4 checker saw, all of them at `path`."""
    lists = [e for e in events if "list-type=2" in e["query"]]
    assert lists and {e["path"] for e in lists} == {path}
    return lists


def test_s3_virtual_hosted_sigv4(sandbox, proxies, tree):
    sigv4, _ = proxies
    proxy = sigv4(port=80)
    endpoint = "http://" + S3_HOST  # no port, as a real endpoint
    r = run_origin_cat("--endpoint", endpoint, "list", "s3://models/model", env=s3_env(),
                       prefix=sandbox.prefix)
    rows = listing(r)
    assert len([k for k in rows if k.startswith("many/")]) == MANY_OBJECTS
    assert rows["dir/sub"][0] == "dir" and rows["big.bin"][1] == len(tree["files"]["big.bin"])
    for key in ("big.bin", "dir/sub/b"):
        r = run_origin_cat("--endpoint", endpoint, *PART, "cat", "s3://models/model", key,
                           env=s3_env(), prefix=sandbox.prefix)
        assert r.stdout == tree["files"][key], key

    events = proxy.events()
    assert hosts(events) == {"models.s3.cachefs.test"}
    assert [e for e in events if e["kind"] == "badsig"] == []
    lists = s3_lists(events, "/")  # the bucket is in the Host, not in the path
    assert len(lists) >= 2 and any("continuation-token=" in e["query"] for e in lists)
    assert all("prefix=model%2F" in e["query"] for e in lists)
    ranged = [e for e in events if e["kind"] == "range"]
    assert {e["path"] for e in ranged} == {"/model/big.bin", "/model/dir/sub/b"}
    assert len(ranged) == 25 + 2  # 1 MiB parts

    # The checker recomputes each signature over the Host it received: a wrong secret fails.
    env = clean_env(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="not-the-secret-XYZ")
    r = run_origin_cat("--endpoint", endpoint, "list", "s3://models/model", env=env,
                       check=False, prefix=sandbox.prefix)
    assert r.returncode != 0 and "403" in r.stderr and "SignatureDoesNotMatch" in r.stderr
    assert proxy.events()[-1]["kind"] == "badsig"


def test_s3_endpoint_with_its_default_port_signs_the_host_sent(sandbox, proxies, tree):
    # curl leaves ":80" out of the Host header; the signature must cover the Host as sent.
    sigv4, _ = proxies
    proxy = sigv4(port=80)
    r = run_origin_cat("--endpoint", "http://%s:80" % S3_HOST, *PART, "cat",
                       "s3://models/model", "dir/a", env=s3_env(), prefix=sandbox.prefix)
    assert r.stdout == tree["files"]["dir/a"]
    events = proxy.events()
    assert hosts(events) == {"models.s3.cachefs.test"}
    assert [e for e in events if e["kind"] == "badsig"] == []


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory):
    """(certificate, key) for s3.cachefs.test and *.s3.cachefs.test, as AWS's endpoints have;
    self-signed, so the certificate is its own CA bundle."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + S3_HOST,
                    "-addext", "subjectAltName=DNS:%s,DNS:*.%s" % (S3_HOST, S3_HOST),
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def test_s3_https_virtual_hosted_and_dotted_bucket(sandbox, proxies, s3rver, tree, tls_cert):
    # Over HTTPS a bucket host must match the endpoint's wildcard certificate. A bucket name
    # with dots cannot (my.models.s3... is not in *.s3...), so it goes path-style, as the AWS
    # SDKs do; any other name stays virtual-hosted.
    s3rver["client"].create_bucket(Bucket=DOTTED)
    s3rver["client"].put_object(Bucket=DOTTED, Key="model/dir/a", Body=tree["files"]["dir/a"])
    sigv4, _ = proxies
    proxy = sigv4(port=443, tls=tls_cert)
    for bucket in (BUCKET, DOTTED):
        r = run_origin_cat("--endpoint", "https://" + S3_HOST, "--ca-bundle", tls_cert[0], *PART,
                           "cat", "s3://%s/model" % bucket, "dir/a", env=s3_env(),
                           prefix=sandbox.prefix)
        assert r.stdout == tree["files"]["dir/a"], bucket
    events = proxy.events()
    assert [e for e in events if e["kind"] == "badsig"] == []
    assert {(e["host"], e["path"]) for e in events if e["kind"] == "range"} == {
        ("models." + S3_HOST, "/model/dir/a"), (S3_HOST, "/my.models/model/dir/a")}


@pytest.mark.parametrize("endpoint_host,options", [
    ("127.0.0.1", []),
    ("localhost", []),
    (S3_HOST, ["--path-style"]),
], ids=["ip", "localhost", "path-style-flag"])
def test_s3_path_style(sandbox, proxies, tree, endpoint_host, options):
    sigv4, _ = proxies
    proxy = sigv4()
    endpoint = "http://%s:%d" % (endpoint_host, proxy.port)
    r = run_origin_cat("--endpoint", endpoint, *options, "list", "s3://models/model/dir",
                       env=s3_env(), prefix=sandbox.prefix)
    assert set(listing(r)) == {"a", "sub", "sub/b"}
    r = run_origin_cat("--endpoint", endpoint, *options, *PART, "cat", "s3://models/model",
                       "dir/sub/b", env=s3_env(), prefix=sandbox.prefix)
    assert r.stdout == tree["files"]["dir/sub/b"]
    events = proxy.events()
    assert hosts(events) == {"%s:%d" % (endpoint_host, proxy.port)}
    assert [e for e in events if e["kind"] == "badsig"] == []
    s3_lists(events, "/models")
    assert {e["path"] for e in events if e["kind"] == "range"} == {"/models/model/dir/sub/b"}


@pytest.mark.parametrize("version,token", [("v1", None), ("v4", "CAIS+sts/token==")])
def test_oss_virtual_hosted(sandbox, proxies, tree, version, token):
    _, oss = proxies
    proxy = oss(port=80, token=token)
    # No --region: V4 takes cn-beijing from the endpoint name.
    common = ["--endpoint", "http://" + OSS_HOST, "--oss-signature", version]
    r = run_origin_cat(*common, "list", "oss://models/model", env=oss_env(token),
                       prefix=sandbox.prefix)
    assert len([k for k in listing(r) if k.startswith("many/")]) == MANY_OBJECTS
    r = run_origin_cat(*common, *PART, "cat", "models:/model", "dir/sub/b", env=oss_env(token),
                       prefix=sandbox.prefix)
    assert r.stdout == tree["files"]["dir/sub/b"]
    assert OSS_SK not in r.stderr and (token is None or token not in r.stderr)

    events = proxy.events()
    assert events and all(e["ok"] and e["kind"] == version for e in events), events[:3]
    assert hosts(events) == {"models." + OSS_HOST}
    assert {(e["style"], e["bucket"]) for e in events} == {("virtual-hosted", "models")}
    assert sum(1 for e in events if e["path"] == "/") >= 2  # paginated listing at /
    assert {e["path"] for e in events if e["path"] != "/"} == {"/model/dir/sub/b"}

    r = run_origin_cat(*common, "list", "oss://models/model", env=oss_env(token, "wrong-ABC"),
                       check=False, prefix=sandbox.prefix)
    assert r.returncode != 0 and "403" in r.stderr and "SignatureDoesNotMatch" in r.stderr
    assert proxy.events()[-1]["problem"] == "mismatch"


@pytest.mark.parametrize("endpoint_host,options", [
    ("127.0.0.1", []),
    (OSS_HOST, ["--path-style"]),
], ids=["ip", "path-style-flag"])
@pytest.mark.parametrize("version", ["v1", "v4"])
def test_oss_path_style(sandbox, proxies, tree, endpoint_host, options, version):
    _, oss = proxies
    proxy = oss()
    common = ["--endpoint", "http://%s:%d" % (endpoint_host, proxy.port), "--region",
              "cn-beijing", "--oss-signature", version, *options]
    r = run_origin_cat(*common, "list", "oss://models/model/dir", env=oss_env(),
                       prefix=sandbox.prefix)
    assert set(listing(r)) == {"a", "sub", "sub/b"}
    r = run_origin_cat(*common, *PART, "cat", "oss://models/model", "dir/a", env=oss_env(),
                       prefix=sandbox.prefix)
    assert r.stdout == tree["files"]["dir/a"]
    events = proxy.events()
    assert events and all(e["ok"] and e["kind"] == version for e in events), events[:3]
    assert hosts(events) == {"%s:%d" % (endpoint_host, proxy.port)}
    assert {(e["style"], e["bucket"]) for e in events} == {("path", "models")}
    assert {e["path"] for e in events} == {"/models/", "/models/model/dir/a"}


@pytest.fixture(scope="module")
def wide_volume(s3rver):
    """A gocryptfs volume (the model tree plus a directory of WIDE files, so that listing the
    prefix takes two pages) uploaded to the bucket under vhost-e2e/."""
    require_fuse()
    if not shutil.which(CACHEFS) and not os.path.exists(CACHEFS):
        pytest.skip("the cachefs binary is not built (CACHEFS_BIN)")
    work = tempfile.mkdtemp(prefix="cachefs-vhost-")
    passfile = write_passfile(work)

    def build(root):
        model_tree(root)
        os.makedirs(os.path.join(root, "wide"))
        for i in range(WIDE):
            with open(os.path.join(root, "wide", "f%04d" % i), "wb") as f:
                f.write(b"%d\n" % i)

    reference = os.path.join(work, "reference")
    cipher = os.path.join(work, "cipher")
    encrypt_tree(cipher, passfile, build, reference)
    upload(s3rver["client"], BUCKET, "vhost-e2e/", cipher)
    yield {"work": work, "passfile": passfile, "reference": reference}
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("scheme", ["s3", "oss-v4"])
def test_mount_virtual_hosted(sandbox, proxies, wide_volume, scheme):
    sigv4, oss = proxies
    mountpoint = tempfile.mkdtemp(prefix="mnt-", dir=wide_volume["work"])
    args = ["--passfile", wide_volume["passfile"], "--part-size", "1MiB"]
    if scheme == "s3":
        proxy, origin, env, host = sigv4(port=80), "s3://models/vhost-e2e/", s3_env(), S3_HOST
    else:
        proxy, origin, env, host = oss(port=80), "models:/vhost-e2e/", oss_env(), OSS_HOST
        args += ["--oss-signature", "v4"]
    args += ["--endpoint", "http://" + host]
    with CachefsMount(origin, mountpoint, args, env=env, prefix=sandbox.prefix) as mount:
        # The mount lives in the sandbox's mount namespace; read it through the holder's root.
        assert contents(sandbox.root + mountpoint) == contents(wide_volume["reference"])
        assert " error " not in mount.output()
        assert "via http://%s (virtual-hosted" % host in mount.output()
    os.rmdir(mountpoint)

    events = proxy.events()
    assert hosts(events) == {"models." + host}
    if scheme == "s3":
        assert [e for e in events if e["kind"] == "badsig"] == []
    else:
        assert all(e["ok"] and e["style"] == "virtual-hosted" for e in events)
    lists = [e for e in events if e["path"] == "/"]
    assert len(lists) >= 2  # more than 1000 objects: paginated
    reads = {e["path"] for e in events if e["path"] != "/"}
    assert reads and all(p.startswith("/vhost-e2e/") for p in reads)

"""cachefsctl and the control plane, end to end against real cachefs mounts of trees written by
the real gocryptfs."""

import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from cachefs_testlib import CACHEFS, is_mounted, unexpected_log_lines, wait_until
from conftest import CONTROL_PROBE, FILES, Mount, ctl, free_port

CONTROL = "/cachefs.control.v1.Control/"


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def status_json(m):
    proc = m.ctl("status", "--json", check=0)
    return json.loads(proc.stdout)


# --- status -------------------------------------------------------------------------------


def test_status_table_and_json(mounted, tree):
    table = mounted.ctl("status", check=0).stdout
    for section in ("ready", "mount", "origin", "volume", "flags", "key", "namespace", "reads",
                    "sources", "cache", "errors", "peers"):
        assert section in table, table
    assert mounted.mountpoint in table
    assert "AES-256-GCM" in table

    with open(os.path.join(mounted.mountpoint, "model/config.json"), "rb") as f:
        assert f.read() == FILES["model/config.json"]
    s = status_json(mounted)
    assert s["state"] == "ready"
    assert s["mountpoint"] == mounted.mountpoint
    assert s["origin"] == "file://" + tree["cipher"]
    assert s["volume"]["content_algorithm"] == "AES-256-GCM"
    assert "GCMIV128" in s["volume"]["feature_flags"]
    assert s["volume"]["creator"].startswith("gocryptfs")
    assert s["key"]["source"].startswith("passfile ")
    assert s["key"]["obtained"] is True
    assert s["key"]["in_tee"] is False
    files = sum(1 for _ in FILES)
    assert s["namespace"]["files"] == files
    assert s["namespace"]["directories"] == 2
    assert s["namespace"]["plaintext_bytes"] == sum(len(d) for d in FILES.values())
    # 64-bit counters are JSON numbers, not strings (proto3's JSON mapping would quote them).
    assert isinstance(s["traffic"]["plaintext_bytes"], int)
    assert s["traffic"]["plaintext_bytes"] > 0
    assert s["traffic"]["bytes_by_source"]["origin"] > 0
    assert s["cache"]["present"] is False
    assert s["peers"] == {"enabled": False, "listen": "", "peers": []}
    for key in ("read_ahead", "errors", "warm", "uptime_seconds", "pid", "version"):
        assert key in s
    # Never the password, in any form.
    password = open(tree["password"]).read().strip()
    assert password not in json.dumps(s) and password not in table


def test_status_unreachable_exits_3(tmp_path):
    proc = ctl("status", socket_path=str(tmp_path / "nothing.sock"))
    assert proc.returncode == 3
    assert "no daemon" in proc.stderr
    assert ctl("health", socket_path=str(tmp_path / "nothing.sock")).returncode == 3
    # A socket file nobody listens on (a daemon that died) is unreachable too.
    dead = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)
    s.close()
    assert ctl("status", socket_path=dead).returncode == 3


def test_status_not_ready_while_mounting_exits_1(tree, tmp_path):
    # The key arrives after 3 s: until then the daemon is up and says "mounting".
    slow = tmp_path / "slowpass.sh"
    slow.write_text("#!/bin/sh\nsleep 3\nhead -n1 %s\n" % tree["password"])
    slow.chmod(0o700)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    sock = str(tmp_path / "c.sock")
    proc = subprocess.Popen([CACHEFS, "mount", "-f", "--insecure-allow-non-tee", "--extpass",
                             str(slow), "--control-socket", sock, tree["cipher"],
                             str(mountpoint)], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: os.path.exists(sock), 10)
        early = ctl("status", "--json", socket_path=sock)
        assert early.returncode == 1, early.stderr
        assert json.loads(early.stdout)["state"] == "mounting"
        assert ctl("health", socket_path=sock).returncode == 1
        assert wait_until(lambda: ctl("status", socket_path=sock).returncode == 0, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not os.path.exists(sock), "socket left behind after exit"


# --- health -------------------------------------------------------------------------------


def test_health(mounted):
    proc = mounted.ctl("health", check=0)
    assert proc.stdout.startswith("healthy:")
    assert "through the mount" in proc.stdout
    assert mounted.ctl("health", "--quiet", check=0).stdout == ""
    assert mounted.ctl("health", "--daemon-only", check=0).returncode == 0


def test_health_fails_when_the_daemon_hangs(mounted):
    pid = mounted.mount.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        proc = mounted.ctl("--timeout", "2", "health")
        assert proc.returncode != 0
        assert time.monotonic() - start < 15
    finally:
        os.kill(pid, signal.SIGCONT)
    mounted.ctl("health", check=0)


# --- flush --------------------------------------------------------------------------------


def test_flush_keeps_bytes_and_drops_the_page_cache(tree):
    m = Mount(tree, ["--no-decrypt-ahead"])
    try:
        path = os.path.join(m.mountpoint, "model/model-00001-of-00002.safetensors")
        want = hashlib.sha256(FILES["model/model-00001-of-00002.safetensors"]).hexdigest()
        assert sha(path) == want
        before = status_json(m)["traffic"]["read_requests"]
        assert sha(path) == want
        cached = status_json(m)["traffic"]["read_requests"]
        assert cached == before, "second read should come from the page cache"

        out = m.ctl("flush", "--kernel", check=0).stdout
        assert "kernel page cache" in out and "memory tier" not in out
        assert sha(path) == want
        assert status_json(m)["traffic"]["read_requests"] > cached, "flush did not drop pages"

        out = m.ctl("flush", check=0).stdout
        for part in ("memory tier", "disk tier", "kernel page cache"):
            assert part in out
        assert m.ctl("flush", "--memory", "--disk", check=0).returncode == 0
        for rel, data in FILES.items():
            with open(os.path.join(m.mountpoint, rel), "rb") as f:
                assert f.read() == data, rel
        assert "caches flushed" in m.output()
    finally:
        assert m.close() == 0


# --- warm ---------------------------------------------------------------------------------


def test_warm_whole_model_plain_progress(mounted):
    proc = mounted.ctl("warm", check=0)
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("warm: 100.0%"), proc.stdout
    assert "5/5 files" in lines[-1]
    assert "done in" in lines[-1]
    s = status_json(mounted)["warm"]
    assert s["active"] is False
    assert s["files_done"] == s["files_total"] == 5
    assert s["bytes_done"] == s["bytes_total"] > 33 * (1 << 20)
    assert "warm-up finished" in mounted.output()


def test_warm_paths_and_bad_paths(mounted):
    proc = mounted.ctl("warm", "model/config.json",
                       os.path.join(mounted.mountpoint, "model"), check=0)
    assert "3/3 files" in proc.stdout  # config.json counted once
    bad = mounted.ctl("warm", "no/such/file")
    assert bad.returncode == 1 and "no such file" in bad.stderr
    outside = mounted.ctl("warm", "/etc/passwd")
    assert outside.returncode == 1 and "not under the mount point" in outside.stderr
    dots = mounted.ctl("warm", "model/../../etc")
    assert dots.returncode == 1 and "not allowed" in dots.stderr
    mounted.ctl("status", check=0)


def test_warm_draws_a_bar_on_a_terminal(mounted):
    # script(1) gives cachefsctl a pseudo-terminal for stdout.
    from conftest import CACHEFSCTL
    cmd = "%s --socket %s warm" % (CACHEFSCTL, mounted.socket)
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert b"\r[" in proc.stdout and b"#" * 30 in proc.stdout and b"100.0%" in proc.stdout


def test_warm_ctrl_c_stops(tree, http_origin):
    # Over a rate-limited origin the 33 MiB model takes seconds to warm, so the interrupt
    # always lands while chunks are still being fetched.
    from conftest import CACHEFSCTL
    slow = http_origin.replace("/model/", "/slow/model/")
    m = Mount(dict(tree, cipher=slow), ["--no-decrypt-ahead"])
    try:
        proc = subprocess.Popen([CACHEFSCTL, "--socket", m.socket, "warm"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # past start-up: cachefsctl takes Ctrl-C once the call is being made
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (proc.returncode, out, err)
        assert "warm-up stopped" in err
        m.ctl("status", check=0)
        with open(os.path.join(m.mountpoint, "model/config.json"), "rb") as f:
            assert f.read() == FILES["model/config.json"]
    finally:
        m.close()


# --- peers, unmount -----------------------------------------------------------------------


def test_peers_without_a_group(mounted):
    assert "not configured" in mounted.ctl("peers", check=0).stdout
    peers = json.loads(mounted.ctl("peers", "--json", check=0).stdout)
    assert peers == {"enabled": False, "listen": "", "peers": []}


def test_unmount(tree):
    m = Mount(tree)
    try:
        proc = m.ctl("unmount", check=0)
        assert proc.stdout.strip() == "unmounted " + m.mountpoint
        assert m.mount.proc.wait(30) == 0
        assert not is_mounted(m.mountpoint)
        assert not os.path.exists(m.socket)
        assert m.ctl("status").returncode == 3
    finally:
        m.close()


# --- access control and bad requests ------------------------------------------------------


def test_socket_is_owner_only(tree, tmp_path):
    # The default path: /run/cachefs/<mount point>.sock in a 0700 directory.
    mountpoint = tmp_path / "model"
    mountpoint.mkdir()
    from cachefs_testlib import CachefsMount
    with CachefsMount(tree["cipher"], str(mountpoint), ["--passfile", tree["password"]]) as mnt:
        default = "/run/cachefs/" + str(mountpoint).strip("/").replace("/", "-") + ".sock"
        assert stat.S_IMODE(os.stat(default).st_mode) == 0o600
        assert stat.S_IMODE(os.stat("/run/cachefs").st_mode) == 0o700
        ctl("status", mountpoint=str(mountpoint), check=0)
        denied = ctl("status", mountpoint=str(mountpoint), user="nobody")
        assert denied.returncode == 3, denied.stderr
    # A socket in a directory anyone may enter: the socket's own mode keeps others out.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    tmp_path.chmod(0o755)
    sock = str(open_dir / "c.sock")
    mountpoint2 = tmp_path / "model2"
    mountpoint2.mkdir()
    with CachefsMount(tree["cipher"], str(mountpoint2),
                      ["--passfile", tree["password"], "--control-socket", sock]) as mnt:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        denied = ctl("status", socket_path=sock, user="nobody")
        assert denied.returncode == 3
        assert "permission denied" in denied.stderr
        raw = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              "/usr/bin/python3", "-c",
                              "import socket; s = socket.socket(socket.AF_UNIX); "
                              "s.connect(%r)" % sock], capture_output=True, text=True)
        assert raw.returncode != 0 and "PermissionError" in raw.stderr
        ctl("status", socket_path=sock, check=0)
        assert not unexpected_log_lines(mnt.output())


def test_bad_requests_get_errors_and_serving_goes_on(mounted):
    path = os.path.join(mounted.mountpoint, "model/model-00002-of-00002.safetensors")
    want = hashlib.sha256(FILES["model/model-00002-of-00002.safetensors"]).hexdigest()

    # Not HTTP/2 at all: the server drops the connection.
    for junk in (b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096)):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(mounted.socket)
        try:
            s.sendall(junk)
            s.recv(65536)
        except OSError:
            pass
        s.close()

    def probe(method, kind):
        out = subprocess.run([CONTROL_PROBE, mounted.socket, CONTROL + method, kind],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.split(" ", 1)[0]

    assert probe("GetStatus", "malformed") == "INTERNAL"  # not parseable as StatusRequest
    assert probe("Warm", "malformed") == "INTERNAL"
    assert probe("GetStatus", "oversized") == "RESOURCE_EXHAUSTED"
    assert probe("Flush", "oversized") == "RESOURCE_EXHAUSTED"
    assert probe("NoSuchMethod", "empty") == "UNIMPLEMENTED"
    assert probe("GetStatus", "empty") == "OK"

    assert sha(path) == want
    mounted.ctl("status", check=0)
    mounted.ctl("health", check=0)
    assert mounted.mount.proc.poll() is None


# --- metrics ------------------------------------------------------------------------------


def parse_exposition(text):
    """Checks the Prometheus text format 0.0.4 structure; returns {name{labels}: value}."""
    types = {}
    samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
        elif line.startswith("# HELP ") or not line:
            continue
        else:
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
            assert m, line
            name = m.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in types or family in types, "sample without TYPE: " + line
            samples[name + (m.group(2) or "")] = float(m.group(3))
    return types, samples


def test_metrics_endpoint(tree):
    port = free_port()
    # Without decrypt-ahead the first read is a FUSE READ, which the histogram must count.
    m = Mount(tree, ["--metrics-listen", "127.0.0.1:%d" % port, "--no-decrypt-ahead"])
    try:
        base = "http://127.0.0.1:%d" % port
        with open(os.path.join(m.mountpoint, "model/config.json"), "rb") as f:
            f.read()
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = r.read().decode()
        types, samples = parse_exposition(text)
        assert types["cachefs_read_duration_seconds"] == "histogram"
        assert samples['cachefs_build_info{version="0.1.0",commit="%s"}' % re.search(
            r'commit="([^"]*)"', text).group(1)] == 1
        assert samples["cachefs_ready"] == 1
        buckets = [v for k, v in samples.items()
                   if k.startswith("cachefs_read_duration_seconds_bucket")]
        assert buckets == sorted(buckets), "buckets must be cumulative"
        assert samples['cachefs_read_duration_seconds_bucket{le="+Inf"}'] == \
            samples["cachefs_read_duration_seconds_count"] >= 1
        for source in ("memory", "disk", "peers", "origin"):
            assert 'cachefs_source_bytes_total{source="%s"}' % source in samples
        assert samples['cachefs_source_bytes_total{source="origin"}'] > 0
        assert samples['cachefs_namespace_entries{type="file"}'] == len(FILES)
        for name in ("cachefs_cache_used_bytes{tier=\"memory\"}",
                     "cachefs_errors_total{kind=\"corrupt_block\"}",
                     "cachefs_peer_bytes_total{direction=\"received\"}",
                     "process_resident_memory_bytes", "process_open_fds",
                     "process_cpu_seconds_total", "process_start_time_seconds"):
            assert name in samples, name
        assert samples["process_resident_memory_bytes"] > 0

        assert urllib.request.urlopen(base + "/healthz", timeout=10).status == 200
        assert urllib.request.urlopen(base + "/readyz", timeout=10).status == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/nope", timeout=10)
        assert e.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(base + "/metrics", data=b"x"),
                                   timeout=10)
        assert e.value.code == 405
        # An endless request head is cut off; the listener keeps serving.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Junk: " + b"a" * 20000)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
        assert urllib.request.urlopen(base + "/metrics", timeout=10).status == 200
    finally:
        assert m.close() == 0


def test_metrics_listen_clash_fails_the_mount(tree, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    proc = subprocess.run([CACHEFS, "mount", "-f", "--insecure-allow-non-tee", "--passfile",
                           tree["password"], "--control-socket", str(tmp_path / "c.sock"),
                           "--metrics-listen", "127.0.0.1:%d" % busy.getsockname()[1],
                           tree["cipher"], str(mountpoint)],
                          capture_output=True, text=True, timeout=60)
    busy.close()
    assert proc.returncode == 11, proc.stderr
    assert "--metrics-listen" in proc.stderr
    assert not is_mounted(str(mountpoint))
    assert not os.path.exists(tmp_path / "c.sock")


# --- logs and readiness -------------------------------------------------------------------


def test_sd_notify_ready_status_stopping(tree, tmp_path):
    notify = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify)
    listener.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=notify)
    m = Mount(tree, env=env)
    try:
        first = listener.recv(4096).decode()
        assert "READY=1" in first.splitlines()
        assert any(l.startswith("STATUS=") and m.mountpoint in l for l in first.splitlines())
        m.mount.proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in listener.recv(4096).decode()
    finally:
        m.close()
        listener.close()


def test_control_lines_in_json_logs(tree, tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    sock = str(tmp_path / "c.sock")
    proc = subprocess.Popen([CACHEFS, "mount", "-f", "--insecure-allow-non-tee", "--log-format",
                             "json", "--log-level", "debug", "--passfile", tree["password"], "--control-socket", sock,
                             tree["cipher"], str(mountpoint)], stderr=subprocess.PIPE,
                            text=True)
    assert wait_until(lambda: ctl("status", socket_path=sock).returncode == 0, 30)
    ctl("flush", socket_path=sock, check=0)
    ctl("unmount", socket_path=sock, check=0)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    events = [json.loads(line) for line in err.splitlines()]
    messages = [e["msg"] for e in events]
    assert "control socket listening" in messages
    assert "caches flushed" in messages
    assert "unmount requested" in messages
    for e in events:
        assert {"ts", "level", "component", "msg"} <= set(e), e


# --- commands that need no daemon ---------------------------------------------------------


def test_manifest_of_the_tree(tree, tmp_path):
    out = tmp_path / "cachefs-manifest.json"
    ctl("manifest", tree["cipher"], "-o", str(out), check=0)
    manifest = json.loads(out.read_text())
    assert manifest["format"] == "cachefs-manifest"
    keys = {o["key"] for o in manifest["objects"]}
    assert "gocryptfs.conf" in keys
    conf = [o for o in manifest["objects"] if o["key"] == "gocryptfs.conf"][0]
    assert conf["size"] == os.path.getsize(os.path.join(tree["cipher"], "gocryptfs.conf"))
    assert ctl("manifest", "/nonexistent/tree").returncode == 1


def test_attest_outside_a_tee(tmp_path):
    sample = ctl("attest", "--attester", "sample", "--insecure-allow-non-tee", check=0)
    assert "tee:" in sample.stdout and "trustee: not checked" in sample.stdout
    refused = ctl("attest")
    assert refused.returncode == 1 and "not a TDX guest" in refused.stdout


def test_flush_and_warm_with_a_remote_origin(tree, http_origin, tmp_path):
    """Memory and disk tiers of a remote origin: warm fills them, flush empties them, and the
    bytes read stay the same throughout."""
    cache_dir = str(tmp_path / "cache")
    m = Mount(dict(tree, cipher=http_origin), ["--cache-dir", cache_dir, "--no-decrypt-ahead"])
    try:
        s = status_json(m)
        assert s["cache"]["present"] is True and s["cache"]["memory_limit"] > 0
        assert s["origin"].startswith("http://127.0.0.1")
        m.ctl("warm", check=0)
        assert wait_until(lambda: status_json(m)["cache"]["disk_used"] > 0, 30)
        warm = status_json(m)
        assert warm["cache"]["memory_used"] > 0
        assert warm["traffic"]["bytes_by_source"]["origin"] > 0

        for rel, data in FILES.items():
            with open(os.path.join(m.mountpoint, rel), "rb") as f:
                assert f.read() == data, rel
        read = status_json(m)
        assert read["traffic"]["bytes_by_source"]["memory"] > 0  # served from what warm fetched

        out = m.ctl("flush", "--memory", check=0).stdout
        assert re.search(r"memory tier: (.*) dropped", out).group(1) != "0 B", out
        assert status_json(m)["cache"]["memory_used"] < read["cache"]["memory_used"]
        m.ctl("flush", check=0)
        assert status_json(m)["cache"]["disk_used"] == 0
        for rel, data in FILES.items():
            with open(os.path.join(m.mountpoint, rel), "rb") as f:
                assert f.read() == data, rel
        after = status_json(m)
        assert after["traffic"]["source_fetches"] > read["traffic"]["source_fetches"]
        assert after["errors"]["corrupt_blocks"] == 0
    finally:
        assert m.close() == 0

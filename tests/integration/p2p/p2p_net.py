"""Network namespaces for the sharing-group suite and benchmark.

The topology is made here and removed afterwards: one "switch" namespace holding a bridge, an
origin namespace running nginx (ciphertext + cachefs-manifest.json) and one namespace per node,
each joined to the bridge by a veth pair. Addresses are 10.77.0.0/24, inside these namespaces
only. Daemons run under `nsenter --net` (not `ip netns exec`, which also makes a private mount
namespace): their FUSE mounts stay visible to the test, which reads them directly.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

SUBNET = "10.77.0"
ORIGIN_IP = SUBNET + ".1"
NGINX_PORT = 8080
PEER_PORT = 7070


def run(*cmd, check=True):
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True)


def node_ip(i):
    return "%s.%d" % (SUBNET, 10 + i)


class Topology:
    def __init__(self, nodes, origin_rate=None):
        self.prefix = "cfp2p%d" % (os.getpid() % 100000)
        self.switch = self.prefix + "sw"
        self.origin = self.prefix + "o"
        self.nodes = [self.prefix + "n%d" % i for i in range(1, nodes + 1)]
        self.created = []
        try:
            self._build(origin_rate)
        except Exception:
            self.close()
            raise

    def _add_ns(self, name):
        run("ip", "netns", "add", name)
        self.created.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def _build(self, origin_rate):
        self._add_ns(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        for index, (ns, ip) in enumerate([(self.origin, ORIGIN_IP)] +
                                         [(n, node_ip(i + 1)) for i, n in enumerate(self.nodes)]):
            self._add_ns(ns)
            port = "p%d" % index
            run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                "netns", self.switch)
            run("ip", "-n", self.switch, "link", "set", port, "master", "br0")
            run("ip", "-n", self.switch, "link", "set", port, "up")
            run("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
        if origin_rate:
            # Shapes what the origin sends: its egress is what the group must keep small.
            run("ip", "netns", "exec", self.origin, "tc", "qdisc", "add", "dev", "eth0", "root",
                "tbf", "rate", origin_rate, "burst", "1mb", "latency", "100ms")

    def wrap(self, ns, cmd):
        return ["nsenter", "--net=/run/netns/" + ns, "--"] + list(cmd)

    def origin_tx_bytes(self):
        out = run("ip", "netns", "exec", self.origin, "cat",
                  "/sys/class/net/eth0/statistics/tx_bytes").stdout
        return int(out.strip())

    def close(self):
        for ns in reversed(self.created):
            run("ip", "netns", "del", ns, check=False)
        self.created = []


def write_manifest(root):
    """cachefs-manifest.json for nginx serving `root`, with nginx's ETags."""
    objects = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            objects.append({"key": rel, "type": "dir"})
        for name in sorted(filenames):
            if name == "cachefs-manifest.json":
                continue
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            rel = os.path.relpath(path, root)
            mtime = int(st.st_mtime)
            objects.append({"key": rel, "type": "file", "size": st.st_size,
                            "etag": '"%x-%x"' % (mtime, st.st_size), "mtime": mtime})
    with open(os.path.join(root, "cachefs-manifest.json"), "w") as f:
        json.dump({"format": "cachefs-manifest", "version": 1, "objects": objects}, f)


def ciphertext_bytes(root):
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name != "cachefs-manifest.json":
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


class Nginx:
    def __init__(self, topology, root):
        self.dir = tempfile.mkdtemp(prefix="p2p-nginx-")
        self.access_log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
user root;
daemon off;
worker_processes 2;
pid %(d)s/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  log_format bytes '$request_uri $status $body_bytes_sent';
  access_log %(log)s bytes;
  sendfile on;
  client_body_temp_path %(d)s; proxy_temp_path %(d)s; fastcgi_temp_path %(d)s;
  uwsgi_temp_path %(d)s; scgi_temp_path %(d)s;
  server {
    listen %(ip)s:%(port)d;
    root %(root)s;
    location / { }
  }
}
""" % {"d": self.dir, "log": self.access_log, "ip": ORIGIN_IP, "port": NGINX_PORT,
                "root": root})
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(topology.wrap(topology.origin, [nginx, "-e", "stderr", "-p",
                                                                     self.dir, "-c", conf]),
                                     stderr=subprocess.PIPE)
        self.url = "http://%s:%d/" % (ORIGIN_IP, NGINX_PORT)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: %s" % self.proc.stderr.read())
            probe = run(*topology.wrap(topology.origin, ["bash", "-c", "exec 3<>/dev/tcp/%s/%d"
                                                         % (ORIGIN_IP, NGINX_PORT)]), check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    def body_bytes(self):
        total = 0
        if os.path.exists(self.access_log):
            with open(self.access_log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[2].isdigit():
                        total += int(parts[2])
        return total

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """One cachefs daemon in its own network namespace, mounted at a directory of the test's."""

    def __init__(self, topology, index, origin_url, passfile, peers, extra=(), env=None,
                 ready_timeout=60):
        self.index = index
        self.ns = topology.nodes[index - 1]
        self.ip = node_ip(index)
        self.mountpoint = tempfile.mkdtemp(prefix="p2p-mnt%d-" % index)
        self.log_path = tempfile.mktemp(prefix="p2p-log%d-" % index)
        self.log = open(self.log_path, "w+")
        cachefs = os.environ.get("CACHEFS_BIN", "cachefs")
        args = [cachefs, "mount", "--foreground", "--insecure-allow-non-tee", "--passfile",
                passfile, "--p2p-listen", "%s:%d" % (self.ip, PEER_PORT), *extra]
        if peers is not None:
            args += ["--peers", peers]
        args += [origin_url, self.mountpoint]
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(topology.wrap(self.ns, args), stdout=self.log,
                                     stderr=subprocess.STDOUT, env=full_env)
        ready = " at %s: " % self.mountpoint
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if ready in self.output() or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if ready not in self.output():
            self.stop()
            raise AssertionError("node %d did not mount: %s" % (index, self.output()))

    def output(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def alive_peers(self):
        """The latest alive=N the daemon logged."""
        alive = 0
        for line in self.output().splitlines():
            if "sharing group member" in line and " alive=" in line:
                alive = int(line.split(" alive=")[1].split()[0])
        return alive

    def stop(self):
        if self.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", self.mountpoint], check=False,
                           capture_output=True)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["umount", "-l", self.mountpoint], check=False, capture_output=True)
        return self.proc.returncode

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        subprocess.run(["umount", "-l", self.mountpoint], check=False, capture_output=True)

    def close(self):
        self.stop()
        self.log.close()
        try:
            os.rmdir(self.mountpoint)
        except OSError:
            pass

    def stats(self):
        """Counters from the "sharing group stopped" line (after stop())."""
        for line in self.output().splitlines():
            if "sharing group stopped" in line:
                return {kv.split("=")[0]: int(kv.split("=")[1]) for kv in line.split()
                        if "=" in kv and kv.split("=")[1].isdigit()}
        return {}

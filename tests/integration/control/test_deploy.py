"""The deployment examples in deploy/, checked as far as this machine allows: the systemd unit
with systemd-analyze, compose and Kubernetes YAML parsed and checked for what makes the mount
reach vLLM, the cai.env example through cachefs's own env-file reader, and the fstab line by a
real `mount -T FSTAB` through mount.fuse3. There is no Docker engine or Kubernetes here."""

import os
import shutil
import subprocess

import pytest
import yaml

from cachefs_testlib import CACHEFS, is_mounted, wait_until
from conftest import CACHEFSCTL, DEPLOY_DIR, FILES, ctl


def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = open(os.path.join(DEPLOY_DIR, "systemd/cachefs-model.service")).read()
    assert "Type=notify" in text
    unit = tmp_path / "cachefs-model.service"
    # verify checks that ExecStart exists: point it at the built binary.
    unit.write_text(text.replace("/usr/local/bin/cachefs", os.path.abspath(CACHEFS)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "cachefs-model" not in proc.stderr, proc.stderr
    # Negative control: verify does reject a broken unit here.
    bad = tmp_path / "bad.service"
    bad.write_text(text.replace("Type=notify", "Type=bogus").replace(
        "/usr/local/bin/cachefs", "/nonexistent/cachefs"))
    assert subprocess.run(["systemd-analyze", "verify", str(bad)],
                          capture_output=True).returncode != 0


def test_compose_file():
    doc = yaml.safe_load(open(os.path.join(DEPLOY_DIR, "compose/docker-compose.yml")))
    cachefs = doc["services"]["cachefs"]
    vllm = doc["services"]["vllm"]
    assert "/dev/fuse" in cachefs["devices"] and "SYS_ADMIN" in cachefs["cap_add"]
    model = [v for v in cachefs["volumes"] if isinstance(v, dict) and v["target"] == "/tmp/model"]
    assert model[0]["bind"]["propagation"] == "rshared"
    assert "--foreground" in cachefs["command"]
    assert cachefs["healthcheck"]["test"][1:] == ["cachefsctl", "--mountpoint", "/tmp/model",
                                                  "health", "--quiet"]
    assert vllm["depends_on"]["cachefs"]["condition"] == "service_healthy"
    vmodel = [v for v in vllm["volumes"] if v["target"] == "/tmp/model"][0]
    assert vmodel["bind"]["propagation"] == "rslave" and vmodel["read_only"]


def test_kubernetes_native_sidecar():
    pod = yaml.safe_load(open(os.path.join(DEPLOY_DIR, "kubernetes/pod.yaml")))
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    sidecar = pod["spec"]["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["securityContext"]["privileged"] is True
    mount = [v for v in sidecar["volumeMounts"] if v["mountPath"] == "/tmp/model"][0]
    assert mount["mountPropagation"] == "Bidirectional"
    probe = sidecar["startupProbe"]["exec"]["command"]
    assert probe[0] == "cachefsctl" and "health" in probe
    assert "--foreground" in sidecar["command"]
    vllm = pod["spec"]["containers"][0]
    vmount = [v for v in vllm["volumeMounts"] if v["mountPath"] == "/tmp/model"][0]
    assert vmount["mountPropagation"] == "HostToContainer" and vmount["readOnly"]
    assert vmount["name"] == mount["name"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mount["name"]]
    # The probe command is one cachefsctl really accepts.
    assert subprocess.run([CACHEFSCTL, *probe[1:], "--help"], capture_output=True).returncode == 0


def test_cai_env_example_is_accepted(tmp_path):
    env = tmp_path / "cai.env"
    shutil.copy(os.path.join(DEPLOY_DIR, "cai.env.example"), env)
    env.chmod(0o644)
    # Too open: refused by the env-file reader (exit 11), naming the problem.
    proc = subprocess.run([CACHEFS, "mount", "--env-file", str(env), "--insecure-allow-non-tee"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 11, proc.stderr
    env.chmod(0o600)
    names = [line.split("=", 1)[0] for line in env.read_text().splitlines()
             if line and not line.startswith("#")]
    assert names == ["TRUSTEE_URL", "TRUSTEE_POLICY", "MODEL_KEY_ID", "MODEL_ENCRYPTION_METHOD",
                     "MODEL_OSS_BUCKET_PATH", "MODEL_OSS_ENDPOINT", "MODEL_OSS_ACCESS_KEY_ID",
                     "MODEL_OSS_SECRET_ACCESS_KEY", "MODEL_OSS_SESSION_TOKEN",
                     "MODEL_SHARING_PEER", "MODEL_SERVICE_PORT", "MODEL_MOUNT_POINT"]


@pytest.fixture
def mount_helper():
    """What deploy/fstab.example tells operators to set up: /sbin/mount.fuse.cachefs ->
    mount.fuse3, and cachefs in /usr/bin (mount(8) runs helpers without a PATH). Links made
    here are removed afterwards; existing ones other than ours make the test skip."""
    target = shutil.which("mount.fuse3") or "/sbin/mount.fuse3"
    if not os.path.exists(target):
        pytest.skip("mount.fuse3 is not installed")
    links = {"/sbin/mount.fuse.cachefs": target, "/usr/bin/cachefs": os.path.abspath(CACHEFS)}
    created = []
    for link, dest in links.items():
        if os.path.lexists(link):
            if os.path.realpath(link) != os.path.realpath(dest):
                pytest.skip(link + " exists and is not this build's")
            continue
        os.symlink(dest, link)
        created.append(link)
    yield
    for link in created:
        os.unlink(link)


def test_fstab_line_mounts_through_mount_fuse3(tree, tmp_path, mount_helper):
    lines = [l for l in open(os.path.join(DEPLOY_DIR, "fstab.example")).read().splitlines()
             if l and not l.startswith("#")]
    source, mountpoint, fstype, options, dump, passno = lines[0].split()
    assert fstype == "fuse.cachefs"
    # The example's line with this machine's paths, plus what a test needs (no TDX, own socket).
    mnt = tmp_path / "model"
    mnt.mkdir()
    sock = str(tmp_path / "c.sock")
    options = options.replace("/etc/cachefs/model.pass", tree["password"])
    options += ",insecure_allow_non_tee,control_socket=" + sock
    fstab = tmp_path / "fstab"
    fstab.write_text("%s %s %s %s %s %s\n" % (tree["cipher"], mnt, fstype, options, dump,
                                                passno))
    proc = subprocess.run(["mount", "-T", str(fstab), str(mnt)], capture_output=True, text=True,
                          timeout=120)
    try:
        assert proc.returncode == 0, proc.stderr
        # mount(8) returned: the daemon said ready, and the mount serves at once.
        assert is_mounted(str(mnt))
        with open(mnt / "model/config.json", "rb") as f:
            assert f.read() == FILES["model/config.json"]
        mounts = open("/proc/mounts").read()
        assert " %s fuse.cachefs ro," % mnt in mounts or " %s fuse.cachefs " % mnt in mounts
        ctl("status", socket_path=sock, check=0)
        ctl("health", socket_path=sock, check=0)
    finally:
        ctl("unmount", socket_path=sock)
        if is_mounted(str(mnt)):
            subprocess.run(["umount", "-l", str(mnt)])
    assert wait_until(lambda: not os.path.exists(sock), 10)

"""cachefs mount on a local origin, against trees written by the real gocryptfs 2.3."""

import ctypes
import errno
import json
import hashlib
import mmap
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from cachefs_testlib import (CachefsMount, FIXTURES, deterministic_bytes, is_mounted,
                             require_fuse, run_cachefs, tree_snapshot, unexpected_log_lines,
                             wait_until, write_passfile)


def test_tree_matches_gocryptfs_plaintext(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]) as mount:
        got = tree_snapshot(mountpoint)
        want = tree_snapshot(reference)
        assert sorted(got) == sorted(want)
        for path in want:
            assert got[path] == want[path], path
        assert os.readlink(os.path.join(mountpoint, "long_target_link")) == "t" * 1000
        assert len(os.listdir(os.path.join(mountpoint, "wide"))) == 1500
        assert unexpected_log_lines(mount.output()) == []


def test_reads_around_block_boundaries(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]):
        rel = "sizes/file_1048593"
        with open(os.path.join(reference, rel), "rb") as f:
            want = f.read()
        fd = os.open(os.path.join(mountpoint, rel), os.O_RDONLY)
        try:
            for offset in (0, 1, 4095, 4096, 4097, 8191, 65535, 1048575, 1048576, 1048592):
                for length in (1, 2, 4095, 4096, 4097, 131072, 1 << 20):
                    assert os.pread(fd, length, offset) == want[offset:offset + length], \
                        (offset, length)
            assert os.pread(fd, 10, len(want)) == b""
            assert os.pread(fd, 10, len(want) + 5000) == b""
        finally:
            os.close(fd)


def test_mmap_in_order_and_shuffled_segments(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]):
        rel = "model/model.safetensors"
        with open(os.path.join(reference, rel), "rb") as f:
            want = f.read()
        with open(os.path.join(mountpoint, rel), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            # Shuffled segments, the way a safetensors loader copies tensors out.
            rng = random.Random(7)
            bounds, offset = [], 0
            while offset < len(want):
                size = rng.choice([1, 2, 3, 5]) * 1024 * 1024 + rng.randrange(4096)
                bounds.append((offset, min(offset + size, len(want))))
                offset += size
            rng.shuffle(bounds)
            for start, end in bounds:
                assert m[start:end] == want[start:end], (start, end)
            assert hashlib.sha256(m[:]).digest() == hashlib.sha256(want).digest()
            m.close()


def test_every_write_is_refused(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]):
        target = os.path.join(mountpoint, "sizes/file_1")
        for action in (
                lambda: open(target, "r+b"),
                lambda: open(os.path.join(mountpoint, "new"), "wb"),
                lambda: os.mkdir(os.path.join(mountpoint, "newdir")),
                lambda: os.unlink(target),
                lambda: os.rename(target, target + ".moved"),
                lambda: os.symlink("x", os.path.join(mountpoint, "newlink")),
                lambda: os.chmod(target, 0o777),
                lambda: os.truncate(target, 0),
                lambda: os.setxattr(target, "user.x", b"1"),
        ):
            with pytest.raises(OSError) as caught:
                action()
            assert caught.value.errno == errno.EROFS
        assert os.listxattr(target) == []
        with pytest.raises(OSError) as caught:
            os.getxattr(target, "user.comment")
        assert caught.value.errno == errno.ENODATA
        st = os.statvfs(mountpoint)
        assert st.f_flag & os.ST_RDONLY


def test_namespace_is_built_once(edge_volume, mountpoint, workdir):
    cipher, reference, passfile = edge_volume
    copy = os.path.join(workdir, "cipher-once")
    shutil.copytree(cipher, copy, symlinks=True)
    with CachefsMount(copy, mountpoint, ["--passfile", passfile]):
        before = sorted(os.listdir(mountpoint))
        # Adding cipher entries after the mount changes nothing: the listing was taken once.
        shutil.copy(os.path.join(copy, "gocryptfs.diriv"), os.path.join(copy, "stray"))
        assert sorted(os.listdir(mountpoint)) == before
    shutil.rmtree(copy)


def regular_files(root):
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))




def test_corrupted_block_gives_eio_for_that_block_only(edge_volume, mountpoint, workdir):
    cipher, reference, passfile = edge_volume
    copy = os.path.join(workdir, "cipher-corrupt")
    shutil.copytree(cipher, copy, symlinks=True)
    # The 24 MiB model file is the only ciphertext object of its size.
    model_size = 24 * 1024 * 1024 + 123
    blocks = (model_size + 4095) // 4096
    cipher_size = 18 + model_size + 32 * blocks
    victims = [p for p in regular_files(copy) if os.path.getsize(p) == cipher_size]
    assert len(victims) == 1
    cbs = 4096 + 32
    flip_byte(victims[0], 18 + 1 * cbs + 100)  # inside block 1
    with open(os.path.join(reference, "model/model.safetensors"), "rb") as f:
        want = f.read()
    with CachefsMount(copy, mountpoint, ["--passfile", passfile, "--no-decrypt-ahead"]) as mount:
        fd = os.open(os.path.join(mountpoint, "model/model.safetensors"), os.O_RDONLY)
        try:
            assert os.pread(fd, 4096, 0) == want[:4096]
            with pytest.raises(OSError) as caught:
                os.pread(fd, 4096, 4096)
            assert caught.value.errno == errno.EIO
            with pytest.raises(OSError) as caught:
                os.pread(fd, 10, 8190)  # straddles blocks 1 and 2
            assert caught.value.errno == errno.EIO
            assert os.pread(fd, 4096, 8192) == want[8192:12288]
            assert os.pread(fd, 1 << 20, 5 << 20) == want[5 << 20:6 << 20]
        finally:
            os.close(fd)
        time.sleep(0.2)
        log = mount.output()
        bad = [line for line in log.splitlines() if "block 1" in line]
        assert len(bad) == 1, log
        assert "model/model.safetensors" in bad[0]
    shutil.rmtree(copy)


def test_changed_origin_object_gives_eio(edge_volume, mountpoint, workdir):
    cipher, reference, passfile = edge_volume
    copy = os.path.join(workdir, "cipher-changed")
    shutil.copytree(cipher, copy, symlinks=True)
    with CachefsMount(copy, mountpoint, ["--passfile", passfile, "--no-decrypt-ahead"]) as mount:
        target = os.path.join(mountpoint, "sizes/file_8192")
        st = os.stat(target)
        # Rewrite every ciphertext file of that size in place (new mtime): a changed version.
        for p in regular_files(copy):
            if os.path.getsize(p) == 18 + 8192 + 64:
                os.utime(p, (1, 1))
        with pytest.raises(OSError) as caught:
            with open(target, "rb") as f:
                f.read()
        assert caught.value.errno == errno.EIO
        assert st.st_size == 8192
        assert "changed at the origin" in mount.output()
    shutil.rmtree(copy)


def test_wrong_password_fails_cleanly(edge_volume, mountpoint, workdir):
    cipher, _, _ = edge_volume
    bad = os.path.join(workdir, "bad-password")
    with open(bad, "w") as f:
        f.write("not the password\n")
    result = run_cachefs("mount", "--insecure-allow-non-tee", "--passfile", bad, cipher,
                         mountpoint)
    assert result.returncode == 12
    assert result.stderr.strip().count("\n") == 0
    assert "password incorrect" in result.stderr
    assert not is_mounted(mountpoint)


def test_missing_config_fails_cleanly(workdir, mountpoint):
    require_fuse()
    empty = os.path.join(workdir, "not-gocryptfs")
    os.makedirs(empty, exist_ok=True)
    passfile = write_passfile(workdir)
    result = run_cachefs("mount", "--insecure-allow-non-tee", "--passfile", passfile, empty,
                         mountpoint)
    assert result.returncode == 11
    assert "no gocryptfs.conf" in result.stderr
    assert not is_mounted(mountpoint)


def test_unknown_feature_flag_is_named(edge_volume, mountpoint, workdir):
    cipher, _, passfile = edge_volume
    copy = os.path.join(workdir, "cipher-flag")
    os.makedirs(copy, exist_ok=True)
    conf = os.path.join(cipher, "gocryptfs.conf")
    with open(conf) as f:
        text = f.read()
    with open(os.path.join(copy, "gocryptfs.conf"), "w") as f:
        f.write(text.replace('"HKDF"', '"HKDF",\n\t\t"FancyNewFlag"'))
    shutil.copy(os.path.join(cipher, "gocryptfs.diriv"), copy)
    result = run_cachefs("mount", "--insecure-allow-non-tee", "--passfile", passfile, copy,
                         mountpoint)
    assert result.returncode == 11
    assert "FancyNewFlag" in result.stderr
    assert not is_mounted(mountpoint)


def test_refuses_outside_a_tee_without_the_flag(edge_volume, mountpoint):
    cipher, _, passfile = edge_volume
    if os.path.exists("/dev/tdx_guest"):
        pytest.skip("this machine is a TDX guest")
    result = run_cachefs("mount", "--passfile", passfile, cipher, mountpoint)
    assert result.returncode == 16
    assert "--insecure-allow-non-tee" in result.stderr
    assert not is_mounted(mountpoint)


def test_background_mount_returns_when_ready(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    result = run_cachefs("mount", "--insecure-allow-non-tee", "--passfile", passfile, cipher,
                         mountpoint)
    try:
        assert result.returncode == 0, result.stderr
        assert is_mounted(mountpoint)
        with open(os.path.join(mountpoint, "dir1/dir2/dir3/deep.txt"), "rb") as f:
            assert f.read() == b"deep\n"
        # FUSE negotiates at most 128 KiB of readahead; the daemon widens it once files open.
        with open("/proc/self/mountinfo") as f:
            device = next(l.split()[2] for l in f if f" {mountpoint} " in l)
        with open(f"/sys/class/bdi/{device}/read_ahead_kb") as f:
            assert int(f.read()) == 4096
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=False)
    assert wait_until(lambda: not is_mounted(mountpoint))
    # The daemon exits after the unmount.
    assert wait_until(lambda: subprocess.run(["pgrep", "-f", f"cachefs mount.*{mountpoint}"],
                                             capture_output=True).returncode != 0, 10)


def test_mount_fuse3_form_with_o_options(edge_volume, mountpoint):
    cipher, _, passfile = edge_volume
    result = run_cachefs(cipher, mountpoint, "-o",
                         f"passfile={passfile},insecure_allow_non_tee,nodev,nosuid,_netdev")
    try:
        assert result.returncode == 0, result.stderr
        with open("/proc/self/mountinfo") as f:
            line = next(l for l in f if f" {mountpoint} " in l)
        assert "nodev" in line and "nosuid" in line and "fuse.cachefs" in line
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=False)
    bad = run_cachefs(cipher, mountpoint, "-o", "passfile=x,no_such_option")
    assert bad.returncode == 2
    assert "no-such-option" in bad.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_unmount_cleanly(edge_volume, mountpoint, sig):
    cipher, _, passfile = edge_volume
    mount = CachefsMount(cipher, mountpoint, ["--passfile", passfile])
    with open(os.path.join(mountpoint, ".hidden"), "rb") as f:
        assert f.read() == b"hidden\n"
    assert mount.stop(sig) == 15
    assert not is_mounted(mountpoint)


def test_external_unmount_exits_zero(edge_volume, mountpoint):
    cipher, _, passfile = edge_volume
    mount = CachefsMount(cipher, mountpoint, ["--passfile", passfile])
    assert mount.stop() == 0
    assert not is_mounted(mountpoint)


def test_stale_mount_of_a_killed_daemon_is_cleaned_up(edge_volume, mountpoint):
    cipher, _, passfile = edge_volume
    mount = CachefsMount(cipher, mountpoint, ["--passfile", passfile])
    mount.proc.kill()
    mount.proc.wait()
    with pytest.raises(OSError) as caught:
        os.listdir(mountpoint)
    assert caught.value.errno == errno.ENOTCONN
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]) as again:
        assert "stale mount" in again.output()
        assert "deep.txt" in os.listdir(os.path.join(mountpoint, "dir1/dir2/dir3"))


FIXTURE_VOLUMES = [
    "v0.7", "v0.7-plaintextnames", "v0.9", "v1.1-aessiv", "v1.3", "v2.2-deterministic-names",
    "v2.2-xchacha", "v2.2-xchacha-deterministic-names",
]


@pytest.mark.parametrize("volume", FIXTURE_VOLUMES)
def test_upstream_example_filesystems(volume, mountpoint, workdir):
    require_fuse()
    source = os.path.join(FIXTURES, "gocryptfs", volume)
    if not os.path.isdir(source):
        pytest.skip(f"fixture {source} not present")
    fixture_dir = os.path.join(workdir, "fixture-password")
    os.makedirs(fixture_dir, exist_ok=True)
    passfile = write_passfile(fixture_dir, "test")
    with CachefsMount(source, mountpoint, ["--passfile", passfile]):
        with open(os.path.join(mountpoint, "status.txt"), "rb") as f:
            assert f.read() == b"It works!\n"
        # The shared copy of the fixtures may have lost the symlinks' type (then gocryptfs
        # itself shows them as unreadable files); check them only where they survived.
        if any(os.path.islink(os.path.join(source, n)) for n in os.listdir(source)):
            assert os.readlink(os.path.join(mountpoint, "rel")) == "status.txt"
            assert os.readlink(os.path.join(mountpoint, "abs")) == "/a/b/c/d"
        if volume not in ("v0.7", "v0.7-plaintextnames"):
            long_name = "longname_255_" + "x" * 242
            with open(os.path.join(mountpoint, long_name), "rb") as f:
                assert f.read() == b"It works!\n"


def test_allow_other_lets_another_user_read(edge_volume, mountpoint, workdir):
    cipher, _, passfile = edge_volume
    os.chmod(workdir, 0o755)
    target = os.path.join(mountpoint, "dir1/dir2/dir3/deep.txt")
    as_nobody = ["runuser", "-u", "nobody", "--", "cat", target]
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]):
        denied = subprocess.run(as_nobody, capture_output=True)
        assert denied.returncode != 0
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile, "--allow-other"]):
        allowed = subprocess.run(as_nobody, capture_output=True)
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout == b"deep\n"


def test_unmount_right_after_mount(edge_volume, mountpoint):
    # Nothing in the daemon may hold the fresh mount: an immediate unmount must succeed.
    cipher, _, passfile = edge_volume
    for _ in range(5):
        result = run_cachefs("mount", "--insecure-allow-non-tee", "--passfile", passfile, cipher,
                             mountpoint)
        assert result.returncode == 0, result.stderr
        unmount = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True,
                                 text=True)
        assert unmount.returncode == 0, unmount.stderr
        assert wait_until(lambda: not is_mounted(mountpoint))


def resident_pages(path):
    """Which pages of `path` are in the kernel page cache (mincore on a mapping that is never
    touched, so asking does not read anything)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr != ctypes.c_void_p(-1).value, os.strerror(ctypes.get_errno())
        try:
            vec = ctypes.create_string_buffer(pages)
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return [b & 1 for b in vec.raw]
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def decrypt_ahead_status(mountpoint):
    """(plaintext bytes the daemon stored in the kernel page cache, of which held by open
    files), from cachefsctl status."""
    ctl = os.path.join(os.environ.get("CACHEFS_BUILD_DIR", "build"), "tools/cachefsctl/cachefsctl")
    out = subprocess.run([ctl, "--mountpoint", mountpoint, "status", "--json"],
                         capture_output=True, text=True, check=True).stdout
    traffic = json.loads(out)["traffic"]
    return (int(traffic.get("kernel_cache_bytes", 0)),
            int(traffic.get("kernel_cache_held_bytes", 0)))


def pushed_bytes(mountpoint):
    return decrypt_ahead_status(mountpoint)[0]


# Residency is checked one way only: pages that must NOT be cached. This machine's kernel runs
# proactive reclaim (DAMON pageout of cold physical memory), which may evict pushed pages at any
# moment; how much was pushed comes from the daemon, whose every store the kernel acknowledged.


def test_decrypt_ahead_fills_the_page_cache_of_an_open_file(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    rel = "model/model.safetensors"
    with CachefsMount(cipher, mountpoint, ["--passfile", passfile]) as mount:
        path = os.path.join(mountpoint, rel)
        size = os.path.getsize(path)
        assert pushed_bytes(mountpoint) == 0
        with open(path, "rb") as f:
            # Opened, nothing read: the daemon pushes the whole file, once.
            assert wait_until(lambda: pushed_bytes(mountpoint) >= size, 20)
            time.sleep(0.3)
            assert pushed_bytes(mountpoint) == size
            with open(os.path.join(reference, rel), "rb") as want:
                assert f.read() == want.read()
        # The kernel accepted every store (a refusal is logged and would show here).
        assert unexpected_log_lines(mount.output()) == []


def test_decrypt_ahead_keeps_to_its_budget(edge_volume, mountpoint):
    cipher, reference, passfile = edge_volume
    rel = "model/model.safetensors"  # 24 MiB
    mib = 1 << 20
    with CachefsMount(cipher, mountpoint,
                      ["--passfile", passfile, "--decrypt-ahead-budget", "4MiB"]):
        path = os.path.join(mountpoint, rel)
        fd = os.open(path, os.O_RDONLY)
        assert wait_until(lambda: pushed_bytes(mountpoint) >= 4 * mib, 20)
        time.sleep(0.5)  # time to overshoot, if it would
        assert decrypt_ahead_status(mountpoint) == (4 * mib, 4 * mib)
        assert not any(resident_pages(path)[4 * mib // mmap.PAGESIZE:])
        # Closing the file gives its share back (once the kernel's RELEASE, which it sends
        # after close returns, arrives); the next open carries on where it stopped.
        os.close(fd)
        assert wait_until(lambda: decrypt_ahead_status(mountpoint)[1] == 0, 20)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert wait_until(lambda: pushed_bytes(mountpoint) >= 8 * mib, 20)
            time.sleep(0.5)
            assert decrypt_ahead_status(mountpoint) == (8 * mib, 4 * mib)
            assert not any(resident_pages(path)[8 * mib // mmap.PAGESIZE:])
            with open(os.path.join(reference, rel), "rb") as want:
                assert os.pread(fd, 32 * mib, 0) == want.read()
        finally:
            os.close(fd)

#!/usr/bin/python3
"""Read throughput of cachefs vs gocryptfs vs bindfs on the same model file (issue: core mount).

Mounts the same ciphertext with cachefs and with gocryptfs (default options), and the same
plaintext with bindfs (FUSE without crypto: a ceiling), then reads a file of --size bytes
through each, on a fresh mount with the ciphertext in the page cache, in three patterns:
  read      read() with 1 MiB buffers, in order
  mmap-seq  mmap the file, touch every page in order
  mmap-shuf mmap the file, copy it out as 1-64 MiB segments in shuffled order (a safetensors
            loader copying tensors out of a shard; segment sizes and order from random.Random(7))
Prints MB/s, daemon CPU seconds per GiB, and the ratios, all measured side by side in one run.

Usage: bench/core_read.py [--cachefs BUILD/tools/cachefs/cachefs] [--size 1G] [--runs 2]
"""

import argparse
import mmap
import os
import random
import shutil
import subprocess
import sys
import time

PATTERNS = ["read", "mmap-seq", "mmap-shuf"]
PAGE = 4096


def read_pattern(path, pattern):
    """Runs one pattern over `path` and returns the elapsed seconds (called in a child)."""
    size = os.path.getsize(path)
    start = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        if pattern == "read":
            buf = bytearray(1 << 20)
            while f.readinto(buf):
                pass
        else:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            if pattern == "mmap-seq":
                for offset in range(0, size, PAGE):
                    m[offset]
            else:
                rng = random.Random(7)
                segments, offset = [], 0
                while offset < size:
                    length = rng.choice([1, 2, 4, 8, 16, 32, 64]) << 20
                    segments.append((offset, min(length, size - offset)))
                    offset += length
                rng.shuffle(segments)
                for offset, length in segments:
                    m[offset:offset + length]
            m.close()
    return time.monotonic() - start


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def is_mounted(path):
    return subprocess.run(["mountpoint", "-q", path]).returncode == 0


def wait_mounted(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        if is_mounted(path):
            # The first request also waits for the session loop: stat once before timing.
            os.listdir(path)
            return
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not mount")


def unmount(path, proc):
    subprocess.run(["fusermount3", "-u", path], check=False)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def prepare(work, size, cachefs_pw):
    """Creates (once) the plaintext, and its gocryptfs ciphertext written by gocryptfs."""
    raw = os.path.join(work, "raw")
    cipher = os.path.join(work, "cipher")
    marker = os.path.join(work, f"ready-{size}")
    if os.path.exists(marker):
        return raw, cipher
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(raw)
    with open(cachefs_pw, "w") as f:
        f.write("benchpass\n")
    # Incompressible bytes, fast: AES-CTR keystream from openssl.
    with open(os.path.join(raw, "model.safetensors"), "wb") as out:
        gen = subprocess.Popen("openssl enc -aes-128-ctr -pass pass:seed -nosalt -pbkdf2 "
                               "< /dev/zero", shell=True, stdout=subprocess.PIPE)
        left = size
        while left:
            chunk = gen.stdout.read(min(left, 1 << 20))
            out.write(chunk)
            left -= len(chunk)
        gen.kill()
        gen.wait()
    os.makedirs(cipher)
    subprocess.run(["gocryptfs", "-q", "-init", "-passfile", cachefs_pw, "-scryptn", "10",
                    cipher], check=True)
    plain = os.path.join(work, "gocryptfs-write")
    os.makedirs(plain)
    subprocess.run(["gocryptfs", "-q", "-passfile", cachefs_pw, cipher, plain], check=True)
    shutil.copyfile(os.path.join(raw, "model.safetensors"),
                    os.path.join(plain, "model.safetensors"))
    subprocess.run(["fusermount3", "-u", plain], check=True)
    os.rmdir(plain)
    open(marker, "w").close()
    return raw, cipher


def warm_page_cache(*dirs):
    for d in dirs:
        for dirpath, _, names in os.walk(d):
            for name in names:
                with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                    while f.read(1 << 24):
                        pass


def start(system, args, raw, cipher, pw, mnt):
    if system == "cachefs":
        cmd = [args.cachefs, "mount", "-f", "--insecure-allow-non-tee", "--passfile", pw,
               *args.cachefs_args.split(), cipher, mnt]
    elif system == "gocryptfs":
        cmd = ["gocryptfs", "-fg", "-q", "-passfile", pw, cipher, mnt]
    else:
        cmd = ["bindfs", "-f", "--multithreaded", "-o", "ro", raw, mnt]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_mounted(mnt, proc)
    return proc


def measure(system, pattern, args, raw, cipher, pw, mnt, size):
    proc = start(system, args, raw, cipher, pw, mnt)
    try:
        cpu_before = cpu_seconds(proc.pid)
        path = os.path.join(mnt, "model.safetensors")
        out = subprocess.run([sys.executable, __file__, "--child", pattern, path],
                             capture_output=True, text=True, check=True)
        seconds = float(out.stdout)
        cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        unmount(mnt, proc)
    return size / seconds / 1e6, cpu / (size / (1 << 30))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(read_pattern(sys.argv[3], sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--cachefs", default=os.path.join(
        os.path.dirname(__file__), "..", "build", "tools", "cachefs", "cachefs"))
    parser.add_argument("--size", default="1G", help="file size (K/M/G suffixes)")
    parser.add_argument("--runs", type=int, default=2, help="best of N fresh mounts")
    parser.add_argument("--work", default="/var/tmp/cachefs-bench-core")
    parser.add_argument("--systems", default="cachefs,gocryptfs,bindfs")
    parser.add_argument("--cachefs-args", default="",
                        help="extra cachefs mount options, e.g. --no-decrypt-ahead")
    args = parser.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(args.size[:-1]) * units[args.size[-1]] if args.size[-1] in units else int(
        args.size)
    args.cachefs = os.path.abspath(args.cachefs)

    pw = os.path.join(args.work, "pw.txt")
    raw, cipher = prepare(args.work, size, pw)
    mnt = os.path.join(args.work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    systems = args.systems.split(",")
    results = {}
    for system in systems:
        for pattern in PATTERNS:
            best = None
            for _ in range(args.runs):
                warm_page_cache(raw, cipher)
                mbps, cpu = measure(system, pattern, args, raw, cipher, pw, mnt, size)
                if best is None or mbps > best[0]:
                    best = (mbps, cpu)
            results[(system, pattern)] = best
            print(f"  {system:10s} {pattern:10s} {best[0]:8.0f} MB/s  "
                  f"{best[1]:5.2f} daemon CPU-s/GiB", flush=True)

    print(f"\nfile {size / (1 << 30):.2f} GiB, best of {args.runs} fresh mounts, "
          f"ciphertext in page cache, {os.cpu_count()} cores")
    header = f"{'pattern':10s}" + "".join(f"{s + ' MB/s':>16s}" for s in systems)
    if "cachefs" in systems:
        header += "".join(f"{'cachefs/' + s:>18s}" for s in systems if s != "cachefs")
        header += f"{'cachefs CPU-s/GiB':>19s}"
    print(header)
    for pattern in PATTERNS:
        row = f"{pattern:10s}" + "".join(f"{results[(s, pattern)][0]:16.0f}" for s in systems)
        if "cachefs" in systems:
            ours = results[("cachefs", pattern)][0]
            row += "".join(f"{ours / results[(s, pattern)][0]:17.2f}x" for s in systems
                           if s != "cachefs")
            row += f"{results[('cachefs', pattern)][1]:19.2f}"
        print(row)


if __name__ == "__main__":
    main()

"""Origins against real servers on 127.0.0.1: S3 API (s3rver), plain HTTP + manifest (nginx),
faults (fault_proxy.py), the disk cache across restarts and a full cache directory."""

import os
import subprocess
import tempfile

import pytest

from conftest import MANY_OBJECTS, MIB, clean_env, listing, run_origin_cat, s3_env, sha256

PART = ["--part-size", str(MIB)]


def test_s3_listing_paginates_and_completes_directories(s3rver):
    r = run_origin_cat("--endpoint", s3rver["endpoint"], "list", "s3://models/model",
                       env=s3_env())
    rows = listing(r)
    many = [k for k in rows if k.startswith("many/")]
    assert len(many) == MANY_OBJECTS  # more than one page of 1000
    assert rows["many"][0] == "dir"  # implied by keys only
    assert rows["dir"][0] == "dir" and rows["dir/sub"][0] == "dir"
    assert rows["marker"][0] == "dir"  # a "marker/" object
    assert rows["big.bin"][0] == "file" and rows["big.bin"][1] == 24 * MIB + 12345
    assert rows["big.bin"][2].startswith('"')  # pinned ETag
    assert "" not in rows
    assert r.stats["origin_requests"] >= 2


@pytest.mark.parametrize("key", ["big.bin", "exact.bin", "dir/sub/b", "dir/a", "empty"])
def test_s3_read_whole_objects(s3rver, tree, key):
    r = run_origin_cat("--endpoint", s3rver["endpoint"], *PART, "cat", "s3://models/model", key,
                       env=s3_env())
    assert sha256(r.stdout) == sha256(tree["files"][key])


def test_s3_parallel_readers_and_ranges(s3rver, tree):
    data = tree["files"]["big.bin"]
    r = run_origin_cat("--endpoint", s3rver["endpoint"], *PART, "cat", "s3://models/model",
                       "big.bin", "--readers", "4", "--read-size", "131072", env=s3_env())
    assert r.stdout == data
    # Every chunk was fetched once however many readers wanted it (single flight).
    assert r.stats["origin_fetches"] == (len(data) + MIB - 1) // MIB
    r = run_origin_cat("--endpoint", s3rver["endpoint"], *PART, "cat", "s3://models/model",
                       "big.bin", "--offset", 3 * MIB - 7, "--length", 2 * MIB + 9, env=s3_env())
    assert r.stdout == data[3 * MIB - 7:5 * MIB + 2]


def s3rver_port(s3rver):
    return int(s3rver["endpoint"].rsplit(":", 1)[1])


def test_s3_signatures_verified_by_botocore(s3rver, tree, fault_proxy):
    # s3rver does not check V4 signatures; the proxy recomputes each one with botocore.
    proxy = fault_proxy("--faults", "", "--verify-sigv4", "S3RVER:S3RVER:us-east-1",
                        upstream=s3rver_port(s3rver))
    endpoint = proxy.url.rstrip("/")
    r = run_origin_cat("--endpoint", endpoint, "list", "s3://models/model", env=s3_env())
    assert len([k for k in listing(r) if k.startswith("many/")]) == MANY_OBJECTS
    r = run_origin_cat("--endpoint", endpoint, *PART, "cat", "s3://models/model", "dir/sub/b",
                       env=s3_env())
    assert r.stdout == tree["files"]["dir/sub/b"]
    kinds = [e["kind"] for e in proxy.events()]
    assert "badsig" not in kinds and "range" in kinds

    env = clean_env(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="not-the-secret-XYZ")
    r = run_origin_cat("--endpoint", endpoint, "list", "s3://models/model", env=env, check=False)
    assert r.returncode != 0
    assert "403" in r.stderr and "SignatureDoesNotMatch" in r.stderr
    assert "not-the-secret-XYZ" not in r.stderr
    assert r.stats.get("origin_retries", 0) == 0


def test_s3_unknown_access_key_is_reported_and_not_retried(s3rver):
    env = clean_env(AWS_ACCESS_KEY_ID="NOBODY", AWS_SECRET_ACCESS_KEY="not-the-secret-XYZ")
    r = run_origin_cat("--endpoint", s3rver["endpoint"], "list", "s3://models/model", env=env,
                       check=False)
    assert r.returncode != 0
    assert "403" in r.stderr and "InvalidAccessKeyId" in r.stderr
    assert "not-the-secret-XYZ" not in r.stderr
    assert r.stats.get("origin_retries", 0) == 0


def test_s3_missing_bucket_is_not_found(s3rver):
    r = run_origin_cat("--endpoint", s3rver["endpoint"], "list", "s3://nope/x", env=s3_env(),
                       check=False)
    assert r.returncode != 0 and "404" in r.stderr


def test_oss_path_style_anonymous_against_s3rver(s3rver, tree):
    # The OSS client's addressing (path-style /bucket/key for an IP endpoint, ListObjectsV2
    # at /bucket/) against s3rver, which accepts unsigned requests.
    r = run_origin_cat("--endpoint", s3rver["endpoint"], "--anonymous", *PART, "cat",
                       "models:/model", "dir/sub/b", env=clean_env())
    assert r.stdout == tree["files"]["dir/sub/b"]


@pytest.mark.parametrize("version", ["v1", "v4"])
@pytest.mark.parametrize("token", [None, "CAIS+sts/token=="])
def test_oss_signatures_verified_by_ali_oss(oss_proxy, tree, version, token):
    ak, sk = "LTAI5tTEST", "oss/secret+key=="
    proxy = oss_proxy(ak=ak, sk=sk, region="cn-beijing", token=token)
    env = clean_env(OSS_ACCESS_KEY_ID=ak, OSS_ACCESS_KEY_SECRET=sk)
    if token:
        env["OSS_SESSION_TOKEN"] = token
    common = ["--endpoint", proxy.endpoint, "--region", "cn-beijing", "--oss-signature", version]
    r = run_origin_cat(*common, "list", "oss://models/model", env=env)
    assert len([k for k in listing(r) if k.startswith("many/")]) == MANY_OBJECTS
    r = run_origin_cat(*common, *PART, "cat", "models:/model", "big.bin", env=env)
    assert r.stdout == tree["files"]["big.bin"]
    events = proxy.events()
    assert events and all(e["ok"] and e["kind"] == version for e in events)
    assert sum(1 for e in events if e["path"] == "/models/") >= 2  # paginated listing
    assert sk not in r.stderr and (token is None or token not in r.stderr)

    bad = dict(env, OSS_ACCESS_KEY_SECRET="wrong-secret-ABC")
    r = run_origin_cat(*common, "list", "oss://models/model", env=bad, check=False)
    assert r.returncode != 0 and "403" in r.stderr and "SignatureDoesNotMatch" in r.stderr
    assert "wrong-secret-ABC" not in r.stderr


def test_env_file_credentials(s3rver, tree, tmp_path):
    env_file = tmp_path / "cai.env"
    env_file.write_text("MODEL_OSS_ACCESS_KEY_ID=S3RVER\nMODEL_OSS_SECRET_ACCESS_KEY='S3RVER'\n")
    os.chmod(env_file, 0o644)
    r = run_origin_cat("--env-file", env_file, "--endpoint", s3rver["endpoint"], "list",
                       "s3://models/model", env=clean_env(), check=False)
    assert r.returncode != 0 and "0644" in r.stderr  # refused: readable by others
    os.chmod(env_file, 0o600)
    r = run_origin_cat("--env-file", env_file, "--endpoint", s3rver["endpoint"], *PART, "cat",
                       "s3://models/model", "dir/a", env=clean_env())
    assert r.stdout == tree["files"]["dir/a"]


def test_http_manifest_listing_and_reads(nginx, tree):
    r = run_origin_cat("list", nginx["url"])
    rows = listing(r)
    assert set(k for k, v in rows.items() if v[0] == "file") == set(tree["files"])
    assert rows["dir/sub"][0] == "dir"
    for key, data in tree["files"].items():
        r = run_origin_cat(*PART, "cat", nginx["url"], key)
        assert r.stdout == data, key


def test_fault_proxy_full_read_returns_the_right_bytes(fault_proxy, tree):
    proxy = fault_proxy("--faults", "reset,500,503,stall,truncate", "--every", "2",
                        "--stall-seconds", "20")
    data = tree["files"]["big.bin"]
    r = run_origin_cat(*PART, "--stall-timeout", "2", "--parallel", "4", "cat", proxy.url,
                       "big.bin")
    assert r.stdout == data
    kinds = [e["kind"] for e in proxy.events()]
    for fault in ("reset", "500", "503", "stall", "truncate"):
        assert fault in kinds
    assert r.stats["origin_retries"] >= 5
    assert r.stats["errors_throttled"] >= 1 and r.stats["errors_server"] >= 1
    assert r.stats["errors_short_body"] + r.stats["errors_transport"] >= 2


@pytest.mark.parametrize("fault", ["412", "etag"])
def test_changed_object_fails_clearly(fault_proxy, fault):
    proxy = fault_proxy("--faults", fault, "--every", "1")
    r = run_origin_cat(*PART, "cat", proxy.url, "big.bin", check=False)
    assert r.returncode != 0
    assert "changed at the origin" in r.stderr
    assert r.stats["errors_changed"] >= 1
    assert r.stats["origin_retries"] == 0


def test_random_reads_do_not_start_read_ahead(nginx, tree):
    r = run_origin_cat(*PART, "cat", nginx["url"], "big.bin", "--random", "--read-size",
                       str(MIB // 2))
    assert r.stdout == tree["files"]["big.bin"]
    # Shuffled half-chunk reads occasionally land next to each other twice running; a storm
    # would fetch ahead on nearly every read.
    assert r.stats["readahead_issued"] <= 4


def test_sequential_reads_read_ahead(nginx, tree):
    r = run_origin_cat(*PART, "cat", nginx["url"], "big.bin", "--read-size", "131072")
    assert r.stdout == tree["files"]["big.bin"]
    assert r.stats["readahead_issued"] >= 15
    assert r.stats["readahead_used"] >= 15


def test_warm_disk_cache_after_restart_and_corrupt_files(fault_proxy, tree, tmp_path):
    proxy = fault_proxy("--faults", "", "--every", "1000000")
    cache = tmp_path / "cache"
    data = tree["files"]["big.bin"]
    args = [*PART, "--cache-dir", cache, "cat", proxy.url, "big.bin"]
    first = run_origin_cat(*args)
    assert first.stdout == data and first.stats["bytes_from_origin"] == len(data)
    ranged_before = sum(1 for e in proxy.events() if e["kind"] == "range")
    second = run_origin_cat(*args)
    assert second.stdout == data
    assert second.stats["bytes_from_disk"] == len(data)
    assert second.stats["origin_fetches"] == 0
    assert sum(1 for e in proxy.events() if e["kind"] == "range") == ranged_before

    chunks = sorted(p for p in cache.iterdir() if p.name.endswith(".chunk"))
    assert len(chunks) == (len(data) + MIB - 1) // MIB
    with open(chunks[0], "r+b") as f:  # flip a data byte
        f.seek(-100, os.SEEK_END)
        b = f.read(1)
        f.seek(-100, os.SEEK_END)
        f.write(bytes([b[0] ^ 0xFF]))
    with open(chunks[1], "r+b") as f:  # truncate
        f.truncate(1000)
    third = run_origin_cat(*args)
    assert third.stdout == data
    assert third.stats["disk_corrupt"] == 2
    assert third.stats["origin_fetches"] == 2
    assert "disk cache file rejected" in third.stderr


def test_full_cache_directory_degrades_to_memory(nginx, tree, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    cache = tmp_path / "small"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(cache)], check=True)
    try:
        r = run_origin_cat(*PART, "--cache-dir", cache, "--cache-size", str(100 * MIB), "cat",
                           nginx["url"], "big.bin")
        assert r.stdout == tree["files"]["big.bin"]
        assert r.stats["disk_enabled"] is False
        assert r.stats["disk_write_errors"] >= 1
        assert r.stderr.count("memory cache only") == 1
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_https_verifies_the_server_and_takes_a_ca_bundle(nginx_tls, tree):
    r = run_origin_cat("list", nginx_tls["url"], check=False)
    assert r.returncode != 0 and "TLS verification failed" in r.stderr
    r = run_origin_cat("--ca-bundle", nginx_tls["ca"], *PART, "cat", nginx_tls["url"], "big.bin")
    assert r.stdout == tree["files"]["big.bin"]

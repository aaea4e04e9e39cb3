"""The key agent (through keyagent_probe) against the KBS and CDH test doubles."""

import hashlib
import os
import subprocess
import tempfile
import time

import pytest

from conftest import (KEY_ID, RESOURCE, cdh_double, free_port, kbs_double, probe,
                      trustee_args)

PASSWORD = "model-password-Xy7!"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def expect_ok(rc, out, err, password=PASSWORD):
    assert rc == 0, out + err
    assert out.strip() == f"ok sha256={sha(password)} bytes={len(password)}", out


def expect_error(rc, out, errc, *fragments):
    assert rc != 0, out
    assert out.startswith(f"error {errc}: "), out
    assert out.count("\n") == 1, f"not one line: {out!r}"
    for fragment in fragments:
        assert fragment in out, out


def test_obtains_key_with_path_prefix_and_reuses_nothing_more_than_needed():
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        rc, out, err = probe(*trustee_args(kbs.url))
        expect_ok(rc, out, err)
        assert kbs.stats() == {"auth": 1, "attest": 1, "resource": 1, "resource_ok": 1,
                               "failed_5xx": 0}


def test_without_prefix_and_with_sample_device_evidence():
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}", prefix="") as kbs:
        rc, out, err = probe("--trustee-url", kbs.url, "--key-id", KEY_ID, "--attester",
                             "sample+sampledevice", "--insecure-allow-non-tee")
        expect_ok(rc, out, err)


def test_first_line_of_resource_is_the_password():
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(PASSWORD + "\ntrailing\n")
    try:
        with kbs_double("--resource", f"{RESOURCE}=@{f.name}") as kbs:
            expect_ok(*probe(*trustee_args(kbs.url)))
    finally:
        os.unlink(f.name)


@pytest.mark.parametrize("version", ["0.1.0", "0.1.1", "0.2.0"])
def test_falls_back_to_older_protocol_by_itself(version):
    with kbs_double("--version", version, "--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        rc, out, err = probe(*trustee_args(kbs.url, "--log-level", "info"))
        expect_ok(rc, out, err)
        assert f"to={version}" in err, err
        assert kbs.stats()["auth"] == 2  # 0.4.0 refused, then the demanded version


def test_openanolis_version_mismatch_status_502_also_falls_back():
    with kbs_double("--version", "0.1.0", "--status-style", "openanolis",
                    "--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        expect_ok(*probe(*trustee_args(kbs.url)))


FAILURES = [
    (["--deny-policy"], "permission denied", ["policy denied", "PolicyDeny", "HTTP 401"]),
    (["--deny-policy", "--status-style", "openanolis"], "permission denied",
     ["policy denied", "HTTP 403"]),
    (["--wrong-nonce"], "permission denied", ["rejected the attestation", "nonce"]),
    (["--tamper-evidence"], "permission denied", ["rejected the attestation", "report_data"]),
    (["--expired-token"], "permission denied", ["token"]),
    (["--malformed-json", "auth"], "corrupt", ["/auth reply is not valid JSON"]),
    (["--malformed-json", "attest"], "corrupt", ["/attest reply is not valid JSON"]),
    (["--malformed-json", "resource"], "corrupt", ["resource reply is not valid JSON"]),
    (["--malformed-jwe"], "corrupt", ["JWE authentication failed"]),
    (["--version", "0.1.0", "--malformed-jwe"], "corrupt", ["JWE authentication failed"]),
    (["--missing"], "not found", ["no such resource", "HTTP 404"]),
    (["--fail-5xx", "-1"], "unavailable", ["server error", "HTTP 503"]),
]


@pytest.mark.parametrize("switches,errc,fragments", FAILURES,
                         ids=[" ".join(f[0]) for f in FAILURES])
def test_each_failure_gives_its_own_clear_error(switches, errc, fragments):
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}", *switches) as kbs:
        rc, out, err = probe(*trustee_args(kbs.url))
        expect_error(rc, out, errc, *fragments)
        assert (rc == 12) == (errc == "permission denied")
        assert PASSWORD not in out + err


def test_unreachable_trustee_is_retried_with_backoff_then_reported():
    url = f"http://127.0.0.1:{free_port()}/api"
    start = time.monotonic()
    rc, out, err = probe("--trustee-url", url, "--key-id", KEY_ID, "--attester", "sample",
                         "--insecure-allow-non-tee", "--key-retries", "3", "--retry-delay-ms",
                         "100")
    elapsed = time.monotonic() - start
    expect_error(rc, out, "unavailable", "gave up after 4 attempts", "cannot reach")
    assert 0.7 <= elapsed < 10, elapsed  # 100 + 200 + 400 ms of backoff, plus jitter
    assert err.count("retrying") == 3, err


def test_transient_5xx_is_retried_until_it_works():
    with kbs_double("--fail-5xx", "2", "--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        rc, out, err = probe("--trustee-url", kbs.url, "--key-id", KEY_ID, "--attester",
                             "sample", "--insecure-allow-non-tee", "--key-retries", "3",
                             "--retry-delay-ms", "20")
        expect_ok(rc, out, err)
        assert kbs.stats()["failed_5xx"] == 2


def test_sample_attester_is_refused_without_the_insecure_flag():
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        rc, out, _ = probe("--trustee-url", kbs.url, "--key-id", KEY_ID, "--attester", "sample")
        expect_error(rc, out, "permission denied", "--insecure-allow-non-tee")
        assert kbs.stats()["auth"] == 0


def test_auto_attester_outside_a_tee_needs_the_insecure_flag():
    rc, out, _ = probe("--trustee-url", "http://127.0.0.1:1", "--key-id", KEY_ID)
    expect_error(rc, out, "unsupported", "not a TDX guest")


def test_https_with_extra_ca_and_without(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    with kbs_double("--tls-cert", str(cert), "--tls-key", str(key), "--resource",
                    f"{RESOURCE}={PASSWORD}", scheme="https") as kbs:
        expect_ok(*probe(*trustee_args(kbs.url, "--trustee-ca", str(cert))))
        rc, out, _ = probe(*trustee_args(kbs.url))
        expect_error(rc, out, "permission denied", "TLS verification", "--trustee-ca")


def test_key_never_appears_in_debug_logs():
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        rc, out, err = probe(*trustee_args(kbs.url, "--log-level", "debug"))
        expect_ok(rc, out, err)
        assert "attested to Trustee" in err
        assert PASSWORD not in err and PASSWORD not in out


def test_cdh_socket_source():
    with cdh_double("--resource", f"{KEY_ID}={PASSWORD}") as socket_path:
        expect_ok(*probe("--cdh-socket", socket_path, "--key-id", KEY_ID))
        expect_ok(*probe("--cdh-socket", "unix://" + socket_path, "--key-id", RESOURCE))
        rc, out, _ = probe("--cdh-socket", socket_path, "--key-id", "kbs:///other/key/x",
                           "--key-retries", "0")
        expect_error(rc, out, "not found", "Confidential Data Hub", "404")
    with cdh_double("--fail-code", "13", "--fail-message",
                    "get resource failed: KBS 401: Access denied by policy") as socket_path:
        rc, out, _ = probe("--cdh-socket", socket_path, "--key-id", KEY_ID)
        expect_error(rc, out, "permission denied", "Access denied by policy")
    rc, out, _ = probe("--cdh-socket", "/nonexistent/cdh.sock", "--key-id", KEY_ID,
                       "--key-retries", "1", "--retry-delay-ms", "10")
    expect_error(rc, out, "unavailable", "cannot reach the Confidential Data Hub")


def test_extpass_source_gets_a_clean_environment(tmp_path):
    script = tmp_path / "askpass.sh"
    script.write_text("#!/bin/sh\n"
                      "[ -z \"$KEYAGENT_PARENT_SECRET\" ] || { echo leaked; exit 0; }\n"
                      f"echo '{PASSWORD}'\n")
    script.chmod(0o700)
    env = dict(os.environ, KEYAGENT_PARENT_SECRET="do-not-inherit")
    result = subprocess.run([os.environ.get("KEYAGENT_PROBE", "keyagent_probe"), "obtain",
                             "--extpass", str(script)], capture_output=True, text=True, env=env)
    expect_ok(result.returncode, result.stdout, result.stderr)
    result = subprocess.run([os.environ.get("KEYAGENT_PROBE", "keyagent_probe"), "obtain",
                             "--extpass", "false"], capture_output=True, text=True)
    expect_error(result.returncode, result.stdout, "I/O error", "exited with status 1")


def test_attest_diagnostic_reports_acceptance_but_never_the_key():
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}") as kbs:
        rc, out, err = probe(*trustee_args(kbs.url), mode="attest")
        assert rc == 0, out + err
        assert "tee: not a TDX guest" in out
        assert "attester sample: sample" in out
        assert "attestation accepted (KBS protocol 0.4.0, tee sample)" in out
        assert "cpu0: affirming" in out
        assert f"resource {RESOURCE}: released ({len(PASSWORD)} bytes; content not shown)" in out
        assert PASSWORD not in out + err
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}", "--tamper-evidence") as kbs:
        rc, out, _ = probe(*trustee_args(kbs.url), mode="attest")
        assert rc == 12, out
        assert "attestation FAILED" in out and "report_data mismatch" in out
    with kbs_double("--resource", f"{RESOURCE}={PASSWORD}", "--deny-policy") as kbs:
        rc, out, _ = probe(*trustee_args(kbs.url), mode="attest")
        assert rc == 12, out
        assert "attestation accepted" in out and "NOT released" in out

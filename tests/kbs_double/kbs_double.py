#!/usr/bin/env python3
"""A KBS (Trustee) test double for the cachefs key agent.

Implements the KBS attestation protocol 0.4.0 with the `sample` TEE (and `sampledevice`
additional evidence) as upstream Trustee does (shared/docs/kbs-protocol.md §1-2): /auth with an
exact version check, a 32-byte nonce and a `kbs-session-id` cookie; /attest that checks the nonce
and the JCS/SHA-384 report_data binding and issues an ES256 EAR-shaped JWT with an expiry; and
resource GETs that verify that token (cookie session or Bearer), apply a resource policy and seal
the secret to the attested tee-pubkey as a JWE. `--version 0.1.0|0.1.1|0.2.0` serves the legacy
layouts instead (RSA1_5 and the raw-JSON `protected` header for 0.1.x).

Failure switches simulate what the key agent must report clearly: --deny-policy, --wrong-nonce,
--tamper-evidence, --expired-token, --malformed-json STAGE, --malformed-jwe, --fail-5xx N,
--missing (any resource is absent), --status-style openanolis (403/500 instead of 401s).

Listens on 127.0.0.1 only (port 0 = any free port; https with --tls-cert/--tls-key) and prints "LISTENING <port>" on stdout once
ready. GET /double/stats returns request counters as JSON. Test use only: keys are ephemeral and
nothing is persisted.
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

ERROR_PREFIX = "https://github.com/confidential-containers/kbs/errors/"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jcs(obj):
    """RFC 8785 for the string-only objects of the runtime data."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def concat_kdf(z, alg, keybits):
    out = b""
    for counter in range(1, (keybits // 8 + 31) // 32 + 1):
        out += hashlib.sha256(counter.to_bytes(4, "big") + z + len(alg).to_bytes(4, "big")
                              + alg.encode() + bytes(8) + keybits.to_bytes(4, "big")).digest()
    return out[: keybits // 8]


def seal(jwk, payload, legacy):
    """Encrypts `payload` to the tee-pubkey JWK the way Trustee's jwe module does."""
    cek = os.urandom(32)
    iv = os.urandom(12)
    if jwk.get("kty") == "EC":
        if jwk.get("crv") != "P-256" or jwk.get("alg") != "ECDH-ES+A256KW":
            raise ValueError("unsupported EC tee-pubkey")
        peer = ec.EllipticCurvePublicNumbers(int.from_bytes(b64u_dec(jwk["x"]), "big"),
                                             int.from_bytes(b64u_dec(jwk["y"]), "big"),
                                             ec.SECP256R1()).public_key()
        eph = ec.generate_private_key(ec.SECP256R1())
        kek = concat_kdf(eph.exchange(ec.ECDH(), peer), "ECDH-ES+A256KW", 256)
        n = eph.public_key().public_numbers()
        header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM",
                  "epk": {"crv": "P-256", "kty": "EC", "x": b64u(n.x.to_bytes(32, "big")),
                          "y": b64u(n.y.to_bytes(32, "big"))}}
        wrapped = aes_key_wrap(kek, cek)
    elif jwk.get("kty") == "RSA":
        pub = rsa.RSAPublicNumbers(int.from_bytes(b64u_dec(jwk["e"]), "big"),
                                   int.from_bytes(b64u_dec(jwk["n"]), "big")).public_key()
        if jwk.get("alg") == "RSA-OAEP-256":
            wrapped = pub.encrypt(cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                    algorithm=hashes.SHA256(), label=None))
        elif jwk.get("alg") == "RSA1_5":
            wrapped = pub.encrypt(cek, padding.PKCS1v15())
        else:
            raise ValueError("unsupported RSA alg")
        header = {"alg": jwk["alg"], "enc": "A256GCM"}
    else:
        raise ValueError("unsupported tee-pubkey")
    if legacy:
        ct = AESGCM(cek).encrypt(iv, payload, None)
        return {"protected": json.dumps(header, separators=(",", ":")),
                "encrypted_key": b64u(wrapped), "iv": b64u(iv), "ciphertext": b64u(ct), "tag": ""}
    protected = b64u(json.dumps(header, separators=(",", ":")).encode())
    ct = AESGCM(cek).encrypt(iv, payload, protected.encode("ascii"))
    return {"protected": protected, "encrypted_key": b64u(wrapped), "iv": b64u(iv),
            "ciphertext": b64u(ct[:-16]), "tag": b64u(ct[-16:])}


class Kbs:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.sessions = {}  # id -> {"nonce", "expires", "token", "tee"}
        self.signer = ec.generate_private_key(ec.SECP256R1())
        self.resources = {}
        for spec in args.resource:
            name, _, value = spec.partition("=")
            if value.startswith("@"):
                with open(value[1:], "rb") as f:
                    self.resources[name] = f.read()
            else:
                self.resources[name] = value.encode()
        self.stats = {"auth": 0, "attest": 0, "resource": 0, "resource_ok": 0, "failed_5xx": 0}

    @property
    def legacy(self):
        return self.args.version.startswith("0.1.")

    # --- tokens -------------------------------------------------------------------------------
    def issue_token(self, tee, runtime_claims, evidence_claims):
        now = int(time.time())
        exp = now - 60 if self.args.expired_token else now + self.args.token_lifetime
        n = self.signer.public_key().public_numbers()
        header = {"typ": "JWT", "alg": "ES256",
                  "jwk": {"kty": "EC", "crv": "P-256", "alg": "ES256",
                          "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}}
        claims = {
            "eat_profile": "tag:github.com,2024:confidential-containers/Trustee",
            "iat": now, "exp": exp, "iss": "kbs-double",
            "ear.verifier-id": {"developer": "cachefs", "build": "kbs_double"},
            "submods": {"cpu0": {
                "ear.status": "affirming",
                "ear.trustworthiness-vector": {"hardware": 2, "configuration": 2,
                                               "executables": 3},
                "ear.appraisal-policy-id": "default_cpu",
                "ear.veraison.annotated-evidence": {"runtime_data_claims": runtime_claims,
                                                    tee: evidence_claims},
            }},
        }
        signing_input = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
        der = self.signer.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        return signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def verify_token(self, token):
        """The claims of a token this double issued and that has not expired, else None."""
        try:
            head, payload, sig = token.split(".")
            raw = b64u_dec(sig)
            der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                             int.from_bytes(raw[32:], "big"))
            self.signer.public_key().verify(der, (head + "." + payload).encode(),
                                            ec.ECDSA(hashes.SHA256()))
            claims = json.loads(b64u_dec(payload))
        except Exception:  # any malformed or forged token is simply not valid
            return None
        if claims.get("exp", 0) <= time.time():
            return None
        return claims


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kbs-double/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.kbs.args.verbose:
            sys.stderr.write("kbs-double: " + fmt % args + "\n")

    # --- plumbing -----------------------------------------------------------------------------
    def reply(self, status, body=b"", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def fail(self, status, variant, detail):
        self.reply(status, {"type": ERROR_PREFIX + variant, "detail": detail})

    def kbs_path(self):
        prefix = self.server.kbs.args.prefix.rstrip("/")
        path = self.path.split("?", 1)[0]
        if prefix and not path.startswith(prefix + "/"):
            return None
        return path[len(prefix):]

    def cookie_session(self):
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "kbs-session-id":
                return value
        return None

    def body_json(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > 2 * 1024 * 1024:
            raise ValueError("body too large")
        return json.loads(self.rfile.read(length))

    def maybe_5xx(self):
        kbs = self.server.kbs
        with kbs.lock:
            if kbs.args.fail_5xx != 0:
                if kbs.args.fail_5xx > 0:
                    kbs.args.fail_5xx -= 1
                kbs.stats["failed_5xx"] += 1
                return True
        return False

    # --- routes -------------------------------------------------------------------------------
    def do_GET(self):
        kbs = self.server.kbs
        if self.path == "/double/stats":
            with kbs.lock:
                return self.reply(200, dict(kbs.stats))
        if self.maybe_5xx():
            return self.reply(503, "service unavailable")
        path = self.kbs_path()
        if path is None or not path.startswith("/kbs/v0/resource/"):
            return self.reply(404, "")
        with kbs.lock:
            kbs.stats["resource"] += 1
        name = path[len("/kbs/v0/resource/"):]
        claims = None
        session = kbs.sessions.get(self.cookie_session() or "")
        if session and session.get("token"):
            claims = kbs.verify_token(session["token"])
        auth = self.headers.get("Authorization", "")
        if claims is None and auth.startswith("Bearer "):
            claims = kbs.verify_token(auth[7:])
        if claims is None:
            variant = "TokenVerifierError" if auth or session else "TokenNotFound"
            return self.fail(401, variant, "Token verification failed" if auth else
                             "Attestation Token not found")
        if kbs.args.deny_policy:
            status = 403 if kbs.args.status_style == "openanolis" else 401
            return self.fail(status, "PolicyDeny", "Access denied by policy")
        if kbs.args.missing or name not in kbs.resources:
            if kbs.args.status_style == "openanolis":
                return self.fail(500, "PluginInternalError", f"resource {name} not found")
            return self.fail(404, "PluginNotFound", f"resource {name} not found")
        if kbs.args.malformed_json == "resource":
            return self.reply(200, "{\"protected\": ")
        try:
            jwk = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"][
                "runtime_data_claims"]["tee-pubkey"]
            jwe = seal(jwk, kbs.resources[name], kbs.legacy)
        except (KeyError, ValueError) as e:
            return self.fail(401, "JweError", f"cannot seal to tee-pubkey: {e}")
        if kbs.args.malformed_jwe:
            tag_field = "ciphertext" if kbs.legacy else "tag"
            raw = bytearray(b64u_dec(jwe[tag_field]))
            raw[-1] ^= 0x01
            jwe[tag_field] = b64u(bytes(raw))
        with kbs.lock:
            kbs.stats["resource_ok"] += 1
        self.reply(200, jwe)

    def do_POST(self):
        kbs = self.server.kbs
        if self.maybe_5xx():
            return self.reply(503, "service unavailable")
        path = self.kbs_path()
        try:
            body = self.body_json()
        except ValueError:
            return self.fail(401, "SerdeError", "request body is not JSON")
        if path == "/kbs/v0/auth":
            return self.auth(body)
        if path == "/kbs/v0/attest":
            return self.attest(body)
        return self.reply(404, "")

    def auth(self, request):
        kbs = self.server.kbs
        with kbs.lock:
            kbs.stats["auth"] += 1
        if request.get("version") != kbs.args.version:
            status = 502 if kbs.args.status_style == "openanolis" else 401
            return self.fail(status, "AttestationError",
                             "Attestation error: RCAR handshake Auth failed: KBS Client Protocol "
                             f"Version Mismatch: expect ={kbs.args.version} while the request is "
                             f"{request.get('version')}")
        if request.get("tee") not in ("sample",):
            return self.fail(401, "AttestationError", f"no verifier for tee {request.get('tee')}")
        nonce = base64.b64encode(secrets.token_bytes(32)).decode()
        session_id = uuid.uuid4().hex
        kbs.sessions[session_id] = {"nonce": nonce, "expires": time.time() + 300, "token": None,
                                    "tee": request["tee"]}
        if kbs.args.malformed_json == "auth":
            return self.reply(200, "{\"nonce\": ")
        expires = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 300))
        self.reply(200, {"nonce": nonce, "extra-params": ""},
                   [("Set-Cookie", f"kbs-session-id={session_id}; Expires={expires}")])

    def attest(self, attestation):
        kbs = self.server.kbs
        with kbs.lock:
            kbs.stats["attest"] += 1
        session_id = self.cookie_session()
        session = kbs.sessions.get(session_id or "")
        if session is None or session["expires"] < time.time():
            return self.fail(401, "AttestationError", "session expired or unknown")
        expected_nonce = session["nonce"]
        if kbs.args.wrong_nonce:
            expected_nonce = base64.b64encode(secrets.token_bytes(32)).decode()
        try:
            if kbs.args.version == "0.4.0":
                runtime = attestation["runtime-data"]
                nonce, jwk = runtime["nonce"], runtime["tee-pubkey"]
                evidence = attestation["tee-evidence"]["primary_evidence"]
                additional = attestation["tee-evidence"]["additional_evidence"]
                if not isinstance(additional, str):
                    raise TypeError("additional_evidence must be a string")
                primary_rd = {"additional-evidence": additional, "nonce": nonce,
                              "tee-pubkey": jwk}
            else:
                # No nonce travels in these layouts: the server binds its own (a wrong one
                # shows up as a report_data mismatch).
                nonce = expected_nonce
                jwk = attestation["tee-pubkey"]
                evidence = attestation["tee-evidence"]
                if kbs.legacy:
                    evidence = json.loads(evidence)
                additional = ""
                primary_rd = {"nonce": nonce, "tee-pubkey": jwk}
        except (KeyError, TypeError, ValueError) as e:
            return self.fail(401, "AttestationError", f"malformed attestation: {e}")
        if nonce != expected_nonce:
            return self.fail(401, "AttestationError",
                             "Attestation error: runtime data nonce does not match the challenge")
        if kbs.legacy and jwk.get("alg") != "RSA1_5":
            return self.fail(401, "AttestationError", "protocol 0.1.x needs an RSA1_5 key")
        expected = hashlib.sha384(jcs(primary_rd)).digest()
        try:
            got = base64.b64decode(evidence["report_data"], validate=True)
        except (KeyError, ValueError, TypeError):
            return self.fail(401, "AttestationError", "sample evidence without report_data")
        if kbs.args.tamper_evidence:
            got = bytes([got[0] ^ 0x80]) + got[1:]
        if got != expected:
            return self.fail(401, "AttestationError",
                             "Attestation error: sample verifier: report_data mismatch")
        if additional:
            try:
                devices = json.loads(additional)
            except ValueError:
                return self.fail(401, "AttestationError", "additional evidence is not JSON")
            device_digest = hashlib.sha384(jcs({"nonce": nonce, "tee-pubkey": jwk})).digest()
            for tee, dev in devices.items():
                if tee != "sampledevice":
                    return self.fail(401, "AttestationError", f"no verifier for device {tee}")
                if base64.b64decode(dev.get("report_data", "")) != device_digest:
                    return self.fail(401, "AttestationError",
                                     "sampledevice verifier: report_data mismatch")
        runtime_claims = {"nonce": nonce, "tee-pubkey": jwk}
        if kbs.args.version == "0.4.0":
            runtime_claims["additional-evidence"] = additional
        token = kbs.issue_token("sample", runtime_claims,
                                {"svn": evidence.get("svn"), "report_data": evidence["report_data"],
                                 "launch_digest": "abcde", "debug": False})
        session["token"] = token
        if kbs.args.malformed_json == "attest":
            return self.reply(200, "{\"token\": \"" + token)
        self.reply(200, {"token": token},
                   [("Set-Cookie", f"kbs-session-id={session_id}")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefix", default="", help="path prefix, e.g. /api (trustee-gateway)")
    parser.add_argument("--resource", action="append", default=[],
                        help="repo/type/tag=VALUE or repo/type/tag=@FILE (repeatable)")
    parser.add_argument("--version", default="0.4.0", choices=["0.4.0", "0.2.0", "0.1.1", "0.1.0"])
    parser.add_argument("--deny-policy", action="store_true")
    parser.add_argument("--wrong-nonce", action="store_true")
    parser.add_argument("--tamper-evidence", action="store_true")
    parser.add_argument("--expired-token", action="store_true")
    parser.add_argument("--malformed-json", choices=["auth", "attest", "resource"])
    parser.add_argument("--malformed-jwe", action="store_true")
    parser.add_argument("--missing", action="store_true", help="every resource is absent")
    parser.add_argument("--fail-5xx", type=int, default=0,
                        help="answer the first N requests with 503 (-1: all)")
    parser.add_argument("--status-style", choices=["upstream", "openanolis"], default="upstream")
    parser.add_argument("--token-lifetime", type=int, default=300)
    parser.add_argument("--tls-cert", help="serve https with this PEM certificate")
    parser.add_argument("--tls-key", help="and this PEM key")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.kbs = Kbs(args)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A fault-injecting HTTP reverse proxy for the origin tests (127.0.0.1 only).

Forwards GET requests to an upstream server and, on a fixed schedule, breaks some of them:
  reset     close the connection without an answer (RST via SO_LINGER 0)
  500, 503  answer with that status
  stall     send the headers and part of the body, then go quiet for --stall-seconds
  truncate  send the headers (full Content-Length) and half of the body, then close
  412       answer 412 Precondition Failed (as a server whose object changed)
  etag      pass the answer through with a different ETag header
The schedule: request number n (from 1) gets fault FAULTS[(k) % len(FAULTS)] when
n % EVERY == 0, the k-th such request, until --max-faults faults have been injected; other
requests pass through untouched. Only ranged GETs are faulted unless --fault-all is given.
With --verify-sigv4 ACCESS_KEY:SECRET:REGION every request must carry an AWS SigV4
Authorization that botocore computes identically (s3rver itself does not check V4 signatures);
others get 403 SignatureDoesNotMatch. With --tls CERT:KEY it serves HTTPS.
Prints "READY <port>" on stdout once listening; every request is logged to --log as a JSON
line (kind, Host header, path, query).
"""
import argparse
import http.client
import http.server
import json
import socket
import ssl
import struct
import sys
import threading
import time
from urllib.parse import urlsplit


def sigv4_matches(method, path, headers, access_key, secret, region):
    """Recomputes the request's signature with botocore from the headers it signed."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    if not parts.get("Credential", "").startswith(access_key + "/"):
        return False
    signed = parts["SignedHeaders"].split(";")
    req = AWSRequest(method=method, url="http://" + headers["Host"] + path,
                     headers={h: headers[h] for h in signed if h != "host"})
    req.context["timestamp"] = headers["X-Amz-Date"]
    signer = S3SigV4Auth(Credentials(access_key, secret, headers.get("X-Amz-Security-Token")),
                         "s3", region)
    canonical = signer.canonical_request(req)
    signature = signer.signature(signer.string_to_sign(req, canonical), req)
    return signature == parts.get("Signature")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="host:port")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--faults", default="reset,500,503,stall,truncate")
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--max-faults", type=int, default=1000)
    ap.add_argument("--stall-seconds", type=float, default=30)
    ap.add_argument("--fault-all", action="store_true")
    ap.add_argument("--log", default="")
    ap.add_argument("--verify-sigv4", default="", help="ACCESS_KEY:SECRET:REGION")
    ap.add_argument("--tls", default="", help="CERT:KEY: serve HTTPS with this certificate")
    args = ap.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    lock = threading.Lock()
    state = {"requests": 0, "ranged": 0, "faults": 0}
    log = open(args.log, "a") if args.log else None

    def record(kind, request):
        """One event per request: what was done, and the Host and path it came with."""
        if log:
            path, _, query = request.path.partition("?")
            event = {"t": time.time(), "kind": kind, "host": request.headers.get("Host"),
                     "path": path, "query": query}
            with lock:
                log.write(json.dumps(event) + "\n")
                log.flush()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def setup(self):
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # the client's delayed ACK hold every small answer back for 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self):
            ranged = "Range" in self.headers
            with lock:
                state["requests"] += 1
                state["ranged"] += ranged
                n = state["requests"]
                fault = None
                if (ranged or args.fault_all) and faults and n % args.every == 0 \
                        and state["faults"] < args.max_faults:
                    fault = faults[state["faults"] % len(faults)]
                    state["faults"] += 1
            if args.verify_sigv4:
                ak, sk, region = args.verify_sigv4.split(":")
                if not sigv4_matches("GET", self.path, self.headers, ak, sk, region):
                    record("badsig", self)
                    body = b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
                    self.send_response(403)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
            record(fault or ("range" if ranged else "get"), self)
            if fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fault in ("500", "503", "412"):
                body = b"<Error><Code>Injected</Code><Message>fault proxy</Message></Error>"
                self.send_response(int(fault))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            upstream = http.client.HTTPConnection(args.upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request("GET", self.path, headers=headers)
            resp = upstream.getresponse()
            data = resp.read()
            upstream.close()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() in ("connection", "transfer-encoding", "content-length"):
                    continue
                if k.lower() == "etag" and fault == "etag":
                    v = '"changed-' + v.strip('"') + '"'
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if fault == "stall":
                self.wfile.write(data[: len(data) // 4])
                self.wfile.flush()
                time.sleep(args.stall_seconds)
                self.close_connection = True
                return
            if fault == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls.split(":"))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        sys.stdout.write(json.dumps(state) + "\n")


if __name__ == "__main__":
    main()

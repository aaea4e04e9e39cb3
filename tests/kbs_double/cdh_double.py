#!/usr/bin/env python3
"""A Confidential Data Hub test double: serves api.GetResourceService/GetResource over ttrpc on a
Unix socket, as guest-components' CDH does (shared/docs/kbs-protocol.md §5.1-5.2).

  cdh_double.py --socket PATH --resource kbs:///repo/type/tag=VALUE [--fail-code N --fail-message M]

Prints "LISTENING <path>" once ready. Test use only.
"""
import argparse
import os
import socket
import struct
import sys
import threading


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def read_varint(data, i):
    """(value, index after it) of the base-128 varint at data[i]."""
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def parse(data):
    """{field number: value} of a protobuf message (last occurrence wins)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            length, i = read_varint(data, i)
            value = data[i:i + length]
            i += length
        else:
            raise ValueError(f"wire type {wire}")
        fields[number] = value
    return fields


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def serve(conn, args, resources):
    with conn:
        try:
            header = recv_exact(conn, 10)
            length, stream, msg_type, _flags = struct.unpack(">IIBB", header)
            request = parse(recv_exact(conn, length))
        except (EOFError, ValueError, IndexError):
            return
        service = request.get(1, b"").decode()
        method = request.get(2, b"").decode()
        inner = parse(request.get(3, b""))
        path = inner.get(1, b"").decode()
        if args.fail_code:
            status = varint(1 << 3 | 0) + varint(args.fail_code) + field_bytes(
                2, args.fail_message.encode())
            response = field_bytes(1, status)
        elif msg_type != 1 or service != "api.GetResourceService" or method != "GetResource":
            status = varint(1 << 3) + varint(12) + field_bytes(2, b"unimplemented")
            response = field_bytes(1, status)
        elif path not in resources:
            status = varint(1 << 3) + varint(13) + field_bytes(
                2, f"get resource failed: {path}: 404 not found".encode())
            response = field_bytes(1, status)
        else:
            response = field_bytes(2, field_bytes(1, resources[path]))
        conn.sendall(struct.pack(">IIBB", len(response), stream, 2, 0) + response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--resource", action="append", default=[])
    parser.add_argument("--fail-code", type=int, default=0)
    parser.add_argument("--fail-message", default="")
    args = parser.parse_args()
    resources = {}
    for spec in args.resource:
        uri, _, value = spec.partition("=")
        resources[uri] = value.encode()
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen(8)
    print(f"LISTENING {args.socket}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, args, resources), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

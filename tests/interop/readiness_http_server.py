#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""select_http_server against real HTTP clients (CPython's http.client and
curl) and against clients that misbehave: disconnect early, send garbage,
send the request head in slow pieces, reset, or send an endless head. The
server must answer every real request correctly, survive the rest, and exit
by itself after --count answers.

usage: readiness_http_server.py SERVER_BINARY [CURL_BINARY]"""
import http.client
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from readiness_common import Server, check, fail  # noqa: E402

BODY = b"Aha, Hello"
CONCURRENT = 20


def get(host, port, path="/"):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def raw_exchange(host, port, data, timeout=10):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def main():
    binary = sys.argv[1]
    curl = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    answers = 1 + (1 if curl else 0) + 1 + 2 + CONCURRENT + 1
    server = Server([binary, "--port", "0", "--count", str(answers)])
    host, port = server.host, server.port
    try:
        # 1. CPython's http.client.
        resp, body = get(host, port, "/index.html")
        check(resp.status == 200 and resp.reason == "OK", "http.client: 200 OK")
        check(resp.version == 10, "http.client: HTTP/1.0 response")
        check(resp.getheader("Content-Type") == "text/plain; charset=utf-8",
              "http.client: Content-Type text/plain; charset=utf-8")
        check(body == BODY, "http.client: body 'Aha, Hello'")

        # 2. curl.
        if curl:
            out = subprocess.run([curl, "-sS", "-i", "--max-time", "10",
                                  f"http://{host}:{port}/curl"],
                                 capture_output=True, check=True).stdout
            check(out.startswith(b"HTTP/1.0 200 OK\r\n"), "curl: status line")
            check(b"Content-Type: text/plain; charset=utf-8\r\n" in out, "curl: header")
            check(out.endswith(b"\r\n\r\n" + BODY), "curl: body")
        else:
            print("note: curl not found; curl client skipped")

        # 3. Clients that give up: connect and close at once; half a request
        #    line then close; a reset (SO_LINGER 0) in the middle of a head.
        socket.create_connection((host, port), timeout=10).close()
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET / HT")
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

        # 4. Garbage with a blank line: answered 400, not crashed on.
        out = raw_exchange(host, port, b"\x00\xff\xfe garbage\r\n\r\n")
        check(out.startswith(b"HTTP/1.0 400 Bad Request\r\n"), "garbage: 400 Bad Request")

        # 5. An endless head (no blank line within 64 KiB): dropped, no answer.
        with socket.create_connection((host, port), timeout=10) as s:
            # The server drops us with our bytes unread, so the kernel may
            # answer the rest of the sendall, or the recv, with a reset or EPIPE.
            try:
                s.sendall(b"GET /" + b"a" * (100 * 1024))
                rest = s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                rest = b""
            check(rest == b"", "oversized head: connection dropped without an answer")

        # 6. A slow client sending its head in pieces does not block another
        #    client, and is answered only once its head is complete.
        slow = socket.create_connection((host, port), timeout=10)
        slow.sendall(b"GET /sl")
        time.sleep(0.1)
        slow.sendall(b"ow HTTP/1.1\r\nHost: x\r\n")
        resp, body = get(host, port, "/fast")
        check(resp.status == 200 and body == BODY,
              "a second client is served while the first one's head is incomplete")
        slow.settimeout(0.3)
        try:
            early = slow.recv(100)
        except socket.timeout:
            early = None
        check(early is None, "no answer before the head's blank line")
        slow.settimeout(10)
        slow.sendall(b"\r\n")
        out = b""
        while True:
            chunk = slow.recv(4096)
            if not chunk:
                break
            out += chunk
        slow.close()
        check(out.startswith(b"HTTP/1.0 200 OK\r\n") and out.endswith(BODY),
              "slow client answered after its blank line, then closed")

        # 7. Many clients at once.
        results = []

        def worker(i):
            try:
                r, b = get(host, port, f"/c{i}")
                results.append(r.status == 200 and b == BODY)
            except Exception as e:  # noqa: BLE001 - reported as a failure below
                print(f"client {i}: {e!r}", file=sys.stderr)
                results.append(False)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        check(len(results) == CONCURRENT and all(results),
              f"{CONCURRENT} concurrent http.client requests answered")

        # 8. Still alive after all that; this is the last answer it owes.
        resp, body = get(host, port, "/last")
        check(resp.status == 200 and body == BODY, "answers after the misbehaving clients")
    except SystemExit:
        server.kill()
        raise
    except Exception as e:  # noqa: BLE001
        server.kill()
        fail(f"{e!r}\nserver output:\n{server.output()}")
    status = server.wait()
    check(status == 0, f"server exited by itself with status 0 after --count {answers}")


if __name__ == "__main__":
    main()

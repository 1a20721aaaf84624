#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""selectors_echo_server against real clients, each verifying its bytes.

usage: readiness_echo_server.py cpython SERVER_BINARY
       readiness_echo_server.py pysock  SERVER_BINARY ECHO_LOAD_BINARY

cpython: CPython sockets — a simple echo, 20 concurrent clients with random
  message sizes, a 4 MiB payload written while it is being read back (partial
  writes and backpressure on the server), a half-close (the echo must be
  flushed before the server closes), and a reset in the middle of a
  transfer; the server must serve a last client afterwards.
pysock: 200 concurrent pysock clients (bench/echo_load.cpp) doing 20 round
  trips of 1000 bytes each, then 4 clients with 2 MB messages.
Either way the server must exit by itself once --count connections closed."""
import hashlib
import os
import random
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from readiness_common import Server, check, fail  # noqa: E402


def recv_exactly(s, n):
    chunks, got = [], 0
    while got < n:
        chunk = s.recv(min(n - got, 1 << 16))
        if not chunk:
            raise EOFError(f"EOF after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def echo_once(addr, payload):
    with socket.create_connection(addr, timeout=20) as s:
        s.sendall(payload)
        return recv_exactly(s, len(payload))


def cpython_clients(addr):
    connections = 0

    check(echo_once(addr, b"hello") == b"hello", "simple echo")
    connections += 1

    # Concurrent clients, random sizes, each checks its own bytes.
    failures = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            with socket.create_connection(addr, timeout=20) as s:
                for _ in range(100):
                    msg = rng.randbytes(rng.randint(1, 5000))
                    s.sendall(msg)
                    if recv_exactly(s, len(msg)) != msg:
                        failures.append(f"client {seed}: bytes differ")
                        return
        except Exception as e:  # noqa: BLE001 - collected and reported
            failures.append(f"client {seed}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not failures, f"20 concurrent CPython clients x 100 messages ({failures[:3]})")
    connections += 20

    # A large payload written and read at the same time.
    payload = random.Random(7).randbytes(4 * 1024 * 1024)
    with socket.create_connection(addr, timeout=30) as s:
        received = []
        reader = threading.Thread(target=lambda: received.append(recv_exactly(s, len(payload))))
        reader.start()
        s.sendall(payload)
        reader.join(60)
        check(received and hashlib.sha256(received[0]).digest() == hashlib.sha256(payload).digest(),
              "4 MiB echoed intact (partial writes, write interest, backpressure)")
    connections += 1

    # Half-close: all of the echo arrives, then EOF.
    with socket.create_connection(addr, timeout=20) as s:
        msg = b"x" * 200_000
        reader_out = []
        reader = threading.Thread(target=lambda: reader_out.append(recv_exactly(s, len(msg))))
        reader.start()
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        reader.join(30)
        check(reader_out and reader_out[0] == msg, "half-closed client gets its whole echo")
        check(s.recv(10) == b"", "then the server closes (EOF)")
    connections += 1

    # Reset in the middle of a transfer, without reading the echo.
    s = socket.create_connection(addr, timeout=20)
    try:
        s.sendall(b"r" * (1024 * 1024))
    except OSError:
        pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    connections += 1

    check(echo_once(addr, b"still alive") == b"still alive", "served after a peer reset")
    connections += 1
    return connections


def main():
    mode, binary = sys.argv[1], sys.argv[2]
    if mode == "cpython":
        expected = 25
    elif mode == "pysock":
        load = sys.argv[3]
        expected = 204
    else:
        fail(f"unknown mode {mode}")
    server = Server([binary, "--port", "0", "--count", str(expected)])
    addr = (server.host, server.port)
    try:
        if mode == "cpython":
            n = cpython_clients(addr)
            check(n == expected, f"{n} connections made")
        else:
            for conns, msgs, size in ((200, 20, 1000), (4, 3, 2_000_000)):
                r = subprocess.run([load, "--port", str(server.port), "--connections", str(conns),
                                    "--messages", str(msgs), "--size", str(size)],
                                   capture_output=True, text=True, timeout=60)
                print(r.stdout.strip(), r.stderr.strip())
                check(r.returncode == 0 and f"messages={conns * msgs} " in r.stdout,
                      f"{conns} pysock clients x {msgs} messages of {size} bytes verified")
    except SystemExit:
        server.kill()
        raise
    except Exception as e:  # noqa: BLE001
        server.kill()
        fail(f"{e!r}\nserver output:\n{server.output()}")
    status = server.wait()
    check(status == 0, f"server exited by itself with status 0 after --count {expected}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end checks of the tutorial's programs (examples/) and of pysock
against real peers: CPython's own socket module and nc.

    core_interop.py echo-pair          ECHO_SERVER ECHO_CLIENT
    core_interop.py echo-server-serial ECHO_SERVER
    core_interop.py socketpair-fork    SOCKETPAIR_FORK
    core_interop.py python-client      ECHO_SERVER
    core_interop.py python-server      ECHO_CLIENT
    core_interop.py nc-client          ECHO_SERVER [NC]

Loopback only; every socket has a timeout and every child process a deadline.
Exit 0: passed, 1: failed (the reason is printed), 77: skipped.
"""
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

HOST = "127.0.0.1"
TIMEOUT = 10.0  # seconds, for every socket and every child process
SKIP = 77


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect_equal(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}: {got!r}")


class EchoServer:
    """examples/echo_server on a kernel-chosen port; killed at exit if still
    running, so a failed check never leaves a server behind."""

    def __init__(self, program, count):
        self.proc = subprocess.Popen(
            [program, HOST, "0", "--count", str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        atexit.register(self.stop)
        # The server prints one line once it listens: "... listening on 127.0.0.1:PORT".
        line = self._read_line_with_deadline()
        match = re.search(r"listening on (\S+):(\d+)\s*$", line)
        if not match:
            self.stop()
            fail(f"echo_server did not report where it listens; it printed {line!r}")
        self.host, self.port = match.group(1), int(match.group(2))
        if self.host != HOST or self.port == 0:
            self.stop()
            fail(f"echo_server reported {self.host}:{self.port}, want {HOST} and a real port")

    def _read_line_with_deadline(self):
        result = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        if not result:
            self.stop()
            fail("echo_server printed nothing within the deadline")
        return result[0]

    def wait(self):
        """Waits for the server to exit by itself (after --count connections)."""
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            fail("echo_server did not exit after serving --count connections")
        err = self.proc.stderr.read()
        if self.proc.returncode != 0:
            fail(f"echo_server exited with {self.proc.returncode}: {err}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(argv, what):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        fail(f"{what} did not finish within {TIMEOUT} s")
    if done.returncode != 0:
        fail(f"{what} exited with {done.returncode}; stderr: {done.stderr!r}")
    return done.stdout


def python_echo_exchange(port, payload):
    """The tutorial's client, in CPython: send everything, shut down the
    sending side, read until the server closes."""
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def echo_pair(server_program, client_program):
    server = EchoServer(server_program, count=1)
    out = run([client_program, HOST, str(server.port)], "echo_client")
    server.wait()
    expect_equal("echo_client output", out, "Hello, World\n")


def echo_server_serial(server_program):
    # Three clients one after another, the last one bigger than any socket
    # buffer, so the server's recv loop and sendall must both loop.
    payloads = [b"first", b"", os.urandom(1 << 20)]
    server = EchoServer(server_program, count=len(payloads))
    try:
        for index, payload in enumerate(payloads):
            got = python_echo_exchange(server.port, payload)
            if got != payload:
                fail(f"client {index}: sent {len(payload)} bytes, got back {len(got)} "
                     f"bytes{'' if len(got) != len(payload) else ' that differ'}")
            print(f"ok: client {index}: {len(payload)} bytes echoed")
    except OSError as e:
        fail(f"talking to echo_server: {e!r}")
    server.wait()


def socketpair_fork(program):
    out = run([program], "socketpair_fork")
    expect_equal("socketpair_fork output", out, "read:hello china\n")


def python_client(server_program):
    payload = "Grüße from CPython's socket module\n".encode() * 100
    server = EchoServer(server_program, count=1)
    try:
        got = python_echo_exchange(server.port, payload)
    except OSError as e:
        fail(f"CPython client: {e!r}")
    server.wait()
    expect_equal("bytes echoed to the CPython client", got, payload)


def python_server(client_program):
    """The tutorial's server, in CPython, serving one pysock client."""
    received = []
    errors = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.settimeout(TIMEOUT)
        listener.bind((HOST, 0))
        listener.listen(5)
        port = listener.getsockname()[1]

        def serve():
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    data = bytes()
                    while True:
                        temp = conn.recv(1024)
                        if not temp:
                            break
                        data += temp
                    received.append(data)
                    conn.sendall(data.upper())  # upper: proves the answer came from here
            except OSError as e:
                errors.append(e)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        out = run([client_program, HOST, str(port), "hello from pysock"], "echo_client")
        thread.join(TIMEOUT)
    if errors:
        fail(f"CPython server: {errors[0]!r}")
    expect_equal("what the CPython server received", received, [b"hello from pysock"])
    expect_equal("echo_client output", out, "HELLO FROM PYSOCK\n")


def nc_client(server_program, nc=None):
    nc = nc if nc and not nc.endswith("NOTFOUND") else shutil.which("nc")
    if not nc:
        print("SKIP: nc not found (Debian package netcat-openbsd)")
        sys.exit(SKIP)
    # -N (shut down the sending side at EOF of stdin) is OpenBSD nc's; the
    # traditional nc has no such flag and would never let the server answer.
    usage = subprocess.run([nc, "-h"], capture_output=True, text=True, timeout=TIMEOUT)
    if "-N" not in usage.stdout + usage.stderr:
        print(f"SKIP: {nc} is not netcat-openbsd (no -N option)")
        sys.exit(SKIP)
    server = EchoServer(server_program, count=1)
    try:
        done = subprocess.run([nc, "-N", "-w", str(int(TIMEOUT)), HOST, str(server.port)],
                              input=b"hello from nc\n", capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("nc did not finish")
    server.wait()
    expect_equal("bytes echoed to nc", done.stdout, b"hello from nc\n")


COMMANDS = {
    "echo-pair": echo_pair,
    "echo-server-serial": echo_server_serial,
    "socketpair-fork": socketpair_fork,
    "python-client": python_client,
    "python-server": python_server,
    "nc-client": nc_client,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
    print("passed")

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end runs of the event-loop examples, with CPython's socket module as
the peer. Every wait is bounded; a failure prints what the programs said.

    loop_examples.py echo-pair SERVER CLIENT
    loop_examples.py echo-python-clients SERVER
    loop_examples.py echo-sigterm SERVER
    loop_examples.py echo-threads SERVER
    loop_examples.py chat SERVER
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 20


def start(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    line = proc.stdout.readline()  # "... listening on 127.0.0.1:PORT"
    m = re.search(r"listening on .*:(\d+)$", line.strip())
    if not m or time.monotonic() > deadline:
        proc.kill()
        out, err = proc.communicate()
        sys.exit(f"server did not report its port: {line!r} {out!r} {err!r}")
    return proc, int(m.group(1))


def finish(proc, expect_rc=0):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        sys.exit(f"server did not exit in time\nstdout: {out}\nstderr: {err}")
    if proc.returncode != expect_rc:
        sys.exit(f"server exit status {proc.returncode}, expected {expect_rc}\nstdout: {out}\nstderr: {err}")
    return out


def echo_once(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if data != payload:
        raise AssertionError(f"echo mismatch: sent {len(payload)} bytes, got {len(data)}")


def echo_pair(server, client):
    proc, port = start([server, "127.0.0.1", "0", "--count", "1"])
    res = subprocess.run([client, "127.0.0.1", str(port)], capture_output=True, text=True, timeout=TIMEOUT)
    if res.returncode != 0 or "Received Hello, World" not in res.stdout:
        proc.kill()
        sys.exit(f"client failed: rc={res.returncode} out={res.stdout!r} err={res.stderr!r}")
    out = finish(proc)
    if "stopped after 1 connection" not in out:
        sys.exit(f"unexpected server output: {out!r}")


def run_clients(port, count, size_of):
    errors = []

    def worker(i):
        try:
            echo_once(port, os.urandom(size_of(i)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    if errors:
        sys.exit("\n".join(errors))


def echo_python_clients(server):
    proc, port = start([server, "127.0.0.1", "0", "--count", "20"])
    run_clients(port, 20, lambda i: 1 + i * 37_000)  # up to 700 KB: back-pressure in the server
    out = finish(proc)
    if "stopped after 20 connection" not in out:
        sys.exit(f"unexpected server output: {out!r}")


def echo_sigterm(server):
    proc, port = start([server, "127.0.0.1", "0"])
    echo_once(port, b"before the signal")
    proc.send_signal(signal.SIGTERM)
    out = finish(proc, 0)
    if "stopped after 1 connection" not in out:
        sys.exit(f"unexpected server output: {out!r}")


def echo_threads(server):
    proc, port = start([server, "127.0.0.1", "0", "--threads", "2"])
    run_clients(port, 40, lambda i: 100 + i)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc, 0)
    if "stopped" not in out:
        sys.exit(f"unexpected server output: {out!r}")


class ChatClient:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")
        welcome = self.line()
        m = re.fullmatch(r"welcome (\S+)", welcome)
        if not m:
            raise AssertionError(f"bad welcome {welcome!r}")
        self.name = m.group(1)

    def line(self):
        return self.file.readline().decode().rstrip("\n")

    def expect(self, text):
        got = self.line()
        if got != text:
            raise AssertionError(f"expected {text!r}, got {got!r}")

    def send(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def close(self):
        self.file.close()
        self.sock.close()


def chat(server):
    proc, port = start([server, "127.0.0.1", "0", "--count", "3"])
    try:
        a = ChatClient(port)
        b = ChatClient(port)
        a.expect(f"{b.name} joined")
        c = ChatClient(port)
        a.expect(f"{c.name} joined")
        b.expect(f"{c.name} joined")
        a.send("hello room")
        b.expect(f"{a.name}: hello room")
        c.expect(f"{a.name}: hello room")
        b.close()  # its writer coroutine is cancelled on the server
        a.expect(f"{b.name} left")
        c.expect(f"{b.name} left")
        c.send("bye")
        a.expect(f"{c.name}: bye")
        c.close()
        a.expect(f"{c.name} left")
        a.close()
    except Exception:
        proc.kill()
        out, err = proc.communicate()
        print(f"server stdout: {out}\nserver stderr: {err}", file=sys.stderr)
        raise
    out = finish(proc)
    if "stopped after 3 departure" not in out:
        sys.exit(f"unexpected server output: {out!r}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "echo-pair": echo_pair,
        "echo-python-clients": echo_python_clients,
        "echo-sigterm": echo_sigterm,
        "echo-threads": echo_threads,
        "chat": chat,
    }[cmd](*args)
    print(f"{cmd}: ok")


if __name__ == "__main__":
    main()

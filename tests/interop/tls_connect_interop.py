#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# `pysock connect --tls` against `openssl s_server` on loopback, with the
# certificates of tests/interop/ssl_make_certs.sh. Exit 0: passed, 1: failed
# (the reason is printed), 77: skipped (no openssl command).
#
#   tls_connect_interop.py PYSOCK CASE
#     echo        stdin goes out over TLS, s_server -rev's answer comes back,
#                 exit 0 once s_server closes after our close_notify
#     unknown-ca  the system store does not trust the test CA: exit 1 and
#                 "certificate verify failed" with the verify code
#     wrong-name  --servername other.example: a hostname mismatch, exit 1
#     no-verify   --no-verify talks to the same server without the CA
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


def start_s_server(certs):
    # Port 0: the kernel picks, and s_server names it in its "ACCEPT
    # 127.0.0.1:PORT" line once it listens. (A port probed free and handed
    # over could be taken by another test's socket first, and a connect
    # probe to a port nobody listens on yet can even connect to itself.)
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
         os.path.join(certs, "localhost.pem"), "-key", os.path.join(certs, "localhost.key"),
         "-rev"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([server.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(server.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        match = re.search(rb"^ACCEPT 127\.0\.0\.1:(\d+)\r?\n", seen, re.M)
        if match:
            return server, int(match.group(1))
    server.kill()
    server.wait()
    fail(f"openssl s_server did not report a listening port: {seen!r}")


def run_client(pysock, args, stdin):
    return subprocess.run([pysock, "connect", "--tls", *args], input=stdin,
                          capture_output=True, timeout=20)


def main():
    pysock, case = sys.argv[1], sys.argv[2]
    if shutil.which("openssl") is None:
        print("SKIP: the openssl command is not installed")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory(prefix="pysock-tls-connect.") as tmp:
        certs = os.path.join(tmp, "certs")
        subprocess.run(["sh", os.path.join(HERE, "ssl_make_certs.sh"), certs], check=True,
                       capture_output=True, timeout=60)
        ca = os.path.join(certs, "ca.pem")
        server, port = start_s_server(certs)
        try:
            if case == "echo":
                r = run_client(pysock, ["--cafile", ca, "--servername", "localhost",
                                        "127.0.0.1", str(port)], b"hello over tls\nline two\n")
                if r.returncode != 0:
                    fail(f"exit {r.returncode}: {r.stderr!r}")
                if r.stdout != b"slt revo olleh\nowt enil\n":
                    fail(f"stdout {r.stdout!r}")
                if b"TLSv1.3" not in r.stderr:
                    fail(f"stderr does not name the protocol: {r.stderr!r}")
            elif case == "unknown-ca":
                r = run_client(pysock, ["127.0.0.1", str(port)], b"x\n")
                if r.returncode != 1:
                    fail(f"exit {r.returncode}, expected 1: {r.stderr!r}")
                if b"certificate verify failed" not in r.stderr or b"verify code 20" not in r.stderr:
                    fail(f"stderr {r.stderr!r}")
                if r.stdout:
                    fail(f"stdout {r.stdout!r}")
            elif case == "wrong-name":
                r = run_client(pysock, ["--cafile", ca, "--servername", "other.example",
                                        "127.0.0.1", str(port)], b"x\n")
                if r.returncode != 1:
                    fail(f"exit {r.returncode}, expected 1: {r.stderr!r}")
                if b"Hostname mismatch, certificate is not valid for 'other.example'" not in r.stderr:
                    fail(f"stderr {r.stderr!r}")
            elif case == "no-verify":
                r = run_client(pysock, ["--no-verify", "127.0.0.1", str(port)], b"abc\n")
                if r.returncode != 0 or r.stdout != b"cba\n":
                    fail(f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}")
            else:
                fail("unknown case " + case)
        finally:
            server.kill()
            server.wait()
    print("PASS")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of `pysock http.server --certfile F --keyfile F` (HTTPS on
the event loop transport, --ciphers/--ciphersuites) with curl --cacert,
`openssl s_client` and CPython's urllib and ssl, against
certificates made here by the openssl command (ssl_make_certs.sh).

Usage: https_interop.py CASE PYSOCK_BINARY [CURL]
Exit 0 = pass, 1 = fail, 77 = skipped (openssl or curl missing, or pysock
built without TLS), always with the reason printed. Loopback only; every wait
bounded. The server, its document root and its stop (SIGTERM, exit 0) are
http_interop.py's.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_interop import SKIP, TIMEOUT, Failure, Server, expect, read_response, wait_closed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Certs:
    """The test CA and a localhost/127.0.0.1 certificate it signed."""

    def __init__(self):
        self.parent = tempfile.mkdtemp(prefix="pysock-https-certs.")
        self.dir = os.path.join(self.parent, "certs")
        r = subprocess.run(["sh", os.path.join(HERE, "ssl_make_certs.sh"), self.dir],
                           capture_output=True, timeout=60)
        expect(r.returncode == 0, f"ssl_make_certs.sh failed: {r.stderr!r}")
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "localhost.pem")
        self.key = os.path.join(self.dir, "localhost.key")
        self.rogue_key = os.path.join(self.dir, "rogue.key")

    def cleanup(self):
        shutil.rmtree(self.parent, ignore_errors=True)


def https_server(binary, certs, *extra):
    return Server(binary, "--certfile", certs.cert, "--keyfile", certs.key, *extra)


def https_url(srv, path, host="127.0.0.1"):
    return f"https://{host}:{srv.port}{path}"


def curl(curl_binary, *args):
    return subprocess.run([curl_binary, "-sS", "--max-time", str(TIMEOUT), *args],
                          capture_output=True, timeout=TIMEOUT + 5)


# --- cases -------------------------------------------------------------------

def case_curl_get_keepalive_head(binary, curl_binary, certs):
    srv = https_server(binary, certs)
    try:
        expect(re.fullmatch(r"Serving HTTPS on 127\.0\.0\.1 port \d+ \(https://127\.0\.0\.1:\d+/\) \.\.\.\n",
                            srv.banner), f"banner {srv.banner!r}")
        r = curl(curl_binary, "--cacert", certs.ca, https_url(srv, "/small.txt"))
        expect(r.returncode == 0, f"curl failed: {r.returncode} {r.stderr[-500:]!r}")
        expect(r.stdout == srv.small, f"body {r.stdout!r}")
        # Two URLs: the second request goes on the same TLS connection.
        r = curl(curl_binary, "-v", "--cacert", certs.ca, https_url(srv, "/small.txt", "localhost"),
                 https_url(srv, "/site/index.html", "localhost"))
        err = r.stderr.decode(errors="replace")
        expect(r.returncode == 0, f"curl (two URLs) failed: {r.returncode} {err[-1000:]}")
        expect(r.stdout == srv.small + b"<h1>index</h1>\n", f"bodies {r.stdout!r}")
        expect(re.search(r"Re-?using existing connection", err, re.I),
               "curl opened a second connection:\n" + err[-2000:])
        expect(err.count("SSL connection using") == 1, "more than one TLS handshake:\n" + err[-2000:])
        r = curl(curl_binary, "--cacert", certs.ca, "-I", https_url(srv, "/small.txt"))
        head = r.stdout.decode(errors="replace")
        expect(r.returncode == 0 and head.startswith("HTTP/1.1 200 OK\r\n"), f"HEAD: {r.returncode} {head!r}")
        expect(re.search(rf"^Content-Length: {len(srv.small)}\r$", head, re.M | re.I), f"HEAD fields {head!r}")
        r = curl(curl_binary, "--cacert", certs.ca, "-o", "/dev/null", "-w", "%{http_code}",
                 https_url(srv, "/missing.txt"))
        expect(r.returncode == 0 and r.stdout == b"404", f"missing file: {r.returncode} {r.stdout!r}")
        log = srv.stop()
        for line in ('"GET /small.txt HTTP/1.1" 200 -', '"GET /site/index.html HTTP/1.1" 200 -',
                     '"HEAD /small.txt HTTP/1.1" 200 -', '"GET /missing.txt HTTP/1.1" 404 -'):
            expect(line in log, f"access log lacks {line!r}: {log!r}")
    finally:
        srv.cleanup()


def case_curl_large_file_and_listing(binary, curl_binary, certs):
    srv = https_server(binary, certs)
    try:
        out = os.path.join(certs.parent, "big.dl")
        # The 3 MiB file goes out in pread chunks through TLS (no sendfile).
        r = curl(curl_binary, "--cacert", certs.ca, "-o", out, https_url(srv, "/big.bin"))
        expect(r.returncode == 0, f"curl failed: {r.returncode} {r.stderr[-500:]!r}")
        with open(out, "rb") as f:
            got = f.read()
        expect(len(got) == len(srv.big), f"big file: {len(got)} bytes, expected {len(srv.big)}")
        expect(got == srv.big, "the big file arrived corrupted")
        r = curl(curl_binary, "--cacert", certs.ca, https_url(srv, "/list/"))
        page = r.stdout.decode(errors="replace")
        expect(r.returncode == 0 and "Directory listing for /list/" in page, f"listing: {page[:500]!r}")
        for entry in ('href="a%20b%26%3Cc%3E.txt"', 'href="Zeta.txt"', 'href="sub%20dir/"'):
            expect(entry in page, f"listing lacks {entry}: {page!r}")
        srv.stop()
    finally:
        srv.cleanup()


def case_python_urllib(binary, _curl, certs):
    srv = https_server(binary, certs)
    try:
        ctx = ssl.create_default_context(cafile=certs.ca)
        with urllib.request.urlopen(https_url(srv, "/small.txt", "localhost"), context=ctx,
                                    timeout=TIMEOUT) as resp:
            expect(resp.status == 200, f"status {resp.status}")
            expect(resp.read() == srv.small, "urllib body differs")
        with urllib.request.urlopen(https_url(srv, "/big.bin"), context=ctx, timeout=TIMEOUT) as resp:
            expect(resp.read() == srv.big, "urllib: the big file differs")
        # A context that trusts only the system CAs refuses the test CA.
        try:
            urllib.request.urlopen(https_url(srv, "/small.txt", "localhost"),
                                   context=ssl.create_default_context(cafile=certs.ca.replace("ca.pem", "rogue_ca.pem")),
                                   timeout=TIMEOUT)
            raise Failure("urllib accepted a certificate from an untrusted CA")
        except urllib.error.URLError as e:
            expect(isinstance(e.reason, ssl.SSLCertVerificationError), f"wrong failure: {e!r}")
        srv.stop()
    finally:
        srv.cleanup()


def case_plaintext_client_then_curl(binary, curl_binary, certs):
    srv = https_server(binary, certs, "--header-timeout", "5")
    try:
        # Plain HTTP to the HTTPS port: no HTTP answer (at most a TLS alert),
        # and the server closes the connection.
        with srv.connect() as s:
            s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(TIMEOUT)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout) as e:
                expect(not isinstance(e, socket.timeout), "the server kept a plaintext client open")
            expect(not data.startswith(b"HTTP/"), f"plaintext client got an HTTP answer: {data[:200]!r}")
            expect(b"hello, pysock" not in data, "the file leaked in clear text")
        # Garbage that is not even HTTP, then a client that hangs up mid-handshake.
        with srv.connect() as s:
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            expect(wait_closed(s, TIMEOUT), "garbage handshake: connection not closed")
        with srv.connect() as s:
            s.sendall(b"\x16\x03\x01")
        # A client that connects and says nothing: dropped at the header timeout.
        idle = srv.connect()
        try:
            expect(wait_closed(idle, TIMEOUT), "a silent client was not dropped at the header timeout")
        finally:
            idle.close()
        # The server still serves.
        r = curl(curl_binary, "--cacert", certs.ca, https_url(srv, "/small.txt"))
        expect(r.returncode == 0 and r.stdout == srv.small, f"curl after bad clients: {r.returncode} {r.stderr!r}")
        srv.stop()
    finally:
        srv.cleanup()


def case_curl_without_ca_fails(binary, curl_binary, certs):
    srv = https_server(binary, certs)
    try:
        r = curl(curl_binary, https_url(srv, "/small.txt"))
        expect(r.returncode == 60, f"curl without the CA: exit {r.returncode}, stderr {r.stderr!r}")
        expect(r.stdout == b"", "curl printed a body without verifying")
        r = curl(curl_binary, "--cacert", certs.ca, https_url(srv, "/small.txt"))
        expect(r.returncode == 0 and r.stdout == srv.small, f"curl with the CA: {r.returncode} {r.stderr!r}")
        srv.stop()
    finally:
        srv.cleanup()


class Replay:
    """A socket whose first recv() returns bytes already read (read_response()
    reads past a body; pipelined responses continue there)."""

    def __init__(self, sock, buffered):
        self.sock, self.buffered = sock, buffered

    def recv(self, n):
        if self.buffered:
            data, self.buffered = self.buffered, b""
            return data
        return self.sock.recv(n)


def tls_connect(srv, ctx, ragged_ok=True):
    raw = srv.connect()
    return ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=ragged_ok)


def case_pipelining_close_notify_and_stop(binary, _curl, certs):
    srv = https_server(binary, certs)
    try:
        ctx = ssl.create_default_context(cafile=certs.ca)
        paths = ["/small.txt", "/missing", "/list/Zeta.txt", "/big.bin", "/small.txt"] * 3
        # Not suppressing ragged EOFs: the server's close must come with a
        # close_notify, else recv() raises SSLEOFError.
        with tls_connect(srv, ctx, ragged_ok=False) as s:
            s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in paths)
                      + b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            leftover = b""
            for path in paths + ["/small.txt"]:
                status, _, body, leftover = read_response(Replay(s, leftover))
                want = {"/small.txt": (200, srv.small), "/missing": (404, None),
                        "/list/Zeta.txt": (200, b"z"), "/big.bin": (200, srv.big)}[path]
                expect(status == want[0], f"{path}: {status}")
                if want[1] is not None:
                    expect(body == want[1], f"{path}: body differs")
            expect(leftover == b"", f"bytes after the last response: {leftover[:100]!r}")
            s.settimeout(TIMEOUT)
            try:
                expect(s.recv(4096) == b"", "data after Connection: close")
            except ssl.SSLEOFError:
                raise Failure("the server closed without close_notify")
        # SIGTERM with a response in flight: it completes, idle TLS
        # connections close, the server exits 0.
        huge = srv.big * 4
        with open(os.path.join(srv.root, "huge.bin"), "wb") as f:
            f.write(huge)
        idle = tls_connect(srv, ctx)
        s = tls_connect(srv, ctx)
        try:
            s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(4096)
            expect(first.startswith(b"HTTP/1.1 200"), first[:40])
            srv.proc.send_signal(signal.SIGTERM)
            expect(wait_closed(idle, 5), "idle TLS connection not closed on stop")
            time.sleep(0.3)
            expect(srv.proc.poll() is None, "the server exited with a response in flight")
            status, _, body, _ = read_response(Replay(s, first))
            expect(status == 200 and body == huge, "the in-flight HTTPS response was cut")
            expect(wait_closed(s, 5), "connection not closed after the in-flight response")
        finally:
            s.close()
            idle.close()
        out, err = srv.proc.communicate(timeout=TIMEOUT)
        expect(srv.proc.returncode == 0, f"exit status {srv.proc.returncode}: {err!r}")
        expect(b"Terminated, exiting." in out, f"stdout {out!r}")
    finally:
        srv.cleanup()


def case_cli_errors(binary, _curl, certs):
    for args in (["--certfile", certs.cert], ["--keyfile", certs.key],
                 ["--certfile", certs.cert, "--keyfile", certs.key, "--transport", "threads"]):
        r = subprocess.run([binary, "http.server", "0", *args], capture_output=True, timeout=TIMEOUT)
        err = r.stderr.decode()
        expect(r.returncode == 2, f"{args}: exit {r.returncode}, stderr {err!r}")
        expect(err.startswith("usage: pysock http.server") and "error: " in err, f"{args}: stderr {err!r}")
    missing = os.path.join(certs.parent, "nonexistent.pem")
    for cert, key, what in ((missing, certs.key, "No such file"), (certs.key, certs.key, ""),
                            (certs.cert, certs.rogue_key, "")):
        r = subprocess.run([binary, "http.server", "0", "--certfile", cert, "--keyfile", key],
                           capture_output=True, timeout=TIMEOUT)
        err = r.stderr.decode()
        expect(r.returncode == 1, f"{cert} / {key}: exit {r.returncode}, stderr {err!r}")
        expect(err.startswith("pysock http.server: cannot load --certfile") and what in err,
               f"{cert} / {key}: stderr {err!r}")
        expect(r.stdout == b"", f"a banner although the certificate did not load: {r.stdout!r}")


def openssl_s_client(port, certs, *args):
    """One `openssl s_client` handshake (and an HTTP/1.0 request), its output."""
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", certs.ca,
                           "-servername", "localhost", "-verify_return_error", "-brief", "-ign_eof",
                           *args],
                          input=b"GET /small.txt HTTP/1.0\r\n\r\n", capture_output=True, timeout=TIMEOUT)


SUITE = "TLS_CHACHA20_POLY1305_SHA256"
CIPHER12 = "ECDHE-ECDSA-AES128-GCM-SHA256"  # the test certificate's key is EC


def case_ciphers_and_ciphersuites(binary, curl_binary, certs):
    srv = https_server(binary, certs, "--ciphersuites", SUITE, "--ciphers", CIPHER12)
    try:
        # TLS 1.3: the server's one suite, whatever the client prefers.
        r = curl(curl_binary, "-v", "--cacert", certs.ca, https_url(srv, "/small.txt"))
        err = r.stderr.decode(errors="replace")
        expect(r.returncode == 0 and r.stdout == srv.small, f"curl: {r.returncode} {err[-800:]}")
        expect(f"SSL connection using TLSv1.3 / {SUITE}" in err, "curl negotiated another suite:\n" + err[-1500:])
        r = openssl_s_client(srv.port, certs)
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        expect(f"Ciphersuite: {SUITE}" in out, f"s_client: {out[-1500:]}")
        expect("hello, pysock" in out, f"s_client got no body: {out[-1500:]}")
        # A client offering only other TLS 1.3 suites: no handshake.
        r = curl(curl_binary, "--cacert", certs.ca, "--tls13-ciphers", "TLS_AES_128_GCM_SHA256",
                 https_url(srv, "/small.txt"))
        expect(r.returncode == 35 and r.stdout == b"", f"curl with another suite: {r.returncode} {r.stderr!r}")
        r = openssl_s_client(srv.port, certs, "-ciphersuites", "TLS_AES_256_GCM_SHA384")
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        expect(r.returncode != 0 and "hello, pysock" not in out, f"s_client with another suite: {out[-1500:]}")
        expect("handshake failure" in out, f"s_client's failure: {out[-1500:]}")
        # TLS 1.2: --ciphers decides.
        r = curl(curl_binary, "-v", "--cacert", certs.ca, "--tls-max", "1.2", https_url(srv, "/small.txt"))
        err = r.stderr.decode(errors="replace")
        expect(r.returncode == 0 and r.stdout == srv.small, f"curl TLS 1.2: {r.returncode} {err[-800:]}")
        expect(f"SSL connection using TLSv1.2 / {CIPHER12}" in err, "TLS 1.2 cipher:\n" + err[-1500:])
        r = curl(curl_binary, "--cacert", certs.ca, "--tls-max", "1.2", "--ciphers",
                 "ECDHE-ECDSA-AES256-GCM-SHA384", https_url(srv, "/small.txt"))
        expect(r.returncode == 35, f"curl TLS 1.2 with another cipher: {r.returncode} {r.stderr!r}")
        # CPython's ssl as well.
        ctx = ssl.create_default_context(cafile=certs.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with tls_connect(srv, ctx) as s:
            expect(s.cipher()[0] == CIPHER12, f"CPython TLS 1.2 cipher {s.cipher()}")
        # The refused clients did not hurt the server.
        r = curl(curl_binary, "--cacert", certs.ca, https_url(srv, "/small.txt"))
        expect(r.returncode == 0 and r.stdout == srv.small, f"curl after refusals: {r.returncode} {r.stderr!r}")
        log = srv.stop()
        expect(log.count('"GET /small.txt HTTP/1.1" 200 -') == 3, f"access log: {log!r}")
    finally:
        srv.cleanup()


def case_cipher_cli_errors(binary, _curl, certs):
    for option, value in (("--ciphers", "NO-SUCH-CIPHER"), ("--ciphers", ""),
                          ("--ciphersuites", "TLS_NO_SUCH_SUITE"), ("--ciphersuites", "AES128-SHA")):
        r = subprocess.run([binary, "http.server", "0", "--certfile", certs.cert, "--keyfile", certs.key,
                            option, value], capture_output=True, timeout=TIMEOUT)
        err = r.stderr.decode()
        expect(r.returncode == 2, f"{option} {value!r}: exit {r.returncode}, stderr {err!r}")
        expect(err.startswith(f"pysock http.server: error: {option} '{value}': No cipher can be selected"),
               f"{option} {value!r}: stderr {err!r}")
        expect(r.stdout == b"", f"{option} {value!r}: a banner although the list is bad: {r.stdout!r}")
    for option in ("--ciphers", "--ciphersuites"):
        r = subprocess.run([binary, "http.server", "0", option, "HIGH"], capture_output=True, timeout=TIMEOUT)
        err = r.stderr.decode()
        expect(r.returncode == 2 and "--ciphers and --ciphersuites need --certfile" in err,
               f"{option} without --certfile: exit {r.returncode}, stderr {err!r}")
    # "" for --ciphersuites is TLS 1.2 only: a valid choice.
    srv = https_server(binary, certs, "--ciphersuites", "")
    try:
        ctx = ssl.create_default_context(cafile=certs.ca)
        with tls_connect(srv, ctx) as s:
            expect(s.version() == "TLSv1.2", f"--ciphersuites '': {s.version()}")
        srv.stop()
    finally:
        srv.cleanup()


CASES = {
    "curl_get_keepalive_head": case_curl_get_keepalive_head,
    "curl_large_file_and_listing": case_curl_large_file_and_listing,
    "python_urllib": case_python_urllib,
    "plaintext_client_then_curl": case_plaintext_client_then_curl,
    "curl_without_ca_fails": case_curl_without_ca_fails,
    "pipelining_close_notify_and_stop": case_pipelining_close_notify_and_stop,
    "cli_errors": case_cli_errors,
    "ciphers_and_ciphersuites": case_ciphers_and_ciphersuites,
    "cipher_cli_errors": case_cipher_cli_errors,
}
NEEDS_CURL = {"curl_get_keepalive_head", "curl_large_file_and_listing", "plaintext_client_then_curl",
              "curl_without_ca_fails", "ciphers_and_ciphersuites"}


def tls_built(binary):
    """False when this pysock has no TLS (it says so for --certfile)."""
    r = subprocess.run([binary, "http.server", "0", "--certfile", "/nonexistent", "--keyfile", "/nonexistent"],
                       capture_output=True, timeout=TIMEOUT)
    return b"TLS was not built" not in r.stderr


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {{{','.join(CASES)}}} PYSOCK [CURL]", file=sys.stderr)
        return 2
    name, binary = sys.argv[1], sys.argv[2]
    curl_binary = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else shutil.which("curl")
    if not shutil.which("openssl"):
        print("skipped: the openssl command is not installed (it makes the test certificates)")
        return SKIP
    if not tls_built(binary):
        print("skipped: pysock was built without TLS (pysock::ssl, OpenSSL 3)")
        return SKIP
    if name in NEEDS_CURL and not (curl_binary and os.path.exists(curl_binary)):
        print("skipped: curl not found")
        return SKIP
    try:
        certs = Certs()
    except Failure as e:
        print(f"FAIL {name}: {e}", file=sys.stderr)
        return 1
    try:
        CASES[name](binary, curl_binary, certs)
    except Failure as e:
        print(f"FAIL {name}: {e}", file=sys.stderr)
        return 1
    finally:
        certs.cleanup()
    print(f"ok {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

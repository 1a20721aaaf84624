#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of `pysock http.server` and the other subcommands with
real peers: curl, CPython's http.client and urllib, and raw sockets sending
what well-behaved clients never send.

Usage: http_interop.py CASE PYSOCK_BINARY [CURL]
Each case starts its own server on 127.0.0.1 port 0 (the kernel picks; the
banner says which), serves a fresh temporary directory, and stops the server
with SIGTERM, which must end it with exit status 0. Exit 0 = pass, 1 = fail,
77 = skipped (a peer program is missing). Loopback only; every wait bounded.
"""
import email.utils
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SKIP = 77
TIMEOUT = 10  # seconds, for any single wait


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


class Server:
    """A pysock http.server (or echo-server) on a temporary directory."""

    def __init__(self, binary, *extra, command="http.server"):
        self.root = tempfile.mkdtemp(prefix="pysock-http-interop.")
        self.outside = tempfile.mkdtemp(prefix="pysock-http-outside.")
        self._populate()
        # PYSOCK_HTTP_SERVER_ARGS: extra http.server options for every case
        # (http.cmake runs the set again with "--transport threads").
        transport = os.environ.get("PYSOCK_HTTP_SERVER_ARGS", "").split() if command == "http.server" else []
        args = ([binary, command, "0"] + (["-d", self.root] if command == "http.server" else []) + transport
                + list(extra))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self._read_banner()
        match = re.search(r" port (\d+) ", line)
        expect(match is not None, f"no port in the banner: {line!r}")
        self.port = int(match.group(1))
        self.banner = line

    def _populate(self):
        def write(rel, data):
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        self.small = b"hello, pysock\n"
        self.big = bytes((i * 7 + i // 251) & 0xFF for i in range(3 * 1024 * 1024))
        write("small.txt", self.small)
        write("big.bin", self.big)
        write("site/index.html", b"<h1>index</h1>\n")
        write("list/a b&<c>.txt", b"x")
        write("list/Zeta.txt", b"z")
        os.makedirs(os.path.join(self.root, "list", "sub dir"))
        with open(os.path.join(self.outside, "secret.txt"), "wb") as f:
            f.write(b"secret")
        os.symlink(os.path.join(self.outside, "secret.txt"), os.path.join(self.root, "escape"))
        os.symlink("small.txt", os.path.join(self.root, "inside_link"))

    def _read_banner(self):
        deadline = time.monotonic() + TIMEOUT
        data = b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            expect(ready, "the server printed no banner in time")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:  # (stderr is only read once the server has exited)
                raise Failure(f"the server exited before its banner: {self.proc.wait()} "
                              f"{self.proc.stderr.read().decode(errors='replace')}")
            data += chunk
        return data.decode()

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def drain_stderr(self):
        """From now on stderr is read on a thread, so a long access log never
        fills the pipe (a server blocked writing its log serves nobody)."""
        self._log = []

        def reader():
            for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
                self._log.append(chunk)
        self._log_thread = threading.Thread(target=reader, daemon=True)
        self._log_thread.start()

    def stop(self):
        """SIGTERM; the server must exit 0 in time. Returns its stderr."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            if getattr(self, "_log_thread", None) is not None:
                self.proc.wait(timeout=TIMEOUT)
                self._log_thread.join(TIMEOUT)
                err = b"".join(self._log)
            else:
                out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise Failure("the server did not stop within 10 s of SIGTERM")
        expect(self.proc.returncode == 0, f"server exit status {self.proc.returncode}, stderr: {err!r}")
        return err.decode(errors="replace")

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.outside, ignore_errors=True)


def read_response(sock):
    """Reads one HTTP response (head + Content-Length body) from a raw socket.
    Returns (status, headers dict (lower-case names), body, closed_after)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise Failure(f"connection closed before a full head; got {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    expect(lines[0].startswith("HTTP/1.1 "), f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)  # appending to bytes would be quadratic for big bodies
    while len(body) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise Failure("connection closed inside a body")
        body += chunk
    return status, headers, bytes(body[:length]), bytes(body[length:])


def wait_closed(sock, within):
    """True when the peer closes (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def raw_exchange(server, payload):
    """Sends `payload`, returns the response and whether the server closed after it."""
    with server.connect() as s:
        s.sendall(payload)
        status, headers, body, _ = read_response(s)
        closed = wait_closed(s, 5)
        return status, headers, body, closed


def curl(curl_binary, *args):
    result = subprocess.run([curl_binary, "-sS", "--max-time", str(TIMEOUT), *args],
                            capture_output=True, timeout=TIMEOUT + 5)
    return result


# --- cases -------------------------------------------------------------------

def case_curl_keepalive_two_urls(binary, curl_binary):
    srv = Server(binary)
    try:
        r = curl(curl_binary, "-v", srv.url("/small.txt"), srv.url("/big.bin"), "-o", "/dev/null",
                 "-o", os.path.join(srv.root, "..", os.path.basename(srv.root) + ".dl"))
        expect(r.returncode == 0, f"curl failed: {r.stderr[-500:]!r}")
        err = r.stderr.decode(errors="replace")
        expect(re.search(r"Re-?using existing connection", err, re.I), "curl opened a second connection:\n" + err[-2000:])
        with open(os.path.join(srv.root, "..", os.path.basename(srv.root) + ".dl"), "rb") as f:
            expect(f.read() == srv.big, "the big file arrived corrupted")
        os.unlink(os.path.join(srv.root, "..", os.path.basename(srv.root) + ".dl"))
        log = srv.stop()
        expect('"GET /small.txt HTTP/1.1" 200 -' in log and '"GET /big.bin HTTP/1.1" 200 -' in log,
               f"access log lines missing: {log!r}")
        expect(re.search(r"^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] \"GET /small\.txt HTTP/1\.1\" 200 -$",
                         log, re.M), f"log line not in Python's format: {log!r}")
    finally:
        srv.cleanup()


def case_curl_range_head_and_conditional(binary, curl_binary):
    srv = Server(binary)
    try:
        r = curl(curl_binary, "-r", "1000-1999", "-w", "%{http_code}", "-o", "-", srv.url("/big.bin"))
        expect(r.stdout[-3:] == b"206", f"range status {r.stdout[-3:]!r}")
        expect(r.stdout[:-3] == srv.big[1000:2000], "range body differs")
        r = curl(curl_binary, "-r", "-5", "-o", "-", srv.url("/small.txt"))
        expect(r.stdout == srv.small[-5:], f"suffix range {r.stdout!r}")
        r = curl(curl_binary, "-r", "999999999-", "-w", "%{http_code}", "-o", "/dev/null", srv.url("/small.txt"))
        expect(r.stdout == b"416", f"unsatisfiable range gave {r.stdout!r}")
        r = curl(curl_binary, "-I", srv.url("/big.bin"))
        head = r.stdout.decode()
        expect(head.startswith("HTTP/1.1 200 OK"), head)
        expect(f"Content-Length: {len(srv.big)}" in head, head)
        expect("ETag: " in head and "Last-Modified: " in head, head)
        # -z FILE: If-Modified-Since the file's mtime → 304.
        r = curl(curl_binary, "-z", os.path.join(srv.root, "small.txt"), "-w", "%{http_code}", "-o", "/dev/null",
                 srv.url("/small.txt"))
        expect(r.stdout == b"304", f"If-Modified-Since gave {r.stdout!r}")
        r = curl(curl_binary, "-H", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT", "-w", "%{http_code}",
                 "-o", "/dev/null", srv.url("/small.txt"))
        expect(r.stdout == b"200", f"old If-Modified-Since gave {r.stdout!r}")
        srv.stop()
    finally:
        srv.cleanup()


def case_python_http_client(binary, _curl=None):
    srv = Server(binary)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
        conn.request("GET", "/small.txt")
        resp = conn.getresponse()
        expect(resp.status == 200 and resp.read() == srv.small, "GET /small.txt")
        etag = resp.getheader("ETag")
        last_modified = resp.getheader("Last-Modified")
        expect(resp.getheader("Content-Type") == "text/plain", resp.getheader("Content-Type"))
        expect(email.utils.parsedate_to_datetime(last_modified) is not None, last_modified)
        sock_before = conn.sock
        conn.request("GET", "/small.txt", headers={"If-None-Match": etag})
        resp = conn.getresponse()
        expect(resp.status == 304 and resp.read() == b"", f"If-None-Match gave {resp.status}")
        conn.request("HEAD", "/big.bin")
        resp = conn.getresponse()
        expect(resp.status == 200 and int(resp.getheader("Content-Length")) == len(srv.big), "HEAD")
        resp.read()
        conn.request("GET", "/missing")
        resp = conn.getresponse()
        expect(resp.status == 404 and b"File not found" in resp.read(), "404")
        conn.request("GET", "/site")
        resp = conn.getresponse()
        resp.read()
        expect(resp.status == 301 and resp.getheader("Location") == "/site/", "redirect")
        conn.request("GET", "/list/")
        resp = conn.getresponse()
        page = resp.read().decode()
        expect(resp.status == 200, "listing status")
        expect('<a href="a%20b%26%3Cc%3E.txt">a b&amp;&lt;c&gt;.txt</a>' in page, page)
        expect('<a href="sub%20dir/">sub dir/</a>' in page, page)
        expect(page.index("a b&amp;") < page.index("sub dir/") < page.index("Zeta.txt"), "listing order")
        expect(conn.sock is sock_before, "http.client had to reconnect: keep-alive broken")
        conn.close()
        # HTTP/1.0 without keep-alive: the server closes after the response.
        status, headers, body, closed = raw_exchange(srv, b"GET /small.txt HTTP/1.0\r\n\r\n")
        expect(status == 200 and body == srv.small and closed, "HTTP/1.0 close")
        expect(headers.get("connection") == "close", headers)
        srv.stop()
    finally:
        srv.cleanup()


def case_python_urllib(binary, _curl=None):
    srv = Server(binary)
    try:
        with urllib.request.urlopen(srv.url("/site"), timeout=TIMEOUT) as resp:  # follows the 301
            expect(resp.status == 200 and resp.read() == b"<h1>index</h1>\n", "redirect to index.html")
            expect(resp.geturl().endswith("/site/"), resp.geturl())
        with urllib.request.urlopen(srv.url("/big.bin"), timeout=TIMEOUT) as resp:
            expect(resp.read() == srv.big, "big file through urllib")
        with urllib.request.urlopen(srv.url("/inside_link"), timeout=TIMEOUT) as resp:
            expect(resp.read() == srv.small, "symlink inside the root")
        try:
            urllib.request.urlopen(srv.url("/nope.txt"), timeout=TIMEOUT)
            raise Failure("no HTTPError for a missing file")
        except urllib.error.HTTPError as e:
            expect(e.code == 404, e.code)
        srv.stop()
    finally:
        srv.cleanup()


def case_malformed_requests(binary, _curl=None):
    srv = Server(binary)
    try:
        cases = [
            (b"GARBAGE\r\n\r\n", 400, True),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, True),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64), 400, True),
            (b"GET / HTTP/1.1\r\n\r\n", 400, True),  # no Host
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, True),
            (b"POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 501, True),
            (b"DELETE /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", 501, True),
            (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, True),
            (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404, False),
            (b"GET /%2e%2e%2f%2e%2e%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", 404, False),
            (b"GET /list/%2e%2e/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404, False),
            (b"GET /escape HTTP/1.1\r\nHost: x\r\n\r\n", 403, False),
        ]
        for payload, want, must_close in cases:
            with srv.connect() as s:
                s.sendall(payload)
                status, headers, body, _ = read_response(s)
                expect(status == want, f"{payload[:60]!r}: status {status}, wanted {want}")
                expect(headers.get("content-type", "").startswith("text/html"), f"{payload[:40]!r}: {headers}")
                expect(0 < len(body) < 2048 and b"Error code: %d" % want in body, f"error body {body!r}")
                expect(b"secret" not in body and b"root:" not in body, "leaked a file outside the root")
                if must_close:
                    expect(wait_closed(s, 5), f"{payload[:40]!r}: connection not closed after {want}")
                else:
                    # A 403/404 keeps the connection: the next request works.
                    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                    status, _, body, _ = read_response(s)
                    expect(status == 200 and body == srv.small, "keep-alive after 404/403")
        log = srv.stop()
        expect("code 501, message Unsupported method ('POST')" in log, log)
    finally:
        srv.cleanup()


def case_pipelining(binary, _curl=None):
    srv = Server(binary)
    try:
        paths = ["/small.txt", "/missing", "/list/Zeta.txt", "/big.bin", "/small.txt"] * 4
        with srv.connect() as s:
            s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in paths))
            leftover = b""
            for path in paths:
                # read_response() reads past the body; feed leftovers back in.
                class Replay:
                    def __init__(self, sock, buffered):
                        self.sock, self.buffered = sock, buffered

                    def recv(self, n):
                        if self.buffered:
                            data, self.buffered = self.buffered, b""
                            return data
                        return self.sock.recv(n)
                status, _, body, leftover = read_response(Replay(s, leftover))
                want = {"/small.txt": (200, srv.small), "/missing": (404, None),
                        "/list/Zeta.txt": (200, b"z"), "/big.bin": (200, srv.big)}[path]
                expect(status == want[0], f"{path}: {status}")
                if want[1] is not None:
                    expect(body == want[1], f"{path}: body differs")
        srv.stop()
    finally:
        srv.cleanup()


def case_slowloris(binary, _curl=None):
    srv = Server(binary, "--header-timeout", "1")
    try:
        # Timed from before the connect: the server's clock starts after it,
        # so a client descheduled in between cannot make the drop look early.
        started = time.monotonic()
        slow = srv.connect()
        slow.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        # Meanwhile other clients are served.
        status, _, body, _ = raw_exchange(srv, b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expect(status == 200 and body == srv.small, "a normal client while one stalls")
        # Trickling a byte now and then does not extend the deadline.
        for _ in range(3):
            time.sleep(0.2)
            try:
                slow.sendall(b"a")
            except OSError:
                break
        status, _, body, _ = read_response(slow)
        expect(status == 408, f"stalled client got {status}")
        expect(wait_closed(slow, 5), "stalled client not dropped")
        elapsed = time.monotonic() - started
        expect(0.8 <= elapsed <= 4, f"dropped after {elapsed:.2f}s with a 1 s header timeout")
        slow.close()
        # An idle keep-alive connection is closed too, silently.
        idle = srv.connect()
        expect(wait_closed(idle, 5), "idle connection not closed")
        idle.close()
        srv.stop()
    finally:
        srv.cleanup()


def case_client_disconnects_mid_response(binary, _curl=None):
    srv = Server(binary)
    try:
        for _ in range(5):
            s = srv.connect()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1000)
            # SO_LINGER 0: close with RST, the rudest way to leave.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        time.sleep(0.2)
        expect(srv.proc.poll() is None, "the server died when clients left mid-response")
        status, _, body, _ = raw_exchange(srv, b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expect(status == 200 and body == srv.big, "served normally afterwards")
        srv.stop()
    finally:
        srv.cleanup()


def case_sigterm_finishes_in_flight_response(binary, _curl=None):
    stop_finishes_in_flight_response(binary, signal.SIGTERM, b"Terminated, exiting.")


def case_sigint_finishes_in_flight_response(binary, _curl=None):
    # Ctrl-C: the same clean stop, with Python's words on stdout.
    stop_finishes_in_flight_response(binary, signal.SIGINT, b"Keyboard interrupt received, exiting.")


def stop_finishes_in_flight_response(binary, signum, farewell):
    srv = Server(binary)
    try:
        # Larger than the socket buffers on both sides together, so the
        # server is still inside sendfile when the signal comes.
        huge = srv.big * 12
        with open(os.path.join(srv.root, "huge.bin"), "wb") as f:
            f.write(huge)
        idle = srv.connect()  # between requests: closed at once on stop
        s = srv.connect()
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(4096)
        expect(first.startswith(b"HTTP/1.1 200"), first[:40])
        srv.proc.send_signal(signum)
        expect(wait_closed(idle, 5), "idle connection not closed on stop")
        time.sleep(0.3)
        expect(srv.proc.poll() is None, "the server exited with a response in flight")

        class Replay:
            def __init__(self):
                self.buffered = first

            def recv(self, n):
                if self.buffered:
                    data, self.buffered = self.buffered, b""
                    return data
                return s.recv(n)
        status, _, body, _ = read_response(Replay())
        expect(status == 200 and body == huge, "the in-flight response was cut")
        expect(wait_closed(s, 5), "connection not closed after the in-flight response")
        out, err = srv.proc.communicate(timeout=TIMEOUT)
        expect(srv.proc.returncode == 0, f"exit status {srv.proc.returncode}: {err!r}")
        expect(farewell in out, f"no {farewell!r} on stdout: {out!r}")
        expect('"GET /huge.bin HTTP/1.1" 200 -' in err.decode(errors="replace"), f"access log: {err!r}")
        s.close()
        idle.close()
    finally:
        srv.cleanup()


def case_banner_and_cli_errors(binary, _curl=None):
    srv = Server(binary)
    try:
        expect(re.fullmatch(r"Serving HTTP on 127\.0\.0\.1 port \d+ \(http://127\.0\.0\.1:\d+/\) \.\.\.\n",
                            srv.banner), f"banner {srv.banner!r}")
        srv.stop()
    finally:
        srv.cleanup()
    for args in (["http.server", "notaport"], ["http.server", "70000"], ["frobnicate"], [],
                 ["echo-client", "127.0.0.1"], ["connect", "127.0.0.1"], ["connect", "-U", "/x", "h", "1"],
                 ["http.server", "--threads", "0"], ["http.server", "--loop", "kqueue"]):
        r = subprocess.run([binary, *args], capture_output=True, timeout=TIMEOUT)
        err = r.stderr.decode()
        expect(r.returncode == 2, f"{args}: exit {r.returncode}, stderr {err!r}")
        expect(err.startswith("usage: pysock") and "error: " in err, f"{args}: stderr {err!r}")
    for sub in ("http.server", "echo-server", "echo-client", "connect", "listen"):
        r = subprocess.run([binary, sub, "--help"], capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 0 and b"Usage" in r.stdout, f"{sub} --help: {r.returncode}")
    # A run-time failure is exit 1 with the reason.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = subprocess.run([binary, "http.server", str(busy.getsockname()[1])], capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 1 and b"Address already in use" in r.stderr, r.stderr)


def get_all(srv, conn, paths, expected):
    """GETs each path on one keep-alive http.client connection; checks bodies."""
    for path in paths:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        expect(r.status == 200, f"{path}: status {r.status}")
        expect(body == expected[path], f"{path}: body differs ({len(body)} bytes)")
        expect(not r.will_close, f"{path}: the server did not keep the connection")


def case_threads_two_loops(binary, _curl=None):
    srv = Server(binary, "--threads", "2")
    try:
        mid = bytes(range(256)) * 256  # 64 KiB: over the inline limit, sent with sendfile
        with open(os.path.join(srv.root, "mid.bin"), "wb") as f:
            f.write(mid)
        expected = {"/small.txt": srv.small, "/mid.bin": mid, "/big.bin": srv.big}
        # Two loop threads besides the main one (they start after the banner).
        deadline = time.monotonic() + TIMEOUT
        while len(os.listdir(f"/proc/{srv.proc.pid}/task")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        threads = len(os.listdir(f"/proc/{srv.proc.pid}/task"))
        expect(threads == 3, f"{threads} threads, expected 3 (main + 2 loops)")
        # Many short connections: SO_REUSEPORT spreads them over both loops;
        # every one must be answered correctly, whichever loop took it.
        for _ in range(40):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
            get_all(srv, conn, ["/small.txt", "/mid.bin"], expected)
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
        get_all(srv, conn, ["/big.bin", "/small.txt"], expected)
        conn.close()
        log = srv.stop()
        expect(log.count('"GET /small.txt HTTP/1.1" 200 -') == 41, "access log: missing /small.txt lines")
    finally:
        srv.cleanup()


def case_concurrent_keepalive_200(binary, _curl=None):
    srv = Server(binary)
    clients = 200
    try:
        srv.drain_stderr()  # 1,000 access log lines: more than a pipe holds
        mid = bytes((i * 13) & 0xFF for i in range(40 * 1024))
        with open(os.path.join(srv.root, "mid.bin"), "wb") as f:
            f.write(mid)
        expected = {"/small.txt": srv.small, "/mid.bin": mid, "/site/index.html": b"<h1>index</h1>\n"}
        paths = ["/small.txt", "/mid.bin", "/site/index.html", "/small.txt", "/mid.bin"]
        connected = threading.Barrier(clients, timeout=TIMEOUT * 2)
        failures = []

        def client():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
                conn.connect()
                first = conn.sock
                connected.wait()  # all 200 connections open at once
                get_all(srv, conn, paths, expected)
                expect(conn.sock is first, "reconnected: keep-alive was not kept")
                conn.close()
            except Exception as e:  # noqa: BLE001 (reported below)
                failures.append(repr(e))
                connected.abort()
        workers = [threading.Thread(target=client) for _ in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(TIMEOUT * 3)
        expect(not any(w.is_alive() for w in workers), "a client hung")
        expect(not failures, f"{len(failures)} clients failed, first: {failures[:1]}")
        log = srv.stop()
        expect(log.count(" 200 -") == clients * len(paths), f"{log.count(' 200 -')} log lines")
    finally:
        srv.cleanup()


def case_loop_io_uring_option(binary, _curl=None):
    srv = Server(binary, "--loop", "io_uring")
    try:
        status, _, body, closed = raw_exchange(srv, b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expect(status == 200 and body == srv.big and closed, "served with --loop io_uring")
        srv.stop()
    finally:
        srv.cleanup()


def case_echo_pair(binary, _curl=None):
    srv = Server(binary, command="echo-server")
    try:
        r = subprocess.run([binary, "echo-client", "127.0.0.1", str(srv.port), "ping pong"],
                           capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 0 and r.stdout == b"ping pong\n", f"echo-client: {r}")
        with srv.connect() as s:  # CPython as the client
            payload = os.urandom(200_000)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            expect(got == payload, "echo of 200 kB")
        srv.stop()
    finally:
        srv.cleanup()
    r = subprocess.run([binary, "echo-client", "127.0.0.1", "1"], capture_output=True, timeout=TIMEOUT)
    expect(r.returncode == 1 and b"Connection refused" in r.stderr, r.stderr)


def case_netcat_tcp_half_close(binary, _curl=None):
    # pysock connect → a Python server that answers only after EOF: needs the
    # half-close (shutdown(SHUT_WR)) and reading on until the peer closes.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        proc = subprocess.Popen([binary, "connect", "127.0.0.1", str(port)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        listener.settimeout(TIMEOUT)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            proc.stdin.write(b"line one\nline two\n")
            proc.stdin.close()
            proc.stdin = None  # closed by hand: communicate() must not flush it
            got = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break  # EOF: the tool half-closed
                got += chunk
            expect(got == b"line one\nline two\n", got)
            conn.sendall(got.upper())
        out, err = proc.communicate(timeout=TIMEOUT)
        expect(proc.returncode == 0 and out == b"LINE ONE\nLINE TWO\n", f"{proc.returncode} {out!r} {err!r}")

    # pysock listen ← pysock connect
    listen = subprocess.Popen([binary, "listen", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([listen.stderr], [], [], TIMEOUT)
        expect(ready, "listen printed nothing")
        line = listen.stderr.readline().decode()
        port = int(re.search(r"port (\d+)", line).group(1))
        client = subprocess.run([binary, "connect", "127.0.0.1", str(port)], input=b"to the listener\n",
                                capture_output=True, timeout=TIMEOUT)
        out, _ = listen.communicate(input=b"", timeout=TIMEOUT)
        expect(out == b"to the listener\n", out)
        expect(client.returncode == 0 and listen.returncode == 0, (client, listen.returncode))
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()


def case_netcat_udp_and_unix(binary, _curl=None):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(TIMEOUT)
        proc = subprocess.Popen([binary, "connect", "-u", "-w", "1", "127.0.0.1", str(peer.getsockname()[1])],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(b"datagram\n")
        proc.stdin.flush()
        data, addr = peer.recvfrom(65536)
        expect(data == b"datagram\n", data)
        peer.sendto(b"reply\n", addr)
        proc.stdin.close()
        proc.stdin = None
        out, err = proc.communicate(timeout=TIMEOUT)
        expect(proc.returncode == 0 and out == b"reply\n", f"{proc.returncode} {out!r} {err!r}")

    directory = tempfile.mkdtemp(prefix="pysock-nc-unix.")
    path = os.path.join(directory, "s")
    try:
        listen = subprocess.Popen([binary, "listen", "-U", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(path):
            expect(time.monotonic() < deadline and listen.poll() is None, "unix listener did not start")
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(TIMEOUT)
            # The file appears at bind(), a moment before listen(): until
            # then a connect is refused.
            while True:
                try:
                    s.connect(path)
                    break
                except ConnectionRefusedError:
                    expect(time.monotonic() < deadline and listen.poll() is None,
                           "unix listener never accepted")
                    time.sleep(0.02)
            s.sendall(b"over unix\n")
            # The answer first: the listener ends as soon as this side closes
            # (as nc does), so shutting down before it relayed stdin would race.
            listen.stdin.write(b"back\n")
            listen.stdin.flush()
            expect(s.recv(100) == b"back\n", "unix reply")
            s.shutdown(socket.SHUT_WR)
            out, _ = listen.communicate(timeout=TIMEOUT)
        expect(out == b"over unix\n" and listen.returncode == 0, (out, listen.returncode))
        expect(not os.path.exists(path), "the socket file was not removed")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def case_file_changes_are_seen(binary, _curl=None):
    """The small-file cache never serves a file that changed: rewritten in
    place with the same size, replaced by rename, deleted."""
    srv = Server(binary)
    try:
        path = os.path.join(srv.root, "cached.txt")
        with open(path, "wb") as f:
            f.write(b"first version\n")
        # A file is cached once its ctime is a second old (see file_cache.hpp).
        time.sleep(1.2)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)

        def get():
            conn.request("GET", "/cached.txt")
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("ETag")
        status, body, etag1 = get()
        expect(status == 200 and body == b"first version\n", f"{status} {body!r}")
        expect(get()[1] == b"first version\n", "second request (from the cache)")
        with open(path, "r+b") as f:  # same size, same inode
            f.write(b"FIRST")
        status, body, etag2 = get()
        expect(body == b"FIRST version\n", f"in-place rewrite not seen: {body!r}")
        tmp = os.path.join(srv.root, "cached.tmp")
        with open(tmp, "wb") as f:
            f.write(b"second versio\n")  # same size again, another inode
        os.rename(tmp, path)
        status, body, _ = get()
        expect(body == b"second versio\n", f"rename over it not seen: {body!r}")
        os.unlink(path)
        status, body, _ = get()
        expect(status == 404, f"deleted file gave {status}")
        conn.close()
        srv.stop()
    finally:
        srv.cleanup()


def run_wrk(wrk, url, seconds, connections, script=None):
    """wrk -t1 for `seconds`; returns (requests, the whole output)."""
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30)
    expect(r.returncode == 0, f"wrk failed ({r.returncode}): {r.stderr}")
    match = re.search(r"(\d+) requests in", r.stdout)
    expect(match is not None, f"no request count in wrk's output:\n{r.stdout}")
    return int(match.group(1)), r.stdout


def case_wrk_smoke(binary, _curl=None):
    """A short load with wrk: keep-alive on a small file (answered from
    memory) and a 64 KiB one (sendfile), then 8 requests pipelined per
    connection. Every answer must be a 2xx and no socket errors; the counts
    are only required to be positive (no timing assertions)."""
    wrk = shutil.which("wrk")
    if not wrk:
        print("skipped: wrk not found", file=sys.stderr)
        sys.exit(SKIP)
    srv = Server(binary)
    try:
        srv.drain_stderr()  # thousands of access-log lines
        with open(os.path.join(srv.root, "mid.bin"), "wb") as f:
            f.write(bytes((i * 13) & 0xFF for i in range(64 * 1024)))
        script = os.path.join(srv.outside, "pipeline.lua")
        with open(script, "w") as f:
            f.write('local batch\n'
                    'function init(args) batch = string.rep(wrk.format(nil, nil), 8) end\n'
                    'function request() return batch end\n')
        total = 0
        for path, conns, lua in (("/small.txt", 16, None), ("/mid.bin", 4, None), ("/small.txt", 8, script)):
            requests, out = run_wrk(wrk, srv.url(path), 1, conns, lua)
            expect(requests > 0, f"{path}: no requests completed:\n{out}")
            expect("Non-2xx" not in out, f"{path}: non-2xx answers:\n{out}")
            expect("Socket errors" not in out, f"{path}: socket errors:\n{out}")
            total += requests
        log = srv.stop()
        answered = log.count(" 200 -")
        # wrk stops with requests in flight: the server may have answered more.
        expect(answered >= total, f"access log shows {answered} answers, wrk counted {total}")
        expect(" 404 -" not in log and " 400 -" not in log, "error answers in the log")
    finally:
        srv.cleanup()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--no-default-browser-check"]


def run_chromium(chromium, args, within=30):
    """Runs a fresh headless Chromium (its own empty profile, its own process
    group, killed whole afterwards); returns (exit status, stdout)."""
    profile = tempfile.mkdtemp(prefix="pysock-chromium-profile.")
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=within)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        raise Failure(f"chromium did not finish within {within} s: {args}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its zygotes and helpers too
        except ProcessLookupError:
            pass
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def case_chromium_listing_and_file(binary, _curl=None):
    """A real browser: headless Chromium loads the directory listing and a
    file; the DOM it built is checked and a screenshot of the listing is
    saved (PYSOCK_TEST_OUTPUT_DIR, else the current directory)."""
    chromium = os.environ.get("PYSOCK_CHROMIUM", "")  # from CMake; "...-NOTFOUND" when it was absent
    if not os.path.isfile(chromium):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("skipped: chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        sys.exit(SKIP)
    srv = Server(binary)
    try:
        status, dom = run_chromium(chromium, ["--dump-dom", srv.url("/list/")])
        dom = dom.decode(errors="replace")
        expect(status == 0, f"chromium --dump-dom exited {status}")
        expect("<title>Directory listing for /list/</title>" in dom, dom)
        expect('<a href="a%20b%26%3Cc%3E.txt">a b&amp;&lt;c&gt;.txt</a>' in dom, f"escaped name missing:\n{dom}")
        expect('<a href="sub%20dir/">sub dir/</a>' in dom, dom)
        expect('<a href="Zeta.txt">Zeta.txt</a>' in dom, dom)
        # A file: Chromium shows text/plain in a <pre>.
        status, dom = run_chromium(chromium, ["--dump-dom", srv.url("/small.txt")])
        dom = dom.decode(errors="replace")
        expect(status == 0 and "<pre" in dom and "hello, pysock" in dom, f"file page:\n{dom}")
        # The 301 for a directory without '/' is followed to its index.html.
        status, dom = run_chromium(chromium, ["--dump-dom", srv.url("/site")])
        expect(b"<h1>index</h1>" in dom, dom)
        out_dir = os.environ.get("PYSOCK_TEST_OUTPUT_DIR") or os.getcwd()
        os.makedirs(out_dir, exist_ok=True)
        png = os.path.join(out_dir, "chromium_listing.png")
        if os.path.exists(png):
            os.unlink(png)
        status, _ = run_chromium(chromium, [f"--screenshot={png}", "--window-size=800,600",
                                            "--hide-scrollbars", srv.url("/list/")])
        expect(status == 0 and os.path.exists(png), f"no screenshot (chromium exited {status})")
        with open(png, "rb") as f:
            data = f.read()
        expect(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, f"not a PNG: {len(data)} bytes")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        expect((width, height) == (800, 600), f"screenshot is {width}x{height}")
        print(f"screenshot: {png}")
        log = srv.stop()
        expect('"GET /list/ HTTP/1.1" 200 -' in log, f"access log: {log}")
        expect('"GET /small.txt HTTP/1.1" 200 -' in log and '"GET /site HTTP/1.1" 301 -' in log, log)
    finally:
        srv.cleanup()



def case_no_access_log(binary, _curl=None):
    """--no-access-log: the same answers, no access-log or error-answer lines on
    stderr; without it, Python's lines (the default)."""
    for quiet in (False, True):
        srv = Server(binary, *(["--no-access-log"] if quiet else []))
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
            for _ in range(2):  # the second answer comes from the file cache
                conn.request("GET", "/small.txt")
                resp = conn.getresponse()
                expect(resp.status == 200 and resp.read() == srv.small, "GET /small.txt")
            conn.request("GET", "/missing")
            resp = conn.getresponse()
            expect(resp.status == 404 and b"File not found" in resp.read(), "404")
            conn.close()
            err = srv.stop()
            if quiet:
                expect(err == "", f"--no-access-log still logged: {err!r}")
            else:
                expect(err.count('"GET /small.txt HTTP/1.1" 200 -') == 2, err)
                expect("code 404, message File not found" in err, err)
                expect('"GET /missing HTTP/1.1" 404 -' in err, err)
        finally:
            srv.cleanup()

CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}
NEEDS_CURL = {"curl_keepalive_two_urls", "curl_range_head_and_conditional"}


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {{{','.join(CASES)}}} PYSOCK [CURL]", file=sys.stderr)
        return 2
    name, binary = sys.argv[1], sys.argv[2]
    curl_binary = sys.argv[3] if len(sys.argv) > 3 else shutil.which("curl")
    if name in NEEDS_CURL and not (curl_binary and os.path.exists(curl_binary)):
        print("skipped: curl not found", file=sys.stderr)
        return SKIP
    try:
        CASES[name](binary, curl_binary)
    except Failure as e:
        print(f"FAIL {name}: {e}", file=sys.stderr)
        return 1
    print(f"ok {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

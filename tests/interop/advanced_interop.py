#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Advanced I/O end to end: pysock against CPython's own socket module, and
the examples fd_passing and udp_echo run for real.

    advanced_interop.py fds-both-ways          ADVANCED_PEER
    advanced_interop.py sendmsg-recvmsg-into   ADVANCED_PEER
    advanced_interop.py makefile-line-protocol ADVANCED_PEER
    advanced_interop.py gather-one-syscall     ADVANCED_PEER [STRACE]
    advanced_interop.py udp-python-client      UDP_ECHO
    advanced_interop.py udp-python-server      UDP_ECHO
    advanced_interop.py udp-example-pair       UDP_ECHO
    advanced_interop.py fd-passing-file        FD_PASSING
    advanced_interop.py fd-passing-default     FD_PASSING

Loopback and AF_UNIX only; every socket has a timeout and every child
process a deadline. Exit 0: passed, 1: failed (the reason is printed),
77: skipped.
"""
import array
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

HOST = "127.0.0.1"
TIMEOUT = 10.0
SKIP = 77


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def shorten(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def expect_equal(what, got, want):
    if got != want:
        fail(f"{what}: got {shorten(got, 2000)}, want {shorten(want, 2000)}")
    print(f"ok: {what}: {shorten(got)}")


def finish(proc, what):
    """Waits for a child with a deadline; returns its stdout (text)."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        fail(f"{what} did not finish within {TIMEOUT} s; stdout {out!r} stderr {err!r}")
    if proc.returncode != 0:
        fail(f"{what} exited with {proc.returncode}; stdout {out!r} stderr {err!r}")
    return out


def fields(text):
    """'key=value' lines → dict."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            result[key] = value
    return result


def unix_listener(directory, kind):
    path = os.path.join(directory, "peer.sock")
    listener = socket.socket(socket.AF_UNIX, kind)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    return listener, path


# --- descriptor passing ---------------------------------------------------------------


def fds_both_ways(peer):
    """CPython send_fds → pysock recv_fds, then pysock send_fds → CPython recv_fds."""
    with tempfile.TemporaryDirectory(prefix="pysock-adv-") as directory:
        listener, path = unix_listener(directory, socket.SOCK_STREAM)
        proc = subprocess.Popen([peer, "recv-fds", path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        # Three pipes holding a text each, their write ends closed: the peer
        # reads each received descriptor to EOF.
        readers = []
        for i in range(3):
            r, w = os.pipe()
            os.write(w, f"pipe {i} from cpython".encode())
            os.close(w)
            readers.append(r)
        sent = socket.send_fds(conn, [b"hello ", b"pysock"], readers)
        expect_equal("bytes CPython's send_fds sent", sent, 12)
        for r in readers:
            os.close(r)
        # Back: pysock's send_fds → CPython's recv_fds.
        data, fds, flags, _ = socket.recv_fds(conn, 1024, 4)
        expect_equal("data pysock sent with its descriptor", data, b"from-pysock")
        expect_equal("descriptors CPython received", len(fds), 1)
        expect_equal("msg_flags CPython got", flags, 0)
        with os.fdopen(fds[0], "rb") as f:
            expect_equal("what the pipe pysock passed holds", f.read(), b"written by pysock")
        conn.close()
        listener.close()
        out = finish(proc, "advanced_peer recv-fds")
    got = fields(out)
    expect_equal("data pysock received", got.get("data"), "hello pysock")
    expect_equal("descriptors pysock received", got.get("fds"), "3")
    expect_equal("MSG_CTRUNC seen by pysock", got.get("ctrunc"), "0")
    for i in range(3):
        expect_equal(f"received descriptor {i} is close-on-exec", got.get(f"cloexec[{i}]"), "1")
        expect_equal(f"received descriptor {i} reads", got.get(f"fd[{i}]"), f"pipe {i} from cpython")


def sendmsg_recvmsg_into(peer):
    """CPython sendmsg of several buffers → pysock recvmsg_into, and back."""
    with tempfile.TemporaryDirectory(prefix="pysock-adv-") as directory:
        listener, path = unix_listener(directory, socket.SOCK_SEQPACKET)
        proc = subprocess.Popen([peer, "recvmsg-into", path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        expect_equal("bytes CPython's sendmsg sent",
                     conn.sendmsg([b"alpha", b"beta", b"gamma", b"-delta"]), 20)
        conn.sendmsg([b"second ", b"record"])
        # pysock's sendmsg of three buffers → CPython's recvmsg_into.
        bufs = [bytearray(3), bytearray(5), bytearray(10)]
        nbytes, ancdata, flags, _ = conn.recvmsg_into(bufs)
        expect_equal("bytes CPython's recvmsg_into got", nbytes, 13)
        expect_equal("CPython's buffers", [bytes(b) for b in bufs],
                     [b"one", b"-two-", b"three\0\0\0\0\0"])
        expect_equal("msg_flags CPython got", flags, 0)
        conn.close()
        listener.close()
        out = finish(proc, "advanced_peer recvmsg-into")
    got = fields(out)
    expect_equal("nbytes pysock's recvmsg_into got", got.get("nbytes"), "20")
    expect_equal("MSG_TRUNC seen by pysock", got.get("trunc"), "0")
    expect_equal("pysock's first buffer", got.get("buf0"), "alpha")
    expect_equal("pysock's second buffer", got.get("buf1"), "beta")
    expect_equal("pysock's third buffer", got.get("buf2"), "gamma-delta.....")
    expect_equal("pysock's second record", got.get("second"), "second record")
    expect_equal("bytes pysock's sendmsg sent", got.get("sent"), "13")


# --- the stream adapter -----------------------------------------------------------------


def makefile_line_protocol(peer):
    """CPython's makefile('rw') line client against pysock's makefile('rw') server."""
    proc = subprocess.Popen([peer, "makefile-server"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"listening on (\S+):(\d+)\s*$", line)
    if not match:
        proc.kill()
        fail(f"advanced_peer makefile-server printed {line!r}")
    with socket.create_connection((match.group(1), int(match.group(2))), timeout=TIMEOUT) as sock:
        f = sock.makefile("rw", newline="\n")
        f.write("ADD 2 40\n")
        f.flush()
        expect_equal("reply to ADD", f.readline(), "SUM 42\n")
        f.write("UPPER hello, stream\n")
        f.flush()
        expect_equal("reply to UPPER", f.readline(), "UPPER HELLO, STREAM\n")
        # Pipelined: three requests in one write, three replies in order.
        f.write("ADD 1 1\nADD -5 3\nBOGUS\n")
        f.flush()
        expect_equal("pipelined replies",
                     [f.readline() for _ in range(3)], ["SUM 2\n", "SUM -2\n", "ERR unknown command\n"])
        # A long line, larger than the stream's 8 KiB buffers.
        long_text = "x" * 50000
        f.write(f"UPPER {long_text}\n")
        f.flush()
        expect_equal("reply to a 50000-character line", f.readline(), f"UPPER {long_text.upper()}\n")
        f.write("QUIT\n")
        f.flush()
        expect_equal("reply to QUIT", f.readline(), "BYE 7\n")
        expect_equal("EOF after QUIT", f.readline(), "")
        f.close()
    out = finish(proc, "advanced_peer makefile-server")
    expect_equal("server's summary", out.splitlines()[-1], "served 7 lines")


# --- scatter/gather is one system call ---------------------------------------------------


def gather_one_syscall(peer, strace=None):
    strace = strace or shutil.which("strace")
    if not strace:
        print("skip: strace not found")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory(prefix="pysock-adv-") as directory:
        log = os.path.join(directory, "trace")
        # LeakSanitizer (a -DPYSOCK_SANITIZE=ON build) cannot run under ptrace.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        proc = subprocess.run(
            [strace, "-f", "-qq", "-e", "trace=sendmsg,sendto,writev,sendmmsg", "-o", log, peer, "gather", "16"],
            capture_output=True, text=True, timeout=TIMEOUT, env=env)
        if proc.returncode != 0 and re.search(r"^strace: .*(ptrace|not permitted)", proc.stderr, re.M):
            print(f"skip: strace cannot trace here: {proc.stderr.strip()}")
            sys.exit(SKIP)
        if proc.returncode != 0:
            fail(f"strace advanced_peer gather exited {proc.returncode}: {proc.stderr!r}")
        expect_equal("advanced_peer's report", proc.stdout.strip(), "buffers=16 sent=102 match=1")
        with open(log) as f:
            calls = [line for line in f if re.search(r"\b(sendmsg|sendto|writev|sendmmsg)\(", line)]
    print("".join(calls), end="")
    expect_equal("sendmsg system calls", sum("sendmsg(" in c for c in calls), 1)
    expect_equal("other send system calls", [c for c in calls if "sendmsg(" not in c], [])
    expect_equal("iovecs in the one sendmsg", "msg_iovlen=16" in calls[0], True)


# --- UDP both ways, with the udp_echo example ---------------------------------------------


class UdpEchoServer:
    def __init__(self, program, count):
        self.proc = subprocess.Popen([program, "server", HOST, "0", "--count", str(count)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+):(\d+)\s*$", line)
        if not match:
            self.proc.kill()
            fail(f"udp_echo server printed {line!r}")
        self.address = (match.group(1), int(match.group(2)))
        if self.address[0] != HOST or self.address[1] == 0:
            self.proc.kill()
            fail(f"udp_echo server reported {self.address}")

    def finish(self):
        return finish(self.proc, "udp_echo server")


def udp_python_client(udp_echo):
    server = UdpEchoServer(udp_echo, 3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind((HOST, 0))
        for message in [b"first", b"", b"\x00binary\xff" * 1000]:
            sock.sendto(message, server.address)
            data, sender = sock.recvfrom(65535)
            expect_equal(f"echo of {len(message)} bytes", data, message)
            expect_equal("echo comes from the server's address", sender, server.address)
        me = sock.getsockname()
    out = server.finish()
    expect_equal("server's log", out.splitlines(),
                 [f"echoed {n} bytes to {me[0]}:{me[1]}" for n in (5, 0, 8000)])


def udp_python_server(udp_echo):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.settimeout(TIMEOUT)
        server.bind((HOST, 0))
        port = server.getsockname()[1]
        proc = subprocess.Popen([udp_echo, "client", HOST, str(port), "from pysock", "--count", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        senders = set()
        for _ in range(2):
            data, sender = server.recvfrom(65535)
            expect_equal("what pysock's client sent", data, b"from pysock")
            senders.add(sender)
            server.sendto(data.upper(), sender)
        out = finish(proc, "udp_echo client")
    expect_equal("one client socket for both datagrams", len(senders), 1)
    expect_equal("client's output", out.splitlines(),
                 [f"reply from {HOST}:{port}: FROM PYSOCK"] * 2)


def udp_example_pair(udp_echo):
    server = UdpEchoServer(udp_echo, 4)
    proc = subprocess.Popen([udp_echo, "client", HOST, str(server.address[1]), "round trip", "--count", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = finish(proc, "udp_echo client")
    expect_equal("client's output", out.splitlines(),
                 [f"reply from {HOST}:{server.address[1]}: round trip"] * 4)
    expect_equal("server exits after --count 4 having echoed 4", len(server.finish().splitlines()), 4)


def udp_client_times_out(udp_echo):
    # A port nobody answers on: the client must give up, not hang.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        proc = subprocess.Popen([udp_echo, "client", HOST, str(port), "--timeout", "0.3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=TIMEOUT)
    expect_equal("exit status without a reply", proc.returncode, 1)
    expect_equal("message names the silence", "no reply" in err, True)


# --- the fd_passing example ---------------------------------------------------------------


def fd_passing_file(program):
    with tempfile.TemporaryDirectory(prefix="pysock-adv-") as directory:
        path = os.path.join(directory, "passed.txt")
        text = "line one of the passed file\nline two: \u00e9t\u00e9\n"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        proc = subprocess.Popen([program, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = finish(proc, "fd_passing").decode("utf-8")
    print(out, end="")
    if f"passes {path}" not in out:
        fail("the parent did not say which file it passes")
    if not re.search(r"child \d+ received descriptor \d+ with message 'file'", out):
        fail("the child did not report the descriptor it received")
    expect_equal("what the child printed", out.split("bytes:\n", 1)[-1].rsplit("parent:", 1)[0], text)
    expect_equal("size the child read", f"child read {len(text.encode())} bytes" in out, True)
    expect_equal("last line", out.splitlines()[-1], "parent: child finished")


def fd_passing_default(program):
    proc = subprocess.Popen([program], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = finish(proc, "fd_passing")
    print(out, end="")
    match = re.search(r"passes (\S+) ", out)
    if not match:
        fail("the parent did not say which file it passes")
    expect_equal("the child printed the default text",
                 "hello from the parent's file\nsecond line\n" in out, True)
    expect_equal("temporary file removed afterwards", os.path.exists(match.group(1)), False)


COMMANDS = {
    "fds-both-ways": fds_both_ways,
    "sendmsg-recvmsg-into": sendmsg_recvmsg_into,
    "makefile-line-protocol": makefile_line_protocol,
    "gather-one-syscall": gather_one_syscall,
    "udp-python-client": udp_python_client,
    "udp-python-server": udp_python_server,
    "udp-example-pair": udp_example_pair,
    "udp-client-times-out": udp_client_times_out,
    "fd-passing-file": fd_passing_file,
    "fd-passing-default": fd_passing_default,
}


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    if not hasattr(socket, "send_fds"):
        print("skip: this Python has no socket.send_fds (3.9+)")
        return SKIP
    COMMANDS[sys.argv[1]](*sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

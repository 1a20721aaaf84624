# SPDX-License-Identifier: MIT
"""Helpers shared by the readiness interop tests: start a pysock example on
port 0, learn its port from its "listening on HOST:PORT" line, and wait for it
to exit by itself (--count)."""
import os
import re
import subprocess
import sys
import tempfile
import time


class Server:
    def __init__(self, argv, startup_timeout=10.0):
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_timeout
        while True:
            self.log.seek(0)
            m = re.search(rb"listening on ([0-9.]+):([0-9]+)", self.log.read())
            if m:
                self.host, self.port = m.group(1).decode(), int(m.group(2))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                fail(f"server did not start: {self.output()}")
            time.sleep(0.02)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait(self, timeout=15.0):
        """The exit status, failing the test if the server does not stop."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"server did not exit by itself; output:\n{self.output()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print(f"ok: {message}")

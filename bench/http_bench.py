#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Driver of bench/run_http.sh: pysock http.server vs nginx vs CPython's
http.server on one 1 KiB file, wrk -t1 -c50, interleaved rounds. Starts and
stops every server itself (nginx with its own config, pid and temp dirs
under /tmp); loopback only; every wait bounded."""
import argparse
import datetime
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, LOAD_CPU = "0", "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


NGINX_CONF = """\
daemon off;
master_process off;  # one process serves, so /proc/<pid>/stat is all of it
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
    }}
}}
"""


def start_servers(args, tmp, docroot):
    servers = {}
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    devnull = subprocess.DEVNULL
    port = free_port()
    # The access log (stderr, as Python's) goes to /dev/null: writing it costs
    # time that nginx, with access_log off, does not spend.
    servers["pysock http.server"] = (port, subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, args.pysock, "http.server", str(port), "-b", "127.0.0.1", "-d", docroot],
        stdout=devnull, stderr=devnull))
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port=port, docroot=docroot))
    servers["nginx"] = (port, subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, nginx, "-p", tmp, "-c", conf], stdout=devnull, stderr=devnull))
    port = free_port()
    servers["python3 -m http.server"] = (port, subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", docroot], stdout=devnull, stderr=devnull))
    for port, proc in servers.values():
        wait_listening(port, proc)
    return servers


def run_wrk(port, duration):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c50", f"-d{duration}s",
                          f"http://127.0.0.1:{port}/1k.bin"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, (bad.group(0) if bad else ""), (errors.group(1) if errors else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pysock", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pysock-http-bench.")
    docroot = os.path.join(tmp, "www")
    os.makedirs(docroot)
    with open(os.path.join(docroot, "1k.bin"), "wb") as f:
        f.write(bytes((i * 31) & 0xFF for i in range(1024)))
    servers = {}
    results = {}
    notes = []
    try:
        servers = start_servers(args, tmp, docroot)
        for port, _ in servers.values():  # warm up (page cache, first accepts)
            run_wrk(port, 1)
        for r in range(args.rounds):
            for name, (port, proc) in servers.items():
                before = cpu_seconds(proc.pid)
                rps, bad, errors = run_wrk(port, args.duration)
                used = cpu_seconds(proc.pid) - before
                requests = rps * args.duration
                results.setdefault(name, []).append((rps, used, requests / used if used > 0 else 0.0))
                if bad or errors:
                    notes.append(f"{name}, round {r + 1}: {bad} {errors}".strip())
                print(f"round {r + 1}  {name:24s} {rps:10.0f} req/s  server CPU {used:5.2f} s  "
                      f"{requests / used if used else 0:10.0f} req/CPU-s  {bad} {errors}", flush=True)
    finally:
        for _, proc in servers.values():
            proc.terminate()
        for _, proc in servers.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    nginx_rps = statistics.median(x[0] for x in results["nginx"])
    nginx_per_cpu = statistics.median(x[2] for x in results["nginx"])
    rows = []
    for name, runs in results.items():
        rps = statistics.median(x[0] for x in runs)
        cpu = statistics.median(x[1] for x in runs)
        per_cpu = statistics.median(x[2] for x in runs)
        rows.append(f"| {name} | {rps:,.0f} | {rps / nginx_rps:.2f}× | {cpu:.2f} s | {per_cpu:,.0f} | "
                    f"{per_cpu / nginx_per_cpu:.2f}× |")
        print(f"median {name:24s} {rps:10.0f} req/s ({rps / nginx_rps:.2f}x nginx)  "
              f"{per_cpu:10.0f} req/CPU-s ({per_cpu / nginx_per_cpu:.2f}x nginx)")

    uname = platform.uname()
    section = f"""<!-- BEGIN http (written by bench/run_http.sh; edits here are overwritten) -->
## Static files over HTTP: `pysock http.server` vs nginx vs CPython

One 1 KiB file served on 127.0.0.1, `wrk -t1 -c50 -d{args.duration}s` (keep-alive), server pinned to
CPU {SERVER_CPU} (`taskset -c {SERVER_CPU}`), wrk to CPU {LOAD_CPU}; {args.rounds} rounds, interleaved
(pysock, nginx, Python, pysock, ...); medians. Server CPU is utime + stime from
`/proc/<pid>/stat` before and after each run.

- `pysock http.server` — the event-loop transport, 1 thread (`--threads 1`, the default), Release build;
  its access log (stderr, as Python's) goes to `/dev/null`: writing it costs time nginx does not spend.
- nginx {subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]}
  (Debian nginx-light), one process (`master_process off`), `sendfile on`, `access_log off`,
  `keepalive_requests 1000000`.
- `python3 -m http.server --bind 127.0.0.1` (Python {platform.python_version()}): speaks HTTP/1.0, so
  every request is a new connection (wrk reconnects).

| server | requests/s | vs nginx | server CPU per run | requests per server CPU-second | vs nginx |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Machine: {os.cpu_count()} CPUs (`nproc`), Linux {uname.release}, {datetime.date.today().isoformat()}.
Command: `bench/run_http.sh` (ROUNDS={args.rounds} DURATION={args.duration}).
{"Errors seen: " + "; ".join(notes) if notes else "No wrk socket errors or non-2xx responses."}
<!-- END http -->"""

    doc = os.path.join(args.root, "docs", "benchmarks.md")
    with open(doc) as f:
        text = f.read()
    pattern = re.compile(r"<!-- BEGIN http .*?<!-- END http -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc, "w") as f:
        f.write(text)
    print(f"wrote the http section of {doc}")


if __name__ == "__main__":
    main()

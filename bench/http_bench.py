#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Driver of bench/run_http.sh: static files over HTTP, loaded by wrk.

Servers: pysock http.server (with and without its small-file cache), nginx
(Debian nginx-light, sendfile on, access_log off), bench/http_raw_epoll.c (a
fixed reply: the floor), python3 -m http.server. Scenarios:
  keepalive  a 1 KiB file, wrk -c50, keep-alive
  pipelined  the same, 16 requests pipelined per connection (http_pipeline.lua)
  large      a 100 MiB file, wrk -c4 (MiB/s)
with 1 server thread (server on CPU 0, wrk on CPU 1) and 2 (pysock --threads
2, nginx worker_processes 2, the C responder with 2 threads; server and wrk
share both CPUs). Rounds interleave every (scenario, server) pair; medians.
Server CPU = utime + stime of the server and its child processes, from
/proc. Starts and stops every server itself; loopback only; waits bounded.
"""
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
PIPELINE_DEPTH = 16
LARGE_MIB = 100


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


def process_tree(pid):
    """pid and its live descendants (nginx's workers)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def cpu_seconds(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
    return total / CLK_TCK


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
user root;
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-{port}-error.log warn;
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
        listen 127.0.0.1:{port}{reuseport};
        root {docroot};
    }}
}}
"""

# (name, threads) → how to start it; "kind" says which scenarios it serves.
SERVERS = [
    ("pysock http.server", 1, "pysock"),
    ("pysock http.server, no access log", 1, "pysock-nolog"),
    ("pysock http.server, no file cache", 1, "pysock-nocache"),
    ("nginx", 1, "nginx"),
    ("raw epoll C, fixed reply", 1, "raw"),
    ("python3 -m http.server", 1, "python"),
    ("pysock http.server", 2, "pysock"),
    ("nginx", 2, "nginx"),
    ("raw epoll C, fixed reply", 2, "raw"),
]
SCENARIOS = {
    # name: (path, wrk args, which server kinds)
    "keepalive": ("/1k.bin", ["-c50"], {"pysock", "pysock-nolog", "pysock-nocache", "nginx", "raw", "python"}),
    "pipelined": ("/1k.bin", ["-c50", "-s", None, "--", str(PIPELINE_DEPTH)],
                  {"pysock", "pysock-nolog", "pysock-nocache", "nginx", "raw"}),
    "large": ("/100m.bin", ["-c4", "--timeout", "30s"], {"pysock", "nginx", "python"}),
}


def cpus_for(threads):
    """(server CPUs, wrk CPUs, wrk threads)."""
    return ("0", "1", 1) if threads == 1 else ("0,1", "0,1", 2)


def has_no_access_log(pysock):
    """Whether this pysock's http.server has --no-access-log (the row
    "no access log", nginx's `access_log off`, is left out otherwise)."""
    try:
        out = subprocess.run([pysock, "http.server", "--help"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--no-access-log" in out.stdout + out.stderr


def start_server(args, tmp, docroot, kind, threads):
    devnull = subprocess.DEVNULL
    port = free_port()
    server_cpus = cpus_for(threads)[0]
    pin = ["taskset", "-c", server_cpus]
    if kind in ("pysock", "pysock-nolog", "pysock-nocache"):
        # The access log (stderr, as Python's) goes to /dev/null: writing it
        # costs time that nginx, with access_log off, does not spend.
        cmd = pin + [args.pysock, "http.server", str(port), "-b", "127.0.0.1", "-d", docroot, "--threads",
                     str(threads)]
        if kind == "pysock-nocache":
            cmd += ["--file-cache-bytes", "0"]
        elif kind == "pysock-nolog":
            cmd += ["--no-access-log"]
    elif kind == "nginx":
        conf = os.path.join(tmp, f"nginx-{port}.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port=port, docroot=docroot, workers=threads,
                                      reuseport=" reuseport" if threads > 1 else ""))
        cmd = pin + [shutil.which("nginx") or "/usr/sbin/nginx", "-p", tmp, "-c", conf]
    elif kind == "raw":
        cmd = pin + [args.raw, str(port), str(threads)]
    else:
        cmd = pin + [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                     docroot]
    proc = subprocess.Popen(cmd, stdout=devnull, stderr=devnull)
    wait_listening(port, proc)
    return port, proc


UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def run_wrk(args, port, scenario, threads, duration):
    path, extra, _ = SCENARIOS[scenario]
    extra = [args.lua if x is None else x for x in extra]
    _, load_cpus, wrk_threads = cpus_for(threads)
    url = f"http://127.0.0.1:{port}{path}"
    # wrk wants the URL before the script's own arguments ("--").
    if "--" in extra:
        cut = extra.index("--")
        cmd_tail = extra[:cut] + [url] + extra[cut:]
    else:
        cmd_tail = extra + [url]
    cmd = ["taskset", "-c", load_cpus, "wrk", f"-t{wrk_threads}", f"-d{duration}s"] + cmd_tail
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mib_s = float(transfer.group(1)) * UNITS[transfer.group(2)] / 1024 ** 2
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    problems = " ".join(x for x in ((bad.group(0) if bad else ""), (f"socket errors: {errors.group(1)}"
                                                                      if errors else "")) if x)
    return {"rps": rps, "mib_s": mib_s, "requests": requests, "problems": problems}


def median(values):
    values = list(values)
    return statistics.median(values) if values else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pysock", required=True)
    ap.add_argument("--raw", required=True, help="bench/http_raw_epoll.c, built")
    ap.add_argument("--lua", required=True, help="bench/http_pipeline.lua")
    ap.add_argument("--root", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--scenarios", default="keepalive,pipelined,large")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    thread_counts = [int(t) for t in args.threads.split(",") if t]

    tmp = tempfile.mkdtemp(prefix="pysock-http-bench.")
    docroot = os.path.join(tmp, "www")
    os.makedirs(docroot)
    with open(os.path.join(docroot, "1k.bin"), "wb") as f:
        f.write(bytes((i * 31) & 0xFF for i in range(1024)))
    with open(os.path.join(docroot, "100m.bin"), "wb") as f:
        block = bytes((i * 7) & 0xFF for i in range(1 << 20))
        for _ in range(LARGE_MIB):
            f.write(block)
    # Old enough for the small-file cache ("settled": its ctime 1 s ago).
    time.sleep(1.1)
    running = {}
    results = {}
    notes = []
    quiet = has_no_access_log(args.pysock)
    try:
        for name, threads, kind in SERVERS:
            if kind == "pysock-nolog" and not quiet:
                continue
            if threads in thread_counts and any(kind in SCENARIOS[s][2] for s in scenarios):
                running[(name, threads)] = (kind, *start_server(args, tmp, docroot, kind, threads))
        pairs = [(s, key) for s in scenarios for key, (kind, _, _) in running.items()
                 if kind in SCENARIOS[s][2]]
        for scenario, key in pairs:  # warm up: page cache, first accepts, caches
            run_wrk(args, running[key][1], scenario, key[1], 1)
        for r in range(args.rounds):
            for scenario, key in pairs:
                kind, port, proc = running[key]
                before = cpu_seconds(proc.pid)
                res = run_wrk(args, port, scenario, key[1], args.duration)
                res["cpu"] = cpu_seconds(proc.pid) - before
                res["per_cpu"] = res["requests"] / res["cpu"] if res["cpu"] > 0 else 0.0
                res["mib_per_cpu"] = res["mib_s"] * args.duration / res["cpu"] if res["cpu"] > 0 else 0.0
                results.setdefault((scenario, key), []).append(res)
                if res["problems"]:
                    notes.append(f"{scenario}, {key[0]} ({key[1]} thr), round {r + 1}: {res['problems']}")
                print(f"round {r + 1} {scenario:9s} {key[0]:34s} x{key[1]} {res['rps']:10.0f} req/s "
                      f"{res['mib_s']:8.0f} MiB/s  CPU {res['cpu']:5.2f} s  {res['per_cpu']:9.0f} req/CPU-s "
                      f"{res['problems']}", flush=True)
    finally:
        for _, _, proc in running.values():
            proc.terminate()
        for _, _, proc in running.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(scenario, name, threads, field):
        return median(r[field] for r in results.get((scenario, (name, threads)), []))

    def ratio(a, b):
        return a / b if b else float("nan")

    tables = []
    summary = []
    for scenario in scenarios:
        large = scenario == "large"
        for threads in thread_counts:
            keys = [k for (s, k) in results if s == scenario and k[1] == threads]
            if not keys:
                continue
            field = "mib_s" if large else "rps"
            per_field = "mib_per_cpu" if large else "per_cpu"
            ref = med(scenario, "nginx", threads, field)
            ref_cpu = med(scenario, "nginx", threads, per_field)
            unit = "MiB/s" if large else "requests/s"
            per_unit = "MiB per server CPU-second" if large else "requests per server CPU-second"
            rows = [f"| server | {unit} | vs nginx | server CPU per run | {per_unit} | vs nginx |",
                    "|---|---:|---:|---:|---:|---:|"]
            for name, _ in keys:
                v, c, p = med(scenario, name, threads, field), med(scenario, name, threads, "cpu"), \
                    med(scenario, name, threads, per_field)
                rows.append(f"| {name} | {v:,.0f} | {ratio(v, ref):.2f}× | {c:.2f} s | {p:,.0f} | "
                            f"{ratio(p, ref_cpu):.2f}× |")
            tables.append((scenario, threads, "\n".join(rows)))

    def target(label, value, goal):
        met = value >= goal
        how = f"met (by {value / goal - 1:+.0%})" if met else f"**missed** (by {value / goal - 1:+.0%})"
        summary.append(f"| {label} | {value:.2f}× | ≥ {goal:g}× | {how} |")

    for threads in thread_counts:
        t = f"{threads} thread{'s' if threads > 1 else ''}"
        p, n = "pysock http.server", "nginx"
        if "keepalive" in scenarios:
            target(f"keep-alive, {t}: requests/s vs nginx", ratio(med("keepalive", p, threads, "rps"),
                                                                  med("keepalive", n, threads, "rps")), 1.0)
            target(f"keep-alive, {t}: per server CPU vs nginx",
                   ratio(med("keepalive", p, threads, "per_cpu"), med("keepalive", n, threads, "per_cpu")), 1.1)
        if "pipelined" in scenarios:
            target(f"pipelined ×{PIPELINE_DEPTH}, {t}: requests/s vs nginx",
                   ratio(med("pipelined", p, threads, "rps"), med("pipelined", n, threads, "rps")), 5.0)
            target(f"pipelined ×{PIPELINE_DEPTH}, {t}: per server CPU vs raw C",
                   ratio(med("pipelined", p, threads, "per_cpu"),
                         med("pipelined", "raw epoll C, fixed reply", threads, "per_cpu")), 0.9)
            if quiet and threads == 1:
                # Not a target: the same comparison with the access log off, as
                # nginx runs here (the raw responder logs nothing either).
                q = "pysock http.server, no access log"
                off = ratio(med("pipelined", q, 1, "per_cpu"),
                            med("pipelined", "raw epoll C, fixed reply", 1, "per_cpu"))
                summary.append(f"| access log off: pipelined ×{PIPELINE_DEPTH}, {t}: per server CPU vs raw C "
                               f"| {off:.2f}× | (for comparison) | |")
        if quiet and threads == 1 and "keepalive" in scenarios:
            q = "pysock http.server, no access log"
            off = ratio(med("keepalive", q, 1, "per_cpu"), med("keepalive", n, 1, "per_cpu"))
            summary.append(f"| access log off: keep-alive, {t}: per server CPU vs nginx | {off:.2f}× "
                           f"| (for comparison) | |")
        if "large" in scenarios:
            target(f"{LARGE_MIB} MiB file, {t}: MiB/s vs nginx",
                   ratio(med("large", p, threads, "mib_s"), med("large", n, threads, "mib_s")), 0.95)
        if threads == 1:
            py = "python3 -m http.server"
            if "keepalive" in scenarios:
                target("keep-alive, 1 thread: requests/s vs python3 -m http.server",
                       ratio(med("keepalive", p, 1, "rps"), med("keepalive", py, 1, "rps")), 10.0)
            if "large" in scenarios:
                target(f"{LARGE_MIB} MiB file, 1 thread: MiB/s vs python3 -m http.server",
                       ratio(med("large", p, 1, "mib_s"), med("large", py, 1, "mib_s")), 10.0)
        if threads == 1 and {"keepalive", "pipelined"} & set(scenarios):
            for s in ("keepalive", "pipelined"):
                if s in scenarios:
                    summary.append(f"| small-file cache, {s}, 1 thread: requests/s with / without | "
                                   f"{ratio(med(s, p, 1, 'rps'), med(s, p + ', no file cache', 1, 'rps')):.2f}× "
                                   f"| (kept if it helps) | per CPU "
                                   f"{ratio(med(s, p, 1, 'per_cpu'), med(s, p + ', no file cache', 1, 'per_cpu')):.2f}× |")
    for line in summary:
        print(line)

    titles = {"keepalive": "1 KiB file, 50 keep-alive connections",
              "pipelined": f"1 KiB file, 50 connections, {PIPELINE_DEPTH} requests pipelined",
              "large": f"{LARGE_MIB} MiB file, 4 connections"}
    body = []
    for scenario, threads, table in tables:
        where = ("server on CPU 0, wrk -t1 on CPU 1" if threads == 1
                 else "server and wrk -t2 share CPUs 0-1")
        body.append(f"### {titles[scenario]}, {threads} server thread{'s' if threads > 1 else ''} ({where})\n\n"
                    f"{table}\n")
    notes_file = os.path.join(args.root, "bench", "http_perf_notes.md")
    perf_notes = ""
    if os.path.exists(notes_file):
        with open(notes_file) as f:
            perf_notes = f.read().strip()
    uname = platform.uname()
    nginx_version = subprocess.run([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True,
                                   text=True).stderr.strip().split("/")[-1]
    section = f"""<!-- BEGIN http (written by bench/run_http.sh; edits here are overwritten) -->
## Static files over HTTP: `pysock http.server` vs nginx vs a raw C responder vs CPython

wrk {args.duration} s per run, {args.rounds} rounds, every (scenario, server) pair interleaved in each
round; medians. Server CPU is utime + stime (all threads, and nginx's worker processes) from
`/proc` before and after each run.

- `pysock http.server` — the event-loop transport (`--threads N`), Release build, its small-file
  cache on (the default) or off (`--file-cache-bytes 0`); its access log (stderr, as Python's)
  goes to `/dev/null`: formatting and writing it costs time nginx, with `access_log off`, does not
  spend. The row "no access log" (`--no-access-log`, when the binary has it) is the
  like-for-like comparison; the targets are measured with the log on.
- nginx {nginx_version} (Debian nginx-light), `worker_processes N` (+ its idle master), `sendfile on`,
  `access_log off`, `keepalive_requests 1000000`.
- raw epoll C (`bench/http_raw_epoll.c`): the same 1 KiB reply, fixed, from memory; no parsing
  beyond finding each request's end, no files, no log; answers all complete pipelined requests
  with one `write`. The floor for what a server can cost.
- `python3 -m http.server` (Python {platform.python_version()}): HTTP/1.0, so wrk reconnects for
  every request; left out of the pipelined runs (it answers one request per connection).
- Pipelining: `bench/http_pipeline.lua` sends {PIPELINE_DEPTH} requests at once per connection.

{chr(10).join(body)}
### Targets

| target | measured | goal | |
|---|---:|---:|---|
{chr(10).join(summary)}

{perf_notes}

Machine: {os.cpu_count()} CPUs (`nproc`), Linux {uname.release}, {datetime.date.today().isoformat()}.
Command: `bench/run_http.sh` (ROUNDS={args.rounds} DURATION={args.duration}).
{"Errors seen: " + "; ".join(notes) if notes else "No wrk socket errors or non-2xx responses."}
<!-- END http -->"""

    if args.no_write:
        print(section)
        return
    write_section(args.root, "http", section)


def write_section(root, name, section):
    """Replaces docs/benchmarks.md's BEGIN/END `name` section (or appends it)."""
    doc = os.path.join(root, "docs", "benchmarks.md")
    with open(doc) as f:
        text = f.read()
    pattern = re.compile(r"<!-- BEGIN " + name + r" .*?<!-- END " + name + r" -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc, "w") as f:
        f.write(text)
    print(f"wrote the {name} section of {doc}")


if __name__ == "__main__":
    main()

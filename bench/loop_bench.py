#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Driver of bench/run_loop.sh (run that, not this): the event-loop echo
benchmark. Writes docs/benchmarks.md's section between <!-- BEGIN loop -->
and <!-- END loop -->.

1. Throughput: 64-byte ping-pong at 1, 50 and 1,000 connections. Every
   repetition starts each server in turn (server on CPU 0, bench/echo_load on
   CPU 1), interleaved A B C ... A B C; medians of messages/s and of messages
   per server CPU-second (utime+stime from /proc/<pid>/stat).
2. User-space instructions per echoed message under callgrind at 50
   connections: (Ir_long - Ir_short) / (messages_long - messages_short).
   io_uring servers are skipped (valgrind does not follow io_uring).
3. Idle memory: VmRSS of each server holding N idle connections (each echoed
   once), and of the same server with none."""
import argparse
import datetime
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SIZE = 64
BULK = [16 * 1024, 64 * 1024]  # message sizes of the large-message scenario
BULK_CONNS = 10
UNIX_CONNS = [50, 1000]
URING_SOCK = "pysock sock_* on io_uring"
URING_STREAMS = "pysock streams (read_into) on io_uring"
SOCK_RECV = "pysock sock_recv/sock_sendall"
URING_SOCK_RECV = "pysock sock_recv on io_uring"
BEGIN = "<!-- BEGIN loop -->"
END = "<!-- END loop -->"


def start_server(argv, timeout=60.0):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.5)
        if r:
            line = proc.stdout.readline()
            m = re.search(rb"listening on [0-9.]+:([0-9]+)", line)
            if m:
                return proc, int(m.group(1))
            if re.search(rb"listening on /", line):  # --unix PATH
                return proc, 0
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{argv} did not start: {line!r}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_load(load, port, conns, extra, pin=True, timeout=120, size=SIZE):
    argv = (["taskset", "-c", "1"] if pin else []) + [
        load, "--port", str(port), "--connections", str(conns), "--size", str(size)] + extra
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    m = re.search(rb"messages=(\d+) seconds=([0-9.e+-]+)", out)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"echo_load failed ({proc.returncode}): {out!r} {err!r}")
    return int(m.group(1)), float(m.group(2))


def throughput(argv, load, conns, duration, size=SIZE, unix_path=None):
    where = ["--unix", unix_path] if unix_path else []
    proc, port = start_server(["taskset", "-c", "0"] + argv + ["--port", "0"] + where)
    try:
        time.sleep(0.1)
        before = cpu_seconds(proc.pid)
        messages, seconds = run_load(load, port, conns, ["--duration", str(duration)] + where,
                                     size=size)
        after = cpu_seconds(proc.pid)
    finally:
        stop(proc)
    cpu = after - before
    return {"rate": messages / seconds, "per_cpu": messages / cpu if cpu > 0 else float("nan"),
            "cpu_pct": 100 * cpu / seconds}


def callgrind(argv, load, conns, messages, keep=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc, port = start_server(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                                  + argv + ["--port", "0", "--count", str(conns)], timeout=120)
        try:
            got, _ = run_load(load, port, conns, ["--messages", str(messages)], pin=False, timeout=300)
            proc.wait(300)
        finally:
            stop(proc)
        text = open(out).read()
        if keep:
            shutil.copy(out, keep)
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if not m:
        raise RuntimeError("no instruction total in the callgrind output")
    return got, int(m.group(1))


def idle_memory(argv, load, conns):
    proc, port = start_server(["taskset", "-c", "0"] + argv + ["--port", "0"])
    try:
        time.sleep(0.3)
        empty = rss_kib(proc.pid)
        lp = subprocess.Popen(["taskset", "-c", "1", load, "--port", str(port), "--connections",
                               str(conns), "--size", str(SIZE), "--messages", "1", "--hold", "30"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        r, _, _ = select.select([lp.stdout], [], [], 60)
        line = lp.stdout.readline() if r else b""
        if b"messages=" not in line:
            lp.kill()
            raise RuntimeError(f"echo_load did not hold {conns} connections: {line!r} "
                               f"{lp.stderr.read()!r}")
        time.sleep(0.5)
        held = rss_kib(proc.pid)
        lp.kill()
        lp.wait()
    finally:
        stop(proc)
    return empty, held


def write_section(path, section):
    block = f"{BEGIN}\n{section.rstrip()}\n{END}\n"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start, end = text.find("<!-- BEGIN loop"), text.find(END)
    if start >= 0 and end > start:
        text = text[:start] + block + text[end + len(END):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--conns", default="1,50,1000")
    ap.add_argument("--short", type=int, default=200)
    ap.add_argument("--long", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--asyncio-python", default="/usr/bin/python3")
    ap.add_argument("--skip", default="",
                    help="comma-separated phases to skip: tput,bulk,unix,cg,mem")
    a = ap.parse_args()
    B = lambda n: os.path.join(a.build, n)
    py = a.asyncio_python
    apy = os.path.join(a.root, "bench", "baseline_asyncio_echo.py")
    load = B("echo_load")
    raw = "raw epoll C"
    servers = {
        raw: [B("raw_epoll_echo")],
        "pysock sock_recv_into/sock_sendall": [B("async_echo_pysock"), "--mode", "sock"],
        SOCK_RECV: [B("async_echo_pysock"), "--mode", "sock-recv"],
        "pysock streams (read_into)": [B("async_echo_pysock"), "--mode", "streams"],
        "pysock streams (read)": [B("async_echo_pysock"), "--mode", "streams-read"],
        # the same programs on the io_uring backend (env execs the server: same pid)
        URING_SOCK: ["env", "PYSOCK_LOOP=io_uring", B("async_echo_pysock"), "--mode", "sock"],
        URING_SOCK_RECV: ["env", "PYSOCK_LOOP=io_uring", B("async_echo_pysock"), "--mode",
                          "sock-recv"],
        URING_STREAMS: ["env", "PYSOCK_LOOP=io_uring", B("async_echo_pysock"), "--mode", "streams"],
        # memory only: the same sock_* server with a 64-byte buffer, to separate
        # the library's per-connection cost from the application's 4 KiB buffer
        "pysock sock_*, 64 B buffer": [B("async_echo_pysock"), "--mode", "sock", "--buffer", "64"],
        "raw io_uring C": [B("baseline_uring_echo")],
        "asio": [B("baseline_asio_echo")],
        "libuv": [B("baseline_libuv_echo")],
        "CPython asyncio": [py, apy],
        "CPython asyncio + uvloop": [py, apy, "--uvloop"],
    }
    mem_only = {"pysock sock_*, 64 B buffer"}
    in_tput = [n for n in servers if n != "pysock streams (read)" and n not in mem_only]
    uring = {"raw io_uring C", URING_SOCK, URING_SOCK_RECV, URING_STREAMS}
    conns_list = [int(c) for c in a.conns.split(",")]
    skip = set(a.skip.split(",")) - {""}
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    t0 = time.monotonic()

    # 1. throughput
    res = {(n, c): [] for n in in_tput for c in conns_list}
    if "tput" not in skip:
        for rep in range(a.reps):
            for c in conns_list:
                for n in in_tput:
                    r = throughput(servers[n], load, c, a.duration)
                    res[(n, c)].append(r)
                    print(f"rep {rep + 1} conns {c:5d} {n:36s} {r['rate']:9.0f} msg/s "
                          f"{r['per_cpu']:9.0f} msg/CPU-s  CPU {r['cpu_pct']:5.1f}%", flush=True)
    med = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in res.items() if v}

    # 1b. bulk: large messages on a few connections (the kernel's copies
    # dominate; the sock_recv_into server gets a 64 KiB buffer like raw C's)
    def bulk_argv(n):
        argv = servers[n]
        return argv + ["--buffer", "65536"] if argv[-1] == "sock" else argv
    bulk_res = {(n, b): [] for n in in_tput for b in BULK}
    if "bulk" not in skip:
        for rep in range(a.reps):
            for b in BULK:
                for n in in_tput:
                    r = throughput(bulk_argv(n), load, BULK_CONNS, a.duration, size=b)
                    bulk_res[(n, b)].append(r)
                    print(f"rep {rep + 1} bulk {b:6d} B {n:36s} {r['rate'] * b / 1e6:8.1f} MB/s "
                          f"{r['per_cpu']:9.0f} msg/CPU-s  CPU {r['cpu_pct']:5.1f}%", flush=True)
    bulk = {k: {f: statistics.median(x[f] for x in v) for f in v[0]}
            for k, v in bulk_res.items() if v}

    # 1c. Unix stream sockets (64-byte ping-pong): no TCP stack under the
    # system calls, so the loop's own cost weighs more
    in_unix = [n for n in in_tput if n == raw or (n.startswith("pysock") and "read)" not in n)]
    unix_res = {(n, c): [] for n in in_unix for c in UNIX_CONNS}
    if "unix" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "echo.sock")
            for rep in range(a.reps):
                for c in UNIX_CONNS:
                    for n in in_unix:
                        r = throughput(servers[n], load, c, a.duration, unix_path=path)
                        unix_res[(n, c)].append(r)
                        print(f"rep {rep + 1} unix {c:5d} {n:36s} {r['rate']:9.0f} msg/s "
                              f"{r['per_cpu']:9.0f} msg/CPU-s  CPU {r['cpu_pct']:5.1f}%", flush=True)
    unix = {k: {f: statistics.median(x[f] for x in v) for f in v[0]}
            for k, v in unix_res.items() if v}

    # 2. callgrind
    ir = {}
    if "cg" not in skip:
        for n, argv in servers.items():
            if n in uring or n in mem_only:
                continue
            s, l = a.short, a.long
            if n.startswith("CPython"):
                s, l = s // 4, l // 4
            keep = None
            if n.startswith("pysock") or n == raw:
                keep = B("callgrind." + re.sub(r"[^a-z_]+", "_", n.lower()).strip("_") + ".out")
            m1, i1 = callgrind(argv, load, 50, s)
            m2, i2 = callgrind(argv, load, 50, l, keep=keep)
            ir[n] = (i2 - i1) / (m2 - m1)
            print(f"callgrind {n:36s} {ir[n]:9.1f} instructions/message", flush=True)

    # 3. idle memory
    mem = {}
    if "mem" not in skip:
        for n, argv in servers.items():
            try:
                mem[n] = idle_memory(argv, load, a.idle)
            except RuntimeError as e:
                print(f"idle memory {n}: {e}", flush=True)
                continue
            print(f"idle {n:36s} {mem[n][0]} KiB empty, {mem[n][1]} KiB with {a.idle} connections",
                  flush=True)
    elapsed = time.monotonic() - t0

    # report
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_after = " ".join(open("/proc/loadavg").read().split()[:3])
    L = [
        "## Event loop echo server",
        "",
        f"pysock's event loop (`bench/async_echo_pysock.cpp`: `--mode sock` is a coroutine per "
        f"connection on `sock_accept`/`sock_recv_into`/`sock_sendall` with a 4 KiB buffer; "
        f"`--mode sock-recv` the same with `sock_recv(conn, 65536)`, whose bytes are made when "
        f"data has come (no buffer while waiting); "
        f"`--mode streams` is `start_server` + `read_into` + `write` + `drain`; `--mode "
        f"streams-read` uses `read(65536)`; the rows \"on io_uring\" run the same program with "
        f"`PYSOCK_LOOP=io_uring`) against hand-written baselines: `bench/raw_epoll_echo.c`, "
        f"`bench/baseline_uring_echo.c` (liburing, one recv/send per connection in flight), "
        f"`bench/baseline_asio_echo.cpp` (standalone asio, `async_read_some`/`async_write`), "
        f"`bench/baseline_libuv_echo.c` (`uv_try_write`), `bench/baseline_asyncio_echo.py` "
        f"(asyncio Protocol echoing in `data_received`, with and without uvloop). "
        f"{SIZE}-byte ping-pong from `bench/echo_load.cpp`; server `taskset -c 0`, load "
        f"`taskset -c 1`; server CPU from `/proc/<pid>/stat`; {a.reps} interleaved repetitions of "
        f"{a.duration:g} s per server and connection count, medians shown.",
        "",
        f"- Date: {now}; {os.cpu_count()} CPUs (`nproc`), {cpu_model}; kernel `{platform.release()}`; "
        f"asyncio on {py} ({subprocess.run([py, '-V'], capture_output=True, text=True).stdout.strip()})",
        f"- Load average before / after: {load_before} / {load_after}; whole run {elapsed / 60:.1f} min",
        f"- Command: `bench/run_loop.sh` (REPS={a.reps} DURATION={a.duration:g} IDLE={a.idle}); "
        f"pysock built `-DCMAKE_BUILD_TYPE=Release`, C/C++ servers `-O2`",
        "",
    ]
    if med:
        L += ["Messages/s and messages per server CPU-second (median), and per-CPU ratio to raw "
              "epoll C:", "",
              "| server | " + " | ".join(f"{c} conn: msg/s | msg/CPU-s | vs raw" for c in conns_list) + " |",
              "|---|" + "---:|---:|---:|" * len(conns_list)]
        for n in in_tput:
            cells = []
            for c in conns_list:
                m, r = med[(n, c)], med[(raw, c)]
                cells.append(f"{m['rate']:,.0f} | {m['per_cpu']:,.0f} | {m['per_cpu'] / r['per_cpu']:.2f}×")
            L.append(f"| {n} | " + " | ".join(cells) + " |")
        L += ["", "Server CPU use (median % of one CPU): " + "; ".join(
            f"{n}: " + "/".join(f"{med[(n, c)]['cpu_pct']:.0f}" for c in conns_list) for n in in_tput)
            + f" (at {'/'.join(map(str, conns_list))} connections).", ""]
    if bulk:
        L += [f"Large messages: {BULK_CONNS} connections echoing "
              + " and ".join(f"{b // 1024} KiB" for b in BULK)
              + " messages (MB/s echoed, messages per server CPU-second, and per-CPU ratio to raw "
              "epoll C and to CPython asyncio; pysock's sock_recv_into server with a 64 KiB "
              "buffer here):", "",
              "| server | " + " | ".join(f"{b // 1024} KiB: MB/s | msg/CPU-s | vs raw | vs asyncio"
                                         for b in BULK) + " |",
              "|---|" + "---:|---:|---:|---:|" * len(BULK)]
        for n in in_tput:
            cells = []
            for b in BULK:
                m, r, p = bulk[(n, b)], bulk[(raw, b)], bulk[("CPython asyncio", b)]
                cells.append(f"{m['rate'] * b / 1e6:,.0f} | {m['per_cpu']:,.0f} | "
                             f"{m['per_cpu'] / r['per_cpu']:.2f}× | {m['per_cpu'] / p['per_cpu']:.1f}×")
            L.append(f"| {n} | " + " | ".join(cells) + " |")
        L.append("")
    if unix:
        L += ["Unix stream sockets, 64-byte ping-pong (messages per server CPU-second, median, "
              "and the ratio to raw epoll C on the same socket type):", "",
              "| server | " + " | ".join(f"{c} conn: msg/s | msg/CPU-s | vs raw" for c in UNIX_CONNS)
              + " |", "|---|" + "---:|---:|---:|" * len(UNIX_CONNS)]
        for n in in_unix:
            cells = []
            for c in UNIX_CONNS:
                m, r = unix[(n, c)], unix[(raw, c)]
                cells.append(f"{m['rate']:,.0f} | {m['per_cpu']:,.0f} | {m['per_cpu'] / r['per_cpu']:.2f}×")
            L.append(f"| {n} | " + " | ".join(cells) + " |")
        L.append("")
    if ir:
        L += [f"User-space instructions per echoed message, callgrind, 50 connections (short "
              f"{a.short}, long {a.long} messages per connection; CPython a quarter of that); "
              f"io_uring skipped (valgrind does not follow it):", "",
              "| server | instructions/message | vs raw C |", "|---|---:|---:|"]
        for n, v in ir.items():
            L.append(f"| {n} | {v:,.0f} | {v / ir[raw]:.1f}× |")
        L += ["", "Under callgrind the server runs far slower than the load generator, so the "
              "next message is usually queued before the server asks for it: a server that "
              "tries `recv()` first then skips the wait for most messages and the count shows "
              "little of its wait path. pysock's `sock_*` path reads once per event (a short "
              "read means an empty queue, see docs/loop.md), as the raw C server does, so "
              "every message it echoes goes through `epoll_wait`, the dispatcher, a "
              "suspension and a resumption, here as on a real run.", ""]
    if mem:
        L += [f"Idle memory: VmRSS with no connection and with {a.idle:,} idle connections "
              f"(each echoed one 64-byte message first):", "",
              "| server | RSS empty | RSS with connections | difference per connection |",
              "|---|---:|---:|---:|"]
        for n, (e, h) in mem.items():
            L.append(f"| {n} | {e / 1024:.1f} MiB | {h / 1024:.1f} MiB | {(h - e) * 1024 / a.idle:,.0f} B |")
        L.append("")

    # targets
    def verdict(ok):
        return "met" if ok else "**not met**"
    T = ["Targets (issue 5):", ""]
    for n in ["pysock sock_recv_into/sock_sendall", SOCK_RECV, "pysock streams (read_into)",
              "pysock streams (read)", URING_SOCK_RECV]:
        if med and (n, conns_list[0]) in med and n not in uring:
            ratios = [med[(n, c)]["per_cpu"] / med[(raw, c)]["per_cpu"] for c in conns_list]
            ok = all(x >= 0.98 for x in ratios)
            T.append(f"- {n}: ≥ 0.98× raw epoll C per server CPU-second at "
                     f"{'/'.join(map(str, conns_list))} connections: "
                     + " / ".join(f"{x:.2f}×" for x in ratios) + f" — {verdict(ok)}")
            py_r = [med[(n, c)]["per_cpu"] / med[("CPython asyncio", c)]["per_cpu"] for c in conns_list]
            T.append(f"- {n}: ≥ 1.4× CPython asyncio per CPU: "
                     + " / ".join(f"{x:.2f}×" for x in py_r) + f" — {verdict(all(x >= 1.4 for x in py_r))}")
        if n in ir:
            T.append(f"- {n}: ≤ 120 user-space instructions per message: {ir[n]:,.0f} — "
                     f"{verdict(ir[n] <= 120)}")
        if n in mem:
            e, h = mem[n]
            T.append(f"- {n}: {a.idle:,} idle connections in ≤ 10 MiB RSS: {h / 1024:.1f} MiB "
                     f"({(h - e) / 1024:.1f} MiB above the empty server) — {verdict(h <= 10 * 1024)}")
    if bulk:
        b = BULK[-1]
        for n in ["pysock sock_recv_into/sock_sendall", "pysock streams (read_into)"]:
            x = bulk[(n, b)]["per_cpu"] / bulk[("CPython asyncio", b)]["per_cpu"]
            y = bulk[(n, b)]["rate"] / bulk[("CPython asyncio", b)]["rate"]
            T.append(f"- {n}: ≥ 10× CPython asyncio at {b // 1024} KiB messages: {x:.1f}× per "
                     f"server CPU-second, {y:.1f}× MB/s — {verdict(x >= 10)}")
    # The io_uring backend against the epoll one, same program, same scenario.
    for n, base in [(URING_SOCK, "pysock sock_recv_into/sock_sendall"),
                    (URING_SOCK_RECV, SOCK_RECV),
                    (URING_STREAMS, "pysock streams (read_into)")]:
        scen = []  # (label, ratio) for every scenario measured
        if med:
            scen += [(f"TCP {c}", med[(n, c)]["per_cpu"] / med[(base, c)]["per_cpu"])
                     for c in conns_list]
        if bulk:
            scen += [(f"{b // 1024} KiB", bulk[(n, b)]["per_cpu"] / bulk[(base, b)]["per_cpu"])
                     for b in BULK]
        if unix:
            scen += [(f"Unix {c}", unix[(n, c)]["per_cpu"] / unix[(base, c)]["per_cpu"])
                     for c in UNIX_CONNS if (n, c) in unix]
        if not scen:
            continue
        T.append(f"- {n} vs epoll, per server CPU-second, never below 0.95× and ≥ 1.10× in one "
                 f"scenario: " + ", ".join(f"{lbl} {x:.2f}×" for lbl, x in scen) + " — "
                 + verdict(all(x >= 0.95 for _, x in scen) and any(x >= 1.10 for _, x in scen)))
    n = "pysock sock_*, 64 B buffer"
    if n in mem:
        e, h = mem[n]
        T.append(f"- {n} (the library's own cost): {a.idle:,} idle connections in ≤ 10 MiB RSS: "
                 f"{h / 1024:.1f} MiB ({(h - e) / 1024:.1f} MiB above the empty server) — "
                 f"{verdict(h <= 10 * 1024)}")
    L += T + [""]
    if med:
        L += ["Per repetition (msg/s / msg per server CPU-s):", "",
              "| conns | rep | " + " | ".join(in_tput) + " |", "|---|---|" + "---:|" * len(in_tput)]
        for c in conns_list:
            for rep in range(a.reps):
                L.append(f"| {c} | {rep + 1} | " + " | ".join(
                    f"{res[(n, c)][rep]['rate']:,.0f} / {res[(n, c)][rep]['per_cpu']:,.0f}"
                    for n in in_tput) + " |")
        L.append("")
    path = os.path.join(a.root, "docs", "benchmarks.md")
    write_section(path, "\n".join(L))
    print(f"wrote {path} after {elapsed:.0f} s")


if __name__ == "__main__":
    main()

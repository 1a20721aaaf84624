#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Driver of bench/run_selectors.sh (run that, not this): measures the three
echo servers side by side and writes docs/benchmarks.md's section
"Selectors echo server".

Throughput: each round starts every server in turn (pinned to CPU 0), runs
echo_load (pinned to CPU 1) for --duration seconds of 64-byte ping-pong over
50 connections, and reads the server's CPU time from /proc/<pid>/stat before
and after. Rounds interleave the servers; medians are reported.

Instructions: each server runs under valgrind --tool=callgrind twice, once
for a short and once for a long fixed number of messages; (Ir_long -
Ir_short) / (messages_long - messages_short) is the user-space cost of one
echoed message, start-up and shut-down cancelling out."""
import argparse
import datetime
import os
import platform
import re
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

CONNECTIONS = 50
SIZE = 64


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
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not start: {line!r}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(load, port, extra, pin=True):
    argv = (["taskset", "-c", "1"] if pin else []) + [
        load, "--port", str(port), "--connections", str(CONNECTIONS), "--size", str(SIZE)] + extra
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    m = re.search(r"messages=(\d+) seconds=([0-9.e+-]+)", out)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"echo_load failed ({proc.returncode}): {out} {err}")
    return int(m.group(1)), float(m.group(2)), usage.ru_utime + usage.ru_stime


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def throughput_round(name, argv, load, duration):
    proc, port = start_server(["taskset", "-c", "0"] + argv + ["--port", "0"])
    try:
        time.sleep(0.2)
        before = cpu_seconds(proc.pid)
        messages, seconds, load_cpu = run_load(load, port, ["--duration", str(duration)])
        after = cpu_seconds(proc.pid)
    finally:
        stop(proc)
    server_cpu = after - before
    return {
        "rate": messages / seconds,
        "per_cpu": messages / server_cpu if server_cpu > 0 else float("nan"),
        "server_cpu_pct": 100 * server_cpu / seconds,
        "load_cpu_pct": 100 * load_cpu / seconds,
    }


def callgrind_ir(argv, load, messages):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc, port = start_server(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                                  + argv + ["--port", "0", "--count", str(CONNECTIONS)],
                                  timeout=120)
        try:
            got, _, _ = run_load(load, port, ["--messages", str(messages)], pin=False)
            proc.wait(300)
        finally:
            stop(proc)
        with open(out) as f:
            text = f.read()
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if not m:
        raise RuntimeError("no instruction total in the callgrind output")
    return got, int(m.group(1))


BEGIN = "<!-- BEGIN selectors (written by bench/run_selectors.sh; edits here are overwritten) -->"
END = "<!-- END selectors -->"


def write_section(path, section):
    """Replaces this benchmark's marked block in docs/benchmarks.md (other
    scripts own the other blocks), or appends it."""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}\n"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start, end = text.find(BEGIN), text.find(END)
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
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--short", type=int, default=200, help="messages per connection, short run")
    ap.add_argument("--long", type=int, default=1000, help="messages per connection, long run")
    a = ap.parse_args()
    load = os.path.join(a.build, "echo_load")
    servers = {
        "raw epoll C": [os.path.join(a.build, "raw_epoll_echo")],
        "pysock default_selector": [os.path.join(a.build, "examples", "selectors_echo_server"),
                                    "--quiet"],
        "CPython selectors": [sys.executable, os.path.join(a.root, "bench",
                                                           "cpython_selectors_echo.py")],
    }

    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    results = {name: [] for name in servers}
    for r in range(a.rounds):
        for name, argv in servers.items():
            res = throughput_round(name, argv, load, a.duration)
            results[name].append(res)
            print(f"round {r + 1} {name:24s} {res['rate']:10.0f} msg/s  "
                  f"{res['per_cpu']:10.0f} msg/server-CPU-s  server CPU {res['server_cpu_pct']:5.1f}%  "
                  f"load CPU {res['load_cpu_pct']:5.1f}%", flush=True)

    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]}
           for name, rs in results.items()}

    ir = {}
    for name, argv in servers.items():
        short, long_ = a.short, a.long
        if name.startswith("CPython"):
            short, long_ = a.short // 2, a.long // 2  # CPython under valgrind is slow
        m1, i1 = callgrind_ir(argv, load, short)
        m2, i2 = callgrind_ir(argv, load, long_)
        ir[name] = {"short": (m1, i1), "long": (m2, i2), "per_msg": (i2 - i1) / (m2 - m1)}
        print(f"callgrind {name:24s} {ir[name]['per_msg']:10.1f} instructions/message", flush=True)

    raw, ours, cpy = "raw epoll C", "pysock default_selector", "CPython selectors"
    per_cpu_vs_raw = med[ours]["per_cpu"] / med[raw]["per_cpu"]
    per_cpu_vs_py = med[ours]["per_cpu"] / med[cpy]["per_cpu"]
    ir_vs_raw = ir[ours]["per_msg"] / ir[raw]["per_msg"]

    def verdict(ok):
        return "met" if ok else "**not met**"

    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Selectors echo server",
        "",
        f"pysock's `examples/selectors_echo_server` (`default_selector<connection*>`, i.e. epoll) "
        f"against a hand-written level-triggered epoll C server (`bench/raw_epoll_echo.c`, 64 KiB "
        f"buffer) and CPython's `selectors` (`bench/cpython_selectors_echo.py`), all doing the same "
        f"thing: {SIZE}-byte ping-pong over {CONNECTIONS} loopback connections driven by "
        f"`bench/echo_load.cpp`. Server pinned with `taskset -c 0`, load generator with "
        f"`taskset -c 1`; server CPU read from `/proc/<pid>/stat`; {a.rounds} interleaved rounds "
        f"of {a.duration:g} s, medians shown.",
        "",
        f"- Date: {now}; machine: {os.cpu_count()} CPUs (`nproc`), {cpu_model}; kernel "
        f"{platform.release()}; {platform.python_implementation()} {platform.python_version()}",
        f"- Load average before the run: {load_before}",
        f"- Command: `bench/run_selectors.sh` (ROUNDS={a.rounds} DURATION={a.duration:g}); "
        f"pysock built `-DCMAKE_BUILD_TYPE=Release`, the C server with `cc -O2`",
        "- Reading: 64-byte ping-pong is latency-bound here (neither side saturates its CPU), "
        "so messages/s mostly measures wake-up latency; messages per server CPU-second and "
        "instructions per message are the comparisons that mean something. A 64-byte echo costs "
        "microseconds of kernel time and only a few hundred user-space instructions, so servers "
        "making the same system calls land within noise of each other per CPU-second.",
        "",
        "| server | messages/s | server CPU | load generator CPU | messages per server CPU-second | per CPU-s vs raw C |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in servers:
        m = med[name]
        lines.append(f"| {name} | {m['rate']:,.0f} | {m['server_cpu_pct']:.0f}% | "
                     f"{m['load_cpu_pct']:.0f}% | {m['per_cpu']:,.0f} | "
                     f"{m['per_cpu'] / med[raw]['per_cpu']:.2f}× |")
    lines += [
        "",
        "User-space instructions per echoed message (callgrind; "
        f"short run {a.short}, long run {a.long} messages per connection, CPython half of that; "
        "difference of instructions / difference of messages):",
        "",
        "| server | instructions/message | vs raw C |",
        "|---|---:|---:|",
    ]
    for name in servers:
        lines.append(f"| {name} | {ir[name]['per_msg']:,.0f} | "
                     f"{ir[name]['per_msg'] / ir[raw]['per_msg']:.1f}× |")
    lines += [
        "",
        "Targets:",
        "",
        f"- messages per server CPU-second ≥ 0.95× raw C: {per_cpu_vs_raw:.2f}× — "
        f"{verdict(per_cpu_vs_raw >= 0.95)}",
        f"- messages per server CPU-second ≥ 1.4× CPython: {per_cpu_vs_py:.2f}× — "
        f"{verdict(per_cpu_vs_py >= 1.4)}",
        f"- instructions per message ≤ 5× raw C: {ir_vs_raw:.1f}× — {verdict(ir_vs_raw <= 5)}",
        "",
        "Per round (messages/s, messages per server CPU-second):",
        "",
        "| round | " + " | ".join(servers) + " |",
        "|---|" + "---:|" * len(servers),
    ]
    for r in range(a.rounds):
        cells = [f"{results[n][r]['rate']:,.0f} / {results[n][r]['per_cpu']:,.0f}" for n in servers]
        lines.append(f"| {r + 1} | " + " | ".join(cells) + " |")
    lines.append("")
    path = os.path.join(a.root, "docs", "benchmarks.md")
    write_section(path, "\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Driver of bench/run_tls.sh: HTTPS, `pysock http.server --certfile` vs nginx.

Both servers get the same ECDSA P-256 certificate (signed by a throwaway CA
made with the `openssl` command), TLS 1.3 and the same suite,
TLS_AES_128_GCM_SHA256. pysock http.server has no option for TLS 1.3 suites
(Python's defaults, server preference: AES-256-GCM first), so the suite is
pinned on the client side for both servers: wrk and openssl s_time run with
OPENSSL_CONF pointing at a file whose system_default section offers only that
suite; nginx also says `ssl_conf_command Ciphersuites` itself. What each
server actually negotiates (suite, key exchange group, session tickets sent)
is checked with `openssl s_client` before the runs and printed.

Scenarios, server on CPU 0 and the load on CPU 1, one server thread:
  keepalive  wrk -c50, a 1 KiB file, keep-alive (HTTPS requests/s)
  close      wrk -c50 with `Connection: close`: every request is a new TCP
             connection and a full handshake (handshakes/s)
  full       bench/tls_handshake_load.c -c50: 50 connections at once, each a
             full handshake (no tickets, no session cache: nothing to resume),
             one GET /1k.bin, close; the next connection starts at once
             (concurrent full handshakes/s). wrk cannot do this: it always
             resumes from its client session cache.
  stime      openssl s_time -new -www /1k.bin: one connection at a time, a full
             handshake each (sequential handshakes/s, latency bound)
Rounds interleave every (scenario, server) pair; medians. Server CPU is
utime + stime of the server and its children from /proc; load CPU from
RUSAGE_CHILDREN. Helpers come from bench/http_bench.py.
"""
import argparse
import datetime
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import (  # noqa: E402
    cpu_seconds,
    free_port,
    median,
    process_tree,
    wait_listening,
    write_section,
)

SUITE = "TLS_AES_128_GCM_SHA256"
SERVER_CPU, LOAD_CPU = "0", "1"

NGINX_TLS_CONF = """\
daemon off;
master_process on;
worker_processes 1;
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
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites {suite};
        root {docroot};
    }}
}}
"""

# The client side's OpenSSL configuration: only TLS 1.3 and only SUITE.
CLIENT_CONF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = {suite}
"""

SERVERS = [("pysock http.server", "pysock"), ("nginx", "nginx")]
TITLES = {
    "keepalive": "HTTPS requests/s: 1 KiB file, 50 keep-alive connections (wrk)",
    "close": "Handshakes/s, resumed: 1 KiB file, 50 connections, `Connection: close` — a new connection "
             "and a TLS 1.3 resumption (PSK + X25519) per request (wrk)",
    "full": "Handshakes/s, full (ECDSA signature + X25519), 50 concurrent connections: "
            "`bench/tls_handshake_load.c -c50`, no tickets and no session cache, one request per connection",
    "stime": "Handshakes/s, full (ECDSA signature + X25519), sequential: `openssl s_time -new -www /1k.bin`, "
             "one connection at a time",
}
FULL_CONNECTIONS = 50


def make_certs(tmp):
    """A CA and a server certificate for localhost / 127.0.0.1, ECDSA P-256."""
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=tmp)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/O=pysock bench/CN=bench CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(tmp, "ext.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "30", "-sha256", "-extfile", "ext.cnf")
    return os.path.join(tmp, "server.pem"), os.path.join(tmp, "server.key"), os.path.join(tmp, "ca.pem")


def start_server(args, tmp, docroot, kind, cert, key):
    port = free_port()
    pin = ["taskset", "-c", SERVER_CPU]
    if kind == "pysock":
        # The access log (stderr) goes to /dev/null, as nginx has access_log off.
        cmd = pin + [args.pysock, "http.server", str(port), "-b", "127.0.0.1", "-d", docroot, "--threads", "1",
                     "--certfile", cert, "--keyfile", key]
    else:
        conf = os.path.join(tmp, f"nginx-{port}.conf")
        with open(conf, "w") as f:
            f.write(NGINX_TLS_CONF.format(tmp=tmp, port=port, docroot=docroot, cert=cert, key=key, suite=SUITE))
        cmd = pin + [shutil.which("nginx") or "/usr/sbin/nginx", "-p", tmp, "-c", conf]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, proc)
    return port, proc


def negotiated(port, ca, env, tmp):
    """What a client with the pinned configuration gets: suite, key exchange,
    session tickets, and whether a second connection resumes the session."""
    sess = os.path.join(tmp, f"session-{port}.pem")

    def s_client(*extra):
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                            "-CAfile", ca, "-verify_return_error", "-ign_eof", *extra],
                           input="GET /1k.bin HTTP/1.0\r\nHost: localhost\r\n\r\n", capture_output=True,
                           text=True, errors="replace", env=env, timeout=20)
        return p.stdout + p.stderr

    out = s_client("-sess_out", sess)
    again = s_client("-sess_in", sess)
    suite = re.search(r"Cipher is (\S+)", out)
    group = re.search(r"Server Temp Key: ([^\n]+)", out)
    verify = re.search(r"Verify return code: (\d+)", out)
    status = re.search(r"HTTP/1\.[01] (\d+)", out)
    return {"suite": suite.group(1) if suite else "?", "group": group.group(1) if group else "?",
            "verified": bool(verify and verify.group(1) == "0"),
            "tickets": out.count("Post-Handshake New Session Ticket arrived"),
            "resumes": "Reused, TLS" in again, "status": status.group(1) if status else "?"}


def ratio(a, b):
    return a / b if b else float("nan")


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_load(args, port, scenario, duration, env):
    pin = ["taskset", "-c", LOAD_CPU]
    url = f"https://127.0.0.1:{port}/1k.bin"
    if scenario == "stime":
        cmd = pin + ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(duration),
                     "-www", "/1k.bin", "-ciphersuites", SUITE]
    elif scenario == "full":
        cmd = pin + [args.load, "-p", str(port), "-c", str(FULL_CONNECTIONS), "-d", str(duration),
                     "-u", "/1k.bin", "-s", SUITE]
    else:
        cmd = pin + ["wrk", "-t1", "-c50", f"-d{duration}s"]
        if scenario == "close":
            cmd += ["-H", "Connection: close"]
        cmd += [url]
    before = children_cpu()
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env).stdout
    wall = time.monotonic() - t0
    load_cpu = children_cpu() - before
    problems = ""
    if scenario == "stime":
        # s_time's "real seconds" are whole seconds (time(2)); the wall
        # clock around it is finer and overstates the run by its start-up.
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if not m:
            raise RuntimeError(f"cannot parse openssl s_time output:\n{out}")
        requests = int(m.group(1))
        rate = requests / wall
    elif scenario == "full":
        fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        if "handshakes_per_s" not in fields:
            raise RuntimeError(f"cannot parse tls_handshake_load output:\n{out}")
        if int(fields["resumed"]) != 0:
            # The scenario's whole point: a resumed handshake would make the row a lie.
            raise RuntimeError(f"tls_handshake_load saw {fields['resumed']} resumed handshakes:\n{out}")
        requests = int(fields["ok"])
        rate = float(fields["handshakes_per_s"])
        errors = {k: int(fields[k]) for k in ("connect_errors", "tls_errors", "http_errors")}
        problems = " ".join(f"{k}: {v}" for k, v in errors.items() if v)
    else:
        m = re.search(r"(\d+) requests in", out)
        if not m:
            raise RuntimeError(f"cannot parse wrk output:\n{out}")
        requests = int(m.group(1))
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        problems = " ".join(x for x in ((bad.group(0) if bad else ""),
                                        (f"socket errors: {errors.group(1)}" if errors else "")) if x)
    return {"rate": rate, "requests": requests, "load_cpu": load_cpu, "wall": wall, "problems": problems}


def perf_look(args, port, proc, scenario, env, tmp, symbols):
    """A short `perf record -e cpu-clock` of a server under load: its CPU by
    library, and (symbols) its top functions."""
    if not shutil.which("perf"):
        return "perf is not installed."
    data = os.path.join(tmp, f"perf-{port}.data")
    pids = ",".join(str(p) for p in process_tree(proc.pid))
    rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-o", data, "-p", pids,
                            "--", "sleep", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    run_load(args, port, scenario, 4, env)
    _, err = rec.communicate(timeout=30)
    if rec.returncode != 0:
        return f"perf record failed: {err.strip().splitlines()[-1] if err.strip() else rec.returncode}"
    def report(sort, limit, count):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                              "--percent-limit", limit], capture_output=True, text=True, timeout=60).stdout
        rows = [re.sub(r"\s{2,}", "  ", ln).rstrip(" -") for ln in rep.splitlines()
                if ln.strip() and not ln.startswith("#")]
        return rows[:count]

    rows = ["by library:"] + report("dso", "1", 8)
    if symbols:
        rows += ["", "by function:"] + report("dso,symbol", "1.5", 14)
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pysock", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--scenarios", default="keepalive,close,full,stime")
    ap.add_argument("--load", help="bench/tls_handshake_load.c built (the 'full' scenario)")
    ap.add_argument("--no-perf", action="store_true", help="skip the perf look when pysock is behind")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in TITLES]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(TITLES)}")
    if "full" in scenarios and not (args.load and os.access(args.load, os.X_OK)):
        ap.error("the 'full' scenario needs --load (bench/tls_handshake_load.c built)")
    load_before = os.getloadavg()

    tmp = tempfile.mkdtemp(prefix="pysock-tls-bench.")
    docroot = os.path.join(tmp, "www")
    os.makedirs(docroot)
    with open(os.path.join(docroot, "1k.bin"), "wb") as f:
        f.write(bytes((i * 31) & 0xFF for i in range(1024)))
    cert, key, ca = make_certs(tmp)
    client_conf = os.path.join(tmp, "client-openssl.cnf")
    with open(client_conf, "w") as f:
        f.write(CLIENT_CONF.format(suite=SUITE))
    env = dict(os.environ, OPENSSL_CONF=client_conf)
    time.sleep(1.1)  # old enough for pysock's small-file cache
    running, results, notes, facts, perf_text = {}, {}, [], {}, ""
    p, n = "pysock http.server", "nginx"
    try:
        for name, kind in SERVERS:
            running[name] = start_server(args, tmp, docroot, kind, cert, key)
        for name, (port, _) in running.items():
            facts[name] = negotiated(port, ca, env, tmp)
            print(f"{name}: {facts[name]}", flush=True)
        pairs = [(s, name) for s in scenarios for name in running]
        for scenario, name in pairs:  # warm up
            run_load(args, running[name][0], scenario, 1, env)
        for r in range(args.rounds):
            for scenario, name in pairs:
                port, proc = running[name]
                before = cpu_seconds(proc.pid)
                res = run_load(args, port, scenario, args.duration, env)
                res["cpu"] = cpu_seconds(proc.pid) - before
                res["per_cpu"] = res["requests"] / res["cpu"] if res["cpu"] > 0 else 0.0
                results.setdefault((scenario, name), []).append(res)
                if res["problems"]:
                    notes.append(f"{scenario}, {name}, round {r + 1}: {res['problems']}")
                print(f"round {r + 1} {scenario:9s} {name:20s} {res['rate']:9.0f}/s  server CPU {res['cpu']:5.2f} s "
                      f"{res['per_cpu']:8.0f}/CPU-s  load CPU {res['load_cpu']:5.2f} s {res['problems']}",
                      flush=True)

        def med(scenario, name, field):
            return median(r[field] for r in results.get((scenario, name), []))

        behind = [s for s in ("full", "close", "stime", "keepalive") if s in scenarios
                  and min(ratio(med(s, p, f), med(s, n, f)) for f in ("rate", "per_cpu")) < 1.0]
        if behind and not args.no_perf:
            print(f"== perf record of pysock http.server under '{behind[0]}'", flush=True)
            looks = []
            for name in (p, n):
                port, proc = running[name]
                looks.append(f"{name}:\n{perf_look(args, port, proc, behind[0], env, tmp, name == p)}")
            perf_text = (f"pysock is behind in '{behind[0]}': `perf record -e cpu-clock` of each server (nginx: "
                         f"master + worker), 4 s of that load, `perf report --no-children`:\n\n```\n"
                         + "\n\n".join(looks) + "\n```")
            print(perf_text)
    finally:
        for _, proc in running.values():
            proc.terminate()
        for _, proc in running.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    body, summary = [], []
    for scenario in scenarios:
        unit = "requests/s" if scenario == "keepalive" else "handshakes/s"
        per = "requests" if scenario == "keepalive" else "handshakes"
        rows = [f"| server | {unit} | vs nginx | server CPU per run | {per} per server CPU-second | vs nginx "
                f"| load CPU per run |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name in (p, n):
            rows.append(f"| {name} | {med(scenario, name, 'rate'):,.0f} | "
                        f"{ratio(med(scenario, name, 'rate'), med(scenario, n, 'rate')):.2f}× | "
                        f"{med(scenario, name, 'cpu'):.2f} s | {med(scenario, name, 'per_cpu'):,.0f} | "
                        f"{ratio(med(scenario, name, 'per_cpu'), med(scenario, n, 'per_cpu')):.2f}× | "
                        f"{med(scenario, name, 'load_cpu'):.2f} s |")
        body.append(f"### {TITLES[scenario]}\n\n" + "\n".join(rows) + "\n")
        for label, field in (("", "rate"), (" per server CPU-second", "per_cpu")):
            v = ratio(med(scenario, p, field), med(scenario, n, field))
            verdict = f"met ({v - 1:+.0%})" if v >= 1.0 else f"**missed** ({v - 1:+.0%})"
            what = {"keepalive": "HTTPS requests/s", "close": "resumed handshakes/s (wrk, Connection: close)",
                    "full": f"full handshakes/s ({FULL_CONNECTIONS} concurrent, tls_handshake_load)",
                    "stime": "full handshakes/s (s_time, sequential)"}[scenario]
            summary.append(f"| {what}{label} vs nginx | {v:.2f}× | ≥ 1.0× | {verdict} |")
    for line in summary:
        print(line)

    def fact(name):
        f = facts.get(name, {})
        return (f"{f.get('suite')}, key exchange {f.get('group')}, {f.get('tickets')} session ticket(s) sent per "
                f"full handshake, a second connection with the session {'resumes' if f.get('resumes') else 'does NOT resume'}"
                f", certificate verified against the CA: {'yes' if f.get('verified') else 'NO'}, "
                f"HTTP {f.get('status')}")

    uname = platform.uname()
    nginx_version = subprocess.run([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True,
                                   text=True).stderr.strip().split("/")[-1]
    ossl_version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    section = f"""<!-- BEGIN tls (written by bench/run_tls.sh; edits here are overwritten) -->
## HTTPS: `pysock http.server --certfile` vs nginx

{args.duration} s per run, {args.rounds} round(s), every (scenario, server) pair interleaved in each round;
medians. One server thread on CPU 0 (`taskset -c 0`), the load (wrk -t1, `bench/tls_handshake_load`
or openssl s_time, each one thread) on CPU 1.
Server CPU is utime + stime (all threads, and nginx's worker) from `/proc` before and after each run;
load CPU is the load generator's own (`RUSAGE_CHILDREN`): near {args.duration} s per run means the
load generator, not the server, was the limit, and requests/s then compare the clients; handshakes
and requests per server CPU-second compare the servers.

- Same certificate and key for both: ECDSA P-256, `CN=localhost`, SAN `localhost` + `127.0.0.1`, signed
  by a throwaway CA, all made by the `openssl` command in a temporary folder. TLS 1.3 only,
  suite {SUITE}. `pysock http.server` has no option for TLS 1.3 suites (Python's defaults: TLS 1.2
  minimum, OpenSSL's default TLS 1.3 suites in server order, AES-256-GCM first), so the suite is pinned
  on the client side for both servers: wrk and `openssl s_time` run with `OPENSSL_CONF` naming a file
  whose `system_default` section says `MinProtocol = TLSv1.3`, `Ciphersuites = {SUITE}`; nginx also
  sets `ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites {SUITE};`.
- Negotiated, checked with `openssl s_client` (same client configuration) before the runs:
  - pysock http.server: {fact(p)}
  - nginx: {fact(n)}
- `pysock http.server --threads 1 --certfile … --keyfile …`, Release build, access log (stderr) to
  `/dev/null`. nginx {nginx_version} (Debian nginx-light), `worker_processes 1`, `sendfile on` (no
  effect over TLS), `access_log off`, `keepalive_requests 1000000`, session cache and tickets at their
  defaults. {ossl_version}.
- Handshakes: wrk's `-H "Connection: close"` makes both servers close after each answer and wrk
  reconnects, so every request is a new TCP connection and a new TLS handshake. wrk keeps the
  session across reconnects (`SSL_clear`, client session cache), so these are TLS 1.3 *resumptions*
  from a session ticket (PSK with a fresh X25519 exchange, no certificate, no signature): nginx
  logging `$ssl_session_reused` showed 879 of 884 such handshakes resumed in a check run
  (wrk 4.1.0, nginx 1.22.1); `openssl s_client -sess_in` confirms that both servers resume (above).
  Full handshakes with many clients at once come from `bench/tls_handshake_load.c` (built by
  `bench/run_tls.sh`, OpenSSL, one thread, epoll): {FULL_CONNECTIONS} connections in flight, each a new
  TCP connection, a new `SSL` from a context with `SSL_OP_NO_TICKET` and `SSL_SESS_CACHE_OFF`, never
  given a session (so it offers no PSK), one `GET /1k.bin` with `Connection: close`, a 200 with the
  whole body counted, then `close_notify` and close; the next connection starts at once. It counts
  `SSL_session_reused()` and the run is refused unless that stays 0. The servers still make and
  send their session tickets after each handshake (a TLS 1.3 client cannot refuse them); the client
  drops them. No certificate chain check
  (as wrk), but TLS 1.3 makes the client verify the server's signature (CertificateVerify) anyway,
  so the client's CPU per handshake is close to the server's: load CPU near the run time means the
  one client thread was the limit, and handshakes per server CPU-second are the comparison.
  `openssl s_time -new` (no session reuse) does full handshakes one at a time: it measures latency,
  and its requests/s say little; compare handshakes per server CPU-second.

{chr(10).join(body)}
### Target (issue #7: ≥ 1.0× nginx)

| target | measured | goal | |
|---|---:|---:|---|
{chr(10).join(summary)}

{perf_text}

Machine: {os.cpu_count()} CPUs (`nproc`), Linux {uname.release}, {datetime.date.today().isoformat()}; load average
{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} before and
{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after (1 / 5 / 15 min).
Command: `bench/run_tls.sh` (ROUNDS={args.rounds} DURATION={args.duration} SCENARIOS={args.scenarios});
load: `wrk -t1 -c50 -d{args.duration}s [-H "Connection: close"] https://127.0.0.1:PORT/1k.bin`,
`tls_handshake_load -p PORT -c {FULL_CONNECTIONS} -d {args.duration} -u /1k.bin -s {SUITE}`,
`openssl s_time -connect 127.0.0.1:PORT -new -time {args.duration} -www /1k.bin -ciphersuites {SUITE}`.
{"Errors seen: " + "; ".join(notes) if notes else "No socket, TLS or HTTP errors and no non-2xx responses."}
<!-- END tls -->"""

    if args.no_write:
        print(section)
        return
    write_section(args.root, "tls", section)


if __name__ == "__main__":
    main()

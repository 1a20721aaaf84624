#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The HTTPS benchmark, in one run (about 4 minutes with the defaults):
# `pysock http.server --certfile/--keyfile` (event loop, Release build, no
# sanitizers) against nginx (Debian nginx-light, worker_processes 1) with the
# same ECDSA P-256 certificate, TLS 1.3 and TLS_AES_128_GCM_SHA256. Scenarios:
# HTTPS requests/s over 50 keep-alive connections (1 KiB file, wrk), and
# handshakes/s — wrk with `Connection: close` (a new connection per request,
# 50 at once, each a TLS 1.3 resumption from wrk's session cache),
# bench/tls_handshake_load.c (50 connections at once, each a full handshake:
# no tickets, no session cache) and `openssl s_time -new` (full handshakes,
# one at a time). Server on CPU 0, load on CPU 1; rounds interleave every pair;
# medians, per server CPU-second too. If pysock is behind, a short
# `perf record` of it goes into the report. Writes the section "tls" of
# docs/benchmarks.md (bench/tls_bench.py does the work).
#
# Needs: nginx (apt-get install nginx-light), wrk, openssl, taskset, a C
# compiler and libssl-dev (for the load generator); perf optional.
# usage: bench/run_tls.sh
#   env: ROUNDS=3 DURATION=5 (seconds per run) BUILD=/tmp/pysock-bench-build
#        SCENARIOS=keepalive,close,full,stime NO_WRITE= (1: print only) NO_PERF= (1: no perf look)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/pysock-bench-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
PYTHON=${PYTHON:-python3}
SCENARIOS=${SCENARIOS:-keepalive,close,full,stime}
CC=${CC:-cc}

for tool in nginx wrk openssl taskset; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null 2>&1 || { echo "run_tls.sh: $tool not found" >&2; exit 1; }
done

echo "== building (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPYSOCK_BUILD_TESTS=OFF -DPYSOCK_BUILD_TOOLS=ON >/dev/null
cmake --build "$BUILD" --target pysock_cli >/dev/null
$CC -std=gnu11 -O2 -g "$ROOT/bench/tls_handshake_load.c" -o "$BUILD/tls_handshake_load" -lssl -lcrypto

exec "$PYTHON" "$ROOT/bench/tls_bench.py" \
  --pysock "$BUILD/tools/pysock" --root "$ROOT" --rounds "$ROUNDS" --duration "$DURATION" \
  --scenarios "$SCENARIOS" --load "$BUILD/tls_handshake_load" ${NO_WRITE:+--no-write} ${NO_PERF:+--no-perf}

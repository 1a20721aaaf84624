#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The static-file HTTP benchmark, in one run (about 10 minutes with the
# defaults): wrk against
#   `pysock http.server` (event loop; Release build, no sanitizers), with its
#     small-file cache and without (--file-cache-bytes 0),
#   nginx (Debian nginx-light, sendfile on, access_log off),
#   bench/http_raw_epoll.c (a raw epoll C responder with a fixed reply),
#   `python3 -m http.server`,
# in three scenarios — a 1 KiB file over 50 keep-alive connections; the same
# with 16 requests pipelined (bench/http_pipeline.lua); a 100 MiB file — with
# 1 server thread (server on CPU 0, wrk on CPU 1) and 2 (pysock --threads 2,
# nginx worker_processes 2). Rounds interleave every pair because this
# machine's speed drifts within minutes. Reports requests/s (MiB/s) and per
# server CPU-second (utime + stime from /proc), checks the targets, and
# writes the section "http" of docs/benchmarks.md (bench/http_perf_notes.md,
# what perf showed, goes into it).
#
# Needs: nginx (apt-get install nginx-light), wrk, taskset, cc.
# usage: bench/run_http.sh
#   env: ROUNDS=3 DURATION=5 (seconds per run) BUILD=/tmp/pysock-bench-build
#        SCENARIOS=keepalive,pipelined,large THREADS=1,2 NO_WRITE= (1: print only)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/pysock-bench-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
PYTHON=${PYTHON:-python3}
SCENARIOS=${SCENARIOS:-keepalive,pipelined,large}
THREADS=${THREADS:-1,2}
CC=${CC:-cc}

for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null 2>&1 || { echo "run_http.sh: $tool not found" >&2; exit 1; }
done

echo "== building (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPYSOCK_BUILD_TESTS=OFF -DPYSOCK_BUILD_TOOLS=ON >/dev/null
cmake --build "$BUILD" --target pysock_cli >/dev/null
$CC -std=gnu11 -O2 -g -pthread "$ROOT/bench/http_raw_epoll.c" -o "$BUILD/http_raw_epoll"

exec "$PYTHON" "$ROOT/bench/http_bench.py" \
  --pysock "$BUILD/tools/pysock" --raw "$BUILD/http_raw_epoll" --lua "$ROOT/bench/http_pipeline.lua" \
  --root "$ROOT" --rounds "$ROUNDS" --duration "$DURATION" --scenarios "$SCENARIOS" \
  --threads "$THREADS" ${NO_WRITE:+--no-write}

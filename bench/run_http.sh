#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The static-file HTTP benchmark, in one run:
#   `pysock http.server` (event loop, 1 thread; Release build, no sanitizers)
#   vs nginx (Debian nginx-light, 1 process, sendfile on, access_log off)
#   vs `python3 -m http.server`,
# all serving the same 1 KiB file on 127.0.0.1, loaded by wrk -t1 -c50 (keep-
# alive), server pinned to CPU 0 and wrk to CPU 1, rounds interleaved
# (A B C A B C ...) because this machine's speed drifts within minutes.
# Reports requests/s and requests per server CPU-second (utime + stime from
# /proc/<pid>/stat). Writes the section "http" of docs/benchmarks.md.
#
# Needs: nginx (apt-get install nginx-light), wrk, taskset.
# usage: bench/run_http.sh
#   env: ROUNDS=3 DURATION=5 (seconds per run) BUILD=/tmp/pysock-bench-build
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/pysock-bench-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
PYTHON=${PYTHON:-python3}

for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null 2>&1 || { echo "run_http.sh: $tool not found" >&2; exit 1; }
done

echo "== building (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPYSOCK_BUILD_TESTS=OFF -DPYSOCK_BUILD_TOOLS=ON >/dev/null
cmake --build "$BUILD" --target pysock_cli >/dev/null

exec "$PYTHON" "$ROOT/bench/http_bench.py" \
  --pysock "$BUILD/tools/pysock" --root "$ROOT" --rounds "$ROUNDS" --duration "$DURATION"

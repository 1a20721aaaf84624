#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The selectors echo benchmark, all of it, in one run:
#   pysock's examples/selectors_echo_server (Release build, no sanitizers)
#   vs bench/raw_epoll_echo.c (hand-written level-triggered epoll, 64 KiB buffer)
#   vs bench/cpython_selectors_echo.py (CPython's selectors),
# 64-byte ping-pong over 50 loopback connections from bench/echo_load.cpp,
# server pinned to CPU 0 and load generator to CPU 1, rounds interleaved
# (A B C A B C ...) because this machine's speed drifts within minutes.
# Then user-space instructions per echoed message under callgrind (short run
# vs long run). Writes the section "Selectors echo server" of docs/benchmarks.md.
#
# usage: bench/run_selectors.sh
#   env: ROUNDS=5 DURATION=4 (seconds per run) SHORT=200 LONG=1000 (callgrind
#   messages per connection) BUILD=/tmp/pysock-bench-build
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/pysock-bench-build}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
SHORT=${SHORT:-200}
LONG=${LONG:-1000}
PYTHON=${PYTHON:-python3}

echo "== building (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPYSOCK_BUILD_TESTS=OFF -DPYSOCK_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$BUILD" --target pysock selectors_echo_server >/dev/null
c++ -std=c++20 -O2 -g -I"$ROOT/include" "$ROOT/bench/echo_load.cpp" "$BUILD/libpysock.a" \
  -o "$BUILD/echo_load"
cc -std=c11 -O2 -g "$ROOT/bench/raw_epoll_echo.c" -o "$BUILD/raw_epoll_echo"

exec "$PYTHON" "$ROOT/bench/selectors_bench.py" \
  --build "$BUILD" --root "$ROOT" --rounds "$ROUNDS" --duration "$DURATION" \
  --short "$SHORT" --long "$LONG"

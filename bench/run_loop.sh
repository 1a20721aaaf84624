#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The event-loop echo benchmark, all of it, in one run (about 10 minutes):
#   bench/async_echo_pysock.cpp (pysock's loop: sock_* and streams, on the
#   epoll backend and on the io_uring one with PYSOCK_LOOP=io_uring) vs
#   bench/raw_epoll_echo.c, bench/baseline_uring_echo.c (liburing),
#   bench/baseline_asio_echo.cpp (standalone asio), bench/baseline_libuv_echo.c,
#   bench/baseline_asyncio_echo.py (CPython asyncio, and on uvloop);
# 64-byte ping-pong at 1, 50 and 1,000 connections, 16 and 64 KiB messages at
# 10 connections, Unix stream sockets at 50 and 1,000 (server on CPU 0, load on
# CPU 1, interleaved repetitions, medians), callgrind instructions per message
# at 50 connections, and RSS with 10,000 idle connections. Writes the section
# between <!-- BEGIN loop --> and <!-- END loop --> of docs/benchmarks.md.
#
# Needs (Debian): libasio-dev libuv1-dev python3-uvloop liburing-dev valgrind
#
# usage: bench/run_loop.sh
#   env: REPS=3 DURATION=3 (seconds per run) CONNS=1,50,1000 SHORT=200 LONG=1000
#   (callgrind messages per connection) IDLE=10000 SKIP= (tput,bulk,unix,cg,mem)
#   BUILD=/tmp/pysock-loop-build ASYNCIO_PYTHON=/usr/bin/python3 (has uvloop)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/pysock-loop-build}
PYTHON=${PYTHON:-python3}

echo "== building (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPYSOCK_BUILD_TESTS=OFF -DPYSOCK_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD" --target pysock >/dev/null
CXX=${CXX:-c++}
CC=${CC:-cc}
# libpysock.a carries the io_uring loop when liburing was found.
URING_LIBS=$(pkg-config --libs liburing 2>/dev/null || true)
$CXX -std=c++20 -O2 -g -DNDEBUG -I"$ROOT/include" "$ROOT/bench/async_echo_pysock.cpp" \
  "$BUILD/libpysock.a" $URING_LIBS -o "$BUILD/async_echo_pysock"
$CXX -std=c++20 -O2 -g -I"$ROOT/include" "$ROOT/bench/echo_load.cpp" "$BUILD/libpysock.a" \
  $URING_LIBS -o "$BUILD/echo_load"
$CC -std=c11 -O2 -g "$ROOT/bench/raw_epoll_echo.c" -o "$BUILD/raw_epoll_echo"
$CC -std=gnu11 -O2 -g "$ROOT/bench/baseline_uring_echo.c" -o "$BUILD/baseline_uring_echo" -luring
$CC -std=gnu11 -O2 -g "$ROOT/bench/baseline_libuv_echo.c" -o "$BUILD/baseline_libuv_echo" -luv
$CXX -std=c++20 -O2 -g -DNDEBUG "$ROOT/bench/baseline_asio_echo.cpp" \
  -o "$BUILD/baseline_asio_echo" -pthread

# 10,000 idle connections: 10,000 descriptors in each of server and load.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== descriptors: $(ulimit -n)"

exec timeout 900 "$PYTHON" "$ROOT/bench/loop_bench.py" --build "$BUILD" --root "$ROOT" \
  --reps "${REPS:-3}" --duration "${DURATION:-3}" --conns "${CONNS:-1,50,1000}" \
  --short "${SHORT:-200}" --long "${LONG:-1000}" --idle "${IDLE:-10000}" \
  --asyncio-python "${ASYNCIO_PYTHON:-/usr/bin/python3}" --skip "${SKIP:-}"

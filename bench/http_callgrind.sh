#!/bin/sh
# SPDX-License-Identifier: MIT
#
# User-space instructions per pipelined HTTP request, counted by callgrind:
# deterministic where wall-clock figures drift (docs: /work/shared/PERFORMANCE.md).
# The server runs under `valgrind --tool=callgrind` on CPU 0 twice, once with a
# short and once with a long pipelined wrk load (bench/http_pipeline.lua, depth
# 16, 1 KiB file) from CPU 1; (instructions_long - instructions_short) /
# (requests_long - requests_short) cancels start-up and shutdown.
#
# usage: bench/http_callgrind.sh pysock|raw BINARY [SHORT_SECS LONG_SECS]
#   pysock: BINARY is tools/pysock (its access log goes to /dev/null, still
#           formatted and written); raw: BINARY is bench/http_raw_epoll.c built.
#   env: CONNS=10 DEPTH=16 ARGS= (more http.server arguments, e.g.
#        ARGS=--no-access-log for the like-for-like count against raw C)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIND=$1
BIN=$2
SHORT=${3:-2}
LONG=${4:-8}
CONNS=${CONNS:-10}
DEPTH=${DEPTH:-16}
TMP=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$TMP"' EXIT
head -c 1024 /dev/urandom >"$TMP/1k.bin"
# The cache takes a file only once its ctime is a second old.
touch -d '-1 hour' "$TMP/1k.bin"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # seconds -> "instructions requests"
  p=$(port)
  out="$TMP/cg.$1"
  if [ "$KIND" = pysock ]; then
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$BIN" http.server "$p" -b 127.0.0.1 -d "$TMP" ${ARGS:-} >/dev/null 2>&1 &
  else
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" "$p" 1 \
      >/dev/null 2>&1 &
  fi
  pid=$!
  i=0
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$p),0.2).close()" \
    2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { kill "$pid"; echo "server did not start" >&2; exit 1; }
    sleep 0.2
  done
  # warm the cache (and the Date/log formatting) before counting
  curl -s -o /dev/null "http://127.0.0.1:$p/1k.bin"
  reqs=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$1"s -s "$ROOT/bench/http_pipeline.lua" \
    "http://127.0.0.1:$p/1k.bin" -- "$DEPTH" | awk '/requests in/ {print $1}')
  kill -TERM "$pid"
  wait "$pid" || true
  ins=$(awk '/^summary:/ {print $2}' "$out")
  echo "$ins $reqs"
}

set -- $(run "$SHORT")
i1=$1 r1=$2
set -- $(run "$LONG")
i2=$1 r2=$2
[ -z "${KEEP:-}" ] || echo "profiles kept in $TMP"
echo "$KIND: short $r1 requests $i1 Ir, long $r2 requests $i2 Ir"
awk -v a="$i1" -v b="$i2" -v c="$r1" -v d="$r2" \
  'BEGIN { printf "instructions/request: %.0f\n", (b - a) / (d - c) }'

#!/bin/sh
# SPDX-License-Identifier: MIT
#
# User-space instructions per resumed TLS 1.3 connection (handshake from a
# ticket, one GET /1k.bin, close), counted by callgrind: deterministic where
# wall-clock figures on a shared machine drift by ±25%
# (bench/tls_perf_notes.md). The server runs under `valgrind --tool=callgrind`
# on CPU 0 twice, each time serving `bench/tls_handshake_load.c -r -N COUNT`
# from CPU 1: COUNT connections in all, CONNS at once, every one resuming
# from the newest ticket except the first CONNS (made before any ticket came,
# the same in both runs). (instructions_long - instructions_short) /
# (COUNT_long - COUNT_short) cancels start-up, the full handshakes and
# shutdown. Same ECDSA P-256 certificate, TLS_AES_128_GCM_SHA256 and X25519
# for both servers.
#
# usage: bench/tls_callgrind.sh pysock|nginx [PYSOCK_BINARY] [SHORT LONG]
#   pysock: PYSOCK_BINARY is tools/pysock (http.server --certfile, access log
#   to /dev/null, still formatted and written); nginx: nginx-light,
#   master_process off, access_log off.
#   env: CONNS=10 LOAD=(a built bench/tls_handshake_load.c; built into the
#        temporary folder when unset) KEEP=1 (keep the callgrind files)
#        CACHESIM=1 (also simulate the caches, L2 as the machine's 2 MiB, and
#        report its misses per connection: instructions alone miss what a
#        larger working set costs, see bench/tls_perf_notes.md)
# $sim and run's output are split into words on purpose.
# shellcheck disable=SC2086,SC2046
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIND=$1
BIN=${2:-}
SHORT=${3:-200}
LONG=${4:-1200}
CONNS=${CONNS:-10}
SUITE=TLS_AES_128_GCM_SHA256
TMP=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$TMP"' EXIT
[ -n "${KEEP:-}" ] && echo "files in $TMP" >&2
mkdir "$TMP/docroot"
head -c 1024 /dev/urandom >"$TMP/docroot/1k.bin"
# pysock's file cache takes a file only once its ctime is a second old.
touch -d '-1 hour' "$TMP/docroot/1k.bin"

LOAD=${LOAD:-}
if [ -z "$LOAD" ]; then
  LOAD="$TMP/tls_handshake_load"
  ${CC:-cc} -std=gnu11 -O2 "$ROOT/bench/tls_handshake_load.c" -o "$LOAD" -lssl -lcrypto
fi

(
  cd "$TMP"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -out ca.pem -days 30 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
    -out server.csr -subj /CN=localhost
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 30 -sha256 -extfile ext.cnf
) >/dev/null 2>&1

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # count -> "instructions resumed"
  p=$(port)
  out="$TMP/cg.$1"
  sim=
  [ -z "${CACHESIM:-}" ] || sim="--cache-sim=yes --LL=2097152,16,64"
  if [ "$KIND" = pysock ]; then
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" $sim \
      "$BIN" http.server "$p" -b 127.0.0.1 -d "$TMP/docroot" --threads 1 \
      --certfile "$TMP/server.pem" --keyfile "$TMP/server.key" >/dev/null 2>&1 &
  else
    mkdir -p "$TMP/nginx-$p"
    cat >"$TMP/nginx-$p.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx-$p/pid;
error_log $TMP/nginx-$p/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx-$p;
    proxy_temp_path $TMP/nginx-$p;
    fastcgi_temp_path $TMP/nginx-$p;
    uwsgi_temp_path $TMP/nginx-$p;
    scgi_temp_path $TMP/nginx-$p;
    server {
        listen 127.0.0.1:$p ssl;
        ssl_certificate $TMP/server.pem;
        ssl_certificate_key $TMP/server.key;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites $SUITE;
        root $TMP/docroot;
    }
}
EOF
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" $sim \
      "$(command -v nginx || echo /usr/sbin/nginx)" -p "$TMP/nginx-$p" -c "$TMP/nginx-$p.conf" \
      >/dev/null 2>&1 &
  fi
  pid=$!
  i=0
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$p),0.2).close()" \
    2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 150 ] || { kill "$pid"; echo "server did not start" >&2; exit 1; }
    sleep 0.2
  done
  result=$(taskset -c 1 "$LOAD" -p "$p" -c "$CONNS" -r -N "$1" -d 600 -s "$SUITE")
  kill -TERM "$pid"
  wait "$pid" || true
  echo "$result" >&2
  ok=$(echo "$result" | sed -n 's/.* ok=\([0-9]*\).*/\1/p')
  [ "$ok" = "$1" ] || { echo "only $ok of $1 connections answered" >&2; exit 1; }
  # Ir, and with the cache simulation the last-level misses (ILmr + DLmr + DLmw).
  costs=$(awk '/^events:/ { for (i = 2; i <= NF; ++i) col[$i] = i }
    /^summary:/ { print $(col["Ir"]), ("ILmr" in col) ? $(col["ILmr"]) + $(col["DLmr"]) + $(col["DLmw"]) : 0 }' "$out")
  resumed=$(echo "$result" | sed -n 's/.* resumed=\([0-9]*\).*/\1/p')
  echo "$costs $resumed"
}

set -- $(run "$SHORT")
i1=$1 m1=$2 r1=$3
set -- $(run "$LONG")
i2=$1 m2=$2 r2=$3
echo "$KIND: $i1 instructions / $r1 resumed, $i2 / $r2"
awk -v a="$i1" -v b="$i2" -v ma="$m1" -v mb="$m2" -v ra="$r1" -v rb="$r2" -v kind="$KIND" \
  -v sim="${CACHESIM:-}" 'BEGIN {
    printf "%s: %.0f instructions per resumed connection\n", kind, (b - a) / (rb - ra)
    if (sim != "") printf "%s: %.0f L2 (2 MiB) misses per resumed connection\n", kind, (mb - ma) / (rb - ra)
  }'

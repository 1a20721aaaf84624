#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The echo demo, end to end: starts examples/echo_server on 127.0.0.1 with a
# port the kernel picks (port 0), runs examples/echo_client against it, prints
# what the client got back, and makes sure the server is gone afterwards.
#
# Usage: scripts/echo_demo.sh BUILD_DIR
set -euo pipefail

build_dir=${1:?usage: echo_demo.sh BUILD_DIR}
server="$build_dir/examples/echo_server"
client="$build_dir/examples/echo_client"
for program in "$server" "$client"; do
  [[ -x "$program" ]] || { echo "echo_demo: $program not built" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --count 1: the server exits by itself after the one connection.
"$server" 127.0.0.1 0 --count 1 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

# The server prints "echo_server listening on 127.0.0.1:PORT" once it listens.
port=
for _ in $(seq 100); do
  line=$(head -n 1 "$work/server.out" 2>/dev/null || true)
  if [[ "$line" =~ listening\ on\ .*:([0-9]+)$ ]]; then
    port=${BASH_REMATCH[1]}
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
if [[ -z "$port" ]]; then
  echo "echo_demo: the server did not start:" >&2
  cat "$work/server.out" "$work/server.err" >&2
  exit 1
fi
echo "$line"

echo "\$ echo_client 127.0.0.1 $port"
received=$("$client" 127.0.0.1 "$port")
echo "client received: $received"

wait "$server_pid"
server_pid=
if [[ "$received" != "Hello, World" ]]; then
  echo "echo_demo: expected \"Hello, World\"" >&2
  exit 1
fi
echo "echo demo: OK"

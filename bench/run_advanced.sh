#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Advanced I/O benchmark: builds the library in Release in its own build
# directory, compiles bench/sendfile_bench.cpp against it, runs it (sendfile
# vs read+send of a 256 MiB file over loopback; sendmsg of 16 buffers vs 16
# sends) and writes the "Advanced I/O" section of docs/benchmarks.md,
# replacing only that section.
#
# Usage: bench/run_advanced.sh [sendfile_bench options, e.g. --size 256 --repeat 5]
# Environment: BUILD_DIR (default /tmp/pysock-build-bench-advanced), CXX (g++).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-/tmp/pysock-build-bench-advanced}
cxx=${CXX:-g++}
doc="$root/docs/benchmarks.md"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DPYSOCK_BUILD_TESTS=OFF -DPYSOCK_BUILD_EXAMPLES=OFF -DPYSOCK_INSTALL=OFF >/dev/null
cmake --build "$build" --target pysock >/dev/null
"$cxx" -std=c++20 -O2 -DNDEBUG -I"$root/include" "$root/bench/sendfile_bench.cpp" "$build/libpysock.a" \
  -pthread -o "$build/sendfile_bench"

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running: $build/sendfile_bench $* (load average $load)" >&2
table=$("$build/sendfile_bench" "$@")
echo "$table"

section=$(cat <<EOF
<!-- BEGIN advanced-io (written by bench/run_advanced.sh; edits here are overwritten) -->
## Advanced I/O

Zero-copy \`socket::sendfile\` against a \`read()\` + \`sendall()\` loop for a file in the page
cache, and one gathering \`socket::sendmsg\` of 16 buffers against 16 \`send\` calls; loopback
TCP (TCP_NODELAY on the sender), a reader thread draining into one buffer. Both sides of each
pair run interleaved in the same run; "best" and "median" are over the repetitions.

$table

- machine: $(nproc) CPUs, $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown CPU); load average $load before the run
- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- command: \`bench/run_advanced.sh $*\` (library built with \`-DCMAKE_BUILD_TYPE=Release\`, bench with \`$cxx -O2\`)
<!-- END advanced-io -->
EOF
)

mkdir -p "$(dirname "$doc")"
[ -f "$doc" ] || printf '# Benchmarks\n\nEach section is written by its script under bench/; rerun the script to update it.\n' >"$doc"
SECTION="$section" python3 - "$doc" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
section = os.environ["SECTION"]
pattern = re.compile(r"<!-- BEGIN advanced-io.*?<!-- END advanced-io -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w", encoding="utf-8").write(text)
PY
echo "updated the Advanced I/O section of $doc" >&2

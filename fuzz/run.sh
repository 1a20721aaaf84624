#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds the libFuzzer targets with clang and runs each for a bounded time.
#   fuzz/run.sh [SECONDS] [BUILD_DIR]      (defaults: 60, build/fuzz)
# Needs clang and its runtime (Debian: clang, libclang-rt-14-dev). New
# inputs go to a temporary corpus, not into fuzz/corpus/ (the seeds stay as
# committed). A crash leaves its reproducer in BUILD_DIR/artifacts/ and
# makes the script exit non-zero; reproduce with:
#   BUILD_DIR/http_request_fuzzer BUILD_DIR/artifacts/crash-...
set -euo pipefail

seconds=${1:-60}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${2:-$here/../build/fuzz}
cxx=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || true)}
if [[ -z "$cxx" ]]; then
  echo "fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build"

work=$(mktemp -d /tmp/pysock-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"

status=0
for target in http_request; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  cp "$here/corpus/$target"/* "$corpus/"
  echo "fuzz: $target for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
  # -max_len above the parser's largest head (~16.5 KiB) reaches the 414/431
  # paths; -timeout catches a quadratic rescan as a hang.
  if ! "$build/${target}_fuzzer" "$corpus" -dict="$here/http.dict" -max_total_time="$seconds" \
      -max_len=20000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/" 2>"$work/$target.log"; then
    status=1
    tail -n 60 "$work/$target.log" >&2
    echo "fuzz: $target FAILED; reproducer in $build/artifacts/" >&2
  else
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done" "$work/$target.log" || true
    echo "fuzz: $target passed"
  fi
done
exit "$status"

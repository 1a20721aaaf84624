#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Makes sure the Debian packages pysock builds and tests with are installed.
# As root: installs what is missing (apt-get update only when something is).
# Otherwise: prints the exact apt-get line to run and exits 1.
# Non-interactive throughout: safe with no stdin (CI).
set -euo pipefail

packages=(
  build-essential  # g++, make, libc headers
  cmake
  ninja-build
  pkg-config
  libgtest-dev     # GoogleTest, found by find_package(GTest)
  python3          # tests/interop: CPython as a real peer
  curl             # tests/interop: the HTTP server's peer (later issues)
  netcat-openbsd   # tests/interop: nc as a peer
  clang            # the clang++ build in .ci/run, and the fuzzers
  libclang-rt-14-dev  # libFuzzer's runtime for fuzz/
  libcli11-dev     # the pysock command's argument parser (tools/)
  liburing-dev     # the event loop's io_uring backend
  libssl-dev       # pysock::ssl (OpenSSL 3), the optional TLS component
  openssl          # tests make their own certificates and use s_server/s_client
  wrk              # tests/interop: the HTTP server's smoke load
  chromium         # tests/interop: a real browser loads the directory listing
  git
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

command_line="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run as root:" >&2
  echo "  $command_line" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null

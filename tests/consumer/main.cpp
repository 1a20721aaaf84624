// SPDX-License-Identifier: MIT
//
// The smallest program against an installed pysock: a connected pair, bytes
// one way and back. Built by .ci/run with find_package(pysock) and with
// pkg-config; it prints "consumer: round trip ok" and exits 0 when all is well.
#include <pysock/pysock.hpp>

#include <iostream>

int main() {
  auto [left, right] = pysock::socketpair();
  left.sendall("ping");
  pysock::bytes got = right.recv(16);
  right.sendall(got + " pong");
  right.shutdown(SHUT_WR);

  pysock::bytes back;
  for (pysock::bytes part; !(part = left.recv(16)).empty();) back += part;
  if (back != "ping pong") {
    std::cerr << "consumer: expected \"ping pong\", got \"" << back << "\"\n";
    return 1;
  }
  std::cout << "consumer: round trip ok (" << back << ")\n";
  return 0;
}

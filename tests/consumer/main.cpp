// SPDX-License-Identifier: MIT
//
// The smallest program against an installed pysock: a connected pair, bytes
// one way and back. Built by .ci/run with find_package(pysock) and with
// pkg-config; it prints "consumer: round trip ok" and exits 0 when all is well.
// The second round trip goes through the event loop on io_uring (or its epoll
// fallback): a static libpysock.a links liburing only if the package files
// say so, and this is where a missing -luring would show.
#include <pysock/pysock.hpp>

#include <iostream>
#include <string_view>

namespace {

pysock::task<pysock::bytes> loop_round_trip(pysock::socket& left, pysock::socket& right) {
  pysock::event_loop& loop = pysock::get_running_loop();
  co_await loop.sock_sendall(left, std::string_view("loop"));
  co_return co_await loop.sock_recv(right, 16);
}

}  // namespace

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

  auto [loop_left, loop_right] = pysock::socketpair();
  loop_left.setblocking(false);
  loop_right.setblocking(false);
  pysock::event_loop loop(pysock::loop_options{.backend = pysock::loop_backend::io_uring});
  const pysock::bytes via_loop = loop.run_until_complete(loop_round_trip(loop_left, loop_right));
  if (via_loop != "loop") {
    std::cerr << "consumer: the loop delivered \"" << via_loop << "\"\n";
    return 1;
  }
  std::cout << "consumer: round trip ok (" << back << ", " << via_loop << " on "
            << pysock::to_string(loop.backend()) << ")\n";
  return 0;
}

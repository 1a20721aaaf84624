// SPDX-License-Identifier: MIT
//
// echo_server — the tutorial's echo server, line for line with pysock:
//
//   sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
//   sock.bind(('127.0.0.1', 8080))
//   sock.listen(5)
//   while True:
//       conn, address = sock.accept()
//       data = bytes()
//       while True:
//           temp = conn.recv(1024)
//           if not temp: break
//           data += temp
//       conn.sendall(data)
//       conn.close()
//
// Usage: echo_server [host] [port] [--count N]
//   host, port  where to listen (default 127.0.0.1 8080; port 0 picks a free one)
//   --count N   exit after serving N connections (tests use it to stop the server)
#include <pysock/pysock.hpp>

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
  std::cerr << "usage: echo_server [host] [port] [--count N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8080;
  long count = -1;  // -1: serve forever, as the tutorial does
  try {
    std::vector<std::string_view> positional;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--count" && i + 1 < argc) {
        count = std::stol(argv[++i]);
      } else if (arg.starts_with("-")) {
        return usage();
      } else {
        positional.push_back(arg);
      }
    }
    if (positional.size() > 2) return usage();
    if (positional.size() > 0) host = positional[0];
    if (positional.size() > 1) port = std::stoi(std::string(positional[1]));
  } catch (const std::logic_error&) {  // std::stoi/stol: not a number, or out of range
    return usage();
  }

  try {
    pysock::socket sock(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    // Not in the tutorial, but what every real server does: without it a
    // restart within TIME_WAIT (about a minute) fails with EADDRINUSE.
    sock.setsockopt(pysock::so_reuseaddr, true);
    sock.bind({host, port});
    sock.listen(5);
    // Report the address actually bound: with port 0 the kernel chose it, and
    // whoever started us (a test, `make run`) reads it from this line.
    // std::endl flushes, which matters when stdout is a pipe.
    std::cout << "echo_server listening on " << sock.getsockname() << std::endl;

    for (long served = 0; count < 0 || served < count; ++served) {
      auto [conn, address] = sock.accept();
      try {
        // Read until the client shuts down its sending side: recv() returns
        // an empty string at EOF, the same signal as Python's b''.
        pysock::bytes data;
        while (true) {
          pysock::bytes temp = conn.recv(1024);
          if (temp.empty()) break;
          data += temp;
        }
        conn.sendall(data);
        conn.close();
      } catch (const pysock::os_error& e) {
        // One misbehaving client (say, a reset) must not stop the server.
        std::cerr << "echo_server: " << address << ": " << e.what() << '\n';
      }
    }
  } catch (const pysock::os_error& e) {
    // what() reads like Python's: "bind(127.0.0.1:8080): [Errno 98] Address already in use"
    std::cerr << "echo_server: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

// SPDX-License-Identifier: MIT
//
// udp_echo — a UDP echo server and its client in one program:
//
//   # server                                # client
//   s = socket.socket(AF_INET, SOCK_DGRAM)  c = socket.socket(AF_INET, SOCK_DGRAM)
//   s.bind(('127.0.0.1', 9999))             c.settimeout(5)
//   while True:                             c.sendto(b'hello', ('127.0.0.1', 9999))
//       data, addr = s.recvfrom(65535)      data, addr = c.recvfrom(65535)
//       s.sendto(data, addr)
//
// Usage:
//   udp_echo server [host] [port] [--count N]
//       host, port  where to listen (default 127.0.0.1 9999; port 0 picks a free
//                   one). Prints "udp_echo server listening on HOST:PORT".
//       --count N   exit after echoing N datagrams (default: forever)
//   udp_echo client host port [message] [--count N] [--timeout SECONDS]
//       sends `message` (default "hello") N times (default 1), waits for each
//       echo and prints "reply from HOST:PORT: MESSAGE". Exit status 1 when an
//       echo does not come back within the timeout (default 5 s): UDP may lose
//       datagrams, so a real client must not wait forever.
#include <pysock/pysock.hpp>

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
  std::cerr << "usage: udp_echo server [host] [port] [--count N]\n"
               "       udp_echo client host port [message] [--count N] [--timeout SECONDS]\n";
  return 2;
}

struct options {
  std::vector<std::string> positional;
  long count = -1;
  double timeout = 5.0;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--count" && i + 1 < argc) {
      o.count = std::stol(argv[++i]);
      if (o.count < 0) throw std::invalid_argument("count");
    } else if (arg == "--timeout" && i + 1 < argc) {
      o.timeout = std::stod(argv[++i]);
      if (o.timeout <= 0) throw std::invalid_argument("timeout");
    } else if (arg.starts_with("--")) {
      throw std::invalid_argument(std::string(arg));
    } else {
      o.positional.emplace_back(arg);
    }
  }
  return o;
}

int server(const options& o) {
  if (o.positional.size() > 2) return usage();
  const std::string host = o.positional.size() > 0 ? o.positional[0] : "127.0.0.1";
  const int port = o.positional.size() > 1 ? std::stoi(o.positional[1]) : 9999;

  pysock::socket sock(AF_INET, SOCK_DGRAM);
  sock.bind({host, port});
  // The address actually bound (port 0: the kernel's choice), for whoever
  // started us; std::endl flushes when stdout is a pipe.
  std::cout << "udp_echo server listening on " << sock.getsockname() << std::endl;
  for (long served = 0; o.count < 0 || served < o.count; ++served) {
    // 65535: the largest UDP payload, so no datagram is truncated.
    auto [data, from] = sock.recvfrom(65535);
    sock.sendto(data, from);
    std::cout << "echoed " << data.size() << " bytes to " << from << std::endl;
  }
  return 0;
}

int client(const options& o) {
  if (o.positional.size() < 2 || o.positional.size() > 3) return usage();
  const pysock::address server_address(o.positional[0], std::stoi(o.positional[1]));
  const std::string message = o.positional.size() > 2 ? o.positional[2] : "hello";
  const long count = o.count < 0 ? 1 : o.count;

  pysock::socket sock(AF_INET, SOCK_DGRAM);
  sock.settimeout(std::chrono::duration<double>(o.timeout));
  for (long i = 0; i < count; ++i) {
    sock.sendto(message, server_address);
    try {
      auto [data, from] = sock.recvfrom(65535);
      std::cout << "reply from " << from << ": " << data << std::endl;
    } catch (const pysock::timeout_error&) {
      std::cerr << "udp_echo: no reply from " << server_address << " within " << o.timeout
                << " s\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string_view command = argv[1];
  options o;
  try {
    o = parse(argc, argv);
  } catch (const std::logic_error&) {  // a bad number or an unknown option
    return usage();
  }
  try {
    if (command == "server") return server(o);
    if (command == "client") return client(o);
    return usage();
  } catch (const std::logic_error&) {  // std::stoi on a bad port
    return usage();
  } catch (const pysock::os_error& e) {
    std::cerr << "udp_echo: " << e.what() << '\n';
    return 1;
  }
}

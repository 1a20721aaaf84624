// SPDX-License-Identifier: MIT
//
// `pysock echo-server` and `pysock echo-client`: the tutorial's echo pair as
// tools. The server echoes every connection (one thread each) until SIGINT
// or SIGTERM; the client sends a message, half-closes, and prints the echo.
#include <poll.h>

#include <array>
#include <iostream>

#include <pysock/resolver.hpp>
#include <pysock/socket.hpp>

#include "commands/commands.hpp"
#include "common/stop_signal.hpp"
#include "common/thread_server.hpp"

namespace pysock::tools {
namespace {

void echo_connection(socket& conn, int stop_fd) {
  std::array<char, 16 * 1024> buffer;
  while (true) {
    std::array<pollfd, 2> fds{{{conn.fileno(), POLLIN, 0}, {stop_fd, POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
    // Stopping: data already received is echoed first (it is in flight).
    if (fds[0].revents == 0 && fds[1].revents != 0) return;
    std::error_code ec;
    const std::size_t n = conn.recv_into(buffer, 0, 0, ec);
    if (ec || n == 0) return;  // the client closed (or reset)
    conn.sendall(std::string_view(buffer.data(), n));
  }
}

}  // namespace

int run_echo_server(const echo_server_args& args) {
  ignore_sigpipe();
  stop_signal stop;
  socket listener = socket::closed_socket();
  try {
    server_options options;
    options.family =
        getaddrinfo(args.bind, args.port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE).front().family;
    listener = create_server({args.bind, args.port}, options);
  } catch (const os_error& e) {
    std::cerr << "pysock echo-server: " << e.what() << '\n';
    return 1;
  }
  const address local = listener.getsockname();
  std::cout << "Echo server on " << local.host() << " port " << local.port() << " ..." << std::endl;
  serve_threads(
      listener, stop, args.threads,
      [](socket conn, address, int stop_fd) {
        try {
          echo_connection(conn, stop_fd);
        } catch (const os_error&) {
          // The client went away mid-echo: only its connection ends.
        }
      },
      [](const std::string& message) { std::cerr << "pysock echo-server: " << message << '\n'; });
  return 0;
}

int run_echo_client(const echo_client_args& args) {
  try {
    socket sock = create_connection({args.host, args.port});
    sock.sendall(args.message);
    sock.shutdown(SHUT_WR);  // "that's all": the server sees EOF and closes after echoing
    bytes data;
    while (true) {
      bytes part = sock.recv(64 * 1024);
      if (part.empty()) break;
      data += part;
    }
    sock.close();
    std::cout << data << std::endl;
  } catch (const os_error& e) {
    std::cerr << "pysock echo-client: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

}  // namespace pysock::tools

// SPDX-License-Identifier: MIT
//
// `pysock http.server`: python3 -m http.server, on blocking pysock sockets
// with a thread per connection (the HTTP itself is http::session's).
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <mutex>

#include <pysock/resolver.hpp>
#include <pysock/socket.hpp>

#include "commands/commands.hpp"
#include "common/stop_signal.hpp"
#include "common/thread_server.hpp"
#include "http/blocking_server.hpp"

namespace pysock::tools {
namespace {

std::chrono::milliseconds seconds_to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0 + 0.5));
}

// The first address getaddrinfo() gives for binding: picks the family, so
// "-b ::1" and "-b localhost" both work, as in Python's http.server.
int bind_family(const std::string& host, int port) {
  const auto results = getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE);
  return results.front().family;
}

}  // namespace

int run_http_server(const http_server_args& args) {
  ignore_sigpipe();
  stop_signal stop;  // before any thread: they inherit the blocked signals

  std::mutex log_mutex;
  http::server_context context;
  context.config.header_timeout = seconds_to_ms(args.header_timeout);
  // One fwrite per line under a lock: lines from several connections never
  // interleave. stderr, as Python's log_message() writes.
  context.log = [&log_mutex](std::string_view line) {
    const std::lock_guard lock(log_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
  std::optional<http::document_root> root;
  socket listener = socket::closed_socket();
  try {
    root.emplace(args.directory);
    context.root = &*root;
    server_options options;
    options.family = bind_family(args.bind, args.port);
    listener = create_server({args.bind, args.port}, options);
  } catch (const os_error& e) {
    std::cerr << "pysock http.server: " << e.what() << '\n';
    return 1;
  }

  const address local = listener.getsockname();
  const std::string host = local.host();
  const std::string url_host = local.family() == AF_INET6 ? "[" + host + "]" : host;
  // The real port (port 0 asks the kernel for one): tests read it from here.
  std::cout << "Serving HTTP on " << host << " port " << local.port() << " (http://" << url_host << ':'
            << local.port() << "/) ..." << std::endl;

  const auto write_timeout = seconds_to_ms(args.write_timeout);
  const int signal_number = serve_threads(
      listener, stop, args.threads,
      [&context, write_timeout](socket conn, address peer, int stop_fd) {
        http::serve_connection_blocking(conn, context, peer.host(), stop_fd, write_timeout);
      },
      [&context](const std::string& message) { context.log("pysock http.server: " + message + "\n"); });
  std::cout << (signal_number == SIGINT ? "\nKeyboard interrupt received, exiting."
                                        : "\nTerminated, exiting.")
            << std::endl;
  return 0;
}

}  // namespace pysock::tools

// SPDX-License-Identifier: MIT
//
// `pysock http.server`: python3 -m http.server on pysock's event loop (one
// loop per --threads, SO_REUSEPORT), or with --transport threads on blocking
// sockets with a thread per connection. The HTTP itself is http::session's.
// --certfile/--keyfile: HTTPS on the event loop transport, when pysock::ssl
// is built (PYSOCK_TOOLS_HAVE_SSL); otherwise they say so and exit 1.
// --ciphers/--ciphersuites pick its TLS 1.2 ciphers and TLS 1.3 suites.
#include <poll.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <iostream>
#include <mutex>
#include <string_view>
#include <vector>

#include <pysock/resolver.hpp>
#include <pysock/socket.hpp>
#ifdef PYSOCK_TOOLS_HAVE_SSL
#include <pysock/ssl.hpp>
#endif

#include "commands/commands.hpp"
#include "common/stop_signal.hpp"
#include "common/thread_server.hpp"
#include "http/blocking_server.hpp"
#include "http/loop_server.hpp"

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
  const bool https = !args.certfile.empty();
#ifdef PYSOCK_TOOLS_HAVE_SSL
  // Loaded before binding: a bad certificate or key leaves no port taken.
  std::optional<ssl_context> tls;
  if (https) {
    try {
      tls.emplace(protocol_tls_server);
      tls->load_cert_chain(args.certfile, args.keyfile);
    } catch (const std::exception& e) {
      std::cerr << "pysock http.server: cannot load --certfile " << args.certfile << " / --keyfile "
                << args.keyfile << ": " << e.what() << '\n';
      return 1;
    }
    // A list that selects nothing is a bad argument (exit 2, as a usage
    // error), not a failure of the server.
    const auto apply = [](const char* option, const std::optional<std::string>& list,
                          const std::function<void(const std::string&)>& set) {
      if (!list) return true;
      try {
        set(*list);
        return true;
      } catch (const ssl_error&) {
        std::cerr << "pysock http.server: error: " << option << " '" << *list
                  << "': No cipher can be selected (see `openssl ciphers -v`"
                  << (std::string_view(option) == "--ciphersuites" ? " -tls1_3" : "") << ")\n";
        return false;
      }
    };
    if (!apply("--ciphers", args.ciphers, [&tls](const std::string& l) { tls->set_ciphers(l); }) ||
        !apply("--ciphersuites", args.ciphersuites,
               [&tls](const std::string& l) { tls->set_ciphersuites(l); }))
      return 2;
    // No TLS 1.3 suite means no TLS 1.3: OpenSSL 3.0 servers would otherwise
    // still pick 1.3 and fail every handshake (NO_CIPHERS_AVAILABLE).
    if (args.ciphersuites && args.ciphersuites->empty())
      tls->set_maximum_version(tls_version::tlsv1_2);
  }
#else
  if (https) {
    std::cerr << "pysock http.server: --certfile needs pysock built with OpenSSL 3 (Debian: "
                 "libssl-dev): TLS was not built\n";
    return 1;
  }
#endif
  ignore_sigpipe();
  stop_signal stop;  // before any thread: they inherit the blocked signals

  std::mutex log_mutex;
  http::server_context context;
  context.config.header_timeout = seconds_to_ms(args.header_timeout);
  // One fwrite per line under a lock: lines from several connections never
  // interleave. stderr, as Python's log_message() writes.
  const http::log_sink to_stderr = [&log_mutex](std::string_view line) {
    const std::lock_guard lock(log_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
  // --no-access-log: no line per request (nor Python's log_error line of an
  // error answer); the server's own errors below still go to stderr.
  if (!args.no_access_log) context.log = to_stderr;
  const bool use_loop = args.transport != "threads";
  const std::size_t threads = args.threads.value_or(use_loop ? 1 : 64);
  std::optional<http::document_root> root;
  std::vector<socket> listeners;
  try {
    root.emplace(args.directory);
    context.root = &*root;
    server_options options;
    options.family = bind_family(args.bind, args.port);
    // Event loops: one listener each, SO_REUSEPORT on one port (the kernel
    // spreads connections); the first binds (port 0 picks), the rest follow.
    options.reuse_port = use_loop && threads > 1;
    listeners.push_back(create_server({args.bind, args.port}, options));
    if (use_loop) {
      const address bound = listeners.front().getsockname();
      for (std::size_t i = 1; i < threads; ++i) listeners.push_back(create_server(bound, options));
    }
  } catch (const os_error& e) {
    std::cerr << "pysock http.server: " << e.what() << '\n';
    return 1;
  }
  socket& listener = listeners.front();

  const address local = listener.getsockname();
  const std::string host = local.host();
  const std::string url_host = local.family() == AF_INET6 ? "[" + host + "]" : host;
  // The real port (port 0 asks the kernel for one): tests read it from here.
  std::cout << (https ? "Serving HTTPS on " : "Serving HTTP on ") << host << " port "
            << local.port() << (https ? " (https://" : " (http://") << url_host << ':'
            << local.port() << "/) ..." << std::endl;

  const auto write_timeout = seconds_to_ms(args.write_timeout);
  const auto errors = [&to_stderr](const std::string& message) {
    to_stderr("pysock http.server: " + message + "\n");
  };
  int signal_number = 0;
  if (use_loop) {
    http::loop_transport_options options;
    options.loop.backend =
        args.loop_backend == "io_uring" ? loop_backend::io_uring : loop_backend::epoll;
    options.write_timeout = write_timeout;
    options.cache.max_bytes = args.file_cache_bytes;
    options.stop_fd = stop.event_fd();
#ifdef PYSOCK_TOOLS_HAVE_SSL
    if (tls) options.tls = &*tls;
#endif
    options.errors = errors;
    // A failed loop raises the eventfd: the wait below ends, and so do the
    // other loops.
    options.request_stop = [&stop] { stop.trigger(); };
    options.wait_for_stop = [&stop, &signal_number] {
      pollfd waits[2] = {{stop.signal_fd(), POLLIN, 0}, {stop.event_fd(), POLLIN, 0}};
      while (::poll(waits, 2, -1) < 0 && errno == EINTR) {
      }
      if (waits[0].revents != 0) signal_number = stop.take_signal();
      stop.trigger();
    };
    try {
      http::serve_loops(std::move(listeners), context, options);
    } catch (const std::exception& e) {
      std::cerr << "pysock http.server: " << e.what() << '\n';
      return 1;
    }
  } else {
    signal_number = serve_threads(
        listener, stop, threads,
        [&context, write_timeout](socket conn, address peer, int stop_fd) {
          http::serve_connection_blocking(conn, context, peer.host(), stop_fd, write_timeout);
        },
        errors);
  }
  std::cout << (signal_number == SIGINT ? "\nKeyboard interrupt received, exiting."
                                        : "\nTerminated, exiting.")
            << std::endl;
  return 0;
}

}  // namespace pysock::tools

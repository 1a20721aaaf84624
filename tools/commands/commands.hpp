// SPDX-License-Identifier: MIT
//
// tools/commands/commands.hpp — the subcommands of `pysock`, each a function
// from its parsed arguments to an exit status. Argument parsing (CLI11) lives
// in tools/pysock_main.cpp; these functions assume valid values.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

namespace pysock::tools {

struct http_server_args {
  int port = 8000;
  std::string bind = "127.0.0.1";
  std::string directory = ".";
  /// The event loop transport (default): loops, one thread each (default 1).
  /// The threads transport: connections served at once (default 64).
  std::optional<std::size_t> threads;
  std::string transport = "loop";      ///< "loop" or "threads" (hidden option)
  std::string loop_backend = "epoll";  ///< --loop: "epoll" or "io_uring"
  double header_timeout = 20.0;        ///< seconds (hidden option, for tests)
  double write_timeout = 60.0;         ///< seconds a send may wait for room
  /// Per event loop (hidden option --file-cache-bytes; 0: no cache).
  std::size_t file_cache_bytes = 8 * 1024 * 1024;
  /// --no-access-log: no line per request on stderr (nginx's `access_log
  /// off`; Python's http.server always logs, the default here too).
  bool no_access_log = false;
  /// HTTPS (PEM files, both or neither; the key may be in the certfile's
  /// file too, but --keyfile is still required): event loop transport only.
  std::string certfile;
  std::string keyfile;
  /// --ciphers: TLS 1.2 and below (set_ciphers); --ciphersuites: TLS 1.3
  /// (set_ciphersuites). Unset: Python's defaults.
  std::optional<std::string> ciphers;
  std::optional<std::string> ciphersuites;
};
int run_http_server(const http_server_args& args);

struct echo_server_args {
  int port = 8080;
  std::string bind = "127.0.0.1";
  std::size_t threads = 64;
};
int run_echo_server(const echo_server_args& args);

struct echo_client_args {
  std::string host;
  int port = 0;
  std::string message = "Hello, World";
};
int run_echo_client(const echo_client_args& args);

/// `pysock connect` and `pysock listen`: netcat's two modes.
struct netcat_args {
  std::string host;  ///< connect: the peer; listen: the address to bind
  int port = 0;
  std::string unix_path;  ///< -U: an AF_UNIX stream socket instead of TCP/UDP
  bool udp = false;       ///< -u
  /// -w: quit after this long without data either way. Unset: never (TCP),
  /// and for UDP 2 s after stdin's end (a datagram peer never says "done").
  std::optional<double> idle_timeout;
  /// connect --tls: TLS over TCP, as `openssl s_client` (needs a build with
  /// pysock::ssl). The peer is verified against the system store or --cafile,
  /// its name against --servername (default: host); --no-verify skips both.
  bool tls = false;
  std::string cafile;
  std::string servername;
  bool no_verify = false;
};
int run_connect(const netcat_args& args);
/// connect --tls (tools/commands/tls_connect.cpp). Exit 0 when the peer
/// closed, 1 on a failure (refused, handshake or certificate), as s_client.
int run_tls_connect(const netcat_args& args);
/// False when pysock was built without TLS (no OpenSSL).
bool tls_available() noexcept;
int run_listen(const netcat_args& args);

}  // namespace pysock::tools

// SPDX-License-Identifier: MIT
//
// pysock — the command line. Subcommands mirror `python3 -m ...`:
//
//   pysock http.server [port] [-b ADDR] [-d DIR] [--threads N] [--loop epoll|io_uring]
//   pysock echo-server [port] [-b ADDR] [--threads N]
//   pysock echo-client host port [message]
//   pysock connect [-u] [-w SECS] host port      pysock connect -U path
//   pysock connect --tls [--cafile F] [--servername N] [--no-verify] host port
//   pysock listen  [-u] [-w SECS] [-b ADDR] port  pysock listen -U path
//
// Every subcommand has --help. A bad argument prints the usage line and the
// error on stderr and exits 2, as Python's argparse does; a failure at run
// time (address in use, connection refused) exits 1.
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <string>

#include "commands/commands.hpp"

namespace {

using namespace pysock::tools;

// Hand-written usage lines: they show the alternatives (-U path) that a
// generated one cannot.
const std::map<std::string, std::string> usage_lines = {
    {"", "usage: pysock [-h] {http.server,echo-server,echo-client,connect,listen} ..."},
    {"http.server",
     "usage: pysock http.server [-h] [-b ADDR] [-d DIR] [--threads N] [--loop epoll|io_uring] "
     "[--certfile FILE --keyfile FILE [--ciphers LIST] [--ciphersuites LIST]] [port]"},
    {"echo-server", "usage: pysock echo-server [-h] [-b ADDR] [--threads N] [port]"},
    {"echo-client", "usage: pysock echo-client [-h] host port [message]"},
    {"connect",
     "usage: pysock connect [-h] [-u] [-w SECS] [--tls [--cafile FILE] [--servername NAME] "
     "[--no-verify]] host port | pysock connect -U path"},
    {"listen", "usage: pysock listen [-h] [-u] [-w SECS] [-b ADDR] port | pysock listen -U path"},
};

int usage_error(const std::string& command, const std::string& message) {
  std::cerr << usage_lines.at(command) << '\n'
            << "pysock" << (command.empty() ? "" : " " + command) << ": error: " << message << '\n';
  return 2;
}

// The subcommand being parsed when an error came: the deepest parsed one.
std::string failing_command(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands({}))
    if (sub->parsed()) return sub->get_name();
  return "";
}

// netcat's modes: either -U path, or host and port (listen: port, -b host).
std::string check_netcat(const netcat_args& args, bool have_host, bool have_port, bool listening) {
  if (!args.unix_path.empty()) {
    if (have_host || have_port) return "-U takes a path instead of host and port";
    if (args.udp) return "-U with -u (Unix datagram sockets) is not supported";
    if (args.tls) return "--tls works over TCP only (not with -U)";
    return "";
  }
  if (args.tls && args.udp) return "--tls works over TCP only (not with -u)";
  if (!args.tls && (!args.cafile.empty() || !args.servername.empty() || args.no_verify))
    return "--cafile, --servername and --no-verify need --tls";
  if (listening) return have_port ? "" : "the following arguments are required: port";
  if (!have_host || !have_port) return "the following arguments are required: host, port";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pysock: Python's socket tools in C++ (http.server, echo, netcat)", "pysock"};
  app.require_subcommand(1);
  const auto port_range = CLI::Range(0, 65535);
  const auto positive_seconds = CLI::PositiveNumber;

  http_server_args http;
  CLI::App* http_cmd = app.add_subcommand(
      "http.server", "Serve the files of a directory over HTTP/1.1 (python3 -m http.server)");
  http_cmd->add_option("port", http.port, "Port to listen on; 0 picks a free one (default 8000)")
      ->check(port_range);
  http_cmd->add_option("-b,--bind", http.bind, "Address to bind (default 127.0.0.1)");
  http_cmd->add_option("-d,--directory", http.directory,
                       "Directory to serve (default: the current one)");
  http_cmd->add_option("--threads", http.threads, "Event loops, one thread each (default 1)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
  http_cmd
      ->add_option("--loop", http.loop_backend, "Event loop backend: epoll (default) or io_uring")
      ->check(CLI::IsMember({"epoll", "io_uring"}));
  // Hidden: the blocking transport, a thread per connection (--threads is
  // then the number of connections served at once, default 64).
  http_cmd->add_option("--transport", http.transport, "loop (default) or threads")
      ->check(CLI::IsMember({"loop", "threads"}))
      ->group("");
  // Hidden (empty group): the tests' knob for the slowloris timeout.
  http_cmd
      ->add_option("--header-timeout", http.header_timeout,
                   "Seconds a client has to send a request head (default 20)")
      ->check(positive_seconds)
      ->group("");
  // Hidden: each loop's small-file cache, for the benchmark's with/without
  // measurement (0 turns it off).
  http_cmd
      ->add_option("--file-cache-bytes", http.file_cache_bytes,
                   "Bytes of small files each event loop keeps in memory (default 8 MiB; 0: none)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 40))
      ->group("");

  http_cmd->add_flag("--no-access-log", http.no_access_log,
                     "No access-log line per request on stderr (default: one, as Python's)");

  http_cmd->add_option("--certfile", http.certfile,
                       "Serve HTTPS with this PEM certificate (chain); needs --keyfile");
  http_cmd->add_option("--keyfile", http.keyfile,
                       "The PEM private key of --certfile; needs --certfile");
  http_cmd->add_option("--ciphers", http.ciphers,
                       "With --certfile: the TLS 1.2 cipher list (OpenSSL's syntax, "
                       "SSLContext.set_ciphers)");
  http_cmd->add_option("--ciphersuites", http.ciphersuites,
                       "With --certfile: the TLS 1.3 suites, colon-separated in order of "
                       "preference (\"\" turns TLS 1.3 off)");

  echo_server_args echo_server;
  CLI::App* echo_server_cmd =
      app.add_subcommand("echo-server", "Echo every connection's bytes back");
  echo_server_cmd->add_option("port", echo_server.port, "Port; 0 picks a free one (default 8080)")
      ->check(port_range);
  echo_server_cmd->add_option("-b,--bind", echo_server.bind, "Address to bind (default 127.0.0.1)");
  echo_server_cmd
      ->add_option("--threads", echo_server.threads, "Connections served at once (default 64)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));

  echo_client_args echo_client;
  CLI::App* echo_client_cmd =
      app.add_subcommand("echo-client", "Send a message to an echo server and print the answer");
  echo_client_cmd->add_option("host", echo_client.host, "Server host")->required();
  echo_client_cmd->add_option("port", echo_client.port, "Server port")
      ->required()
      ->check(port_range);
  echo_client_cmd->add_option("message", echo_client.message,
                              "What to send (default \"Hello, World\")");

  netcat_args connect;
  CLI::App* connect_cmd =
      app.add_subcommand("connect", "Connect and relay stdin <-> socket (nc host port)");
  CLI::Option* connect_host = connect_cmd->add_option("host", connect.host, "Host to connect to");
  CLI::Option* connect_port =
      connect_cmd->add_option("port", connect.port, "Port")->check(port_range);
  connect_cmd->add_flag("-u,--udp", connect.udp, "UDP instead of TCP");
  connect_cmd->add_option("-U,--unix", connect.unix_path, "Connect to this AF_UNIX stream socket");
  connect_cmd->add_option("-w,--idle-timeout", connect.idle_timeout, "Quit after SECS without data")
      ->check(positive_seconds);
  connect_cmd->add_flag("--tls", connect.tls,
                        "TLS over TCP, as openssl s_client (verifies the server's certificate)");
  connect_cmd
      ->add_option("--cafile", connect.cafile,
                   "With --tls: trust the CA certificates in this PEM file instead of the "
                   "system's")
      ->check(CLI::ExistingFile);
  connect_cmd->add_option("--servername", connect.servername,
                          "With --tls: the name sent (SNI) and checked (default: host)");
  connect_cmd->add_flag("--no-verify", connect.no_verify,
                        "With --tls: accept any certificate (no chain or name check)");

  netcat_args listen;
  listen.host = "127.0.0.1";
  CLI::App* listen_cmd =
      app.add_subcommand("listen", "Accept one peer and relay stdin <-> socket (nc -l port)");
  CLI::Option* listen_port =
      listen_cmd->add_option("port", listen.port, "Port; 0 picks a free one")->check(port_range);
  listen_cmd->add_option("-b,--bind", listen.host, "Address to bind (default 127.0.0.1)");
  listen_cmd->add_flag("-u,--udp", listen.udp, "UDP instead of TCP");
  listen_cmd->add_option("-U,--unix", listen.unix_path,
                         "Listen on this AF_UNIX stream socket path");
  listen_cmd->add_option("-w,--idle-timeout", listen.idle_timeout, "Quit after SECS without data")
      ->check(positive_seconds);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(failing_command(app), e.what());
  }

  try {
    if (http_cmd->parsed()) {
      if (http.certfile.empty() != http.keyfile.empty())
        return usage_error("http.server", "--certfile and --keyfile go together");
      if (!http.certfile.empty() && http.transport == "threads")
        return usage_error("http.server", "--certfile needs the event loop transport");
      if (http.certfile.empty() && (http.ciphers || http.ciphersuites))
        return usage_error("http.server", "--ciphers and --ciphersuites need --certfile");
      return run_http_server(http);
    }
    if (echo_server_cmd->parsed()) return run_echo_server(echo_server);
    if (echo_client_cmd->parsed()) return run_echo_client(echo_client);
    if (connect_cmd->parsed()) {
      const std::string error =
          check_netcat(connect, connect_host->count() > 0, connect_port->count() > 0, false);
      if (!error.empty()) return usage_error("connect", error);
      return connect.tls ? run_tls_connect(connect) : run_connect(connect);
    }
    if (listen_cmd->parsed()) {
      const std::string error = check_netcat(listen, false, listen_port->count() > 0, true);
      if (!error.empty()) return usage_error("listen", error);
      return run_listen(listen);
    }
  } catch (const std::exception& e) {
    // What the commands do not catch themselves (a resolver failure for a
    // bad host, ...): one line, exit 1, never an abort.
    std::cerr << "pysock: " << e.what() << '\n';
    return 1;
  }
  return usage_error("", "no subcommand");
}

// SPDX-License-Identifier: MIT
//
// async_echo_server — the tutorial's echo server on the event loop: every
// connection is a coroutine that sends back whatever it receives until the
// client closes its side, then closes. As asyncio:
//
//   async def handle(reader, writer):
//       while data := await reader.read(65536):
//           writer.write(data)
//           await writer.drain()
//       writer.close()
//       await writer.wait_closed()
//
//   async def main():
//       server = await asyncio.start_server(handle, '127.0.0.1', 8080)
//       loop.add_signal_handler(SIGTERM, server.close)
//       await server.serve_forever()
//
// Usage: async_echo_server [host] [port] [--count N] [--threads N]
//   host, port   where to listen (default 127.0.0.1 8080; port 0 picks a free one)
//   --count N    exit after N connections have been served (one loop only)
//   --threads N  run N event loops on N threads with SO_REUSEPORT (0: one per CPU)
// SIGINT or SIGTERM stops it cleanly (exit status 0).
#include <pysock/streams.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

pysock::task<void> echo(pysock::stream_reader reader, pysock::stream_writer writer) {
  for (;;) {
    pysock::bytes data = co_await reader.read(65536);
    if (data.empty()) break;  // the client shut down its sending side
    writer.write(data);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

pysock::task<void> serve(const std::string& host, int port, long count) {
  pysock::event_loop& loop = pysock::get_running_loop();
  long served = 0;
  pysock::server* running = nullptr;
  auto handler = [&](pysock::stream_reader r, pysock::stream_writer w) -> pysock::task<void> {
    try {
      co_await echo(std::move(r), std::move(w));
    } catch (const pysock::connection_error& e) {
      std::cerr << "async_echo_server: " << e.what() << '\n';
    }
    ++served;
    if (count > 0 && served >= count && running != nullptr) running->close();
  };
  pysock::server server = co_await pysock::start_server(handler, host, port);
  running = &server;
  for (int sig : {SIGINT, SIGTERM}) loop.add_signal_handler(sig, [&server] { server.close(); });
  std::cout << "async_echo_server listening on " << server.sockname() << std::endl;
  co_await server.serve_forever();  // returns once close() was called
  co_await server.wait_closed();    // and every connection has finished
  for (int sig : {SIGINT, SIGTERM}) loop.remove_signal_handler(sig);
  std::cout << "async_echo_server stopped after " << served << " connection(s)" << std::endl;
}

int usage() {
  std::cerr << "usage: async_echo_server [host] [port] [--count N] [--threads N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8080;
  long count = -1;
  long threads = -1;  // -1: one loop on this thread
  try {
    std::vector<std::string_view> positional;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--count" && i + 1 < argc) {
        count = std::stol(argv[++i]);
      } else if (arg == "--threads" && i + 1 < argc) {
        threads = std::stol(argv[++i]);
      } else if (arg.starts_with("-")) {
        return usage();
      } else {
        positional.push_back(arg);
      }
    }
    if (positional.size() > 2 || (threads >= 0 && count > 0)) return usage();
    if (!positional.empty()) host = std::string(positional[0]);
    if (positional.size() > 1) port = std::stoi(std::string(positional[1]));
  } catch (const std::exception&) {
    return usage();
  }
  try {
    if (threads >= 0) {
      pysock::serve_options options;
      options.threads = static_cast<unsigned>(threads);
      options.on_listening = [](const pysock::address& a) {
        std::cout << "async_echo_server listening on " << a << std::endl;
      };
      pysock::serve_forever(echo, host, port, options);
      std::cout << "async_echo_server stopped" << std::endl;
    } else {
      pysock::run(serve(host, port, count));
    }
  } catch (const std::exception& e) {
    std::cerr << "async_echo_server: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

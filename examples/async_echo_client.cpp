// SPDX-License-Identifier: MIT
//
// async_echo_client — the tutorial's echo client with the loop's low-level
// socket coroutines (asyncio's loop.sock_* calls):
//
//   sock = socket.socket(); sock.setblocking(False)
//   await loop.sock_connect(sock, ('127.0.0.1', 8080))
//   await loop.sock_sendall(sock, b'Hello, World')
//   sock.shutdown(socket.SHUT_WR)
//   while chunk := await loop.sock_recv(sock, 1024): data += chunk
//   print('Received', data)
//
// Usage: async_echo_client [host] [port] [--message TEXT]
//   host may be a name: it is resolved on a worker thread, off the loop.
#include <pysock/loop.hpp>

#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

pysock::task<pysock::bytes> exchange(std::string host, int port, std::string message) {
  pysock::event_loop& loop = pysock::get_running_loop();
  pysock::socket sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
  const pysock::address where(host, port);
  co_await loop.sock_connect(sock, where);
  co_await loop.sock_sendall(sock, message);
  sock.shutdown(SHUT_WR);  // tells the server we are done: it replies, then closes
  pysock::bytes data;
  for (;;) {
    pysock::bytes chunk = co_await loop.sock_recv(sock, 1024);
    if (chunk.empty()) break;
    data += chunk;
  }
  co_return data;
}

int usage() {
  std::cerr << "usage: async_echo_client [host] [port] [--message TEXT]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string message = "Hello, World";
  try {
    std::vector<std::string_view> positional;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--message" && i + 1 < argc) {
        message = argv[++i];
      } else if (arg.starts_with("-")) {
        return usage();
      } else {
        positional.push_back(arg);
      }
    }
    if (positional.size() > 2) return usage();
    if (!positional.empty()) host = std::string(positional[0]);
    if (positional.size() > 1) port = std::stoi(std::string(positional[1]));
  } catch (const std::exception&) {
    return usage();
  }
  try {
    // wait_for bounds the whole exchange: a silent server cannot hang us.
    const pysock::bytes reply =
        pysock::run(pysock::wait_for(exchange(host, port, message), std::chrono::seconds(30)));
    std::cout << "Received " << reply << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "async_echo_client: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

// SPDX-License-Identifier: MIT
//
// async_echo_pysock: the lightest pysock event-loop echo server, written the
// way a user would write it, for bench/run_loop.sh. Two styles:
//
//   --mode sock (default): a coroutine per connection on loop.sock_accept /
//     sock_recv_into / sock_sendall with a per-connection buffer. As asyncio:
//
//       async def handle(conn):
//           buf = bytearray(4096)
//           while n := await loop.sock_recv_into(conn, buf):
//               await loop.sock_sendall(conn, memoryview(buf)[:n])
//
//   --mode sock-recv: the same with loop.sock_recv(conn, 65536), which makes
//     its bytes when data has come (Python's sock_recv): a waiting connection
//     holds no buffer, the style for many mostly idle connections.
//
//   --mode streams: start_server + stream_reader::read_into (the
//     allocation-free read) + stream_writer::write + drain.
//
//   --mode streams-read: the same with reader.read(65536) (allocates a bytes
//     per message, as Python's reader.read does).
//
// usage: async_echo_pysock [--port P] [--mode sock|sock-recv|streams|streams-read]
//                          [--buffer BYTES] [--count N] [--unix PATH]
//   listens on 127.0.0.1 only (or on the Unix socket PATH); prints
//   "listening on ADDRESS";
//   --count N returns after N connections have closed (so callgrind can write
//   its profile); SIGTERM/SIGINT end the process.
#include <pysock/streams.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

long g_count = -1;
std::string g_unix_path;  // --unix: listen on a Unix stream socket instead
long g_closed = 0;
std::size_t g_buffer = 4096;
pysock::event* g_done = nullptr;

void connection_closed() {
  if (g_count > 0 && ++g_closed >= g_count && g_done != nullptr) g_done->set();
}

// --- sock_* style ------------------------------------------------------------

pysock::task<void> handle(pysock::socket conn) {
  pysock::event_loop& loop = pysock::get_running_loop();
  std::vector<char> buf(g_buffer);
  try {
    for (;;) {
      const std::size_t n = co_await loop.sock_recv_into(conn, buf);
      if (n == 0) break;
      co_await loop.sock_sendall(conn, pysock::const_buffer(buf.data(), n));
    }
  } catch (const pysock::connection_error&) {
  }
  conn.close();
  connection_closed();
}

pysock::task<void> handle_allocating(pysock::socket conn) {
  pysock::event_loop& loop = pysock::get_running_loop();
  try {
    for (;;) {
      const pysock::bytes data = co_await loop.sock_recv(conn, 65536);
      if (data.empty()) break;
      co_await loop.sock_sendall(conn, data);
    }
  } catch (const pysock::connection_error&) {
  }
  conn.close();
  connection_closed();
}

bool g_sock_allocating = false;

pysock::task<void> accept_loop(pysock::socket& listener) {
  pysock::event_loop& loop = pysock::get_running_loop();
  for (;;) {
    auto [conn, addr] = co_await loop.sock_accept(listener);
    if (g_unix_path.empty()) conn.setsockopt(pysock::tcp_nodelay, true);
    if (g_sock_allocating)
      loop.create_task(handle_allocating(std::move(conn)));
    else
      loop.create_task(handle(std::move(conn)));
  }
}

pysock::task<void> serve_sock(int port) {
  pysock::event_loop& loop = pysock::get_running_loop();
  pysock::socket listener(g_unix_path.empty() ? AF_INET : AF_UNIX, SOCK_STREAM);
  if (g_unix_path.empty()) {
    listener.setsockopt(pysock::so_reuseaddr, true);
    listener.bind({"127.0.0.1", port});
  } else {
    ::unlink(g_unix_path.c_str());
    listener.bind(pysock::address::unix_path(g_unix_path));
  }
  listener.listen(4096);
  listener.setblocking(false);
  std::cout << "listening on " << listener.getsockname() << std::endl;
  pysock::event done;
  g_done = &done;
  auto acceptor = loop.create_task(accept_loop(listener));
  co_await done.wait();
  acceptor.cancel();
}

// --- streams style -----------------------------------------------------------

bool g_read_allocating = false;

pysock::task<void> echo_streams(pysock::stream_reader reader, pysock::stream_writer writer) {
  if (g_unix_path.empty()) writer.get_socket().setsockopt(pysock::tcp_nodelay, true);
  try {
    if (g_read_allocating) {
      for (;;) {
        pysock::bytes data = co_await reader.read(65536);
        if (data.empty()) break;
        writer.write(data);
        co_await writer.drain();
      }
    } else {
      std::vector<char> buf(g_buffer);
      for (;;) {
        const std::size_t n = co_await reader.read_into(buf);
        if (n == 0) break;
        writer.write(pysock::const_buffer(buf.data(), n));
        co_await writer.drain();
      }
    }
  } catch (const pysock::connection_error&) {
  }
  writer.close();
  co_await writer.wait_closed();
  connection_closed();
}

pysock::task<void> serve_streams(int port) {
  pysock::server_config config;
  config.backlog = 4096;
  pysock::server srv;
  if (g_unix_path.empty()) {
    srv = co_await pysock::start_server(echo_streams, "127.0.0.1", port, config);
  } else {
    ::unlink(g_unix_path.c_str());  // a socket file left by an earlier run
    std::string path = g_unix_path;
    srv = co_await pysock::start_unix_server(echo_streams, std::move(path), config);
  }
  std::cout << "listening on " << srv.sockname() << std::endl;
  pysock::event done;
  g_done = &done;
  co_await done.wait();
  srv.close();
}

[[noreturn]] void usage() {
  std::cerr << "usage: async_echo_pysock [--port P] [--mode sock|sock-recv|streams|streams-read]"
               " [--buffer BYTES] [--count N] [--unix PATH]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8083;
  std::string mode = "sock";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--port")
      port = std::atoi(v);
    else if (a == "--mode")
      mode = v;
    else if (a == "--buffer")
      g_buffer = static_cast<std::size_t>(std::atol(v));
    else if (a == "--count")
      g_count = std::atol(v);
    else if (a == "--unix")
      g_unix_path = v;
    else
      usage();
  }
  if (g_buffer == 0) usage();
  try {
    if (mode == "sock" || mode == "sock-recv") {
      g_sock_allocating = mode == "sock-recv";
      pysock::run(serve_sock(port));
    } else if (mode == "streams" || mode == "streams-read") {
      g_read_allocating = mode == "streams-read";
      pysock::run(serve_streams(port));
    } else {
      usage();
    }
  } catch (const std::exception& e) {
    std::cerr << "async_echo_pysock: " << e.what() << '\n';
    return 1;
  }
  return 0;
}

// SPDX-License-Identifier: MIT
//
// The tutorial's "simple http server" on select(), made correct:
//
//   while True:
//       rsocks, wsocks, _ = select.select(rlist, [], [])
//       for rsock in rsocks:
//           if rsock is sock:
//               conn, addr = rsock.accept(); rlist.append(conn)
//           else:
//               print(rsock.recv(1024)); rsock.sendall(response)
//               rsock.close(); rlist.remove(rsock)
//
// The tutorial answers after the first recv(), which may hold only part of the
// request; this server reads until the end of the request head ("\r\n\r\n")
// before answering, answers 400 to what is not an HTTP request line, drops
// clients that disconnect early or send an oversized head, and never lets one
// client's error stop the others. One thread, one select() loop.
//
// Usage: select_http_server [--host H] [--port P | P] [--count N] [--quiet]
//   --port 0 picks a free port; the line "listening on HOST:PORT" tells which.
//   --count N exits after answering N requests (for tests).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <list>
#include <string>
#include <string_view>

#include "pysock/pysock.hpp"

namespace {

constexpr std::string_view response =
    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAha, Hello";
constexpr std::string_view bad_request =
    "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBad Request";
// A head larger than this is not a request this server will wait for.
constexpr std::size_t max_head = 64 * 1024;

struct client {
  pysock::socket sock;
  std::string head;  // what arrived so far, up to the blank line
};

// "GET /path HTTP/1.1": a token, a space, a target, a space, "HTTP/".
bool looks_like_request_line(std::string_view head) {
  const auto eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const auto sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos) return false;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  return line.substr(sp2 + 1).starts_with("HTTP/");
}

int parse_int(const char* text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 1'000'000'000) {
    std::cerr << "select_http_server: bad " << what << ": " << text << "\n";
    std::exit(2);
  }
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8080;
  long count = -1;  // -1: serve forever
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (arg == "--port" && i + 1 < argc) {
      port = parse_int(argv[++i], "port");
    } else if (arg == "--count" && i + 1 < argc) {
      count = parse_int(argv[++i], "count");
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (!arg.starts_with("-")) {
      port = parse_int(argv[i], "port");
    } else {
      std::cerr << "usage: select_http_server [--host H] [--port P | P] [--count N] [--quiet]\n";
      return 2;
    }
  }

  pysock::socket sock = pysock::create_server({host, port});
  // Non-blocking: a client that connects and resets before accept() would
  // otherwise block accept() and with it every other client.
  sock.setblocking(false);
  std::cout << "listening on " << sock.getsockname() << std::endl;

  std::list<client> clients;  // list: the selectables point at these sockets
  std::vector<pysock::selectable> rlist{&sock};
  long answered = 0;

  auto drop = [&](std::list<client>::iterator it) {
    std::erase(rlist, pysock::selectable(&it->sock));
    clients.erase(it);  // closes the socket
  };

  while (count < 0 || answered < count) {
    auto [rsocks, wsocks, xsocks] = pysock::select(rlist, {}, {});
    for (const pysock::selectable& rsock : rsocks) {
      if (rsock.sock() == &sock) {
        std::error_code ec;
        auto [conn, addr] = sock.accept(ec);
        if (ec) continue;  // the client gave up already (ECONNABORTED, EAGAIN)
        conn.setblocking(false);
        clients.push_back({std::move(conn), {}});
        rlist.push_back(&clients.back().sock);
        continue;
      }
      auto it = clients.begin();
      while (it != clients.end() && &it->sock != rsock.sock()) ++it;
      if (it == clients.end()) continue;
      char buf[4096];
      std::error_code ec;
      const std::size_t n = it->sock.recv_into(buf, 0, 0, ec);
      if (ec == std::errc::operation_would_block) continue;
      if (ec || n == 0) {  // reset, or closed before the head was complete
        drop(it);
        continue;
      }
      it->head.append(buf, n);
      const auto end = it->head.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (it->head.size() > max_head) drop(it);
        continue;
      }
      const bool ok = looks_like_request_line(it->head);
      if (!quiet) std::cout << it->head.substr(0, it->head.find("\r\n")) << std::endl;
      try {
        // A response this small fits any socket buffer: sendall() on the
        // non-blocking socket completes in one send().
        it->sock.sendall(ok ? response : bad_request);
      } catch (const pysock::os_error& e) {
        if (!quiet) std::cerr << "select_http_server: " << e.what() << "\n";
      }
      ++answered;
      drop(it);
    }
  }
  return 0;
}

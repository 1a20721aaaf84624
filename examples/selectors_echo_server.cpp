// SPDX-License-Identifier: MIT
//
// Python's selectors echo server (the example of the selectors docs), grown
// into one that serves many clients at once correctly:
//
//   sel = selectors.DefaultSelector()
//   sock.setblocking(False); sel.register(sock, EVENT_READ, accept)
//   while True:
//       for key, mask in sel.select():
//           key.data(key.fileobj, mask)
//
// - Every socket is non-blocking; one default_selector (epoll) drives them.
// - Echoed bytes go out at once when the socket takes them; what it does not
//   take waits in the connection's buffer, and only then is EVENT_WRITE asked
//   for (a socket registered for WRITE while it has nothing to say would wake
//   the loop at every turn).
// - A client that sends faster than it reads is throttled: above 1 MiB of
//   pending output its reads stop until the backlog drains.
// - A peer that resets, or half-closes after sending, is handled: the rest of
//   its echo is flushed, then it is closed; no client can stop the others.
// - The hot path allocates nothing and throws nothing (recv_into/send with
//   std::error_code); user data is a typed pointer, no std::any.
//
// Usage: selectors_echo_server [--host H] [--port P | P] [--count N] [--quiet]
//   --port 0 picks a free port ("listening on HOST:PORT" says which);
//   --count N exits after N connections have closed (for tests and benches).
#include <array>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pysock/pysock.hpp"

namespace {

constexpr std::size_t read_size = 64 * 1024;
constexpr std::size_t max_pending = 1024 * 1024;

struct connection {
  pysock::socket sock;
  std::string pending;     // echo not yet taken by the socket
  std::size_t sent = 0;    // how much of `pending` went out already
  bool peer_done = false;  // EOF seen: close once `pending` is flushed
  unsigned interest = pysock::EVENT_READ;
};

class echo_server {
 public:
  echo_server(const std::string& host, int port, long count, bool quiet)
      : listener_(pysock::create_server({host, port}, {.backlog = 1024})),
        count_(count),
        quiet_(quiet) {
    listener_.setblocking(false);
    // The listener's data is nullptr: that is how events tell it apart.
    sel_.register_(listener_, pysock::EVENT_READ, nullptr);
  }

  pysock::address address() const { return listener_.getsockname(); }

  void run() {
    while (count_ < 0 || closed_ < count_) {
      for (const auto& [key, events] : sel_.select()) {
        if (key.data == nullptr) {
          accept_all();
        } else {
          serve(*key.data, events);
        }
      }
    }
  }

 private:
  void accept_all() {
    // Drain the backlog: level-triggered, but one wake-up per batch is cheaper.
    for (;;) {
      std::error_code ec;
      auto [sock, addr] = listener_.accept(ec);
      if (ec) {
        if (ec != std::errc::operation_would_block && !quiet_)
          std::cerr << "accept: " << ec.message() << "\n";
        return;
      }
      sock.setblocking(false);
      sock.setsockopt(pysock::tcp_nodelay, true);
      auto conn = std::make_unique<connection>();
      conn->sock = std::move(sock);
      connection* c = conn.get();
      const int fd = c->sock.fileno();
      connections_[fd] = std::move(conn);
      sel_.register_(c->sock, pysock::EVENT_READ, c);
    }
  }

  void serve(connection& c, unsigned events) {
    if (events & pysock::EVENT_READ) {
      if (!on_readable(c)) return;
    }
    if ((events & pysock::EVENT_WRITE) && !c.pending.empty()) {
      if (!flush(c)) return;
    }
    if (c.peer_done && c.pending.empty()) {
      close(c);
      return;
    }
    update_interest(c);
  }

  // Returns false when the connection was closed.
  bool on_readable(connection& c) {
    std::error_code ec;
    const std::size_t n = c.sock.recv_into(buffer_, 0, 0, ec);
    // Test `ec` itself first: comparing an error_code with an errc goes
    // through two virtual category calls, too dear for every message.
    if (ec) {
      if (ec == std::errc::operation_would_block) return true;
      close(c);  // ECONNRESET and friends: nothing more to say to this peer
      return false;
    }
    if (n == 0) {
      c.peer_done = true;
      return true;
    }
    std::string_view data(buffer_.data(), n);
    if (c.pending.empty()) {
      // The common case: the socket takes the whole echo now, no copy.
      const std::size_t sent = c.sock.send(data, 0, ec);
      if (ec && ec != std::errc::operation_would_block) {
        close(c);
        return false;
      }
      data.remove_prefix(ec ? 0 : sent);
    }
    if (!data.empty()) c.pending.append(data);
    return true;
  }

  bool flush(connection& c) {
    std::error_code ec;
    const std::string_view rest = std::string_view(c.pending).substr(c.sent);
    const std::size_t sent = c.sock.send(rest, 0, ec);
    if (ec) {
      if (ec == std::errc::operation_would_block) return true;
      close(c);  // EPIPE/ECONNRESET: the peer is gone
      return false;
    }
    c.sent += sent;
    if (c.sent == c.pending.size()) {
      c.pending.clear();  // keeps its capacity for the next burst
      c.sent = 0;
    }
    return true;
  }

  void update_interest(connection& c) {
    unsigned want = 0;
    if (!c.peer_done && c.pending.size() - c.sent < max_pending) want |= pysock::EVENT_READ;
    if (!c.pending.empty()) want |= pysock::EVENT_WRITE;
    if (want == 0) want = pysock::EVENT_WRITE;  // unreachable: pending or reading
    if (want != c.interest) {
      sel_.modify(c.sock, want);
      c.interest = want;
    }
  }

  void close(connection& c) {
    const int fd = c.sock.fileno();
    sel_.unregister(c.sock);
    connections_.erase(fd);  // closes the socket; the key was retired already
    ++closed_;
  }

  pysock::socket listener_;
  pysock::default_selector<connection*> sel_;
  std::unordered_map<int, std::unique_ptr<connection>> connections_;
  std::array<char, read_size> buffer_{};
  long count_;
  long closed_ = 0;
  bool quiet_;
};

int parse_int(const char* text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 1'000'000'000) {
    std::cerr << "selectors_echo_server: bad " << what << ": " << text << "\n";
    std::exit(2);
  }
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8081;
  long count = -1;
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
      std::cerr << "usage: selectors_echo_server [--host H] [--port P | P] [--count N] [--quiet]\n";
      return 2;
    }
  }
  echo_server server(host, port, count, quiet);
  std::cout << "listening on " << server.address() << std::endl;
  server.run();
  return 0;
}

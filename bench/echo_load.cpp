// SPDX-License-Identifier: MIT
//
// echo_load: an echo-protocol load generator and checker on pysock.
//
// Opens C connections to an echo server and runs ping-pong on each: send one
// message of S bytes, wait for all S bytes to come back, compare them with
// what was sent, send the next. Every message has its own byte pattern
// (connection number, message number, offset), so a server that mixes up
// clients, drops or reorders bytes is caught.
//
// Two uses:
//   - test: `echo_load --port P --connections 200 --messages 20 --size 1000`
//     exits 0 only when every connection got every message back intact.
//   - bench: `echo_load --port P --connections 50 --size 64 --duration 5`
//     prints "messages=N seconds=T rate=R" (a message = one echoed round trip).
//
// One thread, non-blocking sockets on one pysock::epoll with the connection
// index as epoll data and a caller-provided event buffer: the steady state
// allocates nothing and does no lookups.
#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pysock/pysock.hpp"

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string unix_path;  // --unix: a Unix stream socket instead of TCP
  int connections = 50;
  std::size_t size = 64;
  long messages = -1;     // per connection; -1: until --duration
  double duration = 0.0;  // seconds; 0: until --messages
  double hold = 0.0;      // seconds to keep every connection open after the report
};

struct conn {
  pysock::socket sock;
  std::string out;       // the message in flight
  std::size_t sent = 0;  // bytes of `out` written
  std::size_t got = 0;   // bytes of the echo received
  long done = 0;         // completed round trips
  bool finished = false;
  std::uint32_t events = 0;
};

void fill_message(std::string& out, std::size_t conn_index, long message) {
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] =
        static_cast<char>((conn_index * 131 + static_cast<std::size_t>(message) * 7 + i) & 0xff);
}

[[noreturn]] void usage() {
  std::cerr << "usage: echo_load --port P|--unix PATH [--host H] [--connections C] [--size S]"
               " [--messages M] [--duration SECONDS] [--hold SECONDS]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--host")
      opt.host = v;
    else if (a == "--unix")
      opt.unix_path = v;
    else if (a == "--port")
      opt.port = std::atoi(v);
    else if (a == "--connections")
      opt.connections = std::atoi(v);
    else if (a == "--size")
      opt.size = static_cast<std::size_t>(std::atol(v));
    else if (a == "--messages")
      opt.messages = std::atol(v);
    else if (a == "--duration")
      opt.duration = std::atof(v);
    else if (a == "--hold")
      opt.hold = std::atof(v);
    else
      usage();
  }
  if ((opt.port <= 0 && opt.unix_path.empty()) || opt.connections <= 0 || opt.size == 0 ||
      (opt.messages < 0 && opt.duration <= 0))
    usage();

  const auto n = static_cast<std::size_t>(opt.connections);
  std::vector<conn> conns(n);
  pysock::epoll ep;
  for (std::size_t i = 0; i < n; ++i) {
    conn& c = conns[i];
    if (opt.unix_path.empty()) {
      c.sock = pysock::create_connection({opt.host, opt.port}, std::chrono::seconds(10));
      c.sock.setsockopt(pysock::tcp_nodelay, true);
    } else {
      c.sock = pysock::socket(AF_UNIX, SOCK_STREAM);
      c.sock.connect(pysock::address::unix_path(opt.unix_path));
    }
    c.sock.setblocking(false);
    c.out.resize(opt.size);
    fill_message(c.out, i, 0);
    epoll_data_t data{};
    data.u64 = i;
    c.events = EPOLLIN | EPOLLOUT;
    ep.register_(c.sock, c.events, data);
  }

  std::string in(std::max<std::size_t>(opt.size, 64 * 1024), '\0');
  std::vector<epoll_event> events(n);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline =
      opt.duration > 0 ? start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(opt.duration))
                       : std::chrono::steady_clock::time_point::max();
  std::size_t active = n;
  long total = 0;
  bool stop = false;
  int errors = 0;
  while (active > 0 && !stop) {
    const std::size_t ready = ep.poll(events, std::chrono::seconds(10));
    if (ready == 0) {
      std::cerr << "echo_load: no progress for 10 s (" << active << " connections waiting)\n";
      return 1;
    }
    for (std::size_t e = 0; e < ready; ++e) {
      const std::size_t i = events[e].data.u64;
      conn& c = conns[i];
      if (c.finished) continue;
      std::error_code ec;
      if ((events[e].events & EPOLLOUT) && c.sent < c.out.size()) {
        const std::size_t k = c.sock.send(std::string_view(c.out).substr(c.sent), 0, ec);
        if (ec && ec != std::errc::operation_would_block) {
          std::cerr << "echo_load: send on connection " << i << ": " << ec.message() << "\n";
          return 1;
        }
        if (!ec) c.sent += k;
      }
      if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        // Never read past the current message: the next one is not sent yet.
        const std::size_t want = c.out.size() - c.got;
        const std::size_t k = c.sock.recv_into(in, want < in.size() ? want : in.size(), 0, ec);
        if (ec && ec != std::errc::operation_would_block) {
          std::cerr << "echo_load: recv on connection " << i << ": " << ec.message() << "\n";
          return 1;
        }
        if (!ec && k == 0) {
          std::cerr << "echo_load: connection " << i << " closed by the server after " << c.done
                    << " messages\n";
          return 1;
        }
        if (!ec) {
          if (std::memcmp(in.data(), c.out.data() + c.got, k) != 0) {
            if (++errors < 5)
              std::cerr << "echo_load: connection " << i << " message " << c.done
                        << ": bytes differ at offset " << c.got << "\n";
          }
          c.got += k;
        }
      }
      if (c.got == c.out.size()) {
        ++c.done;
        ++total;
        c.sent = c.got = 0;
        if ((opt.messages >= 0 && c.done >= opt.messages) ||
            std::chrono::steady_clock::now() >= deadline) {
          c.finished = true;
          --active;
          ep.unregister(c.sock);
          if (opt.messages < 0) stop = true;  // duration mode: stop the clock now
          continue;
        }
        fill_message(c.out, i, c.done);
        // Send at once: on loopback the socket almost always takes it.
        const std::size_t k = c.sock.send(c.out, 0, ec);
        if (ec && ec != std::errc::operation_would_block) {
          std::cerr << "echo_load: send on connection " << i << ": " << ec.message() << "\n";
          return 1;
        }
        if (!ec) c.sent = k;
      }
      // Ask for EPOLLOUT only while part of the message is still unsent.
      const std::uint32_t want = EPOLLIN | (c.sent < c.out.size() ? EPOLLOUT : 0u);
      if (want != c.events) {
        epoll_data_t data{};
        data.u64 = i;
        ep.modify(c.sock, want, data);
        c.events = want;
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "messages=" << total << " seconds=" << seconds
            << " rate=" << static_cast<double>(total) / seconds << " errors=" << errors
            << std::endl;
  // --hold: the connections stay open (idle) this long after the report, so
  // a benchmark can measure the server's memory with them connected.
  if (opt.hold > 0) std::this_thread::sleep_for(std::chrono::duration<double>(opt.hold));
  if (errors) return 1;
  if (opt.messages >= 0 && total != opt.messages * opt.connections) return 1;
  return 0;
}

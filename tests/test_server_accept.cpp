// SPDX-License-Identifier: MIT
//
// start_server's accepting side on both backends: on io_uring the listener
// accepts through one multishot request, so these tests pin down what a user
// relies on whichever way the connections come in — a closed server really
// stops listening, connections queued or accepted-but-not-served when it
// closes are closed (no client hangs, no descriptor leaks), a burst queued
// before the loop runs is served whole, running out of descriptors pauses
// accepting instead of ending it, and the accepted sockets follow Python's
// rules (non-inheritable, non-blocking). Real sockets on loopback only.
#include <pysock/streams.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/checks.hpp"
#include "support/stream_backends.hpp"

using namespace std::chrono_literals;
using pysock::task;

namespace {

// Echoes one line, then closes.
task<void> echo_one_line(pysock::stream_reader reader, pysock::stream_writer writer) {
  writer.write(co_await reader.readline());
  writer.close();
  co_await writer.wait_closed();
}

// A blocking client socket connected to 127.0.0.1:port, with a receive
// timeout so a test that goes wrong fails instead of hanging.
pysock::socket connected_client(int port) {
  pysock::socket s(AF_INET, SOCK_STREAM);
  s.settimeout(5s);
  s.connect(pysock::address("127.0.0.1", port));
  return s;
}

std::string read_to_eof(pysock::socket& client) {
  std::string got;
  for (;;) {
    const pysock::bytes part = client.recv(64);
    if (part.empty()) return got;
    got += part;
  }
}

// What a client sees once the server side is gone: EOF or a reset, never
// silence (a recv timeout here means the connection was left hanging).
std::string outcome_after_server_close(pysock::socket& client) {
  try {
    const pysock::bytes got = client.recv(64);
    return got.empty() ? "eof" : "data: " + std::string(got);
  } catch (const pysock::connection_reset_error&) {
    return "reset";
  } catch (const pysock::timeout_error&) {
    return "hung";
  }
}

class server_accept : public test_support::on_each_backend {};
PYSOCK_ON_EACH_BACKEND(server_accept);

}  // namespace

TEST_P(server_accept, a_closed_server_refuses_new_connections_at_once) {
  auto body = []() -> task<void> {
    auto srv = co_await pysock::start_server(echo_one_line, "127.0.0.1", 0);
    const int port = srv.sockname().port();
    // Let the accept loop start (on io_uring: its request is in the kernel).
    co_await pysock::sleep(10ms);
    {
      auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", port);
      writer.write("hello\n");
      EXPECT_EQ(co_await reader.read(), "hello\n");
      writer.close();
      co_await writer.wait_closed();
    }
    srv.close();
    // No await in between: close() itself must have stopped the listening
    // (an accept request left in the kernel would keep the port open).
    pysock::socket after(AF_INET, SOCK_STREAM);
    EXPECT_THROW(after.connect(pysock::address("127.0.0.1", port)),
                 pysock::connection_refused_error);
    co_await srv.wait_closed();
    EXPECT_EQ(pysock::get_running_loop().kernel_requests_in_flight(), 0u);
  };
  run_bounded(body());
}

TEST_P(server_accept, a_burst_queued_before_the_loop_runs_is_served_whole) {
  constexpr int kClients = 64;
  pysock::socket listener = pysock::create_server(pysock::address("127.0.0.1", 0));
  const int port = listener.getsockname().port();
  // Connected (the kernel completes the handshakes from the backlog) and
  // written to before any accept is made.
  std::vector<pysock::socket> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connected_client(port));
    clients.back().sendall("client " + std::to_string(i) + "\n");
  }
  int served = 0;
  auto body = [&]() -> task<void> {
    auto handler = [&served](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      ++served;
      co_await echo_one_line(std::move(r), std::move(w));
    };
    auto srv = co_await pysock::start_server(handler, std::move(listener));
    while (served < kClients) co_await pysock::sleep(2ms);
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
  EXPECT_EQ(served, kClients);
  for (std::size_t i = 0; i < clients.size(); ++i)
    EXPECT_EQ(read_to_eof(clients[i]), "client " + std::to_string(i) + "\n");
}

TEST_P(server_accept, connections_not_yet_served_at_close_are_closed_not_leaked) {
  constexpr int kClients = 16;
  const int descriptors_before = test_support::count_open_descriptors();
  std::vector<pysock::socket> clients;
  int served = 0;
  auto body = [&]() -> task<void> {
    auto handler = [&served](pysock::stream_reader, pysock::stream_writer) -> task<void> {
      ++served;
      co_return;
    };
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0);
    const int port = srv.sockname().port();
    co_await pysock::sleep(10ms);
    // Connected while the loop is busy here: the connections wait in the
    // backlog (epoll) or are accepted by the kernel's request with nobody to
    // take them yet (io_uring). Closing now must close every one of them.
    for (int i = 0; i < kClients; ++i) clients.push_back(connected_client(port));
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
  EXPECT_EQ(served, 0);
  for (auto& client : clients) {
    const std::string outcome = outcome_after_server_close(client);
    EXPECT_TRUE(outcome == "eof" || outcome == "reset") << outcome;
  }
  clients.clear();
  EXPECT_EQ(test_support::count_open_descriptors(), descriptors_before);
}

TEST_P(server_accept, a_server_that_outlives_its_loop_leaks_nothing_and_stops_listening) {
  const int descriptors_before = test_support::count_open_descriptors();
  std::optional<pysock::server> kept;
  int port = 0;
  std::optional<pysock::socket> waiting_client;
  {
    pysock::event_loop loop(pysock::loop_options{GetParam()});
    auto body = [&]() -> task<void> {
      kept.emplace(co_await pysock::start_server(echo_one_line, "127.0.0.1", 0));
      port = kept->sockname().port();
      co_await pysock::sleep(10ms);
      waiting_client.emplace(connected_client(port));  // never served
    };
    loop.run_until_complete(body());
  }  // the loop goes with the accept task still waiting
  ASSERT_TRUE(kept.has_value());
  kept.reset();
  const std::string outcome = outcome_after_server_close(*waiting_client);
  EXPECT_TRUE(outcome == "eof" || outcome == "reset") << outcome;
  waiting_client.reset();
  pysock::socket after(AF_INET, SOCK_STREAM);
  EXPECT_THROW(after.connect(pysock::address("127.0.0.1", port)), pysock::connection_refused_error);
  after.close();
  EXPECT_EQ(test_support::count_open_descriptors(), descriptors_before);
}

TEST_P(server_accept, accepted_sockets_are_non_inheritable_non_blocking_and_know_their_peer) {
  auto body = []() -> task<void> {
    bool checked = false;
    pysock::address client_name;
    auto handler = [&](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      const int fd = w.get_socket().fileno();
      EXPECT_TRUE(test_support::is_cloexec(fd));
      EXPECT_TRUE(test_support::is_nonblocking(fd));
      EXPECT_FALSE(w.get_socket().getblocking());
      EXPECT_EQ(w.get_socket().family(), AF_INET);
      EXPECT_EQ(w.get_socket().type(), SOCK_STREAM);
      EXPECT_EQ(w.peername(), client_name);
      checked = true;
      co_await echo_one_line(std::move(r), std::move(w));
    };
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    client_name = writer.sockname();
    writer.write("x\n");
    EXPECT_EQ(co_await reader.readline(), "x\n");
    EXPECT_TRUE(checked);
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(server_accept, out_of_descriptors_pauses_accepting_and_serves_the_clients_later) {
  if (test_support::under_address_sanitizer)
    GTEST_SKIP() << "under the sanitizers: UBSan's vptr check opens a pipe to test that memory "
                    "is readable, which fails at the descriptor limit this test sets, and it "
                    "then reports every object as having an invalid vptr";
  constexpr int kClients = 4;
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  std::vector<pysock::socket> clients;
  std::vector<int> fillers;  // /dev/null descriptors filling the table's gaps
  int served = 0;
  testing::internal::CaptureStderr();
  auto body = [&]() -> task<void> {
    auto handler = [&served](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      ++served;
      co_await echo_one_line(std::move(r), std::move(w));
    };
    pysock::socket listener = pysock::create_server(pysock::address("127.0.0.1", 0));
    const int port = listener.getsockname().port();
    for (int i = 0; i < kClients; ++i) clients.emplace_back(AF_INET, SOCK_STREAM);
    // Every descriptor number below the limit taken, so accept() gets
    // EMFILE: the gaps are filled, then the limit is set at the first free
    // number. (The clients' sockets exist already; connect() needs none.)
    // Set before the server starts: io_uring's accept request takes the
    // limit when it is submitted, as the kernel does for every accept it
    // makes on the application's behalf.
    int highest = 0;
    for (int fd = 0; fd < 4096; ++fd)
      if (test_support::fd_is_open(fd)) highest = fd;
    int free_number = -1;
    while (free_number < 0) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // the lowest free number
      if (fd < 0 || fd > highest) {
        if (fd >= 0) ::close(fd);
        free_number = fd;
      } else {
        fillers.push_back(fd);
      }
    }
    EXPECT_GT(free_number, 0);
    rlimit tight = original;
    tight.rlim_cur = static_cast<rlim_t>(free_number);
    EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    auto srv = co_await pysock::start_server(handler, std::move(listener));
    for (std::size_t i = 0; i < clients.size(); ++i) {
      clients[i].settimeout(5s);
      clients[i].connect(pysock::address("127.0.0.1", port));
      clients[i].sendall("line " + std::to_string(i) + "\n");
    }
    co_await pysock::sleep(50ms);  // the accept fails and the server pauses
    EXPECT_EQ(served, 0);
    EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
    for (const int fd : fillers) ::close(fd);
    fillers.clear();
    for (int i = 0; i < 500 && served < kClients; ++i) co_await pysock::sleep(5ms);
    EXPECT_TRUE(srv.is_serving());
    srv.close();
    co_await srv.wait_closed();
  };
  std::optional<std::string> failure;
  try {
    run_bounded(body());
  } catch (const std::exception& e) {
    failure = e.what();
  }
  ::setrlimit(RLIMIT_NOFILE, &original);
  for (const int fd : fillers) ::close(fd);
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_FALSE(failure.has_value()) << *failure;
  EXPECT_TRUE(test_support::contains(log, "pausing accepts for 100 ms")) << log;
  EXPECT_EQ(served, kClients);
  for (std::size_t i = 0; i < clients.size(); ++i)
    EXPECT_EQ(read_to_eof(clients[i]), "line " + std::to_string(i) + "\n");
}

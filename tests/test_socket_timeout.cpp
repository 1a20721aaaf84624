// SPDX-License-Identifier: MIT
//
// Timeout mode of pysock::socket (Python's settimeout(t > 0)): every waiting call
// raises timeout_error("timed out") — no errno, code() == std::errc::timed_out —
// after at least the timeout; sendall() has one deadline for the whole call;
// signals do not extend a deadline (PEP 475). Timings are checked with lower
// bounds and generous upper bounds only.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/socket.hpp"

namespace {

using test_support::catch_as;
using test_support::contains;

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Checks everything Python promises about a socket timeout.
void expect_socket_timeout(const std::optional<pysock::os_error>& e, std::type_index type,
                           steady::duration elapsed, std::chrono::milliseconds timeout) {
  ASSERT_TRUE(e) << "the call returned instead of timing out";
  EXPECT_EQ(type, std::type_index(typeid(pysock::timeout_error))) << e->what();
  EXPECT_TRUE(contains(e->what(), "timed out")) << e->what();
  EXPECT_EQ(e->errno_value(), 0) << e->what();
  EXPECT_TRUE(e->code() == std::errc::timed_out) << e->code().message();
  EXPECT_GE(elapsed, timeout);
  EXPECT_LT(elapsed, 5s);
}

pysock::socket make_listener() {
  pysock::socket listener;
  listener.bind({"127.0.0.1", 0});
  listener.listen();
  return listener;
}

std::atomic<int> g_sigalrm_count{0};
void count_sigalrm(int) { g_sigalrm_count.fetch_add(1, std::memory_order_relaxed); }

struct sigalrm_without_restart {
  struct sigaction previous {};
  sigalrm_without_restart() {
    struct sigaction action {};
    action.sa_handler = count_sigalrm;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    ::sigaction(SIGALRM, &action, &previous);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    g_sigalrm_count = 0;
  }
  ~sigalrm_without_restart() { ::sigaction(SIGALRM, &previous, nullptr); }
  sigalrm_without_restart(const sigalrm_without_restart&) = delete;
  sigalrm_without_restart& operator=(const sigalrm_without_restart&) = delete;
};

}  // namespace

TEST(socket_timeout, recv_with_50ms_timeout_raises_timeout_error_after_50ms) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(50ms);
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { pair.first.recv(100); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
}

TEST(socket_timeout, recv_with_error_code_in_timeout_mode_gives_timed_out_without_throwing) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(50ms);
  std::error_code ec;
  const auto start = steady::now();
  const pysock::bytes got = pair.first.recv(100, 0, ec);
  const auto elapsed = steady::now() - start;
  EXPECT_EQ(got, "");
  EXPECT_TRUE(ec == std::errc::timed_out) << ec.message();
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 5s);
  std::array<char, 8> buf{};
  ec.clear();
  EXPECT_EQ(pair.first.recv_into(buf, 0, 0, ec), 0u);
  EXPECT_TRUE(ec == std::errc::timed_out) << ec.message();
}

TEST(socket_timeout, recv_into_recvfrom_and_recvfrom_into_time_out) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(50ms);
  std::array<char, 8> buf{};
  std::type_index type = typeid(void);
  auto start = steady::now();
  auto e = catch_as([&] { pair.first.recv_into(buf); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
  start = steady::now();
  e = catch_as([&] { pair.first.recvfrom(8); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
  start = steady::now();
  e = catch_as([&] { pair.first.recvfrom_into(buf); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
}

TEST(socket_timeout, udp_recv_times_out) {
  pysock::socket s(AF_INET, SOCK_DGRAM);
  s.bind({"127.0.0.1", 0});
  s.settimeout(50ms);
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { s.recv(100); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
}

TEST(socket_timeout, accept_with_timeout_raises_timeout_error) {
  pysock::socket listener = make_listener();
  listener.settimeout(50ms);
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { listener.accept(); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
}

TEST(socket_timeout, accept_with_error_code_in_timeout_mode_gives_timed_out) {
  pysock::socket listener = make_listener();
  listener.settimeout(50ms);
  std::error_code ec;
  auto result = listener.accept(ec);
  EXPECT_TRUE(ec == std::errc::timed_out) << ec.message();
  EXPECT_EQ(result.first.fileno(), -1);
}

TEST(socket_timeout, timeout_zero_recv_raises_blocking_io_error_not_timeout_error) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(0s);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { pair.first.recv(100); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error))) << e->what();
  EXPECT_EQ(e->errno_value(), EAGAIN);
}

TEST(socket_timeout, msg_dontwait_in_timeout_mode_waits_the_timeout_like_python) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(50ms);
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { pair.first.recv(100, MSG_DONTWAIT); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
}

TEST(socket_timeout, msg_dontwait_on_blocking_socket_raises_blocking_io_error) {
  auto pair = pysock::socketpair();
  std::type_index type = typeid(void);
  auto e = catch_as([&] { pair.first.recv(100, MSG_DONTWAIT); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error))) << e->what();
}

TEST(socket_timeout, socket_stays_usable_after_a_timeout) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(50ms);
  EXPECT_THROW(pair.first.recv(100), pysock::timeout_error);
  pair.second.sendall("later");
  EXPECT_EQ(pair.first.recv(100), "later");
  EXPECT_EQ(pair.first.gettimeout(), pysock::timeout_type(50ms));
}

TEST(socket_timeout, recv_returns_data_that_arrives_before_the_deadline) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(5s);
  const auto start = steady::now();
  std::thread peer([&] {
    std::this_thread::sleep_for(50ms);
    try {
      pair.second.sendall("in time");
    } catch (...) {
    }
  });
  std::string got;
  std::string error;
  try {
    got = pair.first.recv(100);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto elapsed = steady::now() - start;
  peer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(got, "in time");
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 5s);
}

TEST(socket_timeout, accept_returns_connection_that_arrives_before_the_deadline) {
  pysock::socket listener = make_listener();
  listener.settimeout(5s);
  const auto where = listener.getsockname();
  std::string client_error;
  std::thread client_thread([&] {
    try {
      std::this_thread::sleep_for(50ms);
      pysock::socket client;
      client.connect(where);
      client.sendall("x");
    } catch (const std::exception& e) {
      client_error = e.what();
    }
  });
  std::string error;
  try {
    auto accepted = listener.accept();
    EXPECT_EQ(accepted.first.gettimeout(), std::nullopt);  // default, not the listener's
  } catch (const std::exception& e) {
    error = e.what();
  }
  client_thread.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(client_error, "");
}

TEST(socket_timeout, sendall_deadline_covers_the_whole_call) {
  auto pair = pysock::socketpair();  // nobody reads pair.second
  pair.first.settimeout(100ms);
  const std::string big(64u * 1024 * 1024, 's');
  std::size_t sent = 0;
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { pair.first.sendall(big, 0, &sent); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 100ms);
  EXPECT_GT(sent, 0u) << "sendall reports what it sent before the timeout";
  EXPECT_LT(sent, big.size());
}

TEST(socket_timeout, sendall_with_slow_reader_times_out_on_total_not_per_chunk) {
  // The reader drains a little every 20 ms: every single wait is short, but the
  // whole sendall cannot finish within 300 ms (nor within 5 s), so the total
  // deadline must fire.
  auto pair = pysock::socketpair();
  pair.first.settimeout(300ms);
  pair.second.setblocking(false);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    std::vector<char> buf(64 * 1024);
    for (int i = 0; i < 400 && !done.load(); ++i) {
      std::this_thread::sleep_for(20ms);
      std::error_code ec;
      for (int k = 0; k < 1000 && !ec; ++k) (void)pair.second.recv_into(buf, 0, 0, ec);
    }
  });
  const std::string big(64u * 1024 * 1024, 't');
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { pair.first.sendall(big); }, &type);
  const auto elapsed = steady::now() - start;
  done = true;
  reader.join();
  expect_socket_timeout(e, type, elapsed, 300ms);
}

TEST(socket_timeout, send_on_full_buffer_times_out) {
  auto pair = pysock::socketpair();
  pair.first.setblocking(false);
  const std::string chunk(64 * 1024, 'f');
  std::error_code ec;
  for (int i = 0; i < 10000 && !ec; ++i) (void)pair.first.send(chunk, 0, ec);
  ASSERT_EQ(ec, std::errc::operation_would_block);
  pair.first.settimeout(50ms);
  std::type_index type = typeid(void);
  const auto start = steady::now();
  auto e = catch_as([&] { pair.first.send(chunk); }, &type);
  expect_socket_timeout(e, type, steady::now() - start, 50ms);
}

TEST(socket_timeout, periodic_signals_do_not_extend_recv_timeout) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(300ms);
  sigalrm_without_restart handler;
  const pthread_t receiver = ::pthread_self();
  std::atomic<bool> done{false};
  // Signals keep coming for up to 4 s: a timeout restarted by each signal
  // would end only ~300 ms after the last one, past the 3 s bound below.
  std::thread signaller([&] {
    for (int i = 0; i < 200 && !done.load(); ++i) {
      ::pthread_kill(receiver, SIGALRM);
      std::this_thread::sleep_for(20ms);
    }
  });
  std::type_index type = typeid(void);
  const auto start = steady::now();
  std::optional<pysock::os_error> e;
  try {
    e = catch_as([&] { pair.first.recv(100); }, &type);
  } catch (...) {
  }
  const auto elapsed = steady::now() - start;
  done = true;
  signaller.join();
  ASSERT_TRUE(e) << "recv did not raise os_error";
  EXPECT_EQ(type, std::type_index(typeid(pysock::timeout_error))) << e->what();
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_GT(g_sigalrm_count.load(), 0);
}

TEST(socket_timeout, connect_to_full_backlog_times_out_and_connect_ex_returns_eagain) {
  pysock::socket listener;
  listener.bind({"127.0.0.1", 0});
  listener.listen(0);
  const auto where = listener.getsockname();
  std::vector<pysock::socket> connected;
  for (int i = 0; i < 16; ++i) {
    pysock::socket c;
    c.settimeout(200ms);
    const auto start = steady::now();
    const int result = c.connect_ex(where);
    const auto elapsed = steady::now() - start;
    if (result == 0) {
      connected.push_back(std::move(c));
      continue;
    }
    EXPECT_EQ(result, EAGAIN) << "connect_ex returned " << result;
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 5s);
    // The socket is left half-connecting: connect() again is EALREADY.
    std::type_index type = typeid(void);
    auto again = catch_as([&] { c.connect(where); }, &type);
    if (again && again->errno_value() == EALREADY) {
      EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
    }
    // A new socket's connect() raises timeout_error.
    pysock::socket d;
    d.settimeout(100ms);
    const auto start2 = steady::now();
    auto e = catch_as([&] { d.connect(where); }, &type);
    expect_socket_timeout(e, type, steady::now() - start2, 100ms);
    return;
  }
  GTEST_SKIP() << "the kernel accepted 16 connections on a backlog of 0; cannot provoke "
                  "a connect timeout on loopback here";
}

TEST(socket_timeout, timeout_error_is_an_os_error_and_not_blocking_io_error) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(10ms);
  bool caught_blocking = false;
  bool caught_os_error = false;
  try {
    pair.first.recv(1);
  } catch (const pysock::blocking_io_error&) {
    caught_blocking = true;
  } catch (const pysock::os_error&) {
    caught_os_error = true;
  }
  EXPECT_FALSE(caught_blocking);
  EXPECT_TRUE(caught_os_error);
}

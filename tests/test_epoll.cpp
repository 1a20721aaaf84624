// SPDX-License-Identifier: MIT
//
// pysock::epoll: CPython's Lib/test/test_epoll.py (TestEPoll), plus the
// flags Python only passes through (EPOLLET, EPOLLONESHOT, EPOLLRDHUP,
// EPOLLEXCLUSIVE) checked against the kernel's behaviour.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/timing.hpp"

#include "pysock/select.hpp"
#include "pysock/socket.hpp"

using namespace std::chrono_literals;
using pysock::ready_event;

namespace {

using test_support::alarm_storm;
using test_support::cpu_seconds;
using test_support::stopwatch;

// A connected TCP pair on loopback, non-blocking like CPython's test helper.
struct tcp_pair {
  pysock::socket client, server;
};
tcp_pair connected_pair() {
  auto listener = pysock::create_server({"127.0.0.1", 0});
  auto client = pysock::create_connection(listener.getsockname());
  auto [server, addr] = listener.accept();
  client.setblocking(false);
  server.setblocking(false);
  return {std::move(client), std::move(server)};
}

std::vector<ready_event> sorted(std::vector<ready_event> v) {
  std::sort(v.begin(), v.end(),
            [](const ready_event& a, const ready_event& b) { return a.fd < b.fd; });
  return v;
}

}  // namespace

TEST(epoll, create_fileno_closed_and_flags) {
  pysock::epoll ep;
  EXPECT_GE(ep.fileno(), 0);
  EXPECT_FALSE(ep.closed());
  ep.close();
  EXPECT_TRUE(ep.closed());
  EXPECT_THROW((void)ep.fileno(), std::invalid_argument);
  pysock::epoll with_hint(16, EPOLL_CLOEXEC);
  EXPECT_GE(with_hint.fileno(), 0);
}

TEST(epoll, bad_create_arguments) {
  EXPECT_THROW(pysock::epoll(0), std::invalid_argument);
  EXPECT_THROW(pysock::epoll(-2), std::invalid_argument);
  try {
    pysock::epoll ep(-1, 1);  // not EPOLL_CLOEXEC
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid flags"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pysock::epoll::fromfd(-1), std::invalid_argument);
}

TEST(epoll, descriptor_is_close_on_exec) {
  // test_fd_non_inheritable (PEP 446).
  pysock::epoll ep;
  const int flags = ::fcntl(ep.fileno(), F_GETFD);
  ASSERT_GE(flags, 0);
  EXPECT_TRUE(flags & FD_CLOEXEC);
}

TEST(epoll, add_ints_and_objects_and_errors) {
  // test_add.
  auto client_server_pair = connected_pair();
  [[maybe_unused]] auto& client = client_server_pair.client;
  [[maybe_unused]] auto& server = client_server_pair.server;
  pysock::epoll ep;
  ep.register_(server.fileno(), EPOLLIN | EPOLLOUT);
  ep.register_(client, EPOLLIN | EPOLLOUT);  // an object with fileno()
  EXPECT_THROW(ep.register_(-1, EPOLLIN), std::invalid_argument);
  pysock::socket closed_sock;
  closed_sock.close();
  EXPECT_THROW(ep.register_(closed_sock, EPOLLIN), std::invalid_argument);
  try {
    ep.register_(server, EPOLLIN);
    FAIL() << "registering twice did not throw";
  } catch (const pysock::file_exists_error& e) {
    EXPECT_EQ(e.code().value(), EEXIST);
  }
}

TEST(epoll, register_of_a_closed_descriptor_is_ebadf) {
  pysock::epoll ep;  // first: made later it would take the closed number
  int fd = -1;
  {
    pysock::socket s;
    fd = s.fileno();
  }
  try {
    ep.register_(fd, EPOLLIN);
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
  }
}

TEST(epoll, register_of_a_regular_file_is_permission_error) {
  char path[] = "/tmp/pysock_epoll_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  pysock::epoll ep;
  try {
    ep.register_(fd, EPOLLIN);
    ADD_FAILURE() << "no exception";
  } catch (const pysock::permission_error& e) {
    EXPECT_EQ(e.code().value(), EPERM);
  }
  ::close(fd);
}

TEST(epoll, fromfd_adopts_the_descriptor) {
  // test_fromfd: two objects on one descriptor; closing one breaks the other.
  auto client_server_pair = connected_pair();
  [[maybe_unused]] auto& client = client_server_pair.client;
  [[maybe_unused]] auto& server = client_server_pair.server;
  pysock::epoll ep;
  pysock::epoll ep2 = pysock::epoll::fromfd(ep.fileno());
  EXPECT_EQ(ep2.fileno(), ep.fileno());
  ep2.register_(server, EPOLLIN | EPOLLOUT);
  ep2.register_(client, EPOLLIN | EPOLLOUT);
  EXPECT_EQ(ep.poll(1s, 4).size(), 2u) << "registrations made through ep2 are ep's";
  ep.close();
  // No descriptor is opened between here and ep2.close(), so ep2's number
  // cannot have been reused: it names nothing now.
  try {
    ep2.register_(server.fileno() + 1000, EPOLLIN);
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
  }
  ep2.close();
}

TEST(epoll, control_and_wait_edge_triggered) {
  // test_control_and_wait.
  auto client_server_pair = connected_pair();
  [[maybe_unused]] auto& client = client_server_pair.client;
  [[maybe_unused]] auto& server = client_server_pair.server;
  pysock::epoll ep(16);
  ep.register_(server, EPOLLIN | EPOLLOUT | EPOLLET);
  ep.register_(client, EPOLLIN | EPOLLOUT | EPOLLET);

  stopwatch sw;
  auto events = ep.poll(1s, 4);
  EXPECT_LT(sw.wall(), 0.5);
  const std::uint32_t out = EPOLLOUT, in_out = EPOLLIN | EPOLLOUT;
  EXPECT_EQ(sorted(events), sorted({{client.fileno(), out}, {server.fileno(), out}}));

  // Edge-triggered: no new edge, no event, even though both stay writable.
  stopwatch sw2;
  EXPECT_TRUE(ep.poll(200ms, 4).empty());
  EXPECT_GE(sw2.wall(), 0.19);

  client.send("Hello!");
  server.send("world!!!");
  events = ep.poll(1s, 4);
  // Both have data to read now; the arrival is a new edge for both bits.
  for (int i = 0; i < 20 && events.size() < 2; ++i) {
    auto more = ep.poll(50ms, 4);
    events.insert(events.end(), more.begin(), more.end());
  }
  EXPECT_EQ(sorted(events), sorted({{client.fileno(), in_out}, {server.fileno(), in_out}}));

  ep.unregister(client);
  ep.modify(server, EPOLLOUT);
  events = ep.poll(1s, 4);
  EXPECT_EQ(events, (std::vector<ready_event>{{server.fileno(), out}}));
}

TEST(epoll, edge_triggered_reports_each_arrival_once) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN | EPOLLET);
  EXPECT_TRUE(ep.poll(0s).empty());
  b.sendall("one");
  ASSERT_EQ(ep.poll(1s).size(), 1u);
  // Data still unread, but no new edge: level-triggered would report again.
  EXPECT_TRUE(ep.poll(100ms).empty());
  b.sendall("two");
  ASSERT_EQ(ep.poll(1s).size(), 1u);
  EXPECT_EQ(a.recv(16), "onetwo");
}

TEST(epoll, level_triggered_reports_until_drained) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  b.sendall("x");
  EXPECT_EQ(ep.poll(1s).size(), 1u);
  EXPECT_EQ(ep.poll(1s).size(), 1u);
  EXPECT_EQ(a.recv(16), "x");
  EXPECT_TRUE(ep.poll(0s).empty());
}

TEST(epoll, oneshot_disarms_until_modify_rearms) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN | EPOLLONESHOT);
  b.sendall("x");
  auto events = ep.poll(1s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, a.fileno());
  // Disarmed: the unread byte is not reported again.
  EXPECT_TRUE(ep.poll(100ms).empty());
  ep.modify(a, EPOLLIN | EPOLLONESHOT);  // re-arm
  EXPECT_EQ(ep.poll(1s).size(), 1u);
  EXPECT_TRUE(ep.poll(50ms).empty());
  // Registering again is still EEXIST: a disarmed fd stays registered.
  EXPECT_THROW(ep.register_(a, EPOLLIN), pysock::file_exists_error);
}

TEST(epoll, rdhup_reports_the_peer_shutting_down_writing) {
  auto client_server_pair = connected_pair();
  [[maybe_unused]] auto& client = client_server_pair.client;
  [[maybe_unused]] auto& server = client_server_pair.server;
  pysock::epoll ep;
  ep.register_(server, EPOLLIN | EPOLLRDHUP);
  EXPECT_TRUE(ep.poll(0s).empty());
  client.shutdown(SHUT_WR);
  const auto events = ep.poll(2s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].events & EPOLLRDHUP);
  EXPECT_TRUE(events[0].events & EPOLLIN);
}

TEST(epoll, peer_close_gives_in_and_hup_unasked) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  b.close();
  const auto events = ep.poll(1s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].events & EPOLLIN);
  EXPECT_TRUE(events[0].events & EPOLLHUP) << "EPOLLHUP comes even when not requested";
  EXPECT_EQ(a.recv(16), "");
}

TEST(epoll, exclusive_is_accepted_with_add_and_refused_with_modify) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN | EPOLLEXCLUSIVE);
  b.sendall("x");
  EXPECT_EQ(ep.poll(1s).size(), 1u);
  // The kernel allows EPOLLEXCLUSIVE only with EPOLL_CTL_ADD.
  try {
    ep.modify(a, EPOLLIN | EPOLLEXCLUSIVE);
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_EQ(e.code().value(), EINVAL);
  }
}

TEST(epoll, modify_and_unregister_of_unknown_are_file_not_found) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  EXPECT_THROW(ep.modify(a, EPOLLIN), pysock::file_not_found_error);
  EXPECT_THROW(ep.unregister(a), pysock::file_not_found_error);
}

TEST(epoll, unregister_of_a_closed_descriptor_is_ebadf) {
  // test_unregister_closed.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  const int fd = a.fileno();
  a.close();
  try {
    ep.unregister(fd);
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
  }
}

TEST(epoll, every_operation_on_a_closed_epoll_is_invalid_argument) {
  // test_close: idempotent close; ValueError for every operation.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.close();
  ep.close();
  auto check = [](auto&& op) {
    try {
      op();
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "I/O operation on closed epoll object");
    }
  };
  check([&] { (void)ep.fileno(); });
  check([&] { ep.register_(a, EPOLLIN); });
  check([&] { ep.modify(a, EPOLLIN); });
  check([&] { ep.unregister(a); });
  check([&] { (void)ep.poll(0s); });
  std::array<epoll_event, 4> buf{};
  check([&] { (void)ep.poll(buf, 0s); });
  std::error_code ec;
  EXPECT_EQ(ep.poll(buf, 0s, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
}

TEST(epoll, moved_from_object_is_closed) {
  pysock::epoll ep;
  const int fd = ep.fileno();
  pysock::epoll other(std::move(ep));
  EXPECT_TRUE(ep.closed());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(other.fileno(), fd);
  pysock::epoll third;
  third = std::move(other);
  EXPECT_EQ(third.fileno(), fd);
  EXPECT_THROW((void)other.fileno(), std::invalid_argument);
}

TEST(epoll, maxevents_rules) {
  pysock::epoll ep;
  try {
    (void)ep.poll(0s, 0);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "maxevents must be greater than 0, got 0");
  }
  EXPECT_THROW((void)ep.poll(0s, -2), std::invalid_argument);
  // maxevents caps one call; the rest come in the next one.
  std::vector<std::pair<pysock::socket, pysock::socket>> pairs;
  for (int i = 0; i < 5; ++i) pairs.push_back(pysock::socketpair());
  for (auto& [a, b] : pairs) ep.register_(a, EPOLLOUT);
  EXPECT_EQ(ep.poll(1s, 3).size(), 3u);
  EXPECT_EQ(ep.poll(1s).size(), 5u);
}

TEST(epoll, timeouts_are_honoured_without_busy_loop) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  stopwatch sw;
  EXPECT_TRUE(ep.poll(300ms).empty());
  EXPECT_GE(sw.wall(), 0.29);
  EXPECT_LT(sw.wall(), 5.0);
  EXPECT_LT(sw.cpu(), 0.1);
  stopwatch sw2;
  EXPECT_TRUE(ep.poll(std::chrono::duration<double>(0.0015)).empty());
  EXPECT_GE(sw2.wall(), 0.0015) << "1.5 ms must round up to 2 ms, not down to 1";
  stopwatch sw3;
  EXPECT_TRUE(ep.poll(0s).empty());
  EXPECT_LT(sw3.wall(), 0.5);
}

TEST(epoll, negative_timeout_blocks) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  // Started before the writer's sleep: the wait then lasts at least that
  // sleep however late this thread gets the CPU back.
  stopwatch sw;
  std::thread writer([&b] {
    std::this_thread::sleep_for(100ms);
    b.sendall("x");
  });
  const auto events = ep.poll(-1s);
  writer.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_GE(sw.wall(), 0.09);
}

TEST(epoll, caller_buffer_form_with_own_data) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  epoll_data_t tag{};
  tag.u64 = 0xfeedface12345678ull;
  ep.register_(a, EPOLLOUT, tag);
  std::array<epoll_event, 8> buf{};
  ASSERT_EQ(ep.poll(buf, 1s), 1u);
  EXPECT_EQ(buf[0].data.u64, 0xfeedface12345678ull);
  EXPECT_TRUE(buf[0].events & EPOLLOUT);
  tag.u64 = 7;
  ep.modify(a, EPOLLOUT, tag);
  std::error_code ec;
  ASSERT_EQ(ep.poll(buf, 1s, ec), 1u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(buf[0].data.u64, 7u);
  EXPECT_THROW((void)ep.poll(std::span<epoll_event>(), 0s), std::invalid_argument);
}

TEST(epoll, eintr_is_retried_until_the_timeout) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  stopwatch sw;
  std::size_t n = 99;
  {
    alarm_storm storm(40ms);
    n = ep.poll(400ms).size();
  }
  EXPECT_GT(alarm_storm::count(), 2);
  EXPECT_EQ(n, 0u);
  EXPECT_GE(sw.wall(), 0.39);
  EXPECT_LT(sw.wall(), 5.0);
}

TEST(epoll, eintr_then_readiness_is_reported) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  ep.register_(a, EPOLLIN);
  std::vector<ready_event> events;
  std::thread writer;
  {
    alarm_storm storm(30ms);
    writer = std::thread([&b] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGALRM);
      ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
      std::this_thread::sleep_for(250ms);
      b.sendall("!");
    });
    events = ep.poll();
  }
  writer.join();
  EXPECT_GT(alarm_storm::count(), 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, a.fileno());
}

TEST(epoll, registration_follows_the_open_file_not_the_number) {
  // The kernel fact docs/readiness.md warns about: closing one of two dup'ed
  // descriptors keeps the registration, and events arrive under the old number.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pysock::epoll ep;
  const int old_fd = a.fileno();
  ep.register_(a, EPOLLIN);
  pysock::socket twin = a.dup();
  a.close();
  b.sendall("stale");
  const auto events = ep.poll(1s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, old_fd);
  // And it cannot be removed through the closed number any more.
  EXPECT_THROW(ep.unregister(old_fd), pysock::os_error);
}

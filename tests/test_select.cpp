// SPDX-License-Identifier: MIT
//
// pysock::select(): CPython's Lib/test/test_select.py (SelectTestCase) and
// the socket-level select cases, on real socketpairs, pipes and TCP loopback.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

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
using pysock::selectable;

namespace {

using test_support::alarm_storm;
using test_support::cpu_seconds;
using test_support::stopwatch;

struct pipe_pair {
  int r = -1, w = -1;
  pipe_pair() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    r = fds[0];
    w = fds[1];
  }
  ~pipe_pair() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  pipe_pair(const pipe_pair&) = delete;
  pipe_pair& operator=(const pipe_pair&) = delete;
};

}  // namespace

TEST(select, negative_descriptor_is_invalid_argument) {
  EXPECT_THROW(pysock::select<int>({-1}, {}, {}, 0s), std::invalid_argument);
  EXPECT_THROW(pysock::select<int>({}, {-5}, {}, 0s), std::invalid_argument);
  EXPECT_THROW(pysock::select<int>({}, {}, {-1}, 0s), std::invalid_argument);
}

TEST(select, closed_socket_is_invalid_argument) {
  pysock::socket s;
  s.close();
  // A closed socket's fileno() is -1: Python raises ValueError for it.
  EXPECT_THROW(pysock::select({&s}, {}, {}, 0s), std::invalid_argument);
}

TEST(select, descriptor_at_fd_setsize_is_rejected_with_python_message) {
  try {
    pysock::select<int>({FD_SETSIZE}, {}, {}, 0s);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "filedescriptor out of range in select()");
  }
  EXPECT_THROW(pysock::select<int>({}, {FD_SETSIZE + 5000}, {}, 0s), std::invalid_argument);
  EXPECT_NO_THROW(pysock::select<int>({}, {}, {}, 0s));
}

TEST(select, more_entries_than_fd_setsize_is_rejected) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  std::vector<int> many(FD_SETSIZE + 1, a.fileno());
  try {
    pysock::select<int>(many, {}, {}, 0s);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "too many file descriptors in select()");
  }
}

TEST(select, negative_timeout_is_invalid_argument) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  EXPECT_THROW(pysock::select({&a}, {}, {}, -1ms), std::invalid_argument);
  EXPECT_THROW(pysock::select({&a}, {}, {}, std::chrono::duration<double>(-0.5)),
               std::invalid_argument);
}

TEST(select, closed_descriptor_gives_ebadf) {
  // test_errno: an int that is not an open descriptor.
  int fd = -1;
  {
    pysock::socket s;
    fd = s.fileno();
  }
  try {
    pysock::select<int>({fd}, {}, {}, 0s);
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
  }
}

TEST(select, returned_lists_hold_the_same_socket_objects) {
  // test_returned_list_identity: the results are the objects passed in.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto c_d_pair = pysock::socketpair();
  [[maybe_unused]] auto& c = c_d_pair.first;
  [[maybe_unused]] auto& d = c_d_pair.second;
  b.sendall("x");
  auto [r, w, x] = pysock::select({&a, &c}, {&a, &c}, {&a}, 1s);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].sock(), &a);
  EXPECT_EQ(r[0], selectable(a));
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].sock(), &a);
  EXPECT_EQ(w[1].sock(), &c);
  EXPECT_TRUE(x.empty());
}

TEST(select, keeps_input_order_and_duplicates) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto c_d_pair = pysock::socketpair();
  [[maybe_unused]] auto& c = c_d_pair.first;
  [[maybe_unused]] auto& d = c_d_pair.second;
  const std::vector<pysock::socket*> in{&c, &a, &c};
  auto [r, w, x] = pysock::select<pysock::socket*>({}, in, {}, 1s);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0], &c);
  EXPECT_EQ(w[1], &a);
  EXPECT_EQ(w[2], &c);
  EXPECT_TRUE(r.empty());
  EXPECT_TRUE(x.empty());
}

TEST(select, mixes_sockets_and_ints) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  pipe_pair p;
  ASSERT_EQ(::write(p.w, "hi", 2), 2);
  b.sendall("y");
  auto [r, w, x] = pysock::select({&a, p.r, p.w}, {p.w}, {}, 1s);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], selectable(&a));
  EXPECT_EQ(r[1], selectable(p.r));
  EXPECT_FALSE(r[1].is_socket());
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].fileno(), p.w);
}

TEST(select, empty_lists_sleep_for_the_timeout) {
  stopwatch sw;
  auto [r, w, x] = pysock::select({}, {}, {}, 200ms);
  EXPECT_TRUE(r.empty() && w.empty() && x.empty());
  EXPECT_GE(sw.wall(), 0.19);
  EXPECT_LT(sw.wall(), 5.0);
  EXPECT_LT(sw.cpu(), 0.1) << "select() busy-looped";
}

TEST(select, timeout_with_nothing_ready_returns_empty_lists) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  stopwatch sw;
  auto [r, w, x] = pysock::select({&a}, {}, {&a}, 300ms);
  EXPECT_TRUE(r.empty());
  EXPECT_TRUE(x.empty());
  EXPECT_GE(sw.wall(), 0.29);
  EXPECT_LT(sw.wall(), 5.0);
  EXPECT_LT(sw.cpu(), 0.1);
}

TEST(select, fractional_timeouts_round_up_and_zero_polls) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  stopwatch sw;
  auto res = pysock::select({&a}, {}, {}, std::chrono::duration<double>(0.05));
  EXPECT_TRUE(res.r.empty());
  EXPECT_GE(sw.wall(), 0.049);
  stopwatch sw0;
  res = pysock::select({&a}, {}, {}, 0s);
  EXPECT_TRUE(res.r.empty());
  EXPECT_LT(sw0.wall(), 0.5);
}

TEST(select, socket_is_writable_at_once_and_readable_after_data) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto res = pysock::select({&a}, {&a}, {}, 0s);
  EXPECT_TRUE(res.r.empty());
  ASSERT_EQ(res.w.size(), 1u);
  b.sendall("ping");
  res = pysock::select({&a}, {}, {}, 1s);
  ASSERT_EQ(res.r.size(), 1u);
  EXPECT_EQ(a.recv(16), "ping");
}

TEST(select, peer_close_makes_socket_readable_and_recv_returns_empty) {
  // TCPCloserTest.testClose, on real TCP loopback.
  auto server = pysock::create_server({"127.0.0.1", 0});
  auto client = pysock::create_connection(server.getsockname());
  auto [conn, addr] = server.accept();
  client.close();
  auto res = pysock::select({&conn}, {}, {}, 5s);
  ASSERT_EQ(res.r.size(), 1u);
  EXPECT_EQ(conn.recv(1024), "");
}

TEST(select, blocks_without_timeout_until_ready) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  // Started before the writer's sleep: the wait then lasts at least that
  // sleep however late this thread gets the CPU back.
  stopwatch sw;
  std::thread writer([&b] {
    std::this_thread::sleep_for(100ms);
    b.sendall("late");
  });
  auto res = pysock::select({&a}, {}, {});
  writer.join();
  ASSERT_EQ(res.r.size(), 1u);
  EXPECT_GE(sw.wall(), 0.09);
}

TEST(select, pipe_written_in_steps_with_several_timeouts) {
  // test_select: a writer producing lines slowly; select with timeouts
  // 0, 0.1, 0.2, ... until end of file, every loop bounded.
  pipe_pair p;
  std::thread writer([fd = p.w] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(30ms);
      const std::string line = "testing...\n";
      if (::write(fd, line.data(), line.size()) < 0) return;
    }
  });
  std::string got;
  bool eof = false;
  for (int round = 0; round < 200 && !eof; ++round) {
    const auto timeout = std::chrono::milliseconds(10 * (round % 6));
    auto res = pysock::select<int>({p.r}, {}, {}, timeout);
    if (res.r.empty()) continue;
    char buf[256];
    const ssize_t n = ::read(p.r, buf, sizeof buf);
    ASSERT_GE(n, 0);
    got.append(buf, static_cast<std::size_t>(n));
    if (p.w >= 0 && got.size() == 5 * std::string("testing...\n").size()) {
      writer.join();
      ::close(p.w);
      p.w = -1;
    }
    if (n == 0) eof = true;
  }
  if (writer.joinable()) writer.join();
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.size(), 5 * std::string("testing...\n").size());
}

TEST(select, eintr_is_retried_until_the_timeout) {
  // PEP 475: a handler that does not raise makes select() continue with the
  // time left; the whole call still lasts about its timeout.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  stopwatch sw;
  std::size_t ready = 99;
  {
    alarm_storm storm(50ms);
    auto res = pysock::select({&a}, {}, {}, 400ms);
    ready = res.r.size();
  }
  EXPECT_GT(alarm_storm::count(), 2) << "the wait was never interrupted";
  EXPECT_EQ(ready, 0u);
  EXPECT_GE(sw.wall(), 0.39);
  EXPECT_LT(sw.wall(), 5.0);
}

TEST(select, eintr_then_readiness_is_reported) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  std::thread writer;
  pysock::select_result<selectable> res;
  {
    alarm_storm storm(30ms);
    writer = std::thread([&b] {
      // Keep the alarm on the waiting thread: block SIGALRM here.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGALRM);
      ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
      std::this_thread::sleep_for(250ms);
      b.sendall("!");
    });
    res = pysock::select({&a}, {}, {}, 5s);
  }
  writer.join();
  EXPECT_GT(alarm_storm::count(), 1);
  ASSERT_EQ(res.r.size(), 1u);
  EXPECT_EQ(res.r[0].sock(), &a);
}

TEST(select, elements_may_be_any_type_with_fileno) {
  struct my_file {
    int fd;
    int fileno() const { return fd; }
  };
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  const std::vector<my_file> files{{a.fileno()}, {b.fileno()}};
  auto res = pysock::select<my_file>({}, files, {}, 1s);
  ASSERT_EQ(res.w.size(), 2u);
  EXPECT_EQ(res.w[1].fd, b.fileno());
  // Unsigned integers work too (no sign warnings in the instantiation).
  const auto plain = pysock::select<unsigned>({}, {static_cast<unsigned>(a.fileno())}, {}, 1s);
  EXPECT_EQ(plain.w.size(), 1u);
}

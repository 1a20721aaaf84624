// SPDX-License-Identifier: MIT
//
// pysock::poll_object: CPython's Lib/test/test_poll.py (PollTests) on real
// socketpairs and pipes.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/timing.hpp"

#include "pysock/select.hpp"
#include "pysock/socket.hpp"

using namespace std::chrono_literals;

namespace {

using test_support::alarm_storm;
using test_support::cpu_seconds;
using test_support::stopwatch;

// Whether thread `tid` of this process is blocked in poll(2) or ppoll(2) now,
// from the system call number the kernel shows for a sleeping thread.
bool blocked_in_poll(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long number = -1;
  if (!(f >> number)) return false;  // "running": not in a system call
#ifdef SYS_poll
  if (number == SYS_poll) return true;
#endif
  return number == SYS_ppoll;
}

void block_sigalrm_in_this_thread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace

TEST(poll, twelve_pairs_register_modify_unregister) {
  // test_poll1: writers become writable, write once and are swapped for
  // their readers, which read the message and are dropped.
  constexpr int n = 12;
  const std::string msg = "This will be a test.";
  std::vector<std::pair<pysock::socket, pysock::socket>> pairs;
  for (int i = 0; i < n; ++i) pairs.push_back(pysock::socketpair());
  auto p = pysock::poll();
  std::map<int, std::size_t> writer_of, reader_of;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    p.register_(pairs[i].second, POLLOUT);
    p.register_(pairs[i].first, POLLIN);
    p.modify(pairs[i].first, POLLIN);  // modify of a registered fd works
    writer_of[pairs[i].second.fileno()] = i;
    reader_of[pairs[i].first.fileno()] = i;
  }
  int remaining_readers = n;
  for (int round = 0; round < 10 * n && remaining_readers > 0; ++round) {
    const auto ready = p.poll(1000);
    ASSERT_FALSE(ready.empty()) << "poll timed out";
    for (auto [fd, events] : ready) {
      if (writer_of.count(fd)) {
        ASSERT_TRUE(events & POLLOUT);
        pairs[writer_of[fd]].second.sendall(msg);
        p.unregister(fd);
        writer_of.erase(fd);
      } else {
        ASSERT_TRUE(reader_of.count(fd));
        ASSERT_TRUE(events & POLLIN);
        EXPECT_EQ(pairs[reader_of[fd]].first.recv(1024), msg);
        p.unregister(fd);
        --remaining_readers;
      }
    }
  }
  EXPECT_EQ(remaining_readers, 0);
  EXPECT_EQ(p.size(), 0u);
}

TEST(poll, closed_descriptor_reports_pollnval) {
  // test_poll_unit_tests: poll does not validate at register time.
  int fd = -1;
  {
    pysock::socket s;
    fd = s.fileno();
  }
  auto p = pysock::poll();
  p.register_(fd);
  const auto ready = p.poll(0);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd, fd);
  EXPECT_EQ(ready[0].events, static_cast<std::uint32_t>(POLLNVAL));
}

TEST(poll, unregister_unknown_is_key_error) {
  auto p = pysock::poll();
  EXPECT_THROW(p.unregister(3), pysock::key_error);
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  p.register_(a);
  p.unregister(a);
  EXPECT_THROW(p.unregister(a), pysock::key_error);
}

TEST(poll, modify_unknown_is_file_not_found) {
  auto p = pysock::poll();
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  try {
    p.modify(a, POLLIN);
    FAIL() << "no exception";
  } catch (const pysock::file_not_found_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

TEST(poll, register_twice_overwrites_silently) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto p = pysock::poll();
  p.register_(a, POLLOUT);
  p.register_(a, POLLIN);  // replaces POLLOUT
  EXPECT_EQ(p.size(), 1u);
  EXPECT_TRUE(p.poll(0).empty()) << "the old POLLOUT mask was kept";
  b.sendall("x");
  const auto ready = p.poll(1000);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, static_cast<std::uint32_t>(POLLIN));
}

TEST(poll, bad_masks_and_descriptors) {
  // test_poll3: a mask beyond 16 bits is Python's OverflowError.
  auto p = pysock::poll();
  EXPECT_THROW(p.register_(1, 0x10000), std::out_of_range);
  EXPECT_THROW(p.register_(1, ~0u), std::out_of_range);
  EXPECT_THROW(p.register_(-1), std::invalid_argument);
  pysock::socket closed;
  closed.close();
  EXPECT_THROW(p.register_(closed), std::invalid_argument);
  EXPECT_EQ(p.size(), 0u);
}

TEST(poll, pollhup_after_peer_closes_a_pipe) {
  // test_poll2: the reader sees the data, then POLLHUP at end of file.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto p = pysock::poll();
  p.register_(fds[0], POLLIN);
  ASSERT_EQ(::write(fds[1], "line\n", 5), 5);
  ::close(fds[1]);
  auto ready = p.poll(1000);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0].events & POLLIN);
  char buf[16];
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), 5);
  ready = p.poll(1000);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0].events & POLLHUP);
  ::close(fds[0]);
}

TEST(poll, timeout_in_milliseconds_is_honoured_without_busy_loop) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto p = pysock::poll();
  p.register_(a, POLLIN);
  stopwatch sw;
  EXPECT_TRUE(p.poll(300).empty());
  EXPECT_GE(sw.wall(), 0.29);
  EXPECT_LT(sw.wall(), 5.0);
  EXPECT_LT(sw.cpu(), 0.1);
  stopwatch sw2;
  EXPECT_TRUE(p.poll(150ms).empty());
  EXPECT_GE(sw2.wall(), 0.149);
  stopwatch sw3;
  EXPECT_TRUE(p.poll(std::chrono::duration<double, std::milli>(0.5)).empty());
  EXPECT_GE(sw3.wall(), 0.0005) << "a sub-millisecond wait must round up, not to 0";
}

TEST(poll, none_and_negative_timeouts_block) {
  // test_poll_blocks_with_negative_ms: None, -1, -1000 and -0.1 all block.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto p = pysock::poll();
  p.register_(a, POLLIN);
  const std::vector<std::function<std::vector<pysock::ready_event>()>> calls{
      [&] { return p.poll(); },
      [&] { return p.poll(-1); },
      [&] { return p.poll(-1000); },
      [&] { return p.poll(-100us); },
  };
  for (const auto& call : calls) {
    // Started before the writer's sleep: the wait then lasts at least that
    // sleep however late this thread gets the CPU back.
    stopwatch sw;
    std::thread writer([&b] {
      std::this_thread::sleep_for(100ms);
      b.sendall("x");
    });
    const auto ready = call();
    writer.join();
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_GE(sw.wall(), 0.09) << "a negative timeout did not block";
    EXPECT_EQ(a.recv(16), "x");
  }
}

TEST(poll, concurrent_poll_is_runtime_error) {
  // test_threaded_poll.
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto p = pysock::poll();
  p.register_(a, POLLIN);
  std::atomic<pid_t> waiter_tid{0};
  std::size_t got = 0;
  std::thread waiter([&] {
    waiter_tid = ::gettid();
    got = p.poll(10'000).size();
  });
  // Not a fixed sleep: on a loaded machine the waiter may not be in poll()
  // yet, and then the waiter, not this call, would be the concurrent one.
  bool waiting = false;
  for (int i = 0; i < 10'000 && !waiting; ++i) {
    const pid_t tid = waiter_tid.load();
    waiting = tid != 0 && blocked_in_poll(tid);
    if (!waiting) std::this_thread::sleep_for(1ms);
  }
  if (!waiting) {
    b.sendall("wake");
    waiter.join();
    FAIL() << "the waiter never blocked in poll(2) (or /proc/self/task/*/syscall is unreadable)";
  }
  try {
    p.poll(0);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "concurrent poll() invocation");
  }
  b.sendall("wake");
  waiter.join();
  EXPECT_EQ(got, 1u);
  EXPECT_EQ(p.poll(0).size(), 1u) << "the flag was not cleared";
}

TEST(poll, caller_buffer_form_allocates_nothing_and_keeps_the_rest_ready) {
  std::vector<std::pair<pysock::socket, pysock::socket>> pairs;
  for (int i = 0; i < 5; ++i) pairs.push_back(pysock::socketpair());
  auto p = pysock::poll();
  for (auto& [a, b] : pairs) p.register_(a, POLLOUT);
  std::array<pollfd, 3> buf{};
  EXPECT_EQ(p.poll(buf, 1s), 3u);
  for (const pollfd& e : buf) {
    EXPECT_TRUE(e.revents & POLLOUT);
    EXPECT_EQ(e.events, POLLOUT);
  }
  std::array<pollfd, 8> big{};
  EXPECT_EQ(p.poll(big, 0s), 5u);
}

TEST(poll, eintr_is_retried_until_the_timeout) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto p = pysock::poll();
  p.register_(a, POLLIN);
  stopwatch sw;
  std::size_t n = 99;
  {
    alarm_storm storm(40ms);
    n = p.poll(400).size();
  }
  EXPECT_GT(alarm_storm::count(), 2);
  EXPECT_EQ(n, 0u);
  EXPECT_GE(sw.wall(), 0.39);
  EXPECT_LT(sw.wall(), 5.0);
}

TEST(poll, eintr_then_readiness_is_reported) {
  auto a_b_pair = pysock::socketpair();
  [[maybe_unused]] auto& a = a_b_pair.first;
  [[maybe_unused]] auto& b = a_b_pair.second;
  auto p = pysock::poll();
  p.register_(a, POLLIN);
  std::vector<pysock::ready_event> ready;
  std::thread writer;
  {
    alarm_storm storm(30ms);
    writer = std::thread([&b] {
      block_sigalrm_in_this_thread();
      std::this_thread::sleep_for(250ms);
      b.sendall("!");
    });
    ready = p.poll();  // blocks: must survive the signals
  }
  writer.join();
  EXPECT_GT(alarm_storm::count(), 1);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd, a.fileno());
}

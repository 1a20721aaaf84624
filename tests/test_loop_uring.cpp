// SPDX-License-Identifier: MIT
//
// What only the io_uring backend has: selection through PYSOCK_LOOP, the
// fallback to epoll when a sandbox refuses io_uring (one log line, a working
// loop), and the kernel's view of the ring. The behaviour every backend shares
// is tested in test_loop.cpp and test_streams.cpp, once per backend.
#include <pysock/loop.hpp>

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using pysock::task;

namespace {

std::string descriptor_target(int fd) {
  char buf[256];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Makes a loop asking for io_uring; skips the test (with the loop's own
// explanation) where it fell back.
std::unique_ptr<pysock::event_loop> uring_loop_or_skip(std::string& log) {
  testing::internal::CaptureStderr();
  auto loop =
      std::make_unique<pysock::event_loop>(pysock::loop_options{pysock::loop_backend::io_uring});
  log = testing::internal::GetCapturedStderr();
  if (loop->backend() != pysock::loop_backend::io_uring) return nullptr;
  return loop;
}

}  // namespace

TEST(loop_uring, pysock_loop_io_uring_selects_the_backend_and_says_nothing) {
  ::setenv("PYSOCK_LOOP", "io_uring", 1);
  testing::internal::CaptureStderr();
  auto loop = std::make_unique<pysock::event_loop>();
  const std::string log = testing::internal::GetCapturedStderr();
  ::unsetenv("PYSOCK_LOOP");
  if (loop->backend() != pysock::loop_backend::io_uring)
    GTEST_SKIP() << "io_uring refused here, the loop fell back: " << log;
  EXPECT_STREQ(pysock::to_string(loop->backend()), "io_uring");
  EXPECT_EQ(log, "") << "a working io_uring must not log anything";
  EXPECT_EQ(descriptor_target(loop->backend_fileno()), "anon_inode:[io_uring]");
  // The loop runs: a timer and a cross-thread call come back through the ring.
  bool fired = false;
  loop->call_later(2ms, [&] {
    fired = true;
    std::thread([&l = *loop] { l.call_soon_threadsafe([&l] { l.stop(); }); }).detach();
  });
  auto guard = loop->call_later(10s, [&] { loop->stop(); });
  loop->run_forever();
  EXPECT_TRUE(fired);
}

TEST(loop_uring, a_sandbox_that_refuses_io_uring_gets_epoll_and_one_log_line) {
  std::string parent_log;
  if (uring_loop_or_skip(parent_log) == nullptr)
    GTEST_SKIP() << "io_uring already refused here (the fallback is covered by "
                    "loop_backend.an_unavailable_io_uring_falls_back_to_epoll_with_one_log_line): "
                 << parent_log;
  // A child process installs a seccomp filter that makes io_uring_setup fail
  // with EPERM, as container runtimes do, then asks for io_uring twice.
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(out[1], STDERR_FILENO);
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(10);
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) ::_exit(11);
    ::setenv("PYSOCK_LOOP", "io_uring", 1);
    int status = 0;
    try {
      pysock::event_loop first;
      pysock::event_loop second(pysock::loop_options{pysock::loop_backend::io_uring});
      if (first.backend() != pysock::loop_backend::epoll) status = 1;
      if (second.backend() != pysock::loop_backend::epoll) status = 2;
      // And it works: a socket wait goes through epoll.
      auto ab = pysock::socketpair();
      ab.first.setblocking(false);
      ab.second.setblocking(false);
      auto body = [&]() -> task<pysock::bytes> {
        first.call_later(2ms, [&] { ab.first.send("fine"); });
        co_return co_await first.sock_recv(ab.second, 10);
      };
      if (first.run_until_complete(pysock::wait_for(body(), 5s)) != "fine") status = 3;
    } catch (...) {
      status = 4;
    }
    ::_exit(status);
  }
  ::close(out[1]);
  std::string log;
  char buf[512];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) log.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died: " << log;
  ASSERT_NE(WEXITSTATUS(status), 10) << "prctl(PR_SET_NO_NEW_PRIVS) failed";
  ASSERT_NE(WEXITSTATUS(status), 11) << "seccomp refused the filter";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1/2: not epoll, 3: wait failed, 4: exception; log: " << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << "one line per process: " << log;
  EXPECT_NE(log.find("io_uring"), std::string::npos) << log;
  EXPECT_NE(log.find("Operation not permitted"), std::string::npos) << log;
  EXPECT_NE(log.find("using epoll"), std::string::npos) << log;
}

TEST(loop_uring, completions_beyond_the_queue_sizes_are_all_delivered) {
  // 3,000 waits at once: more than the submission queue (256) and the
  // completion queue (4,096 counts both directions here) take in one go.
  std::string log;
  auto loop = uring_loop_or_skip(log);
  if (!loop) GTEST_SKIP() << "io_uring refused here: " << log;
  constexpr int kPairs = 600;
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 2 * kPairs + 100 && lim.rlim_max > lim.rlim_cur) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < 2 * kPairs + 100) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  std::vector<std::pair<pysock::socket, pysock::socket>> pairs;
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(pysock::socketpair());
    pairs.back().first.setblocking(false);
    pairs.back().second.setblocking(false);
  }
  auto& l = *loop;
  auto ping = [&l](pysock::socket& s, int rounds) -> task<int> {
    int ok = 0;
    for (int r = 0; r < rounds; ++r) {
      pysock::bytes got = co_await l.sock_recv(s, 16);
      if (got == "ping") ++ok;
      co_await l.sock_sendall(s, "pong");
    }
    co_return ok;
  };
  auto pong = [&l](pysock::socket& s, int rounds) -> task<int> {
    int ok = 0;
    for (int r = 0; r < rounds; ++r) {
      co_await l.sock_sendall(s, "ping");
      pysock::bytes got = co_await l.sock_recv(s, 16);
      if (got == "pong") ++ok;
    }
    co_return ok;
  };
  auto body = [&]() -> task<int> {
    std::vector<task<int>> all;
    for (auto& p : pairs) {
      all.push_back(ping(p.second, 5));
      all.push_back(pong(p.first, 5));
    }
    const std::vector<int> counts = co_await pysock::gather(std::move(all));
    co_return std::accumulate(counts.begin(), counts.end(), 0);
  };
  EXPECT_EQ(l.run_until_complete(pysock::wait_for(body(), 30s)), 2 * kPairs * 5);
  EXPECT_EQ(l.kernel_requests_in_flight(), 0u);
}

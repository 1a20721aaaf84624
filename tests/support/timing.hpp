// SPDX-License-Identifier: MIT
//
// Timing helpers shared by the readiness tests (select, poll, epoll,
// selectors): a stopwatch that also measures CPU time, so a wait can be
// checked for taking its timeout without busy-looping, and an alarm storm
// that interrupts every wait with EINTR.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>

namespace test_support {

inline double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Measures wall and CPU time of a block: a wait must take about its timeout
// and almost no CPU (no busy loop).
struct stopwatch {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double cpu_start = cpu_seconds();
  double wall() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double cpu() const { return cpu_seconds() - cpu_start; }
};

// A no-op SIGALRM handler installed *without* SA_RESTART and fired every
// `period`: each wait in its scope is interrupted with EINTR, repeatedly.
class alarm_storm {
 public:
  explicit alarm_storm(std::chrono::microseconds period) {
    count_ = 0;
    struct sigaction sa {};
    sa.sa_handler = [](int) { count_.fetch_add(1, std::memory_order_relaxed); };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the system call must fail with EINTR
    ::sigaction(SIGALRM, &sa, &old_);
    itimerval it{};
    it.it_value.tv_sec = static_cast<time_t>(period.count() / 1'000'000);
    it.it_value.tv_usec = static_cast<suseconds_t>(period.count() % 1'000'000);
    it.it_interval = it.it_value;
    ::setitimer(ITIMER_REAL, &it, nullptr);
  }
  ~alarm_storm() {
    itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &old_, nullptr);
  }
  alarm_storm(const alarm_storm&) = delete;
  alarm_storm& operator=(const alarm_storm&) = delete;
  static int count() { return count_.load(); }

 private:
  static inline std::atomic<int> count_{0};
  struct sigaction old_ {};
};

}  // namespace test_support

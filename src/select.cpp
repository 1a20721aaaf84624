// SPDX-License-Identifier: MIT
//
// select(): Python's select.select() and the fd_set plumbing of
// select_selector. The FD_* macros live only in this file.
#include <sys/select.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include "pysock/select.hpp"

namespace pysock::detail {
namespace {

using clock = std::chrono::steady_clock;

// Rounds a non-negative wait up to whole microseconds, select()'s unit (as
// CPython's _PyTime_ROUND_CEILING), so the wait is never shorter than asked.
timeval to_timeval(std::chrono::nanoseconds remaining) {
  using std::chrono::microseconds;
  if (remaining.count() < 0) remaining = std::chrono::nanoseconds(0);
  const auto us = std::chrono::ceil<microseconds>(remaining);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us.count() / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us.count() % 1'000'000);
  return tv;
}

void check_and_set(std::span<const int> fds, fd_set& set, int& max_fd) {
  // Python checks the list length first: more entries than FD_SETSIZE cannot
  // be represented however small the descriptors are.
  if (fds.size() > static_cast<std::size_t>(FD_SETSIZE))
    throw std::invalid_argument("too many file descriptors in select()");
  for (const int fd : fds) {
    if (fd < 0)
      throw std::invalid_argument("file descriptor cannot be a negative integer (" +
                                  std::to_string(fd) + ")");
    // FD_SET beyond FD_SETSIZE writes past the fd_set: the memory corruption
    // that this check exists to prevent.
    if (fd >= FD_SETSIZE) throw std::invalid_argument("filedescriptor out of range in select()");
    FD_SET(fd, &set);
    max_fd = std::max(max_fd, fd);
  }
}

// The select(2) loop shared by select() and select_selector: PEP 475 retry on
// EINTR with the time that is left; once the deadline has passed the result
// is "nothing ready" (bpo-35310), not another wait.
int select_loop(int nfds, const fd_set* r, const fd_set* w, const fd_set* x, fd_set* out_r,
                fd_set* out_w, fd_set* out_x, wait_timeout timeout, const char* context) {
  const auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  for (;;) {
    // select() overwrites its sets: start every attempt from the caller's.
    if (out_r) *out_r = *r;
    if (out_w) *out_w = *w;
    if (out_x) *out_x = *x;
    timeval tv{};
    timeval* tvp = nullptr;
    if (timeout) {
      tv = to_timeval(deadline - clock::now());
      tvp = &tv;
    }
    const int n = ::select(nfds, out_r, out_w, out_x, tvp);
    if (n >= 0) return n;
    if (errno != EINTR) throw_os_error(last_error(), context);
    if (timeout && clock::now() >= deadline) {
      if (out_r) FD_ZERO(out_r);
      if (out_w) FD_ZERO(out_w);
      if (out_x) FD_ZERO(out_x);
      return 0;
    }
  }
}

}  // namespace

bool fd_isset(const fd_set& set, int fd) noexcept {
  if (fd < 0 || fd >= FD_SETSIZE) return false;
  return FD_ISSET(fd, &set) != 0;
}

void select_descriptors(std::span<const int> rfds, std::span<const int> wfds,
                        std::span<const int> xfds, wait_timeout timeout, select_ready& ready) {
  if (timeout && timeout->count() < 0) throw std::invalid_argument("timeout must be non-negative");
  fd_set r, w, x;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_ZERO(&x);
  int max_fd = -1;
  check_and_set(rfds, r, max_fd);
  check_and_set(wfds, w, max_fd);
  check_and_set(xfds, x, max_fd);
  select_loop(max_fd + 1, &r, &w, &x, &ready.read, &ready.write, &ready.except, timeout,
              "select()");
}

select_interest::select_interest() noexcept {
  FD_ZERO(&read_);
  FD_ZERO(&write_);
}

void select_interest::set(int fd, bool read, bool write) noexcept {
  if (fd < 0 || fd >= FD_SETSIZE) return;  // the selector rejected it already
  if (read)
    FD_SET(fd, &read_);
  else
    FD_CLR(fd, &read_);
  if (write)
    FD_SET(fd, &write_);
  else
    FD_CLR(fd, &write_);
  if (read || write) {
    max_fd_ = std::max(max_fd_, fd);
  } else if (fd == max_fd_) {
    // nfds must cover the highest watched descriptor, no more: walk down.
    while (max_fd_ >= 0 && !FD_ISSET(max_fd_, &read_) && !FD_ISSET(max_fd_, &write_)) --max_fd_;
  }
}

int select_interest::wait(wait_timeout timeout, select_interest& ready) const {
  // A selector's non-positive timeout means "poll", never an error.
  if (timeout && timeout->count() < 0) timeout = std::chrono::nanoseconds(0);
  ready.max_fd_ = max_fd_;
  return select_loop(max_fd_ + 1, &read_, &write_, nullptr, &ready.read_, &ready.write_, nullptr,
                     timeout, "select()");
}

}  // namespace pysock::detail
